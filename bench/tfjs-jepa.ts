// ECG-JEPA in TensorFlow.js, the peer for `bench step|embed` and the agreement test: the same
// config, weights read back from an EcgJepa, the same BatchMask. Written from model/reference.ts's
// math with plain tfjs ops: position re-added before every block, dense attention with CroPA as an
// additive −1e9 bias (exp underflows to exactly 0 in fp32, and unlike −inf it cannot make NaN
// gradients), erf GELU, LayerNorm from tf.moments, a non-affine LN on the teacher's output,
// smooth-L1 (β = 1) at the masked tokens. The predictor uses the official (visible, masked)
// sequence order with the 1-D table gathered by predictorOrder, not our engine's scatter layout.
// Training: tf.variableGrads over student + predictor, AdamW composed from ops (tfjs has none) in
// the same form as kernels/adamw.ts, then the EMA teacher update from the updated student.
// Drop-path is not implemented: use a config with dropPath 0 (tiny) for agreement.
import type * as tfjs from '@tensorflow/tfjs';
import { readParams } from '../model/encoder.js';
import { cropaMask } from '../model/cropa.js';
import { encoderParamSpecs, mlpHidden, predictorParamSpecs, type EcgJepaConfig, type ParamSpec, type TransformerDims } from '../model/config.js';
import { schedules, type EcgJepa, type Schedules } from '../model/jepa.js';
import type { BatchMask } from '../model/masking.js';
import { encoderPosEmbed, predictorPosEmbed } from '../model/posembed.js';

type Tf = typeof import('@tensorflow/tfjs'); // as bench/harness.ts's loadTfjs returns it
type T = tfjs.Tensor;
type Var = tfjs.Variable;

/** Weights by official name (student and predictor as in checkpoints, teacher without its prefix). */
export interface JepaWeights {
  student: ReadonlyMap<string, Float32Array>;
  teacher: ReadonlyMap<string, Float32Array>;
  predictor: ReadonlyMap<string, Float32Array>;
  /** Names that get weight decay (our Registry's flag); default: every tensor of rank > 1. */
  decay?: ReadonlySet<string>;
  /** Optimizer steps already done (AdamW's bias correction and the schedules go on from it); default 0. */
  step?: number;
}

/** Reads an EcgJepa's student, teacher and predictor back from the GPU, with its decay flags and
 *  step: CPU copies, from which any number of peers can be built (bench/step.ts: one per try). */
export async function readJepaWeights(model: EcgJepa): Promise<JepaWeights> {
  const decay = new Set([...model.student.reg.list(), ...model.predictor.reg.list()].filter((p) => p.weightDecay).map((p) => p.name));
  return { student: await model.studentWeights(), teacher: await readParams(model.teacher.reg), predictor: await readParams(model.predictor.reg), decay, step: model.step };
}

interface Trainable {
  name: string;
  v: Var;
  m: Var;
  s: Var; // second moment
  decay: boolean;
}

export class TfJepa {
  readonly student = new Map<string, Var>();
  readonly teacher = new Map<string, Var>();
  readonly predictor = new Map<string, Var>();
  readonly sched: Schedules;
  /** Optimizer steps done (bias correction uses steps + 1 next). */
  step = 0;
  private readonly trainable: Trainable[] = [];
  private readonly encPos: T;
  private readonly predPos: T;
  private readonly bias = new Map<string, T>();

  constructor(
    readonly tf: Tf,
    readonly cfg: EcgJepaConfig,
    w: JepaWeights,
  ) {
    if (cfg.dropPath !== 0) console.warn(`TfJepa: dropPath ${cfg.dropPath} ignored (the tfjs peer runs without stochastic depth)`);
    // tf.variable keeps its own copy: the initial tensors are freed (kept, they doubled the peer's memory)
    const variable = (init: () => T, train: boolean) => tf.tidy(() => tf.variable(init(), train));
    const load = (dst: Map<string, Var>, src: ReadonlyMap<string, Float32Array>, specs: readonly ParamSpec[], trainable: boolean, what: string) => {
      for (const [name, shape] of specs) {
        const a = src.get(name);
        const n = shape.reduce((x, y) => x * y, 1);
        if (!a || a.length !== n) throw new Error(`TfJepa: ${what} weight '${name}' missing or not ${n} values`);
        const v = variable(() => tf.tensor(a, [...shape]), trainable);
        dst.set(name, v);
        if (trainable)
          this.trainable.push({ name, v, m: variable(() => tf.zeros([...shape]), false), s: variable(() => tf.zeros([...shape]), false), decay: w.decay ? w.decay.has(name) : shape.length > 1 });
      }
    };
    load(this.student, w.student, encoderParamSpecs(cfg), true, 'student');
    load(this.predictor, w.predictor, predictorParamSpecs(cfg), true, 'predictor');
    load(this.teacher, w.teacher, encoderParamSpecs(cfg), false, 'teacher');
    this.encPos = tf.tensor2d(encoderPosEmbed(cfg), [cfg.leads.length * cfg.patches, cfg.encoder.dim]);
    this.predPos = tf.tensor2d(predictorPosEmbed(cfg), [cfg.patches, cfg.predictor.dim]);
    this.sched = schedules(cfg, 1);
    this.step = w.step ?? 0;
  }

