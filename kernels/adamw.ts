// Fused AdamW step with PyTorch's torch.optim.AdamW semantics over a list of parameter tensors,
// several per dispatch (as torch's fused/foreach AdamW; a base model has ~200 tensors):
//   g = gradScale·grad
//   p ← p·(1 − lr·wd)                      (decoupled weight decay, wd per tensor)
//   m ← β1·m + (1 − β1)·g ;  v ← β2·v + (1 − β2)·g²
//   p ← p − (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)
// The step-dependent scalars are computed here in float64 and passed as f32 uniforms, so the
// shader does no pow(). Reads p, g, m, v and writes p, m, v: 28 bytes per parameter.
// Under dynamic loss scaling (kernels/lossscale.ts) the kernel also reads the loss-scale state and
// the GPU's count of applied updates: it changes nothing when the step overflowed, takes
// g = grad/scale, and when that count is not the `step` the launcher assumed (a step skipped since
// the CPU last read the count) computes the bias corrections for the GPU's count itself (f32 pow).
import { checkCount, linearIndex, MAIN_ARGS, requireBindable, requireBytes, requireDisjoint, segmentBranches, segmentFields, segmentGroups, segmentParams, storeFn, unitType } from './checks.js';
import { lossScaleDecl, LOSS_SCALE_WORDS } from './lossscale.js';
import { getPipeline, grid, Params, type Binding, type CommandBatch } from './runtime.js';

const WG = 256;

