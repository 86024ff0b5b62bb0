// Downstream metrics, environment-neutral (no Node or DOM imports) so both test runners check them.
// Scores and labels are row-major [N, K] arrays (N records, K classes). A class whose evaluated set
// lacks positives or negatives has no AUC (and no F1 without positives): it is reported as null,
// left out of the macro average and named in `notes`, so no table ever shows NaN.
import { Rng } from '../../engine/random.js';

type Num = ArrayLike<number>;

function checkFinite(v: Num, what: string): void {
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) throw new RangeError(`${what}: value ${v[i]} at index ${i} (scores and targets must be finite)`);
}

function checkBinary(v: Num, what: string): void {
  for (let i = 0; i < v.length; i++) if (v[i] !== 0 && v[i] !== 1) throw new RangeError(`${what}: label ${v[i]} at index ${i}, expected 0 or 1`);
}

/** Column k of a row-major [N, K] array. */
export function column(a: Num, K: number, k: number): Float64Array {
  const N = a.length / K;
  const out = new Float64Array(N);
  for (let i = 0; i < N; i++) out[i] = a[i * K + k];
  return out;
}

// ---------------------------------------------------------------------------------------------
// ROC-AUC

/** Records sorted by ascending score with tie groups, computed once and reused by the bootstrap. */
export interface RankedScores {
  /** Record indices in ascending score order. */
  order: Uint32Array;
  /** Start offsets (into `order`) of each run of equal scores, plus a final order.length. */
  groups: Uint32Array;
}

export function rankScores(scores: Num): RankedScores {
  const order = Uint32Array.from({ length: scores.length }, (_, i) => i);
  order.sort((a, b) => scores[a] - scores[b]);
  const g: number[] = [0];
  for (let i = 1; i < order.length; i++) if (scores[order[i]] !== scores[order[i - 1]]) g.push(i);
  g.push(order.length);
  return { order, groups: Uint32Array.from(g) };
}

/**
 * Mann-Whitney AUC with each record counted `weights[i]` times (1 if absent): the chance that a
 * positive outscores a negative, ties counting one half, which equals the midrank formula
 * (R₊ − n₊(n₊+1)/2) / (n₊n₋). Null when the weighted set has no positives or no negatives.
 */
export function aucRanked(r: RankedScores, labels: Num, weights?: Num): number | null {
  let negBelow = 0;
  let pos = 0;
  let sum = 0;
  for (let g = 0; g + 1 < r.groups.length; g++) {
    let p = 0;
    let n = 0;
    for (let j = r.groups[g]; j < r.groups[g + 1]; j++) {
      const i = r.order[j];
      const w = weights ? weights[i] : 1;
      if (labels[i] === 1) p += w;
      else n += w;
    }
    sum += p * (negBelow + 0.5 * n);
    negBelow += n;
    pos += p;
  }
  return pos > 0 && negBelow > 0 ? sum / (pos * negBelow) : null;
}

/** ROC-AUC of one binary problem (ties by midranks); null without positives or without negatives. */
export function rocAuc(scores: Num, labels: Num): number | null {
  if (scores.length !== labels.length) throw new RangeError(`rocAuc: ${scores.length} scores, ${labels.length} labels`);
  checkFinite(scores, 'rocAuc');
  checkBinary(labels, 'rocAuc');
  return aucRanked(rankScores(scores), labels);
}

export interface RocCurve {
  /** From (0, 0) to (1, 1), one point per distinct score (tied records move together: a diagonal step). */
  fpr: number[];
  tpr: number[];
  /** The score at and above which records are called positive for each point (Infinity for the first). */
  thresholds: number[];
}

