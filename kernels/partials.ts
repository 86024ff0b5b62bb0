// Two-pass sum of a per-element term, shared by smoothL1Forward and sumSquares. WGSL has no float
// atomics, so pass 1 writes one partial sum per workgroup (at most MAX_PARTIALS workgroups,
// grid-stride) into a scratch buffer and pass 2, one workgroup, adds the partials and writes
// out[0] = (accumulate ? out[0] : 0) + scale·sum. The partition depends only on n, so results are
// deterministic.
//
// Scratch: one MAX_PARTIALS-float buffer per device, created on first use and kept for the device's
// life. Sharing it between calls is safe because WebGPU orders dispatches (a later dispatch sees
// an earlier one's writes), also across command buffers of one queue.
import { MAIN_ARGS } from './checks.js';
import { CommandBatch, getPipeline, Params, type Binding } from './runtime.js';

const WG = 256;
export const MAX_PARTIALS = 1024;

const scratchByDevice = new WeakMap<GPUDevice, GPUBuffer>();

function scratch(device: GPUDevice): GPUBuffer {
  let b = scratchByDevice.get(device);
  if (!b) {
    b = device.createBuffer({ label: 'reduce partials', size: MAX_PARTIALS * 4, usage: GPUBufferUsage.STORAGE });
    scratchByDevice.set(device, b);
  }
  return b;
}

export interface TermKernel {
  /** Pipeline cache key; must encode every template parameter of `decls`/`term`. */
  key: string;
  /** WGSL binding declarations @binding(0..k-1) (read-only inputs) plus helper code. The uniform is
   *  `p: P` with P { n: u32, units: u32, a: f32, b: f32 } (a, b free for the term). */
  decls: string;
  /** Number of input bindings declared in `decls`. */
  inputs: number;
  /** WGSL body of `fn term(i: u32) -> f32`: the (lane-masked) contribution of unit i. */
  term: string;
  /** More fields of the uniform P after b (e.g. `, e0: u32`), filled by reduceTerms' `more`. */
  fields?: string;
}

function partialSource(k: TermKernel): string {
  return /* wgsl */ `
struct P { n: u32, units: u32, a: f32, b: f32${k.fields ?? ''} }
${k.decls}
@group(0) @binding(${k.inputs}) var<storage, read_write> partials: array<f32>;
@group(0) @binding(${k.inputs + 1}) var<uniform> p: P;
var<workgroup> sh: array<f32, ${WG}>;
fn term(i: u32) -> f32 {
${k.term}
}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  var acc = 0.0;
  for (var i = wid.x * ${WG}u + lid; i < p.units; i += nwg.x * ${WG}u) { acc += term(i); }
  sh[lid] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { sh[lid] += sh[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { partials[wid.x] = sh[0]; }
}`;
}

const finalSource = /* wgsl */ `
struct Q { count: u32, accumulate: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> q: Q;
var<workgroup> sh: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var i = lid; i < q.count; i += ${WG}u) { acc += partials[i]; }
  sh[lid] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { sh[lid] += sh[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let total = q.scale * sh[0];
    out[0] = select(total, out[0] + total, q.accumulate != 0u);
  }
}`;

/** Records both passes: out[0] (+)= scale · Σ_{i<units} term(i). `a`, `b` go to the term's uniform. */
export function reduceTerms(
  batch: CommandBatch,
  k: TermKernel,
  inputs: Binding[],
  out: Binding,
  o: { n: number; units: number; a?: number; b?: number; scale: number; accumulate: boolean; more?: (p: Params) => void },
): void {
  const part = scratch(batch.device);
  const groups = Math.max(1, Math.min(MAX_PARTIALS, Math.ceil(o.units / (WG * 4))));
  const p1 = getPipeline(batch.device, `partials.pass1.${k.key}`, () => partialSource(k));
  const params = new Params().u32(o.n).u32(o.units).f32(o.a ?? 0).f32(o.b ?? 0);
  o.more?.(params);
  batch.dispatch(p1, [...inputs, part], params, [groups]);
  const p2 = getPipeline(batch.device, 'partials.final', () => finalSource);
  batch.dispatch(p2, [part, out], new Params().u32(groups).u32(o.accumulate ? 1 : 0).f32(o.scale), [1]);
}

/** WGSL: zero the lanes of vec4 unit `i` that lie at or past `n` elements. */
export function maskTail(v: string, i = 'i', n = 'p.n'): string {
  return `select(vec4<f32>(0.0), ${v}, vec4<u32>(${i} * 4u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(${n}))`;
}