/** Tensor k: bindings 4k..4k+3 (param, grad, m, v); units e(k−1) ≤ i < ek of the dispatch are its. */
function adamwSource(V: 1 | 4, dynamic: boolean, tensors: number): string {
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
  let gs = lsInvScale();`
    : `  let stepSize = p.stepSize;
  let invSqrtBc2 = p.invSqrtBc2;
  let gs = p.gradScale;`;
  const decls: string[] = [], puts: string[] = [];
  for (let k = 0; k < tensors; k++) {
    const [P, G, M, Vv] = [`param${k}`, `grad${k}`, `m${k}`, `v${k}`];
    decls.push(
      `@group(0) @binding(${4 * k}) var<storage, read_write> ${P}: array<${T}>;`,
      `@group(0) @binding(${4 * k + 1}) var<storage, read> ${G}: array<${T}>;`,
      `@group(0) @binding(${4 * k + 2}) var<storage, read_write> ${M}: array<${T}>;`,
      `@group(0) @binding(${4 * k + 3}) var<storage, read_write> ${Vv}: array<${T}>;`,
    );
    puts.push(storeFn(P, V, `p.n${k}`), storeFn(M, V, `p.n${k}`), storeFn(Vv, V, `p.n${k}`));
  }
  const update = (k: number) => `let g = gs * grad${k}[j];
    let m1 = p.beta1 * m${k}[j] + p.oneMinusBeta1 * g;
    let v1 = p.beta2 * v${k}[j] + p.oneMinusBeta2 * (g * g);
    put_m${k}(j, m1);
    put_v${k}(j, v1);
    put_param${k}(j, param${k}[j] * p.decay${k} - stepSize * (m1 / (sqrt(v1) * invSqrtBc2 + p.eps)));
    return;`;
  return /* wgsl */ `
struct P { beta1: f32, oneMinusBeta1: f32, beta2: f32, oneMinusBeta2: f32, stepSize: f32, invSqrtBc2: f32,
           eps: f32, gradScale: f32, step: u32, lr: f32, ${segmentFields(tensors, (k) => `, decay${k}: f32`)} }
${decls.join('\n')}
${dynamic ? `${lossScaleDecl(4 * tensors)}\n@group(0) @binding(${4 * tensors + 1}) var<storage, read> steps: array<u32>;` : ''}
@group(0) @binding(${4 * tensors + (dynamic ? 2 : 0)}) var<uniform> p: P;
${puts.join('\n')}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  let i = ${linearIndex(WG)};
  if (i >= p.e${tensors - 1}) { return; }
${head}
  ${segmentBranches(tensors, update)}
}`;
}

/** One parameter tensor of n f32 and its gradient and moments; the four must not overlap. */
export interface AdamWTensor {
  param: Binding;
  grad: Binding;
  m: Binding;
  v: Binding;
  n: number;
  /** Decoupled weight decay of this tensor (0 for biases and norms). */
  weightDecay: number;
}

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
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

/** Tensors per dispatch at most, within the device's storage buffers per stage. */
const MAX_TENSORS = 8;
const ROLES = ['param', 'grad', 'm', 'v'] as const;

/** Throws what adamw would throw for these arguments, recording nothing (a caller can check before
 *  it changes any state of its own). */
export function checkAdamW(tensors: AdamWTensor[], o: AdamWOptions): void {
  const K = 'adamw';
  const { lr, beta1, beta2, eps, step, gradScale = 1, lossScale } = o;
  if (!Number.isInteger(step) || step < 1) throw new RangeError(`${K}: step must be an integer ≥ 1, got ${step}`);
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) throw new RangeError(`${K}: betas must be in [0, 1), got (${beta1}, ${beta2})`);
  for (const [k, val] of Object.entries({ lr, eps, gradScale }))
    if (!Number.isFinite(val)) throw new RangeError(`${K}: ${k} must be finite, got ${val}`);
  if (lossScale) {
    if (gradScale !== 1) throw new RangeError(`${K}: gradScale ${gradScale} with dynamic loss scaling (the state holds the scale)`);
    requireBytes(K, 'lossScale.state', lossScale.state, 4 * LOSS_SCALE_WORDS, 'the loss-scale state');
    requireBytes(K, 'lossScale.steps', lossScale.steps, 4, 'the step count');
  }
  tensors.forEach((t, k) => {
    const at = `tensor ${k}, n=${t.n}`;
    checkCount(K, `tensor ${k} n`, t.n);
    if (!Number.isFinite(t.weightDecay)) throw new RangeError(`${K}: weightDecay must be finite, got ${t.weightDecay} (${at})`);
    for (const r of ROLES) requireBytes(K, `tensor ${k} ${r}`, t[r], 4 * t.n, at);
    if (lossScale) for (const r of ['param', 'm', 'v'] as const) requireDisjoint(K, [`tensor ${k} ${r}`, t[r]], ['lossScale.state', lossScale.state], ['lossScale.steps', lossScale.steps]);
  });
}

/** One AdamW update of every tensor in place (param, m, v). */
export function adamw(batch: CommandBatch, tensors: AdamWTensor[], o: AdamWOptions): void {
  const K = 'adamw';
  checkAdamW(tensors, o);
  const { lr, beta1, beta2, eps, step, gradScale = 1, lossScale } = o;
  const extra = lossScale ? [lossScale.state, lossScale.steps] : [];
  const per = Math.max(1, Math.min(MAX_TENSORS, Math.floor((batch.device.limits.maxStorageBuffersPerShaderStage - extra.length) / 4)));
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  for (const g of segmentGroups(tensors, per, (t) => ROLES.map((r) => t[r]))) {
    // param, m and v are written, the gradients only read (the loss-scale bindings are checked above)
    const role = (pick: (r: (typeof ROLES)[number]) => boolean) =>
      g.items.flatMap((t) => ROLES.filter(pick).map((r): [string, Binding] => [`tensor ${t.k} ${r}`, t[r]]));
    requireBindable(K, role((r) => r !== 'grad'), role((r) => r === 'grad'));
    const params = new Params()
      .f32(beta1).f32(1 - beta1).f32(beta2).f32(1 - beta2)
      .f32(lr / bc1).f32(1 / Math.sqrt(bc2)).f32(eps).f32(gradScale).u32(step).f32(lr);
    const units = segmentParams(params, g, (t) => params.f32(1 - lr * t.weightDecay));
    const dyn = lossScale !== undefined;
    const pipe = getPipeline(batch.device, `adamw.adamw_v${g.V}${dyn ? '_dynamic' : ''}_x${g.items.length}`, () => adamwSource(g.V, dyn, g.items.length));
    batch.dispatch(pipe, [...g.items.flatMap((t) => ROLES.map((r) => t[r])), ...extra], params, grid(Math.ceil(units / WG)));
  }
}
