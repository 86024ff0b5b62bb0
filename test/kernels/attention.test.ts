import { attentionBackward, attentionForward, type AttentionDims, type AttentionKernelOptions, type AttentionMask } from '../../kernels/attention.js';
import { castF16ToF32, castF32ToF16 } from '../../kernels/cast.js';
import { KernelProfiler } from '../../kernels/profiler.js';
import { rowSubgroups } from '../../kernels/rows.js';
import { setGpuShaderFormForTests } from '../../kernels/runtime.js';
import { Rng } from '../../engine/random.js';
import type { Engine } from '../../engine/engine.js';
import { assert, assertClose, expectThrow, getEngine, poisoned, randomArray, relError } from '../helpers.js';
import { allowed, attentionReference as reference } from '../engine/reference.js';

async function gpuRun(engine: Engine, d: AttentionDims, qkv: Float32Array, dout: Float32Array, o: AttentionKernelOptions = {}) {
  const T = d.C * d.V, n = d.B * T * d.H * d.Dh;
  const tq = engine.upload(qkv), tg = engine.upload(dout);
  const out = poisoned(engine, [n]), lse = poisoned(engine, [d.B * d.H * T]), dqkv = poisoned(engine, [3 * n]);
  attentionForward(engine.batch, { qkv: tq.buffer, out: out.buffer, lse: lse.buffer }, d, o);
  attentionBackward(engine.batch, { qkv: tq.buffer, out: out.buffer, lse: lse.buffer, dout: tg.buffer, dqkv: dqkv.buffer }, d, o);
  const r = { out: await engine.read(out), lse: await engine.read(lse), dqkv: await engine.read(dqkv) };
  [tq, tg, out, lse, dqkv].forEach((t) => t.dispose());
  return r;
}

function inputs(rng: Rng, d: AttentionDims) {
  const n = d.B * d.C * d.V * d.H * d.Dh;
  return { qkv: randomArray(rng, 3 * n), dout: randomArray(rng, n) };
}

const name = (d: AttentionDims) => `B${d.B} H${d.H} C${d.C} V${d.V} Dh${d.Dh}${d.scale !== undefined ? ` scale ${d.scale}` : ''}`;

// ECG-JEPA reference §2, the hand-worked 3 leads × 4 columns CroPA matrix.
const CROPA_3x4 = [
  '111110001000',
  '111101000100',
  '111100100010',
  '111100010001',
  '100011111000',
  '010011110100',
  '001011110010',
  '000111110001',
  '100010001111',
  '010001001111',
  '001000101111',
  '000100011111',
];

