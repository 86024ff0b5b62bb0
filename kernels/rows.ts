// What the row-wise kernels (layernorm, softmax) and the axis reduction share: how a row is laid
// out over one workgroup, a workgroup-shared tree reduction in WGSL, and per-device scratch
// buffers for two-pass reductions.
import type { CommandBatch } from './runtime.js';

let maxGridDim = 65535;

/** Lowers the per-dimension workgroup limit used by workgroupGrid, so tests reach the 2-D launch path
 *  with small shapes; returns the previous value. Not for production use. */
export function setMaxGridDimForTests(n: number): number {
  const old = maxGridDim;
  maxGridDim = n;
  return old;
}

/** Workgroup counts [x, y] covering `groups` (as runtime.grid, with the limit above). Shaders
 *  recover the linear index as wid.y * nwg.x + wid.x and bound-check it. */
export function workgroupGrid(groups: number): [number, number] {
  if (groups <= maxGridDim) return [Math.max(1, groups), 1];
  const y = Math.ceil(groups / maxGridDim);
  return [Math.ceil(groups / y), y];
}

/** Values each thread keeps in registers at most; longer rows are re-read from memory instead. */
export const MAX_PER_THREAD = 16;

export interface RowLayout {
  /** Workgroup size (a power of two, 32..256). */
  wg: number;
  /** Elements per thread (thread t holds columns t, t + wg, ...). */
  k: number;
  /** True when the row fits in registers (k ≤ MAX_PER_THREAD): each input is read once. */
  cached: boolean;
}

/** One workgroup per row, about 4 elements per thread so short rows do not idle 256 threads. */
export function rowLayout(cols: number): RowLayout {
  const wg = Math.min(256, Math.max(32, 2 ** Math.ceil(Math.log2(Math.max(1, Math.ceil(cols / 4))))));
  const k = Math.max(1, Math.ceil(cols / wg));
  return { wg, k, cached: k <= MAX_PER_THREAD };
}

/**
 * WGSL `fn <name>(v: T, lid: u32) -> T`: the combination of `v` over the workgroup, by a tree in
 * workgroup memory. Must be called in uniform control flow. It ends with a barrier, so the shared
 * array can be reused by the next call straight away.
 */
export function treeReduceFn(name: string, type: string, wg: number, combine: (a: string, b: string) => string): string {
  return /* wgsl */ `
var<workgroup> ${name}_sh: array<${type}, ${wg}>;
fn ${name}(v: ${type}, lid: u32) -> ${type} {
  ${name}_sh[lid] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { ${name}_sh[lid] = ${combine(`${name}_sh[lid]`, `${name}_sh[lid + s]`)}; }
    workgroupBarrier();
  }
  let r = ${name}_sh[0];
  workgroupBarrier();
  return r;
}`;
}

const scratchByDevice = new WeakMap<GPUDevice, Map<string, GPUBuffer>>();

/**
 * A storage buffer of at least `bytes` bytes owned by this module, one per device and `key`
 * (callers whose passes are bound together in one dispatch need different keys). Reusing it across
 * calls is safe: WebGPU orders dispatches, so a later call sees an earlier call's writes and reads
 * finished. When it must grow, the old buffer is destroyed after the batch that may still use it
 * is submitted.
 */
export function scratchBuffer(batch: CommandBatch, key: string, bytes: number): GPUBuffer {
  let byKey = scratchByDevice.get(batch.device);
  if (!byKey) scratchByDevice.set(batch.device, (byKey = new Map()));
  const old = byKey.get(key);
  if (old && old.size >= bytes) return old;
  const cap = batch.device.limits.maxStorageBufferBindingSize;
  if (bytes > cap) throw new RangeError(`scratch ${key}: ${bytes} bytes exceed maxStorageBufferBindingSize ${cap}`);
  // grow geometrically (within the binding limit) so growing shapes reallocate only a few times
  const size = Math.min(Math.floor(cap / 4) * 4, Math.ceil(Math.max(256, bytes, (old?.size ?? 0) * 2) / 4) * 4);
  const b = batch.device.createBuffer({ label: `scratch ${key}`, size, usage: GPUBufferUsage.STORAGE });
  byKey.set(key, b);
  if (old) batch.onSubmit(() => old.destroy());
  return b;
}
