// The WGSL of matmul's kernels, each a pure function of its parameters (kernels/matmul.ts decides
// which runs when): the register-blocked tiled kernel and its split-K reduction, and the
// subgroup-matrix (tensor-core) kernels, direct and staged. All of them share the epilogue (bias,
// GELU, residual, preact, accumulate; chosen by a uniform) and the grouped order of output tiles, and
// each has a variant that writes C, and the pre-activation with it, as f16 bits (compiled in, two
// halves to a 32-bit word).
import { TO_FLOAT_WGSL, TO_HALF_WGSL } from './cast.js';
import { ERF_WGSL } from './gelu.js';
import type { MatmulPrecision, SubgroupSpec, TileSpec } from './matmul.js';

/** A kernel resolved from a config name or a spec; `key` names its pipelines (the config name, or the
 *  spec's parameters). */
export type Kernel =
  | ({ sg: false; key: string } & Required<TileSpec>)
  | ({ sg: true; key: string } & SubgroupSpec);
export type TiledKernel = Extract<Kernel, { sg: false }>;
export type SgKernel = Extract<Kernel, { sg: true }>;

export const SG_PAD = 8; // halves of padding per staged row: rows stay 16-byte aligned and spread over banks
const GROUP = 8; // tile rows that walk N together, so their B panels are shared in L2

/** WGSL: the workgroup's output tile origin (m0, n0) from its linear id, in the grouped order above;
 *  workgroups past the last tile return. Needs wid, nwg and p.tilesM/p.tilesN. */
function tileOrigin(BM: number, BN: number): string {
  return `  let pid = wid.y * nwg.x + wid.x;
  if (pid >= p.tilesM * p.tilesN) { return; }
${tileCoords(BM, BN, 'pid')}`;
}

/** WGSL: the origin (m0, n0) of output tile `index` (< p.tilesM·p.tilesN) in the grouped order. */
function tileCoords(BM: number, BN: number, index: string): string {
  return `  // Groups of ${GROUP} tile rows sweep N together, so concurrently running workgroups share B panels in L2.
  let width = ${GROUP}u * p.tilesN;
  let first = (${index} / width) * ${GROUP}u;
  let rows = min(p.tilesM - first, ${GROUP}u);
  let r = ${index} % width;
  let m0 = (first + r % rows) * ${BM}u;
  let n0 = (r / rows) * ${BN}u;`;
}

/** WGSL of stream-K's bound(w): the first k-iteration of workgroup w, out of I = wgs·skQ + skR shared
 *  evenly (as w·I/wgs, without its overflow) among p.wgs workgroups. */
const STREAM_K_BOUND = `fn skBound(w: u32) -> u32 { return w * p.skQ + (w * p.skR) / p.wgs; }`;

// Epilogue flags, a uniform: one pipeline serves every epilogue (and the split-K partial pass, which
// has none), so a model compiles a handful of pipelines rather than one per combination.
export const F_BIAS = 1, F_GELU = 2, F_RESIDUAL = 4, F_PREACT = 8, F_ACC = 16;

// GELU from the one erf the library has (kernels/gelu.ts), so the fused forward and geluBackward
// agree to the last bit of the approximation.
function geluFn(T: string): string {
  const lanes = { f32: [], 'vec2<f32>': ['x', 'y'], 'vec4<f32>': ['x', 'y', 'z', 'w'] }[T];
  if (!lanes) throw new Error(`matmul: no GELU for ${T}`);
  const body = lanes.length ? `return ${T}(${lanes.map((c) => `gelu_f32(x.${c})`).join(', ')});` : 'return gelu_f32(x);';
  return `${ERF_WGSL}
fn gelu(x: ${T}) -> ${T} { ${body} }`;
}

/** WGSL round16(x): x rounded to f16 and back (castF32ToF16's rounding), for f32, vec2 and vec4. */
function round16Fn(T: string): string {
  const body = { f32: 'toFloat(toHalf(x))', 'vec2<f32>': 'vec2<f32>(toFloat(toHalf(x.x)), toFloat(toHalf(x.y)))', 'vec4<f32>': 'floats4(halves4(x))' }[T];
  if (!body) throw new Error(`matmul: no round16 for ${T}`);
  return `fn round16(x: ${T}) -> ${T} { return ${body}; }`;
}

/** C's element type: T (f32, vec2 or vec4 of f32), or with `half` its f16 bits packed in u32 words
 *  (two halves a word: vec2 → u32, vec4 → vec2<u32>; scalar arrays, `lanes`, → u32). */
function outType(T: string, half: boolean): string {
  if (!half) return T;
  if (T === 'vec4<f32>') return 'vec2<u32>';
  if (T === 'vec2<f32>') return 'u32';
  throw new Error(`matmul: an f16 output is written in pairs, not as ${T}`);
}

/**
 * Bindings first..first+2 (bias, residual, preact; dummies when absent) and the epilogue, once:
 * `put(ci, nb, v)` writes unit ci of C (T = f32, vec2 or vec4 of f32) with bias unit nb; with `lanes`,
 * arrays are f32 and `put4(ci, n, v)` writes the lanes of v that fall inside N, starting at element ci,
 * column n. `half`: C and preact hold f16 bits (outType; put4 then needs ci and N even) and nothing
 * accumulates into C; bias and residual stay f32. Needs `p.flags`, `p.N` and `C`.
 */