/** ROC curve of one binary problem; null without positives or without negatives. */
export function rocCurve(scores: Num, labels: Num): RocCurve | null {
  checkFinite(scores, 'rocCurve');
  checkBinary(labels, 'rocCurve');
  const r = rankScores(scores);
  let P = 0;
  for (let i = 0; i < labels.length; i++) P += labels[i];
  const N = labels.length - P;
  if (P === 0 || N === 0) return null;
  const out: RocCurve = { fpr: [0], tpr: [0], thresholds: [Infinity] };
  let tp = 0;
  let fp = 0;
  for (let g = r.groups.length - 2; g >= 0; g--) {
    for (let j = r.groups[g]; j < r.groups[g + 1]; j++) {
      if (labels[r.order[j]] === 1) tp++;
      else fp++;
    }
    out.fpr.push(fp / N);
    out.tpr.push(tp / P);
    out.thresholds.push(scores[r.order[r.groups[g]]]);
  }
  return out;
}

export interface MacroResult {
  /** Per class; null where the class was left out (see notes). */
  perClass: (number | null)[];
  /** Mean over the classes with a value; null when none has one. */
  macro: number | null;
  /** Names of the classes left out of the mean. */
  excluded: string[];
  notes: string[];
}

function className(classes: readonly string[] | undefined, k: number): string {
  return classes?.[k] ?? `class ${k}`;
}

function mean(v: readonly (number | null)[]): number | null {
  const ok = v.filter((x): x is number => x !== null);
  return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : null;
}

/**
 * Macro ROC-AUC of a multi-label problem (labels multi-hot [N, K]) or of a multi-class problem
 * one-vs-rest (labels one-hot [N, K], scores e.g. softmax probabilities). Rank-based: any increasing
 * map of the scores gives the same value, except where it rounds distinct scores to one (sigmoid
 * does above a logit of ~37), so give multi-label logits, not probabilities (probe.ts aucScores).
 */
export function macroAuc(scores: Num, labels: Num, K: number, classes?: readonly string[]): MacroResult {
  if (scores.length !== labels.length || scores.length % K !== 0) throw new RangeError(`macroAuc: ${scores.length} scores and ${labels.length} labels for ${K} classes`);
  checkFinite(scores, 'macroAuc');
  checkBinary(labels, 'macroAuc');
  const perClass: (number | null)[] = [];
  const excluded: string[] = [];
  const notes: string[] = [];
  const noPos: string[] = [];
  const noNeg: string[] = [];
  for (let k = 0; k < K; k++) {
    const y = column(labels, K, k);
    const a = aucRanked(rankScores(column(scores, K, k)), y);
    perClass.push(a);
    if (a === null) {
      excluded.push(className(classes, k));
      (y.some((v) => v === 1) ? noNeg : noPos).push(className(classes, k));
    }
  }
  if (noPos.length) notes.push(`no positive examples of ${noPos.join(', ')} in this set: AUC undefined, left out of the macro average`);
  if (noNeg.length) notes.push(`no negative examples of ${noNeg.join(', ')} in this set: AUC undefined, left out of the macro average`);
  return { perClass, macro: mean(perClass), excluded, notes };
}

// ---------------------------------------------------------------------------------------------
// Precision–recall and calibration

/**
 * Average precision of one binary problem, as sklearn's average_precision_score: Σ over thresholds
 * (each distinct score, highest first; tied records enter together) of (Rₙ − Rₙ₋₁)·Pₙ, the area
 * under the precision–recall curve without interpolation. Null without positives.
 */
export function averagePrecision(scores: Num, labels: Num): number | null {
  if (scores.length !== labels.length) throw new RangeError(`averagePrecision: ${scores.length} scores, ${labels.length} labels`);
  checkFinite(scores, 'averagePrecision');
  checkBinary(labels, 'averagePrecision');
  const r = rankScores(scores);
  let P = 0;
  for (let i = 0; i < labels.length; i++) P += labels[i];
  if (P === 0) return null;
  let tp = 0, seen = 0, ap = 0;
  for (let g = r.groups.length - 2; g >= 0; g--) {
    let dtp = 0;
    for (let j = r.groups[g]; j < r.groups[g + 1]; j++) dtp += labels[r.order[j]];
    tp += dtp;
    seen += r.groups[g + 1] - r.groups[g];
    ap += (dtp / P) * (tp / seen);
  }
  return ap;
}

