// Every kernel launched on a 2-D workgroup grid (wid.y·nwg.x + wid.x, idle groups past the end)
// gives the bits of its 1-D launch, which the kernel's own tests check against float64. Real
// launches go 2-D past 65535 workgroups (attention at batch ≥ 683, long elementwise ops); the
// lowered limit takes every kernel there with small shapes. Outputs start poisoned.
import { adamw, attentionBackward, attentionForward, binary, castF16ToF32, castF32ToF16, clipByNorm, emaUpdate, gatherRows, geluBackward, geluForward, layerNormBackward, layerNormForward, matmul, reduceAxis, smoothL1Backward, smoothL1Forward, softmaxBackward, softmaxForward, sumSquares } from '../../kernels/index.js';
import type { Engine } from '../../engine/index.js';
import { Rng } from '../../engine/random.js';
import { assert, getEngine, poisoned, randomArray } from '../helpers.js';
import { withGridLimit } from './norm-ref.js';

/** One case: runs kernels on inputs drawn from `rng` and returns the outputs read back. */
type Case = (engine: Engine, rng: Rng) => Promise<Float32Array[]>;

const N = 6151; // elementwise sizes: several workgroups, a vec4 tail

const CASES: Record<string, Case> = {
  'binary, gelu forward and backward': async (engine, rng) => {
    const a = engine.upload(randomArray(rng, N)), b = engine.upload(randomArray(rng, N));
    const sum = poisoned(engine, [N]), y = poisoned(engine, [N]), dx = poisoned(engine, [N]);
    binary(engine.batch, 'add', a.buffer, b.buffer, sum.buffer, N);
    geluForward(engine.batch, a.buffer, y.buffer, N);
    geluBackward(engine.batch, a.buffer, b.buffer, dx.buffer, N);
    return Promise.all([sum, y, dx].map((t) => engine.read(t)));
  },
  'cast f32 → f16 → f32': async (engine, rng) => {
    const x = engine.upload(randomArray(rng, N)), half = poisoned(engine, [Math.ceil(N / 2)]), back = poisoned(engine, [N]);
    castF32ToF16(engine.batch, x.buffer, half.buffer, N);
    castF16ToF32(engine.batch, half.buffer, back.buffer, N);
    return [await engine.read(back)];
  },
  'gatherRows': async (engine, rng) => {
    const rows = 300, dim = 13, srcRows = 50;
    const src = engine.upload(randomArray(rng, srcRows * dim));
    const idx = engine.upload(Uint32Array.from({ length: rows }, () => Math.floor(rng.next() * srcRows)), [rows], 'u32');
    const dst = poisoned(engine, [rows * dim]);
    gatherRows(engine.batch, src.buffer, idx.buffer, dst.buffer, { rows, dim, srcRows });
    return [await engine.read(dst)];
  },
  'smooth-L1 forward and backward': async (engine, rng) => {
    const p = engine.upload(randomArray(rng, N, 2)), t = engine.upload(randomArray(rng, N)), dl = engine.upload(new Float32Array([1.5]));
    const loss = poisoned(engine, [1]), dp = poisoned(engine, [N]);
    smoothL1Forward(engine.batch, p.buffer, t.buffer, loss.buffer, { n: N });
    smoothL1Backward(engine.batch, p.buffer, t.buffer, dl.buffer, dp.buffer, { n: N });
    return Promise.all([loss, dp].map((x) => engine.read(x)));
  },
  'AdamW, EMA, sum of squares, clip by norm': async (engine, rng) => {
    const sizes = [N, 77];
    const ts = sizes.map((n) => ({ param: engine.upload(randomArray(rng, n)), grad: engine.upload(randomArray(rng, n)), m: engine.upload(randomArray(rng, n, 0.1)), v: engine.upload(Float32Array.from(randomArray(rng, n), Math.abs)), n }));
    const sumsq = poisoned(engine, [1]);
    sumSquares(engine.batch, ts.map((t) => ({ x: t.grad.buffer, n: t.n })), sumsq.buffer);
    clipByNorm(engine.batch, ts[0].grad.buffer, sumsq.buffer, N, 1);
    adamw(engine.batch, ts.map((t, k) => ({ param: t.param.buffer, grad: t.grad.buffer, m: t.m.buffer, v: t.v.buffer, n: t.n, weightDecay: k ? 0 : 0.05 })), { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 3 });
    const teacher = engine.upload(randomArray(rng, N));
    emaUpdate(engine.batch, [{ teacher: teacher.buffer, student: ts[0].param.buffer, n: N }], 0.99);
    return Promise.all([sumsq, ...ts.flatMap((t) => [t.param, t.m, t.v]), teacher].map((x) => engine.read(x)));
  },
  'softmax, layerNorm and reduceAxis, forward and backward': async (engine, rng) => {
    const rows = 37, cols = 45;
    const x = engine.upload(randomArray(rng, rows * cols)), dy = engine.upload(randomArray(rng, rows * cols)), gamma = engine.upload(randomArray(rng, cols));
    const sm = poisoned(engine, [rows * cols]), dsm = poisoned(engine, [rows * cols]);
    softmaxForward(engine.batch, x.buffer, sm.buffer, { rows, cols });
    softmaxBackward(engine.batch, sm.buffer, dy.buffer, dsm.buffer, { rows, cols });
    const y = poisoned(engine, [rows * cols]), mean = poisoned(engine, [rows]), rstd = poisoned(engine, [rows]);
    const dx = poisoned(engine, [rows * cols]), dg = poisoned(engine, [cols]), db = poisoned(engine, [cols]);
    layerNormForward(engine.batch, { x: x.buffer, y: y.buffer, mean: mean.buffer, rstd: rstd.buffer, gamma: gamma.buffer }, { rows, dim: cols });
    layerNormBackward(engine.batch, { dy: dy.buffer, x: x.buffer, mean: mean.buffer, rstd: rstd.buffer, dx: dx.buffer, gamma: gamma.buffer, dgamma: dg.buffer, dbeta: db.buffer }, { rows, dim: cols });
    const big = engine.upload(randomArray(rng, 7 * 300 * 13)), red = poisoned(engine, [7 * 13]);
    reduceAxis(engine.batch, big.buffer, red.buffer, { outer: 7, reduce: 300, inner: 13 });
    return Promise.all([sm, dsm, y, mean, rstd, dx, dg, db, red].map((t) => engine.read(t)));
  },
  'CroPA attention over visible columns, forward and backward': async (engine, rng) => {
    const d = { B: 3, H: 2, Dh: 8, C: 3, V: 4, mask: 'cropa' as const };
    const n = d.B * d.C * d.V * d.H * d.Dh;
    const qkv = engine.upload(randomArray(rng, 3 * n)), dout = engine.upload(randomArray(rng, n));
    const out = poisoned(engine, [n]), lse = poisoned(engine, [d.B * d.H * d.C * d.V]), dqkv = poisoned(engine, [3 * n]);
    attentionForward(engine.batch, { qkv: qkv.buffer, out: out.buffer, lse: lse.buffer }, d);
    attentionBackward(engine.batch, { qkv: qkv.buffer, out: out.buffer, lse: lse.buffer, dout: dout.buffer, dqkv: dqkv.buffer }, d);
    return Promise.all([out, lse, dqkv].map((t) => engine.read(t)));
  },
  'matmul: tiles, and K split with its reduction': async (engine, rng) => {
    const M = 70, Nn = 90, K = 133;
    const a = engine.upload(randomArray(rng, M * K)), b = engine.upload(randomArray(rng, K * Nn)), bias = engine.upload(randomArray(rng, Nn));
    const c = poisoned(engine, [M * Nn]), c2 = poisoned(engine, [M * Nn]);
    matmul(engine.batch, { a: a.buffer, b: b.buffer, c: c.buffer, bias: bias.buffer }, { M, N: Nn, K, activation: 'gelu' }, { config: 'small', splitK: 1 });
    matmul(engine.batch, { a: a.buffer, b: b.buffer, c: c2.buffer }, { M, N: Nn, K }, { config: 'small', splitK: 3 });
    return Promise.all([c, c2].map((t) => engine.read(t)));
  },
};

describe('kernels: 2-D launch grid', function () {
  this.timeout(120_000);
  for (const [name, run] of Object.entries(CASES))
    it(`${name}: the bits of the 1-D launch`, async () => {
      const engine = await getEngine();
      const flat = await run(engine, new Rng(11));
      flat.forEach((o, k) => assert(o.every(Number.isFinite), `${name}: output ${k} of the 1-D launch is finite`));
      // A limit of 2 workgroups per dimension: every launch above has more, so each goes 2-D (but the
      // two-pass reductions' first pass of smooth-L1 and Σx², a bounded 1-D grid-stride launch).
      const tall = await withGridLimit(2, () => run(engine, new Rng(11)));
      flat.forEach((o, k) => {
        const bad = o.findIndex((v, i) => !Object.is(v, tall[k][i]));
        assert(bad < 0, `${name}: output ${k} differs at ${bad}: ${tall[k][bad]} on the 2-D grid, ${o[bad]} on the 1-D one`);
      });
    });
});
