// Sum (or mean) over the middle axis of x viewed as [outer, reduce, inner], and its backward, the
// broadcast back along that axis. Bias gradients are (1, rows, N), mean-pooling over tokens is
// (B, T, D), row sums are (rows, cols, 1).
//
// reduceAxis: a workgroup is TX output columns × TY lanes along the reduced axis (TX·TY = 256).
// Columns are the flattened (o, i) output indices, so adjacent threads read adjacent `inner`
// elements (coalesced) and, when reduce is short, one workgroup covers many outer rows. TY grows
// with the reduced length (about 8 rows per lane) but TX stays ≥ min(64, inner) for coalescing;
// inner = 1 with a long axis is a 256-lane row sum. TX is one of 1, 16, 64, 256. Each lane sums its strided share of the rows,
// then two levels through workgroup memory add the TY lanes. When the columns give too few workgroups to fill a
// GPU (e.g. 25600 × 768 has 12 column tiles), the reduced axis is also split into chunks: pass 1
// writes one partial row per chunk to a per-device scratch buffer (kernels/rows.ts, key
// 'reduceAxis'), pass 2 reduces the partials with the same kernel. The partition depends only on
// the dims, so results are deterministic.
// Row sums (inner = 1) of rows that fit a subgroup's registers take one subgroup per row instead
// (kernels/rows.ts subgroupRows): above, adjacent threads would read rows `reduce` floats apart, and
// 25600 row sums of 768 moved 765 GB/s on an H100 (27% of a copy's), half tfjs's speed.
import { checkCount, MAIN_ARGS, requireBindable, requireBytes, requireDisjoint } from './checks.js';
import { TO_FLOAT_WGSL } from './cast.js';
import { fill } from './elementwise.js';
import { eachLaneSlot, scratchBuffer, subgroupRowKernel, subgroupRows, type SubgroupRows } from './rows.js';
import { CommandBatch, getPipeline, grid, Params, type Binding } from './runtime.js';

const WG = 256;
/** Workgroups that keep a large GPU busy; below this the reduced axis is split. */
const TARGET_GROUPS = 1024;
/** A split chunk gives every lane at least this many rows (below that, pass 2 costs more than it saves). */
const MIN_ROWS_PER_LANE = 16;

// How the kernel stores: a uniform, not a template parameter (fewer pipelines to compile)
const MODE = { partial: 0, set: 1, acc: 2 } as const;
type Mode = keyof typeof MODE;

/** `pair`: outer is 2 and the sums of o = 1 go to a second output, y2 (reduceAxis's `second`).
 *  `half`: x holds f16 bits, two per 32-bit word (element e in word e/2, low half first). */
function reduceSource(tx: number, pair: boolean, half: boolean): string {
  const ty = WG / tx;
  const g = 2 ** Math.ceil(Math.log2(ty) / 2);
  const put = (op: string) => (pair ? `if (o == 0u) { y[i] ${op}; } else { y2[i] ${op}; }` : `y[j] ${op};`);
  return /* wgsl */ `
struct P { outer: u32, reduce: u32, inner: u32, splits: u32, chunk: u32, tiles: u32, scale: f32, mode: u32 }
@group(0) @binding(0) var<storage, read> x: array<${half ? 'u32' : 'f32'}>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
${half ? `${TO_FLOAT_WGSL}
fn ld(e: u32) -> f32 { return toFloat((x[e >> 1u] >> ((e & 1u) * 16u)) & 0xffffu); }` : 'fn ld(e: u32) -> f32 { return x[e]; }'}
${pair ? '@group(0) @binding(2) var<storage, read_write> y2: array<f32>;' : ''}
@group(0) @binding(${pair ? 3 : 2}) var<uniform> p: P;
var<workgroup> sh: array<f32, ${WG}>;
var<workgroup> sh2: array<f32, ${g * tx}>;
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  let grp = wid.y * nwg.x + wid.x;
  if (grp >= p.tiles * p.splits) { return; }
  let s = grp / p.tiles;
  let tx = lid % ${tx}u;
  let ty = lid / ${tx}u;
  let j = (grp % p.tiles) * ${tx}u + tx;
  let o = j / p.inner;
  let i = j % p.inner;
  let live = j < p.outer * p.inner;
  // four independent sums keep several loads in flight per lane
  var a0 = 0.0; var a1 = 0.0; var a2 = 0.0; var a3 = 0.0;
  if (live) {
    let r1 = min(s * p.chunk + p.chunk, p.reduce);
    let step = ${ty}u * p.inner;
    var r = s * p.chunk + ty;
    var at = (o * p.reduce + r) * p.inner + i;
    for (; r + ${3 * ty}u < r1; r += ${4 * ty}u) {
      a0 += ld(at);
      a1 += ld(at + step);
      a2 += ld(at + 2u * step);
      a3 += ld(at + 3u * step);
      at += 4u * step;
    }
    for (; r < r1; r += ${ty}u) {
      a0 += ld(at);
      at += step;
    }
  }
  sh[lid] = (a0 + a1) + (a2 + a3);
  workgroupBarrier();
  // two levels over the TY lanes of each column (as rows.ts's fallback reducer): lanes < G add
  // TY/G values each, then lane 0 adds the G partials
  if (ty < ${g}u) {
    var r = sh[lid];
    for (var q = 1u; q < ${ty / g}u; q++) { r += sh[lid + q * ${g * tx}u]; }
    sh2[lid] = r;
  }
  workgroupBarrier();
  if (ty == 0u && live) {
    var v = sh2[tx];
    for (var q = 1u; q < ${g}u; q++) { v += sh2[tx + q * ${tx}u]; }
    if (p.mode == ${MODE.partial}u) { y[(o * p.splits + s) * p.inner + i] = v; }
    else if (p.mode == ${MODE.set}u) { ${put('= v * p.scale')} }
    else { ${put('+= v * p.scale')} }
  }
}`;
}

