// The ECG-JEPA encoder (the official MaskTransformer) on the engine: patch embedding W_P
// (Linear patchSize → D, shared by all leads), the fixed 2-D sin-cos table re-added before every
// block (`h = block(h + pos)`, so it accumulates in the residual stream as in the official code),
// CroPA attention over the tokens present, final LayerNorm; representation = mean over tokens.
// Parameter names are the official state_dict keys (W_P.*, encoder_blocks.blocks.{i}.*, norm.*),
// so the registry's names are the checkpoint keys.
import type { Engine } from '../engine/engine.js';
import { forwardBlocks, LayerNorm, Linear, Registry, TransformerBlock } from '../engine/nn.js';
import * as ops from '../engine/ops/index.js';
import type { Precision } from '../engine/ops/linear.js';
import { Rng, type UniformSource } from '../engine/random.js';
import { untracked, type Tape } from '../engine/tape.js';
import type { Tensor } from '../engine/tensor.js';
import { encoderParamSpecs, inputLength, type EcgJepaConfig, type ParamSpec } from './config.js';
import type { BatchMask } from './masking.js';
import { encoderPosEmbed } from './posembed.js';

/** A BatchMask's index arrays on the GPU (u32), uploaded once per step and shared by the models. */
export interface MaskIndices {
  mask: BatchMask;
  /** [B·C·V] rows of the flattened [B·C·P, ·] token matrix. */
  visibleRows: Tensor;
  /** [B·C·M] likewise. */
  maskedRows: Tensor;
  /** Rows of the [C·P, D] positional table for the visible tokens: [C·V] when the mask is shared,
   *  else [B·C·V]. */
  visiblePos: Tensor;
}

/** Uploads the index arrays (a queue write each, no submit); engine.scope disposes them. */
export function uploadMask(engine: Engine, mask: BatchMask): MaskIndices {
  const perTokenPos = mask.shared ? mask.visibleTokens.subarray(0, mask.leads * mask.numVisible) : mask.visibleTokens;
  return {
    mask,
    visibleRows: engine.upload(mask.visibleRows, [mask.visibleRows.length], 'u32'),
    maskedRows: engine.upload(mask.maskedRows, [mask.maskedRows.length], 'u32'),
    visiblePos: engine.upload(perTokenPos, [perTokenPos.length], 'u32'),
  };
}

export interface ForwardOptions {
  /** Keep only the visible tokens of this mask (the student); all tokens when absent. */
  mask?: MaskIndices;
  /** Drop-path active (needs rng). */
  training?: boolean;
  rng?: UniformSource;
  /** Recompute each block's activations in the backward instead of holding them (BlockCall). */
  recompute?: boolean;
}

export class Encoder {
  readonly reg: Registry;
  readonly patchEmbed: Linear;
  readonly blocks: TransformerBlock[];
  readonly norm: LayerNorm;
  /** Fixed [C·P, D] table for cfg.leads (not a parameter). */
  readonly pos: Tensor;

  /** New weights initialised as the official code does, drawn from `rng`. */
  constructor(
    readonly engine: Engine,
    readonly cfg: EcgJepaConfig,
    rng: Rng,
    /** Matmul input precision of every Linear (f16: mixed precision, f32 accumulation). */
    precision: Precision = 'f32',
  ) {
    const { dim, depth, heads, mlpRatio } = cfg.encoder;
    this.reg = new Registry(engine);
    this.patchEmbed = new Linear(this.reg, 'W_P', cfg.patchSize, dim, { rng, std: cfg.initStd, precision });
    this.blocks = [];
    for (let i = 0; i < depth; i++) {
      // Stochastic depth rises linearly 0 → dropPath (torch.linspace(0, rate, depth)).
      const dropPath = depth > 1 ? (cfg.dropPath * i) / (depth - 1) : 0;
      this.blocks.push(new TransformerBlock(this.reg, `encoder_blocks.blocks.${i}`, { dim, heads, mlpRatio, layerId: i + 1, mask: 'cropa', dropPath, eps: cfg.lnEps, initStd: cfg.initStd, rng, precision }));
    }
    this.norm = new LayerNorm(this.reg, 'norm', dim, { eps: cfg.lnEps });
    this.pos = fixedTable(engine, encoderPosEmbed(cfg), [cfg.leads.length * cfg.patches, dim]);
    checkRegistry(this.reg, encoderParamSpecs(cfg), 'Encoder');
  }

