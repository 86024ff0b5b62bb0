// LayerNorm over the last dim of a [rows, dim] f32 tensor, as PyTorch: biased variance, eps inside
// the square root (default 1e-5), optional affine gamma/beta.
//
// Forward: one workgroup per row. The row is read once into registers (up to MAX_PER_THREAD per
// thread), mean and variance come from two tree reductions over those registers (centred, so no
// E[x²] − mean² cancellation), and the kernel also stores mean and 1/std per row for the backward.
//
// Backward: with xh = (x − mean)·rstd and g = dy·gamma,
//   dx = rstd · (g − mean(g) − xh · mean(g·xh)),  dgamma = Σ_rows dy·xh,  dbeta = Σ_rows dy.
// WGSL has no float atomics, so dgamma/dbeta are two-pass: each workgroup walks a block of rows,
// writing dx and keeping its columns' partial sums of dy·xh and dy in registers, then stores one
// partial row per workgroup into a per-device scratch buffer (kernels/rows.ts, key 'layernorm');
// reduceAxis adds the partials into dgamma/dbeta. Rows longer than 256·MAX_PER_THREAD are read
// from memory again instead of kept in registers (and partials accumulate in the scratch).
import { checkCount, MAIN_ARGS, requireBytes, requireDisjoint } from './checks.js';
import { reduceAxis } from './reduce.js';
import { workgroupGrid, rowLayout, scratchBuffer, treeReduceFn, type RowLayout } from './rows.js';
import { CommandBatch, getPipeline, Params, type Binding } from './runtime.js';

/** Blocks of rows in the backward when dgamma/dbeta are wanted (enough workgroups for a big GPU;
 *  each writes one partial row, so more blocks cost more scratch traffic). */
const PARAM_BLOCKS = 512;

function affineDecls(first: number, gamma: boolean, beta: boolean): string {
  let b = first;
  return [gamma ? `@group(0) @binding(${b++}) var<storage, read> gamma: array<f32>;` : '', beta ? `@group(0) @binding(${b++}) var<storage, read> beta: array<f32>;` : '']
    .filter(Boolean)
    .join('\n');
}