/** Macro average precision over the classes of a multi-label or (one-vs-rest) multi-class problem:
 *  the area under the precision–recall curve, which unlike AUC falls with a class's rarity, so it
 *  shows how a rare class is found among many records. The classes the AUC leaves out are left out
 *  (null) and named: without positives AP is undefined (sklearn's macro mean counts such a class as 0),
 *  without negatives it is 1 whatever the scores. */
export function macroAveragePrecision(scores: Num, labels: Num, K: number, classes?: readonly string[]): MacroResult {
  if (scores.length !== labels.length || scores.length % K !== 0) throw new RangeError(`macroAveragePrecision: ${scores.length} scores and ${labels.length} labels for ${K} classes`);
  const perClass = Array.from({ length: K }, (_, k) => {
    const y = column(labels, K, k);
    return y.every((v) => v === 1) ? null : averagePrecision(column(scores, K, k), y);
  });
  const excluded = perClass.flatMap((v, k) => (v === null ? [className(classes, k)] : []));
  return { perClass, macro: mean(perClass), excluded, notes: excluded.length ? [`${excluded.join(', ')} without positives or without negatives: average precision left out of the macro average`] : [] };
}

/**
 * Brier score: the mean squared difference between predicted probabilities and outcomes (0 is
 * perfect). Multi-label: over every record and class (the mean of the per-class scores). Multi-class:
 * per record the sum over classes (Brier's original form, 0–2), averaged over the records.
 */
export function brierScore(probs: Num, labels: Num, K: number, multiclass: boolean): number {
  if (probs.length !== labels.length || probs.length % K !== 0 || probs.length === 0) throw new RangeError(`brierScore: ${probs.length} probabilities and ${labels.length} labels for ${K} classes`);
  checkFinite(probs, 'brierScore');
  checkBinary(labels, 'brierScore');
  let s = 0;
  for (let i = 0; i < probs.length; i++) s += (probs[i] - labels[i]) ** 2;
  const N = probs.length / K;
  return multiclass ? s / N : s / (N * K);
}

/**
 * Macro ROC-AUC of a multi-class problem one-vs-one (Hand & Till 2001; sklearn's
 * `roc_auc_score(multi_class='ovo', average='macro')`, which the reference's linear_eval.py reports):
 * for each pair of classes a < b, on the records of a or b, the mean of AUC(score a, class a) and
 * AUC(score b, class b); then the mean over pairs. A pair with a class absent from this set is left
 * out (sklearn refuses such a set) and named in `notes`.
 */
export function ovoMacroAuc(scores: Num, labels: Num, K: number, classes?: readonly string[]): { macro: number | null; notes: string[] } {
  if (scores.length !== labels.length || scores.length % K !== 0) throw new RangeError(`ovoMacroAuc: ${scores.length} scores and ${labels.length} labels for ${K} classes`);
  checkFinite(scores, 'ovoMacroAuc');
  checkBinary(labels, 'ovoMacroAuc');
  const N = labels.length / K;
  const cls = argmaxRows(labels, K);
  for (let i = 0; i < N; i++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += labels[i * K + k];
    if (s !== 1) throw new RangeError(`ovoMacroAuc: row ${i} has ${s} labels (one-vs-one needs exactly one class per record)`);
  }
  const present = new Set(cls);
  const pairs: number[] = [];
  for (let a = 0; a < K; a++) {
    for (let b = a + 1; b < K; b++) {
      if (!present.has(a) || !present.has(b)) continue;
      const rows = Array.from(cls.keys()).filter((i) => cls[i] === a || cls[i] === b);
      const auc = (c: number) => aucRanked(rankScores(rows.map((i) => scores[i * K + c])), rows.map((i) => (cls[i] === c ? 1 : 0)))!;
      pairs.push((auc(a) + auc(b)) / 2);
    }
  }
  const absent = Array.from({ length: K }, (_, k) => k).filter((k) => !present.has(k)).map((k) => className(classes, k));
  const notes = absent.length ? [`one-vs-one AUC: no examples of ${absent.join(', ')} in this set, their pairs left out`] : [];
  return { macro: pairs.length ? pairs.reduce((x, y) => x + y, 0) / pairs.length : null, notes };
}

