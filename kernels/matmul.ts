// Matrix multiply for every layer: C = act(op(A)·op(B) + bias) + residual (or C += op(A)·op(B) + bias),
// batched with per-operand strides (stride 0 = broadcast), f32 or f16 inputs, f32 accumulation.
// This file plans and launches; the kernels' WGSL is in matmul-wgsl.ts.
//
// The tiled kernel is the classic register-blocked SIMT GEMM: a workgroup owns a BM×BN tile of C,
// walks K in BK steps through double-buffered workgroup memory (one barrier per step: the next tile
// is fetched into registers while the current one is multiplied), and each thread keeps TM×TN
// accumulators as vec4 rows. Shared tiles are k-major ([k][m], [k][n]) whatever the storage layout,
// so the inner loop is the same vec4 reads + outer products for every transpose combination; only
// the global→shared copy differs. GPUs compile that per transpose combination (each copy then holds
// only its own registers); CPU adapters choose it by a uniform, to compile fewer pipelines. The
// epilogue (bias, GELU, residual, preact, accumulate) is a uniform everywhere. Global loads
// are vec4 where every contiguous dimension and batch stride is a multiple of 4, scalar otherwise,
// predicated on the bounds so any M, N, K works. The epilogue goes through workgroup memory so C is
// written coalesced. Small outputs with a long K are split along K into a workspace and summed in
// split order by a second kernel that applies the epilogue. On request (MatmulOptions.streamK, or
// setMatmulStreamK for matmul to choose it) a fixed number of workgroups share the tiles × K steps
// instead (stream-K), and a second kernel adds up the tiles they share.
//
// f16 inputs: where the device has `chromium-experimental-subgroup-matrix` (Dawn, unsafe APIs)
// subgroup-matrix kernels (tensor cores on NVIDIA) exist, one reading fragments straight from memory and
// two staging 128×128 tiles in workgroup memory (SG_STAGED). Each is used only after it has compiled and matched
// the plain f16 kernel on this device (checkSubgroupMatrix); CI devices run them only emulated
// (test/kernels/subgroup-emulation.ts).
// Elsewhere f16 goes through the tiled kernel, converted to f32 on load.
//
// The tile config is chosen per device and shape class by timing the candidates once in the
// background at first use (by timestamps around their own dispatches where the device has
// 'timestamp-query', else by the wall clock on a drained queue); until that finishes a size heuristic
// decides. No pick changes a result: every config of a family (tiles; subgroup kernels) adds an
// output's terms in the same order, K splits follow the shape alone (planSplits), the family
// follows the shape and the subgroup checks (family()), and matmul's own stream-K (autoStreamK) the
// shape and the device, on a fixed tile.
// CPU adapters (lavapipe, SwiftShader) get one config and rolled loops: their shader JIT costs seconds.
import {
  F_ACC, F_BIAS, F_GELU, F_PREACT, F_RESIDUAL, reduceSource, sgKernelSource, spellingProbeSource, stagedPanel, streamFixupSource, tiledKey, tiledSource,
  type Kernel, type SgKernel, type SgSpelling, type TiledKernel, type TiledVariant,
} from './matmul-wgsl.js';
import { castF32ToF16 } from './cast.js';
import { geluForward } from './gelu.js';
import { bindingBytes, requireBindable } from './checks.js';
import { KernelProfiler } from './profiler.js';
import { scratchBuffer } from './rows.js';
import { CommandBatch, getPipeline, gpuShaderForm, grid, isCpuAdapter, Params, subgroupInfo, type Binding } from './runtime.js';

export interface MatmulDims {
  M: number;
  N: number;
  K: number;
  /** Default 1. */
  batch?: number;
  /** A stored [K, M] (row-major) instead of [M, K]. */
  transA?: boolean;
  /** B stored [N, K] instead of [K, N]. */
  transB?: boolean;
  /** Per-batch element strides; default dense; 0 = broadcast (e.g. shared weights). */
  strideA?: number;
  strideB?: number;
  strideC?: number;
  /** GELU (erf form, as PyTorch), applied after the bias. */
  activation?: 'none' | 'gelu';
  /** C += result (gradient accumulation); not combined with activation or residual. */
  accumulate?: boolean;
  /** C's element type (default f32). 'f16': C holds f16 bits, two per 32-bit word, rounded as
   *  castF32ToF16 rounds, for a product whose only reader is an f16 matmul (the pass a cast would take
   *  is saved). Needs N and strideC even; not with accumulate. preact, if given, is f16 too (what
   *  mixed precision keeps for the GELU backward, as PyTorch's autocast keeps the GELU's f16 input),
   *  and the GELU takes that rounded pre-activation, as autocast's does: C = gelu(f16(z)) in f16, so
   *  geluForward on the f16 preact gives C's bits again (without a residual). */
  output?: 'f32' | 'f16';
}

export interface MatmulBuffers {
  a: Binding;
  b: Binding;
  c: Binding;
  /** [N] */
  bias?: Binding;
  /** Same layout as C. */
  residual?: Binding;
  /** Receives the pre-activation (after bias), same layout and element type as C; the GELU backward
   *  needs it. */
  preact?: Binding;
}

export type MatmulPrecision = 'f32' | 'f16';

/**
 * A tile of the register-blocked kernel: workgroup tile BM×BN, K step BK, TM×TN outputs per thread
 * (multiples of 4), so a workgroup has (BM/TM)·(BN/TN) threads. LX: how many threads along N each group
 * of 32 consecutive invocations spans (a power of two; default min(BN/TN, 32), a full row). A narrower
 * block (LX 8: 8 × 4 threads) reads 8 B vectors and 4 A vectors from workgroup memory per k where a
 * 16 × 2 block reads 16 and 2: fewer bytes per step on GPUs whose subgroups are 32 wide.
 */
export interface TileSpec {
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
  LX?: number;
}
/**
 * A subgroup-matrix kernel (f16 inputs, f32 accumulation): `subgroups` subgroups share a workgroup
 * tile BM×BN, each computing FM×FN 16×16 fragments. Per K step of BK (a multiple of 16) the workgroup
 * copies A and B panels into `buffers` (1 or 2) panel buffers of workgroup memory; with 0 each
 * subgroup loads its fragments straight from memory (no panels, no barriers in the K loop).
 */
export interface SubgroupSpec {
  BM: number;
  BN: number;
  BK: number;
  subgroups: number;
  FM: number;
  FN: number;
  buffers: 0 | 1 | 2;
}
/** A kernel given by its parameters instead of a config name (for exploring tiles: `bench sweep`). */
export type MatmulKernelSpec = TileSpec | SubgroupSpec;
export type { SgSpelling };

/** The named tile configs. Those needing more than WebGPU's default 16 KiB of workgroup memory run only where the adapter has it. */
export const MATMUL_TILES = {
  small: { BM: 32, BN: 32, BK: 16, TM: 4, TN: 4 },
  mid: { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 },
  tall: { BM: 128, BN: 64, BK: 8, TM: 8, TN: 4 },
  large: { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 },
  // Autotune candidates: fewer barriers per K (mid32, large16, tall16, wide32), a wider B panel (wide).
  // wide won most fp32 shapes on an H100 at 23.6–30 TFLOP/s; tall16 is its transpose (A panel
  // twice B's), wide32 halves its barriers and needs 48 KiB of workgroup memory (an H100 has 48).
  mid32: { BM: 64, BN: 64, BK: 32, TM: 4, TN: 4 },
  wide: { BM: 64, BN: 128, BK: 16, TM: 4, TN: 8 },
  large16: { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8 },
  tall16: { BM: 128, BN: 64, BK: 16, TM: 8, TN: 4 },
  wide32: { BM: 64, BN: 128, BK: 32, TM: 4, TN: 8 },
  // The two H100 winners with 8 × 4 thread blocks per 32 invocations: per k, a 32-wide subgroup reads
  // 8 B and 4 A vectors from workgroup memory instead of 16 and 2 (3 wavefronts instead of 5 in wide).
  'wide-lx8': { BM: 64, BN: 128, BK: 16, TM: 4, TN: 8, LX: 8 },
  'large16-lx8': { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8, LX: 8 },
  // The fastest of 145 tiles on an H200's 4096³ (bench sweep, 36.4 TFLOP/s against 30.5 for tall16):
  // 512 invocations, 48 KiB of workgroup memory.
  xlarge16: { BM: 128, BN: 256, BK: 16, TM: 8, TN: 8 },
  // Its transpose in 8-wide thread blocks: in the H200 sweep of 2026-11-27 it ran 4096³ at 39.0 TFLOP/s
  // against 38.2 for xlarge16, the dW layer shapes 3 % faster, the others within 1.3 % either way.
  xtall16: { BM: 256, BN: 128, BK: 16, TM: 8, TN: 8, LX: 8 },
  // xlarge16's tile with 16×8 and 8×16 outputs per invocation: 256 invocations, which may hold up to
  // 255 registers each where xlarge16's 512 are held to 128 (and use them all on an H200).
  'xlarge16-16x8': { BM: 128, BN: 256, BK: 16, TM: 16, TN: 8 },
  'xlarge16-8x16': { BM: 128, BN: 256, BK: 16, TM: 8, TN: 16 },
} as const satisfies Record<string, TileSpec>;
export type MatmulTileName = keyof typeof MATMUL_TILES;
/** The f16 tensor-core kernels (need the device feature): 'subgroup-matrix' gives each one-subgroup
 *  workgroup a 64×32 tile read straight from memory; 'subgroup-matrix-128' stages 128×128 tiles of A and
 *  B in workgroup memory for 8 subgroups of 64×32 each, reading A and B from memory 3× less often per
 *  product; 'subgroup-matrix-128-4sg' shares such tiles among 4 subgroups of 64×64 each, which load
 *  half as many fragments from workgroup memory per multiply-accumulate (but hold twice the
 *  accumulators); 'subgroup-matrix-128-4sg-db' is that kernel with two panel buffers, one barrier per
 *  K step instead of two (44 KiB of workgroup memory: H100-class only). */