function forwardSource(l: RowLayout, gamma: boolean, beta: boolean): string {
  const { wg, k } = l;
  const first = 4;
  const uniformAt = first + (gamma ? 1 : 0) + (beta ? 1 : 0);
  const affine = (v: string, c: string) => `${v}${gamma ? ` * gamma[${c}]` : ''}${beta ? ` + beta[${c}]` : ''}`;
  const body = l.cached
    ? /* wgsl */ `
  var v: array<f32, ${k}>;
  var s = 0.0;
  for (var j = 0u; j < ${k}u; j++) {
    let c = lid + j * ${wg}u;
    v[j] = select(0.0, x[base + min(c, p.dim - 1u)], c < p.dim);
    s += v[j];
  }
  let mu = wgSum(s, lid) / f32(p.dim);
  var q = 0.0;
  for (var j = 0u; j < ${k}u; j++) {
    let d = select(0.0, v[j] - mu, lid + j * ${wg}u < p.dim);
    q += d * d;
  }
  let rs = inverseSqrt(wgSum(q, lid) / f32(p.dim) + p.eps);
  for (var j = 0u; j < ${k}u; j++) {
    let c = lid + j * ${wg}u;
    if (c < p.dim) { y[base + c] = ${affine('(v[j] - mu) * rs', 'c')}; }
  }`
    : /* wgsl */ `
  var s = 0.0;
  for (var c = lid; c < p.dim; c += ${wg}u) { s += x[base + c]; }
  let mu = wgSum(s, lid) / f32(p.dim);
  var q = 0.0;
  for (var c = lid; c < p.dim; c += ${wg}u) { let d = x[base + c] - mu; q += d * d; }
  let rs = inverseSqrt(wgSum(q, lid) / f32(p.dim) + p.eps);
  for (var c = lid; c < p.dim; c += ${wg}u) { y[base + c] = ${affine('(x[base + c] - mu) * rs', 'c')}; }`;
  return /* wgsl */ `
struct P { rows: u32, dim: u32, eps: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
${affineDecls(first, gamma, beta)}
@group(0) @binding(${uniformAt}) var<uniform> p: P;
${treeReduceFn('wgSum', 'f32', wg, (a, b) => `${a} + ${b}`)}
@compute @workgroup_size(${wg})
fn main(${MAIN_ARGS}) {
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
 */
export function layerNormForward(
  batch: CommandBatch,
  bufs: { x: Binding; y: Binding; mean: Binding; rstd: Binding; gamma?: Binding; beta?: Binding },
  dims: { rows: number; dim: number; eps?: number },
): void {
  const K = 'layerNormForward';
  const { rows, dim, eps = 1e-5 } = dims;
  const sizes = checkRows(K, rows, dim);
  if (!(eps >= 0)) throw new RangeError(`${K}: eps must be ≥ 0, got ${eps} (${sizes})`);
  const n = rows * dim;
  requireBytes(K, 'x', bufs.x, 4 * n, sizes);
  requireBytes(K, 'y', bufs.y, 4 * n, sizes);
  requireBytes(K, 'mean', bufs.mean, 4 * rows, sizes);
  requireBytes(K, 'rstd', bufs.rstd, 4 * rows, sizes);
  if (bufs.gamma) requireBytes(K, 'gamma', bufs.gamma, 4 * dim, sizes);
  if (bufs.beta) requireBytes(K, 'beta', bufs.beta, 4 * dim, sizes);
  const ins: [string, Binding][] = [['x', bufs.x]];
  if (bufs.gamma) ins.push(['gamma', bufs.gamma]);
  if (bufs.beta) ins.push(['beta', bufs.beta]);
  for (const out of [['y', bufs.y], ['mean', bufs.mean], ['rstd', bufs.rstd]] as [string, Binding][]) requireDisjoint(K, out, ...ins);
  requireDisjoint(K, ['mean', bufs.mean], ['y', bufs.y], ['rstd', bufs.rstd]);
  requireDisjoint(K, ['rstd', bufs.rstd], ['y', bufs.y]);
  if (rows === 0) return;
  const l = rowLayout(dim);
  const g = !!bufs.gamma, b = !!bufs.beta;
  const key = `layernorm.fwd_wg${l.wg}_k${l.cached ? l.k : 'loop'}_g${+g}_b${+b}`;
  const pipe = getPipeline(batch.device, key, () => forwardSource(l, g, b));
  const bindings: Binding[] = [bufs.x, bufs.y, bufs.mean, bufs.rstd];
  if (bufs.gamma) bindings.push(bufs.gamma);
  if (bufs.beta) bindings.push(bufs.beta);
  batch.dispatch(pipe, bindings, new Params().u32(rows).u32(dim).f32(eps), workgroupGrid(rows));
}

interface BwdVariant {
  gamma: boolean;
  /** Which partial sums to store: dgamma (dy·xh) and/or dbeta (dy). */
  dg: boolean;
  db: boolean;
}

function backwardSource(l: RowLayout, v: BwdVariant): string {
  const { wg, k } = l;
  const partials = v.dg || v.db;
  let at = 5;
  const decls = [
    v.gamma ? `@group(0) @binding(${at++}) var<storage, read> gamma: array<f32>;` : '',
    partials ? `@group(0) @binding(${at++}) var<storage, read_write> part: array<f32>;` : '',
  ]
    .filter(Boolean)
    .join('\n');
  const gam = (c: string) => (v.gamma ? ` * gamma[${c}]` : '');
  // part[pg + c]: this block's dgamma partial of column c; part[pb + c]: its dbeta partial
  const body = l.cached
    ? /* wgsl */ `
  var pg: array<f32, ${k}>;
  var pb: array<f32, ${k}>;
  var gm: array<f32, ${k}>;
  for (var j = 0u; j < ${k}u; j++) {
    let c = lid + j * ${wg}u;
    gm[j] = ${v.gamma ? 'select(0.0, gamma[min(c, p.dim - 1u)], c < p.dim)' : '1.0'};
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
      let cc = min(c, p.dim - 1u);
      let d = select(0.0, dy[base + cc], ok);
      xh[j] = select(0.0, (x[base + cc] - mu) * rs, ok);
      gd[j] = d * gm[j];
      ab += vec2<f32>(gd[j], gd[j] * xh[j]);
      pg[j] += d * xh[j];
      pb[j] += d;
    }
    let m = wgSum2(ab, lid) / f32(p.dim);
    for (var j = 0u; j < ${k}u; j++) {
      let c = lid + j * ${wg}u;
      if (c < p.dim) { dx[base + c] = rs * (gd[j] - m.x - xh[j] * m.y); }
    }
  }
  for (var j = 0u; j < ${k}u; j++) {
    let c = lid + j * ${wg}u;
    if (c < p.dim) {
      ${v.dg ? 'part[pg0 + c] = pg[j];' : ''}
      ${v.db ? 'part[pb0 + c] = pb[j];' : ''}
    }
  }`
    : /* wgsl */ `
  for (var c = lid; c < p.dim; c += ${wg}u) {
    ${v.dg ? 'part[pg0 + c] = 0.0;' : ''}
    ${v.db ? 'part[pb0 + c] = 0.0;' : ''}
  }
  for (var row = r0; row < r1; row++) {
    let base = row * p.dim;
    let mu = mean[row];
    let rs = rstd[row];
    var ab = vec2<f32>(0.0);
    for (var c = lid; c < p.dim; c += ${wg}u) {
      let g = dy[base + c]${gam('c')};
      ab += vec2<f32>(g, g * (x[base + c] - mu) * rs);
    }
    let m = wgSum2(ab, lid) / f32(p.dim);
    for (var c = lid; c < p.dim; c += ${wg}u) {
      let d = dy[base + c];
      let xh = (x[base + c] - mu) * rs;
      dx[base + c] = rs * (d${gam('c')} - m.x - xh * m.y);
      ${v.dg ? 'part[pg0 + c] += d * xh;' : ''}
      ${v.db ? 'part[pb0 + c] += d;' : ''}
    }
  }`;
  return /* wgsl */ `