/** Rows of at least this many floats (a 128-byte line) take the subgroup kernel: shorter rows sit
 *  close enough for the column kernel's loads, and would leave most of a subgroup idle. */
const MIN_SUBGROUP_ROW = 32;

/** The one-subgroup-per-row layout of a row-sum reduction, or null for the column kernel. */
export function rowSumLayout(device: GPUDevice, outer: number, reduce: number, inner: number): SubgroupRows | null {
  return inner === 1 && reduce >= MIN_SUBGROUP_ROW ? subgroupRows(device, outer, reduce) : null;
}

/** y[row] (+)= scale · Σ of the row, one subgroup per row, the lanes' sums added by subgroupAdd. */
function rowSumSource(s: SubgroupRows): string {
  const decls = /* wgsl */ `
struct P { rows: u32, cols: u32, scale: f32, mode: u32 }
@group(0) @binding(0) var<storage, read> x: array<V>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: P;`;
  const body = /* wgsl */ `
  var t = 0.0;
  ${eachLaneSlot(s, '    if (c < n) { t += vsum(x[base + c]); }')}
  let v = subgroupAdd(t) * p.scale;
  if (ok && lane == 0u) {
    if (p.mode == ${MODE.acc}u) { y[row] += v; } else { y[row] = v; }
  }`;
  return subgroupRowKernel(s, decls, body);
}

/**
 * Columns per workgroup, one of 1, 16, 64, 256 (few pipelines): at least min(64, inner) rounded up
 * to that set so loads coalesce, and more when the axis is short (about 8 rows per lane).
 */
function columnsPerGroup(reduce: number, inner: number): number {
  const lanes = Math.min(WG, 2 ** Math.ceil(Math.log2(Math.max(1, Math.ceil(reduce / 8)))));
  const tx = inner === 1 ? 1 : inner <= 16 ? 16 : 64;
  const wanted = WG / lanes;
  return wanted <= tx ? tx : wanted <= 64 ? 64 : 256;
}

function dispatchReduce(
  batch: CommandBatch,
  x: Binding,
  y: Binding,
  mode: Mode,
  tx: number,
  d: { outer: number; reduce: number; inner: number; splits: number; chunk: number; scale: number },
  y2?: Binding,
  half = false,
): void {
  const tiles = Math.ceil((d.outer * d.inner) / tx);
  const pair = y2 !== undefined;
  const pipe = getPipeline(batch.device, `reduce.axis_tx${tx}${pair ? '_pair' : ''}${half ? '_f16' : ''}`, () => reduceSource(tx, pair, half));
  const params = new Params().u32(d.outer).u32(d.reduce).u32(d.inner).u32(d.splits).u32(d.chunk).u32(tiles).f32(d.scale).u32(MODE[mode]);
  batch.dispatch(pipe, pair ? [x, y, y2] : [x, y], params, grid(tiles * d.splits));
}

/** Counts of a [outer, reduce, inner] view checked; its size string and element count. */
function checkAxisDims(K: string, outer: number, reduce: number, inner: number): { sizes: string; n: number } {
  checkCount(K, 'outer', outer);
  checkCount(K, 'reduce', reduce);
  checkCount(K, 'inner', inner);
  const n = outer * reduce * inner;
  checkCount(K, 'outer·reduce·inner', n);
  return { sizes: `outer=${outer}, reduce=${reduce}, inner=${inner}`, n };
}

/**
 * y[o, i] = Σ_r x[o, r, i], times 1/reduce when `mean`; `accumulate`: y += instead of y =.
 * reduce = 0 gives sums of 0 (mean over nothing throws). y must not share a buffer with x.
 * With `second`, outer must be 2: y gets the sums of o = 0 and `second` those of o = 1 (inner each),
 * in the dispatches one output takes (two parameter gradients from one buffer of partial sums).
 * `input` 'f16': x holds f16 bits (the f16 gradient an f16 linear's matmuls read, for its bias);
 * the sums are f32 all the same.
 */
