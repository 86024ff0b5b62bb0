// LayerNorm over the last dim of a [rows, dim] f32 tensor, as PyTorch: biased variance, eps inside
// the square root (default 1e-5), optional affine gamma/beta.
//
// Forward: the row is read once into registers; one sum gives the mean, a second the centred sum
// of squares from the registers, so the variance is exact two-pass (no E[x²] − mean² cancellation).
// Where the device has subgroups and the row fits (kernels/rows.ts subgroupRows: up to 1024 at
// subgroup size 32), one subgroup holds a row (vec4 loads where dim % 4 == 0) and both sums are
// subgroupAdds: no barrier, several rows per workgroup. Otherwise one workgroup per row with two
// workgroup reductions (up to MAX_PER_THREAD values per thread; its barriers held it to about
// half of copy bandwidth on an H100); rows longer than 256·MAX_PER_THREAD are read three times
// (sum, squares, output). Both kernels also store mean and 1/std per row for the backward.
// y may be written as f16 bits instead (output 'f16', for an f16 reader; dim even): vec4 rows from
// the registers, other rows in pairs of elements read again from x.
//
// Backward: with xh = (x − mean)·rstd and g = dy·gamma,
//   dx = rstd · (g − mean(g) − xh · mean(g·xh)),  dgamma = Σ_rows dy·xh,  dbeta = Σ_rows dy.
// WGSL has no float atomics, so dgamma/dbeta are two-pass: the kernel writes dx and partial sums of
// dy·xh and dy per column, one partial row per workgroup, into a per-device scratch buffer
// (kernels/rows.ts, key 'layernorm'); one reduceAxis with two outputs adds them into dgamma/dbeta.
// Where the forward has one subgroup per row, so does the backward: each subgroup walks 8 rows (its two row
// sums by subgroupAdd, no barrier), keeping its lanes' columns' partials in registers, and the
// workgroup then adds its subgroups'.
// Otherwise each workgroup walks a block of rows with a workgroup reduction per row (barrier-bound:
// on an H100 this backward ran at 0.45 of a copy's GB/s where the subgroup forward ran at 0.96).
// Rows longer than 256·MAX_PER_THREAD are read from memory again instead of kept in registers (and
// partials accumulate in the scratch).
import { checkCount, MAIN_ARGS, requireBindable, requireBytes, requireDisjoint, requireNoOverlap } from './checks.js';
import { TO_FLOAT_WGSL, TO_HALF_WGSL } from './cast.js';
import { reduceAxis } from './reduce.js';
import {
  eachLaneSlot, rowLayout, scratchBuffer, SG_ROWS_WG, subgroupRowKernel, subgroupRows, workgroupReducer,
  type Reducer, type RowLayout, type SubgroupRows,
} from './rows.js';
import { CommandBatch, getPipeline, grid, Params, type Binding } from './runtime.js';

/** Rows each subgroup walks in the one-subgroup-per-row backward when dgamma/dbeta are wanted
 *  (then its workgroup's subgroups add their partials, so a workgroup of 4 subgroups of 32 writes one
 *  partial row per 32 rows: 25600 rows → 800 workgroups, 3200 subgroups on an H100). Fewer give more
 *  workgroups for more partial rows: on an H200 this backward ran at about 0.54 of copy bandwidth,
 *  and 800 workgroups may fill its SMs in two waves and a sliver (`rowsPerSubgroup` compares). */
const SG_ROWS_PER_SUBGROUP = 8;
const MAX_ROWS_PER_SUBGROUP = 64;

/** Rows per workgroup in the workgroup backward when dgamma/dbeta are wanted. A block walks its rows one after
 *  another and then writes one partial row: fewer rows per block fill a big GPU better (25600 rows →
 *  1600 workgroups, about two waves on an H100; 512 blocks of 50 rows, before, left half of it idle)
 *  and more cut the scratch traffic (here 2 partial rows per 16 rows of dy, x and dx: 1/24 more). */
const ROWS_PER_BLOCK = 16;

