// Masks over the time columns (the same columns in every lead), as the official
// MaskTransformer._make_rand_mask / _make_block_mask draw them, plus the index arrays the kernels
// need: gather indices of visible and masked tokens (lead-major, lead · P + column) and the
// predictor's per-lead column order (visible columns, then masked).
//
// Per-sample masks (mask.perSample) must still give every sample the same number of visible
// columns, so the batch stays one dense tensor:
// - random: the masked count n = floor(P · U(lo, hi)) is drawn once per batch; each sample then
//   picks its own n columns.
// - multiblock: each sample draws its own union of blocks; its masked set is then trimmed or grown
//   one column at a time at the edges of its masked runs (random edge each time) until it has the
//   batch's count, taken from one extra multiblock draw per batch. The count thus keeps the
//   reference's distribution and the masks stay made of contiguous runs.
import { Rng } from '../engine/random.js';
import { checkMaskFeasible, type MaskConfig } from './config.js';

export interface ColumnMask {
  /** Sorted visible column indices. */
  visible: number[];
  /** Sorted masked column indices. */
  masked: number[];
}

export interface BatchMask {
  batch: number;
  /** Leads per sample (C). */
  leads: number;
  /** Columns per lead (P). */
  patches: number;
  /** True when one mask is shared by the whole batch. */
  shared: boolean;
  /** One per sample (the same object repeated when shared). */
  samples: ColumnMask[];
  /** Visible (V) and masked (M) columns per sample; V + M = P. */
  numVisible: number;
  numMasked: number;
  /** [B, C·V] u32: per sample, lead · P + column of each visible token, lead-major. */
  visibleTokens: Uint32Array;
  /** [B, C·M] u32: likewise for masked tokens. */
  maskedTokens: Uint32Array;
  /** [B·C·V]: rows of the flattened [B·C·P, D] token matrix (b·C·P + lead·P + column). */
  visibleRows: Uint32Array;
  /** [B·C·M]: likewise for masked tokens. */
  maskedRows: Uint32Array;
  /** [B, P]: the predictor's column order per sample, visible then masked (gathers its 1-D table). */
  predictorOrder: Uint32Array;
}

/** Masked columns of one random mask with exactly `count` masked (torch.randperm(P)[:count]). */
export function randomColumns(rng: Rng, patches: number, count: number): boolean[] {
  if (!Number.isInteger(count) || count < 0 || count > patches) throw new RangeError(`randomColumns: count ${count} not in 0..${patches}`);
  const perm = rng.shuffle(Array.from({ length: patches }, (_, i) => i)) as number[];
  const mask = new Array<boolean>(patches).fill(false);
  for (let i = 0; i < count; i++) mask[perm[i]] = true;
  return mask;
}

/** The random rule's count: floor(P · U(lo, hi)). */
export function randomCount(rng: Rng, patches: number, ratio: readonly [number, number]): number {
  return Math.floor(patches * rng.uniform(ratio[0], ratio[1]));
}

/**
 * Masked columns of one multiblock mask: `blocks` blocks, each of length floor(P · U(lo, hi)),
 * start uniform in [0, P − len] (lastPatchMaskable) or [0, P − len − 1] (the reference, which
 * therefore never masks column P − 1); the union is masked.
 */
export function multiblockColumns(rng: Rng, patches: number, ratio: readonly [number, number], blocks: number, lastPatchMaskable: boolean): boolean[] {
  const mask = new Array<boolean>(patches).fill(false);
  for (let b = 0; b < blocks; b++) {
    const len = Math.floor(patches * rng.uniform(ratio[0], ratio[1]));
    const starts = lastPatchMaskable ? patches - len + 1 : patches - len;
    if (starts <= 0) throw new RangeError(`multiblockColumns: block of ${len} does not fit ${patches} patches`);
    const s = rng.int(starts);
    for (let i = s; i < s + len; i++) mask[i] = true;
  }
  return mask;
}

/** Trims or grows a mask at the edges of its masked runs until it masks exactly `target` columns. */
export function equaliseMask(rng: Rng, mask: boolean[], target: number, lastPatchMaskable: boolean): boolean[] {
  const P = mask.length;
  const limit = lastPatchMaskable ? P : P - 1;
  if (target < 1 || target > limit) throw new RangeError(`equaliseMask: target ${target} not in 1..${limit}`);
  const m = [...mask];
  let n = m.filter(Boolean).length;
  const edge = (i: number) => (i > 0 && m[i - 1] !== m[i]) || (i < P - 1 && m[i + 1] !== m[i]);
  while (n !== target) {
    const want = n < target; // true: mask one more column next to a run; false: unmask a run end
    const cand: number[] = [];
    for (let i = 0; i < limit; i++) if (m[i] !== want && edge(i)) cand.push(i);
    // No run edge (nothing or everything masked): any column will do.
    if (cand.length === 0) for (let i = 0; i < limit; i++) if (m[i] !== want) cand.push(i);
    const pick = cand[rng.int(cand.length)];
    m[pick] = want;
    n += want ? 1 : -1;
  }
  return m;
}