export function reduceAxis(
  batch: CommandBatch,
  x: Binding,
  y: Binding,
  dims: { outer: number; reduce: number; inner: number; mean?: boolean; accumulate?: boolean; second?: Binding; input?: 'f32' | 'f16' },
): void {
  const K = 'reduceAxis';
  const { outer, reduce, inner, mean = false, accumulate = false, second, input = 'f32' } = dims;
  const { sizes, n } = checkAxisDims(K, outer, reduce, inner);
  if (mean && reduce === 0) throw new RangeError(`${K}: mean over an empty axis (${sizes})`);
  if (second && outer !== 2) throw new RangeError(`${K}: a second output takes outer = 2 (${sizes})`);
  if (input !== 'f32' && input !== 'f16') throw new RangeError(`${K}: input must be 'f32' or 'f16', got '${input}' (${sizes})`);
  const half = input === 'f16';
  requireBytes(K, 'x', x, half ? Math.ceil(n / 2) * 4 : 4 * n, sizes);
  const outs: [string, Binding][] = second ? [['y', y], ['second', second]] : [['y', y]];
  for (const [name, b] of outs) requireBytes(K, name, b, 4 * (second ? 1 : outer) * inner, sizes);
  // the two outputs are both written: they may share a buffer, not memory
  requireBindable(K, outs, [['x', x]]);
  if (outer * inner === 0) return;
  if (reduce === 0) {
    // sums over nothing, without binding x (it may be empty, which WebGPU cannot bind)
    if (!accumulate) for (const [, b] of outs) fill(batch, b, (second ? 1 : outer) * inner, 0);
    return;
  }
  const scale = mean ? 1 / reduce : 1;
  const finalMode: Mode = accumulate ? 'acc' : 'set';
  // (the subgroup row sums read f32 only; f16 rows take the column kernel)
  const sg = second || half ? null : rowSumLayout(batch.device, outer, reduce, inner);
  if (sg) {
    const pipe = getPipeline(batch.device, `reduce.rows_${sg.key}`, () => rowSumSource(sg));
    batch.dispatch(pipe, [x, y], new Params().u32(outer).u32(reduce).f32(scale).u32(MODE[finalMode]), grid(sg.groups));
    return;
  }
  const tx = columnsPerGroup(reduce, inner);
  const base = Math.ceil((outer * inner) / tx);
  const lanes = WG / tx;
  let splits = 1;
  if (base < TARGET_GROUPS) splits = Math.max(1, Math.min(Math.ceil(TARGET_GROUPS / base), Math.floor(reduce / (lanes * MIN_ROWS_PER_LANE))));
  const chunk = Math.max(1, Math.ceil(reduce / splits));
  splits = Math.max(1, Math.ceil(reduce / chunk));
  if (splits === 1) {
    dispatchReduce(batch, x, y, finalMode, tx, { outer, reduce, inner, splits: 1, chunk: Math.max(reduce, 1), scale }, second, half);
    return;
  }
  const bytes = 4 * outer * splits * inner;
  const part = scratchBuffer(batch, 'reduceAxis', bytes);
  dispatchReduce(batch, x, part, 'partial', tx, { outer, reduce, inner, splits, chunk, scale: 1 }, undefined, half);
  dispatchReduce(batch, { buffer: part, size: bytes }, y, finalMode, columnsPerGroup(splits, inner), { outer, reduce: splits, inner, splits: 1, chunk: splits, scale }, second);
}

function broadcastSource(V: 1 | 4, acc: boolean): string {
  const T = V === 4 ? 'vec4<f32>' : 'f32';
  return /* wgsl */ `
struct P { units: u32, ri: u32, inner: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> x: array<${T}>;
@group(0) @binding(1) var<storage, read_write> y: array<${T}>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  let u = (wid.y * nwg.x + wid.x) * ${WG}u + lid;
  if (u >= p.units) { return; }
  // ri and inner are counted in units (vec4s when inner % 4 == 0)
  let v = p.scale * x[(u / p.ri) * p.inner + u % p.inner];
  y[u] = ${acc ? 'y[u] + v' : 'v'};
}`;
}

/**
 * The backward of reduceAxis: y[o, r, i] = scale · x[o, i] (`accumulate`: y +=). y must not overlap x.
 */
export function broadcastAxis(
  batch: CommandBatch,
  x: Binding,
  y: Binding,
  dims: { outer: number; reduce: number; inner: number; scale?: number; accumulate?: boolean },
): void {
  const K = 'broadcastAxis';
  const { outer, reduce, inner, scale = 1, accumulate = false } = dims;
  const { sizes, n } = checkAxisDims(K, outer, reduce, inner);
  requireBytes(K, 'x', x, 4 * outer * inner, sizes);
  requireBytes(K, 'y', y, 4 * n, sizes);
  requireDisjoint(K, ['y', y], ['x', x]);
  if (n === 0) return;
  // vec4 units never straddle two (o, r) rows when inner % 4 == 0, and then n % 4 == 0 too
  const V = inner % 4 === 0 ? 4 : 1;
  const units = n / V;
  const pipe = getPipeline(batch.device, `reduce.broadcast_v${V}_${accumulate ? 'acc' : 'set'}`, () => broadcastSource(V, accumulate));
  const params = new Params().u32(units).u32((reduce * inner) / V).u32(inner / V).f32(scale);
  batch.dispatch(pipe, [x, y], params, grid(Math.ceil(units / WG)));
}