// Optional inputs are uniform masks, not template parameters, so there are fewer pipelines to
// compile; an absent one is bound to a small per-device dummy buffer. The shaders read it through
// select() with the index masked to 0 (branch-free: uniform branches inside the unrolled loops
// doubled the compile time on a CPU Vulkan driver), so every read stays in bounds.
function dummy(batch: CommandBatch): GPUBuffer {
  return scratchBuffer(batch, 'layernorm.dummy', 256);
}

function mask(present: unknown): number {
  return present ? 0xffffffff : 0;
}

// the forward kernels' bindings: rows of f32 (workgroup kernel) or of V (subgroup kernel); y of
// `yt` (the same, or f16 bits packed in u32 words), with the packing functions where it is f16
const FORWARD_BINDINGS = (t: string, yt = t) => /* wgsl */ `@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read_write> y: array<${yt}>;${yt === t ? '' : TO_HALF_WGSL}
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(4) var<storage, read> gamma: array<${t}>;
@group(0) @binding(5) var<storage, read> beta: array<${t}>;
@group(0) @binding(6) var<uniform> p: P;`;

/** An f16 y as pairs of elements, each from x read again (the kernels whose lanes hold scalars hold
 *  a row's neighbours in different lanes); `affine(c, v)` is the kernel's, c the element. */
function halfPairs(first: string, step: string, half: string, affine: (c: string, v: string) => string): string {
  return `for (var c2 = ${first}; c2 < ${half}; c2 += ${step}) {
    let c = 2u * c2;
    y[base / 2u + c2] = halves2(${affine('c', '(x[base + c] - mu) * rs')}, ${affine('c + 1u', '(x[base + c + 1u] - mu) * rs')});
  }`;
}

function forwardSource(l: RowLayout, red: Reducer, half: boolean): string {
  const { wg, k } = l;
  const out = (v: string, c: string) => `y[base + ${c}] = affine(${c}, ${v});`;
  const halfOut = halfPairs('lid', `${wg}u`, 'p.dim / 2u', (c, v) => `affine(${c}, ${v})`);
  // two scalar reductions: Σx gives the mean, then Σ(x − mean)² the variance
  const body = l.cached
    ? /* wgsl */ `
  var v: array<f32, ${k}>;
  var s = 0.0;
  for (var j = 0u; j < ${k}u; j++) {
    let c = lid + j * ${wg}u;
    v[j] = select(0.0, x[base + min(c, p.dim - 1u)], c < p.dim);
    s += v[j];
  }
  let mu = ${red.call('s')} / f32(p.dim);
  var q = 0.0;
  for (var j = 0u; j < ${k}u; j++) {
    let d = select(0.0, v[j] - mu, lid + j * ${wg}u < p.dim);
    q += d * d;
  }
  let rs = inverseSqrt(${red.call('q')} / f32(p.dim) + p.eps);
  ${half ? halfOut : `for (var j = 0u; j < ${k}u; j++) {
    let c = lid + j * ${wg}u;
    if (c < p.dim) { ${out('(v[j] - mu) * rs', 'c')} }
  }`}`
    : /* wgsl */ `
  var s = 0.0;
  for (var c = lid; c < p.dim; c += ${wg}u) { s += x[base + c]; }
  let mu = ${red.call('s')} / f32(p.dim);
  var q = 0.0;
  for (var c = lid; c < p.dim; c += ${wg}u) {
    let d = x[base + c] - mu;
    q += d * d;
  }
  let rs = inverseSqrt(${red.call('q')} / f32(p.dim) + p.eps);
  ${half ? halfOut : `for (var c = lid; c < p.dim; c += ${wg}u) { ${out('(x[base + c] - mu) * rs', 'c')} }`}`;
  return /* wgsl */ `${red.enable}
struct P { rows: u32, dim: u32, eps: f32, gmask: u32, bmask: u32 }
${FORWARD_BINDINGS('f32', half ? 'u32' : 'f32')}
fn affine(c: u32, v: f32) -> f32 {
  let i = min(c, p.dim - 1u);
  return v * select(1.0, gamma[i & p.gmask], p.gmask != 0u) + select(0.0, beta[i & p.bmask], p.bmask != 0u);
}
${red.decl}
@compute @workgroup_size(${wg})
fn main(${MAIN_ARGS}${red.args}) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= p.rows) { return; }
  let base = row * p.dim;
${body}
  if (lid == 0u) {
    mean[row] = mu;
    rstd[row] = rs;
  }
}`;
}

