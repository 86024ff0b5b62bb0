// Fused multi-head attention with the CroPA mask (ECG-JEPA), forward and backward, flash-style.
//
// Layout (no transposes around it): qkv [B, T, 3, H, Dh] straight from the qkv Linear, out
// [B, T, H, Dh] straight into proj, lse [B, H, T]. Tokens are lead-major, t = lead·V + column.
//
// Sparse visiting: under 'cropa' a query (l, j) sees its own lead's V keys (a contiguous block of
// tokens) plus the C−1 keys (l', j) of the same column in the other leads; under 'lead' only the
// block; under 'none' one block of all T tokens. A workgroup owns up to QT queries of one block:
// the block's keys stream through workgroup memory in tiles of KT (every thread reads the same key
// at once, a broadcast), the C−1 column keys differ per query and are read straight from global
// memory. Scores never leave registers: online softmax per tile.
//
// Backward: pass 1 (query-centric) recomputes P = exp(s − lse), forms dS = P (dP − D) with
// D = rowsum(dout·out) and accumulates dQ; it also writes D for pass 2. Pass 2 (key-centric) uses
// that the mask is symmetric: the queries that see key (l, j) are exactly the keys that (l, j)
// sees, so each thread owns one key and sums dK, dV over the same sparse pattern, with no atomics.
//
// Lanes (an option of every pass, where subgroups allow): 2 or 4 consecutive invocations share a
// query (a key in pass 2), each holding a part of every head vector the pass keeps; a dot product
// is the subgroup sum of their parts (subgroupShuffleXor), which every lane then holds, bit for bit.
// The lanes of a query take every branch together, and the shuffles come after branches that other
// queries' lanes take differently. Dawn asks Vulkan for maximal reconvergence for subgroup shaders
// (MaximallyReconvergesKHR in its SPIR-V of these kernels on lavapipe), so the subgroup is whole
// again at each shuffle; without it, a shuffle still runs among the lanes that branched together,
// which include a query's own.
import { TO_FLOAT_WGSL, TO_HALF_WGSL } from './cast.js';
import { requireBindable } from './checks.js';
import { rowSubgroups, scratchBuffer } from './rows.js';
import { CommandBatch, getPipeline, gpuShaderForm, grid, Params, type Binding } from './runtime.js';

export type AttentionMask = 'cropa' | 'lead' | 'none';

export interface AttentionDims {
  B: number;
  H: number;
  Dh: number;
  /** Leads (token blocks); T = C·V. Under 'none' only T matters. */
  C: number;
  /** Time columns present per lead. */
  V: number;
  mask: AttentionMask;
  /** Logit scale, default 1/sqrt(Dh). */
  scale?: number;
}

const MASKS: readonly AttentionMask[] = ['cropa', 'lead', 'none'];
export const ATTENTION_MAX_DH = 128;
// The WebGPU minimum for maxComputeWorkgroupStorageSize: tiles sized to it fit every adapter.
const WG_STORAGE = 16384;

interface Shape {
  B: number;
  H: number;
  Dh: number;
  C: number;
  V: number;
  T: number;
  mask: AttentionMask;
  scale: number;
  /** Tokens per key block: V, or T under 'none'. */
  blockLen: number;
  nBlocks: number;
}

