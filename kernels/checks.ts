// Launch-time checks and WGSL snippets the element-wise kernel files share: binding sizes (a
// binding too small would be clamped silently by robustness, so we throw instead), aliasing
// (WebGPU forbids a writable binding overlapping another binding of the same dispatch), the
// vec4 choice with a guarded tail store, the whole source of a one-unit-per-thread map kernel, and
// the segments of the multi-tensor kernels (AdamW, EMA, sum of squares).
import type { Binding, Params } from './runtime.js';

/** Buffer sizes, read once: a GPUBuffer's size never changes, and reading it is a call into native
 *  code (Dawn's), where a training step's checks read sizes thousands of times. */
const bufferSizes = new WeakMap<GPUBuffer, number>();

function bufferSize(buffer: GPUBuffer): number {
  let size = bufferSizes.get(buffer);
  if (size === undefined) bufferSizes.set(buffer, (size = buffer.size));
  return size;
}

/** A binding's buffer, offset and size (the rest of the buffer when no size is given). */
export function bindingParts(b: Binding): { buffer: GPUBuffer; offset: number; size: number } {
  if ('buffer' in b) {
    const offset = b.offset ?? 0;
    return { buffer: b.buffer, offset, size: b.size ?? bufferSize(b.buffer) - offset };
  }
  return { buffer: b, offset: 0, size: bufferSize(b) };
}

/** Bytes a binding exposes to the shader. */
export function bindingBytes(b: Binding): number {
  return bindingParts(b).size;
}

