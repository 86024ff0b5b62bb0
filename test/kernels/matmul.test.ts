import {
  checkSubgroupMatrix,
  matmul,
  matmulConfigs,
  matmulPlan,
  matmulSpecFits,
  matmulTuneTimes,
  plainHalfOutputSlower,
  setMatmulStreamK,
  setSubgroupEpilogue,
  SUBGROUP_CONFIGS,
  subgroupMatrixSource,
  subgroupMatrixSpelling,
  subgroupStagedBytes,
  tuneMatmul,
  tuneSettled,
  TUNE_ROUNDS,
  MATMUL_TILES,
  type MatmulBuffers,
  type MatmulConfigName,
  type MatmulDims,
  type MatmulKernelSpec,
  type MatmulOptions,
  type StreamKSetting,
  type MatmulTileName,
  type SubgroupConfigName,
  type SubgroupEpilogue,
  type SubgroupSpec,
  type TileSpec,
} from '../../kernels/matmul.js';
import { isCpuAdapter, setGpuShaderFormForTests } from '../../kernels/runtime.js';
import { emulatedSubgroupKernel, emulateSubgroupMatrix } from './subgroup-emulation.js';
import { Rng } from '../../engine/random.js';
import type { Engine } from '../../engine/engine.js';
import type { Tensor } from '../../engine/tensor.js';
import { assert, assertClose, expectThrow, getEngine, randomArray } from '../helpers.js';
import { erf } from '../engine/reference.js';
import { geluForward } from '../../kernels/gelu.js';

// ---- float64 reference --------------------------------------------------------------------------

const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
const geluSlope = (x: number) => 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);

interface Case extends MatmulDims {
  config?: MatmulConfigName | MatmulKernelSpec;
  splitK?: number;
  epilogue?: SubgroupEpilogue;
  streamK?: number;
  f16?: boolean;
  bias?: boolean;
  residual?: boolean;
  preact?: boolean;
  /** Input scale (keeps GELU inputs in its curved range). */
  scale?: number;
}

function reference(c: Case, a: ArrayLike<number>, b: ArrayLike<number>, extra: { bias?: Float32Array; residual?: Float32Array; c0?: Float32Array }) {
  const { M, N, K } = c;
  const batch = c.batch ?? 1;
  const sA = c.strideA ?? M * K, sB = c.strideB ?? K * N, sC = c.strideC ?? M * N;
  const span = (batch - 1) * sC + M * N;
  const out = new Float64Array(span).fill(NaN), pre = new Float64Array(span).fill(NaN);
  for (let z = 0; z < batch; z++)
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = a[z * sA + (c.transA ? k * M + m : m * K + k)];
          const bv = b[z * sB + (c.transB ? n * K + k : k * N + n)];
          s += av * bv;
        }
        const i = z * sC + m * N + n;
        if (extra.bias) s += extra.bias[n];
        pre[i] = s;
        // with an f16 output the GELU takes the pre-activation rounded to f16 (as autocast's)
        if (c.activation === 'gelu') s = gelu(c.output === 'f16' ? fromF16(toF16(s)) : s);
        if (extra.residual) s += extra.residual[i];
        if (c.accumulate) s += extra.c0![i];
        out[i] = s;
      }
  return { out, pre };
}

// ---- f16 ----------------------------------------------------------------------------------------

