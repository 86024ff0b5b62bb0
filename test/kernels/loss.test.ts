import { smoothL1Backward, smoothL1Forward } from '../../kernels/loss.js';
import { Rng } from '../../engine/random.js';
import { assert, assertClose, getEngine, poisoned, randomArray } from '../helpers.js';
import { bind, checkPadded, MODES, PAD, padded, SENTINEL, SIZES, type Mode } from './map-helpers.js';

// PyTorch SmoothL1Loss (mean), float64, straight from its definition.
function lossRef(pred: ArrayLike<number>, target: ArrayLike<number>, beta: number): number {
  let s = 0;
  for (let i = 0; i < pred.length; i++) {
    const z = Math.abs(pred[i] - target[i]);
    s += beta > 0 && z < beta ? (0.5 * z * z) / beta : z - 0.5 * beta;
  }
  return s / pred.length;
}

function gradRef(pred: ArrayLike<number>, target: ArrayLike<number>, beta: number, dloss: number): Float64Array {
  const n = pred.length;
  return Float64Array.from({ length: n }, (_, i) => {
    const d = pred[i] - target[i];
    return (dloss * (Math.abs(d) < beta ? d / beta : Math.sign(d))) / n;
  });
}

describe('kernels/loss', () => {
  it('reference gradient matches central finite differences (float64)', () => {
    const rng = new Rng(31);
    for (const beta of [1, 0.5, 0]) {
      const n = 12;
      const target = Array.from(randomArray(rng, n));
      // keep every |d| away from the kinks at 0 and ±β
      const pred = target.map((t, i) => t + (i % 2 ? 1 : -1) * (i % 3 === 0 ? beta * 0.4 + 0.05 : beta + 0.3 + 0.1 * i));
      const g = gradRef(pred, target, beta, 1);
      const h = 1e-6;
      for (let k = 0; k < n; k++) {
        const p = pred.slice(), m = pred.slice();
        p[k] += h;
        m[k] -= h;
        const fd = (lossRef(p, target, beta) - lossRef(m, target, beta)) / (2 * h);
        assert(Math.abs(fd - g[k]) < 1e-8, `beta=${beta} element ${k}: finite difference ${fd}, reference ${g[k]}`);
      }
    }
  });

  it('forward: mean smooth-L1 (β = 1, 0.5, 0) against float64, loss overwritten', async () => {
    const engine = await getEngine();
    const rng = new Rng(32);
    // every β on a few sizes, one β (in turn) on the others: keeps the browser run short
    const cases: [number, number][] = SIZES.map((n, k) => [n, [1, 0.5, 0][k % 3]]);
    for (const beta of [1, 0.5, 0]) cases.push([1031, beta]);
    const all: [Mode, number, number][] = MODES.flatMap((mode) => cases.map(([n, beta]): [Mode, number, number] => [mode, n, beta]));
    all.push(['vec4', 300007, 1]); // several partial sums
    for (const [mode, n, beta] of all) {
      const pred = randomArray(rng, n, 1.5), target = randomArray(rng, n);
      // whole-buffer (vec4) bindings hold values past n that differ (SENTINEL against −SENTINEL): the sum must leave them out
      const tp = padded(engine, pred, n), tt = engine.upload(Float32Array.from({ length: n + PAD }, (_, i) => (i < n ? target[i] : -SENTINEL))), tl = poisoned(engine, [1]);
      smoothL1Forward(engine.batch, bind(tp, n, mode), bind(tt, n, mode), tl.buffer, { n, beta });
      assertClose(await engine.read(tl), [lossRef(pred, target, beta)], 1e-5, `smoothL1Forward ${mode} n=${n} beta=${beta}`);
      [tp, tt, tl].forEach((t) => t.dispose());
    }
  });

  it('forward: beta defaults to 1; several losses in one batch share the scratch correctly', async () => {
    const engine = await getEngine();
    const rng = new Rng(33);
    const sets = [5000, 3, 70001].map((n) => ({ n, pred: randomArray(rng, n, 2), target: randomArray(rng, n) }));
    const ts = sets.map((s) => ({ p: engine.upload(s.pred), t: engine.upload(s.target), l: poisoned(engine, [1]) }));
    sets.forEach((s, k) => smoothL1Forward(engine.batch, ts[k].p.buffer, ts[k].t.buffer, ts[k].l.buffer, { n: s.n }));
    for (let k = 0; k < sets.length; k++)
      assertClose(await engine.read(ts[k].l), [lossRef(sets[k].pred, sets[k].target, 1)], 1e-5, `loss ${k} (n=${sets[k].n})`);
    ts.forEach((x) => [x.p, x.t, x.l].forEach((t) => t.dispose()));
  });

  it('backward: dpred (+)= dloss·∂loss/∂pred against the reference gradient', async () => {
    const engine = await getEngine();
    const rng = new Rng(34);
    for (const mode of MODES)
      for (const n of SIZES)
        for (const [beta, acc] of [[1, false], [0.5, true], [0, false]] as [number, boolean][]) {
          const pred = randomArray(rng, n, 1.5), target = randomArray(rng, n), dl = 0.75;
          const d0 = randomArray(rng, n);
          const tp = engine.upload(pred), tt = engine.upload(target), tdl = engine.upload([dl]), td = padded(engine, acc ? d0 : null, n);
          smoothL1Backward(engine.batch, bind(tp, n, mode), bind(tt, n, mode), tdl.buffer, bind(td, n, mode), { n, beta, accumulate: acc });
          const ref = gradRef(pred, target, beta, dl).map((g, i) => g + (acc ? d0[i] : 0));
          checkPadded(await engine.read(td), ref, n, 1e-5, `smoothL1Backward ${mode} n=${n} beta=${beta} acc=${acc}`);
          [tp, tt, tdl, td].forEach((t) => t.dispose());
        }
  });

  it('backward: a NaN difference gives a NaN gradient there (as PyTorch), finite ones elsewhere', async () => {
    const engine = await getEngine();
    for (const n of [7, 8]) // scalar and vec4 kernels
      for (const beta of [1, 0]) {
        const pred = Float32Array.from({ length: n }, (_, i) => (i === 2 ? NaN : i === 5 ? Infinity : 0.3 * i));
        const target = Float32Array.from({ length: n }, (_, i) => (i === 5 ? Infinity : 0.1));
        // poisoned with a finite value: NaN is what the test looks for
        const tp = engine.upload(pred), tt = engine.upload(target), tdl = engine.upload([1]), td = engine.upload(new Float32Array(n).fill(12345));
        smoothL1Backward(engine.batch, tp.buffer, tt.buffer, tdl.buffer, td.buffer, { n, beta });
        const got = await engine.read(td);
        for (let i = 0; i < n; i++) {
          const what = `n=${n} beta=${beta} element ${i}: ${got[i]}`;
          if (i === 2 || i === 5) assert(Number.isNaN(got[i]), `${what}, expected NaN (pred ${pred[i]}, target ${target[i]})`);
          else assert(Math.abs(got[i] - gradRef([pred[i]], [target[i]], beta, 1)[0] / n) < 1e-6, `${what}, expected ${gradRef([pred[i]], [target[i]], beta, 1)[0] / n}`);
        }
        [tp, tt, tdl, td].forEach((t) => t.dispose());
      }
  });
});