function shapeOf(kernel: string, d: AttentionDims): Shape {
  const { B, H, Dh, C, V, mask } = d;
  const sizes = `B=${B} H=${H} Dh=${Dh} C=${C} V=${V} mask=${mask}`;
  for (const [k, v] of Object.entries({ B, H, Dh, C, V }))
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${kernel}: ${k} must be a positive integer (${sizes})`);
  if (Dh > ATTENTION_MAX_DH) throw new RangeError(`${kernel}: Dh ${Dh} > ${ATTENTION_MAX_DH} is not supported (${sizes})`);
  if (!MASKS.includes(mask)) throw new RangeError(`${kernel}: mask must be one of ${MASKS.join('/')} (${sizes})`);
  const scale = d.scale ?? 1 / Math.sqrt(Dh);
  if (!Number.isFinite(scale)) throw new RangeError(`${kernel}: scale ${scale} is not finite (${sizes})`);
  const T = C * V;
  if (B * T * 3 * H * Dh > 0xffffffff) throw new RangeError(`${kernel}: qkv has ${B * T * 3 * H * Dh} elements, beyond u32 indexing (${sizes})`);
  const blockLen = mask === 'none' ? T : V;
  return { B, H, Dh, C, V, T, mask, scale, blockLen, nBlocks: T / blockLen };
}

function bindingBytes(b: Binding): number {
  if ('buffer' in b) return b.size ?? b.buffer.size - (b.offset ?? 0);
  return b.size;
}

function checkSize(kernel: string, s: Shape, name: string, b: Binding, elems: number, type: 'f32' | 'f16' = 'f32'): void {
  const have = bindingBytes(b), need = elems * (type === 'f16' ? 2 : 4);
  if (have < need)
    throw new RangeError(`${kernel}: ${name} binds ${have} bytes, needs ${need} (${elems} ${type} for B=${s.B} T=${s.T} H=${s.H} Dh=${s.Dh})`);
}

interface Cfg {
  mask: AttentionMask;
  Dh: number;
  /** vec4s per head vector (Dh padded up to a multiple of 4 with zeros). */
  DP: number;
  /** Threads per workgroup = queries (or keys, in pass 2) per workgroup. */
  QT: number;
  /** Tile of keys (or queries, in pass 2) held in workgroup memory. */
  KT: number;
  /** Dh % 4 == 0: bind the big arrays as vec4 (every head vector starts 16-byte aligned). */
  vec: boolean;
  /** The GPU form: loops over DP and KT with constant bounds (unrolled, the arrays in registers).
   *  Otherwise their bounds come from the uniform block (CPU adapters, see gpuShaderForm). */
  gpu: boolean;
  /** Invocations per query (the forward's `lanes`; 1 elsewhere): each holds DP / lanes vec4s of the
   *  query and of its output, and a score is their subgroup sum. */
  lanes: number;
  /** out holds f16 bits (vec only): the forward writes them, pass 1 of the backward reads them. */
  half?: boolean;
  /** qkv is f16 (vec only; shader-f16): every pass widens it as it loads it, exactly. */
  halfIn?: boolean;
  /** The backward's dout holds f16 bits (vec only), widened as it is loaded. */
  halfDout?: boolean;
  /** The backward writes dqkv as f16 bits (vec only), rounded as castF32ToF16. */
  halfGrad?: boolean;
}

function cfgFor(device: GPUDevice, s: Shape, bytesPerTileRow: (DP: number) => number): Cfg {
  const DP = Math.ceil(s.Dh / 4);
  // 32 threads cover the student's 16–20 visible columns with little idling; 64 the full 50.
  const QT = s.blockLen <= 32 ? 32 : 64;
  const KT = Math.max(1, Math.min(32, Math.floor(WG_STORAGE / bytesPerTileRow(DP))));
  return { mask: s.mask, Dh: s.Dh, DP, QT, KT, vec: s.Dh % 4 === 0, gpu: gpuShaderForm(device), lanes: 1 };
}

const keyOf = (kind: string, c: Cfg) =>
  `attention_${kind}_${c.mask}_dh${c.Dh}_qt${c.QT}_kt${c.KT}_${c.vec ? 'v4' : 's'}${c.lanes > 1 ? `_l${c.lanes}` : ''}${c.half ? '_h' : ''}${c.halfIn ? '_hi' : ''}${c.halfDout ? '_hd' : ''}${c.halfGrad ? '_hg' : ''}${c.gpu ? '' : '_cpu'}`;

/** Loader ld_<name>(e, dp): the dp-th vec4 of the head vector whose first element is e. */
function loader(name: string, c: Cfg): string {
  if (c.vec) return `fn ld_${name}(e: u32, dp: u32) -> vec4f { return ${name}[(e >> 2u) + dp]; }`;
  return `fn ld_${name}(e: u32, dp: u32) -> vec4f {
  var r = vec4f(0.0);
  for (var c = 0u; c < 4u; c++) { if (dp * 4u + c < DH) { r[c] = ${name}[e + dp * 4u + c]; } }
  return r;
}`;
}

/** The binding of a head-vector array `name` (after its @binding) with its loader or storer: f32, or
 *  with `half` f16 bits in pairs of words (vec only), converted in software as the cast kernels do
 *  (no shader-f16 needed; an f32 too large for f16 becomes ±inf, which loss scaling detects). */
function halfOr(name: string, c: Cfg, half: boolean, access: 'read' | 'read_write'): string {
  const E = c.vec ? 'vec4f' : 'f32';
  const decl = `var<storage, ${access}> ${name}: array<${half ? 'vec2<u32>' : E}>;`;
  if (!half) return `${decl}\n${access === 'read' ? loader(name, c) : storer(name, c)}`;
  return access === 'read'
    ? `${decl}\nfn ld_${name}(e: u32, dp: u32) -> vec4f { return floats4(${name}[(e >> 2u) + dp]); }`
    : `${decl}\nfn st_${name}(e: u32, dp: u32, v: vec4f) { ${name}[(e >> 2u) + dp] = halves4(v); }`;
}

/** The packing functions a pass needs for its f16 bindings. */
function halfHelpers(toHalf: boolean, toFloat: boolean): string {
  return `${toHalf ? TO_HALF_WGSL : ''}${toFloat ? TO_FLOAT_WGSL : ''}`;
}

/** `stmt` (which uses dp) for every dp < DP_LOOP: a loop, or with `unroll` one copy per dp with a
 *  constant index. Stores that convert to f16 are unrolled on GPUs: an H200 left a loop over their
 *  branchy conversions rolled, and the array it indexed then lived in local memory (the forward took
 *  1.63 ms for the encoder's attention against 0.51 with an f32 output, 2026-11-27). */
function overRegs(c: Cfg, unroll: boolean, stmt: string): string {
  if (!(unroll && c.gpu)) return `for (var dp = 0u; dp < DP_LOOP; dp++) { ${stmt} }`;
  return Array.from({ length: c.DP / c.lanes }, (_, i) => `{ const dp = ${i}u; ${stmt} }`).join('\n    ');
}

function storer(name: string, c: Cfg): string {
  if (c.vec) return `fn st_${name}(e: u32, dp: u32, v: vec4f) { ${name}[(e >> 2u) + dp] = v; }`;
  return `fn st_${name}(e: u32, dp: u32, v: vec4f) {
  for (var c = 0u; c < 4u; c++) { if (dp * 4u + c < DH) { ${name}[e + dp * 4u + c] = v[c]; } }
}`;
}

/** qkv's binding 0 and its loader: f32, or f16 read natively (widening is exact, no rounding to
 *  choose, so the passes compute on the same values as on an f32 copy of them). */
function qkvInput(c: Cfg): string {
  if (!c.halfIn) return `@group(0) @binding(0) var<storage, read> qkv: array<${c.vec ? 'vec4f' : 'f32'}>;\n${loader('qkv', c)}`;
  return `@group(0) @binding(0) var<storage, read> qkv: array<vec4<f16>>;
fn ld_qkv(e: u32, dp: u32) -> vec4f { return vec4f(qkv[(e >> 2u) + dp]); }`;
}

/** Constants, uniforms and the workgroup → (b, h, block, chunk) decomposition shared by all passes. */
function prelude(c: Cfg): string {
  const none = c.mask === 'none';
  return /* wgsl */ `
const DH = ${c.Dh}u;
const DP = ${c.DP}u;
const QT = ${c.QT}u;
const KT = ${c.KT}u;
${c.gpu ? `const DP_LOOP = ${c.lanes > 1 ? 'DPL' : 'DP'};\nconst KT_LOOP = KT;` : 'var<private> DP_LOOP: u32; // DP (DPL with lanes) and KT, set at entry from the uniform block\nvar<private> KT_LOOP: u32;'}${
  c.lanes > 1
    ? `
// ${c.lanes} invocations per query (consecutive, so within one subgroup), DPL vec4s of the head vector each
const LANES = ${c.lanes}u;
const DPL = ${c.DP / c.lanes}u;
fn laneSum(v: f32) -> f32 {
  var r = v;
  for (var m = 1u; m < LANES; m <<= 1u) { r += subgroupShuffleXor(r, m); }
  return r;
}`
    : ''
}
struct P { B: u32, H: u32, C: u32, V: u32, nChunks: u32, scale: f32, one: u32 }
fn hsum(v: vec4f) -> f32 { return (v.x + v.y) + (v.z + v.w); }
// Workgroup-uniform by construction (no local index in it), so barriers may follow a return on !ok.
struct Where { ok: bool, b: u32, h: u32, blk: u32, chunk: u32, T: u32, blockLen: u32, HD: u32, RS: u32, t0: u32 }
fn locate(wid: vec3u, nwg: vec3u) -> Where {
  var w: Where;
  w.T = p.C * p.V;
  w.blockLen = ${none ? 'w.T' : 'p.V'};
  let nBlocks = ${none ? '1u' : 'p.C'};
  w.HD = p.H * DH;
  w.RS = 3u * w.HD;
  let g = wid.y * nwg.x + wid.x;
  w.ok = g < p.B * p.H * nBlocks * p.nChunks;
  w.chunk = g % p.nChunks;
  let r = g / p.nChunks;
  w.blk = r % nBlocks;
  w.h = (r / nBlocks) % p.H;
  w.b = r / nBlocks / p.H;
  w.t0 = w.b * w.T + w.blk * w.blockLen;
  return w;
}`;
}

const CROSS = (c: Cfg) => c.mask === 'cropa';

/** The entry point's head, shared by all passes: this workgroup's place, then this thread's row a
 *  of the block (valid: a real row, not a clamped copy of the last). */
function entry(c: Cfg): string {
  // with lanes: query qi, and this invocation's first vec4 d0 (DP_LOOP is then DPL)
  const [q, lanes] = c.lanes > 1 ? ['qi', `\n  let qi = lid / LANES;\n  let d0 = (lid % LANES) * DPL;`] : ['lid', ''];
  return /* wgsl */ `@compute @workgroup_size(${c.QT * c.lanes})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {${c.gpu ? '' : `\n  DP_LOOP = ${c.lanes > 1 ? 'DPL' : 'DP'} * p.one;\n  KT_LOOP = KT * p.one;`}
  let w = locate(wid, nwg);
  if (!w.ok) { return; }${lanes}
  // Threads past the block still help load tiles; they compute on its last row and store nothing.
  let valid = w.chunk * QT + ${q} < w.blockLen;
  let a = min(w.chunk * QT + ${q}, w.blockLen - 1u);`;
}

/** Workgroup memory for one tile of the block's keys and values (the query-centric passes). */
function keyTileDecl(c: Cfg): string {
  return /* wgsl */ `var<workgroup> sk: array<vec4f, ${c.KT * c.DP}>;
var<workgroup> sv: array<vec4f, ${c.KT * c.DP}>;`;
}

/** What lanes change in a pass's WGSL: its header, the vec4 index of an invocation's dp-th part of a
 *  head vector (`at`), a dot product's sum over the lanes of a query (`sum`), the length of its
 *  per-invocation arrays (`regs`) and `first`, the condition that keeps one lane's store of a
 *  per-query value. */
function lanesOf(c: Cfg) {
  const many = c.lanes > 1;
  return {
    // (The CPU form's loop bounds are private variables, which WGSL's analysis cannot prove uniform;
    // they are: set from the uniform block at entry.)
    header: (c.halfIn ? 'enable f16;\n' : '') + (many ? 'enable subgroups;\ndiagnostic(off, subgroup_uniformity);' : ''),
    at: many ? 'd0 + dp' : 'dp',
    sum: (e: string) => (many ? `laneSum(${e})` : e),
    regs: c.DP / c.lanes,
    first: many ? ' && d0 == 0u' : '',
  };
}

/** The workgroup's invocations, as a WGSL expression. */
const threads = (c: Cfg) => (c.lanes > 1 ? 'QT * LANES' : 'QT');

/** In the loop over k0: loads the block's keys k0.. into sk, sv between barriers; cnt = how many are real. */
const keyTile = (c: Cfg) => /* wgsl */ `    workgroupBarrier();
    for (var i = lid; i < KT * DP; i += ${threads(c)}) {
      let ek = (w.t0 + min(k0 + i / DP, w.blockLen - 1u)) * w.RS + w.HD + w.h * DH;
      sk[i] = ld_qkv(ek, i % DP);
      sv[i] = ld_qkv(ek + w.HD, i % DP);
    }
    workgroupBarrier();
    let cnt = min(KT, w.blockLen - k0);`;

function forwardSource(c: Cfg): string {
  // With lanes, an invocation's vec4s of a head vector start at d0 and a score sums its lanes' parts.
  const { header, at, sum, regs, first } = lanesOf(c);
  const score = sum('hsum(d4)');
  const outStore = overRegs(c, !!c.half, `st_out(eo, ${at}, acc[dp] * inv);`);
  return /* wgsl */ `${header}
${prelude(c)}
${qkvInput(c)}
${halfHelpers(!!c.half, false)}
@group(0) @binding(1) ${halfOr('out', c, !!c.half, 'read_write')}
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
${keyTileDecl(c)}

${entry(c)}
  let eq = (w.t0 + a) * w.RS + w.h * DH;
  var q: array<vec4f, ${regs}>;
  for (var dp = 0u; dp < DP_LOOP; dp++) { q[dp] = ld_qkv(eq, ${at}) * p.scale; }
  var acc: array<vec4f, ${regs}>;
  var m = -1e30;
  var l = 0.0;
  var s: array<f32, ${c.KT}>;
  for (var k0 = 0u; k0 < w.blockLen; k0 += KT) {
${keyTile(c)}
    // Scores of the whole tile first, so the running max is rescaled once per tile, not per key.
    var mt = m;
    for (var kk = 0u; kk < KT_LOOP; kk++) {
      var x = -1e30;
      if (kk < cnt) {
        var d4 = vec4f(0.0);
        for (var dp = 0u; dp < DP_LOOP; dp++) { d4 = fma(q[dp], sk[kk * DP + ${at}], d4); }
        x = ${score};
      }
      s[kk] = x;
      mt = max(mt, x);
    }
    let corr = exp(m - mt);
    m = mt;
    l *= corr;
    for (var dp = 0u; dp < DP_LOOP; dp++) { acc[dp] *= corr; }
    for (var kk = 0u; kk < KT_LOOP; kk++) {
      if (kk < cnt) {
        let pk = exp(s[kk] - m);
        l += pk;
        for (var dp = 0u; dp < DP_LOOP; dp++) { acc[dp] = fma(vec4f(pk), sv[kk * DP + ${at}], acc[dp]); }
      }
    }
  }
${
  CROSS(c)
    ? `  // The other leads' keys at this query's column.
  for (var l2 = 0u; l2 < p.C; l2++) {
    if (l2 == w.blk) { continue; }
    let ek = (w.b * w.T + l2 * p.V + a) * w.RS + w.HD + w.h * DH;
    var d4 = vec4f(0.0);
    for (var dp = 0u; dp < DP_LOOP; dp++) { d4 = fma(q[dp], ld_qkv(ek, ${at}), d4); }
    let x = ${score};
    if (x > m) {
      let corr = exp(m - x);
      l *= corr;
      for (var dp = 0u; dp < DP_LOOP; dp++) { acc[dp] *= corr; }
      m = x;
    }
    let pk = exp(x - m);
    l += pk;
    for (var dp = 0u; dp < DP_LOOP; dp++) { acc[dp] = fma(vec4f(pk), ld_qkv(ek + w.HD, ${at}), acc[dp]); }
  }`
    : ''
}
  if (valid) {
    let inv = 1.0 / l;
    let eo = (w.t0 + a) * w.HD + w.h * DH;
    ${outStore}
  }
  if (valid${first}) { lse[(w.b * p.H + w.h) * w.T + w.blk * w.blockLen + a] = m + log(l); }
}`;
}

/** Pass 1 of the backward: D = rowsum(dout·out) (kept for pass 2) and dQ, query-centric. */
function backwardQSource(c: Cfg): string {
  const { header, at, sum, regs, first } = lanesOf(c);
  return /* wgsl */ `${header}
${prelude(c)}
${qkvInput(c)}
${halfHelpers(!!c.halfGrad, !!(c.half || c.halfDout))}
@group(0) @binding(1) ${halfOr('out', c, !!c.half, 'read')}
@group(0) @binding(2) ${halfOr('dout', c, !!c.halfDout, 'read')}
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) ${halfOr('dqkv', c, !!c.halfGrad, 'read_write')}
@group(0) @binding(5) var<storage, read_write> delta: array<f32>;
@group(0) @binding(6) var<uniform> p: P;
${keyTileDecl(c)}