/** One-hot [N, K] from class indices. */
export function oneHot(idx: Num, K: number): Float64Array {
  const out = new Float64Array(idx.length * K);
  for (let i = 0; i < idx.length; i++) {
    const c = idx[i];
    if (!Number.isInteger(c) || c < 0 || c >= K) throw new RangeError(`oneHot: class ${c} at index ${i} not in 0..${K - 1}`);
    out[i * K + c] = 1;
  }
  return out;
}

/** Row-wise softmax of [N, K] logits (max-subtracted). */
export function softmaxRows(logits: Num, K: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i += K) {
    let m = -Infinity;
    for (let k = 0; k < K; k++) m = Math.max(m, logits[i + k]);
    let s = 0;
    for (let k = 0; k < K; k++) s += out[i + k] = Math.exp(logits[i + k] - m);
    for (let k = 0; k < K; k++) out[i + k] /= s;
  }
  return out;
}

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

export function argmaxRows(a: Num, K: number): Int32Array {
  const out = new Int32Array(a.length / K);
  for (let i = 0; i < out.length; i++) {
    let best = 0;
    for (let k = 1; k < K; k++) if (a[i * K + k] > a[i * K + best]) best = k;
    out[i] = best;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// F1, accuracy, confusion

/** F1 = 2TP / (2TP + FP + FN) of one class; null when the class is neither present nor predicted
 *  (0 / 0). A class predicted but absent scores 0, as in sklearn and torchmetrics. */
export function f1Binary(pred: Num, labels: Num): number | null {
  let tp = 0, fp = 0, fn = 0;
  for (let i = 0; i < labels.length; i++) {
    if (pred[i] === 1 && labels[i] === 1) tp++;
    else if (pred[i] === 1) fp++;
    else if (labels[i] === 1) fn++;
  }
  return tp + fp + fn === 0 ? null : (2 * tp) / (2 * tp + fp + fn);
}

/**
 * Macro F1 of binary decisions [N, K] (multi-label, or one-hot argmax for multi-class) against
 * labels [N, K]; classes neither present nor predicted are left out and noted.
 */
export function macroF1(pred: Num, labels: Num, K: number, classes?: readonly string[]): MacroResult {
  if (pred.length !== labels.length || pred.length % K !== 0) throw new RangeError(`macroF1: ${pred.length} predictions and ${labels.length} labels for ${K} classes`);
  checkBinary(pred, 'macroF1 predictions');
  checkBinary(labels, 'macroF1');
  const perClass: (number | null)[] = [];
  const excluded: string[] = [];
  const notes: string[] = [];
  for (let k = 0; k < K; k++) {
    const f = f1Binary(column(pred, K, k), column(labels, K, k));
    perClass.push(f);
    if (f === null) excluded.push(className(classes, k));
  }
  if (excluded.length) notes.push(`${excluded.join(', ')} neither present nor predicted in this set: F1 undefined, left out of the macro average`);
  return { perClass, macro: mean(perClass), excluded, notes };
}

/** Binary decisions [N, K]: probs[i, k] >= thresholds[k] (one threshold for all when a number). */
export function threshold(probs: Num, K: number, t: number | readonly number[]): Float64Array {
  const out = new Float64Array(probs.length);
  for (let i = 0; i < probs.length; i++) out[i] = probs[i] >= (typeof t === 'number' ? t : t[i % K]) ? 1 : 0;
  return out;
}

/**
 * Per-class thresholds that maximise F1 on a (validation) set. Candidates are the midpoints between
 * consecutive distinct probabilities (plus one below the lowest), so the cut generalises between
 * observed values; among equally good cuts the one nearest 0.5 wins. A class without positives
 * keeps 0.5 (noted).
 */
export function tuneThresholds(probs: Num, labels: Num, K: number, classes?: readonly string[]): { thresholds: number[]; notes: string[] } {
  checkFinite(probs, 'tuneThresholds');
  checkBinary(labels, 'tuneThresholds');
  const thresholds: number[] = [];
  const kept: string[] = [];
  for (let k = 0; k < K; k++) {
    const p = column(probs, K, k);
    const y = column(labels, K, k);
    const P = y.reduce((a, b) => a + b, 0);
    if (P === 0) {
      thresholds.push(0.5);
      kept.push(className(classes, k));
      continue;
    }
    const r = rankScores(p);
    // Walking from the top: calling the records of groups g.. positive.
    let tp = 0, fp = 0;
    let best = { f1: (2 * 0) / (0 + P), t: Infinity };
    for (let g = r.groups.length - 2; g >= 0; g--) {
      for (let j = r.groups[g]; j < r.groups[g + 1]; j++) (y[r.order[j]] === 1 ? tp++ : fp++);
      const lo = g > 0 ? p[r.order[r.groups[g] - 1]] : p[r.order[0]] - 1e-6;
      const t = (lo + p[r.order[r.groups[g]]]) / 2;
      const f1 = (2 * tp) / (2 * tp + fp + (P - tp));
      if (f1 > best.f1 + 1e-12 || (Math.abs(f1 - best.f1) <= 1e-12 && Math.abs(t - 0.5) < Math.abs(best.t - 0.5))) best = { f1, t };
    }
    thresholds.push(best.t);
  }
  const notes = kept.length ? [`no positive examples of ${kept.join(', ')} in the tuning set: threshold kept at 0.5`] : [];
  return { thresholds, notes };
}

/** Fraction of rows whose decisions all match (multi-class: argmax accuracy; multi-label: exact match). */
export function accuracy(pred: Num, labels: Num, K = 1): number {
  if (pred.length !== labels.length || pred.length % K !== 0) throw new RangeError(`accuracy: ${pred.length} predictions, ${labels.length} labels`);
  const N = pred.length / K;
  if (N === 0) throw new RangeError('accuracy: empty set');
  let ok = 0;
  for (let i = 0; i < N; i++) {
    let same = true;
    for (let k = 0; k < K && same; k++) same = pred[i * K + k] === labels[i * K + k];
    if (same) ok++;
  }
  return ok / N;
}

/** counts[true][predicted] for class indices in 0..K−1. */
export function confusionMatrix(trueIdx: Num, predIdx: Num, K: number): number[][] {
  const m = Array.from({ length: K }, () => new Array<number>(K).fill(0));
  for (let i = 0; i < trueIdx.length; i++) m[trueIdx[i]][predIdx[i]]++;
  return m;
}

// ---------------------------------------------------------------------------------------------
// Regression

export function mae(pred: Num, target: Num, weights?: Num): number {
  if (pred.length !== target.length || pred.length === 0) throw new RangeError(`mae: ${pred.length} predictions, ${target.length} targets`);
  checkFinite(pred, 'mae predictions');
  checkFinite(target, 'mae targets');
  let s = 0, w = 0;
  for (let i = 0; i < pred.length; i++) {
    const wi = weights ? weights[i] : 1;
    s += wi * Math.abs(pred[i] - target[i]);
    w += wi;
  }
  return s / w;
}

export function rmse(pred: Num, target: Num): number {
  if (pred.length !== target.length || pred.length === 0) throw new RangeError(`rmse: ${pred.length} predictions, ${target.length} targets`);
  let s = 0;
  for (let i = 0; i < pred.length; i++) s += (pred[i] - target[i]) ** 2;
  return Math.sqrt(s / pred.length);
}

/** Pearson correlation; null when either side is constant. */
export function pearson(a: Num, b: Num): number | null {
  const n = a.length;
  let ma = 0, mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i] / n;
    mb += b[i] / n;
  }
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : null;
}

