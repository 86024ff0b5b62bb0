// Model and training configuration as plain, JSON-able data: presets (`base` = the paper, `tiny`
// for CPU tests), validation with messages that name the bad field, parameter names/shapes and
// counts derived from the dimensions, and a comparison used when a checkpoint is loaded.

/** The 8 leads the model is defined over, in the order of the official code (III, aVR, aVL, aVF dropped). */
export const LEAD_NAMES = ['I', 'II', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'] as const;
export const NUM_LEADS = LEAD_NAMES.length;

export type MaskType = 'random' | 'multiblock';

export interface TransformerDims {
  dim: number;
  depth: number;
  heads: number;
  /** MLP hidden = floor(dim · mlpRatio), as Python's int(). */
  mlpRatio: number;
}

export interface MaskConfig {
  type: MaskType;
  /** Random: fraction of columns masked ~U(lo, hi). Multiblock: each block's fraction ~U(lo, hi). */
  ratio: [number, number];
  /** Multiblock: number of blocks whose union is masked (4 in the paper). */
  blocks: number;
  /** false: one mask per batch (the reference). true: one per sample (see masking.ts for counts). */
  perSample: boolean;
  /** true: block starts ~U[0, P − len] so the last patch can be masked; false: the reference's
   *  U[0, P − len − 1], which never masks the last patch. */
  lastPatchMaskable: boolean;
}

export interface OptimConfig {
  /** Peak learning rate after warm-up. */
  lr: number;
  /** Warm-up starts here (timm warmup_lr_init). */
  warmupLr: number;
  /** Cosine floor (timm lr_min). */
  minLr: number;
  warmupEpochs: number;
  epochs: number;
  batchSize: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  /** EMA teacher momentum, linear from [0] to [1] over all steps. */
  momentum: [number, number];
}

export interface EcgJepaConfig {
  /** Name of the preset this config started from; saved in checkpoints. */
  preset: string;
  /** Indices into LEAD_NAMES of the leads the model sees, ascending (reduced-lead: e.g. [1] = II). */
  leads: number[];
  /** Samples per patch (t) and patches per lead (p); input length per lead = patchSize · patches. */
  patchSize: number;
  patches: number;
  encoder: TransformerDims;
  predictor: TransformerDims;
  /** Stochastic depth rises linearly 0 → dropPath over depth (encoder and predictor). */
  dropPath: number;
  /** LayerNorm epsilon (PyTorch default). */
  lnEps: number;
  /** Truncated-normal init std. */
  initStd: number;
  mask: MaskConfig;
  optim: OptimConfig;
}

const ALL_LEADS = [0, 1, 2, 3, 4, 5, 6, 7];

const BASE: EcgJepaConfig = {
  preset: 'base',
  leads: ALL_LEADS,
  patchSize: 50,
  patches: 50,
  encoder: { dim: 768, depth: 12, heads: 16, mlpRatio: 4 },
  predictor: { dim: 384, depth: 6, heads: 12, mlpRatio: 4 },
  dropPath: 0.1,
  lnEps: 1e-5,
  initStd: 0.02,
  mask: { type: 'multiblock', ratio: [0.175, 0.225], blocks: 4, perSample: false, lastPatchMaskable: true },
  optim: {
    lr: 5e-5,
    warmupLr: 1e-6,
    minLr: 1e-6,
    warmupEpochs: 5,
    epochs: 100,
    batchSize: 64,
    weightDecay: 0.05,
    betas: [0.9, 0.999],
    eps: 1e-8,
    momentum: [0.996, 1.0],
  },
};

// Small enough for lavapipe: 3 leads × 10 patches = 30 tokens, D 32. Patch size stays 50 so the
// data path is the real one (and `patches: 50` gives the full 2500 samples when wanted).
const TINY: EcgJepaConfig = {
  ...BASE,
  preset: 'tiny',
  leads: [0, 1, 2],
  patches: 10,
  encoder: { dim: 32, depth: 2, heads: 2, mlpRatio: 4 },
  predictor: { dim: 16, depth: 1, heads: 2, mlpRatio: 4 },
  dropPath: 0,
  mask: { ...BASE.mask },
  optim: { ...BASE.optim, lr: 1e-3, warmupLr: 1e-3, minLr: 1e-3, warmupEpochs: 0, epochs: 1, batchSize: 4, weightDecay: 0 },
};

export const PRESETS: Readonly<Record<string, EcgJepaConfig>> = { base: BASE, tiny: TINY };

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends unknown[] ? T[K] : T[K] extends object ? DeepPartial<T[K]> : T[K] };

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