export type SubgroupConfigName = 'subgroup-matrix' | 'subgroup-matrix-128' | 'subgroup-matrix-128-4sg' | 'subgroup-matrix-128-4sg-db';
export type MatmulConfigName = MatmulTileName | SubgroupConfigName;

export interface MatmulOptions {
  precision?: MatmulPrecision;
  /** Force a config (or a kernel by its parameters) instead of the tuned/heuristic choice. */
  config?: MatmulConfigName | MatmulKernelSpec;
  /** Force the number of K splits (1 = none); the default is a heuristic. */
  splitK?: number;
  /** How a subgroup-matrix kernel applies an epilogue (bias, GELU, residual, preact, accumulate, or
   *  an f16 C): 'fused' takes each fragment through workgroup memory inside the kernel; 'pass' has the
   *  kernel store its f32 fragments to a workspace, and a second pass (the K splits' reduction, one
   *  split) applies the epilogue. The same bits either way. Default: setSubgroupEpilogue's (first
   *  'fused'). Tiled kernels stage every C and ignore it; so does a K split, whose reduction applies the
   *  epilogue anyway. */
  epilogue?: SubgroupEpilogue;
  /** Stream-K, for the tiled kernels (subgroup-matrix ones ignore it): this many workgroups share the
   *  product's k-iterations (output tiles × K steps) evenly, instead of one workgroup per tile, so no
   *  last wave of tiles leaves most of the GPU idle. Give it the number of workgroups the GPU holds at
   *  once (for the 512-invocation tiles, one per SM: 132 on an H100 or H200 SXM). A workgroup writes
   *  the tiles it covers whole; a second pass adds up those that workgroups share. Its sums follow the
   *  tile config and this count (the default's follow the shape alone). Not with splitK > 1.
   *  setMatmulStreamK lets matmul choose it where the options say nothing of it. */
  streamK?: number;
}

export type SubgroupEpilogue = 'fused' | 'pass';

const TILE_NAMES = Object.keys(MATMUL_TILES) as MatmulTileName[];
/** The staged configs (the direct 'subgroup-matrix' kernel is DIRECT below: one subgroup of 4×2
 *  fragments = 64×32, the best per-subgroup tile of the direct kernel on an H200). */
const SG_STAGED: Record<Exclude<SubgroupConfigName, 'subgroup-matrix'>, SubgroupSpec> = {
  'subgroup-matrix-128': { BM: 128, BN: 128, BK: 32, subgroups: 8, FM: 4, FN: 2, buffers: 1 },
  'subgroup-matrix-128-4sg': { BM: 128, BN: 128, BK: 32, subgroups: 4, FM: 4, FN: 4, buffers: 1 },
  'subgroup-matrix-128-4sg-db': { BM: 128, BN: 128, BK: 32, subgroups: 4, FM: 4, FN: 4, buffers: 2 },
};
/** The subgroup-matrix configs, in the order the autotune tries them. */
export const SUBGROUP_CONFIGS: readonly SubgroupConfigName[] = ['subgroup-matrix', ...(Object.keys(SG_STAGED) as SubgroupConfigName[])];
const isSg = (c: MatmulConfigName): c is SubgroupConfigName => (SUBGROUP_CONFIGS as readonly string[]).includes(c);

const DIRECT: SgKernel = { sg: true, key: 'subgroup-matrix', BM: 64, BN: 32, BK: 16, subgroups: 1, FM: 4, FN: 2, buffers: 0 };

const isPow2 = (x: number) => x > 0 && (x & (x - 1)) === 0;

function tileKernel(key: string, t: TileSpec): TiledKernel {
  const { BM, BN, BK, TM, TN } = t;
  return { sg: false, key, BM, BN, BK, TM, TN, LX: t.LX ?? Math.min(BN / TN, 32) };
}

/** The kernel of a config name or spec; a malformed spec is a RangeError naming what is wrong. */
function kernelOf(config: MatmulConfigName | MatmulKernelSpec): Kernel {
  if (typeof config === 'string') {
    if (config === 'subgroup-matrix') return DIRECT;
    if (config in SG_STAGED) return { sg: true, key: config, ...SG_STAGED[config as keyof typeof SG_STAGED] };
    if (config in MATMUL_TILES) return tileKernel(config, MATMUL_TILES[config as MatmulTileName]);
    throw new RangeError(`matmul: unknown config '${config}' (have ${[...TILE_NAMES, ...SUBGROUP_CONFIGS].join(', ')})`);
  }
  const bad = (why: string) => new RangeError(`matmul: kernel spec ${JSON.stringify(config)}: ${why}`);
  const ints = (names: string[]) => {
    for (const n of names) {
      const v = (config as unknown as Record<string, unknown>)[n];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 1024) throw bad(`${n} must be an integer in [1, 1024]`);
    }
  };
  if ('subgroups' in config) {
    ints(['BM', 'BN', 'BK', 'subgroups', 'FM', 'FN']);
    const { BM, BN, BK, subgroups, FM, FN, buffers } = config;
    if (BK % 16 !== 0) throw bad('BK must be a multiple of 16');
    if (buffers !== 0 && buffers !== 1 && buffers !== 2) throw bad('buffers must be 0, 1 or 2');
    if (BM % (16 * FM) !== 0 || BN % (16 * FN) !== 0 || (BM / (16 * FM)) * (BN / (16 * FN)) !== subgroups)
      throw bad(`${subgroups} subgroups of ${16 * FM}×${16 * FN} must tile ${BM}×${BN}`);
    return { sg: true, key: `sg${BM}x${BN}x${BK}_${subgroups}sg_${FM}x${FN}_b${buffers}`, BM, BN, BK, subgroups, FM, FN, buffers };
  }
  ints(['BM', 'BN', 'BK', 'TM', 'TN', ...(config.LX === undefined ? [] : ['LX'])]);
  const { BM, BN, BK, TM, TN } = config;
  if (TM % 4 !== 0 || TN % 4 !== 0 || BK % 4 !== 0) throw bad('TM, TN and BK must be multiples of 4');
  if (BM % TM !== 0 || BN % TN !== 0) throw bad('TM must divide BM and TN divide BN');
  const k = tileKernel('', config);
  const TX = BN / TN, TY = BM / TM;
  if (k.LX !== Math.min(TX, 32) && (!isPow2(k.LX) || k.LX > 32 || TX % k.LX !== 0 || TY % (32 / k.LX) !== 0))
    throw bad(`LX must be a power of two ≤ 32 dividing BN/TN = ${TX}, with 32/LX dividing BM/TM = ${TY}`);
  if (TY * BN > 2 * BK * BM) throw bad('the epilogue stages BM/TM rows of BN in the A tiles: needs BN/TM ≤ 2·BK');
  return { ...k, key: `t${BM}x${BN}x${BK}_${TM}x${TN}${k.LX === Math.min(TX, 32) ? '' : `_lx${k.LX}`}` };
}
/** At most this many K splits. The H200's weight gradients ran as their workgroups filled its 132 SMs
 *  (xlarge16, one workgroup per SM): 288 workgroups (proj dW, 18 tiles × 16 splits, 2.2 waves of 3)
 *  at 26.3 TFLOP/s, 864 and 1080 (6.5 of 7 waves, 8.2 of 9) at 34.1 and 33.5, about 36 per full wave
 *  each. 16 held proj dW to 288; at 57 its partial sums add ~6 % of traffic. */
const MAX_SPLITS = 64;
const MAX_GROUPS = 65535;

// ---------------------------------------------------------------------------------------------
// Shapes

interface Shape {
  M: number;
  N: number;
  K: number;
  batch: number;
  tA: boolean;
  tB: boolean;
  sA: number;
  sB: number;
  sC: number;
  gelu: boolean;
  acc: boolean;
  /** C is f16 (MatmulDims.output). */
  half: boolean;
}

function resolve(d: MatmulDims): Shape {
  const int = (name: string, v: unknown, min = 0) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 0xffffffff)
      throw new RangeError(`matmul: ${name} must be an integer ≥ ${min} (and < 2^32), got ${v} (M=${d.M}, N=${d.N}, K=${d.K})`);
    return v;
  };
  const M = int('M', d.M), N = int('N', d.N), K = int('K', d.K);
  const batch = int('batch', d.batch ?? 1);
  const sA = int('strideA', d.strideA ?? M * K), sB = int('strideB', d.strideB ?? K * N), sC = int('strideC', d.strideC ?? M * N);
  const act = d.activation ?? 'none';
  if (act !== 'none' && act !== 'gelu') throw new RangeError(`matmul: unknown activation '${act}'`);
  const output = d.output ?? 'f32';
  if (output !== 'f32' && output !== 'f16') throw new RangeError(`matmul: output must be 'f32' or 'f16', got '${output}'`);
  if (batch > 1 && sC === 0 && M * N > 0) throw new RangeError(`matmul: strideC = 0 with batch ${batch} would make the batch items race on one C`);
  if (batch > 1 && sC < M * N && sC > 0) throw new RangeError(`matmul: strideC ${sC} < M·N = ${M * N}: batch items of C would overlap`);
  // Strides only matter between batch items; normalising them keeps kernel choice independent of unused values.
  return { M, N, K, batch, tA: !!d.transA, tB: !!d.transB, sA: batch > 1 ? sA : 0, sB: batch > 1 ? sB : 0, sC: batch > 1 ? sC : 0, gelu: act === 'gelu', acc: !!d.accumulate, half: output === 'f16' };
}

/** Whether A and B can be read and C (bias, residual, preact) written as vec4: every contiguous
 *  dimension and batch stride a multiple of 4. All or nothing, to keep the pipeline count small. */
