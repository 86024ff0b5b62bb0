// Parameters, a registry whose names are the checkpoint keys (PyTorch state_dict names, weights
// stored [out, in]), and the layers of a pre-norm ViT block. Initialisation follows the reference:
// truncated normal std 0.02 (timm trunc_normal_, absolute bounds ±2) for Linear weights, zero
// biases, LayerNorm 1/0, and attn.proj / mlp.fc2 weights divided by sqrt(2·layer_id).
import type { AttentionMask } from '../kernels/attention.js';
import type { Engine } from './engine.js';
import * as ops from './ops/index.js';
import type { Precision } from './ops/linear.js';
import { Rng, type UniformSource } from './random.js';
import { recompute } from './recompute.js';
import { registerLeaf, untracked, type GradLeaf, type Tape } from './tape.js';
import type { Tensor } from './tensor.js';

export class Parameter implements GradLeaf {
  grad: Tensor | null = null;
  hasGrad = false;
  /** False freezes it: ops treat it as a constant and the optimizer skips it. */
  requiresGrad = true;

  constructor(
    readonly name: string,
    /** Updated in place (optimizer, EMA, checkpoint load); never replaced. */
    readonly value: Tensor,
    /** AdamW applies weight decay (weights of rank ≥ 2 by default; not biases, norms, 1-D). */
    readonly weightDecay: boolean,
  ) {
    registerLeaf(this);
  }

  get shape(): readonly number[] {
    return this.value.shape;
  }

  dispose(): void {
    this.value.dispose();
    this.grad?.dispose();
    this.grad = null;
    this.hasGrad = false;
  }
}

/** Every parameter of a model by name, in creation order; the names are the checkpoint keys. */
export class Registry {
  private params = new Map<string, Parameter>();

  constructor(readonly engine: Engine) {}

  /** A new parameter with initial values `init` (uploaded once; not tracked by engine.scope). */
  create(name: string, shape: readonly number[], init: Float32Array, opts: { weightDecay?: boolean } = {}): Parameter {
    if (this.params.has(name)) throw new Error(`Registry: parameter ${name} already exists`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (init.length !== n) throw new RangeError(`Registry: ${name} [${shape}] needs ${n} values, got ${init.length}`);
    const value = untracked(this.engine, shape, true);
    this.engine.device.queue.writeBuffer(value.buffer, 0, init.buffer, init.byteOffset, init.byteLength);
    const p = new Parameter(name, value, opts.weightDecay ?? shape.length > 1);
    this.params.set(name, p);
    return p;
  }

  get(name: string): Parameter {
    const p = this.params.get(name);
    if (!p) throw new Error(`Registry: no parameter ${name}`);
    return p;
  }

  has(name: string): boolean {
    return this.params.has(name);
  }

  list(): Parameter[] {
    return [...this.params.values()];
  }

  names(): string[] {
    return [...this.params.keys()];
  }

  /** Number of scalars (trainable only, unless all). */
  count(all = false): number {
    let n = 0;
    for (const p of this.params.values()) if (all || p.requiresGrad) n += p.value.size;
    return n;
  }

  /** Marks every gradient absent (PyTorch's zero_grad(set_to_none=True)); no GPU work: the next
   *  backward overwrites the kept buffers, and the optimizer skips parameters that got none. */
  zeroGrad(): void {
    for (const p of this.params.values()) p.hasGrad = false;
  }

  dispose(): void {
    for (const p of this.params.values()) p.dispose();
    this.params.clear();
  }
}

export function joinName(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}

/** n values of timm's trunc_normal_(std, a, b): N(0, std²) cut at absolute bounds [a, b]. */
export function truncNormalArray(rng: Rng, n: number, std = 0.02, a = -2, b = 2): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.truncNormal(std, a, b);
  return out;
}

export interface LinearConfig {
  bias?: boolean;
  /** Init stream; weights ~ trunc_normal(std), then divided by `divide`. */
  rng: Rng;
  std?: number;
  divide?: number;
  precision?: Precision;
}

export type LinearCall = Omit<ops.LinearOptions, 'precision'>;

export class Linear {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  precision: Precision;

  constructor(reg: Registry, name: string, readonly inFeatures: number, readonly outFeatures: number, cfg: LinearConfig) {
    const w = truncNormalArray(cfg.rng, inFeatures * outFeatures, cfg.std ?? 0.02);
    if (cfg.divide && cfg.divide !== 1) for (let i = 0; i < w.length; i++) w[i] /= cfg.divide;
    this.weight = reg.create(joinName(name, 'weight'), [outFeatures, inFeatures], w);
    this.bias = cfg.bias === false ? null : reg.create(joinName(name, 'bias'), [outFeatures], new Float32Array(outFeatures));
    this.precision = cfg.precision ?? 'f32';
  }