function merge(target: Record<string, unknown>, patch: Record<string, unknown>, path: string): void {
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    if (!(k in target)) throw new Error(`config: unknown field '${path}${k}'`);
    const cur = target[k];
    if (cur !== null && typeof cur === 'object' && !Array.isArray(cur)) {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`config: '${path}${k}' must be an object`);
      merge(cur as Record<string, unknown>, v as Record<string, unknown>, `${path}${k}.`);
    } else target[k] = Array.isArray(v) ? [...v] : v;
  }
}

/**
 * The overrides of a pretraining run with mask `type` on `preset`, before the caller's own flags.
 * Random masking takes ratio U(0.6, 0.7) in one draw; on the base model it also takes the
 * reference's batch 128 and peak LR 2.5e-5 (its README), where multi-block runs at 64 and 5e-5.
 */
export function maskRecipe(preset: string, type: MaskType): DeepPartial<EcgJepaConfig> {
  if (type !== 'random') return { mask: { type } };
  return { mask: { type, ratio: [0.6, 0.7], blocks: 1 }, ...(preset === 'base' ? { optim: { batchSize: 128, lr: 2.5e-5 } } : {}) };
}

/** A validated copy of a preset with `overrides` applied (nested fields merge; arrays replace). */
export function makeConfig(preset: string, overrides: DeepPartial<EcgJepaConfig> = {}): EcgJepaConfig {
  const p = PRESETS[preset];
  if (!p) throw new Error(`config: unknown preset '${preset}' (known: ${Object.keys(PRESETS).join(', ')})`);
  const cfg = clone(p);
  merge(cfg as unknown as Record<string, unknown>, clone(overrides) as Record<string, unknown>, '');
  return validateConfig(cfg);
}

/** The config with another lead subset (reduced-lead evaluation); names ('II', any case) or
 *  indices, in any order (the model keeps its own: I, II, V1, …), each once. */
export function withLeads(cfg: EcgJepaConfig, leads: readonly (number | string)[]): EcgJepaConfig {
  const idx = leads.map((l) => {
    if (typeof l === 'number') return l;
    const i = LEAD_NAMES.findIndex((n) => n.toLowerCase() === l.toLowerCase());
    if (i < 0) throw new Error(`config: unknown lead '${l}' (leads: ${LEAD_NAMES.join(', ')})`);
    return i;
  });
  const twice = idx.filter((i, k) => idx.indexOf(i) !== k);
  if (twice.length) throw new Error(`config: lead ${twice.map((i) => LEAD_NAMES[i] ?? i).join(', ')} given twice (leads: ${leads.join(', ')})`);
  return validateConfig({ ...clone(cfg), leads: [...idx].sort((a, b) => a - b) });
}

function posInt(v: unknown, name: string): void {
  if (!Number.isInteger(v) || (v as number) <= 0) throw new Error(`config: ${name} must be a positive integer, got ${JSON.stringify(v)}`);
}
function num(v: unknown, name: string, lo: number, hi: number): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) throw new Error(`config: ${name} must be a number in [${lo}, ${hi}], got ${JSON.stringify(v)}`);
}
function pair(v: unknown, name: string, lo: number, hi: number): void {
  if (!Array.isArray(v) || v.length !== 2) throw new Error(`config: ${name} must be [lo, hi], got ${JSON.stringify(v)}`);
  num(v[0], `${name}[0]`, lo, hi);
  num(v[1], `${name}[1]`, lo, hi);
  if (v[0] > v[1]) throw new Error(`config: ${name} must have lo <= hi, got ${JSON.stringify(v)}`);
}

function checkDims(d: TransformerDims, name: string): void {
  if (d === null || typeof d !== 'object') throw new Error(`config: ${name} missing`);
  posInt(d.dim, `${name}.dim`);
  posInt(d.depth, `${name}.depth`);
  posInt(d.heads, `${name}.heads`);
  num(d.mlpRatio, `${name}.mlpRatio`, Number.MIN_VALUE, 64);
  if (d.dim % d.heads !== 0) throw new Error(`config: ${name}.dim ${d.dim} is not divisible by ${name}.heads ${d.heads}`);
  // The sin-cos tables split the width into 4 (2-D) quarters.
  if (d.dim % 4 !== 0) throw new Error(`config: ${name}.dim ${d.dim} must be a multiple of 4 (sin-cos positional table)`);
  if (Math.floor(d.dim * d.mlpRatio) <= 0) throw new Error(`config: ${name} MLP hidden size is 0`);
}