function isVec(s: Shape): boolean {
  return (s.tA ? s.M : s.K) % 4 === 0 && (s.tB ? s.K : s.N) % 4 === 0 && s.N % 4 === 0 && s.sA % 4 === 0 && s.sB % 4 === 0 && s.sC % 4 === 0;
}

function checkBuffers(bufs: MatmulBuffers, s: Shape, prec: MatmulPrecision): void {
  const dims = `M=${s.M}, N=${s.N}, K=${s.K}, batch=${s.batch}${s.tA ? ', transA' : ''}${s.tB ? ', transB' : ''}`;
  const need = (name: string, b: Binding | undefined, elems: number, bytesPer: number) => {
    if (!b) return;
    const have = bindingBytes(b);
    if (have < elems * bytesPer)
      throw new RangeError(`matmul: ${name} holds ${have} bytes, needs ${elems * bytesPer} (${elems} ${bytesPer === 2 ? 'f16' : 'f32'} for ${dims})`);
  };
  const span = (stride: number, item: number) => (s.batch === 0 || item === 0 ? 0 : (s.batch - 1) * stride + item);
  const inB = prec === 'f16' ? 2 : 4;
  need('a', bufs.a, span(s.sA, s.M * s.K), inB);
  need('b', bufs.b, span(s.sB, s.K * s.N), inB);
  need('c', bufs.c, span(s.sC, s.M * s.N), s.half ? 2 : 4);
  need('bias', bufs.bias, s.N, 4);
  need('residual', bufs.residual, span(s.sC, s.M * s.N), 4);
  need('preact', bufs.preact, span(s.sC, s.M * s.N), s.half ? 2 : 4);
  if (s.acc && (s.gelu || bufs.residual)) throw new Error(`matmul: accumulate cannot be combined with activation or residual (${dims})`);
  if (s.half && (s.acc || s.N % 2 || s.sC % 2))
    throw new RangeError(`matmul: an f16 output needs N and strideC even and no accumulate (${dims}${s.sC ? `, strideC=${s.sC}` : ''}${s.acc ? ', accumulate' : ''})`);
  const given = (l: [string, Binding | undefined][]) => l.filter((e): e is [string, Binding] => e[1] !== undefined);
  requireBindable('matmul', given([['c', bufs.c], ['preact', bufs.preact]]), given([['a', bufs.a], ['b', bufs.b], ['bias', bufs.bias], ['residual', bufs.residual]]));
}

// ---------------------------------------------------------------------------------------------
// Shader variants (the WGSL itself: matmul-wgsl.ts)

/** `half`: C as f16 (default the shape's; a K split's partial sums are f32). */
function tiledVariant(device: GPUDevice, tile: TiledKernel, prec: MatmulPrecision, s: Shape, half = s.half): TiledVariant {
  const cpu = !gpuShaderForm(device);
  return { tile, prec, vec: isVec(s), cpu, ...(cpu ? {} : { layout: { tA: s.tA, tB: s.tB } }), ...(half ? { half } : {}) };
}

/** Workgroup memory of a staged kernel with K step bk: A and B panels (f16, padded rows) per buffer and
 *  one f32 fragment per subgroup. */
export function subgroupStagedBytes(config: Exclude<SubgroupConfigName, 'subgroup-matrix'> | SubgroupSpec, bk?: number): number {
  const { BM, BN, BK, subgroups, FM, FN, buffers } = typeof config === 'string' ? SG_STAGED[config] : config;
  bk ??= BK;
  // each panel in the larger of its two layouts (which one a product takes follows its transposes)
  const halves = (extent: number, W: number, mnOuter: boolean) => {
    const p = stagedPanel(extent, W, bk, mnOuter);
    return p.blocks * p.size;
  };
  const panel = (extent: number, W: number) => 2 * Math.max(halves(extent, W, true), halves(extent, W, false));
  return buffers * (panel(BM, 16 * FM) + panel(BN, 16 * FN)) + subgroups * 256 * 4;
}

// ---------------------------------------------------------------------------------------------
// Per-device state: feature support, tuned choices

interface DeviceState {
  dummyR?: GPUBuffer;
  dummyW?: GPUBuffer;
  choices: Map<string, MatmulConfigName>;
  tuning: Map<string, Promise<MatmulConfigName>>;
  /** Per shape class, each candidate's best time (ms) on the shrunk tuning problem. */
  tuneTimes: Map<string, Partial<Record<MatmulConfigName, number>>>;
  /** Per subgroup kernel (by key), whether it compiled and agreed with the tiled kernel here. */
  sgChecks: Map<string, Promise<boolean>>;
  /** The subgroup configs whose check has passed so far. */
  sgPassed: Set<SubgroupConfigName>;
  /** Those whose f16-output variant passed too (products with an f16 C take the others' family only
   *  through these, so a failing f16 variant costs just those products the tensor cores). */
  sgHalfPassed: Set<SubgroupConfigName>;
  /** subgroupSize's answer, read once from the adapter info (every subgroup-matrix launch asks). */
  sgSize?: number;
  /** How this device's compiler takes the subgroup-matrix builtins (sgSpelling), once probed. */
  sgSpelling?: SgSpelling;
  sgSpellingProbe?: Promise<SgSpelling>;
}

const states = new WeakMap<GPUDevice, DeviceState>();
function state(device: GPUDevice): DeviceState {
  let s = states.get(device);
  if (!s) states.set(device, (s = { choices: new Map(), tuning: new Map(), tuneTimes: new Map(), sgChecks: new Map(), sgPassed: new Set(), sgHalfPassed: new Set() }));
  return s;
}

let autotuneOn = true;
/** Turns the background autotune at first use on or off (off: the size heuristic decides). */
export function setMatmulAutotune(on: boolean): void {
  autotuneOn = on;
}

// An H200 ran the model's forward products, all with an epilogue, at ~80 TFLOP/s in the f16 step
// (2026-11-28) where plain products of those shapes ran ~160: the fused epilogue's 16 rounds of
// workgroup barriers per tile are the suspect, and 'pass' the alternative, not yet timed on a GPU.
let sgEpilogueDefault: SubgroupEpilogue = 'fused';
/** The subgroup-matrix kernels' epilogue where MatmulOptions.epilogue does not say (see there). */
export function setSubgroupEpilogue(mode: SubgroupEpilogue): void {
  sgEpilogueDefault = epilogueMode('setSubgroupEpilogue', mode);
}

/** Stream-K by matmul's own choice (setMatmulStreamK): 'off', 'auto', or a resident workgroup count. */
export type StreamKSetting = 'off' | 'auto' | number;
let streamKSetting: StreamKSetting = 'off';
/** Where a product's options say nothing of configs, K splits or stream-K, matmul may run it stream-K
 *  (MatmulOptions.streamK) by itself: 'off' (the default) never; 'auto' on GPUs whose resident
 *  workgroup count it knows (RESIDENT_WORKGROUPS); a number, as that count on any device. It then runs
 *  the product on the first of STREAM_K_TILES that fits, not the tuned config, so the choice and the
 *  sums follow the shape and the device alone, where the last wave of that tile's workgroups would
 *  leave STREAM_K_IDLE of the GPU's time or more idle (and K is not split, nor under STREAM_K_MIN_K). */
export function setMatmulStreamK(setting: StreamKSetting): void {
  if (setting !== 'off' && setting !== 'auto' && !isWorkgroupCount(setting)) throw new RangeError(`setMatmulStreamK: expected 'off', 'auto' or an integer in [1, ${MAX_GROUPS}], got ${JSON.stringify(setting)}`);
  streamKSetting = setting;
}

/** Whether n is a stream-K workgroup count: an integer in [1, MAX_GROUPS] (one dispatch dimension). */
const isWorkgroupCount = (n: unknown) => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= MAX_GROUPS;

/** Workgroups of 512 invocations that a GPU holds at once (one per SM at 128 registers), by its
 *  adapter's device name. */
const RESIDENT_WORKGROUPS: Record<string, number> = { 'nvidia-h100-80gb-hbm3': 132, 'nvidia-h200': 132 };
/** The tiles matmul's own stream-K runs on: the first that fits the device. */
const STREAM_K_TILES: MatmulTileName[] = ['xlarge16', 'large16'];
const STREAM_K_IDLE = 0.02;
const STREAM_K_MIN_K = 512;

/** The tile and workgroups of matmul's own stream-K for this product (setMatmulStreamK), or none (also
 *  for products of the subgroup-matrix family). */
function autoStreamK(device: GPUDevice, s: Shape, prec: MatmulPrecision): { config: MatmulTileName; streamK: number } | undefined {
  if (streamKSetting === 'off') return undefined;
  const name = (device as unknown as { adapterInfo?: { device?: string } }).adapterInfo?.device ?? '';
  const resident = streamKSetting === 'auto' ? RESIDENT_WORKGROUPS[name] ?? 0 : streamKSetting;
  const config = STREAM_K_TILES.find((t) => namedTileFits(device, t));
  if (!resident || !config || s.K < STREAM_K_MIN_K || planSplits(device, s, false) > 1 || family(device, s, prec).length) return undefined;
  const { BM, BN } = MATMUL_TILES[config];
  const tiles = Math.ceil(s.M / BM) * Math.ceil(s.N / BN) * s.batch;
  const slots = Math.ceil(tiles / resident) * resident;
  return tiles >= resident && (slots - tiles) / slots >= STREAM_K_IDLE ? { config, streamK: resident } : undefined;
}

/** `mode`, or a RangeError naming `who` where it is not one. */
function epilogueMode(who: string, mode: SubgroupEpilogue): SubgroupEpilogue {
  if (mode !== 'fused' && mode !== 'pass') throw new RangeError(`${who}: epilogue must be 'fused' or 'pass', got '${mode}'`);
  return mode;
}