/** One subgroup per row: each lane holds k units (f32 or vec4) of the row; mean, then the centred
 *  squares from the registers, by subgroupAdd. An f16 y: vec4 units stored as four halves from the
 *  registers, f32 units in pairs (halfPairs). */
function subgroupForwardSource(s: SubgroupRows, half: boolean): string {
  const yt = !half ? 'V' : s.vec === 4 ? 'vec2<u32>' : 'u32';
  const decls = /* wgsl */ `struct P { rows: u32, cols: u32, eps: f32, gmask: u32, bmask: u32 }
${FORWARD_BINDINGS('V', yt)}
fn affine(c: u32, n: u32, v: V) -> V {
  let i = min(c, n - 1u);
  return v * select(V(1.0), gamma[i & p.gmask], p.gmask != 0u) + select(V(0.0), beta[i & p.bmask], p.bmask != 0u);
}`;
  const store = !half
    ? eachLaneSlot(s, `    if (c < n) { y[base + c] = affine(c, n, (v[j] - mu) * rs); }`)
    : s.vec === 4
      ? eachLaneSlot(s, `    if (c < n) {
      y[base + c] = halves4(affine(c, n, (v[j] - mu) * rs));
    }`)
      : halfPairs('lane', 'sgs', 'n / 2u', (c, v) => `affine(${c}, n, ${v})`);
  const body = /* wgsl */ `
  var v: array<V, ${s.k}>;
  var sx = 0.0;
  ${eachLaneSlot(s, `    v[j] = select(V(0.0), x[base + min(c, n - 1u)], c < n);
    sx += vsum(v[j]);`)}
  let mu = subgroupAdd(sx) / f32(p.cols);
  var q = 0.0;
  ${eachLaneSlot(s, `    let d = select(V(0.0), v[j] - mu, c < n);
    q += vdot(d, d);`)}
  let rs = inverseSqrt(subgroupAdd(q) / f32(p.cols) + p.eps);
  if (ok) {
    ${store}
    if (lane == 0u) {
      mean[row] = mu;
      rstd[row] = rs;
    }
  }`;
  return subgroupRowKernel(s, decls, body);
}

function checkRows(K: string, rows: number, dim: number): string {
  checkCount(K, 'rows', rows);
  checkCount(K, 'dim', dim);
  checkCount(K, 'rows·dim', rows * dim);
  if (dim === 0) throw new RangeError(`${K}: dim must be ≥ 1 (rows=${rows})`);
  return `rows=${rows}, dim=${dim}`;
}

/**
 * y = (x − mean)/sqrt(var + eps) [· gamma] [+ beta] per row of x [rows, dim]; also writes mean[rows]
 * and rstd[rows] = 1/sqrt(var + eps) for the backward. Outputs must not overlap inputs.
 * output 'f16': y holds f16 bits, two per 32-bit word, rounded as castF32ToF16 rounds (for a reader
 * of f16, such as a matmul in mixed precision: the cast's pass is saved); needs dim even.
 */
