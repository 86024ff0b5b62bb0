import { clipByNorm } from '../../kernels/clip.js';
import { lossScaleUpdate, LossScaleWord, type LossScaleRule } from '../../kernels/lossscale.js';
import { Rng } from '../../engine/random.js';
import { assert, getEngine, randomArray } from '../helpers.js';
import { checkPadded, expectThrow, lossScaleState, padded } from './map-helpers.js';

interface RefState {
  scale: number;
  invScale: number;
  skip: boolean;
  good: number;
  skipped: number;
  steps: number;
}

/** torch's _amp_update_scale_ (plus the skip flag, 1/scale and the applied-step count), in float64. */
function updateRef(s: RefState, sumsq: number, r: Required<LossScaleRule>): RefState {
  const invScale = Math.fround(1 / s.scale);
  if (!Number.isFinite(sumsq)) return { scale: Math.fround(s.scale * r.backoff), invScale, skip: true, good: 0, skipped: s.skipped + 1, steps: s.steps };
  const good = s.good + 1;
  if (good < r.interval) return { ...s, invScale, skip: false, good, steps: s.steps + 1 };
  const grown = Math.fround(s.scale * r.growth);
  return { scale: Number.isFinite(grown) ? grown : s.scale, invScale, skip: false, good: 0, skipped: s.skipped, steps: s.steps + 1 };
}

describe('kernels/lossscale', () => {
  it('lossScaleUpdate follows GradScaler: overflow (Inf, NaN, a sum past f32) skips and backs off, growth after `interval` good steps', async () => {
    const engine = await getEngine();
    const seqs: [number, Required<LossScaleRule>, number[]][] = [
      [1024, { growth: 2, backoff: 0.5, interval: 3 }, [1.5, 2, Infinity, 3, NaN, 4, 5, 6, 7, 8, 9, 3.4e38, -Infinity, 0, 1]],
      // growing past f32's range keeps the scale (and still resets the tracker)
      [2 ** 126, { growth: 4, backoff: 0.25, interval: 1 }, [1, 1, 1, Infinity, 1, Infinity]],
    ];
    for (const [init, rule, sums] of seqs) {
      let ref: RefState = { scale: init, invScale: NaN, skip: false, good: 0, skipped: 0, steps: 7 };
      const scale = engine.upload([init]);
      const state = lossScaleState(engine, NaN, false);
      const steps = engine.upload(Uint32Array.of(7), [1], 'u32');
      for (const [k, q] of sums.entries()) {
        const sumsq = engine.upload([q]);
        lossScaleUpdate(engine.batch, { sumsq: sumsq.buffer, scale: scale.buffer, state: state.buffer, steps: steps.buffer }, rule);
        ref = updateRef(ref, q, rule);
        const got = { s: (await engine.read(scale))[0], w: new Uint32Array(await engine.readRaw(state)), t: new Uint32Array(await engine.readRaw(steps))[0] };
        const inv = new Float32Array(got.w.buffer)[LossScaleWord.invScale];
        const what = `init ${init}, step ${k} (Σg² ${q})`;
        assert(got.s === ref.scale && inv === ref.invScale, `${what}: scale ${got.s} (want ${ref.scale}), 1/scale ${inv} (want ${ref.invScale})`);
        assert(got.w[LossScaleWord.skip] === (ref.skip ? 1 : 0) && got.w[LossScaleWord.good] === ref.good && got.w[LossScaleWord.skipped] === ref.skipped && got.t === ref.steps,
          `${what}: skip ${got.w[LossScaleWord.skip]} good ${got.w[LossScaleWord.good]} skipped ${got.w[LossScaleWord.skipped]} steps ${got.t}, want ${JSON.stringify(ref)}`);
        sumsq.dispose();
      }
      assert(ref.skipped > 0 && ref.scale !== init, 'the sequence exercises both branches');
      [scale, state, steps].forEach((t) => t.dispose());
    }
  });

  it('clipByNorm: g·min(1, maxNorm / (gradScale·‖g‖ + 1e-6)) against float64, clipped and not, values past n untouched', async () => {
    const engine = await getEngine();
    const rng = new Rng(72);
    for (const n of [1, 1031, 4099])
      for (const [gradScale, maxNorm] of [[1 / 8, 0.5], [1 / 8, 1e6], [1, 3]]) {
        const g = randomArray(rng, n, 3);
        let ss = 0;
        for (let i = 0; i < n; i++) ss += g[i] * g[i];
        const sumsq = engine.upload([ss]), t = padded(engine, g, n);
        clipByNorm(engine.batch, t.buffer, sumsq.buffer, n, maxNorm, gradScale);
        const f = Math.min(1, maxNorm / (gradScale * Math.sqrt(Math.fround(ss)) + 1e-6));
        checkPadded(await engine.read(t), Array.from(g, (v) => v * f), n, 1e-6, `clip n=${n} gradScale=${gradScale} maxNorm=${maxNorm} (factor ${f})`);
        [sumsq, t].forEach((x) => x.dispose());
      }
  });

  it('clipByNorm with the loss-scale state: the same as with the number 1/scale; a skipped step leaves the gradient', async () => {
    const engine = await getEngine();
    const rng = new Rng(71);
    const n = 1031;
    const g = randomArray(rng, n, 3);
    const sumsq = engine.upload([g.reduce((s, x) => s + x * x, 0)]);
    const a = padded(engine, g, n), b = padded(engine, g, n), c = padded(engine, g, n);
    const go = lossScaleState(engine, 1 / 8, false), skip = lossScaleState(engine, 1 / 8, true);
    clipByNorm(engine.batch, a.buffer, sumsq.buffer, n, 2, 1 / 8);
    clipByNorm(engine.batch, b.buffer, sumsq.buffer, n, 2, go.buffer);
    clipByNorm(engine.batch, c.buffer, sumsq.buffer, n, 2, skip.buffer);
    const [ra, rb, rc] = [await engine.read(a), await engine.read(b), await engine.read(c)];
    assert(ra.every((v, i) => v === rb[i]), 'state-driven clip differs from the numeric one');
    assert(ra.some((v, i) => i < n && v !== g[i]), 'the gradient was to be clipped');
    checkPadded(rc, g, n, 1e-30, 'skipped clip');
    expectThrow(() => clipByNorm(engine.batch, a.buffer, sumsq.buffer, n, 2, { buffer: sumsq.buffer, size: 4 }), 'clipByNorm: loss-scale state binding holds 4 bytes');
    [sumsq, a, b, c, go, skip].forEach((t) => t.dispose());
  });

  it('rejects bad rules and shared buffers, naming the kernel', async () => {
    const engine = await getEngine();
    const [q, s, st, t] = [engine.zeros([1]), engine.zeros([1]), lossScaleState(engine, 1, false), engine.zeros([1], 'u32')];
    const b = { sumsq: q.buffer, scale: s.buffer, state: st.buffer, steps: t.buffer };
    expectThrow(() => lossScaleUpdate(engine.batch, b, { backoff: 1 }), 'lossScaleUpdate: backoff must be in (0, 1)');
    expectThrow(() => lossScaleUpdate(engine.batch, b, { interval: 0 }), 'lossScaleUpdate: interval must be an integer ≥ 1');
    expectThrow(() => lossScaleUpdate(engine.batch, { ...b, steps: s.buffer }), 'lossScaleUpdate: scale and steps share memory');
    expectThrow(() => lossScaleUpdate(engine.batch, { ...b, state: { buffer: st.buffer, size: 8 } }), 'lossScaleUpdate: state binding holds 8 bytes, needs 16');
    [q, s, st, t].forEach((x) => x.dispose());
  });
});
