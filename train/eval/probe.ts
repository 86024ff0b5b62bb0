// Linear probe on frozen features (the paper's linear evaluation): a linear head trained with AdamW
// (lr 0.01, weight decay 0.01 (torch's default; the config's 0.005 is never passed), batch 16,
// 10 epochs, timm cosine with 10 warm-up iterations from 1e-3 and floor 1e-3), BCE-with-logits for
// multi-label, cross-entropy for multi-class, MSE or L1 for regression; the last epoch's head is
// evaluated (no model selection), as the reference does.
//
// The head trains on the CPU in float64, not on the GPU engine: the features are precomputed and
// small (PTB-XL: 17 k × 768, a 768 × 5 head: ~1 GFLOP over the whole run), so the GPU would only add
// uploads, loss kernels and shader compiles, and float64 makes the probe exactly reproducible and
// lets this file run unchanged in both test runners. Only `probe()` (embed + this) needs Node.
import type { Engine } from '../../engine/engine.js';
import { cosineLr } from '../../engine/optim.js';
import { Rng } from '../../engine/random.js';
import {
  accuracy, argmaxRows, brierScore, confusionMatrix, macroAuc, macroAucCi, macroAveragePrecision, macroF1, mae, maeCi, meanStd, oneHot, ovoMacroAuc, pearson, rmse, rocCurve,
  sigmoid, softmaxRows, threshold, tuneThresholds, column, type Interval, type RocCurve,
} from './metrics.js';

export type ProbeTask = 'multilabel' | 'multiclass' | 'regression';

// ---------------------------------------------------------------------------------------------
// Targets from manifest labels

/** Column orders for label fields whose classes are known in advance (a class absent from the data
 *  then still gets its column, and its absence is reported rather than silently dropped). */
export const KNOWN_CLASSES: Readonly<Record<string, readonly string[]>> = {
  // train/data/synth.ts SYNTH_CLASSES (repeated: this file stays free of the generator)
  conditions: ['NORM', 'SBRAD', 'STACH', 'AFIB', 'AFLT', '1AVB', 'RBBB', 'LBBB', 'STE', 'STD', 'LVH', 'PVC'],
  superdiagnostic: ['CD', 'HYP', 'MI', 'NORM', 'STTC'],
  // train/data/code15.ts CODE15_CLASSES
  code15: ['1dAVb', 'RBBB', 'LBBB', 'SB', 'ST', 'AF', 'normal_ecg'],
};

export interface Targets {
  task: ProbeTask;
  label: string;
  /** Classification: column names. Regression: [label]. */
  classes: string[];
  /** Rows usable for this task (indices into the input records). */
  rows: number[];
  /** [rows.length, K]: multi-hot / one-hot, or the regression value (K = 1). */
  y: Float64Array;
  /** Multi-class: class index per row. */
  classIndex?: Int32Array;
  notes: string[];
}

