// Gradient-norm clipping without a readback: the clip factor is computed on the GPU from the
// summed squares (kernels/norm2.ts sumSquares over every gradient), as torch's clip_grad_norm_:
// g *= min(1, maxNorm / (‖g‖ + 1e-6)). `gradScale` is the factor the optimizer will apply
// (1/loss scale), so the norm compared is that of the unscaled gradient: a number, or under
// dynamic loss scaling the loss-scale state (kernels/lossscale.ts), whose 1/scale is used and
// whose skip flag leaves the gradient as it is (AdamW will not use it).
import { getPipeline, grid, Params, type Binding, type CommandBatch } from './runtime.js';
import { lossScaleDecl, LOSS_SCALE_WORDS } from './lossscale.js';
import { checkCount, requireBytes, requireDisjoint } from './checks.js';

const WG = 256;

function source(dynamic: boolean): string {
  return /* wgsl */ `
struct P { n: u32, maxNorm: f32, gradScale: f32 }
@group(0) @binding(0) var<storage, read> sumsq: array<f32>;
@group(0) @binding(1) var<storage, read_write> g: array<f32>;
${dynamic ? lossScaleDecl(2) : ''}
@group(0) @binding(${dynamic ? 3 : 2}) var<uniform> p: P;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * ${WG}u + lid;
  if (i >= p.n) { return; }
${dynamic ? '  if (lsSkip()) { return; }\n  let norm = sqrt(sumsq[0]) * lsInvScale();' : '  let norm = sqrt(sumsq[0]) * p.gradScale;'}
  g[i] = g[i] * min(1.0, p.maxNorm / (norm + 1e-6));
}`;
}

/** grad[0..n) *= min(1, maxNorm / (gradScale·sqrt(sumsq[0]) + 1e-6)), in place; gradScale is a
 *  number or the loss-scale state buffer (its 1/scale; nothing happens when its skip flag is set). */
export function clipByNorm(batch: CommandBatch, grad: Binding, sumsq: Binding, n: number, maxNorm: number, gradScale: number | Binding = 1): void {
  const K = 'clipByNorm';
  checkCount(K, 'n', n);
  if (!(maxNorm > 0)) throw new RangeError(`${K}: maxNorm must be > 0, got ${maxNorm} (n=${n})`);
  const dynamic = typeof gradScale !== 'number';
  if (dynamic) requireBytes(K, 'loss-scale state', gradScale, 4 * LOSS_SCALE_WORDS, `n=${n}`);
  if (n === 0) return;
  requireBytes(K, 'grad', grad, 4 * n, `n=${n}`);
  requireBytes(K, 'sumsq', sumsq, 4, `n=${n}`);
  requireDisjoint(K, ['grad', grad], ['sumsq', sumsq], ...(dynamic ? [['loss-scale state', gradScale] as [string, Binding]] : []));
  const pipe = getPipeline(batch.device, `clip.clipByNorm${dynamic ? '_dynamic' : ''}`, () => source(dynamic));
  const params = new Params().u32(n).f32(maxNorm).f32(dynamic ? 1 : gradScale);
  batch.dispatch(pipe, dynamic ? [sumsq, grad, gradScale] : [sumsq, grad], params, grid(Math.ceil(n / WG)));
}
