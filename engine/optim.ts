// AdamW over a parameter registry, timm's cosine schedule with linear warmup, and optional
// gradient-norm clipping. The step only records kernels into engine.batch (no submit, no
// readback): clipping computes its factor on the GPU.
import { adamw } from '../kernels/adamw.js';
import { clipByNorm } from '../kernels/clip.js';
import { fill } from '../kernels/elementwise.js';
import { sumSquares } from '../kernels/norm2.js';
import type { Engine } from './engine.js';
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
  /** Updates done so far (the next one uses bias correction for steps + 1). */
  steps = 0;
  private moments = new Map<Parameter, Moments>();
  /** Σ‖g‖² of the last clipped step ([1], on the GPU; read it back when logging). */
  readonly gradNormSq: Tensor | null;
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
   * Records one update of every trainable parameter that has a gradient (others are skipped, as
   * torch does for grad None). lr: this step's rate (from a schedule); gradScale multiplies the
   * gradients first (1/loss scale under mixed precision).
   */
  step(lr = this.cfg.lr, gradScale = 1): void {
    const { beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.05, maxGradNorm } = this.cfg;
    const batch = this.engine.batch;
    const live = this.params.filter((p) => p.requiresGrad && p.hasGrad && p.grad);
    this.steps++;
    if (maxGradNorm !== undefined && live.length) {
      const sq = this.gradNormSq!;
      live.forEach((p, i) => sumSquares(batch, p.grad!.buffer, sq.buffer, p.value.size, i > 0));
      for (const p of live) clipByNorm(batch, p.grad!.buffer, sq.buffer, p.value.size, maxGradNorm, gradScale);
    }
    for (const p of live) {
      const { m, v } = this.moments.get(p)!;
      adamw(batch, { param: p.value.buffer, grad: p.grad!.buffer, m: m.buffer, v: v.buffer }, {
        n: p.value.size,
        lr,
        beta1,
        beta2,
        eps,
        weightDecay: p.weightDecay ? weightDecay : 0,
        step: this.steps,
        gradScale,
      });
    }
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