  static async fromModel(tf: Tf, model: EcgJepa): Promise<TfJepa> {
    return new TfJepa(tf, model.cfg, await readJepaWeights(model));
  }

  /** Every tensor the peer keeps across steps. */
  private held(): T[] {
    return [
      ...[this.student, this.teacher, this.predictor].flatMap((m) => [...m.values()]),
      ...this.trainable.flatMap((p) => [p.m, p.s]),
      ...this.bias.values(),
      this.encPos,
      this.predPos,
    ];
  }

  /**
   * Puts every tensor the peer holds on the GPU now. tfjs's WebGPU backend otherwise uploads a
   * tensor made from CPU values at its first use, inside a step, and drops the CPU copy then (see
   * bench/tfjs-backend.ts): an upload that fails there (out of memory) would pass for the step's
   * failure and leave the weight with an invalid buffer. Inside an error scope, followed by a
   * submit (tfSync), a failure here is the weights' own. A no-op on a backend without uploadToGPU.
   */
  upload(): void {
    const backend = this.tf.backend() as unknown as { uploadToGPU?: (dataId: object) => void };
    if (typeof backend.uploadToGPU === 'function') for (const t of this.held()) backend.uploadToGPU(t.dataId);
  }

  private idx(a: Uint32Array): T {
    return this.tf.tensor1d(Int32Array.from(a), 'int32');
  }

  /** y = x·Wᵀ + b over the last axis, W [out, in]. */
  private linear(x: T, W: T, b: T | null): T {
    const tf = this.tf;
    const inF = x.shape[x.shape.length - 1];
    let y = tf.matMul(x.reshape([-1, inF]), W as tfjs.Tensor2D, false, true);
    if (b) y = y.add(b);
    return y.reshape([...x.shape.slice(0, -1), W.shape[0]]);
  }

  private layerNorm(x: T, w: T | null, b: T | null): T {
    const tf = this.tf;
    const { mean, variance } = tf.moments(x, -1, true); // biased variance, as PyTorch
    const z = x.sub(mean).mul(tf.rsqrt(variance.add(this.cfg.lnEps)));
    return w && b ? z.mul(w).add(b) : z;
  }

  private gelu(x: T): T {
    return x.mul(0.5).mul(this.tf.erf(x.mul(Math.SQRT1_2)).add(1));
  }

  /** The additive CroPA bias [n, n] for C leads × V columns (kept across steps). */
  private cropaBias(C: number, V: number): T {
    const key = `${C}x${V}`;
    let t = this.bias.get(key);
    if (!t) {
      const m = cropaMask(C, V);
      t = this.tf.keep(this.tf.tensor2d(Float32Array.from(m, (a) => (a ? 0 : -1e9)), [C * V, C * V]));
      this.bias.set(key, t);
    }
    return t;
  }

  /** Multi-head attention on y [S, n, D]; qkv split as torch reshapes it ([n, 3, H, Dh]). */
  private attention(y: T, dims: TransformerDims, w: ReadonlyMap<string, T>, p: string, bias: T | null): T {
    const tf = this.tf;
    const [S, n, D] = y.shape;
    const H = dims.heads;
    const Dh = D / H;
    const qkv = this.linear(y, w.get(`${p}.attn.qkv.weight`)!, null).reshape([S, n, 3, H, Dh]);
    const [q, k, v] = tf.split(qkv, 3, 2).map((t) => t.reshape([S, n, H, Dh]).transpose([0, 2, 1, 3]));
    let logits = tf.matMul(q, k, false, true).mul(1 / Math.sqrt(Dh));
    if (bias) logits = logits.add(bias);
    const o = tf.matMul(tf.softmax(logits, -1), v).transpose([0, 2, 1, 3]).reshape([S, n, D]);
    return this.linear(o, w.get(`${p}.attn.proj.weight`)!, w.get(`${p}.attn.proj.bias`)!);
  }

