// Row gather/scatter of f32 rows of `dim` by a u32 index buffer: picks the visible/masked tokens
// (gather) and routes their gradients back (scatter with accumulate). One thread per row unit
// (vec4 when dim % 4 == 0), laid out by grid().
// Out-of-range indices cannot throw on a GPU: gather writes a NaN row (so the mistake shows up in
// the loss), scatter skips the row.
import { checkCount, linearIndex, MAIN_ARGS, requireBytes, requireDisjoint, unitType } from './checks.js';
import { getPipeline, grid, Params, type Binding, type CommandBatch } from './runtime.js';

const WG = 256;

/** One thread per unit t of the output rows (gather) or input rows (scatter): its row r, and
 *  j = idx[r], the table row it reads (gather) or writes (scatter); `body` does the rest. */
function rowSource(V: 1 | 4, fields: string, body: string): string {
  const T = unitType(V);
  return /* wgsl */ `
struct P { units: u32, rowUnits: u32, ${fields} }
@group(0) @binding(0) var<storage, read> src: array<${T}>;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<${T}>;
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  let t = ${linearIndex(WG)};
  if (t >= p.units) { return; }
  let r = t / p.rowUnits;
  let j = idx[r];
${body}
}`;
}

function gatherSource(V: 1 | 4): string {
  const T = unitType(V);
  return rowSource(
    V,
    'srcRows: u32, nanBits: u32',
    `  if (j < p.srcRows) { dst[t] = src[j * p.rowUnits + (t - r * p.rowUnits)]; }
  else { dst[t] = ${T}(bitcast<f32>(p.nanBits)); } // a NaN constant is a WGSL compile error`,
  );
}

function scatterSource(V: 1 | 4, acc: boolean): string {
  return rowSource(
    V,
    'dstRows: u32',
    `  if (j >= p.dstRows) { return; }
  let o = j * p.rowUnits + (t - r * p.rowUnits);
  dst[o] = ${acc ? 'dst[o] + src[t]' : 'src[t]'};`,
  );
}

function checkRows(K: string, rows: number, dim: number, tableRows: number, tableName: string): string {
  checkCount(K, 'rows', rows);
  checkCount(K, 'dim', dim);
  checkCount(K, tableName, tableRows);
  checkCount(K, 'rows·dim', rows * dim);
  checkCount(K, `${tableName}·dim`, tableRows * dim);
  return `rows=${rows}, dim=${dim}, ${tableName}=${tableRows}`;
}

/** Checks and dispatches a gather or scatter of `rows` rows of `dim` through a table of tableRows
 *  rows: src for a gather, dst for a scatter. `pipeline(V)` picks the kernel, `tail` appends its own
 *  uniforms after (units, rowUnits). */
function dispatchRows(
  batch: CommandBatch,
  K: string,
  bufs: { src: Binding; idx: Binding; dst: Binding },
  dims: { rows: number; dim: number; table: 'src' | 'dst'; tableRows: number },
  pipeline: (V: 1 | 4) => GPUComputePipeline,
  tail: (p: Params) => Params,
): void {
  const { src, idx, dst } = bufs;
  const { rows, dim, table, tableRows } = dims;
  const sizes = checkRows(K, rows, dim, tableRows, `${table}Rows`);
  requireBytes(K, 'src', src, 4 * (table === 'src' ? tableRows : rows) * dim, sizes);
  requireBytes(K, 'idx', idx, 4 * rows, sizes);
  requireBytes(K, 'dst', dst, 4 * (table === 'dst' ? tableRows : rows) * dim, sizes);
  requireDisjoint(K, ['dst', dst], ['src', src], ['idx', idx]);
  if (rows * dim === 0) return;
  const V = dim % 4 === 0 ? 4 : 1;
  const units = (rows * dim) / V;
  batch.dispatch(pipeline(V), [src, idx, dst], tail(new Params().u32(units).u32(dim / V)), grid(Math.ceil(units / WG)));
}

/** dst[i, :] = src[idx[i], :] for i < rows; src is [srcRows, dim]. */
export function gatherRows(batch: CommandBatch, src: Binding, idx: Binding, dst: Binding, dims: { rows: number; dim: number; srcRows: number }): void {
  const { rows, dim, srcRows } = dims;
  dispatchRows(
    batch,
    'gatherRows',
    { src, idx, dst },
    { rows, dim, table: 'src', tableRows: srcRows },
    (V) => getPipeline(batch.device, `gather.gatherRows_v${V}`, () => gatherSource(V)),
    (p) => p.u32(srcRows).u32(0x7fc00000),
  );
}

/** dst[idx[i], :] (+)= src[i, :] for i < rows; dst is [dstRows, dim], other rows untouched.
 *  The idx entries must be distinct (no two threads may write one row). */
export function scatterRows(
  batch: CommandBatch,
  src: Binding,
  idx: Binding,
  dst: Binding,
  dims: { rows: number; dim: number; dstRows: number; accumulate?: boolean },
): void {
  const { rows, dim, dstRows, accumulate: acc = false } = dims;
  dispatchRows(
    batch,
    'scatterRows',
    { src, idx, dst },
    { rows, dim, table: 'dst', tableRows: dstRows },
    (V) => getPipeline(batch.device, `gather.scatterRows_v${V}_${acc ? 'acc' : 'set'}`, () => scatterSource(V, acc)),
    (p) => p.u32(dstRows),
  );
}