function epilogueSource(T: string, first: number, lanes = false, half = false): string {
  const A = lanes ? 'f32' : T;
  const P = half ? (lanes ? 'u32' : outType(T, true)) : A;
  const decls = `@group(0) @binding(${first}) var<storage, read> bias: array<${A}>;
@group(0) @binding(${first + 1}) var<storage, read> residual: array<${A}>;
@group(0) @binding(${first + 2}) var<storage, read_write> preact: array<${P}>;${half ? `\n${TO_HALF_WGSL}${TO_FLOAT_WGSL}\n${round16Fn(lanes ? 'vec4<f32>' : T)}` : ''}`;
  // With an f16 output the GELU takes the pre-activation rounded to f16, as autocast's GELU takes the
  // f16 output of its Linear: the halves kept for the backward give the output again (geluForward).
  const act = half ? 'v = gelu(round16(v));' : 'v = gelu(v);';
  if (!lanes) {
    const pack = { 'vec4<f32>': 'halves4(v)', 'vec2<f32>': 'halves2(v.x, v.y)' }[T];
    if (half && !pack) throw new Error(`matmul: an f16 output is written in pairs, not as ${T}`);
    const store = half ? `C[ci] = ${pack};` : 'C[ci] = v;';
    return `${decls}
${geluFn(T)}
fn put(ci: u32, nb: u32, x: ${T}) {
  var v = x;
  if ((p.flags & ${F_BIAS}u) != 0u) { v += bias[nb]; }
  if ((p.flags & ${F_PREACT}u) != 0u) { preact[ci] = ${half ? pack : 'v'}; }
  if ((p.flags & ${F_GELU}u) != 0u) { ${act} }
  if ((p.flags & ${F_RESIDUAL}u) != 0u) { v += residual[ci]; }${half ? '' : `\n  if ((p.flags & ${F_ACC}u) != 0u) { v += C[ci]; }`}
  ${store}
}`;
  }
  const pairs = (X: string) => `for (var j = 0u; j < lanes; j += 2u) { ${X}[(ci + j) / 2u] = halves2(v[j], v[j + 1u]); }`;
  const store = half ? pairs('C') : 'for (var j = 0u; j < lanes; j++) { C[ci + j] = v[j]; }';
  return `${decls}
${geluFn('vec4<f32>')}
fn put4(ci: u32, n: u32, x: vec4<f32>) {
  let lanes = min(4u, p.N - n);
  var v = x;
  if ((p.flags & ${F_BIAS}u) != 0u) { for (var j = 0u; j < lanes; j++) { v[j] += bias[n + j]; } }
  if ((p.flags & ${F_PREACT}u) != 0u) { ${half ? pairs('preact') : 'for (var j = 0u; j < lanes; j++) { preact[ci + j] = v[j]; }'} }
  if ((p.flags & ${F_GELU}u) != 0u) { ${act} }
  if ((p.flags & ${F_RESIDUAL}u) != 0u) { for (var j = 0u; j < lanes; j++) { v[j] += residual[ci + j]; } }${half ? '' : `\n  if ((p.flags & ${F_ACC}u) != 0u) { for (var j = 0u; j < lanes; j++) { v[j] += C[ci + j]; } }`}
  ${store}
}`;
}

export interface TiledVariant {
  tile: TiledKernel;
  prec: MatmulPrecision;
  /** A, B read and C written as vec4 (every contiguous dimension and stride a multiple of 4). */
  vec: boolean;
  /** The CPU form (runtime.gpuShaderForm false): the K-step loop is left rolled, see tiledSource, and the
   *  transposes are uniforms (one pipeline for all four, fewer JIT compiles). Elsewhere they are
   *  compiled in (`layout`): each copy keeps only its layout's registers, which a uniform layout keeps
   *  live for both branches across the K step (in a 512-invocation tile, against a 128-register cap). */
  cpu: boolean;
  layout?: { tA: boolean; tB: boolean };
  /** C written as f16 bits (epilogueSource's `half`), always through the epilogue. */
  half?: boolean;
  /** Stream-K: p.wgs workgroups share the product's k-iterations (tiles × K steps, batch items
   *  included) evenly; each writes the tiles it covers whole to C, and its partial ones (at most two) to
   *  the workspace, where streamFixupSource's pass adds them up. */
  streamK?: boolean;
}

export const tiledKey = (v: TiledVariant) =>
  `matmul_${v.tile.key}_${v.prec}_v${+v.vec}${v.cpu ? '_cpu' : ''}${v.layout ? `_t${+v.layout.tA}${+v.layout.tB}` : ''}${v.half ? '_h' : ''}${v.streamK ? '_sk' : ''}`;

/**
 * WGSL for one operand's BK-slice: global → registers (`load`, predicated on the matrix bounds) and
 * registers → shared memory (`store`). Shared memory is written in whole vec4s only — four
 * consecutive d (m or n) at one k — since a store into one lane of a shared vec4 costs lavapipe's JIT
 * dearly. Storage is [D, K] ("kc": contiguous along k) or [K, D], chosen at run time (p.tA / p.tB),
 * with consecutive threads walking the contiguous dimension so global reads coalesce either way.
 *  - scalar: one item = a quad of 4 d at one k, read as 4 scalars; element (d, k) at off + d·sd + k·sk.
 *  - vec4, [K, D]: the quad is one vec4 read.
 *  - vec4, [D, K]: one item = 4 rows × a vec4 along k, transposed in registers into 4 quads.
 * The repeats are WGSL loops over a register array with constant trip counts (GPU compilers unroll
 * them); on CPU adapters the bound is multiplied by the uniform p.one (= 1) so LLVM keeps them rolled.
 */
