// ECG-JEPA pretraining on the engine: student encoder (visible columns), EMA teacher (all tokens,
// no gradients, its output put through one more non-affine LayerNorm), predictor, smooth-L1 at the
// masked tokens. One training step = mask upload, forward, backward, AdamW, EMA update, all
// recorded into engine.batch and submitted once; the loss is read back only when asked. Mixed
// precision (f16 matmul inputs) goes with a loss scale, static or dynamic (engine/lossscale.ts).
import type { Engine } from '../engine/engine.js';
import { LossScaler, type LossScaleOption, type LossScaleState } from '../engine/lossscale.js';
import type { Precision } from '../engine/ops/linear.js';
import * as ops from '../engine/ops/index.js';
import { AdamW, cosineLr } from '../engine/optim.js';
import { Rng, type UniformSource } from '../engine/random.js';
import { Tape } from '../engine/tape.js';
import type { Tensor } from '../engine/tensor.js';
import { emaUpdate } from '../kernels/ema.js';
import type { Checkpoint } from './checkpoint.js';
import { configDifferences, validateConfig, type EcgJepaConfig } from './config.js';
import { copyParams, Encoder, loadParams, readParams, uploadMask, type MaskIndices } from './encoder.js';
import { drawMask, maskSlice, type BatchMask } from './masking.js';
import { Predictor } from './predictor.js';
import { asFloat32, type StTensor } from './safetensors.js';

/** Checkpoint key prefixes: the student and predictor keep their official names (so the student
 *  alone is the official `encoder` state_dict minus pos_embed); the rest is prefixed. */
export const TEACHER_PREFIX = 'teacher.';
export const ADAM_M_PREFIX = 'optim.m.';
export const ADAM_V_PREFIX = 'optim.v.';

/** What an encoder-only checkpoint is, by its state.extra.kind (for messages). */
export function encoderOnlyWhat(kind: unknown): string {
  return kind === 'torch-import' ? 'an encoder imported from PyTorch weights (import-torch)'
    : kind === 'finetune' ? 'a fine-tuned encoder'
    : kind === 'encoder-export' ? 'an exported encoder (export)'
    : 'an encoder without training state';
}

export interface Schedules {
  totalSteps: number;
  lr(step: number): number;
  /** EMA momentum for the update after step `step` (0-based): m0 + step·(m1 − m0)/totalSteps. */
  momentum(step: number): number;
}

/** Per-iteration schedules of the official script: cosine LR with warm-up, linear EMA momentum. */
export function schedules(cfg: EcgJepaConfig, itersPerEpoch: number): Schedules {
  if (!Number.isInteger(itersPerEpoch) || itersPerEpoch <= 0) throw new RangeError(`schedules: itersPerEpoch ${itersPerEpoch} must be a positive integer`);
  const o = cfg.optim;
  const totalSteps = itersPerEpoch * o.epochs;
  const warmupSteps = Math.round(o.warmupEpochs * itersPerEpoch);
  const [m0, m1] = o.momentum;
  return {
    totalSteps,
    lr: (s) => cosineLr(s, { lr: o.lr, totalSteps, warmupSteps, warmupLr: o.warmupLr, minLr: o.minLr }),
    momentum: (s) => Math.min(m1, m0 + (s * (m1 - m0)) / totalSteps),
  };
}

export interface JepaOptions {
  /** Seeds weight init (student; the teacher starts as its copy; predictor). */
  seed?: number;
  /** Iterations per epoch, for the schedules (default 1). */
  itersPerEpoch?: number;
  /** Matmul input precision of student, teacher and predictor (default f32; f16 needs shader-f16). */
  precision?: Precision;
  /** Loss scale: a number (static; default 1), or 'dynamic' / its settings (skips the AdamW update of overflowed steps). */
  lossScale?: LossScaleOption;
  /** Recompute the student's and the predictor's block activations in the backward instead of
   *  holding them from the forward (engine/recompute.ts): the same step, less memory, one more
   *  forward of those blocks. Settable later (`recompute`). */
  recompute?: boolean;
}

/** A batch's data [B, C, L] uploaded as its micro-batches of `micro` ECGs (one tensor when micro = B),
 *  for recordStep; each is its own upload, so only the part in use need be held in a layer's buffers. */
