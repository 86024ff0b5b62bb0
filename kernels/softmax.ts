// Row softmax of scale·x over a [rows, cols] f32 tensor, and its backward.
//
// Where the device has subgroups and the row fits (kernels/rows.ts subgroupRows: up to 1024 at
// subgroup size 32), one subgroup holds a row in registers (vec4 loads where cols % 4 == 0): its max
// by subgroupMax, then e = exp(v − max) kept in the registers, their sum by subgroupAdd, y = e/sum.
// No barrier, several rows per workgroup, one exp per element.
// Otherwise one workgroup per row. Each thread keeps its share of the row in registers (up to
// MAX_PER_THREAD values) and reduces it to a local (max, Σ exp(v − max)) pair; one workgroup reduction
// then merges the pairs (m, s) ⊕ (m', s') = (M, s·e^(m−M) + s'·e^(m'−M)), so max and sum cost a
// single pass over memory and a single reduction. Then y = e^(v − M)/S from the registers: x is
// read once, y written once. Longer rows use the same online merge element by element and read x
// a second time to write y (tfjs reads it three times).
// A row that is all −∞ gives NaN, like PyTorch.
//
// Backward: dx = scale · y · (dy − Σ dy·y), y and dy read once: one subgroup per row where the
// forward has it (the sum by subgroupAdd), else one workgroup per row.
import { checkCount, MAIN_ARGS, requireBytes, requireDisjoint } from './checks.js';
import {
  eachLaneSlot, rowLayout, subgroupRowKernel, subgroupRows, workgroupReducer,
  type Reducer, type RowLayout, type SubgroupRows,
} from './rows.js';
import { CommandBatch, getPipeline, grid, Params, type Binding } from './runtime.js';

// The start of a running max: the lowest finite f32 (WGSL has no ∞ literal). Inputs at −∞ still
// work: e^(−∞ − m) = 0.
const LOWEST = '-3.40282346638528859812e+38';

function mergeFn(): string {
  // (max, sum) pairs; a pair with sum 0 (no elements, or only −∞) adds nothing
  return /* wgsl */ `
fn merge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let m = max(a.x, b.x);
  return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}`;
}

// the kernels' uniforms and bindings, rows of f32 (workgroup kernels) or of V (subgroup kernels)
const FORWARD_BINDINGS = (t: string) => /* wgsl */ `struct P { rows: u32, cols: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read_write> y: array<${t}>;
@group(0) @binding(2) var<uniform> p: P;`;
const BACKWARD_BINDINGS = (t: string) => /* wgsl */ `struct P { rows: u32, cols: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> y: array<${t}>;
@group(0) @binding(1) var<storage, read> dy: array<${t}>;
@group(0) @binding(2) var<storage, read_write> dx: array<${t}>;
@group(0) @binding(3) var<uniform> p: P;`;

/** `for` over this thread's cached slots j of the row, c = its column (may be past the row's end). */
function eachSlot(l: RowLayout, body: string): string {
  return `for (var j = 0u; j < ${l.k}u; j++) {
    let c = lid + j * ${l.wg}u;
${body}
  }`;
}

/** A module of one workgroup per row: `decls` (uniform struct P, bindings, helpers), then main
 *  finds its row, with base = row·cols, and runs `body`. */
function rowKernel(l: RowLayout, red: Reducer, decls: string, body: string): string {
  return /* wgsl */ `${red.enable}
${decls}
${red.decl}
@compute @workgroup_size(${l.wg})
fn main(${MAIN_ARGS}${red.args}) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
${body}
}`;
}

function forwardSource(l: RowLayout, red: Reducer): string {
  const { wg, k } = l;
  const body = l.cached
    ? /* wgsl */ `
  var v: array<f32, ${k}>;
  var m = ${LOWEST};
  ${eachSlot(
    l,
    `    v[j] = select(${LOWEST}, p.scale * x[base + min(c, p.cols - 1u)], c < p.cols);
    m = max(m, v[j]);`,
  )}
  var s = 0.0;
  for (var j = 0u; j < ${k}u; j++) {
    s += select(0.0, exp(v[j] - m), lid + j * ${wg}u < p.cols);
  }
  let t = ${red.call('vec2<f32>(m, s)')};
  let inv = 1.0 / t.y;
  ${eachSlot(l, `    if (c < p.cols) { y[base + c] = exp(v[j] - t.x) * inv; }`)}`
    : /* wgsl */ `
  var ms = vec2<f32>(${LOWEST}, 0.0);
  for (var c = lid; c < p.cols; c += ${wg}u) { ms = merge(ms, vec2<f32>(p.scale * x[base + c], 1.0)); }
  let t = ${red.call('ms')};
  let inv = 1.0 / t.y;
  for (var c = lid; c < p.cols; c += ${wg}u) { y[base + c] = exp(p.scale * x[base + c] - t.x) * inv; }`;
  return rowKernel(
    l,
    red,
    `${FORWARD_BINDINGS('f32')}
${mergeFn()}`,
    body,
  );
}

function backwardSource(l: RowLayout, red: Reducer): string {
  const { wg, k } = l;
  const body = l.cached
    ? /* wgsl */ `
  var yv: array<f32, ${k}>;
  var gv: array<f32, ${k}>;
  var s = 0.0;
  ${eachSlot(
    l,
    `    let cc = base + min(c, p.cols - 1u);
    yv[j] = select(0.0, y[cc], c < p.cols);
    gv[j] = select(0.0, dy[cc], c < p.cols);
    s += yv[j] * gv[j];`,
  )}
  let d = ${red.call('s')};
  ${eachSlot(l, `    if (c < p.cols) { dx[base + c] = p.scale * yv[j] * (gv[j] - d); }`)}`
    : /* wgsl */ `
  var s = 0.0;
  for (var c = lid; c < p.cols; c += ${wg}u) { s += y[base + c] * dy[base + c]; }
  let d = ${red.call('s')};
  for (var c = lid; c < p.cols; c += ${wg}u) { dx[base + c] = p.scale * y[base + c] * (dy[base + c] - d); }`;
  return rowKernel(
    l,
    red,
    BACKWARD_BINDINGS('f32'),
    body,
  );
}

