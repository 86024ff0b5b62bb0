// The ECG-JEPA predictor (the official MaskTransformerPredictor) on the engine: per lead, the
// student's visible tokens embedded D → Dp plus a learnable mask token at every masked column,
// the 1-D sin-cos table re-added before every block, full attention within the lead (no CroPA,
// no lead embedding), LayerNorm, Dp → D at the masked columns.
//
// The official code lays each lead's sequence out as (visible, masked) with the table reordered to
// match; here tokens sit at their own columns with the table in natural order. Attention without
// a mask is permutation-equivariant and every other op is per token, so the outputs are the same
// (checked against model/reference.ts, which follows the official order), and per-sample masks
// need no per-sample table.
import type { Engine } from '../engine/engine.js';
import { forwardBlocks, LayerNorm, Linear, Parameter, Registry, TransformerBlock, truncNormalArray } from '../engine/nn.js';
import * as ops from '../engine/ops/index.js';
import type { Precision } from '../engine/ops/linear.js';
import type { Rng, UniformSource } from '../engine/random.js';
import type { Tape } from '../engine/tape.js';
import type { Tensor } from '../engine/tensor.js';
import { predictorParamSpecs, type EcgJepaConfig } from './config.js';
import { checkRegistry, fixedTable, type MaskIndices } from './encoder.js';
import { predictorPosEmbed } from './posembed.js';

export class Predictor {
  readonly reg: Registry;
  readonly embed: Linear;
  readonly maskToken: Parameter;
  readonly blocks: TransformerBlock[];
  readonly norm: LayerNorm;
  readonly proj: Linear;
  /** Fixed [P, Dp] table (one lead). */
  readonly pos: Tensor;

  constructor(
    readonly engine: Engine,
    readonly cfg: EcgJepaConfig,
    rng: Rng,
    /** Matmul input precision of every Linear (f16: mixed precision, f32 accumulation). */
    precision: Precision = 'f32',
  ) {
    const D = cfg.encoder.dim;
    const { dim, depth, heads, mlpRatio } = cfg.predictor;
    this.reg = new Registry(engine);
    // Creation order = the official state_dict order (names are the checkpoint keys).
    this.embed = new Linear(this.reg, 'predictor_embed', D, dim, { rng, std: cfg.initStd, precision });
    this.maskToken = this.reg.create('mask_token', [1, 1, dim], truncNormalArray(rng, dim, cfg.initStd));
    this.blocks = [];
    for (let i = 0; i < depth; i++) {
      const dropPath = depth > 1 ? (cfg.dropPath * i) / (depth - 1) : 0;
      this.blocks.push(new TransformerBlock(this.reg, `predictor_blocks.blocks.${i}`, { dim, heads, mlpRatio, layerId: i + 1, mask: 'none', dropPath, eps: cfg.lnEps, initStd: cfg.initStd, rng, precision }));
    }
    this.norm = new LayerNorm(this.reg, 'predictor_norm', dim, { eps: cfg.lnEps });
    this.proj = new Linear(this.reg, 'predictor_proj', dim, D, { rng, std: cfg.initStd, precision });
    this.pos = fixedTable(engine, predictorPosEmbed(cfg), [cfg.patches, dim]);
    checkRegistry(this.reg, predictorParamSpecs(cfg), 'Predictor');
  }

  /**
   * context [B, C·V, D] (the student's tokens, lead-major over the visible columns of `m`) →
   * predictions [B, C·M, D] at the masked columns (sorted), lead-major — the teacher targets' order.
   */
  forward(g: Tape, context: Tensor, m: MaskIndices, o: { training?: boolean; rng?: UniformSource; recompute?: boolean } = {}): Tensor {
    const { cfg } = this;
    const { batch: B, leads: C, patches: P, numVisible: V, numMasked: M } = m.mask;
    const D = cfg.encoder.dim;
    const Dp = cfg.predictor.dim;
    if (context.shape.length !== 3 || context.shape[0] !== B || context.shape[1] !== C * V || context.shape[2] !== D)
      throw new RangeError(`Predictor.forward: context [${context.shape}], expected [${B}, ${C}·${V}, ${D}]`);
    if (C !== cfg.leads.length || P !== cfg.patches) throw new RangeError(`Predictor.forward: mask is ${C} leads × ${P} patches, model ${cfg.leads.length} × ${cfg.patches}`);
    const rows = B * C * P;
    const e = this.embed.forward(g, context); // [B, C·V, Dp]
    const ctx = ops.scatterRows(g, e, m.visibleRows, rows);
    // The mask token at every masked row: broadcast it over [B·C·M, Dp], then scatter.
    const zeros = this.engine.zeros([B * C * M, Dp]);
    const tokens = ops.addBroadcast(g, zeros, ops.reshape(g, this.maskToken.value, [Dp]));
    let h = ops.add(g, ctx, ops.scatterRows(g, tokens, m.maskedRows, rows));
    h = ops.reshape(g, h, [B * C, P, Dp]); // one sequence per (sample, lead)
    const call = { C: 1, V: P, training: o.training, rng: o.rng, recompute: o.recompute };
    h = forwardBlocks(g, h, this.blocks, call, (h) => ops.addBroadcast(g, h, this.pos));
    h = this.norm.forward(g, h);
    // Only the masked columns are projected and returned (the official code slices the last M).
    const hm = ops.gatherRows(g, h, m.maskedRows, [B, C * M, Dp]);
    return this.proj.forward(g, hm);
  }

  dispose(): void {
    this.reg.dispose();
    this.pos.dispose();
  }
}