export function layerNormForward(
  batch: CommandBatch,
  bufs: { x: Binding; y: Binding; mean: Binding; rstd: Binding; gamma?: Binding; beta?: Binding },
  dims: { rows: number; dim: number; eps?: number; output?: 'f32' | 'f16' },
): void {
  const K = 'layerNormForward';
  const { rows, dim, eps = 1e-5, output = 'f32' } = dims;
  const sizes = checkRows(K, rows, dim);
  if (!(eps >= 0)) throw new RangeError(`${K}: eps must be ≥ 0, got ${eps} (${sizes})`);
  if (output !== 'f32' && output !== 'f16') throw new RangeError(`${K}: output must be 'f32' or 'f16', got '${output}'`);
  const half = output === 'f16';
  if (half && dim % 2) throw new RangeError(`${K}: an f16 output needs dim even (${sizes})`);
  const n = rows * dim;
  requireBytes(K, 'x', bufs.x, 4 * n, sizes);
  requireBytes(K, 'y', bufs.y, half ? 2 * n : 4 * n, sizes);
  requireBytes(K, 'mean', bufs.mean, 4 * rows, sizes);
  requireBytes(K, 'rstd', bufs.rstd, 4 * rows, sizes);
  if (bufs.gamma) requireBytes(K, 'gamma', bufs.gamma, 4 * dim, sizes);
  if (bufs.beta) requireBytes(K, 'beta', bufs.beta, 4 * dim, sizes);
  const ins: [string, Binding][] = [['x', bufs.x]];
  if (bufs.gamma) ins.push(['gamma', bufs.gamma]);
  if (bufs.beta) ins.push(['beta', bufs.beta]);
  requireBindable(K, [['y', bufs.y], ['mean', bufs.mean], ['rstd', bufs.rstd]], ins);
  if (rows === 0) return;
  const none = dummy(batch);
  const bindings = [bufs.x, bufs.y, bufs.mean, bufs.rstd, bufs.gamma ?? none, bufs.beta ?? none];
  const params = new Params().u32(rows).u32(dim).f32(eps).u32(mask(bufs.gamma)).u32(mask(bufs.beta));
  const s = subgroupRows(batch.device, rows, dim);
  if (s) {
    batch.dispatch(getPipeline(batch.device, `layernorm.fwd_${s.key}${half ? '_h' : ''}`, () => subgroupForwardSource(s, half)), bindings, params, grid(s.groups));
    return;
  }
  const l = rowLayout(dim);
  const red = workgroupReducer(batch.device, 'wgSum', 'f32', l.wg, (a, b) => `${a} + ${b}`, '0.0');
  const pipe = getPipeline(batch.device, `layernorm.fwd_wg${l.wg}_k${l.cached ? l.k : 'loop'}_${red.kind}${half ? '_h' : ''}`, () => forwardSource(l, red, half));
  batch.dispatch(pipe, bindings, params, grid(rows));
}

// the backward kernels' bindings (after their uniform struct P): rows of f32 (workgroup kernel) or of V
// (subgroup kernel, `vec4` where V is); dy read through ldy(unit), from f16 bits where `dyHalf`
const BACKWARD_BINDINGS = (t: string, dyHalf = false, vec4 = false) => /* wgsl */ `${dyBinding(t, dyHalf, vec4)}
@group(0) @binding(1) var<storage, read> x: array<${t}>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<${t}>;
@group(0) @binding(5) var<storage, read> gamma: array<${t}>;
@group(0) @binding(6) var<storage, read_write> part: array<${t}>;
@group(0) @binding(7) var<uniform> p: P;`;

/** Binding 0, dy, and its loader ldy(i) of unit i: f32 units, or f16 bits (two a word) widened. */
function dyBinding(t: string, half: boolean, vec4: boolean): string {
  if (!half) return `@group(0) @binding(0) var<storage, read> dy: array<${t}>;\nfn ldy(i: u32) -> ${t} { return dy[i]; }`;
  if (vec4) return `@group(0) @binding(0) var<storage, read> dy: array<vec2<u32>>;${TO_FLOAT_WGSL}\nfn ldy(i: u32) -> ${t} { return floats4(dy[i]); }`;
  return `@group(0) @binding(0) var<storage, read> dy: array<u32>;${TO_FLOAT_WGSL}\nfn ldy(i: u32) -> ${t} { return toFloat((dy[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu); }`;
}

/** dx's store: `dx[i] = ` then this, then the value; accDx adds to what dx holds. */
const dxPlus = (accDx: boolean) => (i: string) => (accDx ? `dx[${i}] + ` : '');

