import { adamw } from '../../kernels/adamw.js';
import { Rng } from '../../engine/random.js';
import { assert, getEngine, randomArray } from '../helpers.js';
import type { Tensor } from '../../engine/tensor.js';
import { bind, checkPadded, expectThrow, lossScaleState, MODES, padded, type Mode } from './map-helpers.js';

interface Hyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  gradScale?: number;
}

/** torch.optim.AdamW's update in float64, written from its documented algorithm. */
function adamwRef(p: Float64Array, m: Float64Array, v: Float64Array, grad: ArrayLike<number>, h: Hyper, t: number): void {
  const bc1 = 1 - h.beta1 ** t, bc2 = 1 - h.beta2 ** t;
  for (let i = 0; i < p.length; i++) {
    const g = grad[i] * (h.gradScale ?? 1);
    p[i] *= 1 - h.lr * h.weightDecay;
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * g;
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * g * g;
    const mHat = m[i] / bc1, vHat = v[i] / bc2;
    p[i] -= (h.lr * mHat) / (Math.sqrt(vHat) + h.eps);
  }
}

const CONFIGS: Hyper[] = [
  { lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
  { lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 },
  { lr: 0.02, beta1: 0.8, beta2: 0.95, eps: 1e-3, weightDecay: 0.05, gradScale: 0.25 },
];

async function run(n: number, mode: Mode, h: Hyper, seed: number, steps: number): Promise<void> {
  const engine = await getEngine();
  const rng = new Rng(seed);
  const p0 = randomArray(rng, n);
  const P = Float64Array.from(p0), M = new Float64Array(n), Vv = new Float64Array(n);
  const tp = padded(engine, p0, n), tm = padded(engine, new Float32Array(n), n), tv = padded(engine, new Float32Array(n), n);
  for (let t = 1; t <= steps; t++) {
    // some exact zeros: there the update is 0/(0 + eps) at step 1
    const g = randomArray(rng, n, 0.1).map((x, i) => (i % 7 === 3 ? 0 : x));
    const tg = engine.upload(g);
    adamw(engine.batch, [{ param: bind(tp, n, mode), grad: bind(tg, n, mode), m: bind(tm, n, mode), v: bind(tv, n, mode), n, weightDecay: h.weightDecay }], { ...h, step: t });
    adamwRef(P, M, Vv, g, h, t);
    tg.dispose();
    if (t === 1 || t === steps) {
      const what = `adamw ${mode} n=${n} wd=${h.weightDecay} gradScale=${h.gradScale ?? 1} step ${t}`;
      checkPadded(await engine.read(tp), P, n, 1e-5, `${what} param`);
      checkPadded(await engine.read(tm), M, n, 1e-5, `${what} m`);
      checkPadded(await engine.read(tv), Vv, n, 1e-5, `${what} v`);
    }
  }
  [tp, tm, tv].forEach((t) => t.dispose());
}

describe('kernels/adamw', () => {
  CONFIGS.forEach((h, k) =>
    it(`${k === 2 ? 'other betas, eps, gradScale' : `weight decay ${h.weightDecay}`}: 5 steps against float64 (bias correction)`, async () => {
      for (const mode of MODES) for (const n of [1, 3, 6, 257, 1031, 4099]) await run(n, mode, h, 50 + k * 10 + n, 5);
    }),
  );

  it('many tensors in one call: each its own size, weight decay and path, more than a dispatch takes; 3 steps against float64', async () => {
    const engine = await getEngine();
    const rng = new Rng(71);
    const base: Hyper = { lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
    const xs = [1, 3, 6, 257, 1031, 0, 4099, 8, 5, 13, 65].map((n, k) => {
      const p0 = randomArray(rng, n);
      const h = { ...base, weightDecay: k % 3 === 0 ? 0 : 0.05 * k };
      const mode = MODES[k % 2];
      return { n, h, mode, P: Float64Array.from(p0), M: new Float64Array(n), Vv: new Float64Array(n), tp: padded(engine, p0, n), tm: padded(engine, new Float32Array(n), n), tv: padded(engine, new Float32Array(n), n) };
    });
    for (let t = 1; t <= 3; t++) {
      const grads = xs.map((x) => randomArray(rng, x.n, 0.1));
      const tg = grads.map((g) => engine.upload(g.length ? g : new Float32Array(1)));
      const before = engine.batch.dispatches;
      adamw(engine.batch, xs.map((x, k) => ({ param: bind(x.tp, x.n, x.mode), grad: bind(tg[k], x.n, x.mode), m: bind(x.tm, x.n, x.mode), v: bind(x.tv, x.n, x.mode), n: x.n, weightDecay: x.h.weightDecay })), { ...base, step: t });
      const perDispatch = Math.min(8, Math.floor(engine.device.limits.maxStorageBuffersPerShaderStage / 4));
      assert(engine.batch.dispatches - before === Math.ceil((xs.length - 1) / perDispatch), `${engine.batch.dispatches - before} dispatches for ${xs.length - 1} tensors`);
      xs.forEach((x, k) => adamwRef(x.P, x.M, x.Vv, grads[k], x.h, t));
      tg.forEach((g) => g.dispose());
    }
    for (const [k, x] of xs.entries()) {
      const what = `tensor ${k} (${x.mode}, n=${x.n}, wd=${x.h.weightDecay})`;
      checkPadded(await engine.read(x.tp), x.P, x.n, 1e-5, `${what} param`);
      checkPadded(await engine.read(x.tm), x.M, x.n, 1e-5, `${what} m`);
      checkPadded(await engine.read(x.tv), x.Vv, x.n, 1e-5, `${what} v`);
      [x.tp, x.tm, x.tv].forEach((u) => u.dispose());
    }
  });

  it('a large learning rate makes the bias-corrected step visible in param: first step ≈ lr·sign(g)', async () => {
    // step 1: m̂ = g, v̂ = g², so the update is lr·g/(|g| + eps); a wrong t (e.g. 0-based) changes it by ~2×
    await run(4099, 'vec4', { lr: 0.5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 }, 99, 2);
  });

  it('with the loss-scale state: g = grad/scale; a skipped step changes nothing; the GPU step count wins over `step`', async () => {
    const engine = await getEngine();
    const h: Hyper = { lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 };
    for (const mode of MODES)
      for (const n of [1, 6, 257, 4099]) {
        const rng = new Rng(80 + n);
        const p0 = randomArray(rng, n);
        const P = Float64Array.from(p0), M = new Float64Array(n), Vv = new Float64Array(n);
        const tp = padded(engine, p0, n), tm = padded(engine, new Float32Array(n), n), tv = padded(engine, new Float32Array(n), n);
        const [go, skip] = [lossScaleState(engine, 1 / 1024, false), lossScaleState(engine, 1 / 1024, true)];
        const what = `adamw dynamic ${mode} n=${n}`;
        const step = async (g: Float32Array, state: Tensor, gpuStep: number, cpuStep: number) => {
          const tg = engine.upload(g), steps = engine.upload(Uint32Array.of(gpuStep), [1], 'u32');
          const bufs = { param: bind(tp, n, mode), grad: bind(tg, n, mode), m: bind(tm, n, mode), v: bind(tv, n, mode), n, weightDecay: h.weightDecay };
          adamw(engine.batch, [bufs], { ...h, step: cpuStep, lossScale: { state: state.buffer, steps: steps.buffer } });
          const out = await Promise.all([tp, tm, tv].map((t) => engine.read(t)));
          [tg, steps].forEach((t) => t.dispose());
          return out;
        };
        const check = (out: Float32Array[], t: number) =>
          [P, M, Vv].forEach((ref, k) => checkPadded(out[k], ref, n, 1e-5, `${what} step ${t} ${['param', 'm', 'v'][k]}`));
        // gradients computed times 1024 (exact): the update is that of g at t = 1
        const g1 = randomArray(rng, n, 0.1);
        adamwRef(P, M, Vv, g1, h, 1);
        const after1 = await step(g1.map((x) => x * 1024), go, 1, 1);
        check(after1, 1);
        // overflowed: p, m and v keep every bit
        const kept = await step(new Float32Array(n).fill(Infinity), skip, 1, 2);
        kept.forEach((a, k) => assert(a.every((x, i) => Object.is(x, after1[k][i])), `${what}: the skipped step changed ${['param', 'm', 'v'][k]}`));
        // the launcher assumed t = 3, but the skipped step was no update: the GPU's t = 2 is used
        const g3 = randomArray(rng, n, 0.1);
        adamwRef(P, M, Vv, g3, h, 2);
        check(await step(g3.map((x) => x * 1024), go, 2, 3), 2);
        [tp, tm, tv, go, skip].forEach((t) => t.dispose());
      }
    const a = engine.zeros([8]), b = engine.zeros([8]), c = engine.zeros([8]), d = engine.zeros([8]);
    const st = lossScaleState(engine, 1, false);
    const ls = { state: st.buffer, steps: a.buffer };
    const o = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 1 };
    const one = [{ param: a.buffer, grad: b.buffer, m: c.buffer, v: d.buffer, n: 8, weightDecay: 0 }];
    expectThrow(() => adamw(engine.batch, one, { ...o, gradScale: 0.5, lossScale: ls }), 'adamw: gradScale 0.5 with dynamic loss scaling');
    expectThrow(() => adamw(engine.batch, one, { ...o, lossScale: ls }), 'adamw: tensor 0 param must not share a buffer with lossScale.steps');
    [a, b, c, d, st].forEach((t) => t.dispose());
  });

  it('rejects a bad step and overlapping buffers, naming the kernel', async () => {
    const engine = await getEngine();
    const a = engine.zeros([8]), b = engine.zeros([8]), c = engine.zeros([8]);
    const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    const t = (m: GPUBuffer, v: GPUBuffer) => ({ param: a.buffer, grad: b.buffer, m, v, n: 8, weightDecay: 0 });
    expectThrow(() => adamw(engine.batch, [t(c.buffer, c.buffer)], { ...h, step: 1 }), 'adamw: tensor 0 m and tensor 0 v share memory');
    expectThrow(() => adamw(engine.batch, [t(c.buffer, a.buffer)], { ...h, step: 0 }), 'adamw: step must be an integer ≥ 1, got 0');
    // across the tensors of one dispatch: a gradient that is another tensor's parameter
    const [e, f, g, k] = [0, 1, 2, 3].map(() => engine.zeros([8]));
    expectThrow(() => adamw(engine.batch, [t(c.buffer, e.buffer), { param: f.buffer, grad: a.buffer, m: g.buffer, v: k.buffer, n: 8, weightDecay: 0 }], { ...h, step: 1 }), 'adamw: tensor 0 param must not share a buffer with tensor 1 grad');
    [e, f, g, k].forEach((x) => x.dispose());
    [a, b, c].forEach((t) => t.dispose());
  });
});
