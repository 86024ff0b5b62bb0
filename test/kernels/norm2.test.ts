import { sumSquares } from '../../kernels/norm2.js';
import { Rng } from '../../engine/random.js';
import { assert, assertClose, getEngine, poisoned, randomArray } from '../helpers.js';
import { bind, MODES, padded, SIZES, type Mode } from './map-helpers.js';

function ref(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s;
}

describe('kernels/norm2', () => {
  it('sumSquares: Σx² against float64, set and accumulate, grid-stride sizes', async () => {
    const engine = await getEngine();
    const rng = new Rng(41);
    // 1,100,003 floats on the scalar path need more than 1024 workgroups of 256: the grid-stride loop runs
    const cases: [Mode, number, boolean][] = [];
    for (const mode of MODES) for (const n of SIZES) for (const acc of [false, true]) cases.push([mode, n, acc]);
    cases.push(['scalar', 1_100_003, false]);
    for (const [mode, n, acc] of cases) {
      const x = randomArray(rng, n, 0.3);
      // SENTINEL past n: a whole-buffer (vec4) binding must not add it
      const tx = padded(engine, x, n), to = acc ? engine.upload([2.5]) : poisoned(engine, [1]);
      sumSquares(engine.batch, [{ x: bind(tx, n, mode), n }], to.buffer, acc);
      assertClose(await engine.read(to), [ref(x) + (acc ? 2.5 : 0)], 1e-5, `sumSquares ${mode} n=${n} acc=${acc}`);
      [tx, to].forEach((t) => t.dispose());
    }
  });

  it('sumSquares over many tensors into one total (grad-norm use): more than a pass takes, both paths, n = 0 included', async () => {
    const engine = await getEngine();
    const rng = new Rng(42);
    // 21 inputs: several passes (8 a pass at most), vec4 and scalar bindings mixed, empty ones skipped
    const xs = [7, 0, 4096, 31, ...SIZES, 2, 0, 6, 65, 300, 9, 4].map((n) => randomArray(rng, n, 0.3));
    const ts = xs.map((x) => engine.upload(x.length ? x : [123]));
    const inputs = xs.map((x, k) => ({ x: bind(ts[k], x.length, MODES[k % 2]), n: x.length }));
    const total = xs.reduce((s, x) => s + ref(x), 0);
    const out = poisoned(engine, [1]);
    const before = engine.batch.dispatches;
    sumSquares(engine.batch, inputs, out.buffer);
    const perPass = Math.min(8, engine.device.limits.maxStorageBuffersPerShaderStage - 1);
    assert(engine.batch.dispatches - before === 2 * Math.ceil(inputs.filter((q) => q.n > 0).length / perPass), `${engine.batch.dispatches - before} dispatches`);
    assertClose(await engine.read(out), [total], 1e-5, 'sum over tensors');
    sumSquares(engine.batch, inputs, out.buffer, true);
    assertClose(await engine.read(out), [2 * total], 1e-5, 'accumulated over all passes');
    sumSquares(engine.batch, [], out.buffer, true);
    assertClose(await engine.read(out), [2 * total], 1e-6, 'nothing to add keeps the total');
    sumSquares(engine.batch, [{ x: ts[1].buffer, n: 0 }], out.buffer);
    assertClose(await engine.read(out), [0], 1e-30, 'n = 0 gives 0');
    [...ts, out].forEach((t) => t.dispose());
  });
});