  /**
   * x [B, C, patches·patchSize] (C = cfg.leads.length) → tokens [B, C·V, D] after the final
   * LayerNorm, lead-major over the visible columns of `o.mask` (all P columns without a mask).
   */
  forward(g: Tape, x: Tensor, o: ForwardOptions = {}): Tensor {
    const { cfg } = this;
    const C = cfg.leads.length;
    const P = cfg.patches;
    const L = inputLength(cfg);
    if (x.shape.length !== 3 || x.shape[1] !== C || x.shape[2] !== L)
      throw new RangeError(`Encoder.forward: input [${x.shape}], expected [B, ${C} leads, ${L} samples] (preset ${cfg.preset}, leads [${cfg.leads}])`);
    const B = x.shape[0];
    const m = o.mask;
    if (m && (m.mask.batch !== B || m.mask.leads !== C || m.mask.patches !== P))
      throw new RangeError(`Encoder.forward: mask is for batch ${m.mask.batch} × ${m.mask.leads} leads × ${m.mask.patches} patches, input is ${B} × ${C} × ${P}`);
    const V = m ? m.mask.numVisible : P;
    const patches = ops.reshape(g, x, [B * C * P, cfg.patchSize]);
    // Gathering the visible patches before the embedding is the same as slicing after it, and cheaper.
    const xv = m ? ops.gatherRows(g, patches, m.visibleRows, [B, C * V, cfg.patchSize]) : ops.reshape(g, patches, [B, C * P, cfg.patchSize]);
    let h = this.patchEmbed.forward(g, xv);
    let pos: Tensor = this.pos;
    let perSample = false;
    if (m) {
      perSample = !m.mask.shared;
      pos = ops.gatherRows(g, this.pos, m.visiblePos, perSample ? [B, C * V, cfg.encoder.dim] : [C * V, cfg.encoder.dim]);
    }
    const call = { C, V, training: o.training, rng: o.rng, recompute: o.recompute };
    h = forwardBlocks(g, h, this.blocks, call, (h) => (perSample ? ops.add(g, h, pos) : ops.addBroadcast(g, h, pos)));
    return this.norm.forward(g, h);
  }

  /** Mean-pooled representation [B, D] over all tokens (no masking), as MaskTransformer.representation;
   *  `recompute` as in forward. */
  representation(g: Tape, x: Tensor, o: Pick<ForwardOptions, 'recompute'> = {}): Tensor {
    return ops.mean(g, this.forward(g, x, o), 1);
  }

  dispose(): void {
    this.reg.dispose();
    this.pos.dispose();
  }
}

/** A constant table owned by its model (untracked, so no engine.scope disposes it). */
export function fixedTable(engine: Engine, values: Float32Array, shape: readonly number[]): Tensor {
  const t = untracked(engine, shape, true);
  engine.device.queue.writeBuffer(t.buffer, 0, values.buffer, values.byteOffset, values.byteLength);
  return t;
}

/** The registry must hold exactly the official names and shapes (guards against drift in nn.ts). */
export function checkRegistry(reg: Registry, specs: readonly ParamSpec[], what: string): void {
  const names = reg.names();
  const want = specs.map(([n]) => n);
  const missing = want.filter((n) => !reg.has(n));
  const extra = names.filter((n) => !want.includes(n));
  const shapes = specs.filter(([n, s]) => reg.has(n) && JSON.stringify(reg.get(n).shape) !== JSON.stringify(s)).map(([n, s]) => `${n} [${reg.get(n).shape}] vs [${s}]`);
  if (missing.length || extra.length || shapes.length)
    throw new Error(`${what}: parameters differ from the official layout: missing [${missing}], extra [${extra}], shapes [${shapes}]`);
}

/** Writes named values into a registry's parameters (submits the open batch, then queue writes). Every parameter
 *  must be given with the right size; extra names are an error unless `allowExtra`. */
export function loadParams(reg: Registry, values: ReadonlyMap<string, Float32Array>, opts: { prefix?: string; allowExtra?: boolean; what?: string } = {}): void {
  const prefix = opts.prefix ?? '';
  const what = opts.what ?? 'loadParams';
  const problems: string[] = [];
  for (const p of reg.list()) {
    const v = values.get(prefix + p.name);
    if (!v) problems.push(`missing ${prefix}${p.name}`);
    else if (v.length !== p.value.size) problems.push(`${prefix}${p.name}: ${v.length} values, needs ${p.value.size} [${p.shape}]`);
  }
  if (!opts.allowExtra)
    for (const k of values.keys()) if (k.startsWith(prefix) && !reg.has(k.slice(prefix.length))) problems.push(`unexpected ${k}`);
  if (problems.length) throw new Error(`${what}: ${problems.slice(0, 20).join('; ')}${problems.length > 20 ? ` … ${problems.length - 20} more` : ''}`);
  // Queue writes run before any command still unsubmitted in the batch (e.g. a recorded teacher
  // copy), so submit those first to keep program order.
  reg.engine.flush();
  for (const p of reg.list()) {
    const v = values.get(prefix + p.name)!;
    reg.engine.device.queue.writeBuffer(p.value.buffer, 0, v.buffer, v.byteOffset, v.byteLength);
  }
}

/** Reads every parameter back (submits the open batch). */
export async function readParams(reg: Registry, prefix = ''): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const p of reg.list()) out.set(prefix + p.name, await reg.engine.read(p.value));
  return out;
}

/** Records copies of every parameter of `src` into the same-named parameter of `dst`. */
export function copyParams(dst: Registry, src: Registry): void {
  for (const p of dst.list()) {
    const s = src.get(p.name);
    if (s.value.size !== p.value.size) throw new Error(`copyParams: ${p.name} [${s.shape}] → [${p.shape}]`);
    dst.engine.batch.copy(s.value.buffer, 0, p.value.buffer, 0, p.value.size * 4);
  }
}