${entry(c)}
  let eq = (w.t0 + a) * w.RS + w.h * DH;
  let eo = (w.t0 + a) * w.HD + w.h * DH;
  var q: array<vec4f, ${regs}>;
  var g: array<vec4f, ${regs}>;
  var d4 = vec4f(0.0);
  for (var dp = 0u; dp < DP_LOOP; dp++) {
    q[dp] = ld_qkv(eq, ${at}) * p.scale;
    g[dp] = ld_dout(eo, ${at});
    d4 = fma(g[dp], ld_out(eo, ${at}), d4);
  }
  let D = ${sum('hsum(d4)')};
  let row = (w.b * p.H + w.h) * w.T + w.blk * w.blockLen + a;
  let L = lse[row];
  if (valid${first}) { delta[row] = D; }
  var dq: array<vec4f, ${regs}>;
  for (var k0 = 0u; k0 < w.blockLen; k0 += KT) {
${keyTile(c)}
    for (var kk = 0u; kk < KT_LOOP; kk++) {
      if (kk < cnt) {
        var s4 = vec4f(0.0);
        var p4 = vec4f(0.0);
        for (var dp = 0u; dp < DP_LOOP; dp++) {
          s4 = fma(q[dp], sk[kk * DP + ${at}], s4);
          p4 = fma(g[dp], sv[kk * DP + ${at}], p4);
        }
        let ds = exp(${sum('hsum(s4)')} - L) * (${sum('hsum(p4)')} - D);
        for (var dp = 0u; dp < DP_LOOP; dp++) { dq[dp] = fma(vec4f(ds), sk[kk * DP + ${at}], dq[dp]); }
      }
    }
  }
