// Loss scaling for mixed precision: the backward is seeded with the loss scale S (so small
// gradients survive the f16 casts) and AdamW multiplies the gradients by 1/S before clipping and
// the update. Static: S is a number. Dynamic (torch.cuda.amp.GradScaler's rule): S starts at 2^16,
// a step whose gradients overflowed is skipped (weights, AdamW moments and step count unchanged;
// an EMA teacher still follows, as in the reference loop) and halves S; every `growthInterval` consecutive good steps double it. The
// decision is made on the GPU (kernels/lossscale.ts) from the gradients' sum of squares, which
// AdamW.step computes in the pass clipping uses: no readback in the step. read() fetches the state
// when the caller reads anyway (logging, checkpoints).
import { lossScaleUpdate, LossScaleWord, LOSS_SCALE_WORDS } from '../kernels/lossscale.js';
import type { Binding } from '../kernels/runtime.js';
import type { Engine } from './engine.js';
import { untracked, type Tape } from './tape.js';
import type { Tensor } from './tensor.js';

export interface DynamicLossScale {
  /** First scale (torch init_scale); default 2^16. */
  init?: number;
  /** Factor after growthInterval good steps in a row (default 2). */
  growthFactor?: number;
  /** Factor after an overflow (default 0.5). */
  backoffFactor?: number;
  /** Consecutive good steps before growing (default 2000). */
  growthInterval?: number;
}

/** A fixed scale (1 = none), 'dynamic' (the defaults), or the dynamic rule's settings. */
export type LossScaleOption = number | 'dynamic' | DynamicLossScale;

/** What checkpoints and logs record. */
export interface LossScaleState {
  /** The scale the next step's backward is seeded with. */
  scale: number;
  /** Good steps since the scale last changed (torch's growth tracker). */
  goodSteps: number;
  /** Steps skipped because their gradients overflowed, in all. */
  skipped: number;
}

/** Parses a CLI value: 'dynamic', 'dynamic:<first scale>' or a fixed positive number. */
export function parseLossScale(v: string): LossScaleOption {
  if (v === 'dynamic') return v;
  const init = v.startsWith('dynamic:') ? v.slice('dynamic:'.length) : null;
  const n = Number(init ?? v);
  if (!(n > 0 && Number.isFinite(n)) || init === '') throw new Error(`--loss-scale: expected 'dynamic', 'dynamic:<first scale>' or a positive number, got '${v}'`);
  return init === null ? n : { init: n };
}

export class LossScaler {
  readonly dynamic: boolean;
  /** The static scale, or the dynamic rule's first scale. */
  readonly init: number;
  readonly rule: { growth: number; backoff: number; interval: number };
  /** Dynamic: the current scale [1] f32 (the backward's seed). */
  private scaleT: Tensor | null = null;
  /** Dynamic: the LOSS_SCALE_WORDS u32 words of kernels/lossscale.ts. */
  private stateT: Tensor | null = null;

  constructor(
    readonly engine: Engine,
    opt: LossScaleOption = 1,
  ) {
    const d = opt === 'dynamic' ? {} : typeof opt === 'number' ? null : opt;
    this.dynamic = d !== null;
    this.init = typeof opt === 'number' ? opt : (d?.init ?? 2 ** 16);
    if (!(this.init > 0 && Number.isFinite(this.init))) throw new RangeError(`LossScaler: the scale must be a positive finite number, got ${this.init}`);
    this.rule = { growth: d?.growthFactor ?? 2, backoff: d?.backoffFactor ?? 0.5, interval: d?.growthInterval ?? 2000 };
    if (this.dynamic) {
      this.scaleT = untracked(engine, [1], true);
      this.stateT = untracked(engine, [LOSS_SCALE_WORDS], true, 'u32');
      this.write({ scale: this.init, goodSteps: 0, skipped: 0 }, false);
    }
  }

  /** Dynamic: the state buffer AdamW and clipping read (null when static). */
  get state(): GPUBuffer | null {
    return this.stateT?.buffer ?? null;
  }

  /** Backpropagates from the scalar `loss`, seeded with the current scale. */
  backward(tape: Tape, loss: Tensor): void {
    if (this.scaleT) tape.backward(loss, { grad: this.scaleT });
    else tape.backward(loss, { scale: this.init });
  }

  /**
   * Dynamic only (AdamW.step calls it): records the overflow check of this step from `sumsq`
   * (Σ g² of the scaled gradients) and the scale update; `steps` ([1] u32, the optimizer's applied
   * updates) advances unless the step is skipped.
   */
  update(sumsq: Binding, steps: Binding): void {
    if (!this.scaleT || !this.stateT) throw new Error('LossScaler.update: only a dynamic scaler has GPU state');
    lossScaleUpdate(this.engine.batch, { sumsq, scale: this.scaleT.buffer, state: this.stateT.buffer, steps }, this.rule);
  }

  /** The current state (dynamic: read back, submitting the open batch; static: the constant). */
  async read(): Promise<LossScaleState> {
    if (!this.scaleT || !this.stateT) return { scale: this.init, goodSteps: 0, skipped: 0 };
    const [scale, words] = await Promise.all([this.engine.read(this.scaleT), this.engine.readRaw(this.stateT)]);
    const w = new Uint32Array(words);
    return { scale: scale[0], goodSteps: w[LossScaleWord.good], skipped: w[LossScaleWord.skipped] };
  }

  /** Restores a state read before (checkpoints); ignored by a static scaler. */
  load(s: LossScaleState): void {
    if (this.dynamic) this.write(s, true);
  }

  private write(s: LossScaleState, flush: boolean): void {
    const words = new Uint32Array(LOSS_SCALE_WORDS);
    words[LossScaleWord.invScale] = new Uint32Array(Float32Array.of(1 / s.scale).buffer)[0];
    words[LossScaleWord.good] = s.goodSteps;
    words[LossScaleWord.skipped] = s.skipped;
    // Queue writes run before commands still unsubmitted in the batch: submit those first.
    if (flush) this.engine.flush();
    const q = this.engine.device.queue;
    q.writeBuffer(this.scaleT!.buffer, 0, Float32Array.of(s.scale));
    q.writeBuffer(this.stateT!.buffer, 0, words);
  }

  dispose(): void {
    this.scaleT?.dispose();
    this.stateT?.dispose();
    this.scaleT = this.stateT = null;
  }
}