/** Mean and standard deviation (population, ddof 0, as numpy's std) of repeated runs. */
export function meanStd(v: readonly number[]): { mean: number; std: number; n: number } {
  if (v.length === 0) throw new RangeError('meanStd: no values');
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  return { mean: m, std: Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length), n: v.length };
}

// ---------------------------------------------------------------------------------------------
// Bootstrap

export interface Interval {
  /** The metric on the full set. */
  value: number;
  lo: number;
  hi: number;
  /** Resamples drawn, and those where the metric was defined (the others are dropped). */
  resamples: number;
  used: number;
}

/**
 * Percentile bootstrap CI: `metric(weights)` is called with each record's multiplicity in a resample
 * (records drawn with replacement, seeded) and returns null where undefined (dropped). Weights
 * instead of copied arrays let rank-based metrics reuse one sort.
 */
export function bootstrapCi(n: number, metric: (weights: Float64Array | null) => number | null, opts: { resamples?: number; seed?: number; level?: number } = {}): Interval | null {
  const B = opts.resamples ?? 1000;
  const level = opts.level ?? 0.95;
  const value = metric(null);
  if (value === null) return null;
  const rng = new Rng(opts.seed ?? 0);
  const w = new Float64Array(n);
  const vals: number[] = [];
  for (let b = 0; b < B; b++) {
    w.fill(0);
    for (let i = 0; i < n; i++) w[rng.int(n)]++;
    const v = metric(w);
    if (v !== null && Number.isFinite(v)) vals.push(v);
  }
  if (vals.length === 0) return null; // no resample had the metric defined: no interval, not a zero-width one
  vals.sort((a, b) => a - b);
  const q = (p: number) => {
    // linear interpolation between order statistics (numpy's default percentile)
    const x = p * (vals.length - 1);
    const i = Math.floor(x);
    return i + 1 < vals.length ? vals[i] + (x - i) * (vals[i + 1] - vals[i]) : vals[i];
  };
  return { value, lo: q((1 - level) / 2), hi: q(1 - (1 - level) / 2), resamples: B, used: vals.length };
}