function tileFits(device: GPUDevice, k: TiledKernel): boolean {
  const threads = (k.BM / k.TM) * (k.BN / k.TN);
  const lim = device.limits;
  return threads <= lim.maxComputeInvocationsPerWorkgroup && threads <= lim.maxComputeWorkgroupSizeX && 2 * k.BK * (k.BM + k.BN) * 4 <= lim.maxComputeWorkgroupStorageSize;
}

/** Whether a named tile fits this device. */
const namedTileFits = (device: GPUDevice, name: MatmulTileName) => tileFits(device, tileKernel(name, MATMUL_TILES[name]));

/** Subgroup size for the subgroup-matrix kernels, or 0 where they cannot run. */
function subgroupSize(device: GPUDevice): number {
  return (state(device).sgSize ??= readSubgroupSize(device));
}

function readSubgroupSize(device: GPUDevice): number {
  if (!device.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName) || !device.features.has('shader-f16')) return 0;
  const info = subgroupInfo(device);
  const lower = (x: unknown) => String(x).toLowerCase();
  const ok = [...(info.subgroupMatrixConfigs ?? [])].some((c) => lower(c.componentType) === 'f16' && lower(c.resultComponentType) === 'f32' && c.M === 16 && c.N === 16 && c.K === 16);
  const size = info.subgroupMinSize ?? 0;
  // Whole subgroups per workgroup: needs a fixed subgroup size.
  return ok && size > 0 && size === info.subgroupMaxSize && size <= device.limits.maxComputeInvocationsPerWorkgroup ? size : 0;
}

/** Whether the device can run subgroup kernel `k` at all (the check still has to pass). */
function sgDeviceFits(device: GPUDevice, k: SgKernel): boolean {
  const sg = subgroupSize(device);
  if (!sg) return false;
  const wg = k.subgroups * sg, lim = device.limits;
  // a staged kernel's invocations copy whole vec4s of both panels
  const copies = k.buffers === 0 || ((k.BM * k.BK) % (4 * wg) === 0 && (k.BN * k.BK) % (4 * wg) === 0);
  // several subgroups take their offsets from the subgroup_id builtin
  return (k.subgroups === 1 || device.features.has('subgroups')) && copies && wg <= lim.maxComputeInvocationsPerWorkgroup && wg <= lim.maxComputeWorkgroupSizeX && subgroupStagedBytes(k) <= lim.maxComputeWorkgroupStorageSize;
}

function subgroupFits(s: Shape, k: SgKernel): boolean {
  const al = (x: number) => x % 16 === 0;
  return s.M % k.BM === 0 && s.N % k.BN === 0 && al(s.K) && al(s.sA) && al(s.sB) && al(s.sC);
}

function sgPipeline(device: GPUDevice, k: SgKernel, tA: boolean, tB: boolean, half = false): GPUComputePipeline {
  const sg = subgroupSize(device);
  // The spelling is probed before a kernel's check (sgSelfCheck), so before any product that follows
  // the checks takes it; a product forced to a subgroup config before any check takes the older
  // spelling, which every Dawn with subgroup matrices so far compiles.
  const spelling = state(device).sgSpelling ?? 'argument';
  return getPipeline(device, `matmul_${k.key}_sg${sg}_t${+tA}${+tB}${spelling === 'argument' ? '_majorarg' : ''}${half ? '_h' : ''}`, () => sgKernelSource(k, sg, tA, tB, k.BK, spelling, half));
}

/** The spelling of the subgroup-matrix builtins this device's compiler takes (SgSpelling): a shader in
 *  the current one, compiled once, else the older one. For callers of subgroupMatrixSource. */
export function subgroupMatrixSpelling(device: GPUDevice): Promise<SgSpelling> {
  const st = state(device);
  st.sgSpellingProbe ??= compilesCleanly(device, () => device.createShaderModule({ code: spellingProbeSource() })).then(
    (ok) => (st.sgSpelling = ok ? 'template' : 'argument'),
  );
  return st.sgSpellingProbe;
}

/** Whether `build` (synchronous creation of shader modules and pipelines) raises no validation or
 *  internal error on `device`; a throw counts as one. Push, build and pop run with no await between
 *  them, so the scopes catch `build`'s errors only, and they are popped whatever happens. A shader
 *  the driver rejects then disables a path instead of raising an uncaptured error (or timing as an
 *  instant no-op in a tune). */
async function compilesCleanly(device: GPUDevice, build: () => void): Promise<boolean> {
  device.pushErrorScope('validation');
  device.pushErrorScope('internal');
  let threw = false;
  try {
    build();
  } catch {
    threw = true;
  }
  const errs = await Promise.all([device.popErrorScope(), device.popErrorScope()]);
  return !threw && !errs.some((e) => e);
}

/** The config names this device can run for `precision` (subgroup-matrix: supported, not necessarily validated). */
export function matmulConfigs(device: GPUDevice, precision: MatmulPrecision = 'f32'): MatmulConfigName[] {
  const names: MatmulConfigName[] = TILE_NAMES.filter((n) => namedTileFits(device, n));
  if (precision === 'f16') names.push(...SUBGROUP_CONFIGS.filter((c) => sgDeviceFits(device, sgKernelOf(c))));
  return names;
}

/** A key naming the kernel a config or spec runs, the same for a config and the spec of its
 *  parameters (defaults filled in): a search need not time one kernel twice. */
export function matmulKernelKey(config: MatmulConfigName | MatmulKernelSpec): string {
  return JSON.stringify(Object.entries(matmulKernelParams(config)).sort());
}

/** The kernel parameters of a config name or spec (defaults filled in: a tile's LX). */
export function matmulKernelParams(config: MatmulConfigName | MatmulKernelSpec): Record<string, number> {
  const { sg: _sg, key: _key, ...params } = kernelOf(config);
  return params;
}

/** Whether this device can run kernel spec `spec` (workgroup size and memory, subgroup-matrix support);
 *  a malformed spec throws. A subgroup kernel must still pass checkSubgroupMatrix before it is trusted. */
export function matmulSpecFits(device: GPUDevice, spec: MatmulKernelSpec): boolean {
  const k = kernelOf(spec);
  return k.sg ? sgDeviceFits(device, k) : tileFits(device, k);
}

/** The subgroup configs a product takes: for f16 inputs those that have passed their check here and
 *  fit it (on an H100 they ran ~3× the tiled f16 kernels); none, and it takes the tiles. Within a
 *  family every config adds an output's terms in the same order (tiles: k by k; subgroup kernels:
 *  16-deep steps along K), so the autotune's pick never changes a result; the family does, so it
 *  depends on the shape and the checks only (await checkSubgroupMatrices before the first f16 product). */
function family(device: GPUDevice, s: Shape, prec: MatmulPrecision): SubgroupConfigName[] {
  if (prec !== 'f16') return [];
  const st = state(device);
  return SUBGROUP_CONFIGS.filter((c) => (s.half ? st.sgHalfPassed : st.sgPassed).has(c) && subgroupFits(s, sgKernelOf(c)));
}

/** The untuned choice: the subgroup config of the product's family that has won the most tunes so far,
 *  else the size heuristic's tile. */
function heuristic(device: GPUDevice, s: Shape, prec: MatmulPrecision): MatmulConfigName {
  const sg = family(device, s, prec);
  if (sg.length) {
    const wins = (c: SubgroupConfigName) => [...state(device).choices.values()].filter((x) => x === c).length;
    return sg.reduce((best, c) => (wins(c) > wins(best) ? c : best));
  }
  return heuristicTile(device, s);
}

function heuristicTile(device: GPUDevice, s: Shape): MatmulTileName {
  // CPU adapters run tests, not workloads: one config keeps their (slow) shader JIT to two pipelines.
  if (isCpuAdapter(device) && namedTileFits(device, 'mid')) return 'mid';
  const tiles = (n: MatmulTileName) => Math.ceil(s.M / MATMUL_TILES[n].BM) * Math.ceil(s.N / MATMUL_TILES[n].BN) * s.batch;
  const ok = (n: MatmulTileName) => namedTileFits(device, n);
  // Enough workgroups to fill a large GPU several times over: the biggest tile that does.
  if (ok('large') && tiles('large') >= 256 && s.N > 64) return 'large';
  if (ok('tall') && tiles('tall') >= 256) return 'tall';
  if (ok('mid') && tiles('mid') >= 64) return 'mid';
  return ok('small') ? 'small' : TILE_NAMES.find(ok)!;
}

/** Workgroups that make the last wave's idle share small even on the largest GPUs (an H100 keeps
 *  132 SMs × 2–4 of these workgroups resident): a weight gradient with K = 25600 and 288 output tiles
 *  ran at 17 TFLOP/s unsplit there, against 28 for shapes with thousands of tiles. */
const TARGET_GROUPS = 1024;
/** Outputs with this many reference-tile workgroups or more are not split: a split then buys little
 *  tail (4096³'s 512: ~4 waves of 132 on an H200 either way) and costs a reduction pass. On an H200
 *  (2026-11-27) 4096³ ran unsplit at 38.9 TFLOP/s against 38.2 in two splits (37.3 / 36.7 with
 *  another store, 31.0 / 30.6 on another tile). */
const SPLIT_BELOW = 512;

/** K splits follow the shape alone, never the config, so that no choice of the autotune (a timing,
 *  which differs from run to run) changes a result: every tile config adds an output's k terms in
 *  the same order, and splits are planned on this reference tile (xlarge16's, the usual winner on
 *  large GPUs) with boundaries at multiples of SPLIT_ALIGN k, whatever the tile's K step. */
const SPLIT_REF = { BM: 128, BN: 256 };
const SPLIT_ALIGN = 16;

const refGroups = (s: Shape) => Math.ceil(s.M / SPLIT_REF.BM) * Math.ceil(s.N / SPLIT_REF.BN) * s.batch;