  /** `output` f16: for a reader that is an f16 Linear; `residual`: added in the matmul's epilogue;
   *  `geluOf`: what x is the GELU of, kept instead of x (ops.linear). */
  forward(g: Tape, x: Tensor, opts: LinearCall = {}): Tensor {
    return this.forwardWithPre(g, x, opts).y;
  }

  /** forward, and the pre-activation kept for the backward (ops.linearWithPre). */
  forwardWithPre(g: Tape, x: Tensor, opts: LinearCall = {}): { y: Tensor; pre?: Tensor } {
    return ops.linearWithPre(g, x, this.weight.value, this.bias?.value, { ...opts, precision: this.precision });
  }
}

export class LayerNorm {
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;

  /** affine=false: no parameters (the JEPA target normalisation). eps 1e-5 as torch.nn.LayerNorm. */
  constructor(reg: Registry | null, name: string, readonly dim: number, readonly opts: { affine?: boolean; eps?: number } = {}) {
    const affine = opts.affine ?? true;
    if (affine && !reg) throw new Error(`LayerNorm ${name}: an affine LayerNorm needs a registry`);
    this.weight = affine ? reg!.create(joinName(name, 'weight'), [dim], new Float32Array(dim).fill(1)) : null;
    this.bias = affine ? reg!.create(joinName(name, 'bias'), [dim], new Float32Array(dim)) : null;
  }

  /** `output` f16 (ops.layerNorm): for a reader that is an f16 Linear. */
  forward(g: Tape, x: Tensor, output: 'f32' | 'f16' = 'f32'): Tensor {
    return ops.layerNorm(g, x, this.weight?.value, this.bias?.value, this.opts.eps ?? 1e-5, output);
  }
}

export class MLP {
  readonly fc1: Linear;
  readonly fc2: Linear;

  /** layerId ≥ 1 divides fc2's init by sqrt(2·layerId) (the reference's fix_init_weight); std: the weights' init (0.02). */
  constructor(reg: Registry, name: string, dim: number, hidden: number, cfg: { rng: Rng; layerId?: number; std?: number; precision?: Precision }) {
    const divide = cfg.layerId ? Math.sqrt(2 * cfg.layerId) : 1;
    this.fc1 = new Linear(reg, joinName(name, 'fc1'), dim, hidden, { rng: cfg.rng, std: cfg.std, precision: cfg.precision });
    this.fc2 = new Linear(reg, joinName(name, 'fc2'), hidden, dim, { rng: cfg.rng, std: cfg.std, divide, precision: cfg.precision });
  }

  /** fc2(gelu(fc1(x))), plus `residual` (added in fc2's epilogue). */
  forward(g: Tape, x: Tensor, residual?: Tensor): Tensor {
    // GELU fused into fc1's epilogue, which also writes the hidden layer in f16 where fc2 reads f16:
    // fc2 then casts nothing. The hidden layer, a block's largest activation (4× the others), is not
    // held for the backward: fc2 recomputes it from fc1's pre-activation, which fc1 keeps anyway.
    const half = this.fc2.precision === 'f16';
    const h = this.fc1.forwardWithPre(g, x, { activation: 'gelu', output: half ? 'f16' : 'f32' });
    return this.fc2.forward(g, h.y, { residual, geluOf: h.pre });
  }
}

/** Token layout of one call: C leads × V columns (T = C·V, lead-major). */
export interface TokenLayout {
  C: number;
  V: number;
}

export class MultiHeadAttention {
  readonly qkv: Linear;
  readonly proj: Linear;

  constructor(
    reg: Registry,
    name: string,
    readonly dim: number,
    readonly heads: number,
    readonly cfg: { rng: Rng; mask: AttentionMask; layerId?: number; std?: number; precision?: Precision },
  ) {
    if (dim % heads !== 0) throw new RangeError(`MultiHeadAttention ${name}: dim ${dim} is not a multiple of heads ${heads}`);
    const divide = cfg.layerId ? Math.sqrt(2 * cfg.layerId) : 1;
    this.qkv = new Linear(reg, joinName(name, 'qkv'), dim, 3 * dim, { rng: cfg.rng, bias: false, std: cfg.std, precision: cfg.precision });
    this.proj = new Linear(reg, joinName(name, 'proj'), dim, dim, { rng: cfg.rng, std: cfg.std, divide, precision: cfg.precision });
  }

  /** x [B, T, D] → [B, T, D]; `layout` says which leads × columns these T tokens are; `residual` is
   *  added in proj's epilogue. */
  forward(g: Tape, x: Tensor, layout: TokenLayout, residual?: Tensor): Tensor {
    // qkv in f16 from an f16 Linear, as autocast has it: the attention reads the halves (head size a
    // multiple of 4), and the backward holds them, half the bytes
    const halfQkv = this.qkv.precision === 'f16' && (this.dim / this.heads) % 4 === 0;
    const qkv = this.qkv.forward(g, x, { output: halfQkv ? 'f16' : 'f32' });
    // in f16 for an f16 proj, which then casts nothing (and no f32 copy is held for the backward)
    const a = ops.attention(g, qkv, { heads: this.heads, C: layout.C, V: layout.V, mask: this.cfg.mask, output: this.proj.precision === 'f16' ? 'f16' : 'f32' });
    return this.proj.forward(g, a, { residual });
  }
}