/**
 * Bootstrap CI of the macro AUC over a fixed class set (the classes defined on the full set); a
 * resample where one of them loses all its positives or negatives is dropped rather than averaged
 * over fewer classes, so every value is the same quantity.
 */
export function macroAucCi(scores: Num, labels: Num, K: number, opts: { resamples?: number; seed?: number; level?: number } = {}): Interval | null {
  const N = scores.length / K;
  const cols = Array.from({ length: K }, (_, k) => column(labels, K, k));
  const ranked = Array.from({ length: K }, (_, k) => rankScores(column(scores, K, k)));
  const keep = cols.map((y, k) => aucRanked(ranked[k], y) !== null);
  if (!keep.some(Boolean)) return null;
  return bootstrapCi(
    N,
    (w) => {
      let s = 0, c = 0;
      for (let k = 0; k < K; k++) {
        if (!keep[k]) continue;
        const a = aucRanked(ranked[k], cols[k], w ?? undefined);
        if (a === null) return null;
        s += a;
        c++;
      }
      return s / c;
    },
    opts,
  );
}

/** Bootstrap CI of the MAE. */
export function maeCi(pred: Num, target: Num, opts: { resamples?: number; seed?: number; level?: number } = {}): Interval | null {
  return bootstrapCi(pred.length, (w) => mae(pred, target, w ?? undefined), opts);
}