export function uploadMicroBatches(engine: Engine, data: Float32Array, [B, C, L]: readonly [number, number, number], micro = B): Tensor[] {
  if (!Number.isInteger(micro) || micro < 1 || B % micro) throw new RangeError(`uploadMicroBatches: ${micro} does not divide the batch, ${B}`);
  const per = micro * C * L;
  return Array.from({ length: B / micro }, (_, i) => engine.upload(data.subarray(i * per, (i + 1) * per), [micro, C, L]));
}

/**
 * Drop-path's draws for the parts (micro-batches of mb) of a batch of B: each drop-path call, at its
 * first use, draws the whole batch's B uniforms from rng, and part p reads samples p·mb .. p·mb + mb − 1
 * of them. Part 0 makes the calls in the order the whole batch's forward makes them, so rng gives
 * the same draws to the same samples and ends in the same state. (A call draws one uniform per
 * sample, consecutively: ops.dropPath.)
 */
function partDraws(rng: Rng, B: number, mb: number): (part: number) => UniformSource {
  const calls: Float64Array[] = [];
  return (part) => {
    let i = 0;
    return {
      next() {
        const call = Math.floor(i / mb), sample = part * mb + (i % mb);
        i++;
        while (calls.length <= call) calls.push(Float64Array.from({ length: B }, () => rng.next()));
        return calls[call][sample];
      },
    };
  };
}

export class EcgJepa {
  readonly cfg: EcgJepaConfig;
  readonly student: Encoder;
  readonly teacher: Encoder;
  readonly predictor: Predictor;
  readonly opt: AdamW;
  readonly scaler: LossScaler;
  readonly tape: Tape;
  readonly sched: Schedules;
  /** Masks and drop-path draw from here; save its state() in checkpoints. */
  rng: Rng;
  /** Optimizer steps done. */
  step = 0;
  /** JepaOptions.recompute. */
  recompute: boolean;

  constructor(
    readonly engine: Engine,
    cfg: EcgJepaConfig,
    opts: JepaOptions = {},
  ) {
    this.cfg = validateConfig(cfg);
    const init = new Rng(opts.seed ?? 0);
    const precision = opts.precision ?? 'f32';
    this.student = new Encoder(engine, cfg, init, precision);
    // The teacher's own init draws are overwritten by the copy below (deepcopy in the official code).
    this.teacher = new Encoder(engine, cfg, new Rng(1), precision);
    for (const p of this.teacher.reg.list()) p.requiresGrad = false;
    copyParams(this.teacher.reg, this.student.reg);
    this.predictor = new Predictor(engine, cfg, init, precision);
    const o = cfg.optim;
    this.opt = new AdamW(engine, [...this.student.reg.list(), ...this.predictor.reg.list()], { lr: o.lr, beta1: o.betas[0], beta2: o.betas[1], eps: o.eps, weightDecay: o.weightDecay });
    this.scaler = new LossScaler(engine, opts.lossScale ?? 1);
    this.tape = new Tape(engine);
    this.sched = schedules(cfg, opts.itersPerEpoch ?? 1);
    this.rng = new Rng((opts.seed ?? 0) + 0x5eed);
    this.recompute = opts.recompute ?? false;
  }

  /** The teacher's output [B, T, D] on every token, and the target of each (its non-affine LN). Call under noGrad. */
  teacherTokens(x: Tensor): { out: Tensor; target: Tensor } {
    const out = this.teacher.forward(this.tape, x);
    return { out, target: ops.layerNorm(this.tape, out, null, null, this.cfg.lnEps) };
  }

  /** Teacher targets [B, C·M, D]: all tokens through the teacher, non-affine LN, masked rows. No gradients. */
  targets(x: Tensor, m: MaskIndices): Tensor {
    const g = this.tape;
    // its own scope: the teacher's outputs on every token are freed before the student runs
    return g.noGrad(() => this.engine.scope(() => {
      const n = this.teacherTokens(x).target;
      const { batch: B, leads: C, numMasked: M } = m.mask;
      return ops.gatherRows(g, n, m.maskedRows, [B, C * M, this.cfg.encoder.dim]);
    }));
  }

  /** Student + predictor on the visible columns: predictions [B, C·M, D]; drop-path draws from `rng`. */
  predict(x: Tensor, m: MaskIndices, training: boolean, rng: UniformSource = this.rng): Tensor {
    const o = { training, rng, recompute: this.recompute };
    const ctx = this.student.forward(this.tape, x, { ...o, mask: m });
    return this.predictor.forward(this.tape, ctx, m, o);
  }