/** Whether kernels of the subgroup (`sg`) or tiled family can split this product's K n ways: at
 *  least 256 of K per split, partial sums within one binding, and the subgroup kernels' slicing rule. */
function splitsFit(device: GPUDevice, s: Shape, sg: boolean, n: number): boolean {
  if (n === 1) return true;
  if (n > MAX_SPLITS || n > Math.floor(s.K / 256)) return false;
  if (n * s.batch * s.M * s.N * 4 > device.limits.maxStorageBufferBindingSize) return false;
  return sg ? sgSplitFits(s, n) : true;
}

/** K splits where the output gives too few workgroups (under SPLIT_BELOW) and K is long enough to
 *  share: enough for TARGET_GROUPS workgroups of the reference tile, where they fit. A shape takes
 *  one kernel family (subgroup or tiled, see family()), so this too depends on the shape alone. */
function planSplits(device: GPUDevice, s: Shape, sg: boolean): number {
  if (refGroups(s) >= SPLIT_BELOW || s.K < 1024) return 1;
  let n = Math.min(MAX_SPLITS, Math.ceil(TARGET_GROUPS / refGroups(s)), Math.floor(s.K / 256));
  while (n > 1 && !splitsFit(device, s, sg, n)) n--;
  return n;
}

/** The subgroup kernels split K as a batch of K-slices: A and B must both be stored K-major (Aᵀ·B, the
 *  weight gradients, whose short outputs are the ones that need splitting) so each slice is a plain
 *  offset, and the slices must be whole 16-steps of equal length. */
function sgSplitFits(s: Shape, splits: number): boolean {
  return s.tA && !s.tB && s.batch === 1 && s.K % (16 * splits) === 0;
}

/** Shapes of one class share a tune. The output size is classed by factors of 2, K by factors of 4:
 *  with output classes 4× wide, a 2304×768 weight gradient got the choice tuned on a 768×768 one,
 *  whose best tile and splits fill the GPU differently (22 TFLOP/s on an H200, against 34 with its own). */
function classKey(s: Shape, prec: MatmulPrecision): string {
  const log2 = (x: number) => Math.log2(Math.max(1, x));
  return `${prec}|t${+s.tA}${+s.tB}|v${+isVec(s)}|mn${Math.round(log2(s.M * s.N * s.batch))}|k${Math.round(log2(s.K) / 2)}`;
}

const TUNE_MIN_MACS = 2 ** 24; // below this a matmul is launch-bound: the heuristic is as good as any timing
const TUNE_MAX_MACS = 2 ** 33; // the tuning problem is shrunk to this (~17 GFLOP: ~0.6 ms fp32 on an H100)
const TUNE_MIN_K = 512; // tuneShape shrinks K down to this before the output

interface Plan {
  config: MatmulConfigName | MatmulKernelSpec;
  kernel: Kernel;
  splits: number;
  epilogue: SubgroupEpilogue;
  /** MatmulOptions.streamK's workgroups (absent or 0: none). */
  streamK?: number;
}

function plan(device: GPUDevice, s: Shape, prec: MatmulPrecision, opts: MatmulOptions, kick = true): Plan {
  let config = opts.config;
  // matmul's own stream-K (setMatmulStreamK), where the options leave it the choice
  const auto = config === undefined && opts.splitK === undefined && opts.streamK === undefined ? autoStreamK(device, s, prec) : undefined;
  if (auto) config = auto.config;
  else if (config !== undefined) {
    const k = kernelOf(config);
    const what = typeof config === 'string' ? `config '${config}'` : `kernel ${k.key}`;
    if (k.sg) {
      if (prec !== 'f16') throw new Error(`matmul: ${what} needs precision 'f16'`);
      if (!subgroupSize(device)) throw new Error(`matmul: ${what} is not available on this device (needs chromium-experimental-subgroup-matrix, shader-f16, f16→f32 16×16×16 configs and a fixed subgroup size)`);
      if (!sgDeviceFits(device, k)) throw new RangeError(`matmul: ${what} exceeds this device's workgroup limits`);
      if (!subgroupFits(s, k)) throw new RangeError(`matmul: ${what} needs M % ${k.BM}, N % ${k.BN}, K % 16 and strides % 16 = 0 (M=${s.M}, N=${s.N}, K=${s.K})`);
    } else if (!tileFits(device, k)) throw new RangeError(`matmul: ${what} exceeds this device's workgroup limits`);
  } else {
    const st = state(device);
    const key = classKey(s, prec);
    config = st.choices.get(key);
    // the class's tuned config, if it is of this shape's family (a class holds shapes that fit whole
    // subgroup tiles and shapes that do not)
    const sg = family(device, s, prec);
    if (config !== undefined && (sg.length ? !(sg as string[]).includes(config) : isSg(config))) config = undefined;
    if (config === undefined) {
      config = heuristic(device, s, prec);
      if (kick && autotuneOn && !isCpuAdapter(device) && s.M * s.N * s.K * s.batch >= TUNE_MIN_MACS && !st.tuning.has(key)) startTune(device, s, prec, key);
    }
  }
  if (opts.splitK !== undefined && (!Number.isInteger(opts.splitK) || opts.splitK < 1 || opts.splitK > 1024))
    throw new RangeError(`matmul: splitK must be an integer in [1, 1024], got ${opts.splitK}`);
  const kernel = kernelOf(config);
  if (kernel.sg && opts.splitK !== undefined && opts.splitK > 1 && !sgSplitFits(s, opts.splitK))
    throw new RangeError(`matmul: the subgroup-matrix kernels split K only for Aᵀ·B, batch 1, and K a multiple of 16 × splits (K=${s.K}, splitK=${opts.splitK})`);
  const epilogue = epilogueMode('matmul', opts.epilogue ?? sgEpilogueDefault);
  const streamK = opts.streamK ?? auto?.streamK ?? 0;
  if (opts.streamK !== undefined) {
    if (!isWorkgroupCount(streamK)) throw new RangeError(`matmul: streamK must be an integer in [1, ${MAX_GROUPS}], got ${opts.streamK}`);
    if ((opts.splitK ?? 1) > 1) throw new RangeError(`matmul: streamK and splitK ${opts.splitK} exclude each other (stream-K shares K among workgroups itself)`);
  }
  // the subgroup-matrix kernels ignore it
  const sk = kernel.sg ? 0 : streamK;
  return { config, kernel, splits: sk ? 1 : opts.splitK ?? planSplits(device, s, kernel.sg), epilogue, streamK: sk };
}

// ---------------------------------------------------------------------------------------------
// Launch

/** The epilogue flags and operand bindings; absent operands get stand-ins (read-only ones may share a
 *  buffer, the written one may not). */
function dummies(device: GPUDevice): { dr: GPUBuffer; dw: GPUBuffer } {
  const st = state(device);
  const dr = (st.dummyR ??= device.createBuffer({ label: 'matmul dummy (read)', size: 256, usage: GPUBufferUsage.STORAGE }));
  const dw = (st.dummyW ??= device.createBuffer({ label: 'matmul dummy (write)', size: 256, usage: GPUBufferUsage.STORAGE }));
  return { dr, dw };
}

function epilogue(device: GPUDevice, bufs: MatmulBuffers, s: Shape): { flags: number; epi: Binding[]; dr: GPUBuffer; dw: GPUBuffer } {
  const flags = (bufs.bias ? F_BIAS : 0) | (s.gelu ? F_GELU : 0) | (bufs.residual ? F_RESIDUAL : 0) | (bufs.preact ? F_PREACT : 0) | (s.acc ? F_ACC : 0);
  const { dr, dw } = dummies(device);
  return { flags, epi: [bufs.bias ?? dr, bufs.residual ?? dr, bufs.preact ?? dw], dr, dw };
}

function dispatchSg(batch: CommandBatch, pipe: GPUComputePipeline, bufs: MatmulBuffers, s: Shape, k: SgKernel, extra: Binding[]): void {
  const { flags, epi } = epilogue(batch.device, bufs, s);
  const tilesM = s.M / k.BM, tilesN = s.N / k.BN;
  const [x, y] = grid(tilesM * tilesN);
  const params = new Params().u32(s.M).u32(s.N).u32(s.K).u32(s.sA).u32(s.sB).u32(s.sC).u32(tilesM).u32(tilesN).u32(flags);
  batch.dispatch(pipe, [bufs.a, bufs.b, bufs.c, ...epi, ...extra], params, [x, y, s.batch]);
}

/** The subgroup kernel of a subgroup config name or spec (a tiled one is an error). */
function sgKernelOf(config: SubgroupConfigName | SubgroupSpec): SgKernel {
  const k = kernelOf(config);
  if (!k.sg) throw new RangeError(`matmul: ${JSON.stringify(config)} is not a subgroup-matrix kernel`);
  return k;
}

/** WGSL of subgroup config or spec `config` for subgroup size `sg` and the given transposes; a staged
 *  kernel steps K by `bk` (a multiple of 16, default its BK; tests shrink it to fit a CPU adapter's
 *  workgroup memory). Its builtins are spelled as `spelling` says (subgroupMatrixSpelling(device)
 *  tells which a device's compiler takes). `output` f16: the kernel for MatmulDims.output 'f16'. */
export function subgroupMatrixSource(config: SubgroupConfigName | SubgroupSpec, sg: number, tA: boolean, tB: boolean, bk?: number, spelling: SgSpelling = 'template', output: 'f32' | 'f16' = 'f32'): string {
  const k = sgKernelOf(config);
  return sgKernelSource(k, sg, tA, tB, bk ?? k.BK, spelling, output === 'f16');
}

/** Records subgroup config or spec `config` run by `pipeline`, a build of subgroupMatrixSource (for
 *  dims.output f16 with the fused epilogue, its f16 build, unsplit; else its f32 build). matmul passes
 *  the compiled kernel; tests on devices without subgroup matrices pass an emulation of it, with its
 *  `extra` bindings (from binding 6 on; the uniform follows them). */