function backwardSource(l: RowLayout, red: Reducer, dyHalf: boolean, accDx: boolean): string {
  const { wg, k } = l;
  const plus = dxPlus(accDx);
  // part[pg0 + c]: this block's dgamma partial of column c; part[pb0 + c]: its dbeta partial
  const body = l.cached
    ? /* wgsl */ `
  var pg: array<f32, ${k}>;
  var pb: array<f32, ${k}>;
  var gm: array<f32, ${k}>;
  for (var j = 0u; j < ${k}u; j++) {
    let c = lid + j * ${wg}u;
    gm[j] = gam(c);
    pg[j] = 0.0;
    pb[j] = 0.0;
  }
  for (var row = r0; row < r1; row++) {
    let base = row * p.dim;
    let mu = mean[row];
    let rs = rstd[row];
    var xh: array<f32, ${k}>;
    var gd: array<f32, ${k}>;
    var ab = vec2<f32>(0.0);
    for (var j = 0u; j < ${k}u; j++) {
      let c = lid + j * ${wg}u;
      let ok = c < p.dim;
      let cc = base + min(c, p.dim - 1u);
      let d = select(0.0, ldy(cc), ok);
      xh[j] = select(0.0, (x[cc] - mu) * rs, ok);
      gd[j] = d * gm[j];
      ab += vec2<f32>(gd[j], gd[j] * xh[j]);
      pg[j] += d * xh[j];
      pb[j] += d;
    }
    let m = ${red.call('ab')} / f32(p.dim);
    for (var j = 0u; j < ${k}u; j++) {
      let c = lid + j * ${wg}u;
      if (c < p.dim) { dx[base + c] = ${plus('base + c')}rs * (gd[j] - m.x - xh[j] * m.y); }
    }
  }
  if (p.partials != 0u) {
    for (var j = 0u; j < ${k}u; j++) {
      let c = lid + j * ${wg}u;
      if (c < p.dim) {
        part[pg0 + c] = pg[j];
        part[pb0 + c] = pb[j];
      }
    }
  }`
    : /* wgsl */ `
  if (p.partials != 0u) {
    for (var c = lid; c < p.dim; c += ${wg}u) {
      part[pg0 + c] = 0.0;
      part[pb0 + c] = 0.0;
    }
  }
  for (var row = r0; row < r1; row++) {
    let base = row * p.dim;
    let mu = mean[row];
    let rs = rstd[row];
    var ab = vec2<f32>(0.0);
    for (var c = lid; c < p.dim; c += ${wg}u) {
      let g = ldy(base + c) * gam(c);
      ab += vec2<f32>(g, g * (x[base + c] - mu) * rs);
    }
    let m = ${red.call('ab')} / f32(p.dim);
    for (var c = lid; c < p.dim; c += ${wg}u) {
      let d = ldy(base + c);
      let xh = (x[base + c] - mu) * rs;
      dx[base + c] = ${plus('base + c')}rs * (d * gam(c) - m.x - xh * m.y);
      if (p.partials != 0u) {
        part[pg0 + c] += d * xh;
        part[pb0 + c] += d;
      }
    }
  }`;
  return /* wgsl */ `${red.enable}
struct P { rows: u32, dim: u32, rowsPerBlock: u32, blocks: u32, betaAt: u32, gmask: u32, partials: u32 }
${BACKWARD_BINDINGS('f32', dyHalf)}
fn gam(c: u32) -> f32 {
  return select(1.0, gamma[min(c, p.dim - 1u) & p.gmask], p.gmask != 0u);
}
${red.decl}
@compute @workgroup_size(${wg})
fn main(${MAIN_ARGS}${red.args}) {
  let blk = wid.y * nwg.x + wid.x;
  if (blk >= p.blocks) { return; }
  let r0 = blk * p.rowsPerBlock;
  let r1 = min(r0 + p.rowsPerBlock, p.rows);
  let pg0 = blk * p.dim;
  let pb0 = p.betaAt + blk * p.dim;
${body}
}`;
}

/** What the one-subgroup-per-row backward keeps in registers across a row's two sums: 'registers'
 *  (default) gamma (read once), and the row's xh and dy·gamma; 'reread' the row's xh and dy·gamma,
 *  gamma read from cache for every row; 'reload' neither: after the sums x, dy and gamma are read
 *  again (from cache) for dx. Each lane's running dgamma/dbeta partial sums stay in registers in all
 *  three. On an H200 the register form took 146 registers per thread (the forward 48, softmax's
 *  backward 46, which runs at copy speed), so fewer of its subgroups fit on an SM at a time; the
 *  others trade registers for cache reads (`variant` rows and `bench pipeline-stats` compare). A form
 *  with the partial sums in workgroup memory (108 registers) ran at 0.59–0.61 of copy bandwidth
 *  against 0.68 there (2026-11-27) and was removed. */