describe('kernels/attention', () => {
  it('the mask rule reproduces the hand-worked 3×4 CroPA matrix (and its t1,t2-masked 6×6 sub-matrix)', () => {
    for (let i = 0; i < 12; i++)
      for (let j = 0; j < 12; j++)
        assert(allowed('cropa', 4, i, j) === (CROPA_3x4[i][j] === '1'), `cropa rule (${i},${j}) differs from the worked matrix`);
    // Student view with columns t0, t3 visible: 3 leads × 2 columns, same rule on the new indices.
    const keep = [0, 3, 4, 7, 8, 11];
    for (let i = 0; i < 6; i++)
      for (let j = 0; j < 6; j++) assert(allowed('cropa', 2, i, j) === (CROPA_3x4[keep[i]][keep[j]] === '1'), `6×6 sub-matrix (${i},${j})`);
  });

  // q = 0 makes attention uniform over the visited keys, and v_j = e_j makes out_i their indicator:
  // each query's attended set read back from the GPU must equal the matrix row.
  for (const [mask, C, V, keep] of [
    ['cropa', 3, 4, [...Array(12).keys()]],
    ['cropa', 3, 2, [0, 3, 4, 7, 8, 11]],
    ['lead', 3, 4, [...Array(12).keys()]],
    ['none', 3, 4, [...Array(12).keys()]],
  ] as [AttentionMask, number, number, number[]][]) {
    it(`${mask}, ${C} leads × ${V} columns: each query's attended set on the GPU equals the matrix row`, async () => {
      const engine = await getEngine();
      const T = C * V, Dh = 16;
      const d: AttentionDims = { B: 1, H: 1, Dh, C, V, mask };
      const qkv = new Float32Array(T * 3 * Dh);
      const rng = new Rng(3);
      for (let t = 0; t < T; t++) {
        for (let e = 0; e < Dh; e++) qkv[t * 3 * Dh + Dh + e] = rng.normal();
        qkv[t * 3 * Dh + 2 * Dh + t] = 1;
      }
      const tq = engine.upload(qkv), out = poisoned(engine, [T * Dh]), lse = poisoned(engine, [T]);
      attentionForward(engine.batch, { qkv: tq.buffer, out: out.buffer, lse: lse.buffer }, d);
      const o = await engine.read(out), l = await engine.read(lse);
      [tq, out, lse].forEach((t) => t.dispose());
      for (let i = 0; i < T; i++) {
        const row = keep.map((kj) => {
          const m = CROPA_3x4[keep[i]][kj] === '1';
          return mask === 'cropa' ? m : mask === 'lead' ? Math.floor(keep[i] / 4) === Math.floor(kj / 4) : true;
        });
        const count = row.filter(Boolean).length;
        for (let j = 0; j < Dh; j++) {
          const want = j < T && row[j] ? 1 : 0;
          assert(Math.abs(o[i * Dh + j] * count - want) < 1e-5, `${mask} query ${i} key ${j}: got weight ${o[i * Dh + j]}, want ${want}/${count}`);
        }
        assert(Math.abs(l[i] - Math.log(count)) < 1e-5, `${mask} query ${i}: lse ${l[i]}, want log ${count}`);
      }
    });
  }

  it('the float64 reference backward matches finite differences of sum(out·dout)', () => {
    const rng = new Rng(11);
    for (const mask of ['cropa', 'lead', 'none'] as AttentionMask[]) {
      const d: AttentionDims = { B: 2, H: 2, Dh: 3, C: 3, V: 3, mask, scale: 0.7 };
      const { qkv, dout } = inputs(rng, d);
      const x = Float64Array.from(qkv);
      const loss = () => reference(x, d).out.reduce((s, o, i) => s + o * dout[i], 0);
      const grad = reference(x, d, dout).dqkv;
      const fd = new Float64Array(x.length);
      const eps = 1e-5;
      for (let i = 0; i < x.length; i++) {
        const x0 = x[i];
        x[i] = x0 + eps;
        const up = loss();
        x[i] = x0 - eps;
        fd[i] = (up - loss()) / (2 * eps);
        x[i] = x0;
      }
      const e = relError(grad, fd);
      assert(e < 1e-8, `${mask}: reference gradient vs finite differences, relative error ${e}`);
    }
  });

  // Shapes share (mask, Dh, workgroup size) where they can: each new combination is three shader
  // compiles, which dominate the run time under SwiftShader.
  const shapes: AttentionDims[] = [
    { mask: 'cropa', B: 2, H: 3, C: 3, V: 7, Dh: 16 },
    { mask: 'cropa', B: 1, H: 2, C: 8, V: 4, Dh: 48 },
    { mask: 'cropa', B: 3, H: 1, C: 1, V: 7, Dh: 16 },
    { mask: 'cropa', B: 1, H: 1, C: 8, V: 50, Dh: 48 }, // the full grid: 57 of 400 keys, two key tiles
    { mask: 'cropa', B: 2, H: 1, C: 3, V: 40, Dh: 5, scale: 0.3 }, // Dh not a multiple of 4
    { mask: 'lead', B: 2, H: 2, C: 3, V: 7, Dh: 16 },
    { mask: 'lead', B: 1, H: 3, C: 8, V: 1, Dh: 16 },
    { mask: 'lead', B: 1, H: 1, C: 3, V: 70, Dh: 8 }, // two query chunks, three key tiles
    { mask: 'none', B: 2, H: 3, C: 1, V: 50, Dh: 32 }, // the predictor
    { mask: 'none', B: 3, H: 1, C: 3, V: 4, Dh: 16 },
    { mask: 'none', B: 1, H: 2, C: 1, V: 70, Dh: 128 },
  ];
  async function check(d: AttentionDims, o: AttentionKernelOptions = {}) {
    const engine = await getEngine();
    const rng = new Rng(d.B * 1000 + d.V * 10 + d.Dh);
    const { qkv, dout } = inputs(rng, d);
    const got = await gpuRun(engine, d, qkv, dout, o);
    const ref = reference(qkv, d, dout);
    const what = `${d.mask} ${name(d)}${o.lanes ? ` lanes ${o.lanes}` : ''}`;
    assertClose(got.out, ref.out, 1e-5, `${what} out`);
    assertClose(got.lse, ref.lse, 1e-5, `${what} lse`);
    assertClose(got.dqkv, ref.dqkv, 1e-5, `${what} dqkv`);
  }
  for (const d of shapes) it(`${d.mask} ${name(d)}: out, lse and dqkv against the float64 reference`, () => check(d));

  it('the GPU form (loops with constant bounds) on a CPU adapter too: CroPA column keys, vec4 and scalar head vectors, several key tiles', async () => {
    // CPU adapters otherwise compile the form whose loop bounds come from the uniform block
    const old = setGpuShaderFormForTests(true);
    try {
      await check({ mask: 'cropa', B: 1, H: 2, C: 3, V: 40, Dh: 5 });
      await check({ mask: 'cropa', B: 1, H: 2, C: 3, V: 40, Dh: 8 }, { lanes: 1 }); // what GPUs without subgroups run
      await check({ mask: 'lead', B: 1, H: 1, C: 2, V: 70, Dh: 4 });
    } finally {
      setGpuShaderFormForTests(old);
    }
  });

  it('1, 2 or 4 lanes per query (per key in the backward\'s second pass; dot products summed over a subgroup): out, lse and dqkv against float64; the variants run where the row kernels use subgroups', async () => {
    const engine = await getEngine();
    // 4 lanes on the model's shapes, 2 on the student's and on scalar head vectors (two vec4s: 4 lanes
    // would fall back to 1); 1, which GPUs without subgroups take
    const cases: [AttentionDims, 1 | 2 | 4][] = [
      [{ mask: 'cropa', B: 1, H: 1, C: 8, V: 50, Dh: 48 }, 4], // the full grid, two key tiles
      [{ mask: 'cropa', B: 1, H: 2, C: 8, V: 50, Dh: 48 }, 1],
      [{ mask: 'lead', B: 1, H: 1, C: 3, V: 20, Dh: 5 }, 1], // scalar head vectors
      [{ mask: 'cropa', B: 2, H: 2, C: 8, V: 18, Dh: 48 }, 2], // the student's 18 columns: 32 queries a workgroup, tiles loaded in several rounds
      [{ mask: 'lead', B: 1, H: 1, C: 3, V: 70, Dh: 16 }, 4], // two query chunks
      [{ mask: 'none', B: 2, H: 3, C: 1, V: 50, Dh: 32 }, 4],
      [{ mask: 'cropa', B: 2, H: 1, C: 3, V: 40, Dh: 5, scale: 0.3 }, 2],
    ];
    for (const [d, lanes] of cases) await check(d, { lanes });
    const old = setGpuShaderFormForTests(true);
    try {
      await check({ mask: 'cropa', B: 1, H: 2, C: 3, V: 40, Dh: 48 }, { lanes: 4 }); // the model's head size
    } finally {
      setGpuShaderFormForTests(old);
    }
    if (!rowSubgroups(engine.device) || !engine.device.features.has('timestamp-query')) return;
    // the pipelines that ran, by the profiler's labels
    const d: AttentionDims = { mask: 'cropa', B: 1, H: 1, C: 3, V: 4, Dh: 16 };
    const n = 3 * 4 * 16;
    const [qkv, out, lse, dout, dqkv] = [engine.empty([3 * n]), engine.empty([n]), engine.empty([12]), engine.empty([n]), engine.empty([3 * n])];
    const prof = (engine.batch.profiler = new KernelProfiler(engine.device));
    attentionForward(engine.batch, { qkv: qkv.buffer, out: out.buffer, lse: lse.buffer }, d, { lanes: 4 });
    attentionBackward(engine.batch, { qkv: qkv.buffer, out: out.buffer, lse: lse.buffer, dout: dout.buffer, dqkv: dqkv.buffer }, d, { lanes: 4 });
    engine.batch.submit();
    engine.batch.profiler = null;
    const labels = (await prof.results()).map((k) => k.kernel);
    prof.destroy();
    [qkv, out, lse, dout, dqkv].forEach((t) => t.dispose());
    for (const pass of ['fwd', 'bwdq', 'bwdkv']) assert(labels.some((l) => new RegExp(`^attention_${pass}_cropa_.*_l4`).test(l)), `${pass} ran with 4 lanes: ${labels}`);
  });

  it('an f16 output (for an f16 reader): the forward writes the bits of the f32 output cast, the backward reading them gives the f32 backward\'s bits on their values; 1, 2 and 4 lanes, the GPU form (its unrolled store) too; a head size not a multiple of 4 refused', async () => {
    const engine = await getEngine();
    const rng = new Rng(77);
    const cases: [AttentionDims, 1 | 2 | 4, boolean][] = [
      [{ mask: 'cropa', B: 1, H: 2, C: 3, V: 9, Dh: 16 }, 1, false],
      [{ mask: 'cropa', B: 1, H: 1, C: 8, V: 50, Dh: 48 }, 4, false],
      [{ mask: 'cropa', B: 1, H: 2, C: 3, V: 9, Dh: 16 }, 1, true],
      [{ mask: 'cropa', B: 1, H: 1, C: 4, V: 20, Dh: 48 }, 2, true],
      [{ mask: 'cropa', B: 1, H: 1, C: 4, V: 20, Dh: 48 }, 4, true],
    ];
    for (const [d, lanes, gpuForm] of cases) {
      const old = setGpuShaderFormForTests(gpuForm);
      try {
        await f16Case(d, lanes);
      } finally {
        setGpuShaderFormForTests(old);
      }
    }
    async function f16Case(d: AttentionDims, lanes: 1 | 2 | 4) {
      const T = d.C * d.V, n = d.B * T * d.H * d.Dh;
      const qkv = engine.upload(inputs(rng, d).qkv);
      const o32 = poisoned(engine, [n]), o16 = engine.upload(new Uint16Array(n).fill(0x7e00), [n], 'f16'), cast = engine.empty([n], 'f16');
      const lse = [0, 1].map(() => poisoned(engine, [d.B * d.H * T]));
      attentionForward(engine.batch, { qkv: qkv.buffer, out: o32.buffer, lse: lse[0].buffer }, d, { lanes });
      attentionForward(engine.batch, { qkv: qkv.buffer, out: o16.buffer, lse: lse[1].buffer }, d, { lanes, output: 'f16' });
      castF32ToF16(engine.batch, o32.buffer, cast.buffer, n);
      const [a, b] = [await engine.readRaw(o16), await engine.readRaw(cast)].map((r) => new Uint16Array(r, 0, n));
      const bad = a.findIndex((v, i) => v !== b[i]);
      assert(bad < 0, `${name(d)} lanes ${lanes}: f16 out element ${bad} is ${a[bad]?.toString(16)}, the cast gives ${b[bad]?.toString(16)}`);
      assert((await engine.read(lse[0])).join() === (await engine.read(lse[1])).join(), 'the same lse');
      // the backward reads out only for D = rowsum(dout·out): from the halves as from their f32 values
      const dout = engine.upload(inputs(rng, d).dout), up = engine.empty([n]);
      castF16ToF32(engine.batch, o16.buffer, up.buffer, n);
      const dqkv = [0, 1].map(() => poisoned(engine, [3 * n]));
      attentionBackward(engine.batch, { qkv: qkv.buffer, out: up.buffer, lse: lse[0].buffer, dout: dout.buffer, dqkv: dqkv[0].buffer }, d, { lanes });
      attentionBackward(engine.batch, { qkv: qkv.buffer, out: o16.buffer, lse: lse[0].buffer, dout: dout.buffer, dqkv: dqkv[1].buffer }, d, { lanes, output: 'f16' });
      const [g32, g16] = [await engine.read(dqkv[0]), await engine.read(dqkv[1])];
      assert(g32.every(Number.isFinite), 'every dqkv written');
      const off = g16.findIndex((v, i) => !Object.is(v, g32[i]));
      assert(off < 0, `${name(d)} lanes ${lanes}: dqkv[${off}] from the halves is ${g16[off]}, from their f32 values ${g32[off]}`);
      [qkv, o32, o16, cast, ...lse, dout, up, ...dqkv].forEach((t) => t.dispose());
    }
    const t = engine.empty([4096]);
    let msg = '';
    try {
      attentionForward(engine.batch, { qkv: t.buffer, out: t.buffer, lse: t.buffer }, { mask: 'cropa', B: 1, H: 1, C: 2, V: 3, Dh: 5 }, { output: 'f16' });
    } catch (e) {
      msg = (e as Error).message;
    }
    t.dispose();
    assert(/attentionForward: an f16 output needs Dh a multiple of 4/.test(msg), `expected a clear error, got '${msg}'`);
  });

  it('an f16 qkv (an f16 Linear\'s output): out, lse and dqkv are the f32 kernels\' bits on its values, with an f32 or an f16 output; 1, 2 and 4 lanes, the GPU form too; refused with a head size not a multiple of 4 or a qkv too small for its halves', async function () {
    const engine = await getEngine();
    if (!engine.device.features.has('shader-f16')) this.skip(); // the kernels read the halves natively
    const rng = new Rng(78);
    const cases: [AttentionDims, 1 | 2 | 4, boolean][] = [
      [{ mask: 'cropa', B: 2, H: 2, C: 3, V: 9, Dh: 16 }, 1, false],
      [{ mask: 'cropa', B: 1, H: 1, C: 8, V: 50, Dh: 48 }, 4, false], // the full grid, two key tiles
      [{ mask: 'none', B: 2, H: 3, C: 1, V: 50, Dh: 32 }, 2, false], // the predictor
      [{ mask: 'lead', B: 1, H: 1, C: 3, V: 70, Dh: 8, scale: 0.3 }, 1, true],
      [{ mask: 'cropa', B: 1, H: 1, C: 4, V: 20, Dh: 48 }, 2, true],
    ];
    for (const [d, lanes, gpuForm] of cases) {
      const old = setGpuShaderFormForTests(gpuForm);
      try {
        for (const output of ['f32', 'f16'] as const) await halfInputCase(d, lanes, output);
      } finally {
        setGpuShaderFormForTests(old);
      }
    }
    async function halfInputCase(d: AttentionDims, lanes: 1 | 2 | 4, output: 'f32' | 'f16') {
      const T = d.C * d.V, n = d.B * T * d.H * d.Dh;
      const { qkv: data, dout: g } = inputs(rng, d);
      const f32 = engine.upload(data), half = engine.empty([3 * n], 'f16'), wide = engine.empty([3 * n]), dout = engine.upload(g);
      castF32ToF16(engine.batch, f32.buffer, half.buffer, 3 * n);
      castF16ToF32(engine.batch, half.buffer, wide.buffer, 3 * n);
      const outs = [0, 1].map(() => (output === 'f16' ? engine.upload(new Uint16Array(n).fill(0x7e00), [n], 'f16') : poisoned(engine, [n])));
      const lse = [0, 1].map(() => poisoned(engine, [d.B * d.H * T]));
      const dqkv = [0, 1].map(() => poisoned(engine, [3 * n]));
      [wide, half].forEach((qkv, i) => {
        const o = { lanes, output, input: i ? 'f16' : 'f32' } as const;
        attentionForward(engine.batch, { qkv: qkv.buffer, out: outs[i].buffer, lse: lse[i].buffer }, d, o);
        attentionBackward(engine.batch, { qkv: qkv.buffer, out: outs[i].buffer, lse: lse[i].buffer, dout: dout.buffer, dqkv: dqkv[i].buffer }, d, o);
      });
      const what = `${name(d)} lanes ${lanes} ${output} output`;
      const bits = async (t: typeof f32) => new Uint32Array(await engine.readRaw(t));
      for (const [label, [a, b]] of [['out', outs], ['lse', lse], ['dqkv', dqkv]] as const) {
        const [x, y] = [await bits(a), await bits(b)];
        const bad = x.findIndex((v, i) => v !== y[i]);
        assert(bad < 0, `${what}: ${label} word ${bad} from the f16 qkv is ${y[bad]?.toString(16)}, from its f32 values ${x[bad]?.toString(16)}`);
      }
      assert((await engine.read(dqkv[1])).every(Number.isFinite), `${what}: every dqkv written`);
      [f32, half, wide, dout, ...outs, ...lse, ...dqkv].forEach((t) => t.dispose());
    }
    const t = engine.empty([4096]);
    expectThrow(() => attentionForward(engine.batch, { qkv: t.buffer, out: t.buffer, lse: t.buffer }, { mask: 'cropa', B: 1, H: 1, C: 2, V: 3, Dh: 6 }, { input: 'f16' }), /attentionForward: an f16 input needs Dh a multiple of 4/);
    // 3·T·H·Dh = 3·6·2·32 halves fit 2304 bytes, not as f32
    const small = { buffer: t.buffer, size: 2304 };
    expectThrow(() => attentionBackward(engine.batch, { qkv: small, out: t.buffer, lse: t.buffer, dout: t.buffer, dqkv: t.buffer }, { mask: 'lead', B: 1, H: 2, C: 2, V: 3, Dh: 32 }, { input: 'f32' }), /attentionBackward: qkv binds 2304 bytes, needs 4608 \(1152 f32/);
    expectThrow(() => attentionForward(engine.batch, { qkv: t.buffer, out: t.buffer, lse: t.buffer }, { mask: 'lead', B: 1, H: 2, C: 2, V: 3, Dh: 32 }, { input: 'bf16' as 'f16' }), /attentionForward: input must be 'f32' or 'f16', got 'bf16'/);
    t.dispose();
  });

  it('the gradients of f16 activations: an f16 dout is read as its values, an f16 dqkv holds the f32 dqkv cast, bit for bit; with an f16 out, and an f16 qkv where the adapter reads one; 1, 2 and 4 lanes, the GPU form (its unrolled stores) too; a head size not a multiple of 4 or a dqkv too small for its halves refused', async () => {
    const engine = await getEngine();
    const rng = new Rng(79);
    const f16In = engine.device.features.has('shader-f16');
    // [dims, lanes, the GPU form, f16 qkv and out]
    const cases: [AttentionDims, 1 | 2 | 4, boolean, boolean][] = [
      [{ mask: 'cropa', B: 2, H: 2, C: 3, V: 9, Dh: 16 }, 1, false, false],
      [{ mask: 'cropa', B: 1, H: 1, C: 8, V: 50, Dh: 48 }, 4, false, true],
      [{ mask: 'none', B: 2, H: 3, C: 1, V: 50, Dh: 32 }, 2, false, true],
      [{ mask: 'lead', B: 1, H: 1, C: 3, V: 70, Dh: 8, scale: 0.3 }, 1, true, false],
      [{ mask: 'cropa', B: 1, H: 2, C: 4, V: 20, Dh: 48 }, 2, true, true],
      [{ mask: 'cropa', B: 1, H: 1, C: 4, V: 20, Dh: 48 }, 4, true, false],
    ];
    for (const [d, lanes, gpuForm, halfActs] of cases) {
      const old = setGpuShaderFormForTests(gpuForm);
      try {
        await halfGradCase(d, lanes, halfActs && f16In);
      } finally {
        setGpuShaderFormForTests(old);
      }
    }
    /** halfActs: qkv and out f16 too, as in the model's f16 blocks. */
    async function halfGradCase(d: AttentionDims, lanes: 1 | 2 | 4, halfActs: boolean) {
      const T = d.C * d.V, n = d.B * T * d.H * d.Dh;
      const { qkv: data, dout: g } = inputs(rng, d);
      const halves = (t: { buffer: GPUBuffer; size: number }) => {
        const h = engine.empty([t.size], 'f16');
        castF32ToF16(engine.batch, t.buffer, h.buffer, t.size);
        castF16ToF32(engine.batch, h.buffer, t.buffer, t.size);
        return h;
      };
      const qkv32 = engine.upload(data), dout32 = engine.upload(g);
      const [qkv16, dout16] = [halves(qkv32), halves(dout32)]; // the f32 tensors now hold the halves' values
      const acts = { input: halfActs ? 'f16' : 'f32', output: halfActs ? 'f16' : 'f32' } as const;
      const qkv = halfActs ? qkv16 : qkv32;
      const out = halfActs ? engine.empty([n], 'f16') : poisoned(engine, [n]), lse = poisoned(engine, [d.B * d.H * T]);
      attentionForward(engine.batch, { qkv: qkv.buffer, out: out.buffer, lse: lse.buffer }, d, { lanes, ...acts });
      const backward = (dout: typeof qkv, dqkv: typeof qkv, types: { dout: 'f32' | 'f16'; dqkv: 'f32' | 'f16' }) =>
        attentionBackward(engine.batch, { qkv: qkv.buffer, out: out.buffer, lse: lse.buffer, dout: dout.buffer, dqkv: dqkv.buffer }, d, { lanes, ...acts, ...types });
      const ref32 = poisoned(engine, [3 * n]), ref16 = engine.empty([3 * n], 'f16');
      backward(dout32, ref32, { dout: 'f32', dqkv: 'f32' });
      castF32ToF16(engine.batch, ref32.buffer, ref16.buffer, 3 * n);
      const poison16 = () => engine.upload(new Uint16Array(3 * n).fill(0x7e00), [3 * n], 'f16');
      const got = { f16dout: poisoned(engine, [3 * n]), both: poison16(), f16dqkv: poison16() };
      backward(dout16, got.f16dout, { dout: 'f16', dqkv: 'f32' });
      backward(dout16, got.both, { dout: 'f16', dqkv: 'f16' });
      backward(dout32, got.f16dqkv, { dout: 'f32', dqkv: 'f16' });
      const what = `${name(d)} lanes ${lanes}${halfActs ? ', f16 qkv and out' : ''}`;
      const words = async (t: typeof qkv) => new Uint32Array(await engine.readRaw(t));
      const [want32, want16] = [await words(ref32), await words(ref16)];
      for (const [label, t, want] of [['f16 dout', got.f16dout, want32], ['f16 dout and dqkv', got.both, want16], ['f16 dqkv', got.f16dqkv, want16]] as const) {
        const have = await words(t);
        const bad = want.findIndex((v, i) => v !== have[i]);
        assert(bad < 0, `${what}, ${label}: dqkv word ${bad} is ${have[bad]?.toString(16)}, expected ${want[bad]?.toString(16)}`);
      }
      assert((await engine.read(ref32)).every(Number.isFinite), `${what}: every dqkv written`);
      [qkv32, dout32, qkv16, dout16, out, lse, ref32, ref16, ...Object.values(got)].forEach((t) => t.dispose());
    }
    const t = engine.empty([4096]);
    const dims = { mask: 'lead', B: 1, H: 2, C: 2, V: 3, Dh: 32 } as const;
    expectThrow(() => attentionBackward(engine.batch, { qkv: t.buffer, out: t.buffer, lse: t.buffer, dout: t.buffer, dqkv: t.buffer }, { ...dims, Dh: 6 }, { dqkv: 'f16' }), /attentionBackward: an f16 dqkv needs Dh a multiple of 4/);
    expectThrow(() => attentionBackward(engine.batch, { qkv: t.buffer, out: t.buffer, lse: t.buffer, dout: t.buffer, dqkv: t.buffer }, { ...dims, Dh: 6 }, { dout: 'f16' }), /attentionBackward: an f16 dout needs Dh a multiple of 4/);
    // 3·T·H·Dh = 1152 halves need 2304 bytes
    const small = { buffer: t.buffer, size: 2300 };
    expectThrow(() => attentionBackward(engine.batch, { qkv: t.buffer, out: t.buffer, lse: t.buffer, dout: t.buffer, dqkv: small }, dims, { dqkv: 'f16' }), /attentionBackward: dqkv binds 2300 bytes, needs 2304 \(1152 f16/);
    t.dispose();
  });

  it('two backwards of different sizes in one batch (shared D scratch grows) are both right', async () => {
    const engine = await getEngine();
    const rng = new Rng(5);
    const runs = [
      { mask: 'cropa', B: 1, H: 1, C: 3, V: 4, Dh: 16 },
      { mask: 'cropa', B: 3, H: 3, C: 8, V: 7, Dh: 16 },
    ].map((d) => ({ d: d as AttentionDims, ...inputs(rng, d as AttentionDims) }));
    const held = runs.map(({ d, qkv, dout }) => {
      const n = d.B * d.C * d.V * d.H * d.Dh;
      const t = { qkv: engine.upload(qkv), dout: engine.upload(dout), out: engine.empty([n]), lse: engine.empty([d.B * d.H * d.C * d.V]), dqkv: poisoned(engine, [3 * n]) };
      attentionForward(engine.batch, { qkv: t.qkv.buffer, out: t.out.buffer, lse: t.lse.buffer }, d);
      attentionBackward(engine.batch, { qkv: t.qkv.buffer, out: t.out.buffer, lse: t.lse.buffer, dout: t.dout.buffer, dqkv: t.dqkv.buffer }, d);
      return t;
    });
    for (let i = 0; i < runs.length; i++) {
      const got = await engine.read(held[i].dqkv);
      assertClose(got, reference(runs[i].qkv, runs[i].d, runs[i].dout).dqkv, 1e-5, `run ${i} dqkv`);
      Object.values(held[i]).forEach((t) => t.dispose());
    }
  });

  it('rejects bad sizes with errors that name the kernel and the sizes', async () => {
    const engine = await getEngine();
    const b = engine.device.createBuffer({ size: 64, usage: GPUBufferUsage.STORAGE });
    const expectThrow = (f: () => void, pattern: RegExp) => {
      let msg = '';
      try {
        f();
      } catch (e) {
        msg = (e as Error).message;
      }
      assert(pattern.test(msg), `expected an error matching ${pattern}, got '${msg}'`);
    };
    expectThrow(() => attentionForward(engine.batch, { qkv: b, out: b, lse: b }, { B: 1, H: 1, Dh: 129, C: 1, V: 1, mask: 'none' }), /attentionForward: Dh 129 .*B=1 H=1 Dh=129/);
    expectThrow(() => attentionForward(engine.batch, { qkv: b, out: b, lse: b }, { B: 2, H: 2, Dh: 8, C: 3, V: 4, mask: 'cropa' }), /attentionForward: qkv binds \d+ bytes, needs 4608/);
    expectThrow(() => attentionBackward(engine.batch, { qkv: b, out: b, lse: b, dout: b, dqkv: b }, { B: 1, H: 1, Dh: 8, C: 0, V: 4, mask: 'lead' }), /attentionBackward: C must be a positive integer/);
    b.destroy();
  });
});