/** Checks every field; returns the same object. Throws naming the first bad field. */
export function validateConfig(cfg: EcgJepaConfig): EcgJepaConfig {
  if (cfg === null || typeof cfg !== 'object') throw new Error('config: not an object');
  if (typeof cfg.preset !== 'string' || !cfg.preset) throw new Error('config: preset must be a non-empty string');
  if (!Array.isArray(cfg.leads) || cfg.leads.length === 0) throw new Error(`config: leads must be a non-empty array of indices into [${LEAD_NAMES.join(', ')}]`);
  cfg.leads.forEach((l, i) => {
    if (!Number.isInteger(l) || l < 0 || l >= NUM_LEADS) throw new Error(`config: leads[${i}] = ${JSON.stringify(l)} is not an index into [${LEAD_NAMES.join(', ')}]`);
    if (i > 0 && l <= cfg.leads[i - 1]) throw new Error(`config: leads must be strictly ascending, got [${cfg.leads}]`);
  });
  posInt(cfg.patchSize, 'patchSize');
  posInt(cfg.patches, 'patches');
  checkDims(cfg.encoder, 'encoder');
  checkDims(cfg.predictor, 'predictor');
  num(cfg.dropPath, 'dropPath', 0, 0.999);
  num(cfg.lnEps, 'lnEps', Number.MIN_VALUE, 1);
  num(cfg.initStd, 'initStd', 0, 10);
  const m = cfg.mask;
  if (m === null || typeof m !== 'object') throw new Error('config: mask missing');
  if (m.type !== 'random' && m.type !== 'multiblock') throw new Error(`config: mask.type must be 'random' or 'multiblock', got ${JSON.stringify(m.type)}`);
  pair(m.ratio, 'mask.ratio', 0, 1);
  posInt(m.blocks, 'mask.blocks');
  if (typeof m.perSample !== 'boolean') throw new Error('config: mask.perSample must be a boolean');
  if (typeof m.lastPatchMaskable !== 'boolean') throw new Error('config: mask.lastPatchMaskable must be a boolean');
  checkMaskFeasible(m, cfg.patches);
  const o = cfg.optim;
  if (o === null || typeof o !== 'object') throw new Error('config: optim missing');
  num(o.lr, 'optim.lr', 0, 10);
  num(o.warmupLr, 'optim.warmupLr', 0, 10);
  num(o.minLr, 'optim.minLr', 0, 10);
  num(o.warmupEpochs, 'optim.warmupEpochs', 0, 1e6);
  posInt(o.epochs, 'optim.epochs');
  posInt(o.batchSize, 'optim.batchSize');
  num(o.weightDecay, 'optim.weightDecay', 0, 10);
  pair(o.betas, 'optim.betas', 0, 0.999999999);
  num(o.eps, 'optim.eps', 0, 1);
  pair(o.momentum, 'optim.momentum', 0, 1);
  return cfg;
}

/** Masks must leave at least one visible and one masked column (the student and the loss need both). */
export function checkMaskFeasible(m: MaskConfig, patches: number): void {
  if (m.type === 'random') {
    const lo = Math.floor(patches * m.ratio[0]);
    const hi = Math.floor(patches * m.ratio[1]);
    if (lo < 1 || hi > patches - 1)
      throw new Error(`config: random mask ratio [${m.ratio}] over ${patches} patches masks ${lo}..${hi} columns; need 1..${patches - 1}`);
  } else {
    const lo = Math.floor(patches * m.ratio[0]);
    const hi = Math.floor(patches * m.ratio[1]);
    // The reference's start ~U[0, P − len − 1] needs len <= P − 1 (and P − 1 free columns minus the block).
    const maxLen = m.lastPatchMaskable ? patches - 1 : patches - 2;
    if (lo < 1 || hi > maxLen)
      throw new Error(`config: multiblock ratio [${m.ratio}] over ${patches} patches gives blocks of ${lo}..${hi} columns; need 1..${maxLen}`);
    // With the last patch maskable nothing else keeps a column visible: the blocks must not be
    // able to cover every column.
    if (m.lastPatchMaskable && m.blocks * hi >= patches)
      throw new Error(`config: multiblock ${m.blocks} blocks of up to ${hi} columns can cover all ${patches} patches; lower mask.ratio or mask.blocks`);
  }
}

/** Input samples per lead. */
export function inputLength(cfg: EcgJepaConfig): number {
  return cfg.patchSize * cfg.patches;
}

/** Tokens per sample when every column is present (C · P, lead-major). */
export function tokenCount(cfg: EcgJepaConfig): number {
  return cfg.leads.length * cfg.patches;
}

export function mlpHidden(d: TransformerDims): number {
  return Math.floor(d.dim * d.mlpRatio);
}

/** [name, shape] in the order of the official PyTorch state_dict (weights [out, in]). */
export type ParamSpec = readonly [string, readonly number[]];

function blockParams(prefix: string, d: TransformerDims): ParamSpec[] {
  const D = d.dim;
  const H = mlpHidden(d);
  return [
    [`${prefix}.norm1.weight`, [D]],
    [`${prefix}.norm1.bias`, [D]],
    [`${prefix}.attn.qkv.weight`, [3 * D, D]], // qkv_bias=False in encoder and predictor
    [`${prefix}.attn.proj.weight`, [D, D]],
    [`${prefix}.attn.proj.bias`, [D]],
    [`${prefix}.norm2.weight`, [D]],
    [`${prefix}.norm2.bias`, [D]],
    [`${prefix}.mlp.fc1.weight`, [H, D]],
    [`${prefix}.mlp.fc1.bias`, [H]],
    [`${prefix}.mlp.fc2.weight`, [D, H]],
    [`${prefix}.mlp.fc2.bias`, [D]],
  ];
}