function operandCopy(X: 'A' | 'B', o: { TD: number; BK: number; WG: number; vec: boolean; cpu: boolean; dim: string; cvt: (e: string) => string; kc?: boolean }) {
  const { TD, BK, WG, vec, cpu, dim, cvt, kc: kcKnown } = o;
  const S = X === 'A' ? 'As' : 'Bs', d0 = X === 'A' ? 'm0' : 'n0', off = X === 'A' ? 'aOff' : 'bOff', kc = `kc${X}`, r = `r${X}`;
  const D4 = TD / 4;
  const base = `buf * ${BK * D4}u`;
  const loop = (v: string, n: number, body: string) => `for (var ${v} = 0u; ${v} < ${n}u${cpu ? ' * p.one' : ''}; ${v}++) { ${body} }`;
  // Rounds of WG items, the last one partial when the items do not divide among the threads.
  const rounds = (items: number, body: string) => {
    const idx = `(lid + i * ${WG}u)`;
    return loop('i', Math.ceil(items / WG), `let idx = ${idx}; ${items % WG !== 0 ? `if (idx < ${items}u) { ${body} }` : body}`);
  };
  if (!vec) {
    const quads = (TD * BK) / 4;
    const coord = `let d = select((idx % ${D4}u) * 4u, (idx / ${BK}u) * 4u, ${kc}); let kk = select(idx / ${D4}u, idx % ${BK}u, ${kc});`;
    const lane = `${r}[i][j] = select(0.0, ${cvt(`${X}[${off} + (${d0} + d + j) * sd${X} + (k + kk) * sk${X}]`)}, ${d0} + d + j < ${dim} && ok);`;
    return {
      regs: `var ${r}: array<vec4<f32>, ${Math.ceil(quads / WG)}>;`,
      load: rounds(quads, `${coord} let ok = k + kk < kEnd; ${loop('j', 4, lane)}`),
      store: rounds(quads, `${coord} ${S}[${base} + kk * ${D4}u + d / 4u] = ${r}[i];`),
    };
  }
  const blocks = (TD * BK) / 16, quads = (TD * BK) / 4;
  const v4 = (e: string) => (cvt(e) === e ? e : `vec4<f32>(${e})`);
  // [D, K]: block = rows d..d+3 × k-quad kk, held in r[4i + j] for row j.
  const bcoord = `let d = (idx / ${BK / 4}u) * 4u; let kk = (idx % ${BK / 4}u) * 4u;`;
  const row = `${r}[4u * i + j] = select(vec4<f32>(0.0), ${v4(`${X}[(${off} + (${d0} + d + j) * p.K + k + kk) / 4u]`)}, ${d0} + d + j < ${dim} && ok);`;
  const col = `${S}[${base} + (kk + j) * ${D4}u + d / 4u] = vec4<f32>(${r}[4u * i][j], ${r}[4u * i + 1u][j], ${r}[4u * i + 2u][j], ${r}[4u * i + 3u][j]);`;
  const bload = rounds(blocks, `${bcoord} let ok = k + kk < kEnd; ${loop('j', 4, row)}`);
  const bstore = rounds(blocks, `${bcoord} ${loop('j', 4, col)}`);
  // [K, D]: quad = one vec4 along d.
  const qcoord = `let kk = idx / ${D4}u; let d = (idx % ${D4}u) * 4u;`;
  const qload = rounds(quads, `${qcoord} ${r}[i] = select(vec4<f32>(0.0), ${v4(`${X}[(${off} + (k + kk) * ${dim} + ${d0} + d) / 4u]`)}, ${d0} + d < ${dim} && k + kk < kEnd);`);
  const qstore = rounds(quads, `${qcoord} ${S}[${base} + kk * ${D4}u + d / 4u] = ${r}[i];`);
  const branch = (a: string, b: string) => (kcKnown === undefined ? `if (${kc}) {\n        ${a}\n      } else {\n        ${b}\n      }` : kcKnown ? a : b);
  const bRegs = 4 * Math.ceil(blocks / WG), qRegs = Math.ceil(quads / WG);
  return {
    regs: `var ${r}: array<vec4<f32>, ${kcKnown === undefined ? Math.max(bRegs, qRegs) : kcKnown ? bRegs : qRegs}>;`,
    load: branch(bload, qload),
    store: branch(bstore, qstore),
  };
}

/** WGSL: this thread's column tx and row ty in the TX-wide thread grid; each 32 consecutive
 *  invocations form an LX × (32/LX) block (row-major grid when LX = min(TX, 32)). */
function threadPosition(TX: number, LX: number): string {
  if (LX === Math.min(TX, 32)) return `let tx = lid % ${TX}u;\n  let ty = lid / ${TX}u;`;
  const blocksX = TX / LX, LY = 32 / LX;
  return `let lane = lid % 32u;
  let block = lid / 32u;
  let tx = (block % ${blocksX}u) * ${LX}u + lane % ${LX}u;
  let ty = (block / ${blocksX}u) * ${LY}u + lane / ${LX}u;`;
}