${
  CROSS(c)
    ? `  for (var l2 = 0u; l2 < p.C; l2++) {
    if (l2 == w.blk) { continue; }
    let ek = (w.b * w.T + l2 * p.V + a) * w.RS + w.HD + w.h * DH;
    var k: array<vec4f, ${regs}>;
    var s4 = vec4f(0.0);
    var p4 = vec4f(0.0);
    for (var dp = 0u; dp < DP_LOOP; dp++) {
      k[dp] = ld_qkv(ek, ${at});
      s4 = fma(q[dp], k[dp], s4);
      p4 = fma(g[dp], ld_qkv(ek + w.HD, ${at}), p4);
    }
    let ds = exp(${sum('hsum(s4)')} - L) * (${sum('hsum(p4)')} - D);
    for (var dp = 0u; dp < DP_LOOP; dp++) { dq[dp] = fma(vec4f(ds), k[dp], dq[dp]); }
  }`
    : ''
}
  if (valid) {
    ${overRegs(c, !!c.halfGrad, `st_dqkv(eq, ${at}, dq[dp] * p.scale);`)}
  }
}`;
}

/** Pass 2 of the backward: dK and dV, key-centric over the same (symmetric) pattern. */
function backwardKVSource(c: Cfg): string {
  const { header, at, sum, regs } = lanesOf(c);
  return /* wgsl */ `${header}
