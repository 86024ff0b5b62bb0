// Fused AdamW step with PyTorch's torch.optim.AdamW semantics, one dispatch per parameter tensor:
//   g = gradScale·grad
//   p ← p·(1 − lr·wd)                      (decoupled weight decay)
//   m ← β1·m + (1 − β1)·g ;  v ← β2·v + (1 − β2)·g²
//   p ← p − (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)
// The step-dependent scalars are computed here in float64 and passed as f32 uniforms, so the
// shader does no pow(). Reads p, g, m, v and writes p, m, v: 28 bytes per parameter.
// Under dynamic loss scaling (kernels/lossscale.ts) the kernel also reads the loss-scale state and
// the GPU's count of applied updates: it changes nothing when the step overflowed, takes
// g = grad/scale, and when that count is not the `step` the launcher assumed (a step skipped since
// the CPU last read the count) computes the bias corrections for the GPU's count itself (f32 pow).
import { aliasing, checkCount, linearIndex, MAIN_ARGS, requireBytes, requireDisjoint, storeFn, unitType, vecWidth } from './checks.js';
import { lossScaleDecl, LOSS_SCALE_WORDS } from './lossscale.js';
import { getPipeline, grid, Params, type Binding, type CommandBatch } from './runtime.js';

const WG = 256;

function adamwSource(V: 1 | 4, dynamic: boolean): string {
  const T = unitType(V);
  const head = dynamic
    ? `  if (lsSkip()) { return; }
  var stepSize = p.stepSize;
  var invSqrtBc2 = p.invSqrtBc2;
  if (steps[0] != p.step) {
    let t = f32(steps[0]);
    stepSize = p.lr / (1.0 - pow(p.beta1, t));
    invSqrtBc2 = inverseSqrt(1.0 - pow(p.beta2, t));
  }
  let g = lsInvScale() * grad[i];`
    : `  let stepSize = p.stepSize;
  let invSqrtBc2 = p.invSqrtBc2;
  let g = p.gradScale * grad[i];`;
  return /* wgsl */ `
struct P { n: u32, units: u32, beta1: f32, oneMinusBeta1: f32, beta2: f32, oneMinusBeta2: f32,
           stepSize: f32, invSqrtBc2: f32, eps: f32, decay: f32, gradScale: f32, step: u32, lr: f32 }
@group(0) @binding(0) var<storage, read_write> param: array<${T}>;
@group(0) @binding(1) var<storage, read> grad: array<${T}>;
@group(0) @binding(2) var<storage, read_write> m: array<${T}>;
@group(0) @binding(3) var<storage, read_write> v: array<${T}>;
${dynamic ? `${lossScaleDecl(4)}\n@group(0) @binding(5) var<storage, read> steps: array<u32>;` : ''}
@group(0) @binding(${dynamic ? 6 : 4}) var<uniform> p: P;
${storeFn('param', V)}
${storeFn('m', V)}
${storeFn('v', V)}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  let i = ${linearIndex(WG)};
  if (i >= p.units) { return; }
${head}
  let m1 = p.beta1 * m[i] + p.oneMinusBeta1 * g;
  let v1 = p.beta2 * v[i] + p.oneMinusBeta2 * (g * g);
  let denom = sqrt(v1) * invSqrtBc2 + p.eps;
  put_m(i, m1);
  put_v(i, v1);
  put_param(i, param[i] * p.decay - stepSize * (m1 / denom));
}`;
}

export interface AdamWBuffers {
  param: Binding;
  grad: Binding;
  m: Binding;
  v: Binding;
}

export interface AdamWOptions {
  n: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** The step number t ≥ 1 of this update (bias correction). */
  step: number;
  /** Multiplies the gradient before anything else (loss-scale removal, clipping); default 1. */
  gradScale?: number;
  /**
   * Dynamic loss scaling: the loss-scale state (kernels/lossscale.ts; takes the place of gradScale)
   * and the count of applied updates [1] u32, which lossScaleUpdate has already advanced for this
   * step. `step` is then the count the caller expects; when the GPU's differs, it wins.
   */
  lossScale?: { state: Binding; steps: Binding };
}

/** One AdamW update of n f32 parameters in place (param, m, v); the four buffers must not overlap. */
export function adamw(batch: CommandBatch, bufs: AdamWBuffers, o: AdamWOptions): void {
  const K = 'adamw';
  const { n, lr, beta1, beta2, eps, weightDecay, step, gradScale = 1, lossScale } = o;
  checkCount(K, 'n', n);
  if (!Number.isInteger(step) || step < 1) throw new RangeError(`${K}: step must be an integer ≥ 1, got ${step} (n=${n})`);
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) throw new RangeError(`${K}: betas must be in [0, 1), got (${beta1}, ${beta2}) (n=${n})`);
  for (const [k, val] of Object.entries({ lr, eps, weightDecay, gradScale }))
    if (!Number.isFinite(val)) throw new RangeError(`${K}: ${k} must be finite, got ${val} (n=${n})`);
  const names = Object.keys(bufs) as (keyof AdamWBuffers)[];
  for (const k of ['param', 'grad', 'm', 'v'] as const) requireBytes(K, k, bufs[k], 4 * n, `n=${n}`);
  for (let a = 0; a < names.length; a++)
    for (let b = a + 1; b < names.length; b++)
      if (aliasing(bufs[names[a]], bufs[names[b]])) throw new Error(`${K}: ${names[a]} and ${names[b]} share memory (n=${n})`);
  if (lossScale) {
    if (gradScale !== 1) throw new RangeError(`${K}: gradScale ${gradScale} with dynamic loss scaling (the state holds the scale) (n=${n})`);
    requireBytes(K, 'lossScale.state', lossScale.state, 4 * LOSS_SCALE_WORDS, `n=${n}`);
    requireBytes(K, 'lossScale.steps', lossScale.steps, 4, `n=${n}`);
    for (const k of ['param', 'm', 'v'] as const) requireDisjoint(K, [k, bufs[k]], ['lossScale.state', lossScale.state], ['lossScale.steps', lossScale.steps]);
  }
  if (n === 0) return;
  const V = vecWidth(n, bufs.param, bufs.grad, bufs.m, bufs.v);
  const units = Math.ceil(n / V);
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  const params = new Params()
    .u32(n)
    .u32(units)
    .f32(beta1)
    .f32(1 - beta1)
    .f32(beta2)
    .f32(1 - beta2)
    .f32(lr / bc1)
    .f32(1 / Math.sqrt(bc2))
    .f32(eps)
    .f32(1 - lr * weightDecay)
    .f32(gradScale)
    .u32(step)
    .f32(lr);
  const dyn = lossScale !== undefined;
  const pipe = getPipeline(batch.device, `adamw.adamw_v${V}${dyn ? '_dynamic' : ''}`, () => adamwSource(V, dyn));
  const extra = lossScale ? [lossScale.state, lossScale.steps] : [];
  batch.dispatch(pipe, [bufs.param, bufs.grad, bufs.m, bufs.v, ...extra], params, grid(Math.ceil(units / WG)));
}