export interface BlockConfig {
  dim: number;
  heads: number;
  mlpRatio?: number;
  /** 1-based depth index; scales the init of attn.proj and mlp.fc2. */
  layerId: number;
  mask: AttentionMask;
  /** Stochastic-depth rate of this block. */
  dropPath?: number;
  eps?: number;
  /** Init std of every Linear weight (truncated normal; default 0.02). */
  initStd?: number;
  rng: Rng;
  precision?: Precision;
}

/** Per-call state of a forward: token layout, and whether drop-path is active (with its Rng). */
export interface BlockCall extends TokenLayout {
  training?: boolean;
  rng?: UniformSource;
  /** forwardBlocks keeps only each block's input for the backward and recomputes the block's
   *  activations there (engine/recompute.ts): the same gradients, one more forward of each block. */
  recompute?: boolean;
}

/** Pre-norm transformer block: x + dp(attn(norm1(x))), then + dp(mlp(norm2(·))). Names as timm. */
export class TransformerBlock {
  readonly norm1: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly norm2: LayerNorm;
  readonly mlp: MLP;
  readonly dropPathRate: number;

  constructor(reg: Registry, name: string, cfg: BlockConfig) {
    const { dim, rng, layerId, precision, initStd: std } = cfg;
    this.norm1 = new LayerNorm(reg, joinName(name, 'norm1'), dim, { eps: cfg.eps });
    this.attn = new MultiHeadAttention(reg, joinName(name, 'attn'), dim, cfg.heads, { rng, mask: cfg.mask, layerId, std, precision });
    this.norm2 = new LayerNorm(reg, joinName(name, 'norm2'), dim, { eps: cfg.eps });
    // hidden = int(dim · mlpRatio) as the reference's Python (floor; model/config.ts mlpHidden)
    this.mlp = new MLP(reg, joinName(name, 'mlp'), dim, Math.floor(dim * (cfg.mlpRatio ?? 4)), { rng, layerId, std, precision });
    this.dropPathRate = cfg.dropPath ?? 0;
  }

  forward(g: Tape, x: Tensor, call: BlockCall): Tensor {
    // Each norm writes f16 where the Linear reading it takes f16 inputs (it then casts nothing).
    const out = (l: Linear) => (l.precision === 'f16' ? 'f16' : 'f32');
    const attn = (x: Tensor, residual?: Tensor) => this.attn.forward(g, this.norm1.forward(g, x, out(this.attn.qkv)), call, residual);
    const mlp = (h: Tensor, residual?: Tensor) => this.mlp.forward(g, this.norm2.forward(g, h, out(this.mlp.fc1)), residual);
    // Without drop-path the residual adds happen in proj's and fc2's epilogues (no pass of their own).
    if (!call.training || this.dropPathRate === 0) {
      const h = attn(x, x);
      return mlp(h, h);
    }
    const rng = call.rng;
    if (!rng) throw new Error('TransformerBlock: training with drop-path needs call.rng');
    // the residual add and the branch's drop-path in one pass (ops.addDropPath)
    const drop = { rate: this.dropPathRate, rng, training: true };
    const h = ops.addDropPath(g, x, attn(x), drop);
    return ops.addDropPath(g, h, mlp(h), drop);
  }
}

/**
 * h ← block(prepare(h)) through `blocks`. Each block runs in its own engine scope, so what it makes
 * is freed when it returns, but its output; that output is let go once the next block has returned
 * (never the caller's x, which lives as long as the caller's scope). What the tape saved for the
 * backward stays (its views hold the storage). Without this every tensor of the forward lived to the
 * end of the caller's scope: the teacher's whole forward through the student's and the predictor's.
 * With call.recompute a block keeps only its input (engine/recompute.ts).
 */
export function forwardBlocks(g: Tape, x: Tensor, blocks: readonly TransformerBlock[], call: BlockCall, prepare: (h: Tensor) => Tensor): Tensor {
  let h = x;
  const run = (b: TransformerBlock, x: Tensor) =>
    call.recompute ? recompute(g, x, call.rng, (t, xi, rng) => b.forward(t, xi, { ...call, rng })) : b.forward(g, x, call);
  for (const b of blocks) {
    const next = g.engine.scope(() => run(b, prepare(h)));
    if (h !== x && h !== next) h.dispose();
    h = next;
  }
  return h;
}