export function recordSubgroupMatrix(
  batch: CommandBatch, pipeline: GPUComputePipeline, bufs: MatmulBuffers, dims: MatmulDims, config: SubgroupConfigName | SubgroupSpec,
  opts: { splitK?: number; epilogue?: SubgroupEpilogue } = {}, extra: Binding[] = [],
): void {
  const s = resolve(dims);
  const k = sgKernelOf(config);
  const splitK = opts.splitK ?? 1, epilogue = epilogueMode('recordSubgroupMatrix', opts.epilogue ?? sgEpilogueDefault);
  checkBuffers(bufs, s, 'f16');
  if (!subgroupFits(s, k)) throw new RangeError(`matmul: ${k.key} needs M % ${k.BM}, N % ${k.BN}, K % 16 and strides % 16 = 0`);
  if (splitK > 1 && !sgSplitFits(s, splitK)) throw new RangeError(`matmul: ${k.key} cannot split K=${splitK} ways here`);
  if (splitK > 1 && s.half) throw new RangeError(`matmul: one pipeline cannot split K for an f16 output (its partial sums are f32)`);
  recordSg(batch, { out: pipeline, partial: pipeline }, bufs, s, k, splitK, epiloguePass(batch, bufs, s, epilogue), extra);
}

/** Whether a product takes its epilogue as a pass of its own (MatmulOptions.epilogue 'pass'): only
 *  where the kernel would stage it (an epilogue, or an f16 C) and its f32 workspace fits a binding. */
function epiloguePass(batch: CommandBatch, bufs: MatmulBuffers, s: Shape, mode: SubgroupEpilogue): boolean {
  const staged = s.half || epilogue(batch.device, bufs, s).flags !== 0;
  return mode === 'pass' && staged && s.batch * s.M * s.N * 4 <= batch.device.limits.maxStorageBufferBindingSize;
}

/** `out` writes C; `partial`, f32 sums into a workspace (the same kernel unless C is f16), which the
 *  reduction adds up and puts through the epilogue: for K splits, or with `pass` for one split. */
function recordSg(batch: CommandBatch, pipes: { out: GPUComputePipeline; partial: GPUComputePipeline }, bufs: MatmulBuffers, s: Shape, config: SgKernel, splits: number, pass: boolean, extra: Binding[] = []): void {
  if (splits === 1 && !pass) return dispatchSg(batch, pipes.out, bufs, s, config, extra);
  // K split: slice i is batch item i of the K-major operands (offset i·K/splits rows). One split keeps
  // the batch items. Either way the products go to the workspace with no epilogue, and the
  // reduction applies it.
  const kChunk = s.K / splits;
  const plain = { gelu: false, acc: false, half: false, sC: s.M * s.N };
  const slices: Shape = splits > 1 ? { ...s, ...plain, K: kChunk, batch: splits, sA: kChunk * s.M, sB: kChunk * s.N } : { ...s, ...plain };
  const ws = splitWorkspace(batch, s, splits);
  dispatchSg(batch, pipes.partial, { a: bufs.a, b: bufs.b, c: ws }, slices, config, extra);
  reduceSplits(batch, ws, bufs, s, splits);
}

function record(batch: CommandBatch, bufs: MatmulBuffers, s: Shape, prec: MatmulPrecision, p: Plan): void {
  const device = batch.device;
  const t = p.kernel;
  if (t.sg) {
    const partial = sgPipeline(device, t, s.tA, s.tB);
    const pass = p.splits === 1 && epiloguePass(batch, bufs, s, p.epilogue);
    return recordSg(batch, { out: s.half && !pass ? sgPipeline(device, t, s.tA, s.tB, true) : partial, partial }, bufs, s, t, p.splits, pass);
  }
  if (p.streamK && s.K > 0) return recordStreamK(batch, bufs, s, prec, t, p.streamK);
  const { flags, epi, dr, dw } = epilogue(device, bufs, s);
  const tilesM = Math.ceil(s.M / t.BM), tilesN = Math.ceil(s.N / t.BN);
  const [x, y] = grid(tilesM * tilesN);
  // split boundaries at multiples of SPLIT_ALIGN whatever the tile: the same sums for every config
  let splits = Math.max(1, Math.min(p.splits, Math.ceil(s.K / SPLIT_ALIGN)));
  const kChunk = Math.ceil(s.K / splits / SPLIT_ALIGN) * SPLIT_ALIGN;
  if (splits > 1) splits = Math.ceil(s.K / kChunk); // every split gets a non-empty range
  if (s.batch * splits > MAX_GROUPS) throw new RangeError(`matmul: batch ${s.batch} × ${splits} K splits exceeds ${MAX_GROUPS} workgroups in z`);
  const pipeOf = (half: boolean) => tiledPipeline(device, tiledVariant(device, t, prec, s, half));
  const params = (sC: number, f: number) => tiledParams(s, t, sC, splits > 1 ? kChunk : Math.max(1, s.K), f);
  if (splits === 1) {
    batch.dispatch(pipeOf(s.half), [bufs.a, bufs.b, bufs.c, ...epi], params(s.sC, flags), [x, y, s.batch]);
    return;
  }
  // Split K: partial products into the workspace [split][item][M][N] (no epilogue), then one pass
  // sums them in split order and applies the epilogue.
  const ws = splitWorkspace(batch, s, splits);
  batch.dispatch(pipeOf(false), [bufs.a, bufs.b, ws, dr, dr, dw], params(s.M * s.N, 0), [x, y, s.batch * splits]);
  reduceSplits(batch, ws, bufs, s, splits);
}

const tiledPipeline = (device: GPUDevice, v: TiledVariant) => getPipeline(device, tiledKey(v), () => tiledSource(v));

/** The tiled kernel's uniform (its struct P), K split in chunks of kChunk. */
function tiledParams(s: Shape, t: TiledKernel, sC: number, kChunk: number, flags: number): Params {
  const tilesM = Math.ceil(s.M / t.BM), tilesN = Math.ceil(s.N / t.BN);
  return new Params()
    .u32(s.M).u32(s.N).u32(s.K).u32(s.sA).u32(s.sB).u32(sC).u32(tilesM).u32(tilesN).u32(s.batch)
    .u32(kChunk).u32(+s.tA).u32(+s.tB).u32(flags).u32(t.BK).u32(1);
}

/** Stream-K (MatmulOptions.streamK): `want` workgroups (at most one per k-iteration) share the tiles ×
 *  K steps; each has two workspace slots of a tile for the tiles it covers in part, which a second
 *  pass adds up (in workgroup order) and puts through the epilogue. */
function recordStreamK(batch: CommandBatch, bufs: MatmulBuffers, s: Shape, prec: MatmulPrecision, t: TiledKernel, want: number): void {
  const device = batch.device;
  const { flags, epi } = epilogue(device, bufs, s);
  const tilesM = Math.ceil(s.M / t.BM), tilesN = Math.ceil(s.N / t.BN), kIters = Math.ceil(s.K / t.BK);
  const iters = tilesM * tilesN * s.batch * kIters;
  if (iters > 0xffffffff) throw new RangeError(`matmul: stream-K over ${iters} k-iterations (tiles × K steps) exceeds 2^32`);
  const wgs = Math.min(want, iters);
  const q = Math.floor(iters / wgs), r = iters % wgs;
  const bytes = 2 * wgs * t.BM * t.BN * 4;
  if (bytes > device.limits.maxStorageBufferBindingSize)
    throw new RangeError(`matmul: stream-K's ${wgs} workgroups need a ${bytes}-byte workspace, over this device's binding limit`);
  const ws: Binding = { buffer: scratchBuffer(batch, 'matmul.splitK', bytes), offset: 0, size: bytes };
  const pipe = tiledPipeline(device, { ...tiledVariant(device, t, prec, s), streamK: true });
  batch.dispatch(pipe, [bufs.a, bufs.b, bufs.c, ...epi, ws], tiledParams(s, t, s.sC, s.K, flags).u32(wgs).u32(q).u32(r), [wgs]);
  if (wgs === 1) return;
  const vec = isVec(s);
  const fix = getPipeline(device, `matmul_skfix_${t.BM}x${t.BN}_v${+vec}${s.half ? '_h' : ''}`, () => streamFixupSource(t.BM, t.BN, vec, s.half));
  const fp = new Params().u32(s.M).u32(s.N).u32(s.sC).u32(tilesM).u32(tilesN).u32(kIters).u32(wgs).u32(q).u32(r).u32(flags);
  batch.dispatch(fix, [ws, bufs.c, ...epi], fp, [wgs - 1]);
}

/** The f32 workspace [split][item][M][N] of the partial products. */
function splitWorkspace(batch: CommandBatch, s: Shape, splits: number): Binding {
  const bytes = splits * s.batch * s.M * s.N * 4;
  if (bytes > batch.device.limits.maxStorageBufferBindingSize)
    throw new RangeError(`matmul: ${splits} K splits of ${s.batch}×${s.M}×${s.N} need a ${bytes}-byte workspace, over this device's binding limit`);
  return { buffer: scratchBuffer(batch, 'matmul.splitK', bytes), offset: 0, size: bytes };
}

/** C (+)= epilogue(Σ over splits of the workspace [split][item][M][N]), summed in split order. */
function reduceSplits(batch: CommandBatch, ws: Binding, bufs: MatmulBuffers, s: Shape, splits: number): void {
  const { flags, epi } = epilogue(batch.device, bufs, s);
  const vec = isVec(s);
  const per = (s.M * s.N) / (vec ? 4 : s.half ? 2 : 1);
  const total = s.batch * per;
  const rp = getPipeline(batch.device, `matmul_reduce_v${+vec}${s.half ? '_h' : ''}`, () => reduceSource(vec, s.half));
  batch.dispatch(rp, [ws, bufs.c, ...epi], new Params().u32(s.N).u32(splits).u32(s.sC).u32(per).u32(total).u32(flags), grid(Math.ceil(total / 256)));
}