/** Trainable encoder parameters (MaskTransformer state_dict minus the fixed `pos_embed`). */
export function encoderParamSpecs(cfg: EcgJepaConfig): ParamSpec[] {
  const D = cfg.encoder.dim;
  const out: ParamSpec[] = [
    ['W_P.weight', [D, cfg.patchSize]],
    ['W_P.bias', [D]],
  ];
  for (let i = 0; i < cfg.encoder.depth; i++) out.push(...blockParams(`encoder_blocks.blocks.${i}`, cfg.encoder));
  out.push(['norm.weight', [D]], ['norm.bias', [D]]);
  return out;
}

/** Trainable predictor parameters (MaskTransformerPredictor state_dict minus the fixed `pos_embed`). */
export function predictorParamSpecs(cfg: EcgJepaConfig): ParamSpec[] {
  const D = cfg.encoder.dim;
  const Dp = cfg.predictor.dim;
  const out: ParamSpec[] = [
    ['predictor_embed.weight', [Dp, D]],
    ['predictor_embed.bias', [Dp]],
    ['mask_token', [1, 1, Dp]],
  ];
  for (let i = 0; i < cfg.predictor.depth; i++) out.push(...blockParams(`predictor_blocks.blocks.${i}`, cfg.predictor));
  out.push(['predictor_norm.weight', [Dp]], ['predictor_norm.bias', [Dp]], ['predictor_proj.weight', [D, Dp]], ['predictor_proj.bias', [D]]);
  return out;
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export interface ParamCount {
  /** Trainable encoder parameters (student; the EMA teacher has as many, not trained). */
  encoder: number;
  /** Fixed sin-cos table of the encoder (C · P × D). */
  encoderFixed: number;
  predictor: number;
  /** Fixed 1-D sin-cos table of the predictor (P × Dp). */
  predictorFixed: number;
  /** Learnable in pretraining: student + predictor. */
  learnable: number;
}

/** Parameter counts from the dimensions. base: encoder 85,067,520, predictor 11,232,000. */
export function paramCount(cfg: EcgJepaConfig): ParamCount {
  const encoder = encoderParamSpecs(cfg).reduce((a, [, s]) => a + size(s), 0);
  const predictor = predictorParamSpecs(cfg).reduce((a, [, s]) => a + size(s), 0);
  return {
    encoder,
    encoderFixed: tokenCount(cfg) * cfg.encoder.dim,
    predictor,
    predictorFixed: cfg.patches * cfg.predictor.dim,
    learnable: encoder + predictor,
  };
}

/** Fields whose difference makes saved weights unusable (shapes) or the run a different model. */
const ARCH_FIELDS = ['patchSize', 'patches', 'encoder', 'predictor', 'lnEps'] as const;

/**
 * Differences between a saved config and the wanted one that forbid loading, as readable lines
 * (empty = compatible). Architecture must match exactly. Leads must match unless `allowLeadSubset`
 * (reduced-lead evaluation of a model trained on more leads: the weights do not depend on leads,
 * only the positional rows and the CroPA pattern do, and those are rebuilt for the subset).
 */
export function configDifferences(saved: EcgJepaConfig, wanted: EcgJepaConfig, opts: { allowLeadSubset?: boolean; ignorePreset?: boolean } = {}): string[] {
  const diffs: string[] = [];
  if (!opts.ignorePreset && saved.preset !== wanted.preset) diffs.push(`preset: checkpoint '${saved.preset}', wanted '${wanted.preset}'`);
  for (const f of ARCH_FIELDS) {
    const a = JSON.stringify(saved[f]);
    const b = JSON.stringify(wanted[f]);
    if (a !== b) diffs.push(`${f}: checkpoint ${a}, wanted ${b}`);
  }
  const names = (l: number[]) => `[${l.map((i) => LEAD_NAMES[i] ?? `#${i}`).join(', ')}]`;
  const sameLeads = JSON.stringify(saved.leads) === JSON.stringify(wanted.leads);
  if (!sameLeads) {
    const subset = wanted.leads.every((l) => saved.leads.includes(l));
    if (!(opts.allowLeadSubset && subset))
      diffs.push(`leads: checkpoint ${names(saved.leads)}, wanted ${names(wanted.leads)}${subset ? ' (a subset: pass allowLeadSubset for reduced-lead use)' : ''}`);
  }
  return diffs;
}