export function tiledSource(v: TiledVariant): string {
  const { BM, BN, BK, TM, TN, LX } = v.tile;
  const TX = BN / TN, TY = BM / TM, WG = TX * TY, RM = TM / 4, RN = TN / 4;
  const inT = v.prec;
  const cvt = (e: string) => (inT === 'f32' ? e : v.vec ? `vec4<f32>(${e})` : `f32(${e})`);
  const kc = v.layout && { A: !v.layout.tA, B: v.layout.tB };
  const ca = operandCopy('A', { TD: BM, BK, WG, vec: v.vec, cpu: v.cpu, dim: 'p.M', cvt, kc: kc?.A });
  const cb = operandCopy('B', { TD: BN, BK, WG, vec: v.vec, cpu: v.cpu, dim: 'p.N', cvt, kc: kc?.B });
  const T = v.vec ? 'vec4<f32>' : 'f32';

  const accs: string[] = [];
  for (let r = 0; r < TM; r++) for (let c = 0; c < RN; c++) accs.push(`var acc${r}_${c} = vec4<f32>(0.0);`);
  // One k step: RM + RN vec4 reads from shared memory, TM×RN vec4 FMAs. Unrolled over BK for GPUs.
  // On CPU adapters the loop stays rolled (bound from a uniform so LLVM cannot unroll it): lavapipe's
  // JIT needs seconds for the unrolled body, and these adapters only run tests.
  const step = (kx: string) => {
    const s: string[] = [];
    for (let rm = 0; rm < RM; rm++) s.push(`let a${rm} = As[aB + ${kx} * ${BM / 4}u + ${rm * TY}u + ty];`);
    for (let rn = 0; rn < RN; rn++) s.push(`let b${rn} = Bs[bB + ${kx} * ${BN / 4}u + ${rn * TX}u + tx];`);
    for (let rm = 0; rm < RM; rm++) for (let i = 0; i < 4; i++) for (let rn = 0; rn < RN; rn++) s.push(`acc${rm * 4 + i}_${rn} += a${rm}[${i}] * b${rn};`);
    return `{\n        ${s.join('\n        ')}\n      }`;
  };
  const inner = v.cpu ? [`for (var kq = 0u; kq < p.bk; kq++) ${step('kq')}`] : Array.from({ length: BK }, (_, kk) => step(`${kk}u`));
  // Epilogue staging: pass q holds row q of every thread's TM-row block (rows rm·4TY + 4ty + i,
  // q = 4rm + i), TY rows × BN columns, in As. Then the whole workgroup writes it out coalesced, and
  // the epilogue code exists once in the shader instead of TM×RN times. (kernelOf ensures TY·BN ≤ 2·BK·BM.)
  // Plain products and K splits' partial sums take it too. Each thread storing its own accumulators
  // instead was slower on an H200 (2026-11-27, 4096³: 36.7 TFLOP/s against 38.2; 11 of the 12 plain
  // layer products 1–4 % slower, the batched 400×400 scores 19 % faster) as a compiled-in variant,
  // and as a branch on p.flags beside the staging it made the 128-register xlarge16 spill (208 bytes
  // a thread) and ran 4096³ at 30.6.
  const stage: string[] = [];
  for (let q = 0; q < TM; q++) {
    const writes = Array.from({ length: RN }, (_, rn) => `As[ty * ${BN / 4}u + ${rn * TX}u + tx] = acc${q}_${rn};`).join(' ');
    stage.push(`${q === 0 ? '' : 'else '}if (q == ${q}u) { ${writes} }`);
  }
  const putCall = v.vec ? `put((cOff + m * p.N + n) / 4u, n / 4u, As[e]);` : `put4(cOff + m * p.N + n, n, As[e]);`;
  const sk = !!v.streamK;
  // A stream-K workgroup writes a tile it covered in part to its workspace slot, epilogue-free.
  const write = sk ? `if (full) { if (m < p.M && n < p.N) { ${putCall} } } else { ws[wsOff + lr * ${BN / 4}u + e % ${BN / 4}u] = As[e]; }` : `if (m < p.M && n < p.N) { ${putCall} }`;
  // One output tile (m0, n0) over k in [kBeg, kEnd), with operand offsets aOff, bOff and C's cOff.
  const tile = `${accs.join('\n  ')}
  ${ca.regs}
  ${cb.regs}
  let nT = (max(kEnd, kBeg) - kBeg + ${BK - 1}u) / ${BK}u;
  // Step t fetches tile t into registers, multiplies tile t-1 from shared buffer (t-1)%2, then
  // stores tile t into buffer t%2: the global loads overlap the math, one barrier per step.
  // % 2, not & 1: Dawn's range analysis bounds x % 2 but not x & 1, and clamps every shared-memory
  // index it cannot bound (in the SPIR-V lavapipe gets: 55 clamps in this kernel with & 1, 5 with % 2).
  for (var t = 0u; t <= nT; t++) {
    if (t < nT) {
      let k = kBeg + t * ${BK}u;
      ${ca.load}
      ${cb.load}
    }
    if (t > 0u) {
      let aB = ((t - 1u) % 2u) * ${(BK * BM) / 4}u;
      let bB = ((t - 1u) % 2u) * ${(BK * BN) / 4}u;
      ${inner.join('\n      ')}
    }
    if (t < nT) {
      let buf = t % 2u;
      ${ca.store}
      ${cb.store}
    }
    workgroupBarrier();
  }
  for (var q = 0u; q < ${TM}u${v.cpu ? ' * p.one' : ''}; q++) {
    ${stage.join('\n    ')}
    workgroupBarrier();
    for (var e = lid; e < ${(TY * BN) / 4}u; e += ${WG}u) {
      let lr = (q / 4u) * ${TY * 4}u + (e / ${BN / 4}u) * 4u + q % 4u;
      let m = m0 + lr;
      let n = n0 + (e % ${BN / 4}u) * 4u;
      ${write}
    }
    workgroupBarrier();
  }`;
  // Layouts: A is [M, K] (contiguous along k) unless transposed; B is [K, N] unless transposed.
  const layout = `${kc ? `const kcA = ${kc.A};\n  const kcB = ${kc.B};` : `let kcA = p.tA == 0u;\n  let kcB = p.tB != 0u;`}
  let sdA = select(1u, p.K, kcA); let skA = select(p.M, 1u, kcA);
  let sdB = select(1u, p.K, kcB); let skB = select(p.N, 1u, kcB);
  ${threadPosition(TX, LX)}`;
  const main = sk
    ? `  // Workgroup w takes k-iterations [skBound(w), skBound(w + 1)) of the product's tiles × K steps, as
  // segments of whole tiles' K ranges; the tiles it starts and ends inside go to its two slots.
  ${layout}
  let w = wid.x;
  let kIters = (p.K + ${BK - 1}u) / ${BK}u;
  let tiles = p.tilesM * p.tilesN;
  var it = skBound(w);
  let itEnd = skBound(w + 1u);
  let firstTile = it / kIters;
  loop {
    if (it >= itEnd) { break; }
    let g = it / kIters;
    let kb = it - g * kIters;
    let ke = min(kIters, kb + itEnd - it);
    let item = g / tiles;
  ${tileCoords(BM, BN, 'g % tiles')}
    let kBeg = kb * ${BK}u;
    let kEnd = min(p.K, ke * ${BK}u);
    let aOff = item * p.sA;
    let bOff = item * p.sB;
    let cOff = item * p.sC;
    let full = kb == 0u && ke == kIters;
    let wsOff = (2u * w + select(1u, 0u, g == firstTile)) * ${(BM * BN) / 4}u;
    ${tile}
    it += ke - kb;
  }`
    : `${tileOrigin(BM, BN)}
  // z = split · batch + item; with a K split, C is the workspace and cOff selects the split's slab.
  let item = wid.z % p.batch;
  let kBeg = (wid.z / p.batch) * p.kChunk;
  let kEnd = min(p.K, kBeg + p.kChunk);
  let aOff = item * p.sA;
  let bOff = item * p.sB;
  let cOff = wid.z * p.sC;
  ${layout}
  ${tile}`;

  return /* wgsl */ `${inT === 'f16' ? 'enable f16;\n' : ''}
struct P { M: u32, N: u32, K: u32, sA: u32, sB: u32, sC: u32, tilesM: u32, tilesN: u32, batch: u32, kChunk: u32, tA: u32, tB: u32, flags: u32, bk: u32, one: u32${sk ? ', wgs: u32, skQ: u32, skR: u32' : ''} }
@group(0) @binding(0) var<storage, read> A: array<${v.vec ? `vec4<${inT}>` : inT}>;
@group(0) @binding(1) var<storage, read> B: array<${v.vec ? `vec4<${inT}>` : inT}>;
@group(0) @binding(2) var<storage, read_write> C: array<${v.vec ? outType(T, !!v.half) : v.half ? 'u32' : 'f32'}>;
${sk ? `@group(0) @binding(6) var<storage, read_write> ws: array<vec4<f32>>;\n@group(0) @binding(7) var<uniform> p: P;\n${STREAM_K_BOUND}` : '@group(0) @binding(6) var<uniform> p: P;'}
${epilogueSource(T, 3, !v.vec, v.half)}
// Double-buffered k-major tiles: As[buf][k][m], Bs[buf][k][n], in vec4 units.
var<workgroup> As: array<vec4<f32>, ${(2 * BK * BM) / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${(2 * BK * BN) / 4}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
${main}
}`;
}