/**
 * C = act(op(A)·op(B) + bias) + residual, row-major [M, N] per batch item (or C += op(A)·op(B) + bias
 * with `accumulate`). precision 'f16': A and B hold f16, accumulation and C stay f32.
 */
export function matmul(batch: CommandBatch, bufs: MatmulBuffers, dims: MatmulDims, opts: MatmulOptions = {}): void {
  const prec = opts.precision ?? 'f32';
  if (prec !== 'f32' && prec !== 'f16') throw new RangeError(`matmul: precision must be 'f32' or 'f16', got '${prec}'`);
  if (prec === 'f16' && !batch.device.features.has('shader-f16')) throw new Error(`matmul: precision 'f16' needs the device feature shader-f16, which this device lacks`);
  const s = resolve(dims);
  checkBuffers(bufs, s, prec);
  if (s.M === 0 || s.N === 0 || s.batch === 0) return;
  // K = 0: C is the epilogue of a zero product; a and b may then be empty, which WebGPU cannot bind
  const { dr } = dummies(batch.device);
  record(batch, s.K === 0 ? { ...bufs, a: dr, b: dr } : bufs, s, prec, plan(batch.device, s, prec, opts));
}

/** Resolves when every autotune started so far on `device` has finished (and freed its buffers). */
export async function matmulTunesSettled(device: GPUDevice): Promise<void> {
  await Promise.all(state(device).tuning.values());
}

/** Each candidate's time (ms, on the shrunk tuning problem) from the autotune of this shape class, if it ran. */
export function matmulTuneTimes(device: GPUDevice, dims: MatmulDims, opts: { precision?: MatmulPrecision } = {}): Partial<Record<MatmulConfigName, number>> | undefined {
  return state(device).tuneTimes.get(classKey(resolve(dims), opts.precision ?? 'f32'));
}

/** The config, K splits and stream-K workgroups (0: none) `matmul` would use now for these dims on
 *  this device. */
export function matmulPlan(device: GPUDevice, dims: MatmulDims, opts: MatmulOptions = {}): { config: MatmulConfigName | MatmulKernelSpec; splits: number; streamK: number } {
  const { config, splits, streamK = 0 } = plan(device, resolve(dims), opts.precision ?? 'f32', opts, false);
  return { config, splits, streamK };
}

/** Whether a product without an epilogue writes an f16 C more slowly than an f32 one and a cast of
 *  it: the subgroup-matrix kernels store an f32 C's fragments straight to memory, but take an f16 one
 *  through workgroup memory a fragment at a time (an H200, 2026-11-28: fc2's dX 25600×3072×768 took
 *  0.957 ms into f16 and 0.735 into f32; a cast of its output ~0.13 at the cast kernel's 3.5 TB/s).
 *  The tiled kernels stage every C alike, and there an f16 C halves the bytes written. */
export function plainHalfOutputSlower(device: GPUDevice, dims: MatmulDims, opts: MatmulOptions = {}): boolean {
  const { config } = matmulPlan(device, { ...dims, output: 'f32' }, opts);
  return typeof config === 'string' ? isSg(config) : 'subgroups' in config;
}

// ---------------------------------------------------------------------------------------------
// Autotune

function startTune(device: GPUDevice, s: Shape, prec: MatmulPrecision, key: string): Promise<MatmulConfigName> {
  const st = state(device);
  const fallback = heuristic(device, s, prec);
  const job = runTune(device, s, prec, key)
    .catch(() => fallback)
    .then((c) => {
      st.choices.set(key, c);
      return c;
    });
  st.tuning.set(key, job);
  return job;
}

/**
 * Times the candidate configs for the shape class of `dims` on this device (once per class) and
 * caches the winner, which `matmul` then uses for every shape of that class. Runs by itself in the
 * background at first use; await it to have the choice settled before timing anything. On CPU
 * adapters it only returns the heuristic choice, unless `force` (tests).
 */
export function tuneMatmul(device: GPUDevice, dims: MatmulDims, opts: { precision?: MatmulPrecision; force?: boolean } = {}): Promise<MatmulConfigName> {
  const prec = opts.precision ?? 'f32';
  const s = resolve(dims);
  const st = state(device);
  const key = classKey(s, prec);
  if (isCpuAdapter(device) && !opts.force) return Promise.resolve(st.choices.get(key) ?? heuristic(device, s, prec));
  return st.tuning.get(key) ?? startTune(device, s, prec, key);
}

/**
 * A copy of `s` with at most TUNE_MAX_MACS multiply-adds, same transposes and alignment. K shrinks
 * first (not below TUNE_MIN_K): a shorter K loop changes little in how a workgroup runs, while fewer
 * output tiles change how the GPU fills. (With M shrunk first, 4096³ was tuned as 256×4096×4096: 64
 * workgroups of 128×128 for 132 SMs, which favours small tiles.) Then the batch, then M and N.
 */
function tuneShape(s: Shape): Shape {
  const t = { ...s, gelu: false, acc: false, half: false };
  const macs = () => t.M * t.N * t.K * t.batch;
  // Shrunk sizes keep their remainder mod 128, so vec4 loads, the subgroup kernels' tile fit and
  // their K splits carry over.
  const shrink = (x: number, room: number) => Math.max(Math.min(x, 128 + (x % 128)), Math.floor(room / 128) * 128 + (x % 128));
  if (macs() > TUNE_MAX_MACS && t.K > TUNE_MIN_K)
    t.K = Math.min(t.K, Math.max(TUNE_MIN_K + (t.K % 128), shrink(t.K, TUNE_MAX_MACS / (t.M * t.N * t.batch))));
  if (macs() > TUNE_MAX_MACS) t.batch = Math.max(1, Math.floor(TUNE_MAX_MACS / (t.M * t.N * t.K)));
  if (macs() > TUNE_MAX_MACS) t.M = Math.min(t.M, shrink(t.M, TUNE_MAX_MACS / (t.N * t.K)));
  if (macs() > TUNE_MAX_MACS) t.N = Math.min(t.N, shrink(t.N, TUNE_MAX_MACS / (t.M * t.K)));
  t.sA = t.batch > 1 ? (s.sA === 0 ? 0 : t.M * t.K) : 0;
  t.sB = t.batch > 1 ? (s.sB === 0 ? 0 : t.K * t.N) : 0;
  t.sC = t.batch > 1 ? t.M * t.N : 0;
  return t;
}

/** Whether kernel `k`'s pipeline for this shape compiles here (a rejected one would time as an
 *  instant no-op and win the tune). */
function compiles(device: GPUDevice, s: Shape, prec: MatmulPrecision, k: Kernel): Promise<boolean> {
  return compilesCleanly(device, () => {
    if (k.sg) sgPipeline(device, k, s.tA, s.tB);
    else {
      const v = tiledVariant(device, k, prec, s);
      getPipeline(device, tiledKey(v), () => tiledSource(v));
    }
  });
}

async function runTune(device: GPUDevice, s0: Shape, prec: MatmulPrecision, key: string): Promise<MatmulConfigName> {
  const s = tuneShape(s0);
  if (prec === 'f16') await checkSubgroupMatrices(device);
  // one family: the subgroup kernels where one has passed its check here and fits, else the tiles
  const sg = family(device, s, prec);
  const fits: MatmulConfigName[] = sg.length ? sg : TILE_NAMES.filter((n) => namedTileFits(device, n));
  const cands: MatmulConfigName[] = [];
  for (const c of fits) if (await compiles(device, s, prec, kernelOf(c))) cands.push(c);
  if (cands.length === 0) throw new Error('matmul: no tile config compiles on this device');
  const inB = prec === 'f16' ? 2 : 4;
  const mk = (elems: number) => device.createBuffer({ size: Math.max(256, Math.ceil(elems / 64) * 256), usage: GPUBufferUsage.STORAGE });
  const span = (stride: number, item: number) => (s.batch - 1) * stride + item;
  const bufs: MatmulBuffers = { a: mk((span(s.sA, s.M * s.K) * inB) / 4), b: mk((span(s.sB, s.K * s.N) * inB) / 4), c: mk(span(s.sC, s.M * s.N)) };
  const cb = new CommandBatch(device);
  // The tune runs while the caller keeps submitting its own work to the same queue (a training step
  // holds ~0.5 s of GPU work on an H100): timed by the wall clock, a candidate counted whatever the
  // caller had queued, and in a step a 4× faster subgroup kernel lost to tiled ones. Timestamps
  // around each of the candidate's own dispatches count its work only.
  const stamps = device.features.has('timestamp-query');
  const time = async (c: MatmulConfigName, reps: number) => {
    const kernel = kernelOf(c);
    const p: Plan = { config: c, kernel, splits: planSplits(device, s, kernel.sg), epilogue: 'fused' }; // a plain product: no epilogue
    if (stamps) {
      const prof = (cb.profiler = new KernelProfiler(device, Math.min(2048, reps * 2)));
      try {
        for (let i = 0; i < reps; i++) record(cb, bufs, s, prec, p);
        cb.submit();
      } finally {
        cb.profiler = null;
      }
      const ms = (await prof.results()).reduce((sum, k) => sum + k.ms, 0) / reps;
      prof.destroy();
      return ms;
    }
    // Drain first so the measurement starts on an idle queue.
    await device.queue.onSubmittedWorkDone();
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) record(cb, bufs, s, prec, p);
    cb.submit();
    await device.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / reps;
  };
  try {
    if (cands.length === 1) return cands[0];
    for (const c of cands) await time(c, 1); // compiles
    const best: number[] = [];
    for (const c of cands) best.push(await time(c, 1));
    const fastest = Math.min(...best);
    const reps = Math.max(1, Math.min(20, Math.round(10 / Math.max(fastest, 1e-3))));
    // Rounds interleave the candidates; the minimum discards rounds disturbed by other work, and
    // rounds go on while they still get faster (a clock ramping up; see tuneSettled).
    for (let round = 1; ; round++) {
      const before = [...best];
      for (let i = 0; i < cands.length; i++) best[i] = Math.min(best[i], await time(cands[i], reps));
      if (fastest > 50 || tuneSettled(round, before, best)) break;
    }
    state(device).tuneTimes.set(key, Object.fromEntries(cands.map((c, i) => [c, best[i]])));
    return cands[best.indexOf(Math.min(...best))];
  } finally {
    for (const b of [bufs.a, bufs.b, bufs.c]) (b as GPUBuffer).destroy();
  }
}