export function checkCount(kernel: string, what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${kernel}: ${what} must be an integer in [0, 2^32), got ${v}`);
}

/** Throws unless `b` holds at least `bytes` bytes. */
export function requireBytes(kernel: string, name: string, b: Binding, bytes: number, detail: string): void {
  const have = bindingBytes(b);
  if (have < bytes) throw new RangeError(`${kernel}: ${name} binding holds ${have} bytes, needs ${bytes} (${detail})`);
}

/** 'same': identical ranges (an in-place variant can be used); 'overlap': partial overlap; null: disjoint. */
export function aliasing(a: Binding, b: Binding): 'same' | 'overlap' | null {
  return overlap(bindingParts(a), bindingParts(b));
}

function overlap(x: ReturnType<typeof bindingParts>, y: ReturnType<typeof bindingParts>): 'same' | 'overlap' | null {
  if (x.buffer !== y.buffer) return null;
  if (x.offset === y.offset) return 'same';
  return x.offset < y.offset + y.size && y.offset < x.offset + x.size ? 'overlap' : null;
}

/**
 * Throws unless these bindings can go to one dispatch: no two written ones overlap (they would race),
 * and no buffer holds both a written and a read-only binding (WebGPU refuses that pair of usages in
 * one dispatch whatever the ranges: it would skip the dispatch and only log an error).
 */
export function requireBindable(kernel: string, written: [string, Binding][], read: [string, Binding][]): void {
  const w = written.map(([, b]) => bindingParts(b)), r = read.map(([, b]) => bindingParts(b));
  for (let i = 0; i < w.length; i++) {
    for (let j = i + 1; j < w.length; j++) if (overlap(w[i], w[j])) throw new Error(`${kernel}: ${written[i][0]} and ${written[j][0]} share memory`);
    for (let j = 0; j < r.length; j++)
      if (w[i].buffer === r[j].buffer)
        throw new Error(`${kernel}: ${written[i][0]} must not share a buffer with ${read[j][0]}, whatever the ranges (WebGPU cannot bind one buffer writable and read-only in one dispatch)`);
  }
}

/** Throws if `out` overlaps any of `others` (bindings of other dispatches: only their ranges matter). */
export function requireNoOverlap(kernel: string, out: [string, Binding], ...others: [string, Binding][]): void {
  for (const [name, b] of others) if (aliasing(out[1], b)) throw new Error(`${kernel}: ${out[0]} must not share memory with ${name}`);
}

/** Throws if `out` shares a buffer with any of the read-only inputs `ins` (callers that support in-place check 'same' first). */
export function requireDisjoint(kernel: string, out: [string, Binding], ...ins: [string, Binding][]): void {
  requireBindable(kernel, [out], ins);
}

/**
 * 4 when every binding can be read as ceil(n/4) vec4s (pool buffers always can: their sizes are
 * multiples of 64 and binding offsets are 256-aligned), else 1. The last vec4 may then run past
 * n: loads there are in bounds but meaningless, and stores go through `storeVec4` lane by lane.
 */
export function vecWidth(n: number, ...bindings: Binding[]): 1 | 4 {
  const need = Math.ceil(n / 4) * 16;
  return bindings.every((b) => bindingBytes(b) >= need) ? 4 : 1;
}

/** WGSL `fn put_<arr>(i, v)` writing unit i of `arr`: whole vec4 inside n, else only lanes < n
 *  (so memory past n in the same buffer is never touched). `n` is the element count expression. */
export function storeFn(arr: string, V: 1 | 4, n = 'p.n'): string {
  // parameter names with a trailing underscore cannot clash with the shader's arrays
  if (V === 1) return `fn put_${arr}(i_: u32, v_: f32) { ${arr}[i_] = v_; }`;
  return `fn put_${arr}(i_: u32, v_: vec4<f32>) {
  let e_ = i_ * 4u;
  if (e_ + 4u <= ${n}) { ${arr}[i_] = v_; return; }
  ${arr}[i_].x = v_.x;
  if (e_ + 1u < ${n}) { ${arr}[i_].y = v_.y; }
  if (e_ + 2u < ${n}) { ${arr}[i_].z = v_.z; }
}`;
}

/** WGSL type of one unit. */
export function unitType(V: 1 | 4): string {
  return V === 4 ? 'vec4<f32>' : 'f32';
}

/** Linear invocation index for a 1-D launch laid out by runtime.grid(). */
export function linearIndex(wg: number): string {
  return `(wid.y * nwg.x + wid.x) * ${wg}u + lid`;
}

export const MAIN_ARGS = '@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32';

/** A storage binding of a map kernel: name, access, and its element type where it is not the unit
 *  ('f32' for a scalar array whatever the unit; u32 or vec2<u32> for f16 bits, two or four halves). */
export type MapBinding = [name: string, access: 'read' | 'read_write', element?: 'f32' | 'u32' | 'vec2<u32>'];

/**
 * WGSL of a kernel where thread i handles unit i (a vec4 or one f32) of n elements: uniform
 * `P { n, units<fields> }` after the storage `bindings` (in binding order), a guarded `put_<out>`
 * (where `out` is given), and `body` run for i < p.units.
 */
export function mapSource(o: { V: 1 | 4; wg: number; fields?: string; bindings: MapBinding[]; out?: string; body: string }): string {
  const T = unitType(o.V);
  const decls = o.bindings.map(([name, access, el], k) => `@group(0) @binding(${k}) var<storage, ${access}> ${name}: array<${el ?? T}>;`);
  return /* wgsl */ `
struct P { n: u32, units: u32${o.fields ?? ''} }
${decls.join('\n')}
@group(0) @binding(${o.bindings.length}) var<uniform> p: P;
${o.out ? storeFn(o.out, o.V) : ''}
@compute @workgroup_size(${o.wg})
fn main(${MAIN_ARGS}) {
  let i = ${linearIndex(o.wg)};
  if (i >= p.units) { return; }
  ${o.body}
}`;
}

/**
 * The multi-tensor kernels (as torch's _foreach ops) run several tensors per dispatch as one
 * concatenation of units; tensor k of a dispatch is "segment k", bound by the kernel's own arrays,
 * its units e(k−1) ≤ i < ek. A segment group: up to `per` of the items with n > 0 (each keeps k, its
 * index in the caller's list, for messages), and one vec width for all of them.
 */
export interface SegmentGroup<T> {
  items: (T & { k: number })[];
  V: 1 | 4;
}

export function segmentGroups<T extends { n: number }>(items: T[], per: number, bindings: (t: T) => Binding[]): SegmentGroup<T>[] {
  const live = items.map((t, k) => ({ ...t, k })).filter((t) => t.n > 0);
  const groups: SegmentGroup<T>[] = [];
  for (let first = 0; first < live.length; first += per) {
    const group = live.slice(first, first + per);
    groups.push({ items: group, V: group.every((t) => vecWidth(t.n, ...bindings(t)) === 4) ? 4 : 1 });
  }
  return groups;
}

/** WGSL fields of the uniform for `count` segments: ek (end unit) and nk (elements), then `more(k)`. */
export function segmentFields(count: number, more: (k: number) => string = () => ''): string {
  return Array.from({ length: count }, (_, k) => `e${k}: u32, n${k}: u32${more(k)}`).join(', ');
}

/** Units of segment `t` in group `g`. */
const segmentUnits = <T extends { n: number }>(g: SegmentGroup<T>, t: T) => Math.ceil(t.n / g.V);

/** Units of all the group's segments. */
export function groupUnits<T extends { n: number }>(g: SegmentGroup<T>): number {
  return g.items.reduce((s, t) => s + segmentUnits(g, t), 0);
}

/** Fills what segmentFields declares (`more` adds an item's own fields); returns the units in all. */
export function segmentParams<T extends { n: number }>(p: Params, g: SegmentGroup<T>, more: (t: T) => void = () => {}): number {
  let units = 0;
  for (const t of g.items) {
    p.u32((units += segmentUnits(g, t))).u32(t.n);
    more(t);
  }
  return units;
}

/** WGSL: for unit i of the dispatch, the segment k that holds it runs `body(k)` with j its unit in
 *  the segment; each body must return. Past the last segment nothing runs. */
export function segmentBranches(count: number, body: (k: number) => string): string {
  return Array.from({ length: count }, (_, k) => `if (i < p.e${k}) {
    let j = i - ${k === 0 ? '0u' : `p.e${k - 1}`};
    ${body(k)}
  }`).join('\n  ');
}
