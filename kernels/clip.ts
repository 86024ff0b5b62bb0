// Gradient-norm clipping without a readback: the clip factor is computed on the GPU from the
// summed squares (kernels/norm2.ts sumSquares over every gradient), as torch's clip_grad_norm_:
// g *= min(1, maxNorm / (‖g‖ + 1e-6)). `gradScale` is the factor the optimizer will apply
// (1/loss scale), so the norm compared is that of the unscaled gradient.
import { CommandBatch, getPipeline, grid, Params, type Binding } from './runtime.js';

const WG = 256;

const source = /* wgsl */ `
struct P { n: u32, maxNorm: f32, gradScale: f32 }
@group(0) @binding(0) var<storage, read> sumsq: array<f32>;
@group(0) @binding(1) var<storage, read_write> g: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * ${WG}u + lid;
  if (i >= p.n) { return; }
  let norm = sqrt(sumsq[0]) * p.gradScale;
  g[i] = g[i] * min(1.0, p.maxNorm / (norm + 1e-6));
}`;

/** grad[0..n) *= min(1, maxNorm / (gradScale·sqrt(sumsq[0]) + 1e-6)), in place. */
export function clipByNorm(batch: CommandBatch, grad: Binding, sumsq: Binding, n: number, maxNorm: number, gradScale = 1): void {
  if (!(maxNorm > 0)) throw new RangeError(`clipByNorm: maxNorm must be > 0, got ${maxNorm} (n=${n})`);
  if (n === 0) return;
  const pipe = getPipeline(batch.device, 'clip.clipByNorm', () => source);
  batch.dispatch(pipe, [sumsq, grad], new Params().u32(n).f32(maxNorm).f32(gradScale), grid(Math.ceil(n / WG)));
}