  /** One pre-norm block on x (position already added). */
  private block(x: T, dims: TransformerDims, w: ReadonlyMap<string, T>, p: string, bias: T | null): T {
    const g = (n: string) => w.get(`${p}.${n}`)!;
    const x1 = x.add(this.attention(this.layerNorm(x, g('norm1.weight'), g('norm1.bias')), dims, w, p, bias));
    const h = this.gelu(this.linear(this.layerNorm(x1, g('norm2.weight'), g('norm2.bias')), g('mlp.fc1.weight'), g('mlp.fc1.bias')));
    if (h.shape[h.shape.length - 1] !== mlpHidden(dims)) throw new Error('TfJepa: MLP width mismatch');
    return x1.add(this.linear(h, g('mlp.fc2.weight'), g('mlp.fc2.bias')));
  }

  /**
   * Encoder: x [B, C, P·patchSize] → tokens [B, C·V, D] after the final LN, lead-major over the
   * visible columns of `mask` (all columns without one). `which` picks student or teacher weights.
   * `inference`: each block's intermediates are freed as soon as it is done, as a tfjs user would write
   * inference (without it the base encoder at batch 64 holds >80 GB); never under a gradient tape.
   */
  encode(x: T, mask?: BatchMask, which: 'student' | 'teacher' = 'student', inference = false): T {
    const { tf, cfg } = this;
    const w = which === 'student' ? this.student : this.teacher;
    const C = cfg.leads.length;
    const P = cfg.patches;
    const D = cfg.encoder.dim;
    const B = x.shape[0];
    const V = mask ? mask.numVisible : P;
    const n = C * V;
    let patches = x.reshape([B * C * P, cfg.patchSize]);
    let pos: T;
    if (mask) {
      patches = tf.gather(patches, this.idx(mask.visibleRows));
      pos = tf.gather(this.encPos, this.idx(mask.visibleTokens)).reshape([B, n, D]);
    } else pos = this.encPos.reshape([1, n, D]);
    let h = this.linear(patches, w.get('W_P.weight')!, w.get('W_P.bias')!).reshape([B, n, D]);
    const bias = this.cropaBias(C, V);
    for (let i = 0; i < cfg.encoder.depth; i++) {
      const prev = h;
      const p = `encoder_blocks.blocks.${i}`;
      h = inference ? tf.tidy(() => this.block(prev.add(pos), cfg.encoder, w, p, bias)) : this.block(prev.add(pos), cfg.encoder, w, p, bias);
      if (inference) prev.dispose();
    }
    return this.layerNorm(h, w.get('norm.weight')!, w.get('norm.bias')!);
  }

  /** Mean-pooled student representation [B, D]. */
  representation(x: T): T {
    return this.encode(x, undefined, 'student', true).mean(1);
  }

  /** Predictor: student context [B, C·V, D] → predictions [B, C·M, D] at the masked columns. */
  predict(ctx: T, mask: BatchMask): T {
    const { tf, cfg } = this;
    const w = this.predictor;
    const { batch: B, leads: C, patches: P, numVisible: V, numMasked: M } = mask;
    const D = cfg.encoder.dim;
    const Dp = cfg.predictor.dim;
    const e = this.linear(ctx, w.get('predictor_embed.weight')!, w.get('predictor_embed.bias')!).reshape([B * C, V, Dp]);
    const tokens = tf.zeros([B * C, M, Dp]).add(w.get('mask_token')!);
    let h = tf.concat([e, tokens], 1); // per (sample, lead): visible context, then mask tokens
    const pos = tf.gather(this.predPos, this.idx(mask.predictorOrder)).reshape([B, 1, P, Dp]);
    for (let d = 0; d < cfg.predictor.depth; d++)
      h = this.block(h.reshape([B, C, P, Dp]).add(pos).reshape([B * C, P, Dp]), cfg.predictor, w, `predictor_blocks.blocks.${d}`, null);
    h = this.layerNorm(h, w.get('predictor_norm.weight')!, w.get('predictor_norm.bias')!);
    return this.linear(h.slice([0, V, 0], [B * C, M, Dp]), w.get('predictor_proj.weight')!, w.get('predictor_proj.bias')!).reshape([B, C * M, D]);
  }

