// Element-wise binary ops (add, sub, mul) with an optional scale on the second operand:
// out[i] = a[i] (op) alpha * b[i]. Residual adds and gradient accumulation use these.
import { CommandBatch, getPipeline, grid, Params, type Binding } from './runtime.js';

export type BinaryOp = 'add' | 'sub' | 'mul';

const WG = 256;
const EXPR: Record<BinaryOp, string> = {
  add: 'a[i] + p.alpha * b[i]',
  sub: 'a[i] - p.alpha * b[i]',
  mul: 'a[i] * (p.alpha * b[i])',
};

function binarySource(op: BinaryOp): string {
  return /* wgsl */ `
struct P { n: u32, alpha: f32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * ${WG}u + lid;
  if (i >= p.n) { return; }
  out[i] = ${EXPR[op]};
}`;
}

/** out = a (op) alpha*b over n f32 elements. `out` must not alias an input (WebGPU forbids read and write bindings of one buffer in a dispatch). */
export function binary(batch: CommandBatch, op: BinaryOp, a: Binding, b: Binding, out: Binding, n: number, alpha = 1): void {
  const pipe = getPipeline(batch.device, `binary_${op}`, () => binarySource(op));
  batch.dispatch(pipe, [a, b, out], new Params().u32(n).f32(alpha), grid(Math.ceil(n / WG)));
}