/** The autotune's rounds: at least `min`; more while the last one still cut the least time of a
 *  contender (a candidate within `contender`× of the fastest) by over `settle`, up to `max`. A GPU idle
 *  before the tune starts at a low clock: the first tune of a fresh process on an H200 timed three of
 *  four f16 configs 1.8–5.2× slower than a warm one and kept a config 40 % slower than the best for
 *  the rest of the run (2026-11-27). Slow candidates that cannot win do not hold the tune up. */
export const TUNE_ROUNDS = { min: 3, max: 12, settle: 0.03, contender: 1.25 } as const;

/** Whether the autotune may stop after `round` rounds, given each candidate's least time before the
 *  last round and after it (TUNE_ROUNDS). */
export function tuneSettled(round: number, before: readonly number[], after: readonly number[]): boolean {
  if (round < TUNE_ROUNDS.min) return false;
  if (round >= TUNE_ROUNDS.max) return true;
  const fastest = Math.min(...after);
  return after.every((t, i) => t > TUNE_ROUNDS.contender * fastest || t >= before[i] * (1 - TUNE_ROUNDS.settle));
}

/** Runs every named subgroup-matrix config's check on this device (once each); resolves to those that
 *  passed. Until a check passes, f16 products take the tiled kernels, which add in another order: await
 *  this before the first f16 product for results that do not depend on when the checks finish (Engine
 *  does, on a device with subgroup matrices). */
export async function checkSubgroupMatrices(device: GPUDevice): Promise<SubgroupConfigName[]> {
  const ok = await Promise.all(SUBGROUP_CONFIGS.map((c) => checkSubgroupMatrix(device, c)));
  return SUBGROUP_CONFIGS.filter((_, i) => ok[i]);
}

/** Runs a subgroup-matrix kernel (config or spec) against the tiled f16 kernel on small problems (all
 *  transposes, with and without epilogue); a config is enabled on this device only if it compiles and
 *  agrees, and for products with an f16 C only if its f16-output variant also gives the f32 one's bits
 *  cast, C's and the pre-activation's (that part does not decide the answer). */
export function checkSubgroupMatrix(device: GPUDevice, config: SubgroupConfigName | SubgroupSpec = 'subgroup-matrix'): Promise<boolean> {
  const st = state(device);
  const k = sgKernelOf(config);
  let check = st.sgChecks.get(k.key);
  if (!check) {
    const failed = { ok: false, half: false };
    check = (sgDeviceFits(device, k) ? sgSelfCheck(device, config) : Promise.resolve(failed))
      .catch(() => failed)
      .then(({ ok, half }) => {
        if (ok && typeof config === 'string') st.sgPassed.add(config);
        if (ok && half && typeof config === 'string') st.sgHalfPassed.add(config);
        return ok;
      });
    st.sgChecks.set(k.key, check);
  }
  return check;
}

/** ok: the kernel agrees with the tiled one; half: its f16-output variant compiles and agrees too. */
async function sgSelfCheck(device: GPUDevice, config: SubgroupConfigName | SubgroupSpec): Promise<{ ok: boolean; half: boolean }> {
  const k = sgKernelOf(config);
  // K = BK + 16: a staged kernel's second K step runs past K (zero-filled) unless BK is 16.
  const M = k.BM * Math.ceil(128 / k.BM), N = k.BN * Math.ceil(128 / k.BN), K = k.BK + 16, batch = 2;
  await subgroupMatrixSpelling(device);
  // every variant the check uses, compiled first
  const variants = () => {
    for (const tA of [false, true]) for (const tB of [false, true]) sgPipeline(device, k, tA, tB);
  };
  if (!(await compilesCleanly(device, variants))) return { ok: false, half: false };
  const halfCompiles = await compilesCleanly(device, () => sgPipeline(device, k, false, true, true));

  // Values are small integers / 8, exact in f16 and summed exactly in f32: both kernels must agree bit for bit
  // up to the GELU, so a loose tolerance only has to absorb the epilogue.
  const f16 = (i: number) => {
    const v = ((i * 37) % 17) - 8; // −8..8
    if (v === 0) return 0;
    const a = Math.abs(v);
    const e = Math.floor(Math.log2(a)); // a = 2^e · (1 + f), value a/8
    const mant = Math.round((a / 2 ** e - 1) * 1024);
    return (v < 0 ? 0x8000 : 0) | ((e - 3 + 15) << 10) | mant;
  };
  const up = (n: number, f: (i: number) => number, bytes: number) => {
    const buf = device.createBuffer({ size: Math.ceil((n * bytes) / 4) * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
    const data = bytes === 2 ? Uint16Array.from({ length: n + (n % 2) }, (_, i) => f(i)) : Float32Array.from({ length: n }, (_, i) => f(i));
    device.queue.writeBuffer(buf, 0, data);
    return buf;
  };
  const a = up(batch * M * K, f16, 2), b = up(batch * K * N, (i) => f16(i * 7 + 3), 2);
  const bias = up(N, (i) => (i % 5) / 4 - 0.5, 4), residual = up(batch * M * N, (i) => (i % 3) - 1, 4);
  const n = batch * M * N;
  const buf = (bytes: number) => device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  // The f16-output kernel must give the bits of the f32 one's output and pre-activation cast to f16,
  // in the layout of the forward of a linear layer (x·Wᵀ), the one product that writes f16
  // (ops/linear.ts): with bias and residual, against an f32 product with those; with bias and GELU,
  // against the f32 product of the loop below that keeps its preact, whose halves are the reference
  // for the pre-activation and, through geluForward, for the output (its GELU takes them).
  const pre32 = halfCompiles ? buf(n * 4) : undefined;
  const sum32 = halfCompiles ? buf(n * 4) : undefined;
  const outs: GPUBuffer[] = [];
  const cb = new CommandBatch(device);
  // each with the fused epilogue, the kernel's own code (a pass is the K splits' reduction)
  for (const tA of [false, true])
    for (const tB of [false, true])
      for (const withEp of [false, true])
        for (const which of [config, 'mid'] as const) {
          const c = buf(n * 4);
          const s = resolve({ M, N, K, batch, transA: tA, transB: tB, activation: withEp ? 'gelu' : 'none' });
          const keepsPre = withEp && !tA && tB && which === config;
          record(cb, { a, b, c, ...(withEp ? { bias, residual } : {}), ...(keepsPre ? { preact: pre32 } : {}) }, s, 'f16', { config: which, kernel: kernelOf(which), splits: 1, epilogue: 'fused' });
          outs.push(c);
        }
  const f32Outs = outs.length;
  if (pre32 && sum32) {
    // pairs to compare: the f16 kernel's output with a residual, with GELU, its pre-activation, each beside its reference
    const halves = Array.from({ length: 6 }, () => buf(n * 2));
    const layer = (activation: 'none' | 'gelu', output: 'f32' | 'f16') => resolve({ M, N, K, batch, transB: true, activation, output });
    record(cb, { a, b, c: sum32, bias, residual }, layer('none', 'f32'), 'f16', { config, kernel: k, splits: 1, epilogue: 'fused' });
    record(cb, { a, b, c: halves[0], bias, residual }, layer('none', 'f16'), 'f16', { config, kernel: k, splits: 1, epilogue: 'fused' });
    castF32ToF16(cb, sum32, halves[1], n);
    record(cb, { a, b, c: halves[2], bias, preact: halves[4] }, layer('gelu', 'f16'), 'f16', { config, kernel: k, splits: 1, epilogue: 'fused' });
    castF32ToF16(cb, pre32, halves[5], n);
    geluForward(cb, halves[5], halves[3], n, { input: 'f16', output: 'f16' });
    outs.push(...halves); // each in a slot of n f32 in the read buffer, half of it unused
  }
  const read = device.createBuffer({ size: outs.length * n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  cb.submit();
  const enc = device.createCommandEncoder();
  outs.forEach((c, i) => enc.copyBufferToBuffer(c, 0, read, i * n * 4, c.size));
  device.queue.submit([enc.finish()]);
  try {
    await read.mapAsync(GPUMapMode.READ);
    const all = new Float32Array(read.getMappedRange().slice(0));
    read.unmap();
    for (let i = 0; i < f32Outs; i += 2) {
      let num = 0, den = 0;
      for (let j = 0; j < n; j++) {
        const x = all[i * n + j], y = all[(i + 1) * n + j];
        if (!Number.isFinite(x)) return { ok: false, half: false };
        num += (x - y) ** 2;
        den += y * y;
      }
      if (!(Math.sqrt(num / Math.max(den, 1e-30)) < 1e-5)) return { ok: false, half: false };
    }
    if (!halfCompiles) return { ok: true, half: false };
    const words = [0, 1, 2, 3, 4, 5].map((i) => new Uint32Array(all.buffer, (f32Outs + i) * n * 4, n / 2));
    const same = (i: number) => words[i].every((w, j) => w === words[i + 1][j]);
    return { ok: true, half: same(0) && same(2) && same(4) };
  } finally {
    for (const x of [a, b, bias, residual, read, ...outs, ...(pre32 && sum32 ? [pre32, sum32] : [])]) x.destroy();
  }
}