  /** Teacher targets [B, C·M, D]: every token, non-affine LN, masked rows. */
  targets(x: T, mask: BatchMask): T {
    const { tf, cfg } = this;
    const D = cfg.encoder.dim;
    // as torch.no_grad: each block's intermediates are freed as it finishes (held, the base teacher at
    // batch 64 alone needs about as much as the whole step otherwise)
    const n = this.layerNorm(this.encode(x, undefined, 'teacher', true), null, null).reshape([-1, D]);
    return tf.gather(n, this.idx(mask.maskedRows)).reshape([mask.batch, mask.leads * mask.numMasked, D]);
  }

  private smoothL1(pred: T, target: T): tfjs.Scalar {
    // With q = min(|d|, 1): ½q² + (|d| − q) is ½d² below β = 1 and |d| − ½ above, and unlike
    // tf.where on a comparison it has gradients registered for every op.
    const d = pred.sub(target).abs();
    const q = this.tf.minimum(d, 1);
    return q.square().mul(0.5).add(d.sub(q)).mean() as tfjs.Scalar;
  }

  /** The JEPA loss (scalar). */
  loss(x: T, mask: BatchMask): tfjs.Scalar {
    return this.tf.tidy(() => this.smoothL1(this.predict(this.encode(x, mask), mask), this.targets(x, mask)));
  }

  /** Loss and gradients by official parameter name (student and predictor). */
  gradients(x: T, mask: BatchMask): { value: tfjs.Scalar; grads: Map<string, T> } {
    const target = this.tf.tidy(() => this.targets(x, mask));
    try {
      const { value, grads } = this.tf.variableGrads(() => this.smoothL1(this.predict(this.encode(x, mask), mask), target), this.trainable.map((t) => t.v));
      return { value, grads: new Map(this.trainable.map((t) => [t.name, grads[t.v.name]])) };
    } finally {
      target.dispose();
    }
  }

  /**
   * One training step: loss and gradients (the teacher targets outside the gradient scope, as
   * torch.no_grad), AdamW, EMA. Returns the loss (before the update); the caller disposes it.
   */
  trainStep(x: T, mask: BatchMask, opts: { lr?: number; momentum?: number } = {}): tfjs.Scalar {
    const tf = this.tf;
    const lr = opts.lr ?? this.sched.lr(this.step);
    const momentum = opts.momentum ?? this.sched.momentum(this.step);
    const o = this.cfg.optim;
    const [b1, b2] = o.betas;
    const t = ++this.step;
    const stepSize = lr / (1 - b1 ** t);
    const invSqrtBc2 = 1 / Math.sqrt(1 - b2 ** t);
    const { value, grads } = this.gradients(x, mask);
    try {
      // One tidy per tensor, as tfjs's own optimizers do: the temporaries of one update are freed
      // before the next (one tidy around all of them held ~12 copies of the model at once).
      for (const p of this.trainable) {
        const g = grads.get(p.name)!;
        tf.tidy(() => {
          const m = p.m.mul(b1).add(g.mul(1 - b1));
          const s = p.s.mul(b2).add(g.square().mul(1 - b2));
          p.m.assign(m);
          p.s.assign(s);
          // Decoupled decay first, then the Adam update: kernels/adamw.ts's order.
          p.v.assign(p.v.mul(p.decay ? 1 - lr * o.weightDecay : 1).sub(m.div(s.sqrt().mul(invSqrtBc2).add(o.eps)).mul(stepSize)));
        });
      }
      for (const [name, tv] of this.teacher) tf.tidy(() => tv.assign(tv.mul(momentum).add(this.student.get(name)!.mul(1 - momentum))));
    } finally {
      for (const g of grads.values()) g.dispose();
    }
    return value;
  }

  /** Current weights read back (await data(), never dataSync). */
  async readWeights(which: 'student' | 'teacher' | 'predictor'): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const [n, v] of this[which]) out.set(n, (await v.data()) as Float32Array);
    return out;
  }

  dispose(): void {
    for (const t of this.held()) t.dispose();
    this.bias.clear();
  }
}
