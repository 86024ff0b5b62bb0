// Dynamic loss scaling without a readback (torch.cuda.amp.GradScaler's rule, decided on the GPU).
// The gradients were computed from loss·scale; their sum of squares (kernels/norm2.ts, the same
// pass gradient clipping uses) is non-finite exactly when some gradient overflowed (or the sum
// itself passed f32's range, ‖g‖ > 1.8e19, counted as an overflow too). One thread then:
//   state.invScale ← 1/scale            (what clipping and AdamW multiply the gradients by)
//   overflow: state.skip ← 1, scale ← scale·backoff, good ← 0, skipped += 1
//   finite:   state.skip ← 0, steps += 1, good += 1; at good = interval: scale ← scale·growth
//             (kept when that is not finite) and good ← 0
// AdamW and clipping read state.skip and leave everything unchanged when it is set.
// Finiteness is tested on the bits: WGSL lets an implementation assume no Inf/NaN in arithmetic.
import { requireBindable, requireBytes } from './checks.js';
import { getPipeline, Params, type Binding, type CommandBatch } from './runtime.js';

/** Word offsets in the u32 state buffer (LOSS_SCALE_WORDS words). */
export const LossScaleWord = { invScale: 0, skip: 1, good: 2, skipped: 3 } as const;
export const LOSS_SCALE_WORDS = 4;

/**
 * WGSL for a kernel that reads the state: a read-only binding `ls` at @binding(`binding`) and
 * `lsSkip()` (this step overflowed: change nothing) and `lsInvScale()` (1/scale of this step).
 */
export function lossScaleDecl(binding: number): string {
  return /* wgsl */ `
@group(0) @binding(${binding}) var<storage, read> ls: array<u32>;
fn lsSkip() -> bool { return ls[${LossScaleWord.skip}u] != 0u; }
fn lsInvScale() -> f32 { return bitcast<f32>(ls[${LossScaleWord.invScale}u]); }`;
}

const source = /* wgsl */ `
struct P { growth: f32, backoff: f32, interval: u32 }
@group(0) @binding(0) var<storage, read> sumsq: array<f32>;
@group(0) @binding(1) var<storage, read_write> scale: array<f32>;
@group(0) @binding(2) var<storage, read_write> st: array<u32>;
@group(0) @binding(3) var<storage, read_write> steps: array<u32>;
@group(0) @binding(4) var<uniform> p: P;
fn finite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; }
@compute @workgroup_size(1)
fn main() {
  let s = scale[0];
  st[${LossScaleWord.invScale}u] = bitcast<u32>(1.0 / s);
  if (!finite(sumsq[0])) {
    st[${LossScaleWord.skip}u] = 1u;
    st[${LossScaleWord.good}u] = 0u;
    st[${LossScaleWord.skipped}u] = st[${LossScaleWord.skipped}u] + 1u;
    scale[0] = s * p.backoff;
    return;
  }
  st[${LossScaleWord.skip}u] = 0u;
  steps[0] = steps[0] + 1u;
  let good = st[${LossScaleWord.good}u] + 1u;
  if (good >= p.interval) {
    let grown = s * p.growth;
    if (finite(grown)) { scale[0] = grown; }
    st[${LossScaleWord.good}u] = 0u;
  } else {
    st[${LossScaleWord.good}u] = good;
  }
}`;

export interface LossScaleBuffers {
  /** Σ g² of this step's (scaled) gradients, [1] f32. */
  sumsq: Binding;
  /** The loss scale, [1] f32: this step's on entry, the next step's on exit. */
  scale: Binding;
  /** LOSS_SCALE_WORDS u32 words (LossScaleWord). */
  state: Binding;
  /** Optimizer updates applied, [1] u32 (AdamW's bias-correction step; +1 unless skipped). */
  steps: Binding;
}

export interface LossScaleRule {
  /** torch growth_factor (default 2). */
  growth?: number;
  /** torch backoff_factor (default 0.5). */
  backoff?: number;
  /** torch growth_interval: consecutive finite steps before growing (default 2000). */
  interval?: number;
}

/** Records the overflow check and the scale update of one step (one thread; see the file head). */
export function lossScaleUpdate(batch: CommandBatch, b: LossScaleBuffers, rule: LossScaleRule = {}): void {
  const K = 'lossScaleUpdate';
  const { growth = 2, backoff = 0.5, interval = 2000 } = rule;
  if (!(growth >= 1 && Number.isFinite(growth))) throw new RangeError(`${K}: growth must be finite and ≥ 1, got ${growth}`);
  if (!(backoff > 0 && backoff < 1)) throw new RangeError(`${K}: backoff must be in (0, 1), got ${backoff}`);
  if (!Number.isInteger(interval) || interval < 1) throw new RangeError(`${K}: interval must be an integer ≥ 1, got ${interval}`);
  requireBytes(K, 'sumsq', b.sumsq, 4, 'n=1');
  requireBytes(K, 'scale', b.scale, 4, 'n=1');
  requireBytes(K, 'state', b.state, 4 * LOSS_SCALE_WORDS, `n=${LOSS_SCALE_WORDS}`);
  requireBytes(K, 'steps', b.steps, 4, 'n=1');
  requireBindable(K, [['scale', b.scale], ['state', b.state], ['steps', b.steps]], [['sumsq', b.sumsq]]);
  const pipe = getPipeline(batch.device, 'lossscale.update', () => source);
  batch.dispatch(pipe, [b.sumsq, b.scale, b.state, b.steps], new Params().f32(growth).f32(backoff).u32(interval), [1]);
}