/** Stream-K's second pass (TiledVariant.streamK): one workgroup per boundary j between workgroups
 *  j - 1 and j; where it falls inside a tile, and is that tile's first, it adds up the tile's partial
 *  sums from the slots of the workgroups that covered it, in their order, and puts them through the
 *  epilogue. `vec`, `half` as the product's tiled kernel. */
export function streamFixupSource(BM: number, BN: number, vec: boolean, half = false): string {
  const T = vec ? 'vec4<f32>' : 'f32';
  const put = vec ? `put((cOff + m * p.N + n) / 4u, n / 4u, v);` : `put4(cOff + m * p.N + n, n, v);`;
  return /* wgsl */ `
struct P { M: u32, N: u32, sC: u32, tilesM: u32, tilesN: u32, kIters: u32, wgs: u32, skQ: u32, skR: u32, flags: u32 }
@group(0) @binding(0) var<storage, read> ws: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> C: array<${vec ? outType(T, half) : half ? 'u32' : 'f32'}>;
@group(0) @binding(5) var<uniform> p: P;
${epilogueSource(T, 2, !vec, half)}
${STREAM_K_BOUND}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let j = wid.x + 1u;
  let b = skBound(j);
  let g = b / p.kIters;
  if (b % p.kIters == 0u || skBound(j - 1u) > g * p.kIters) { return; }
  let tileEnd = (g + 1u) * p.kIters;
  let tiles = p.tilesM * p.tilesN;
  let cOff = (g / tiles) * p.sC;
${tileCoords(BM, BN, 'g % tiles')}
  for (var e = lid; e < ${(BM * BN) / 4}u; e += 256u) {
    let m = m0 + e / ${BN / 4}u;
    let n = n0 + (e % ${BN / 4}u) * 4u;
    if (m < p.M && n < p.N) {
      var v = vec4<f32>(0.0);
      for (var w = j - 1u; w < p.wgs && skBound(w) < tileEnd; w++) {
        let slot = 2u * w + select(1u, 0u, skBound(w) / p.kIters == g);
        v += ws[slot * ${(BM * BN) / 4}u + e];
      }
      ${put}
    }
  }
}`;
}

/** Sums the K splits from the workspace and applies the epilogue, W = 4, 1, or with `half` (f16 C)
 *  2 elements per invocation where they are not 4. */
export function reduceSource(vec: boolean, half = false): string {
  const W = vec ? 4 : half ? 2 : 1;
  const T = W === 1 ? 'f32' : `vec${W}<f32>`;
  return /* wgsl */ `
struct P { N: u32, splits: u32, sC: u32, per: u32, total: u32, flags: u32 }
@group(0) @binding(0) var<storage, read> ws: array<${T}>;
@group(0) @binding(1) var<storage, read_write> C: array<${outType(T, half)}>;
@group(0) @binding(5) var<uniform> p: P;
${epilogueSource(T, 2, false, half)}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (i >= p.total) { return; }
  var v = ws[i];
  for (var s = 1u; s < p.splits; s++) { v += ws[i + s * p.total]; }
  let item = i / p.per;
  let r = i % p.per;
  put(item * (p.sC / ${W}u) + r, (r * ${W}u) % p.N / ${W}u, v);
}`;
}

/** How the subgroup-matrix loads and stores are spelled: 'template', the majorness a template argument
 *  (`subgroupMatrixLoad<T, col_major>(p, offset, stride)`), as current Dawn wants; 'argument', a bool
 *  argument (`subgroupMatrixLoad<T>(p, offset, true, stride)`), which current Dawn still takes with a
 *  deprecation warning per call and older Dawn and Chrome take only. */
export type SgSpelling = 'template' | 'argument';

/** A fragment's place in memory: a pointer expression, its first element's offset, the majorness and
 *  the row stride, as WGSL expressions. */