struct P { rows: u32, dim: u32, rowsPerBlock: u32, blocks: u32, betaAt: u32 }
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
${decls}
@group(0) @binding(${at}) var<uniform> p: P;
${treeReduceFn('wgSum2', 'vec2<f32>', wg, (a, b) => `${a} + ${b}`)}
@compute @workgroup_size(${wg})
fn main(${MAIN_ARGS}) {
  let blk = wid.y * nwg.x + wid.x;
  if (blk >= p.blocks) { return; }
  let r0 = blk * p.rowsPerBlock;
  let r1 = min(r0 + p.rowsPerBlock, p.rows);
  let pg0 = blk * p.dim;
  let pb0 = p.betaAt + blk * p.dim;
${body}
}`;
}

/**
 * dx from dy, x and the forward's mean/rstd (gamma when the forward had it); dgamma and/or dbeta
 * (Σ over rows of dy·xh and dy) when given, written or, with accumulateParams, added to.
 * Uses a per-device scratch buffer of blocks × dim floats per parameter gradient (see above).
 */
export function layerNormBackward(
  batch: CommandBatch,
  bufs: { dy: Binding; x: Binding; mean: Binding; rstd: Binding; dx: Binding; gamma?: Binding; dgamma?: Binding; dbeta?: Binding },
  dims: { rows: number; dim: number; accumulateParams?: boolean },
): void {
  const K = 'layerNormBackward';
  const { rows, dim, accumulateParams = false } = dims;
  const sizes = checkRows(K, rows, dim);
  const n = rows * dim;
  requireBytes(K, 'dy', bufs.dy, 4 * n, sizes);
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
  if (bufs.dgamma) requireDisjoint(K, ['dgamma', bufs.dgamma], ...ins, ['dx', bufs.dx]);
  if (bufs.dbeta) requireDisjoint(K, ['dbeta', bufs.dbeta], ...ins, ['dx', bufs.dx], ...(bufs.dgamma ? [['dgamma', bufs.dgamma] as [string, Binding]] : []));

  const v: BwdVariant = { gamma: !!bufs.gamma, dg: !!bufs.dgamma, db: !!bufs.dbeta };
  const partials = v.dg || v.db;
  if (rows === 0) {
    // no rows: the parameter gradients are sums over nothing
    if (!accumulateParams) for (const t of [bufs.dgamma, bufs.dbeta]) if (t) reduceAxis(batch, bufs.x, t, { outer: 1, reduce: 0, inner: dim });
    return;
  }
  const rowsPerBlock = partials ? Math.ceil(rows / PARAM_BLOCKS) : 1;
  const blocks = Math.ceil(rows / rowsPerBlock);
  const l = rowLayout(dim);
  // the dbeta partials start at a binding-aligned offset, so pass 2 can bind each half
  const align = batch.device.limits.minStorageBufferOffsetAlignment;
  const half = Math.ceil((4 * blocks * dim) / align) * align;
  const bindings: Binding[] = [bufs.dy, bufs.x, bufs.mean, bufs.rstd, bufs.dx];
  if (bufs.gamma) bindings.push(bufs.gamma);
  const part = partials ? scratchBuffer(batch, 'layernorm', (v.dg && v.db ? half : 0) + 4 * blocks * dim) : null;
  if (part) bindings.push(part);
  const betaAt = v.dg && v.db ? half / 4 : 0;
  const key = `layernorm.bwd_wg${l.wg}_k${l.cached ? l.k : 'loop'}_g${+v.gamma}_dg${+v.dg}_db${+v.db}`;
  const pipe = getPipeline(batch.device, key, () => backwardSource(l, v));
  batch.dispatch(pipe, bindings, new Params().u32(rows).u32(dim).u32(rowsPerBlock).u32(blocks).u32(betaAt), workgroupGrid(blocks));
  if (!part) return;
  const red = { outer: 1, reduce: blocks, inner: dim, accumulate: accumulateParams };
  if (bufs.dgamma) reduceAxis(batch, { buffer: part, offset: 0, size: 4 * blocks * dim }, bufs.dgamma, red);
  if (bufs.dbeta) reduceAxis(batch, { buffer: part, offset: betaAt * 4, size: 4 * blocks * dim }, bufs.dbeta, red);
}