  /** The JEPA loss [1] for x [B, C, L] and a mask (recorded on the tape when it records). */
  loss(x: Tensor, mask: BatchMask, training = true, rng: UniformSource = this.rng): Tensor {
    const m = uploadMask(this.engine, mask);
    const target = this.targets(x, m);
    return ops.smoothL1(this.tape, this.predict(x, m, training, rng), target);
  }

  /** Draws the next mask with the configured rule from this.rng. */
  nextMask(batch: number): BatchMask {
    return drawMask(this.rng, this.cfg.mask, batch, this.cfg.leads.length, this.cfg.patches);
  }

  /**
   * Records one training step (forward, backward, AdamW at this step's LR, EMA at this step's
   * momentum) without submitting. Returns the loss tensor [1]; the caller disposes it. Under
   * dynamic loss scaling a step whose gradients overflowed changes neither the weights, the AdamW
   * state nor the teacher (decided on the GPU), but still counts in `step`: the schedules, masks
   * and data order move on as without it.
   * `x` is the batch [B, C, L], or its micro-batches (equal sizes, in order): each goes forward and
   * back in turn, their gradients adding up, so only one micro-batch's activations are held at a
   * time. The mask is the whole batch's (drawn for it, or given), and so are drop-path's draws
   * (partDraws), the loss the mean of theirs: the same step as the whole batch's up to the order of
   * the sums.
   */
  recordStep(x: Tensor | readonly Tensor[], mask?: BatchMask, opts: { lr?: number; momentum?: number } = {}): Tensor {
    const parts = Array.isArray(x) ? (x as readonly Tensor[]) : [x as Tensor];
    const mb = parts[0]?.shape[0];
    if (!parts.length || parts.some((t) => t.shape.length !== 3 || t.shape[0] !== mb || t.shape[1] !== parts[0].shape[1] || t.shape[2] !== parts[0].shape[2]))
      throw new RangeError(`EcgJepa.recordStep: micro-batches must share one shape [b, C, L], got ${parts.map((t) => `[${t.shape}]`).join(', ') || 'none'}`);
    const B = mb * parts.length;
    const mk = mask ?? this.nextMask(B);
    if (mk.batch !== B) throw new RangeError(`EcgJepa.recordStep: a mask of ${mk.batch} samples for a batch of ${B}`);
    const lr = opts.lr ?? this.sched.lr(this.step);
    const momentum = opts.momentum ?? this.sched.momentum(this.step);
    this.student.reg.zeroGrad();
    this.predictor.reg.zeroGrad();
    const g = this.tape;
    const draws = parts.length === 1 ? null : partDraws(this.rng, B, mb);
    let total: Tensor | null = null;
    try {
      for (let i = 0; i < parts.length; i++) {
        let loss: Tensor;
        try {
          const mi = parts.length === 1 ? mk : maskSlice(mk, i * mb, mb);
          // each micro-batch's mean, weighted 1/k: the gradients add up to those of the batch's mean
          loss = this.engine.scope(() => (draws ? ops.scale(g, this.loss(parts[i], mi, true, draws(i)), 1 / parts.length) : this.loss(parts[i], mi, true)));
        } catch (e) {
          g.clear();
          throw e;
        }
        const sum: Tensor | null = total;
        try {
          this.scaler.backward(g, loss);
          total = sum ? g.noGrad(() => ops.add(g, sum, loss)) : loss;
        } finally {
          if (sum) [sum, loss].forEach((t) => t.dispose());
          else if (total !== loss) loss.dispose();
        }
      }
      this.opt.step(lr, this.scaler);
      // The EMA runs on a step the scaler skipped too, as in the reference loop (scaler.step skips only
      // optimizer.step; the momentum update after it is unconditional).
      emaUpdate(this.engine.batch, this.teacher.reg.list().map((t) => ({ teacher: t.value.buffer, student: this.student.reg.get(t.name).value.buffer, n: t.value.size })), momentum);
    } catch (e) {
      (total as Tensor | null)?.dispose(); // the caller never gets it
      throw e;
    }
    this.step++;
    return total!;
  }

  /** One training step (of a batch or its micro-batches, see recordStep), submitted once. Returns
   *  the loss tensor [1] (read it when logging). */
  trainStep(x: Tensor | readonly Tensor[], mask?: BatchMask, opts: { lr?: number; momentum?: number } = {}): Tensor {
    const loss = this.recordStep(x, mask, opts);
    this.engine.flush();
    return loss;
  }