export type LayerNormBackwardState = 'registers' | 'reread' | 'reload';
const BACKWARD_STATES: readonly LayerNormBackwardState[] = ['registers', 'reread', 'reload'];

/** The backward with one subgroup per row (short rows, where there are subgroups): each subgroup
 *  walks p.per rows of its block (a row's two sums by subgroupAdd, no barrier) keeping its lanes'
 *  columns' partial dgamma/dbeta sums in registers; then the workgroup adds its subgroups' sums in
 *  subgroup order and stores one partial row. The frame's rows are blocks here (P.rows = blocks);
 *  P.realRows counts rows. P.zero is 0: added to the index of a read meant to be repeated, it keeps
 *  the compiler from hoisting the read out of the row loop or merging it with the first (which would
 *  bring the registers back). */
function subgroupBackwardSource(s: SubgroupRows, state: LayerNormBackwardState, dyHalf: boolean, accDx: boolean): string {
  const keep = state === 'registers', reload = state === 'reload';
  const plus = dxPlus(accDx);
  // workgroup memory: one dgamma+dbeta slab the subgroups add into in turn
  const decls = /* wgsl */ `struct P { rows: u32, cols: u32, realRows: u32, per: u32, betaAt: u32, gmask: u32, partials: u32, zero: u32 }
${BACKWARD_BINDINGS('V', dyHalf, s.vec === 4)}
var<workgroup> acc: array<V, ${2 * s.units}>;
fn gam(c: u32, n: u32, r: u32) -> V {
  return select(V(1.0), gamma[(min(c, n - 1u) + r * p.zero) & p.gmask], p.gmask != 0u);
}`;
  const setup = `var pg: array<V, ${s.k}>;
  var pb: array<V, ${s.k}>;
  ${keep ? `var gm: array<V, ${s.k}>;` : ''}
  ${eachLaneSlot(s, `    ${keep ? 'gm[j] = gam(c, n, 0u);' : ''}
    pg[j] = V(0.0);
    pb[j] = V(0.0);`)}`;
  // the subgroups add theirs into acc in turn
  const gather = `for (var t = 0u; t < ${s.perGroup}u; t++) {
      if (sub == t) {
        ${eachLaneSlot(s, `    if (c < n) {
          acc[c] = select(acc[c], V(0.0), t == 0u) + pg[j];
          acc[n + c] = select(acc[n + c], V(0.0), t == 0u) + pb[j];
        }`)}
      }
      workgroupBarrier();
    }
    // a 2-D launch grid may have workgroups past the last block: they store nothing (their rows would
    // land on dbeta's)
    let blk = wid.y * nwg.x + wid.x;
    if (blk * ${s.perGroup}u < p.rows) {
      for (var c = lid; c < n; c += ${SG_ROWS_WG}u) {
        part[blk * n + c] = acc[c];
        part[p.betaAt + blk * n + c] = acc[n + c];
      }
    }`;
  const g = keep ? 'gm[j]' : 'gam(c, n, i)';
  // (reload's second reads of x, dy and gamma differ from the first by p.zero in their index)
  // row is this subgroup's block; the loops over rows and subgroups have uniform bounds, so the
  // subgroupAdds and barriers are in uniform control flow
  const body = /* wgsl */ `
  ${setup}
  for (var i = 0u; i < p.per; i++) {
    let r = row * p.per + i;
    let live = ok && r < p.realRows;
    let rr = min(r, p.realRows - 1u);
    let at = rr * n;
    let mu = mean[rr];
    let rs = rstd[rr];
    ${reload ? '' : `var xh: array<V, ${s.k}>;
    var gd: array<V, ${s.k}>;`}
    var ab = vec2<f32>(0.0);
    ${eachLaneSlot(s, `    let inside = c < n;
    let cc = at + min(c, n - 1u);
    let d = select(V(0.0), ldy(cc), inside && live);
    let h = select(V(0.0), (x[cc] - mu) * rs, inside);
    let e = d * ${g};
    ab += vec2<f32>(vsum(e), vdot(e, h));
    pg[j] += d * h;
    pb[j] += d;${reload ? '' : `
    xh[j] = h;
    gd[j] = e;`}`)}
    let m = subgroupAdd(ab) / f32(p.cols);
    if (live) {
      ${eachLaneSlot(s, reload
        ? `    if (c < n) {
        let cc = at + c + p.zero;
        dx[at + c] = ${plus('at + c')}rs * (ldy(cc) * gam(c + p.zero, n, i) - m.x - (x[cc] - mu) * rs * m.y);
      }`
        : `    if (c < n) { dx[at + c] = ${plus('at + c')}rs * (gd[j] - m.x - xh[j] * m.y); }`)}
    }
  }
  if (p.partials != 0u) {
    ${gather}
  }`;
  return subgroupRowKernel(s, decls, body);
}