${prelude(c)}
${qkvInput(c)}
${halfHelpers(!!c.halfGrad, !!c.halfDout)}
@group(0) @binding(1) ${halfOr('dout', c, !!c.halfDout, 'read')}
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read> delta: array<f32>;
@group(0) @binding(4) ${halfOr('dqkv', c, !!c.halfGrad, 'read_write')}
@group(0) @binding(5) var<uniform> p: P;
var<workgroup> sq: array<vec4f, ${c.KT * c.DP}>;
var<workgroup> sg: array<vec4f, ${c.KT * c.DP}>;
var<workgroup> sl: array<f32, ${c.KT}>;
var<workgroup> sd: array<f32, ${c.KT}>;

${entry(c)}
  let ek = (w.t0 + a) * w.RS + w.HD + w.h * DH;
  var k: array<vec4f, ${regs}>;
  var v: array<vec4f, ${regs}>;
  for (var dp = 0u; dp < DP_LOOP; dp++) {
    k[dp] = ld_qkv(ek, ${at});
    v[dp] = ld_qkv(ek + w.HD, ${at});
  }
  var dk: array<vec4f, ${regs}>;
  var dv: array<vec4f, ${regs}>;
  let rowBase = (w.b * p.H + w.h) * w.T + w.blk * w.blockLen;
  for (var q0 = 0u; q0 < w.blockLen; q0 += KT) {
    workgroupBarrier();
    for (var i = lid; i < KT * DP; i += ${threads(c)}) {
      let t = w.t0 + min(q0 + i / DP, w.blockLen - 1u);
      sq[i] = ld_qkv(t * w.RS + w.h * DH, i % DP) * p.scale;
      sg[i] = ld_dout(t * w.HD + w.h * DH, i % DP);
    }
    for (var i = lid; i < KT; i += ${threads(c)}) {
      let r = rowBase + min(q0 + i, w.blockLen - 1u);
      sl[i] = lse[r];
      sd[i] = delta[r];
    }
    workgroupBarrier();
    let cnt = min(KT, w.blockLen - q0);
    for (var qq = 0u; qq < KT_LOOP; qq++) {
      if (qq < cnt) {
        var s4 = vec4f(0.0);
        var p4 = vec4f(0.0);
        for (var dp = 0u; dp < DP_LOOP; dp++) {
          s4 = fma(sq[qq * DP + ${at}], k[dp], s4);
          p4 = fma(sg[qq * DP + ${at}], v[dp], p4);
        }
        let pq = exp(${sum('hsum(s4)')} - sl[qq]);
        let ds = pq * (${sum('hsum(p4)')} - sd[qq]);
        for (var dp = 0u; dp < DP_LOOP; dp++) {
          dv[dp] = fma(vec4f(pq), sg[qq * DP + ${at}], dv[dp]);
          dk[dp] = fma(vec4f(ds), sq[qq * DP + ${at}], dk[dp]);
        }
      }
    }
  }
