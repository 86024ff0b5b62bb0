// Row gather/scatter of f32 rows of `dim` by a u32 index buffer: picks the visible/masked tokens
// (gather) and routes their gradients back (scatter with accumulate). One thread per row unit
// (vec4 when dim % 4 == 0), laid out by grid().
// Out-of-range indices cannot throw on a GPU: gather writes a NaN row (so the mistake shows up in
// the loss), scatter skips the row.
import { checkCount, linearIndex, MAIN_ARGS, requireBytes, requireDisjoint, unitType } from './checks.js';
import { getPipeline, grid, Params, type Binding, type CommandBatch } from './runtime.js';

const WG = 256;

function gatherSource(V: 1 | 4): string {
  const T = unitType(V);
  return /* wgsl */ `
struct P { units: u32, rowUnits: u32, srcRows: u32, nanBits: u32 }
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
  if (j < p.srcRows) { dst[t] = src[j * p.rowUnits + (t - r * p.rowUnits)]; }
  else { dst[t] = ${T}(bitcast<f32>(p.nanBits)); } // a NaN constant is a WGSL compile error
}`;
}

function scatterSource(V: 1 | 4, acc: boolean): string {
  const T = unitType(V);
  return /* wgsl */ `
struct P { units: u32, rowUnits: u32, dstRows: u32 }
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
  if (j >= p.dstRows) { return; }
  let o = j * p.rowUnits + (t - r * p.rowUnits);
  dst[o] = ${acc ? 'dst[o] + src[t]' : 'src[t]'};
}`;
}

function checkRows(K: string, rows: number, dim: number, tableRows: number, tableName: string): string {
  checkCount(K, 'rows', rows);
  checkCount(K, 'dim', dim);
  checkCount(K, tableName, tableRows);
  checkCount(K, 'rows·dim', rows * dim);
  checkCount(K, `${tableName}·dim`, tableRows * dim);
  return `rows=${rows}, dim=${dim}, ${tableName}=${tableRows}`;
}

/** dst[i, :] = src[idx[i], :] for i < rows; src is [srcRows, dim]. */
export function gatherRows(batch: CommandBatch, src: Binding, idx: Binding, dst: Binding, dims: { rows: number; dim: number; srcRows: number }): void {
  const K = 'gatherRows';
  const { rows, dim, srcRows } = dims;
  const sizes = checkRows(K, rows, dim, srcRows, 'srcRows');
  requireBytes(K, 'src', src, 4 * srcRows * dim, sizes);
  requireBytes(K, 'idx', idx, 4 * rows, sizes);
  requireBytes(K, 'dst', dst, 4 * rows * dim, sizes);
  requireDisjoint(K, ['dst', dst], ['src', src], ['idx', idx]);
  if (rows * dim === 0) return;
  const V = dim % 4 === 0 ? 4 : 1;
  const units = (rows * dim) / V;
  const pipe = getPipeline(batch.device, `gather.gatherRows_v${V}`, () => gatherSource(V));
  batch.dispatch(pipe, [src, idx, dst], new Params().u32(units).u32(dim / V).u32(srcRows).u32(0x7fc00000), grid(Math.ceil(units / WG)));
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
  const K = 'scatterRows';
  const { rows, dim, dstRows, accumulate: acc = false } = dims;
  const sizes = checkRows(K, rows, dim, dstRows, 'dstRows');
  requireBytes(K, 'src', src, 4 * rows * dim, sizes);
  requireBytes(K, 'idx', idx, 4 * rows, sizes);
  requireBytes(K, 'dst', dst, 4 * dstRows * dim, sizes);
  requireDisjoint(K, ['dst', dst], ['src', src], ['idx', idx]);
  if (rows * dim === 0) return;
  const V = dim % 4 === 0 ? 4 : 1;
  const units = (rows * dim) / V;
  const pipe = getPipeline(batch.device, `gather.scatterRows_v${V}_${acc ? 'acc' : 'set'}`, () => scatterSource(V, acc));
  batch.dispatch(pipe, [src, idx, dst], new Params().u32(units).u32(dim / V).u32(dstRows), grid(Math.ceil(units / WG)));
}