/**
 * dx from dy, x and the forward's mean/rstd (gamma when the forward had it), written or, with
 * accumulateDx, added to (a residual stream's gradient: no temporary and no pass to add it); dgamma
 * and/or dbeta (Σ over rows of dy·xh and dy) when given, written or, with accumulateParams, added
 * to. `dy` 'f16': dy holds f16 bits, two per 32-bit word (the gradient of an f16 y), widened exactly
 * as it is read.
 * Uses a per-device scratch buffer of blocks × dim floats per parameter gradient (see above).
 * `rowsPerSubgroup` (default 8) sets how many rows each subgroup walks in the subgroup kernel when
 * parameter gradients are wanted, and `state` what it keeps in registers and what it reads again
 * (LayerNormBackwardState); other kernels ignore both. The state does not change the arithmetic
 * (only, where a compiler fuses a multiply-add differently, the last bit); the rows per subgroup
 * group dgamma's and dbeta's sums, so they change its last bits.
 */
export function layerNormBackward(
  batch: CommandBatch,
  bufs: { dy: Binding; x: Binding; mean: Binding; rstd: Binding; dx: Binding; gamma?: Binding; dgamma?: Binding; dbeta?: Binding },
  dims: { rows: number; dim: number; accumulateDx?: boolean; accumulateParams?: boolean; rowsPerSubgroup?: number; state?: LayerNormBackwardState; dy?: 'f32' | 'f16' },
): void {
  const K = 'layerNormBackward';
  const { rows, dim, accumulateDx = false, accumulateParams = false, rowsPerSubgroup = SG_ROWS_PER_SUBGROUP, state = 'registers', dy = 'f32' } = dims;
  const sizes = checkRows(K, rows, dim);
  if (dy !== 'f32' && dy !== 'f16') throw new RangeError(`${K}: dy must be 'f32' or 'f16', got '${dy}' (${sizes})`);
  const dyHalf = dy === 'f16';
  if (!Number.isInteger(rowsPerSubgroup) || rowsPerSubgroup < 1 || rowsPerSubgroup > MAX_ROWS_PER_SUBGROUP)
    throw new RangeError(`${K}: rowsPerSubgroup must be an integer in [1, ${MAX_ROWS_PER_SUBGROUP}], got ${rowsPerSubgroup} (${sizes})`);
  if (!BACKWARD_STATES.includes(state)) throw new RangeError(`${K}: state must be one of ${BACKWARD_STATES.map((t) => `'${t}'`).join(', ')}, got ${String(state)} (${sizes})`);
  const n = rows * dim;
  requireBytes(K, 'dy', bufs.dy, dyHalf ? 2 * n : 4 * n, dyHalf ? `${sizes} f16` : sizes);
  requireBytes(K, 'x', bufs.x, 4 * n, sizes);
  requireBytes(K, 'mean', bufs.mean, 4 * rows, sizes);
  requireBytes(K, 'rstd', bufs.rstd, 4 * rows, sizes);
  requireBytes(K, 'dx', bufs.dx, 4 * n, sizes);
  if (bufs.gamma) requireBytes(K, 'gamma', bufs.gamma, 4 * dim, sizes);
  if (bufs.dgamma) requireBytes(K, 'dgamma', bufs.dgamma, 4 * dim, sizes);
  if (bufs.dbeta) requireBytes(K, 'dbeta', bufs.dbeta, 4 * dim, sizes);
  const ins: [string, Binding][] = [['dy', bufs.dy], ['x', bufs.x], ['mean', bufs.mean], ['rstd', bufs.rstd]];
  if (bufs.gamma) ins.push(['gamma', bufs.gamma]);
  requireDisjoint(K, ['dx', bufs.dx], ...ins);
  // dgamma and dbeta are written by later dispatches (from the partial sums): only overlaps matter
  if (bufs.dgamma) requireNoOverlap(K, ['dgamma', bufs.dgamma], ...ins, ['dx', bufs.dx]);
  if (bufs.dbeta) requireNoOverlap(K, ['dbeta', bufs.dbeta], ...ins, ['dx', bufs.dx], ...(bufs.dgamma ? [['dgamma', bufs.dgamma] as [string, Binding]] : []));

  const partials = !!(bufs.dgamma || bufs.dbeta);
  if (rows === 0) {
    // no rows: the parameter gradients are sums over nothing
    if (!accumulateParams) for (const t of [bufs.dgamma, bufs.dbeta]) if (t) reduceAxis(batch, bufs.x, t, { outer: 1, reduce: 0, inner: dim });
    return;
  }
  // Both partial sums are stored whenever either gradient is wanted (one branch in the shader), as
  // [2][blocks][dim] (dgamma's, then dbeta's), so one reduction (its two dispatches) adds up both.
  const perSub = partials ? rowsPerSubgroup : 1;
  const s = subgroupRows(batch.device, Math.ceil(rows / perSub), dim);
  const slabBytes = s ? 2 * s.units * s.vec * 4 : 0, room = batch.device.limits.maxComputeWorkgroupStorageSize;
  const sg = s && slabBytes <= room ? s : null;
  const rowsPerBlock = partials ? ROWS_PER_BLOCK : 1;
  // one partial row per workgroup (subgroup kernel) or per block of rows (workgroup kernel)
  const blocks = sg ? sg.groups : Math.ceil(rows / rowsPerBlock);
  const part = scratchBuffer(batch, 'layernorm', partials ? 8 * blocks * dim : 4);
  const bindings = [bufs.dy, bufs.x, bufs.mean, bufs.rstd, bufs.dx, bufs.gamma ?? dummy(batch), part];
  if (sg) {
    const pipe = getPipeline(batch.device, `layernorm.bwd_${sg.key}_${state}${dyHalf ? '_dyh' : ''}${accumulateDx ? '_acc' : ''}`, () => subgroupBackwardSource(sg, state, dyHalf, accumulateDx));
    const params = new Params().u32(Math.ceil(rows / perSub)).u32(dim).u32(rows).u32(perSub).u32((blocks * dim) / sg.vec).u32(mask(bufs.gamma)).u32(partials ? 1 : 0).u32(0);
    batch.dispatch(pipe, bindings, params, grid(sg.groups));
  } else {
    const l = rowLayout(dim);
    const red = workgroupReducer(batch.device, 'wgSum2', 'vec2<f32>', l.wg, (a, b) => `${a} + ${b}`, 'vec2<f32>(0.0)');
    const pipe = getPipeline(batch.device, `layernorm.bwd_wg${l.wg}_k${l.cached ? l.k : 'loop'}_${red.kind}${dyHalf ? '_dyh' : ''}${accumulateDx ? '_acc' : ''}`, () => backwardSource(l, red, dyHalf, accumulateDx));
    const params = new Params().u32(rows).u32(dim).u32(rowsPerBlock).u32(blocks).u32(blocks * dim).u32(mask(bufs.gamma)).u32(partials ? 1 : 0);
    batch.dispatch(pipe, bindings, params, grid(blocks));
  }
  if (!partials) return;
  // one reduction for both: two small dispatches after the kernel instead of four (not yet timed on a
  // GPU); a gradient not wanted is added up into a scratch buffer
  const unwanted = () => scratchBuffer(batch, 'layernorm.unwanted', 4 * dim);
  const whole = { buffer: part, size: 8 * blocks * dim };
  reduceAxis(batch, whole, bufs.dgamma ?? unwanted(), { outer: 2, reduce: blocks, inner: dim, accumulate: accumulateParams, second: bufs.dbeta ?? unwanted() });
}