${
  CROSS(c)
    ? `  // The queries of the other leads at this key's column (the mask is symmetric).
  for (var l2 = 0u; l2 < p.C; l2++) {
    if (l2 == w.blk) { continue; }
    let t = w.b * w.T + l2 * p.V + a;
    let r = (w.b * p.H + w.h) * w.T + l2 * p.V + a;
    var qv: array<vec4f, ${regs}>;
    var gv: array<vec4f, ${regs}>;
    var s4 = vec4f(0.0);
    var p4 = vec4f(0.0);
    for (var dp = 0u; dp < DP_LOOP; dp++) {
      qv[dp] = ld_qkv(t * w.RS + w.h * DH, ${at}) * p.scale;
      gv[dp] = ld_dout(t * w.HD + w.h * DH, ${at});
      s4 = fma(qv[dp], k[dp], s4);
      p4 = fma(gv[dp], v[dp], p4);
    }
    let pq = exp(${sum('hsum(s4)')} - lse[r]);
    let ds = pq * (${sum('hsum(p4)')} - delta[r]);
    for (var dp = 0u; dp < DP_LOOP; dp++) {
      dv[dp] = fma(vec4f(pq), gv[dp], dv[dp]);
      dk[dp] = fma(vec4f(ds), qv[dp], dk[dp]);
    }
  }`
    : ''
}
  if (valid) {
    ${overRegs(c, !!c.halfGrad, `st_dqkv(ek, ${at}, dk[dp]); st_dqkv(ek + w.HD, ${at}, dv[dp]);`)}
  }
}`;
}

function params(s: Shape, QT: number): { p: Params; groups: number } {
  const nChunks = Math.ceil(s.blockLen / QT);
  return { p: new Params().u32(s.B).u32(s.H).u32(s.C).u32(s.V).u32(nChunks).f32(s.scale).u32(1), groups: s.B * s.H * s.nBlocks * nChunks };
}

const fwdRow = (DP: number) => 2 * 16 * DP;
const bwdKVRow = (DP: number) => 2 * 16 * DP + 8;

/** lanes: invocations per query (per key in the backward's second pass), 1, 2 or 4, each holding a
 *  part of every head vector the pass keeps (query, output, gradients), a dot product the subgroup
 *  sum of their parts: fewer registers per invocation than one invocation per query (254 on an H200
 *  at Dh 48; 111–189 with 2 lanes). Taken where the row kernels use subgroups (rows.ts) and Dh/4
 *  rounded up is a multiple of it; else one lane. Default 2: the H200 ran the encoder's CroPA
 *  attention fwd+bwd in 2.11 ms with 2 lanes, 2.55 with 4, 2.74 with 1 (2026-11-27). The same
 *  result up to the order of a dot product's sum. */
export interface AttentionKernelOptions {
  lanes?: 1 | 2 | 4;
}

const DEFAULT_LANES = 2;

/** The element types of qkv and out, and in the backward of dout and dqkv: f32 by default (each f16
 *  needs Dh a multiple of 4). lse stays f32.
 *  input 'f16': qkv holds f16 (an f16 qkv Linear's output; the adapter needs shader-f16) and every
 *  pass widens it exactly as it loads it: the results are those of the f32 kernels on its values.
 *  output 'f16': out holds f16 bits, two per 32-bit word, rounded as castF32ToF16, for an f16 reader;
 *  the backward is told so: its D = rowsum(dout·out) reads them.
 *  dout 'f16': the gradient of an f16 out, in f16 bits (an f16 reader's gradient), widened exactly.
 *  dqkv 'f16': the backward writes f16 bits, dqkv's f32 values rounded as castF32ToF16 (for an f16
 *  qkv Linear, whose matmuls then read it as it is). */
export interface AttentionTypes {
  input?: 'f32' | 'f16';
  output?: 'f32' | 'f16';
  dout?: 'f32' | 'f16';
  dqkv?: 'f32' | 'f16';
}

/** The config of a pass with the lanes asked for, where they can be taken. */
function withLanes(device: GPUDevice, c: Cfg, kernel: string, o: AttentionKernelOptions): Cfg {
  const lanes = o.lanes ?? DEFAULT_LANES;
  if (lanes !== 1 && lanes !== 2 && lanes !== 4) throw new RangeError(`${kernel}: lanes must be 1, 2 or 4, got ${lanes}`);
  const lim = device.limits;
  const fits = rowSubgroups(device) && c.DP % lanes === 0 && c.QT * lanes <= Math.min(lim.maxComputeInvocationsPerWorkgroup, lim.maxComputeWorkgroupSizeX);
  return fits ? { ...c, lanes } : c;
}

interface HalfFlags {
  halfIn: boolean;
  half: boolean;
  halfDout: boolean;
  halfGrad: boolean;
}

/** The types asked for (AttentionTypes), checked: which of qkv, out, dout and dqkv are f16. */
function typesOf(device: GPUDevice, kernel: string, s: Shape, o: AttentionTypes): HalfFlags {
  const sizes = `B=${s.B} T=${s.T} H=${s.H} Dh=${s.Dh}`;
  const half = (name: keyof AttentionTypes) => {
    const t = o[name];
    if (t !== undefined && t !== 'f32' && t !== 'f16') throw new RangeError(`${kernel}: ${name} must be 'f32' or 'f16', got '${t}'`);
    if (t === 'f16' && s.Dh % 4) throw new RangeError(`${kernel}: an f16 ${name} needs Dh a multiple of 4 (${sizes})`);
    return t === 'f16';
  };
  const r = { halfIn: half('input'), half: half('output'), halfDout: half('dout'), halfGrad: half('dqkv') };
  if (r.halfIn && !device.features.has('shader-f16')) throw new Error(`${kernel}: an f16 input needs the adapter's shader-f16 feature`);
  return r;
}