interface SgRef { ptr: string; offset: string; colMajor: boolean; stride: string }

const major = (colMajor: boolean) => (colMajor ? 'col_major' : 'row_major');

function sgLoad(spelling: SgSpelling, type: string, r: SgRef): string {
  return spelling === 'template'
    ? `subgroupMatrixLoad<${type}, ${major(r.colMajor)}>(${r.ptr}, ${r.offset}, ${r.stride})`
    : `subgroupMatrixLoad<${type}>(${r.ptr}, ${r.offset}, ${r.colMajor}, ${r.stride})`;
}

function sgStore(spelling: SgSpelling, r: SgRef, value: string): string {
  return spelling === 'template'
    ? `subgroupMatrixStore<${major(r.colMajor)}>(${r.ptr}, ${r.offset}, ${value}, ${r.stride});`
    : `subgroupMatrixStore(${r.ptr}, ${r.offset}, ${value}, ${r.colMajor}, ${r.stride});`;
}

/** A shader in the 'template' spelling that a compiler which knows it accepts (tried once per device). */
export function spellingProbeSource(): string {
  const at = (ptr: string, colMajor: boolean): SgRef => ({ ptr, offset: '0u', colMajor, stride: '16u' });
  return `enable f16;
enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
var<workgroup> w: array<f16, 256>;
@compute @workgroup_size(32)
fn main() {
  let a = ${sgLoad('template', 'subgroup_matrix_left<f16, 16, 16>', at('&w', false))};
  let b = ${sgLoad('template', 'subgroup_matrix_right<f16, 16, 16>', at('&w', true))};
  ${sgStore('template', at('&out', false), 'subgroupMatrixMultiplyAccumulate(a, b, subgroup_matrix_result<f32, 16, 16>())')}
}`;
}

/**
 * What the subgroup-matrix kernels share: each subgroup's FM×FN accumulator fragments, its block
 * (wm, wn) of the workgroup tile and its slot in T (the epilogue's workgroup memory), the
 * multiply-accumulate of one 16-deep step from fragment loads `a(i)`, `b(j)` (WGSL expressions), and
 * the epilogue: stored straight to C, or through T where there is one or C is f16 (fragments have no
 * element-wise access), one fragment per subgroup at a time, so the epilogue code exists once.
 * Subgroup offsets come from the subgroup_id builtin (one subgroup: zero): WGSL's uniformity
 * analysis rejects subgroup-matrix offsets derived from local_invocation_index (seen on an H100:
 * "'subgroupMatrixStore' requires argument 1 to be uniform").
 */
function fragments(k: SubgroupSpec, sg: number, spelling: SgSpelling, half: boolean) {
  const { BM, BN, subgroups, FM, FN } = k;
  const WM = 16 * FM, WN = 16 * FN;
  const many = subgroups > 1;
  const decl: string[] = [], direct: string[] = [], staged: string[] = [];
  const step = (a: (i: number) => SgRef, b: (j: number) => SgRef) => {
    const out: string[] = [];
    for (let i = 0; i < FM; i++) out.push(`let a${i} = ${sgLoad(spelling, 'subgroup_matrix_left<f16, 16, 16>', a(i))};`);
    for (let j = 0; j < FN; j++) out.push(`let b${j} = ${sgLoad(spelling, 'subgroup_matrix_right<f16, 16, 16>', b(j))};`);
    for (let i = 0; i < FM; i++) for (let j = 0; j < FN; j++) out.push(`c${i}${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, c${i}${j});`);
    return out.join('\n      ');
  };
  for (let i = 0; i < FM; i++)
    for (let j = 0; j < FN; j++) {
      decl.push(`var c${i}${j} = subgroup_matrix_result<f32, 16, 16>();`);
      direct.push(sgStore(spelling, { ptr: '&C', offset: `cOff + (m0 + wm + ${i * 16}u) * p.N + n0 + wn + ${j * 16}u`, colMajor: false, stride: 'p.N' }, `c${i}${j}`));
      staged.push(`case ${i * FN + j}u: { ${sgStore(spelling, { ptr: '&T', offset: 'frag', colMajor: false, stride: '16u' }, `c${i}${j}`)} }`);
    }
  // Entry-point builtins past lid: several subgroups take their offsets from subgroup_id.
  const args = many ? ', @builtin(subgroup_id) sgi: u32, @builtin(subgroup_invocation_id) lane: u32' : '';
  // sgi < subgroups already: the % tell Dawn's range analysis so, which then leaves the
  // workgroup-memory offsets unclamped
  const position = many
    ? `// This subgroup's ${WM}×${WN} block (bm, bn) of the tile.
  let bm = (sgi / ${BN / WN}u) % ${BM / WM}u;
  let bn = sgi % ${BN / WN}u;
  let wm = bm * ${WM}u;
  let wn = bn * ${WN}u;
  let frag = (sgi % ${subgroups}u) * 256u;
  ${decl.join('\n  ')}`
    : `let bm = 0u;
  let bn = 0u;
  let wm = 0u;
  let wn = 0u;
  let frag = 0u;
  let lane = lid;
  ${decl.join('\n  ')}`;
  // An f16 C takes its elements in pairs: each invocation puts two neighbours of a fragment row.
  const throughT = (pairs: boolean): string => {
    const [per, e] = pairs ? [128, '2u * e'] : [256, 'e'];
    const value = pairs ? `vec2<f32>(T[frag + ${e}], T[frag + ${e} + 1u])` : `T[frag + ${e}]`;
    return `for (var f = 0u; f < ${FM * FN}u; f++) {
      switch f {
        ${staged.join('\n        ')}
        default: {}
      }
      workgroupBarrier();
      for (var e = lane; e < ${per}u; e += ${sg}u) {
        let n = n0 + wn + (f % ${FN}u) * 16u + (${e}) % 16u;
        let ci = cOff + (m0 + wm + (f / ${FN}u) * 16u + (${e}) / 16u) * p.N + n;
        ${pairs ? `put(ci / 2u, n / 2u, ${value});` : `put(ci, n, ${value});`}
      }
      workgroupBarrier();
    }`;
  };
  return {
    /** The directive the entry point's builtins need. */
    enable: many ? 'enable subgroups;\n' : '',
    scratch: `var<workgroup> T: array<f32, ${subgroups * 256}>;`,
    /** The entry point up to its K loop: this workgroup's output tile and batch offsets, this
     *  subgroup's block of the tile and its accumulators. */
    entry: `@compute @workgroup_size(${subgroups * sg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32${args}) {
${tileOrigin(BM, BN)}
  let aOff = wid.z * p.sA;
  let bOff = wid.z * p.sB;
  let cOff = wid.z * p.sC;
  ${position}`,
    step,
    epilogue: half ? throughT(true) : `if (p.flags == 0u) {
    ${direct.join('\n    ')}
  } else {
    ${throughT(false)}
  }`,
  };
}