/** One subgroup per row: max by subgroupMax, e = exp(v − max) kept in the registers, sum by subgroupAdd. */
function subgroupForwardSource(s: SubgroupRows): string {
  const body = /* wgsl */ `
  var v: array<V, ${s.k}>;
  var m = ${LOWEST};
  ${eachLaneSlot(s, `    v[j] = select(V(${LOWEST}), p.scale * x[base + min(c, n - 1u)], c < n);
    m = max(m, vmax(v[j]));`)}
  let mx = subgroupMax(m);
  var sum = 0.0;
  ${eachLaneSlot(s, `    v[j] = exp(v[j] - mx);
    sum += select(0.0, vsum(v[j]), c < n);`)}
  let inv = 1.0 / subgroupAdd(sum);
  if (ok) {
    ${eachLaneSlot(s, `    if (c < n) { y[base + c] = v[j] * inv; }`)}
  }`;
  return subgroupRowKernel(s, FORWARD_BINDINGS('V'), body);
}

/** One subgroup per row: Σ y·dy by subgroupAdd. */
function subgroupBackwardSource(s: SubgroupRows): string {
  const body = /* wgsl */ `
  var yv: array<V, ${s.k}>;
  var gv: array<V, ${s.k}>;
  var d = 0.0;
  ${eachLaneSlot(s, `    let cc = base + min(c, n - 1u);
    yv[j] = select(V(0.0), y[cc], c < n);
    gv[j] = select(V(0.0), dy[cc], c < n);
    d += vdot(yv[j], gv[j]);`)}
  let t = subgroupAdd(d);
  if (ok) {
    ${eachLaneSlot(s, `    if (c < n) { dx[base + c] = p.scale * yv[j] * (gv[j] - t); }`)}
  }`;
  return subgroupRowKernel(s, BACKWARD_BINDINGS('V'), body);
}

function checkDims(K: string, rows: number, cols: number): string {
  checkCount(K, 'rows', rows);
  checkCount(K, 'cols', cols);
  checkCount(K, 'rows·cols', rows * cols);
  if (cols === 0) throw new RangeError(`${K}: cols must be ≥ 1 (rows=${rows})`);
  return `rows=${rows}, cols=${cols}`;
}

/** y = softmax(scale·x) along each row of x [rows, cols]. y must not overlap x. */
export function softmaxForward(batch: CommandBatch, x: Binding, y: Binding, dims: { rows: number; cols: number; scale?: number }): void {
  const K = 'softmaxForward';
  const { rows, cols, scale = 1 } = dims;
  const sizes = checkDims(K, rows, cols);
  requireBytes(K, 'x', x, 4 * rows * cols, sizes);
  requireBytes(K, 'y', y, 4 * rows * cols, sizes);
  requireDisjoint(K, ['y', y], ['x', x]);
  if (rows === 0) return;
  const params = new Params().u32(rows).u32(cols).f32(scale);
  const s = subgroupRows(batch.device, rows, cols);
  if (s) {
    batch.dispatch(getPipeline(batch.device, `softmax.fwd_${s.key}`, () => subgroupForwardSource(s)), [x, y], params, grid(s.groups));
    return;
  }
  const l = rowLayout(cols);
  const red = workgroupReducer(batch.device, 'wgMerge', 'vec2<f32>', l.wg, (a, b) => `merge(${a}, ${b})`, `vec2<f32>(${LOWEST}, 0.0)`);
  const pipe = getPipeline(batch.device, `softmax.fwd_wg${l.wg}_k${l.cached ? l.k : 'loop'}_${red.kind}`, () => forwardSource(l, red));
  batch.dispatch(pipe, [x, y], params, grid(rows));
}

/** dx = scale · y · (dy − Σ_row dy·y), y the forward's output. dx must not overlap y or dy. */
export function softmaxBackward(batch: CommandBatch, y: Binding, dy: Binding, dx: Binding, dims: { rows: number; cols: number; scale?: number }): void {
  const K = 'softmaxBackward';
  const { rows, cols, scale = 1 } = dims;
  const sizes = checkDims(K, rows, cols);
  requireBytes(K, 'y', y, 4 * rows * cols, sizes);
  requireBytes(K, 'dy', dy, 4 * rows * cols, sizes);
  requireBytes(K, 'dx', dx, 4 * rows * cols, sizes);
  requireDisjoint(K, ['dx', dx], ['y', y], ['dy', dy]);
  if (rows === 0) return;
  const params = new Params().u32(rows).u32(cols).f32(scale);
  const s = subgroupRows(batch.device, rows, cols);
  if (s) {
    batch.dispatch(getPipeline(batch.device, `softmax.bwd_${s.key}`, () => subgroupBackwardSource(s)), [y, dy, dx], params, grid(s.groups));
    return;
  }
  const l = rowLayout(cols);
  const red = workgroupReducer(batch.device, 'wgSum', 'f32', l.wg, (a, b) => `${a} + ${b}`, '0.0');
  const pipe = getPipeline(batch.device, `softmax.bwd_wg${l.wg}_k${l.cached ? l.k : 'loop'}_${red.kind}`, () => backwardSource(l, red));
  batch.dispatch(pipe, [y, dy, dx], params, grid(rows));
}