/** Only the flags that are set, so that f32 configs keep their pipeline keys and objects. */
const typeFlags = (t: Partial<HalfFlags>): Partial<Cfg> => Object.fromEntries(Object.entries(t).filter(([, v]) => v));

/** out[B,T,H·Dh] = softmax(scale·q kᵀ, masked) v and lse[B,H,T], from qkv[B,T,3·H·Dh]. */
export function attentionForward(
  batch: CommandBatch,
  bufs: { qkv: Binding; out: Binding; lse: Binding },
  dims: AttentionDims,
  opts: AttentionKernelOptions & AttentionTypes = {},
): void {
  const s = shapeOf('attentionForward', dims);
  const n = s.B * s.T * s.H * s.Dh;
  const { halfIn, half } = typesOf(batch.device, 'attentionForward', s, opts);
  const t = { halfIn, half };
  checkSize('attentionForward', s, 'qkv', bufs.qkv, 3 * n, t.halfIn ? 'f16' : 'f32');
  checkSize('attentionForward', s, 'out', bufs.out, n, t.half ? 'f16' : 'f32');
  checkSize('attentionForward', s, 'lse', bufs.lse, s.B * s.H * s.T);
  requireBindable('attentionForward', [['out', bufs.out], ['lse', bufs.lse]], [['qkv', bufs.qkv]]);
  const c = { ...withLanes(batch.device, cfgFor(batch.device, s, fwdRow), 'attentionForward', opts), ...typeFlags(t) };
  const pipe = getPipeline(batch.device, keyOf('fwd', c), () => forwardSource(c));
  const { p, groups } = params(s, c.QT);
  batch.dispatch(pipe, [bufs.qkv, bufs.out, bufs.lse], p, grid(groups));
}