/** Reads `labels[label]` ('a.b' descends into objects). */
function field(labels: Record<string, unknown> | null | undefined, label: string): unknown {
  let v: unknown = labels;
  for (const part of label.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** A label value as a list of class names: string[], a string, or {class: true|1} maps. */
const isFlagMap = (v: unknown): v is Record<string, boolean | number> =>
  !!v && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'boolean' || typeof x === 'number');

/** A label value as class names: a name, an integer code, a list of names, or a map of names to flags (true or 1:
 *  the class applies) or, with `likelihoods`, to likelihoods (every key applies: PTB-XL's scp_codes,
 *  where 0 means an unknown likelihood, not absence). */
function asClassList(v: unknown, likelihoods: boolean): string[] | null {
  if (typeof v === 'string') return [v];
  if (typeof v === 'number' && Number.isInteger(v)) return [String(v)]; // a coded class (0/1 outcome, sex)
  if (Array.isArray(v) && v.every((s) => typeof s === 'string')) return v as string[];
  if (isFlagMap(v)) return Object.entries(v).filter(([, x]) => likelihoods || x === true || x === 1).map(([k]) => k);
  return null;
}

/** The class names of each value of one label field (null where a value names none). Maps of
 *  numbers other than 0 and 1 somewhere in the field are likelihoods, not flags. */
export function classLists(values: readonly unknown[]): { lists: (string[] | null)[]; likelihoods: boolean } {
  const likelihoods = values.some((v) => isFlagMap(v) && Object.values(v).some((x) => typeof x === 'number' && x !== 0 && x !== 1));
  return { lists: values.map((v) => asClassList(v, likelihoods)), likelihoods };
}

function availableFields(labels: readonly Record<string, unknown>[]): string[] {
  const s = new Set<string>();
  for (const l of labels.slice(0, 1000)) for (const k of Object.keys(l ?? {})) s.add(k);
  return [...s].sort();
}

/** More distinct integers than this in a label field are a measurement (heart rate), not class codes. */
export const MAX_CLASS_CODES = 20;

/** The targets of one task from per-record labels; records without a usable value are dropped (noted). */
export function extractTargets(labels: readonly Record<string, unknown>[], task: ProbeTask, label: string, classes?: readonly string[]): Targets {
  if (!['multilabel', 'multiclass', 'regression'].includes(task)) throw new Error(`probe: task must be multilabel, multiclass or regression, got '${task}'`);
  const values = labels.map((l) => field(l, label));
  if (values.every((v) => v === undefined || v === null)) {
    const have = availableFields(labels);
    throw new Error(`probe: no record has a label '${label}'` + (have.length ? ` (labels present: ${have.join(', ')})` : ' (the dataset has no labels; prepare it from a labelled source)'));
  }
  const notes: string[] = [];
  const rows: number[] = [];
  if (task === 'regression') {
    const y: number[] = [];
    values.forEach((v, i) => {
      if (typeof v === 'number' && Number.isFinite(v)) {
        rows.push(i);
        y.push(v);
      }
    });
    const dropped = values.length - rows.length;
    if (dropped) notes.push(`${dropped} record(s) without a numeric '${label}' dropped`);
    if (rows.length === 0) throw new Error(`probe: '${label}' is not numeric in any record; use --task multilabel or multiclass for class labels`);
    return { task, label, classes: [label], rows, y: Float64Array.from(y), notes };
  }
  const { lists, likelihoods } = classLists(values);
  if (likelihoods) notes.push(`'${label}' maps classes to likelihoods: every class listed for a record applies to it`);
  const fraction = values.find((v) => typeof v === 'number' && !Number.isInteger(v));
  if (fraction !== undefined) throw new Error(`probe: '${label}' holds measurements (e.g. ${fraction}), not class codes; use --task regression`);
  const codes = new Set(values.filter((v) => typeof v === 'number'));
  if (codes.size > MAX_CLASS_CODES && !classes) throw new Error(`probe: '${label}' holds ${codes.size} distinct integers, too many to be class codes; use --task regression for a measurement`);
  if (codes.size) notes.push(`'${label}' holds integers: each value is a class`);
  if (lists.every((l) => l === null)) throw new Error(`probe: '${label}' holds no class names (got e.g. ${JSON.stringify(values.find((v) => v !== undefined))}); use --task regression for numbers`);
  let cls: string[];
  if (classes) cls = [...classes];
  else {
    const seen = new Set<string>();
    for (const l of lists) for (const c of l ?? []) seen.add(c);
    const known = KNOWN_CLASSES[label];
    cls = known && [...seen].every((c) => known.includes(c)) ? [...known] : [...seen].sort();
  }
  const K = cls.length;
  if (K < 2) throw new Error(`probe: '${label}' has ${K} class(es) (${cls.join(', ')}); a classifier needs at least 2` + (codes.size ? ' (for a measurement: --task regression)' : ''));
  let empty = 0, multi = 0, unknown = 0, missing = 0;
  const y: number[] = [];
  const idx: number[] = [];
  lists.forEach((l, i) => {
    if (l === null) return void missing++;
    const ks = [...new Set(l)].map((c) => cls.indexOf(c));
    if (ks.some((k) => k < 0)) return void unknown++;
    if (ks.length === 0) return void empty++;
    if (task === 'multiclass' && ks.length !== 1) return void multi++;
    const row = new Array<number>(K).fill(0);
    for (const k of ks) row[k] = 1;
    rows.push(i);
    y.push(...row);
    idx.push(ks[0]);
  });
  if (missing) notes.push(`${missing} record(s) without '${label}' dropped`);
  if (empty) notes.push(`${empty} record(s) with no ${label} class dropped`);
  if (unknown) notes.push(`${unknown} record(s) with a class outside [${cls.join(', ')}] dropped`);
  if (multi) notes.push(`${multi} record(s) with more than one class dropped (multi-class uses single-label records only)`);
  if (rows.length === 0) throw new Error(`probe: no record is usable for ${task} on '${label}'`);
  return { task, label, classes: cls, rows, y: Float64Array.from(y), ...(task === 'multiclass' ? { classIndex: Int32Array.from(idx) } : {}), notes };
}

// ---------------------------------------------------------------------------------------------
// Splits

export interface SplitSpec {
  train: (number | string)[];
  /** May be empty (no validation: thresholds are not tuned). */
  val: (number | string)[];
  test: (number | string)[];
}

/** PTB-XL's recommended split: folds 1–8 train, 9 validation, 10 test (synthetic records: fold = i % 10 + 1). */
export const DEFAULT_SPLIT: SplitSpec = { train: [1, 2, 3, 4, 5, 6, 7, 8], val: [9], test: [10] };

/** 'TRAIN/VAL/TEST', each a comma list of folds or ranges: '1-8/9/10', '1-9//10', 'g1,g2,g3/g4/g5'. */
export function parseSplit(s: string): SplitSpec {
  const parts = s.split('/');
  if (parts.length !== 3) throw new Error(`split '${s}': expected TRAIN/VAL/TEST, e.g. 1-8/9/10 (VAL may be empty: 1-9//10)`);
  const list = (p: string): (number | string)[] =>
    p.split(',').map((x) => x.trim()).filter(Boolean).flatMap((x) => {
      const r = /^(\d+)-(\d+)$/.exec(x);
      if (r) {
        const [a, b] = [Number(r[1]), Number(r[2])];
        if (a > b) throw new Error(`split '${s}': empty range ${x}`);
        return Array.from({ length: b - a + 1 }, (_, i) => a + i);
      }
      return [/^\d+$/.test(x) ? Number(x) : x];
    });
  const spec = { train: list(parts[0]), val: list(parts[1]), test: list(parts[2]) };
  if (!spec.train.length || !spec.test.length) throw new Error(`split '${s}': train and test folds are required`);
  return spec;
}

export function splitRows(folds: readonly (number | string | null)[], rows: readonly number[], spec: SplitSpec): { train: number[]; val: number[]; test: number[] } {
  const all = [...spec.train, ...spec.val, ...spec.test].map(String);
  if (new Set(all).size !== all.length) throw new Error(`split: a fold is in more than one part (${JSON.stringify(spec)})`);
  if (rows.every((r) => folds[r] === null || folds[r] === undefined)) throw new Error('probe: the records have no folds; give a split that the dataset defines, or prepare it from a source with folds');
  const part = (f: (number | string)[]) => {
    const set = new Set(f.map(String));
    return rows.map((r, i) => [r, i] as const).filter(([r]) => set.has(String(folds[r]))).map(([, i]) => i);
  };
  const out = { train: part(spec.train), val: part(spec.val), test: part(spec.test) };
  if (!out.train.length) throw new Error(`probe: no usable record in the training folds [${spec.train}]`);
  if (!out.test.length) throw new Error(`probe: no usable record in the test folds [${spec.test}]`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The head

export interface HeadOptions {
  epochs?: number;
  batch?: number;
  lr?: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  warmupSteps?: number;
  warmupLr?: number;
  minLr?: number;
  /** Regression loss. Default 'mse'. */
  regressionLoss?: 'mse' | 'l1';
  /** Standardise each feature with the training rows' mean and std before the head (see PAPER_HEAD). */
  standardize?: boolean;
  seed?: number;
}

/**
 * The reference's head settings, plus one deliberate difference: features are standardised (per
 * feature, training-set statistics; what MAE-style probes get from a non-affine BatchNorm). A linear
 * head can represent the same functions either way, but mean-pooled LayerNorm outputs can vary
 * little across records next to their mean (tiny preset: std 0.006 vs |mean| 0.8), and then 10
 * epochs at lr 0.01 cannot grow the weights enough to use them. `standardize: false` is the exact
 * reference protocol.
 */
export const PAPER_HEAD: Required<HeadOptions> = {
  epochs: 10, batch: 16, lr: 0.01, weightDecay: 0.01, betas: [0.9, 0.999], eps: 1e-8, warmupSteps: 10, warmupLr: 0.001, minLr: 0.001, regressionLoss: 'mse', standardize: true, seed: 0,
};

/** A linear head as a map: standardise inputs, W·x + b, then scale and shift. */
export interface HeadMap {
  /** [K, D] row-major (torch nn.Linear layout). */
  weight: Float64Array;
  bias: Float64Array;
  inFeatures: number;
  outFeatures: number;
  /** Per-feature mean and 1/std applied to inputs (0 and 1 without standardisation). */
  featMean: Float64Array;
  featInvStd: Float64Array;
  /** Regression: predictions are out·scale + shift (targets were standardised for training). */
  shift: number;
  scale: number;
}

export interface LinearHead extends HeadMap {
  /** Mean training loss per epoch. */
  losses: number[];
}

/** logits [n, K] = X W^T + b (then un-standardised for regression heads). */
export function applyHead(h: HeadMap, X: ArrayLike<number>, rows?: readonly number[]): Float64Array {
  const D = h.inFeatures, K = h.outFeatures;
  const n = rows ? rows.length : X.length / D;
  const out = new Float64Array(n * K);
  for (let i = 0; i < n; i++) {
    const o = (rows ? rows[i] : i) * D;
    for (let k = 0; k < K; k++) {
      let s = h.bias[k];
      const w = k * D;
      for (let d = 0; d < D; d++) s += (X[o + d] - h.featMean[d]) * h.featInvStd[d] * h.weight[w + d];
      out[i * K + k] = s * h.scale + h.shift;
    }
  }
  return out;
}

/** The same map as one plain linear layer on raw features (no standardisation, no output scaling), in float64:
 *  out = X·(W·diag(1/σ)·scale)ᵀ + ((b − W·(μ/σ))·scale + shift). */
export function foldHead(h: HeadMap): HeadMap {
  const D = h.inFeatures, K = h.outFeatures;
  const weight = new Float64Array(K * D), bias = new Float64Array(K);
  for (let k = 0; k < K; k++) {
    let c = h.bias[k];
    for (let d = 0; d < D; d++) {
      const w = h.weight[k * D + d] * h.featInvStd[d];
      weight[k * D + d] = w * h.scale;
      c -= w * h.featMean[d];
    }
    bias[k] = c * h.scale + h.shift;
  }
  return { weight, bias, inFeatures: D, outFeatures: K, featMean: new Float64Array(D), featInvStd: new Float64Array(D).fill(1), shift: 0, scale: 1 };
}

/**
 * Loss of one row of logits z[zo..zo+K) against targets T[to..to+K), and dL/dz written over z, each
 * loss averaged as torch's default reduction does over a batch of B rows: BCE-with-logits (mean
 * over B·K), cross-entropy (mean over B), MSE or L1 (mean over B·K). Returns the row's loss summed
 * over its K terms (cross-entropy: the row's loss).
 */
export function rowLossGrad(z: Float64Array, zo: number, T: ArrayLike<number>, to: number, K: number, B: number, task: ProbeTask, regressionLoss: 'mse' | 'l1' = 'mse'): number {
  let loss = 0;
  if (task === 'multilabel') {
    for (let k = 0; k < K; k++) {
      const s = z[zo + k], y = T[to + k];
      loss += Math.max(s, 0) - s * y + Math.log1p(Math.exp(-Math.abs(s)));
      z[zo + k] = (sigmoid(s) - y) / (B * K);
    }
  } else if (task === 'multiclass') {
    let mx = -Infinity;
    for (let k = 0; k < K; k++) mx = Math.max(mx, z[zo + k]);
    let se = 0;
    for (let k = 0; k < K; k++) se += Math.exp(z[zo + k] - mx);
    for (let k = 0; k < K; k++) {
      const p = Math.exp(z[zo + k] - mx) / se, y = T[to + k];
      if (y === 1) loss += -(z[zo + k] - mx - Math.log(se));
      z[zo + k] = (p - y) / B;
    }
  } else {
    for (let k = 0; k < K; k++) {
      const d = z[zo + k] - T[to + k];
      loss += regressionLoss === 'l1' ? Math.abs(d) : d * d;
      z[zo + k] = (regressionLoss === 'l1' ? Math.sign(d) : 2 * d) / (B * K);
    }
  }
  return loss;
}

/** One torch-style AdamW update (decoupled decay on every parameter, bias-corrected moments); `step` counts from 1. */
export function adamwStep64(params: Float64Array[], grads: Float64Array[], m1: Float64Array[], m2: Float64Array[], step: number, lr: number, o: { betas: [number, number]; eps: number; weightDecay: number }): void {
  const [b1, b2] = o.betas;
  const c1 = 1 - b1 ** step, c2 = 1 - b2 ** step;
  params.forEach((p, pi) => {
    const g = grads[pi], m = m1[pi], v = m2[pi];
    for (let i = 0; i < p.length; i++) {
      p[i] *= 1 - lr * o.weightDecay;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      p[i] -= (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + o.eps);
    }
  });
}

/**
 * Trains a linear head on X[rows] (features [N, D]) against targets Y [rows.length, K]. Init and
 * update follow torch: weights and bias ~ U(±1/√D) (nn.Linear), AdamW with decoupled decay on
 * every parameter, bias-corrected moments; batches shuffled per epoch, the last one kept partial.
 * Regression targets are standardised with the training mean/std (a head starting near 0 could not
 * reach ~70 bpm in 10 epochs at lr 0.01), and predictions mapped back.
 */
export function trainHead(X: ArrayLike<number>, D: number, rows: readonly number[], Y: ArrayLike<number>, K: number, task: ProbeTask, opts: HeadOptions = {}): LinearHead {
  const o = { ...PAPER_HEAD, ...opts };
  const n = rows.length;
  if (n === 0) throw new Error('trainHead: no training rows');
  if (Y.length !== n * K) throw new RangeError(`trainHead: ${Y.length} targets for ${n} rows × ${K}`);
  let shift = 0, scale = 1;
  const T = Float64Array.from(Y);
  if (task === 'regression') {
    const m = meanStd(Array.from(T));
    shift = m.mean;
    scale = m.std > 0 ? m.std : 1;
    for (let i = 0; i < T.length; i++) T[i] = (T[i] - shift) / scale;
  }
  const featMean = new Float64Array(D);
  const featInvStd = new Float64Array(D).fill(1);
  if (o.standardize) {
    for (const r of rows) for (let d = 0; d < D; d++) featMean[d] += X[r * D + d] / n;
    const v = new Float64Array(D);
    for (const r of rows) for (let d = 0; d < D; d++) v[d] += (X[r * D + d] - featMean[d]) ** 2 / n;
    // A constant feature stays 0 after centring; leave its scale alone.
    for (let d = 0; d < D; d++) featInvStd[d] = v[d] > 1e-24 ? 1 / Math.sqrt(v[d]) : 1;
  }
  const xs = new Float64Array(D);
  const rng = new Rng(o.seed);
  const bound = 1 / Math.sqrt(D);
  const W = Float64Array.from({ length: K * D }, () => rng.uniform(-bound, bound));
  const b = Float64Array.from({ length: K }, () => rng.uniform(-bound, bound));
  const params = [W, b];
  const m1 = params.map((p) => new Float64Array(p.length));
  const m2 = params.map((p) => new Float64Array(p.length));
  const gW = new Float64Array(K * D), gb = new Float64Array(K);
  const grads = [gW, gb];
  const itersPerEpoch = Math.ceil(n / o.batch);
  const sched = { lr: o.lr, totalSteps: itersPerEpoch * o.epochs, warmupSteps: o.warmupSteps, warmupLr: o.warmupLr, minLr: o.minLr };
  const order = Array.from({ length: n }, (_, i) => i);
  const z = new Float64Array(o.batch * K);
  const losses: number[] = [];
  let step = 0;
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    rng.shuffle(order);
    let lossSum = 0;
    for (let start = 0; start < n; start += o.batch) {
      const B = Math.min(o.batch, n - start);
      gW.fill(0);
      gb.fill(0);
      let loss = 0;
      for (let j = 0; j < B; j++) {
        const t = order[start + j];
        const x = rows[t] * D;
        for (let d = 0; d < D; d++) xs[d] = (X[x + d] - featMean[d]) * featInvStd[d];
        for (let k = 0; k < K; k++) {
          let s = b[k];
          for (let d = 0; d < D; d++) s += xs[d] * W[k * D + d];
          z[j * K + k] = s;
        }
        loss += rowLossGrad(z, j * K, T, t * K, K, B, task, o.regressionLoss);
        for (let k = 0; k < K; k++) {
          const g = z[j * K + k];
          gb[k] += g;
          for (let d = 0; d < D; d++) gW[k * D + d] += g * xs[d];
        }
      }
      lossSum += task === 'multiclass' ? loss : loss / K;
      const lr = cosineLr(step, sched);
      step++;
      adamwStep64(params, grads, m1, m2, step, lr, o);
    }
    losses.push(lossSum / n);
    if (!Number.isFinite(losses[losses.length - 1])) throw new Error(`probe: the head's loss is ${losses[losses.length - 1]} in epoch ${epoch + 1} (non-finite features?)`);
  }
  return { weight: W, bias: b, inFeatures: D, outFeatures: K, featMean, featInvStd, shift, scale, losses };
}

// ---------------------------------------------------------------------------------------------
// Evaluation

export interface ClassificationMetrics {
  kind: 'classification';
  n: number;
  /** Positives per class in this set. */
  support: number[];
  /** Multi-label: mean of per-class AUCs. Multi-class: one-vs-rest. */
  auc: { macro: number | null; perClass: (number | null)[]; ci: Interval | null };
  /** Multi-class only: macro AUC one-vs-one, the reference code's linear-probe metric (metrics.ts ovoMacroAuc). */
  aucOvo?: number | null;
  /** Macro average precision (area under the precision–recall curve; one-vs-rest for multi-class). */
  ap: { macro: number | null; perClass: (number | null)[] };
  /** Brier score of the probabilities (metrics.ts brierScore): lower is better calibrated and sharper. */
  brier: number;
  /** Multi-label: sigmoid ≥ 0.5. Multi-class: argmax. */
  f1: { macro: number | null; perClass: (number | null)[] };
  /** Multi-label only, with thresholds tuned on the validation set. */
  f1Tuned?: { macro: number | null; perClass: (number | null)[]; thresholds: number[] };
  /** Multi-class: argmax accuracy. Multi-label: exact match at 0.5. */
  accuracy: number;
  /** Multi-class: counts[true][predicted]. */
  confusion?: number[][];
  /** Classes left out of the macro averages. */
  excluded: string[];
}

export interface RegressionMetrics {
  kind: 'regression';
  n: number;
  mae: number;
  maeCi: Interval | null;
  rmse: number;
  pearson: number | null;
  /** MAE of always predicting the training mean: what the features must beat. */
  maeOfMean: number;
  targetMean: number;
  targetStd: number;
}

export type Metrics = ClassificationMetrics | RegressionMetrics;

export interface EvalOptions {
  /** Bootstrap resamples for the CIs (0: none). Default 1000. */
  bootstrap?: number;
  bootstrapSeed?: number;
}

/** The scores AUC and ROC curves rank: multi-label logits as they are (sigmoid would round large
 *  ones to a tie at 1), multi-class softmax probabilities (as sklearn's predict_proba). */
export function aucScores(task: ProbeTask, logits: Float64Array, K: number): Float64Array {
  return task === 'multiclass' ? softmaxRows(logits, K) : logits;
}

/** Metrics of head outputs (logits, or predictions for regression) against targets; notes go to `notes` prefixed by `where`. */
export function evaluate(task: ProbeTask, classes: string[], logits: Float64Array, y: Float64Array, K: number, notes: string[], where: string, o: EvalOptions, tuned?: number[], trainMean?: number): Metrics {
  const n = logits.length / K;
  const boot = { resamples: o.bootstrap ?? 1000, seed: o.bootstrapSeed ?? 0 };
  if (task === 'regression') {
    const tm = meanStd(Array.from(y));
    const mean0 = trainMean ?? tm.mean;
    return {
      kind: 'regression', n,
      mae: mae(logits, y),
      maeCi: boot.resamples > 0 ? maeCi(logits, y, boot) : null,
      rmse: rmse(logits, y),
      pearson: pearson(logits, y),
      maeOfMean: mae(new Float64Array(n).fill(mean0), y),
      targetMean: tm.mean,
      targetStd: tm.std,
    };
  }
  const probs = task === 'multiclass' ? softmaxRows(logits, K) : logits.map(sigmoid);
  const scores = aucScores(task, logits, K);
  const auc = macroAuc(scores, y, K, classes);
  const dec = task === 'multiclass' ? oneHot(argmaxRows(logits, K), K) : threshold(probs, K, 0.5);
  const f1 = macroF1(dec, y, K, classes);
  const ap = macroAveragePrecision(scores, y, K, classes);
  const add = (ns: string[]) => ns.forEach((s) => notes.push(`${where}: ${s}`));
  add(auc.notes);
  add(ap.notes);
  // F1 leaves out the classes neither present nor predicted, a subset of the AUC's no-positive ones: its note would repeat.
  const out: ClassificationMetrics = {
    kind: 'classification', n,
    support: Array.from({ length: K }, (_, k) => column(y, K, k).reduce((a, b) => a + b, 0)),
    auc: { macro: auc.macro, perClass: auc.perClass, ci: boot.resamples > 0 ? macroAucCi(scores, y, K, boot) : null },
    ap: { macro: ap.macro, perClass: ap.perClass },
    brier: brierScore(probs, y, K, task === 'multiclass'),
    f1: { macro: f1.macro, perClass: f1.perClass },
    accuracy: accuracy(dec, y, K),
    excluded: [...new Set([...auc.excluded, ...f1.excluded])],
  };
  if (task === 'multiclass') {
    out.confusion = confusionMatrix(argmaxRows(y, K), argmaxRows(logits, K), K);
    // Its note (pairs of an absent class left out) would repeat the one-vs-rest note on that class.
    out.aucOvo = ovoMacroAuc(scores, y, K, classes).macro;
  }
  if (tuned) {
    const ft = macroF1(threshold(probs, K, tuned), y, K, classes);
    out.f1Tuned = { macro: ft.macro, perClass: ft.perClass, thresholds: tuned };
  }
  return out;
}

export interface ProbeOptions extends EvalOptions {
  task: ProbeTask;
  label: string;
  /** Column order / class set (default: known list for the label, else the sorted union). */
  classes?: string[];
  split?: SplitSpec;
  head?: HeadOptions;
  /** Low-shot: fractions of the training set (< 1), each probed with `seeds` random subsets. */
  fractions?: number[];
  /** Seeds of the low-shot subsets (and their heads). Default [0, 1, 2]. */
  seeds?: number[];
  /** Keep the test ROC curves (for plots). Default true. */
  curves?: boolean;
  /** Called with the head trained on the whole training split (the one the test metrics are of). */
  onHead?: (head: HeadMap) => void;
}

export interface LowShotResult {
  fraction: number;
  trainSize: number;
  seeds: number[];
  /** Headline metric per seed: macro AUC (classification) or MAE (regression); null when undefined. */
  values: (number | null)[];
  mean: number | null;
  std: number | null;
  /** Macro F1 per seed (classification). */
  f1?: (number | null)[];
  f1Mean?: number | null;
  f1Std?: number | null;
}

export interface ProbeResult {
  task: ProbeTask;
  label: string;
  classes: string[];
  dim: number;
  split: SplitSpec & { sizes: { train: number; val: number; test: number } };
  head: Required<HeadOptions>;
  /** Mean training loss per epoch of the full-data head. */
  losses: number[];
  test: Metrics;
  val: Metrics | null;
  lowShot: LowShotResult[];
  /** Test ROC curves per class (classification; null where undefined). */
  curves?: (RocCurve | null)[];
  notes: string[];
}

function subsetY(y: Float64Array, K: number, idx: readonly number[]): Float64Array {
  const out = new Float64Array(idx.length * K);
  idx.forEach((i, j) => out.set(y.subarray(i * K, i * K + K), j * K));
  return out;
}

/**
 * The whole linear evaluation on precomputed features [N, D] with per-record labels and folds:
 * targets, split, head on the training folds, metrics on validation and test (F1 thresholds tuned
 * on validation), low-shot repeats.
 */
export function probeFeatures(features: ArrayLike<number>, dim: number, records: { labels: readonly Record<string, unknown>[]; folds: readonly (number | string | null)[] }, o: ProbeOptions): ProbeResult {
  const N = records.labels.length;
  if (features.length !== N * dim) throw new RangeError(`probe: ${features.length} feature values for ${N} records × ${dim}`);
  if (records.folds.length !== N) throw new RangeError(`probe: ${records.folds.length} folds for ${N} records`);
  const tg = extractTargets(records.labels, o.task, o.label, o.classes);
  const K = tg.classes.length;
  const spec = o.split ?? DEFAULT_SPLIT;
  const sp = splitRows(records.folds, tg.rows, spec);
  const notes = [...tg.notes];
  const head = { ...PAPER_HEAD, ...o.head };
  const rowsOf = (idx: readonly number[]) => idx.map((i) => tg.rows[i]);
  const fit = (idx: readonly number[], seed: number) => trainHead(features, dim, rowsOf(idx), subsetY(tg.y, K, idx), K, o.task, { ...head, seed });
  const predict = (h: LinearHead, idx: readonly number[]) => applyHead(h, features, rowsOf(idx));
  const trainMean = (idx: readonly number[]) => (o.task === 'regression' ? meanStd(idx.map((i) => tg.y[i])).mean : undefined);

  /** The classes with no positive example among training rows `idx` (the head cannot learn them). */
  const unseen = (idx: readonly number[]) => (o.task === 'regression' ? [] : tg.classes.filter((_, k) => !idx.some((i) => tg.y[i * K + k] > 0)));
  const none = unseen(sp.train);
  if (none.length) notes.push(`train: no positive examples of ${none.join(', ')}; the head cannot learn ${none.length > 1 ? 'them' : 'it'}`);
  const h = fit(sp.train, head.seed);
  o.onHead?.(h);
  let tuned: number[] | undefined;
  let val: Metrics | null = null;
  if (sp.val.length) {
    const vl = predict(h, sp.val);
    const vy = subsetY(tg.y, K, sp.val);
    val = evaluate(o.task, tg.classes, vl, vy, K, notes, 'validation', { ...o, bootstrap: 0 }, undefined, trainMean(sp.train));
    if (o.task === 'multilabel') {
      const t = tuneThresholds(vl.map(sigmoid), vy, K, tg.classes);
      tuned = t.thresholds;
      t.notes.forEach((s) => notes.push(`validation: ${s}`));
    }
  } else if (o.task === 'multilabel') notes.push('no validation folds: F1 thresholds not tuned');
  const tl = predict(h, sp.test);
  const ty = subsetY(tg.y, K, sp.test);
  const test = evaluate(o.task, tg.classes, tl, ty, K, notes, 'test', o, tuned, trainMean(sp.train));
  let curves: (RocCurve | null)[] | undefined;
  if (o.task !== 'regression' && (o.curves ?? true)) {
    const scores = aucScores(o.task, tl, K);
    curves = Array.from({ length: K }, (_, k) => rocCurve(column(scores, K, k), column(ty, K, k)));
  }

  const lowShot: LowShotResult[] = [];
  for (const f of o.fractions ?? []) {
    if (!(f > 0 && f < 1)) throw new Error(`probe: low-shot fraction ${f} must be in (0, 1)`);
    const seeds = o.seeds ?? [0, 1, 2];
    const size = Math.max(2, Math.round(f * sp.train.length));
    if (size >= sp.train.length) {
      notes.push(`low-shot ${f}: ${size} of ${sp.train.length} training records is the whole set; skipped`);
      continue;
    }
    const values: (number | null)[] = [];
    const f1s: (number | null)[] = [];
    for (const s of seeds) {
      const pool = [...sp.train];
      new Rng(0x10b5 + s).shuffle(pool);
      const pick = pool.slice(0, size).sort((a, b) => a - b);
      // (classes the whole training set lacks have their note above)
      const missed = unseen(pick).filter((c) => !none.includes(c));
      if (missed.length) notes.push(`low-shot ${f}, seed ${s}: no positive training examples of ${missed.join(', ')}; the head never saw ${missed.length > 1 ? 'them' : 'it'}, and ${missed.length > 1 ? 'their' : 'its'} test AUC is in this seed's macro`);
      const hs = fit(pick, s);
      const m = evaluate(o.task, tg.classes, predict(hs, sp.test), ty, K, [], '', { bootstrap: 0 }, undefined, trainMean(pick));
      values.push(m.kind === 'regression' ? m.mae : m.auc.macro);
      if (m.kind === 'classification') f1s.push(m.f1.macro);
    }
    const ms = (v: (number | null)[]) => {
      const ok = v.filter((x): x is number => x !== null);
      return ok.length ? meanStd(ok) : null;
    };
    const r: LowShotResult = { fraction: f, trainSize: size, seeds, values, mean: ms(values)?.mean ?? null, std: ms(values)?.std ?? null };
    if (o.task !== 'regression') Object.assign(r, { f1: f1s, f1Mean: ms(f1s)?.mean ?? null, f1Std: ms(f1s)?.std ?? null });
    if (values.some((v) => v === null)) notes.push(`low-shot ${f}: metric undefined for some seeds; mean ± std over the others`);
    lowShot.push(r);
  }
  return {
    task: o.task, label: o.label, classes: tg.classes, dim,
    split: { ...spec, sizes: { train: sp.train.length, val: sp.val.length, test: sp.test.length } },
    head, losses: h.losses, test, val, lowShot, ...(curves ? { curves } : {}), notes,
  };
}

// ---------------------------------------------------------------------------------------------
// Node: checkpoint → features → probe

export interface ProbeRunOptions extends ProbeOptions {
  checkpoint?: string;
  randomInit?: boolean;
  preset?: string;
  seed?: number;
  leads?: (string | number)[];
  data: string;
  /** Records per embedding batch. Default 32. */
  embedBatch?: number;
  onProgress?: (done: number, total: number) => void;
  /** Save the encoder with the trained head here (a checkpoint base path) for predict and explain. */
  save?: string;
}

export interface ProbeRun extends ProbeResult {
  source: { checkpoint: string | null; randomInit: boolean; step: number | null; leads: string[]; preset: string; dataset: string };
  /** The model written with `save`: the frozen encoder and the trained head, as finetune saves one. */
  saved: { tensors: string; meta: string } | null;
}

/** Checks what a probe or fine-tuning run reads before it does anything: the dataset's manifest, the
 *  label's targets for the task and the split (each throws a clear error). */
export async function checkTargets(o: Pick<ProbeRunOptions, 'data' | 'task' | 'label' | 'classes' | 'split'>): Promise<void> {
  const { readManifest } = await import('../data/dataset.js');
  const man = await readManifest(o.data);
  const tg = extractTargets(man.records.map((r) => r.labels ?? {}), o.task, o.label, o.classes);
  splitRows(man.records.map((r) => r.fold), tg.rows, o.split ?? DEFAULT_SPLIT);
}

/** Embeds the dataset with the (frozen) encoder and probes the features. */
export async function probe(engine: Engine, o: ProbeRunOptions): Promise<ProbeRun> {
  const { embed } = await import('./embed.js');
  await checkTargets(o); // before any GPU work
  // with save, read once: the saved encoder is then the one whose features the head was fitted on
  const loaded = o.save && o.checkpoint ? await (await import('../../model/checkpoint.js')).loadCheckpoint(o.checkpoint) : undefined;
  const src = { checkpoint: o.checkpoint, randomInit: o.randomInit, preset: o.preset, seed: o.seed, leads: o.leads, loaded };
  const e = await embed(engine, { ...src, data: o.data, batch: o.embedBatch, onProgress: o.onProgress });
  let fitted: HeadMap | null = null;
  const r = probeFeatures(e.features, e.dim, e, {
    ...o,
    onHead: (h) => {
      fitted = h;
      o.onHead?.(h);
    },
  });
  const source = { checkpoint: e.checkpoint, randomInit: e.randomInit, step: e.step, leads: e.leads, preset: e.config.preset, dataset: e.dataset };
  let saved: ProbeRun['saved'] = null;
  if (o.save) {
    const [{ loadEncoder }, { saveHeadModel }] = await Promise.all([import('./embed.js'), import('./finetune.js')]);
    const tuned = r.test.kind === 'classification' ? r.test.f1Tuned?.thresholds : undefined;
    const enc = await loadEncoder(engine, src);
    try {
      saved = await saveHeadModel(o.save, enc.encoder, enc.config, fitted!, {
        method: 'probe', task: r.task, label: r.label, classes: r.classes, leads: e.leads, preset: e.config.preset,
        bandpass: e.bandpass, ...(tuned ? { thresholds: tuned } : {}), epoch: r.head.epochs, validation: r.val ? (r.val.kind === 'regression' ? r.val.mae : r.val.auc.macro) : null, steps: 0, skippedSteps: 0,
        source: { checkpoint: e.checkpoint, randomInit: e.randomInit, step: e.step, dataset: e.dataset },
        settings: { head: r.head, split: r.split },
      }, { step: e.step ?? 0, epoch: 0 });
    } finally {
      enc.encoder.dispose();
    }
  }
  return { ...r, source, saved };
}