  /**
   * The loss scale, good steps and skipped steps so far, and AdamW's applied-update count brought
   * up to date (`opt.steps`): a readback, for when the caller reads anyway (logging, checkpoints).
   */
  async lossScaleState(): Promise<LossScaleState> {
    const [s] = await Promise.all([this.scaler.read(), this.opt.readSteps()]);
    return s;
  }

  /** Everything needed to resume, read back from the GPU (submits the open batch). */
  async toCheckpoint(extra?: Record<string, unknown>): Promise<Checkpoint> {
    const tensors = new Map<string, StTensor>();
    const put = (name: string, shape: readonly number[], data: Float32Array) => tensors.set(name, { dtype: 'F32', shape: [...shape], data });
    for (const p of [...this.student.reg.list(), ...this.predictor.reg.list()]) {
      put(p.name, p.shape, await this.engine.read(p.value));
      const { m, v } = this.opt.state(p);
      put(ADAM_M_PREFIX + p.name, p.shape, await this.engine.read(m));
      put(ADAM_V_PREFIX + p.name, p.shape, await this.engine.read(v));
    }
    for (const p of this.teacher.reg.list()) put(TEACHER_PREFIX + p.name, p.shape, await this.engine.read(p.value));
    const lossScale = { ...(await this.lossScaleState()), dynamic: this.scaler.dynamic };
    return { config: this.cfg, state: { step: this.step, rng: this.rng.state(), extra: { adamSteps: this.opt.steps, lossScale, ...extra } }, tensors };
  }

  /** Restores weights, teacher, optimizer moments, step and PRNG; refuses a checkpoint of another config. */
  fromCheckpoint(ck: Checkpoint): void {
    const diffs = configDifferences(ck.config, this.cfg);
    if (diffs.length) throw new Error(`EcgJepa: checkpoint does not fit this model:\n  ${diffs.join('\n  ')}`);
    // Encoder-only checkpoints (import-torch, finetune, export) have no teacher, predictor or AdamW moments.
    if (![...ck.tensors.keys()].some((k) => k.startsWith(TEACHER_PREFIX))) {
      throw new Error(`EcgJepa: the checkpoint is ${encoderOnlyWhat(ck.state.extra?.kind)}: no EMA teacher, predictor or optimizer state, so pretraining cannot resume from it (embed, probe and finetune --checkpoint take it)`);
    }
    const values = new Map<string, Float32Array>();
    for (const [k, t] of ck.tensors) values.set(k, asFloat32(t));
    const opts = { allowExtra: true, what: 'EcgJepa checkpoint' };
    loadParams(this.student.reg, values, opts);
    loadParams(this.predictor.reg, values, opts);
    loadParams(this.teacher.reg, values, { ...opts, prefix: TEACHER_PREFIX });
    for (const p of [...this.student.reg.list(), ...this.predictor.reg.list()]) {
      const { m, v } = this.opt.state(p);
      for (const [prefix, t] of [[ADAM_M_PREFIX, m], [ADAM_V_PREFIX, v]] as const) {
        const a = values.get(prefix + p.name);
        if (!a || a.length !== t.size) throw new Error(`EcgJepa checkpoint: optimizer state ${prefix}${p.name} missing or mis-sized`);
        this.engine.device.queue.writeBuffer(t.buffer, 0, a.buffer, a.byteOffset, a.byteLength);
      }
    }
    const adamSteps = ck.state.extra?.adamSteps;
    this.opt.steps = typeof adamSteps === 'number' ? adamSteps : ck.state.step;
    // A checkpoint without it (older, or a static run) starts the dynamic rule afresh.
    const ls = ck.state.extra?.lossScale as (LossScaleState & { dynamic?: boolean }) | undefined;
    if (ls?.dynamic && typeof ls.scale === 'number') this.scaler.load(ls);
    this.step = ck.state.step;
    if (ck.state.rng) this.rng = new Rng(ck.state.rng);
  }

  /** The student's weights by official name (what downstream evaluation loads). */
  studentWeights(): Promise<Map<string, Float32Array>> {
    return readParams(this.student.reg);
  }

  /** Mean-pooled student representation [B, D] (the downstream feature), no gradients. */
  representation(x: Tensor): Tensor {
    return this.tape.noGrad(() => this.engine.scope(() => this.student.representation(this.tape, x)));
  }

  dispose(): void {
    this.opt.dispose();
    this.scaler.dispose();
    this.student.dispose();
    this.teacher.dispose();
    this.predictor.dispose();
  }
}