const SG_HEAD = `struct P { M: u32, N: u32, K: u32, sA: u32, sB: u32, sC: u32, tilesM: u32, tilesN: u32, flags: u32 }`;

/** The subgroup kernels' C, uniform and epilogue (pairs of elements for an f16 C). */
function sgOutput(half: boolean): string {
  return `@group(0) @binding(2) var<storage, read_write> C: array<${half ? 'u32' : 'f32'}>;
@group(0) @binding(6) var<uniform> p: P;
${half ? epilogueSource('vec2<f32>', 3, false, true) : epilogueSource('f32', 3)}`;
}

/** The direct subgroup-matrix kernels (buffers 0): each subgroup loads its fragments straight from
 *  memory (transposes become column-major loads), BK/16 steps per loop; the subgroups of a workgroup
 *  share its tile's operands through the caches only. */
function subgroupDirectSource(k: SubgroupSpec, sg: number, tA: boolean, tB: boolean, spelling: SgSpelling, half: boolean): string {
  const { BK } = k;
  const fr = fragments(k, sg, spelling, half);
  const steps: string[] = [];
  for (let kk = 0; kk < BK; kk += 16) {
    const kx = kk ? `k + ${kk}u` : 'k';
    const body = fr.step(
      (i) => ({ ptr: '&A', offset: tA ? `aOff + (${kx}) * p.M + m0 + wm + ${i * 16}u` : `aOff + (m0 + wm + ${i * 16}u) * p.K + ${kx}`, colMajor: tA, stride: tA ? 'p.M' : 'p.K' }),
      (j) => ({ ptr: '&B', offset: tB ? `bOff + (n0 + wn + ${j * 16}u) * p.K + ${kx}` : `bOff + (${kx}) * p.N + n0 + wn + ${j * 16}u`, colMajor: tB, stride: tB ? 'p.K' : 'p.N' }),
    );
    // K is a multiple of 16, not necessarily of BK
    steps.push(kk ? `if (${kx} < p.K) {\n      ${body}\n    }` : body);
  }
  return /* wgsl */ `enable f16;
${fr.enable}enable chromium_experimental_subgroup_matrix;
${SG_HEAD}
@group(0) @binding(0) var<storage, read> A: array<f16>;
@group(0) @binding(1) var<storage, read> B: array<f16>;
${sgOutput(half)}
${fr.scratch}

${fr.entry}
  for (var k = 0u; k < p.K; k += ${BK}u) {
    ${steps.join('\n    ')}
  }
  ${fr.epilogue}
}`;
}

/** A staged panel in blocks of W along M (A) or N (B): where that dimension is the operand's rows in
 *  memory (A [m][k], Bᵀ [n][k]; `mnOuter`) a block is W rows of BK halves (+ padding); where it is the
 *  columns (Aᵀ [k][m], B [k][n]) a block is BK rows of W (+ padding). `size`: halves per block. */
export interface StagedPanel { blocks: number; W: number; row: number; size: number; mnOuter: boolean }

export function stagedPanel(extent: number, W: number, BK: number, mnOuter: boolean): StagedPanel {
  const row = mnOuter ? BK + SG_PAD : W + SG_PAD;
  return { blocks: extent / W, W, row, size: mnOuter ? W * row : BK * row, mnOuter };
}

/**
 * The staged tensor-core kernels: the subgroups of a workgroup share its output tile. Per K step of BK
 * the whole workgroup copies the A and B panels into workgroup memory (vec4 loads, zero past K), and
 * each subgroup multiplies its FM×FN fragments from there; the next panels are fetched into registers
 * while the current ones are multiplied. With one buffer a step takes two barriers (panels stored, then
 * multiplied); with two, the next panels go to the other buffer while this one is multiplied, and one
 * barrier ends the step.
 *
 * Each panel is stored as one array per subgroup block (A: BM/WM blocks of WM rows of the tile, B:
 * BN/WN blocks of WN columns), and a subgroup hands its block's array to subgroupMatrixLoad, so every
 * fragment's offset in it is a constant (the K step unrolled). Dawn's robustness wraps a fragment load
 * whose offset it cannot bound in a test and a zeroed matrix; with constant offsets it leaves the loads
 * as they are, and only the block index is clamped.
 */
