// How a launch of n workgroups is laid out within WebGPU's 65535 per dimension, and the tests' hook
// that lowers the limit so every kernel's 2-D path runs with small shapes. Not re-exported by
// kernels/index.ts: the hook is no API (runtime.ts re-exports `grid`).

/** The limit `grid` lays launches out by: WebGPU's default, unless a test lowered it. */
let gridLimit = 65535;

/** Workgroup counts [x, y] covering `groups` workgroups, within the per-dimension limit. A shader
 *  recovers the linear workgroup index as wid.y * nwg.x + wid.x (and must bound-check). */
export function grid(groups: number): [number, number] {
  if (groups <= gridLimit) return [Math.max(1, groups), 1];
  const y = Math.ceil(groups / gridLimit);
  return [Math.ceil(groups / y), y];
}

/** Lowers the per-dimension limit `grid` uses; returns the previous value. Tests only. */
export function setMaxGridDimForTests(n: number): number {
  const old = gridLimit;
  gridLimit = n;
  return old;
}
