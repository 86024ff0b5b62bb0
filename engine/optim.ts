// AdamW over a parameter registry, timm's cosine schedule with linear warmup, and optional
// gradient-norm clipping. The step only records kernels into engine.batch (no submit, no
// readback): clipping computes its factor on the GPU, and so does dynamic loss scaling
// (engine/lossscale.ts) its overflow check, from the same sum of squares.
import { adamw, checkAdamW } from '../kernels/adamw.js';
import { clipByNorm } from '../kernels/clip.js';
import { fill } from '../kernels/elementwise.js';
import { sumSquares } from '../kernels/norm2.js';
import type { Engine } from './engine.js';
import type { LossScaler } from './lossscale.js';
import type { Parameter, Registry } from './nn.js';
import { untracked } from './tape.js';
import type { Tensor } from './tensor.js';

export interface AdamWConfig {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Applied to parameters whose weightDecay flag is set (weights); others get 0. */
  weightDecay?: number;
  /** Clip the global gradient norm to this (torch clip_grad_norm_); off when undefined. */
  maxGradNorm?: number;
}

interface Moments {
  m: Tensor;
  v: Tensor;
}

export class AdamW {
  private stepCount = 0;
  /** Dynamic loss scaling: the updates applied, counted on the GPU ([1] u32; made at first use). */
  private gpuSteps: Tensor | null = null;
  private moments = new Map<Parameter, Moments>();
  /** Σ‖g‖² of the last step's gradients (loss-scaled when they are), when clipping or dynamic loss
   *  scaling computed it ([1], on the GPU; read it back when logging). */
  gradNormSq: Tensor | null;
  readonly params: Parameter[];

  constructor(
    readonly engine: Engine,
    params: Registry | Parameter[],
    readonly cfg: AdamWConfig,
  ) {
    this.params = Array.isArray(params) ? params : params.list();
    for (const p of this.params) {
      const m = untracked(engine, p.shape);
      const v = untracked(engine, p.shape);
      fill(engine.batch, m.buffer, m.size, 0);
      fill(engine.batch, v.buffer, v.size, 0);
      this.moments.set(p, { m, v });
    }
    this.gradNormSq = cfg.maxGradNorm !== undefined ? untracked(engine, [1]) : null;
  }

  /**
   * Updates done so far; the next one uses bias correction for steps + 1. Under dynamic loss
   * scaling a skipped step is not an update (as torch, where GradScaler skips optimizer.step()),
   * but the CPU learns of it only from readSteps(): until then this counts every step() call, and
   * the kernels use the GPU's count for the bias correction (so the updates are right either way).
   * Setting it (a resumed checkpoint) sets both counts.
   */
  get steps(): number {
    return this.stepCount;
  }

  set steps(n: number) {
    this.stepCount = n;
    // made again from the new count at the next dynamically scaled step
    this.gpuSteps?.dispose();
    this.gpuSteps = null;
  }

  /** Reads the GPU's count of applied updates into `steps` (submits the open batch) and returns it. */
  async readSteps(): Promise<number> {
    if (this.gpuSteps) this.stepCount = new Uint32Array(await this.engine.readRaw(this.gpuSteps))[0];
    return this.stepCount;
  }

  /**
   * Records one update of every trainable parameter that has a gradient (others are skipped, as
   * torch does for grad None). lr: this step's rate (from a schedule). scale: the loss scale the
   * gradients carry: a number multiplies them first (1/loss scale under mixed precision), a
   * LossScaler removes its scale, and when dynamic checks them for overflow on the GPU (from the
   * sum of squares clipping uses) and skips the whole update if they overflowed.
   */
  step(lr = this.cfg.lr, scale: number | LossScaler = 1): void {
    const { beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.05, maxGradNorm } = this.cfg;
    const batch = this.engine.batch;
    const live = this.params.filter((p) => p.requiresGrad && p.hasGrad && p.grad);
    const scaler = typeof scale === 'number' ? null : scale;
    const dynamic = scaler?.state ? { state: scaler.state, steps: this.gpuStepCount().buffer } : undefined;
    const gradScale = typeof scale === 'number' ? scale : dynamic ? 1 : 1 / scale.init;
    const tensors = live.map((p) => {
      const { m, v } = this.moments.get(p)!;
      return { param: p.value.buffer, grad: p.grad!.buffer, m: m.buffer, v: v.buffer, n: p.value.size, weightDecay: p.weightDecay ? weightDecay : 0 };
    });
    const update = { lr, beta1, beta2, eps, step: this.stepCount + 1, gradScale, lossScale: dynamic };
    // checked before anything changes: a refused step leaves the count (and the scaler's) as it was
    checkAdamW(tensors, update);
    this.stepCount++;
    if (maxGradNorm !== undefined || dynamic) {
      const sq = (this.gradNormSq ??= untracked(this.engine, [1]));
      sumSquares(batch, live.map((p) => ({ x: p.grad!.buffer, n: p.value.size })), sq.buffer);
      if (dynamic) scaler!.update(sq.buffer, dynamic.steps);
      if (maxGradNorm !== undefined) for (const p of live) clipByNorm(batch, p.grad!.buffer, sq.buffer, p.value.size, maxGradNorm, dynamic?.state ?? gradScale);
    }
    adamw(batch, tensors, update);
  }

  /** The GPU's count of applied updates, made from `steps` at first use. */
  private gpuStepCount(): Tensor {
    if (!this.gpuSteps) {
      this.gpuSteps = untracked(this.engine, [1], true, 'u32');
      this.engine.device.queue.writeBuffer(this.gpuSteps.buffer, 0, Uint32Array.of(this.stepCount));
    }
    return this.gpuSteps;
  }

  /** First and second moments of a parameter (for checkpoints). */
  state(p: Parameter): Moments {
    const s = this.moments.get(p);
    if (!s) throw new Error(`AdamW: ${p.name} is not optimised here`);
    return s;
  }

  dispose(): void {
    for (const { m, v } of this.moments.values()) {
      m.dispose();
      v.dispose();
    }
    this.moments.clear();
    this.gradNormSq?.dispose();
    this.gpuSteps?.dispose();
  }
}

export interface CosineSchedule {
  /** Peak learning rate (reached at the end of warmup). */
  lr: number;
  /** Length of the cosine (timm t_initial), in steps; after it the rate stays at minLr. */
  totalSteps: number;
  warmupSteps?: number;
  /** Rate at step 0 of the warmup (timm warmup_lr_init). */
  warmupLr?: number;
  /** Floor (timm lr_min). */
  minLr?: number;
}

/**
 * Learning rate at `step` (0-based), as timm's CosineLRScheduler with one cycle, warmup_prefix
 * False and k_decay 1: linear warmup from warmupLr over warmupSteps, and from step warmupSteps on
 * minLr + ½(lr − minLr)(1 + cos(π·step/totalSteps)); the cosine runs on the undelayed step count,
 * so warmup eats into it as in timm.
 */
export function cosineLr(step: number, s: CosineSchedule): number {
  const { lr, totalSteps, warmupSteps = 0, warmupLr = 0, minLr = 0 } = s;
  if (step < warmupSteps) return warmupLr + (step * (lr - warmupLr)) / warmupSteps;
  if (step >= totalSteps) return minLr;
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos((Math.PI * step) / totalSteps));
}