function subgroupStagedSource(k: SubgroupSpec, sg: number, tA: boolean, tB: boolean, BK: number, spelling: SgSpelling, half: boolean): string {
  const { BM, BN, FM, FN, subgroups, buffers } = k;
  const WG = subgroups * sg;
  const fr = fragments(k, sg, spelling, half);
  const pa = stagedPanel(BM, 16 * FM, BK, !tA), pb = stagedPanel(BN, 16 * FN, BK, tB);
  // One panel copy: element quad e → (outer, inner) of the operand's tile (o, q), global vec4 index,
  // then its block and offset in the block (from the panel buffer's first block `base`).
  const copy = (X: string, S: string, pn: StagedPanel, outerN: number, innerN: number, kInner: boolean, gIndex: string, base: string) => {
    const per = (outerN * innerN) / 4 / WG;
    if (!Number.isInteger(per)) throw new Error(`matmul: a ${outerN}×${innerN} panel does not split over ${WG} invocations`);
    const kOf = kInner ? 'k0 + q' : 'k0 + o';
    // quads never straddle blocks: W is a multiple of 16
    const [block, at] = pn.mnOuter ? [`o / ${pn.W}u`, `(o % ${pn.W}u) * ${pn.row}u + q`] : [`q / ${pn.W}u`, `o * ${pn.row}u + q % ${pn.W}u`];
    const loads: string[] = [], stores: string[] = [];
    for (let r = 0; r < per; r++) {
      const where = `let e = lid + ${r * WG}u; let o = e / ${innerN / 4}u; let q = (e % ${innerN / 4}u) * 4u;`;
      loads.push(`{ ${where} r${X}[${r}] = select(vec4<f16>(0.0), ${X}[${gIndex}], ${kOf} < p.K); }`);
      stores.push(`{ ${where} let v = r${X}[${r}]; let b = ${base ? `${base} + ` : ''}${block}; let at = ${at}; ${[0, 1, 2, 3].map((j) => `${S}[b][at + ${j}u] = v[${j}];`).join(' ')} }`);
    }
    return { regs: `var r${X}: array<vec4<f16>, ${per}>;`, load: loads.join('\n      '), store: stores.join('\n    ') };
  };
  // Global vec4 indices (offsets, K and M/N are multiples of 4, so a quad never straddles rows).
  // Two buffers: the stores fill buffer `sb` (the next step's), the multiplies read buffer `rb`.
  const [storeA, storeB, readA, readB] = buffers === 2 ? [`sb * ${pa.blocks}u`, `sb * ${pb.blocks}u`, `rb * ${pa.blocks}u + `, `rb * ${pb.blocks}u + `] : ['', '', '', ''];
  const ca = tA
    ? copy('A', 'As', pa, BK, BM, false, '(aOff + (k0 + o) * p.M + m0 + q) / 4u', storeA)
    : copy('A', 'As', pa, BM, BK, true, '(aOff + (m0 + o) * p.K + k0 + q) / 4u', storeA);
  const cb = tB
    ? copy('B', 'Bs', pb, BN, BK, true, '(bOff + (n0 + o) * p.K + k0 + q) / 4u', storeB)
    : copy('B', 'Bs', pb, BK, BN, false, '(bOff + (k0 + o) * p.N + n0 + q) / 4u', storeB);
  // fragment f (16 wide) at depth kk of a block: its first element's offset, a constant
  const fragAt = (pn: StagedPanel, f: number, kk: number) => (pn.mnOuter ? 16 * f * pn.row + kk : kk * pn.row + 16 * f);
  const steps: string[] = [];
  for (let kk = 0; kk < BK; kk += 16)
    steps.push(`{
      ${fr.step(
        (i) => ({ ptr: `&As[${readA}bm]`, offset: `${fragAt(pa, i, kk)}u`, colMajor: tA, stride: `${pa.row}u` }),
        (j) => ({ ptr: `&Bs[${readB}bn]`, offset: `${fragAt(pb, j, kk)}u`, colMajor: tB, stride: `${pb.row}u` }),
      )}
    }`);
  const multiply = steps.join('\n    ');
  const oneBuffer = `for (var t = 0u; t < (p.K + ${BK - 1}u) / ${BK}u; t++) {
    ${ca.store}
    ${cb.store}
    workgroupBarrier();
    k0 += ${BK}u;
    if (k0 < p.K) {
      ${ca.load}
      ${cb.load}
    }
    ${multiply}
    workgroupBarrier();
  }`;
  // Step t multiplies buffer t % 2 while panels t + 1 go from registers to the other buffer; the one
  // barrier orders both those stores before step t + 1's reads and step t's reads before step t + 2's
  // stores. (% 2 and 1 − rb keep the buffer offsets within Dawn's range analysis, as in tiledSource.)
  const twoBuffers = `{
    let sb = 0u;
    ${ca.store}
    ${cb.store}
  }
  workgroupBarrier();
  for (var t = 0u; t < (p.K + ${BK - 1}u) / ${BK}u; t++) {
    k0 += ${BK}u;
    let more = k0 < p.K;
    if (more) {
      ${ca.load}
      ${cb.load}
    }
    let rb = t % 2u;
    ${multiply}
    if (more) {
      let sb = 1u - rb;
      ${ca.store}
      ${cb.store}
    }
    workgroupBarrier();
  }`;
  return /* wgsl */ `enable f16;
${fr.enable}enable chromium_experimental_subgroup_matrix;
${SG_HEAD}
@group(0) @binding(0) var<storage, read> A: array<vec4<f16>>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f16>>;
${sgOutput(half)}
var<workgroup> As: array<array<f16, ${pa.size}>, ${buffers * pa.blocks}>;
var<workgroup> Bs: array<array<f16, ${pb.size}>, ${buffers * pb.blocks}>;
${fr.scratch}

${fr.entry}
  ${ca.regs}
  ${cb.regs}
  var k0 = 0u;
  ${ca.load}
  ${cb.load}
  ${buffers === 1 ? oneBuffer : twoBuffers}
  ${fr.epilogue}
}`;
}

/** `half`: C holds f16 bits (epilogueSource), every product through the epilogue. */
export function sgKernelSource(k: SgKernel, sg: number, tA: boolean, tB: boolean, bk: number, spelling: SgSpelling, half = false): string {
  return k.buffers === 0 ? subgroupDirectSource(k, sg, tA, tB, spelling, half) : subgroupStagedSource(k, sg, tA, tB, bk, spelling, half);
}