const f32buf = new Float32Array(1), u32buf = new Uint32Array(f32buf.buffer);
/** Nearest f16 (ties to even), as bits. */
function toF16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff, m = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  const e = exp - 127;
  if (e > 15) return sign | 0x7c00;
  if (e < -25) return sign;
  // The 24-bit significand shifted onto the f16 grid: 11 bits for normals, fewer for subnormals.
  const sig = m | 0x800000;
  const shift = e < -14 ? 13 + (-14 - e) : 13;
  let h = sig >>> shift;
  const rem = sig & ((1 << shift) - 1), half = 1 << (shift - 1);
  if (rem > half || (rem === half && h & 1)) h++;
  // A rounding carry into bit 10 moves to the next exponent (or to infinity) by itself.
  return e < -14 ? sign | h : sign | (((e + 15) << 10) + h - 0x400);
}
function fromF16(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >>> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
const F16_NAN = 0x7e00;

// ---- runner -------------------------------------------------------------------------------------

const rng = new Rng(20241011);

/** Records the product; the default is `matmul` with the case's config. */
type Launch = (bufs: MatmulBuffers, c: Case) => void;

/** Runs case `c` (inputs from `r`) and checks it against float64; resolves to C's bytes and the
 *  pre-activation's, for comparing two runs of the same inputs. */
async function run(engine: Engine, c: Case, launch?: Launch, r: Rng = rng): Promise<{ c: Uint8Array; pre?: Uint8Array }> {
  const { M, N, K } = c;
  const batch = c.batch ?? 1;
  const sA = c.strideA ?? M * K, sB = c.strideB ?? K * N, sC = c.strideC ?? M * N;
  const spanA = batch === 0 ? 0 : (batch - 1) * sA + M * K;
  const spanB = batch === 0 ? 0 : (batch - 1) * sB + K * N;
  const spanC = (batch - 1) * sC + M * N;
  const scale = c.scale ?? 1 / Math.sqrt(Math.max(1, K));
  const a = randomArray(r, Math.max(1, spanA), Math.sqrt(scale)), b = randomArray(r, Math.max(1, spanB), Math.sqrt(scale));
  const bias = c.bias ? randomArray(r, N, 0.5) : undefined;
  const residual = c.residual ? randomArray(r, spanC) : undefined;
  const c0 = c.accumulate ? randomArray(r, spanC) : undefined;
  const made: Tensor[] = [];
  const keep = <T extends Tensor>(t: T) => (made.push(t), t);
  let ta: Tensor, tb: Tensor, ar = a, br = b;
  if (c.f16) {
    const ha = Uint16Array.from(a, toF16), hb = Uint16Array.from(b, toF16);
    ar = Float32Array.from(ha, fromF16);
    br = Float32Array.from(hb, fromF16);
    ta = keep(engine.upload(ha, [ha.length], 'f16'));
    tb = keep(engine.upload(hb, [hb.length], 'f16'));
  } else {
    ta = keep(engine.upload(a));
    tb = keep(engine.upload(b));
  }
  // Poisoned outputs: NaN everywhere, including the gaps between strided batch items, which must stay NaN.
  const half = c.output === 'f16';
  const cInit = new Float32Array(spanC).fill(NaN);
  if (c0) for (let z = 0; z < batch; z++) for (let i = 0; i < M * N; i++) cInit[z * sC + i] = c0[z * sC + i];
  const poisonedHalves = () => keep(engine.upload(new Uint16Array(spanC + (spanC % 2)).fill(F16_NAN), [spanC + (spanC % 2)], 'f16'));
  const tc = keep(half ? poisonedHalves() : engine.upload(cInit));
  // the pre-activation takes C's element type
  const tp = c.preact ? (half ? poisonedHalves() : keep(engine.upload(new Float32Array(spanC).fill(NaN)))) : undefined;
  const tbias = bias ? keep(engine.upload(bias)) : undefined;
  const tres = residual ? keep(engine.upload(residual)) : undefined;
  const what = JSON.stringify(c);
  try {
    const bufs: MatmulBuffers = { a: ta.buffer, b: tb.buffer, c: tc.buffer, bias: tbias?.buffer, residual: tres?.buffer, preact: tp?.buffer };
    if (launch) launch(bufs, c);
    else matmul(engine.batch, bufs, c, { precision: c.f16 ? 'f16' : 'f32', config: c.config, splitK: c.splitK, epilogue: c.epilogue, streamK: c.streamK });
    const read = async (t: Tensor) => (half ? Float32Array.from(new Uint16Array(await engine.readRaw(t), 0, spanC), fromF16) : engine.read(t));
    const got = await read(tc);
    const pre = tp ? await read(tp) : undefined;
    const check = (out: Float32Array, ref: Float64Array, tol: number, label: string) => {
      const o: number[] = [], r: number[] = [];
      for (let i = 0; i < ref.length; i++) {
        if (Number.isNaN(ref[i])) assert(Number.isNaN(out[i]), `${label} ${what}: element ${i} outside C was written (${out[i]})`);
        else (o.push(out[i]), r.push(ref[i]));
      }
      assertClose(o, r, tol, `${label} ${what}`);
    };
    const ref = reference(c, ar, br, { bias, residual, c0 });
    // f16: each element within f16's rounding (half a step, 2^-11 relative) of the float64 result,
    // and f32's error, which is absolute where an element comes from cancellation (a residual added);
    // with GELU also within the GELU's change over the pre-activation's f16 rounding, which the GPU's
    // f32 sum may put on the other side of a rounding boundary than the float64 one
    const halfBound = (out: Float32Array, want: Float64Array, label: string, slack?: (i: number) => number) => {
      const noise = 1e-5 * want.reduce((m, r) => (Number.isNaN(r) ? m : Math.max(m, Math.abs(r))), 0);
      want.forEach((r, i) => assert(Number.isNaN(r) || Math.abs(out[i] - r) <= 2 ** -11 * Math.abs(r) + noise + (slack?.(i) ?? 0), `${label} ${what}: element ${i} is ${out[i]}, want ${r} in f16`));
    };
    const geluRounding = (i: number) => 2 ** -10 * Math.abs(ref.pre[i] * geluSlope(ref.pre[i]));
    if (half) halfBound(got, ref.out, 'C', c.activation === 'gelu' ? geluRounding : undefined);
    check(got, ref.out, half ? 1e-3 : 1e-5, 'C');
    if (pre && half) halfBound(pre, ref.pre, 'preact');
    if (pre) check(pre, ref.pre, half ? 1e-3 : 1e-5, 'preact');
    if (c.f16) check(got, reference(c, a, b, { bias, residual, c0 }).out, 1e-2, 'C vs unrounded inputs');
    // an f16 C with GELU is the GELU of its f16 pre-activation, bit for bit (what the backward recomputes)
    if (half && tp && c.activation === 'gelu' && !residual && batch === 1) {
      const again = keep(engine.empty([M * N], 'f16'));
      geluForward(engine.batch, tp.buffer, again.buffer, M * N, { input: 'f16', output: 'f16' });
      const [x, y] = [await engine.readRaw(tc), await engine.readRaw(again)].map((r) => new Uint16Array(r, 0, M * N));
      const bad = x.findIndex((v, i) => v !== y[i]);
      assert(bad < 0, `C ${what}: element ${bad} is ${x[bad]?.toString(16)}, the GELU of its f16 pre-activation ${y[bad]?.toString(16)}`);
    }
    return { c: new Uint8Array(await engine.readRaw(tc)), pre: tp ? new Uint8Array(await engine.readRaw(tp)) : undefined };
  } finally {
    made.forEach((t) => t.dispose());
  }
}

/** Asserts that two runs wrote the same bytes (or that neither wrote it). */
function sameBits(x: Uint8Array | undefined, y: Uint8Array | undefined, what: string): void {
  assert(!!x === !!y && (!x || x.length === y!.length), `${what}: both runs wrote it`);
  const bad = x ? x.findIndex((v, i) => v !== y![i]) : -1;
  assert(bad < 0, `${what}: byte ${bad} differs between the two runs`);
}

/** Runs case `c` once per epilogue mode on the same inputs: the bytes each wrote and its dispatches. */
async function runTwice(engine: Engine, c: Case, modes: [SubgroupEpilogue | undefined, SubgroupEpilogue | undefined], launchOf: (epilogue?: SubgroupEpilogue) => Launch | undefined) {
  const out: { bits: { c: Uint8Array; pre?: Uint8Array }; dispatches: number }[] = [];
  for (const epilogue of modes) {
    const before = engine.batch.dispatchesRecorded;
    const bits = await run(engine, { ...c, epilogue }, launchOf(epilogue), new Rng(7));
    out.push({ bits, dispatches: engine.batch.dispatchesRecorded - before });
  }
  return out;
}

const TRANS: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

describe('kernels/matmul', function () {
  this.timeout(120_000);
  let engine: Engine;
  let tiles: MatmulTileName[];
  before(async () => {
    engine = await getEngine();
    tiles = matmulConfigs(engine.device, 'f32').filter((n): n is MatmulTileName => n in MATMUL_TILES);
    // small and mid fit WebGPU's default limits; the others need more workgroup memory than some adapters have.
    assert(tiles.includes('small') && tiles.includes('mid'), `small and mid should fit every device, got ${tiles}`);
  });

  it('every tile config and transpose on odd shapes (1, primes), and the vec4 path', async () => {
    // Each (tile, precision, vec4) is one pipeline and lavapipe's shader JIT costs seconds per
    // pipeline, so on CPU adapters the vec4 path runs on small and mid (multi-round, partial and whole
    // copy rounds) and on large in the f16 test; a GPU runs it on every tile. 'mid' is what CPU
    // adapters pick for everything else.
    const cpu = isCpuAdapter(engine.device);
    for (const config of tiles)
      for (const [transA, transB] of TRANS) {
        await run(engine, { M: 1, N: 1, K: 1, transA, transB, config });
        await run(engine, { M: 13, N: 7, K: 29, transA, transB, config });
        if (cpu && config !== 'small' && config !== 'mid') continue;
        await run(engine, { M: 68, N: 36, K: 20, transA, transB, config }); // vec4, partial tiles
        await run(engine, { M: 128, N: 128, K: 48, transA, transB, config }); // vec4, whole tiles
      }
  });

  it('tiles given by their parameters: 8×4 and 4×8 thread blocks per 32 invocations, 16-wide blocks per invocation, odd shapes, vec4, epilogue', async () => {
    const specs: TileSpec[] = [
      { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, LX: 8 }, // 16 × 16 threads in blocks of 8 × 4
      { BM: 32, BN: 64, BK: 8, TM: 4, TN: 8, LX: 4 }, // 8 × 8 threads in blocks of 4 × 8
      { BM: 64, BN: 64, BK: 8, TM: 16, TN: 4 }, // 16 rows per invocation
      { BM: 32, BN: 64, BK: 8, TM: 4, TN: 16 }, // 16 columns per invocation: the epilogue's staging fills both A tiles
    ];
    // the named tiles pass the checks a spec gets (a name is trusted), whether or not they fit here:
    // a malformed one throws, naming what is wrong
    for (const spec of Object.values(MATMUL_TILES)) matmulSpecFits(engine.device, spec);
    for (const config of specs) {
      assert(matmulSpecFits(engine.device, config), `${JSON.stringify(config)} fits every device`);
      for (const [transA, transB] of TRANS) await run(engine, { M: 13, N: 70, K: 29, transA, transB, config });
      await run(engine, { M: 68, N: 36, K: 20, transB: true, config }); // vec4, partial tiles
      await run(engine, { M: 37, N: 50, K: 19, bias: true, activation: 'gelu', preact: true, residual: true, config, scale: 2 / Math.sqrt(19) });
    }
  });

  it("the GPU form of the tiled kernel (unrolled K steps, each transpose compiled in) on a CPU adapter too: every transpose, scalar and vec4, f16 inputs, split K, epilogue", async () => {
    // CPU adapters otherwise compile the rolled, layout-uniform form only; a GPU runs this form always
    const old = setGpuShaderFormForTests(true);
    try {
      const config: TileSpec = { BM: 32, BN: 32, BK: 4, TM: 4, TN: 4 }; // a short unrolled K step: lavapipe JITs it fast
      // each case a pipeline (lavapipe compiles one in seconds): vec4 copies per layout, scalar ones where both operands flip
      for (const [transA, transB] of TRANS) {
        await run(engine, { M: 68, N: 36, K: 52, transA, transB, config }); // vec4, partial tiles and K step
        if (transA === transB) await run(engine, { M: 37, N: 35, K: 41, transA, transB, config }); // scalar loads
      }
      if (engine.device.features.has('shader-f16')) await run(engine, { M: 68, N: 40, K: 36, transB: true, config, f16: true });
      await run(engine, { M: 37, N: 70, K: 20, config: { BM: 32, BN: 64, BK: 4, TM: 8, TN: 16 } }); // 16 columns per invocation
      await run(engine, { M: 36, N: 44, K: 300, transA: true, config, splitK: 3 });
      await run(engine, { M: 37, N: 50, K: 19, transA: true, transB: true, bias: true, activation: 'gelu', preact: true, residual: true, config, scale: 2 / Math.sqrt(19) });
      await run(engine, { M: 36, N: 40, K: 52, transB: true, bias: true, residual: true, config }); // vec4 epilogue
      await run(engine, { M: 37, N: 52, K: 20, transB: true, bias: true, activation: 'gelu', output: 'f16', config, scale: 2 / Math.sqrt(20) }); // f16 C
    } finally {
      setGpuShaderFormForTests(old);
    }
  });

  it('400- and 768-like shapes with the planned config', async () => {
    await run(engine, { M: 400, N: 768, K: 64, transB: true });
    await run(engine, { M: 400, N: 48, K: 768, transA: true });
  });

  it('batched: broadcast B (stride 0), padded strides, every transpose', async () => {
    for (const [transA, transB] of TRANS) {
      // dense-ish aligned strides (vec4 path) with gaps in C
      await run(engine, { M: 20, N: 12, K: 16, batch: 3, transA, transB, strideA: 20 * 16 + 4, strideB: 0, strideC: 20 * 12 + 8 });
      // odd strides (scalar path), odd shape
      await run(engine, { M: 9, N: 11, K: 5, batch: 4, transA, transB, strideA: 9 * 5 + 3, strideB: 11 * 5 + 1, strideC: 9 * 11 + 5, config: 'small' });
    }
    await run(engine, { M: 33, N: 65, K: 17, batch: 2, strideA: 0, config: 'large' });
  });

  it('epilogues: bias, GELU, residual, preact on every config', async () => {
    for (const config of tiles) {
      await run(engine, { M: 37, N: 50, K: 19, bias: true, activation: 'gelu', preact: true, residual: true, config, scale: 2 / Math.sqrt(19) });
      if (config === 'small' || config === 'mid') await run(engine, { M: 72, N: 132, K: 24, transB: true, bias: true, activation: 'gelu', preact: true, config, scale: 2 / Math.sqrt(24) });
      await run(engine, { M: 8, N: 17, K: 12, transA: true, bias: true, residual: true, config });
    }
    // GELU's far tails (|x| up to ~8), where an erf approximation is least accurate.
    await run(engine, { M: 16, N: 20, K: 8, bias: true, activation: 'gelu', preact: true, scale: 3 });
  });

  it('accumulate: C += A·B (+ bias), vec4 and scalar paths', async () => {
    await run(engine, { M: 31, N: 17, K: 23, accumulate: true, config: 'mid' });
    await run(engine, { M: 64, N: 96, K: 40, transA: true, accumulate: true, bias: true, config: 'mid' });
    await run(engine, { M: 12, N: 8, K: 4, batch: 3, strideB: 0, transB: true, accumulate: true, preact: true, config: 'small' });
  });

  it('split K: forced splits with epilogues and accumulate, and the planned split of small outputs (up to 64)', async () => {
    await run(engine, { M: 19, N: 23, K: 101, splitK: 3, bias: true, activation: 'gelu', preact: true, residual: true, config: 'small', scale: 2 / Math.sqrt(101) });
    await run(engine, { M: 40, N: 24, K: 96, splitK: 5, transA: true, transB: true, accumulate: true, bias: true, config: 'small' });
    await run(engine, { M: 33, N: 21, K: 70, splitK: 2, transB: true, bias: true, residual: true, config: 'tall' });
    await run(engine, { M: 7, N: 9, K: 50, batch: 2, splitK: 4, strideC: 70, config: 'large' });
    const small: MatmulDims = { M: 8, N: 12, K: 2100, transA: true };
    const p = matmulPlan(engine.device, small);
    assert(p.splits > 1, `a tiny output with K = 2100 should split K, plan ${JSON.stringify(p)}`);
    await run(engine, { ...small, bias: true });
    // the most splits (64, of 256 k each and a ragged last one)
    const many: MatmulDims = { M: 9, N: 13, K: 16411, transA: true };
    assert(matmulPlan(engine.device, many).splits === 64, JSON.stringify(matmulPlan(engine.device, many)));
    await run(engine, many);
  });

  it('f16 output (C and the pre-activation as f16 bits): the vec4 and the scalar epilogue, gaps between batch items, split K, f16 inputs; refused where it cannot pack pairs', async () => {
    const ep = { bias: true, activation: 'gelu', preact: true } as const;
    await run(engine, { M: 37, N: 52, K: 20, ...ep, residual: true, output: 'f16', config: 'small', scale: 2 / Math.sqrt(20) }); // vec4
    await run(engine, { M: 13, N: 34, K: 19, transB: true, ...ep, output: 'f16', config: 'mid', scale: 2 / Math.sqrt(19) }); // scalar: pairs of lanes
    await run(engine, { M: 9, N: 6, K: 5, batch: 3, strideC: 9 * 6 + 4, output: 'f16', config: 'mid' }); // the gaps stay poisoned
    await run(engine, { M: 19, N: 22, K: 300, splitK: 3, ...ep, output: 'f16', config: 'mid', scale: 2 / Math.sqrt(300) }); // reduction in pairs
    await run(engine, { M: 16, N: 24, K: 256, splitK: 2, transA: true, ...ep, residual: true, output: 'f16', config: 'mid', scale: 2 / Math.sqrt(256) }); // reduction in vec4
    if (engine.device.features.has('shader-f16')) await run(engine, { M: 21, N: 44, K: 36, transB: true, ...ep, f16: true, output: 'f16', config: 'mid', scale: 2 / Math.sqrt(36) });
    const x = engine.empty([64]), h = engine.empty([64], 'f16');
    const refused = (dims: MatmulDims, re: RegExp) =>
      expectThrow(() => matmul(engine.batch, { a: x.buffer, b: x.buffer, c: { buffer: h.buffer, size: 128 } }, { ...dims, output: 'f16' }), re);
    try {
      refused({ M: 2, N: 3, K: 2 }, /matmul: an f16 output needs N and strideC even and no accumulate \(M=2, N=3, K=2, batch=1\)/);
      refused({ M: 2, N: 2, K: 2, batch: 2, strideC: 5 }, /matmul: an f16 output needs N and strideC even .*strideC=5/);
      refused({ M: 2, N: 2, K: 2, accumulate: true }, /matmul: an f16 output needs .*, accumulate\)/);
      refused({ M: 8, N: 16, K: 2 }, /matmul: c holds 128 bytes, needs 256 \(128 f16/);
    } finally {
      [x, h].forEach((t) => t.dispose());
    }
  });

  it('f16 inputs, f32 accumulate: scalar and vec4 paths, every transpose', async () => {
    if (!engine.device.features.has('shader-f16')) {
      // SwiftShader has no shader-f16: then the launcher must refuse clearly (lavapipe runs the real test).
      const t = engine.empty([64]), c = engine.empty([64]);
      try {
        expectThrow(() => matmul(engine.batch, { a: t.buffer, b: t.buffer, c: c.buffer }, { M: 4, N: 4, K: 4 }, { precision: 'f16' }), /matmul: precision 'f16' needs the device feature shader-f16/);
      } finally {
        [t, c].forEach((x) => x.dispose());
      }
      return;
    }
    // Two pipelines (one per path) keep this cheap; every tile runs the same f16 load code.
    for (const [transA, transB] of TRANS) {
      await run(engine, { M: 13, N: 29, K: 31, transA, transB, config: 'mid', f16: true });
      await run(engine, { M: 64, N: 40, K: 36, transA, transB, config: 'large', f16: true });
    }
    await run(engine, { M: 21, N: 44, K: 300, splitK: 3, bias: true, activation: 'gelu', preact: true, f16: true, config: 'large', scale: 2 / Math.sqrt(300) });
    await run(engine, { M: 16, N: 12, K: 20, batch: 2, strideB: 0, accumulate: true, f16: true, config: 'large' });
  });

  const SG_SPECS: SubgroupSpec[] = [
    { BM: 64, BN: 64, BK: 16, subgroups: 2, FM: 2, FN: 4, buffers: 2 },
    { BM: 64, BN: 32, BK: 32, subgroups: 2, FM: 2, FN: 2, buffers: 0 },
  ];
  // The subgroup kernels on shapes that fit them: K = 48 and 80 end half-way through the staged
  // kernel's 32-deep step; batch 2 with padded strides; every transpose; the epilogue staging.
  const SG_CASES = (config: SubgroupConfigName | SubgroupSpec): Case[] => [
    ...TRANS.map(([transA, transB]): Case => ({ M: 128, N: 128, K: 48, batch: 2, strideA: 128 * 48 + 16, strideC: 128 * 128 + 32, transA, transB, config, f16: true })),
    { M: 256, N: 128, K: 80, transA: true, transB: true, bias: true, activation: 'gelu', residual: true, preact: true, config, f16: true, scale: 2 / Math.sqrt(80) },
    { M: 128, N: 256, K: 32, bias: true, accumulate: true, config, f16: true },
    // C as f16: the epilogue puts pairs of elements
    { M: 128, N: 128, K: 48, bias: true, activation: 'gelu', residual: true, preact: true, output: 'f16', config, f16: true, scale: 2 / Math.sqrt(48) },
    { M: 128, N: 128, K: 32, transB: true, bias: true, activation: 'gelu', preact: true, output: 'f16', config, f16: true, scale: 2 / Math.sqrt(32) }, // fc1's: C again from preact
    // K split as a batch of K-slices (weight gradients): the reduction applies the epilogue once.
    { M: 128, N: 256, K: 96, transA: true, splitK: 3, bias: true, residual: true, config, f16: true },
    { M: 128, N: 128, K: 160, transA: true, splitK: 2, bias: true, accumulate: true, config, f16: true },
  ];

  it('subgroup-matrix kernels, emulated per invocation: both operand layouts, K past the last step, epilogues', async function () {
    if (!engine.device.features.has('shader-f16')) this.skip(); // the emulation still reads f16
    // A device with subgroup matrices runs the real kernels (next test) instead: there the emulation's
    // private 16×16 arrays (16 per invocation in the 4-subgroup config) overflow what NVIDIA's compiler
    // accepts ("failed to validate local memory" on an H100).
    const emulated = SUBGROUP_CONFIGS.filter((c) => !matmulConfigs(engine.device, 'f16').includes(c));
    if (emulated.length === 0) this.skip();
    this.timeout(600_000); // lavapipe's JIT, cold, per pipeline: 1 s (direct) to 8 s (4 subgroups of 4×4)
    // A's code depends only on transA and B's only on transB, so (N, N) and (T, T) cover every path;
    // a GPU runs all four (next test). The staged kernels share their panel copies: (T, T) runs on the
    // 8-subgroup one, and the two 4-subgroup ones (the slowest to compile) run (N, N).
    // The K splits (Aᵀ·B only) run on the unstaged kernel alone: their logic is outside the kernels.
    // The f16 output runs on the unstaged kernel and on a staged spec below (one shared epilogue).
    const covered = (c: Case) =>
      c.splitK || c.output ? c.config === 'subgroup-matrix' : !c.transA === !c.transB && (!c.transA || c.config === 'subgroup-matrix' || c.config === 'subgroup-matrix-128');
    // A staged kernel whose panels overflow this device's workgroup memory (the double-buffered one
    // needs 44 KiB, lavapipe has 32) steps K by 16 instead of 32: the same code with smaller panels.
    const room = engine.device.limits.maxComputeWorkgroupStorageSize;
    const bkFor = (c: SubgroupConfigName) => (c === 'subgroup-matrix' || subgroupStagedBytes(c) <= room ? undefined : 16);
    for (const config of emulated) {
      const bk = bkFor(config);
      if (bk && config !== 'subgroup-matrix') assert(subgroupStagedBytes(config, bk) <= room, `${config} fits ${room} B with K steps of ${bk}`);
      for (const c of SG_CASES(config).filter(covered)) {
        const emu = emulatedSubgroupKernel(engine.device, config, 32, !!c.transA, !!c.transB, bk, undefined, c.output);
        await run(engine, c, (bufs) => emu.record(engine.batch, bufs, c, { splitK: c.splitK }));
      }
    }
    // Kernels given by their parameters (the cases without transposes): a staged one of 2 subgroups
    // with 2×4 fragments each, and a direct one whose 32-deep steps end half-way past K = 48; the
    // staged one also with both transposed (two panel buffers in the transposed layouts).
    for (const spec of SG_SPECS)
      for (const c of SG_CASES(spec).filter((c) => c.transA === c.transB && (!(c.transA || c.output) || spec.buffers === 2))) {
        const emu = emulatedSubgroupKernel(engine.device, spec, 32, !!c.transA, !!c.transB, undefined, undefined, c.output);
        await run(engine, c, (bufs) => emu.record(engine.batch, bufs, c, { splitK: c.splitK }));
      }
  });

  it("subgroup-matrix spellings: the older one (majorness as an argument) gives the same kernels as the current one", () => {
    // The emulation above runs the current spelling; a device whose compiler knows only the older one
    // gets it (sgSpelling). Emulated, both must come to the same code: same majorness, same offsets.
    for (const config of [...SUBGROUP_CONFIGS, ...SG_SPECS])
      for (const [tA, tB] of TRANS) {
        const [current, older] = (['template', 'argument'] as const).map((s) => subgroupMatrixSource(config, 32, tA, tB, undefined, s));
        assert(/subgroupMatrixLoad<[^>]+>, (row|col)_major>/.test(current) && !/, (true|false), /.test(current), 'the current spelling has the majorness in the template');
        assert(/subgroupMatrixLoad<[^>]+>>\(/.test(older) && /, (true|false), /.test(older), 'the older one has it as an argument');
        assert(emulateSubgroupMatrix(current, 32).code === emulateSubgroupMatrix(older, 32).code, `${JSON.stringify(config)} t${+tA}${+tB}: both spellings emulate alike`);
      }
  });

  it('subgroup-matrix spelling: the probe answers without leaving an error behind', async () => {
    const spelling = await subgroupMatrixSpelling(engine.device);
    // this Dawn knows the current spelling where it has subgroup matrices; elsewhere the probe cannot compile
    const expected = engine.device.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName) ? 'template' : 'argument';
    assert(spelling === expected, `spelling ${spelling}, expected ${expected}`);
    assert((await subgroupMatrixSpelling(engine.device)) === spelling, 'probed once');
    // the probe's error scopes are closed (one left open would swallow later errors): popping one more fails
    let empty = false;
    await engine.device.popErrorScope().catch(() => (empty = true));
    assert(empty, 'no error scope left open');
  });

  it('staged subgroup kernels: subgroupStagedBytes is the workgroup memory they declare (the larger of the layouts)', () => {
    const staged: SubgroupSpec[] = [
      ...SG_SPECS.filter((s) => s.buffers > 0),
      { BM: 128, BN: 256, BK: 64, subgroups: 8, FM: 4, FN: 4, buffers: 2 },
      { BM: 64, BN: 128, BK: 32, subgroups: 8, FM: 1, FN: 4, buffers: 1 },
      { BM: 64, BN: 64, BK: 16, subgroups: 1, FM: 4, FN: 4, buffers: 2 },
    ];
    const declared = (wgsl: string) =>
      [...wgsl.matchAll(/var<workgroup> \w+: array<(?:array<f16, (\d+)>, (\d+)|f32, (\d+))>;/g)].reduce((sum, m) => sum + (m[3] ? 4 * +m[3] : 2 * +m[1] * +m[2]), 0);
    for (const config of [...SUBGROUP_CONFIGS.filter((c) => c !== 'subgroup-matrix'), ...staged])
      for (const bk of [undefined, 16]) {
        const most = Math.max(...TRANS.map(([tA, tB]) => declared(subgroupMatrixSource(config, 32, tA, tB, bk))));
        assert(most > 0 && subgroupStagedBytes(config, bk) === most, `${JSON.stringify(config)} bk ${bk}: ${subgroupStagedBytes(config, bk)} B counted, ${most} declared`);
      }
  });

  it('subgroup-matrix: runs where the device has it, else a clear error', async () => {
    const sgs = matmulConfigs(engine.device, 'f16').filter((c): c is SubgroupConfigName => c.startsWith('subgroup-matrix'));
    if (sgs.length) {
      for (const config of sgs) for (const c of SG_CASES(config)) await run(engine, c);
      for (const spec of SG_SPECS.filter((x) => matmulSpecFits(engine.device, x))) {
        assert(await checkSubgroupMatrix(engine.device, spec), `${JSON.stringify(spec)} passes its device check`);
        for (const c of SG_CASES(spec)) await run(engine, c);
      }
      const t = engine.empty([128 * 128], 'f16'), c = engine.empty([128 * 128]);
      try {
        expectThrow(() => matmul(engine.batch, { a: t.buffer, b: t.buffer, c: c.buffer }, { M: 128, N: 128, K: 128, transB: true }, { precision: 'f16', config: sgs[0], splitK: 2 }), /matmul: the subgroup-matrix kernels split K only for Aᵀ·B/);
      } finally {
        [t, c].forEach((x) => x.dispose());
      }
      // Once a config's check has passed, an f16 shape class not yet tuned starts on it, not on a tile.
      if ((await Promise.all(sgs.map((c) => checkSubgroupMatrix(engine.device, c)))).some(Boolean)) {
        const untuned = matmulPlan(engine.device, { M: 896, N: 384, K: 80 }, { precision: 'f16' });
        assert(typeof untuned.config === 'string' && untuned.config.startsWith('subgroup-matrix'), `untuned f16 plan ${JSON.stringify(untuned)}`);
        // and its f16-output variant (C and the pre-activation as the f32 ones cast) passed its check too
        const half = matmulPlan(engine.device, { M: 896, N: 384, K: 80, transB: true, activation: 'gelu', output: 'f16' }, { precision: 'f16' });
        assert(typeof half.config === 'string' && half.config.startsWith('subgroup-matrix'), `untuned f16-output plan ${JSON.stringify(half)}`);
        // a plain product there writes f32 fragments straight out, but an f16 C through the epilogue
        assert(plainHalfOutputSlower(engine.device, { M: 896, N: 384, K: 80 }, { precision: 'f16' }), 'an f16 C of a subgroup-matrix product is the slower one');
      }
    } else {
      const t = engine.empty([64 * 64], 'f16'), c = engine.empty([64 * 64]);
      try {
        expectThrow(() => matmul(engine.batch, { a: t.buffer, b: t.buffer, c: c.buffer }, { M: 64, N: 64, K: 64 }, { precision: 'f16', config: 'subgroup-matrix' }), /matmul: .*(subgroup-matrix.*not available|needs the device feature shader-f16)/);
      } finally {
        [t, c].forEach((x) => x.dispose());
      }
    }
    // the tiled kernels stage every C alike: an f16 one is never the slower (shapes no subgroup kernel takes)
    for (const precision of ['f32', 'f16'] as const)
      assert(!plainHalfOutputSlower(engine.device, { M: 97, N: 84, K: 61 }, { precision }), `a ${precision} tiled product writes f16 as cheaply`);
  });

  it("the epilogue as a pass of its own (epilogue 'pass'): the fused epilogue's bits in two dispatches, batch items kept apart, the default setSubgroupEpilogue sets", async function () {
    if (!engine.device.features.has('shader-f16')) this.skip(); // the subgroup kernels (and their emulation) read f16
    this.timeout(300_000);
    // the real direct kernel where the device has subgroup matrices, else its emulation (1 s to compile)
    const real = matmulConfigs(engine.device, 'f16').includes('subgroup-matrix') && (await checkSubgroupMatrix(engine.device, 'subgroup-matrix'));
    const launch = (c: Case, epilogue?: SubgroupEpilogue): Launch | undefined => {
      if (real) return undefined; // run()'s matmul, with c.config and c.epilogue
      // the pass runs the f32 build (its fragments stored plain), whatever C's type
      const emu = emulatedSubgroupKernel(engine.device, 'subgroup-matrix', 32, !!c.transA, !!c.transB, undefined, undefined, epilogue === 'pass' ? 'f32' : c.output);
      return (bufs) => emu.record(engine.batch, bufs, c, { epilogue });
    };
    const config = 'subgroup-matrix';
    const cases: Case[] = [
      // the products that stage an epilogue: f32 C with bias, GELU, residual and preact, accumulate, f16 C
      ...SG_CASES(config).filter((c) => !c.splitK && (c.bias || c.output)),
      // batch items with gaps between them in A and C: the workspace holds them dense, the pass puts them apart
      { M: 128, N: 128, K: 48, batch: 2, strideA: 128 * 48 + 16, strideC: 128 * 128 + 32, bias: true, residual: true, config, f16: true },
      { M: 64, N: 64, K: 32, batch: 3, strideC: 64 * 64 + 64, transB: true, output: 'f16', config, f16: true },
    ];
    for (const c of cases) {
      const [fused, pass] = await runTwice(engine, c, ['fused', 'pass'], (e) => launch(c, e));
      const what = JSON.stringify(c);
      assert(pass.dispatches === fused.dispatches + 1, `${what}: the pass is a dispatch of its own (${fused.dispatches} fused, ${pass.dispatches} with the pass)`);
      sameBits(fused.bits.c, pass.bits.c, `C ${what}`);
      sameBits(fused.bits.pre, pass.bits.pre, `preact ${what}`);
    }
    // setSubgroupEpilogue sets the default that products which do not say take
    const c = cases[0]; // an f32 C: the emulated kernel's one build serves the pass and the fused epilogue
    assert(c.output !== 'f16' && !!c.bias, 'the default is tried on a product with an f32 C and an epilogue');
    setSubgroupEpilogue('pass');
    try {
      const [chosen, told] = await runTwice(engine, c, [undefined, 'fused'], (e) => launch(c, e));
      assert(chosen.dispatches === told.dispatches + 1, `the default 'pass' is taken where a product does not say (${chosen.dispatches} against ${told.dispatches} dispatches)`);
    } finally {
      setSubgroupEpilogue('fused');
    }
  });

  it("epilogue 'pass' on tiled kernels: nothing changes, they stage every C already (a dispatch and the bits alike); bad modes are refused", async () => {
    const f16 = engine.device.features.has('shader-f16');
    const tiled: Case[] = [{ M: 37, N: 30, K: 19, bias: true, activation: 'gelu', residual: true, preact: true }, ...(f16 ? [{ M: 9, N: 14, K: 33, bias: true, output: 'f16', f16: true } as Case] : [])];
    for (const t of tiled) {
      const [fused, pass] = await runTwice(engine, t, ['fused', 'pass'], () => undefined);
      assert(pass.dispatches === fused.dispatches, `${JSON.stringify(t)}: a tiled product takes no pass`);
      sameBits(fused.bits.c, pass.bits.c, `tiled C ${JSON.stringify(t)}`);
    }
    const x = engine.empty([64]), y = engine.empty([64]);
    try {
      for (const bad of [() => matmul(engine.batch, { a: x.buffer, b: x.buffer, c: y.buffer }, { M: 8, N: 8, K: 1 }, { epilogue: 'staged' as SubgroupEpilogue }), () => setSubgroupEpilogue('staged' as SubgroupEpilogue)])
        expectThrow(bad, /epilogue.*'fused' or 'pass', got 'staged'/i);
    } finally {
      [x, y].forEach((t) => t.dispose());
    }
  });

  it('stream-K: workgroups sharing tiles × K steps, on odd shapes, batch items, every epilogue, f16 C and inputs; whole tiles give the plain bits', async () => {
    const ep = { bias: true, activation: 'gelu', preact: true, residual: true } as const;
    // 'small' is 32×32 with K steps of 16: 6 tiles × 7 steps shared by 5 workgroups, each starting and ending inside a tile
    await run(engine, { M: 70, N: 45, K: 100, streamK: 5, ...ep, config: 'small', scale: 2 / Math.sqrt(100) });
    // 3 batch items of 6 tiles × 4 steps over 7 workgroups (ranges cross items), the gaps between items stay poisoned
    await run(engine, { M: 68, N: 36, K: 52, batch: 3, strideC: 68 * 36 + 4, transA: true, streamK: 7, config: 'small' });
    await run(engine, { M: 40, N: 24, K: 96, transA: true, transB: true, accumulate: true, bias: true, streamK: 3, config: 'small' });
    await run(engine, { M: 37, N: 52, K: 40, ...ep, output: 'f16', streamK: 4, config: 'small', scale: 2 / Math.sqrt(40) }); // vec4
    await run(engine, { M: 13, N: 34, K: 19, transB: true, bias: true, output: 'f16', streamK: 3, config: 'small' }); // scalar, pairs
    // more workgroups than k-iterations: one each, 3 to a tile (the middle one inside it)
    await run(engine, { M: 33, N: 20, K: 48, streamK: 1000, bias: true, config: 'small' });
    await run(engine, { M: 50, N: 40, K: 30, streamK: 1, residual: true, config: 'small' }); // one workgroup walks every tile
    // 8 and 16 rows per invocation, as the 4096³ tiles have: partial tiles staged over 8 and 16 rounds
    await run(engine, { M: 150, N: 70, K: 40, streamK: 5, bias: true, residual: true, config: 'tall' });
    await run(engine, { M: 100, N: 72, K: 44, transB: true, streamK: 7, config: { BM: 64, BN: 64, BK: 8, TM: 16, TN: 4 } });
    if (engine.device.features.has('shader-f16')) await run(engine, { M: 68, N: 40, K: 36, transB: true, f16: true, streamK: 5, config: 'small' });
    // as many workgroups as tiles: each takes one whole tile, as the plain kernel does, bit for bit
    const whole: Case = { M: 70, N: 45, K: 100, bias: true, activation: 'gelu', config: 'small', scale: 2 / Math.sqrt(100) };
    const plain = await run(engine, whole, undefined, new Rng(3));
    sameBits(plain.c, (await run(engine, { ...whole, streamK: 6 }, undefined, new Rng(3))).c, `stream-K over whole tiles ${JSON.stringify(whole)}`);
    // the GPU form (unrolled K steps, layouts compiled in), vec4 and scalar
    const old = setGpuShaderFormForTests(true);
    try {
      const config: TileSpec = { BM: 32, BN: 32, BK: 4, TM: 4, TN: 4 };
      await run(engine, { M: 68, N: 36, K: 52, transB: true, streamK: 9, ...ep, config, scale: 2 / Math.sqrt(52) });
      await run(engine, { M: 37, N: 35, K: 41, transA: true, transB: true, streamK: 4, config });
      // 8×8 per invocation in 8-wide thread blocks, as xtall16 (the 4096³ tiles, scaled to fit)
      await run(engine, { M: 150, N: 200, K: 40, streamK: 5, bias: true, config: { BM: 64, BN: 128, BK: 8, TM: 8, TN: 8, LX: 8 } });
    } finally {
      setGpuShaderFormForTests(old);
    }
  });

  it('stream-K: the plan takes it instead of K splits; bad workgroup counts and a K split beside it are refused', async () => {
    const long: MatmulDims = { M: 8, N: 12, K: 2100, transA: true }; // a shape matmul splits K for by itself
    const p = matmulPlan(engine.device, long, { streamK: 4 });
    assert(p.streamK === 4 && p.splits === 1 && matmulPlan(engine.device, long).streamK === 0, JSON.stringify(p));
    await run(engine, { ...long, streamK: 4, bias: true });
    await run(engine, { M: 5, N: 7, K: 0, streamK: 3, bias: true }); // no K steps to share: C is the epilogue of zero
    const x = engine.empty([64]), y = engine.empty([64]);
    try {
      const refused = (opts: MatmulOptions, re: RegExp) => expectThrow(() => matmul(engine.batch, { a: x.buffer, b: x.buffer, c: y.buffer }, { M: 8, N: 8, K: 1 }, opts), re);
      for (const streamK of [0, 2.5, 65536]) refused({ streamK }, /matmul: streamK must be an integer in \[1, 65535\]/);
      refused({ streamK: 4, splitK: 2 }, /matmul: streamK and splitK 2 exclude each other/);
    } finally {
      [x, y].forEach((t) => t.dispose());
    }
  });

  it("stream-K by matmul's own choice (setMatmulStreamK): off by default, on the first stream-K tile that fits, where a last wave would idle; refused settings", async () => {
    const dev = engine.device;
    const fits = matmulConfigs(dev, 'f32');
    const tile = (['xlarge16', 'large16'] as const).find((t) => fits.includes(t));
    const dims: MatmulDims = { M: 300, N: 260, K: 520 }; // 6 tiles of xlarge16, 9 of large16: over 4 workgroups, a last wave part idle
    try {
      assert(matmulPlan(dev, dims).streamK === 0, 'off by default');
      setMatmulStreamK('auto');
      assert(matmulPlan(dev, dims).streamK === 0, "'auto' on a GPU it knows only, and there with its SMs: 6 or 9 tiles are too few");
      setMatmulStreamK(4);
      const p = matmulPlan(dev, dims);
      if (!tile) assert(p.streamK === 0, `no stream-K tile fits here: ${JSON.stringify(p)}`);
      else {
        assert(p.streamK === 4 && p.config === tile && p.splits === 1, `${JSON.stringify(p)}, want ${tile} stream-K 4`);
        const c: Case = { ...dims, bias: true, residual: true };
        const own = await run(engine, c, undefined, new Rng(5));
        setMatmulStreamK('off');
        sameBits(own.c, (await run(engine, { ...c, config: tile, streamK: 4 }, undefined, new Rng(5))).c, "matmul's own stream-K against the same asked for");
        setMatmulStreamK(4);
      }
      // not where the options choose, nor for a short K, too few tiles, or a full last wave
      const none = (d: MatmulDims, opts: MatmulOptions, why: string) => assert(matmulPlan(dev, d, opts).streamK === 0, why);
      none(dims, { config: 'mid' }, 'a config given');
      none(dims, { splitK: 1 }, 'K splits given');
      none({ ...dims, K: 500 }, {}, 'K under 512');
      none({ M: 100, N: 100, K: 600 }, {}, 'one tile');
      none({ M: 256, N: 512, K: 600 }, {}, 'whole waves: 8 tiles of large16, 4 of xlarge16');
    } finally {
      setMatmulStreamK('off');
    }
    for (const bad of [0, 1.5, 'on', 70000] as unknown as StreamKSetting[]) expectThrow(() => setMatmulStreamK(bad), /setMatmulStreamK: expected 'off', 'auto' or an integer/);
  });

  it('autotune: picks a config this device runs, and matmul then uses it', async () => {
    const dims: MatmulDims = { M: 97, N: 83, K: 61, transB: true };
    const chosen = await tuneMatmul(engine.device, dims, { force: true });
    assert(matmulConfigs(engine.device, 'f32').includes(chosen), `tuned config ${chosen}`);
    assert(matmulPlan(engine.device, dims).config === chosen, `plan ${JSON.stringify(matmulPlan(engine.device, dims))} vs tuned ${chosen}`);
    // Every candidate that fits was compiled and timed; the winner has the least time.
    const times = matmulTuneTimes(engine.device, dims)!;
    assert(Object.keys(times).sort().join() === [...tiles].sort().join(), `tuned candidates ${JSON.stringify(times)}, fitting ${tiles}`);
    assert(Object.values(times).every((ms) => ms! > 0 && ms! >= times[chosen]!), `times ${JSON.stringify(times)}, chosen ${chosen}`);
    await run(engine, dims);
  });

  it('autotune rounds: at least the minimum, more while a round still speeds a candidate up (a clock ramping up), never past the maximum', () => {
    // each candidate's least time after each round: flat, ramping for 5 rounds, never settling
    const rounds = (times: (r: number) => number[]) => {
      let best = times(0);
      for (let r = 1; ; r++) {
        const before = best;
        best = best.map((t, i) => Math.min(t, times(r)[i]));
        if (tuneSettled(r, before, best)) return r;
      }
    };
    assert(rounds(() => [1, 2]) === TUNE_ROUNDS.min, 'a warm device: the minimum');
    // one candidate gets 20 % faster each round until round 5, the other stays: settled the round after
    assert(rounds((r) => [0.8 ** Math.min(r, 5), 2]) === Math.max(TUNE_ROUNDS.min, 6), 'ramping until round 5');
    assert(rounds((r) => [0.9 ** r, 2]) === TUNE_ROUNDS.max, 'never settling: the maximum');
    // a change within the tolerance is settled
    assert(rounds((r) => [1 - 0.01 * r, 2]) === TUNE_ROUNDS.min, '1 % per round is noise');
    // a candidate too slow to win does not hold the tune up, one close to the fastest does
    assert(rounds((r) => [1, 3 * 0.9 ** r]) === TUNE_ROUNDS.min, 'a slow candidate speeding up');
    assert(rounds((r) => [1, 1.2 * 0.9 ** Math.min(r, 4)]) === Math.max(TUNE_ROUNDS.min, 5), 'a contender speeding up until round 4');
  });

  it('the config never changes the result: tiles of every size give the same bits, split or not (K splits follow the shape alone)', async () => {
    // the autotune picks configs by timing, which differs from run to run: a resumed training run must
    // still repeat the uninterrupted one bit for bit. Odd sizes (the scalar pipelines the first test
    // compiled): a weight gradient's split regime (few output tiles, a long K), then an ordinary product.
    const shapes: MatmulDims[] = [{ M: 261, N: 259, K: 4099, transA: true }, { M: 67, N: 45, K: 131, transB: true }];
    const configs = (['small', 'mid', 'tall', 'large'] as const).filter((c) => tiles.includes(c));
    const rng = new Rng(77);
    for (const dims of shapes) {
      const a = engine.upload(randomArray(rng, dims.M * dims.K)), b = engine.upload(randomArray(rng, dims.K * dims.N));
      const splits = new Set(configs.map((config) => matmulPlan(engine.device, dims, { config }).splits));
      assert(splits.size === 1, `${JSON.stringify(dims)}: splits ${[...splits]} differ between configs`);
      let first: Float32Array | undefined;
      for (const config of configs) {
        const c = engine.empty([dims.M * dims.N]);
        matmul(engine.batch, { a: a.buffer, b: b.buffer, c: c.buffer }, dims, { config });
        const got = await engine.read(c);
        c.dispose();
        first ??= got;
        const i = got.findIndex((v, j) => !Object.is(v, first![j]));
        assert(i < 0, `${JSON.stringify(dims)}: ${config} gives ${got[i]} at ${i}, ${configs[0]} ${first[i]}`);
      }
      [a, b].forEach((t) => t.dispose());
    }
  });

  it('rejects bad input with errors naming matmul and the sizes', async () => {
    const x = engine.empty([100]), y = engine.empty([100]), z = engine.empty([100]);
    const bufs = { a: x.buffer, b: y.buffer, c: z.buffer };
    const small = { a: { buffer: x.buffer, size: 64 }, b: y.buffer, c: z.buffer };
    expectThrow(() => matmul(engine.batch, small, { M: 4, N: 4, K: 5 }), /matmul: a holds 64 bytes, needs 80.*M=4, N=4, K=5/);
    expectThrow(() => matmul(engine.batch, bufs, { M: 4, N: 4, K: 4, activation: 'gelu', accumulate: true }), /matmul: accumulate cannot be combined/);
    expectThrow(() => matmul(engine.batch, bufs, { M: 2, N: 2, K: 2, batch: 2, strideC: 0 }), /matmul: strideC = 0/);
    expectThrow(() => matmul(engine.batch, bufs, { M: 2.5, N: 2, K: 2 }), /matmul: M must be an integer/);
    expectThrow(() => matmul(engine.batch, { a: x.buffer, b: y.buffer, c: x.buffer }, { M: 2, N: 2, K: 2 }), /matmul: c must not share a buffer with a/);
    expectThrow(() => matmul(engine.batch, bufs, { M: 2, N: 2, K: 2 }, { config: 'huge' as MatmulConfigName }), /matmul: unknown config 'huge'/);
    const spec = (config: MatmulKernelSpec, re: RegExp) => expectThrow(() => matmul(engine.batch, bufs, { M: 2, N: 2, K: 2 }, { config }), re);
    spec({ BM: 64, BN: 64, BK: 16, TM: 3, TN: 4 }, /matmul: kernel spec .*TM, TN and BK must be multiples of 4/);
    spec({ BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, LX: 3 }, /matmul: kernel spec .*LX must be a power of two/);
    spec({ BM: 64, BN: 64, BK: 16.5, TM: 4, TN: 4 }, /matmul: kernel spec .*BK must be an integer/);
    spec({ BM: 4096, BN: 4096, BK: 1024, TM: 4, TN: 4 }, /matmul: kernel spec .*BM must be an integer in \[1, 1024\]/);
    spec({ BM: 256, BN: 256, BK: 32, TM: 4, TN: 4 }, /matmul: kernel t256x256x32_4x4 exceeds this device's workgroup limits/);
    spec({ BM: 128, BN: 128, BK: 32, subgroups: 8, FM: 4, FN: 4, buffers: 1 }, /matmul: kernel spec .*8 subgroups of 64×64 must tile 128×128/);
    spec({ BM: 128, BN: 128, BK: 32, subgroups: 4, FM: 4, FN: 4, buffers: 1 }, /matmul: kernel sg128x128x32_4sg_4x4_b1 needs precision 'f16'/);
    [x, y, z].forEach((t) => t.dispose());
  });
});