function toColumns(mask: readonly boolean[]): ColumnMask {
  const visible: number[] = [];
  const masked: number[] = [];
  mask.forEach((m, i) => (m ? masked : visible).push(i));
  return { visible, masked };
}

/** Draws the batch's masks with the configured rule (see the file header for per-sample counts). */
export function drawMask(rng: Rng, cfg: MaskConfig, batch: number, leads: number, patches: number): BatchMask {
  checkMaskFeasible(cfg, patches);
  if (!Number.isInteger(batch) || batch <= 0) throw new RangeError(`drawMask: batch ${batch} must be a positive integer`);
  const one = (): boolean[] =>
    cfg.type === 'random' ? randomColumns(rng, patches, randomCount(rng, patches, cfg.ratio)) : multiblockColumns(rng, patches, cfg.ratio, cfg.blocks, cfg.lastPatchMaskable);
  if (!cfg.perSample) return buildBatchMask([toColumns(one()).masked], batch, leads, patches);
  const masks: boolean[][] = [];
  if (cfg.type === 'random') {
    const n = randomCount(rng, patches, cfg.ratio);
    for (let b = 0; b < batch; b++) masks.push(randomColumns(rng, patches, n));
  } else {
    const n = one().filter(Boolean).length;
    for (let b = 0; b < batch; b++) masks.push(equaliseMask(rng, one(), n, cfg.lastPatchMaskable));
  }
  return buildBatchMask(masks.map((m) => toColumns(m).masked), batch, leads, patches);
}

/**
 * A BatchMask from explicit masked columns: one list (shared by the batch) or one per sample
 * (all with the same count). Columns may come in any order; duplicates are an error.
 */
export function buildBatchMask(masked: readonly (readonly number[])[], batch: number, leads: number, patches: number): BatchMask {
  if (masked.length !== 1 && masked.length !== batch) throw new RangeError(`buildBatchMask: ${masked.length} masks for a batch of ${batch} (give 1 or ${batch})`);
  if (!Number.isInteger(leads) || leads <= 0 || !Number.isInteger(patches) || patches <= 0) throw new RangeError(`buildBatchMask: leads ${leads}, patches ${patches} must be positive integers`);
  const samples = masked.map((cols, s) => {
    const isMasked = new Array<boolean>(patches).fill(false);
    for (const c of cols) {
      if (!Number.isInteger(c) || c < 0 || c >= patches) throw new RangeError(`buildBatchMask: sample ${s}: column ${c} not in 0..${patches - 1}`);
      if (isMasked[c]) throw new RangeError(`buildBatchMask: sample ${s}: column ${c} masked twice`);
      isMasked[c] = true;
    }
    return toColumns(isMasked);
  });
  const M = samples[0].masked.length;
  samples.forEach((s, i) => {
    if (s.masked.length !== M) throw new RangeError(`buildBatchMask: sample ${i} masks ${s.masked.length} columns, sample 0 masks ${M}; a batch needs one count`);
  });
  const V = patches - M;
  if (V === 0 || M === 0) throw new RangeError(`buildBatchMask: ${M} of ${patches} columns masked; need at least one visible and one masked`);
  const shared = samples.length === 1;
  const per = shared ? new Array<ColumnMask>(batch).fill(samples[0]) : samples;
  const T = leads * patches;
  const visibleTokens = new Uint32Array(batch * leads * V);
  const maskedTokens = new Uint32Array(batch * leads * M);
  const visibleRows = new Uint32Array(batch * leads * V);
  const maskedRows = new Uint32Array(batch * leads * M);
  const predictorOrder = new Uint32Array(batch * patches);
  per.forEach((s, b) => {
    for (let l = 0; l < leads; l++) {
      s.visible.forEach((c, j) => {
        const k = (b * leads + l) * V + j;
        visibleTokens[k] = l * patches + c;
        visibleRows[k] = b * T + l * patches + c;
      });
      s.masked.forEach((c, j) => {
        const k = (b * leads + l) * M + j;
        maskedTokens[k] = l * patches + c;
        maskedRows[k] = b * T + l * patches + c;
      });
    }
    predictorOrder.set([...s.visible, ...s.masked], b * patches);
  });
  return { batch, leads, patches, shared, samples: per, numVisible: V, numMasked: M, visibleTokens, maskedTokens, visibleRows, maskedRows, predictorOrder };
}

/** The masks of samples start .. start + count − 1 of `mask`, as a batch of their own (a micro-batch). */
export function maskSlice(mask: BatchMask, start: number, count: number): BatchMask {
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count <= 0 || start + count > mask.batch)
    throw new RangeError(`maskSlice: samples ${start} + ${count} of a batch of ${mask.batch}`);
  const masked = mask.shared ? [mask.samples[0].masked] : mask.samples.slice(start, start + count).map((s) => s.masked);
  return buildBatchMask(masked, count, mask.leads, mask.patches);
}