/**
 * Gradient of attentionForward: overwrites all of dqkv [B,T,3·H·Dh] from qkv and the forward's out
 * (of the types the forward was given), lse, and dout [B,T,H·Dh] (AttentionTypes). `delta`
 * (optional, B·H·T f32) is scratch for rowsum(dout·out).
 */
export function attentionBackward(
  batch: CommandBatch,
  bufs: { qkv: Binding; out: Binding; lse: Binding; dout: Binding; dqkv: Binding; delta?: Binding },
  dims: AttentionDims,
  opts: AttentionKernelOptions & AttentionTypes = {},
): void {
  const k = 'attentionBackward';
  const s = shapeOf(k, dims);
  const n = s.B * s.T * s.H * s.Dh;
  const rows = s.B * s.H * s.T;
  const t = typesOf(batch.device, k, s, opts);
  checkSize(k, s, 'qkv', bufs.qkv, 3 * n, t.halfIn ? 'f16' : 'f32');
  checkSize(k, s, 'out', bufs.out, n, t.half ? 'f16' : 'f32');
  checkSize(k, s, 'dout', bufs.dout, n, t.halfDout ? 'f16' : 'f32');
  checkSize(k, s, 'lse', bufs.lse, rows);
  checkSize(k, s, 'dqkv', bufs.dqkv, 3 * n, t.halfGrad ? 'f16' : 'f32');
  if (bufs.delta) checkSize(k, s, 'delta', bufs.delta, rows);
  // D = rowsum(dout·out) goes from pass 1 to pass 2 through the device's scratch, unless the caller
  // passes a buffer (every backward rewrites all the rows it reads)
  const delta = bufs.delta ?? scratchBuffer(batch, 'attention.delta', rows * 4);
  // pass 1 writes dqkv and delta from qkv, out, dout and lse; pass 2 reads delta too
  const reads: [string, Binding][] = [['qkv', bufs.qkv], ['out', bufs.out], ['dout', bufs.dout], ['lse', bufs.lse]];
  requireBindable(k, [['dqkv', bufs.dqkv], ['delta', delta]], reads);
  requireBindable(k, [['dqkv', bufs.dqkv]], [['delta', delta]]);

  const cq = { ...withLanes(batch.device, cfgFor(batch.device, s, fwdRow), k, opts), ...typeFlags(t) };
  const pq = getPipeline(batch.device, keyOf('bwdq', cq), () => backwardQSource(cq));
  const a = params(s, cq.QT);
  batch.dispatch(pq, [bufs.qkv, bufs.out, bufs.dout, bufs.lse, bufs.dqkv, delta], a.p, grid(a.groups));

  const ckv = { ...withLanes(batch.device, cfgFor(batch.device, s, bwdKVRow), k, opts), ...typeFlags({ ...t, half: false }) };
  const pkv = getPipeline(batch.device, keyOf('bwdkv', ckv), () => backwardKVSource(ckv));
  const b = params(s, ckv.QT);
  batch.dispatch(pkv, [bufs.qkv, bufs.dout, bufs.lse, delta, bufs.dqkv], b.p, grid(b.groups));
}
