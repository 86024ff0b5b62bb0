// Turns an EcgRecord into the model's input: selected leads, a fixed rate and window, optional
// zero-phase band-pass, z-score and clipping, as one float32 [leads, samples] array, after quality
// checks that report instead of throw, so a dataset builder can count and skip bad records.
//
// Defaults follow Kim's ECG-JEPA (docs/ecg-jepa-reference.md §5): 8 leads (I, II, V1–V6), the first
// 10 s, Fourier resampling to 250 Hz (scipy.signal.resample, see dsp.ts), raw mV, no filter. The
// band-pass is the reference's fine-tuning filter (Butterworth order 5, 0.67–40 Hz, forward-backward).
import { bandpass, resample } from './dsp.js';
import { canonicalLeadName, LEADS_12, LEADS_8, type EcgRecord } from './record.js';

export type LeadSpec = 8 | 12 | readonly string[];

/** The lead names a spec stands for. */
export function leadList(leads: LeadSpec): string[] {
  return leads === 8 ? [...LEADS_8] : leads === 12 ? [...LEADS_12] : leads.map(canonicalLeadName);
}

/**
 * The requested leads of a record, in the requested order, matched case-insensitively ('AVR' is
 * aVR). Throws naming every missing lead, and every requested lead the record has twice (which of
 * the two is the lead is unknown).
 */
export function selectLeads(record: Pick<EcgRecord, 'signals' | 'leadNames'>, leads: LeadSpec): { names: string[]; signals: Float32Array[] } {
  const names = leadList(leads);
  const have = record.leadNames.map((n) => canonicalLeadName(n).toUpperCase());
  const idx = names.map((n) => have.indexOf(n.toUpperCase()));
  const missing = names.filter((_, i) => idx[i] < 0);
  if (missing.length > 0) throw new Error(`missing leads: ${missing.join(', ')} (record has ${record.leadNames.join(', ') || 'none'})`);
  const twice = names.filter((n, i) => have.lastIndexOf(n.toUpperCase()) !== idx[i]);
  if (twice.length > 0) throw new Error(`leads given twice: ${twice.join(', ')} (record has ${record.leadNames.join(', ')})`);
  return { names, signals: idx.map((i) => record.signals[i]) };
}

// ---------------------------------------------------------------------------------------------
// Quality

export const QUALITY_KINDS = ['nan', 'inf', 'flat', 'saturated', 'amplitude'] as const;
export type QualityKind = (typeof QUALITY_KINDS)[number];

export interface QualityIssue {
  lead: string;
  kind: QualityKind;
  detail: string;
}

export interface QualityOptions {
  /** A lead whose standard deviation (mV) is below this is flat. Default 0.005. */
  flatStd?: number;
  /** A run at the lead's own extreme value this long (s) means saturation. Default 0.1. */
  saturatedSeconds?: number;
  /** A sample beyond ± this is no ECG (a corrupt file, a wrong gain). Default 1000: a volt in mV,
   *  far past any ECG in mV or in the 0.1 mV units some datasets store. */
  maxAbs?: number;
}

/**
 * Per-lead checks: NaN, ±Inf, flat (std below `flatStd`), saturated (`saturatedSeconds` or more of
 * consecutive samples equal to the lead's maximum or minimum: a clipped amplifier or ADC), amplitude
 * (samples beyond ±`maxAbs`). Flat leads are not also reported as saturated.
 */
export function checkQuality(signals: readonly ArrayLike<number>[], names: readonly string[], fs: number, opts: QualityOptions = {}): QualityIssue[] {
  const flatStd = opts.flatStd ?? 0.005;
  const minRun = Math.max(2, Math.round((opts.saturatedSeconds ?? 0.1) * fs));
  const maxAbs = opts.maxAbs ?? 1000;
  const issues: QualityIssue[] = [];
  signals.forEach((x, li) => {
    const lead = names[li] ?? String(li);
    let nan = 0, inf = 0, cnt = 0, sum = 0, sum2 = 0, max = -Infinity, min = Infinity;
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      if (Number.isNaN(v)) nan++;
      else if (!Number.isFinite(v)) inf++;
      else {
        cnt++; sum += v; sum2 += v * v;
        if (v > max) max = v;
        if (v < min) min = v;
      }
    }
    if (nan > 0) issues.push({ lead, kind: 'nan', detail: `${nan} NaN samples` });
    if (inf > 0) issues.push({ lead, kind: 'inf', detail: `${inf} infinite samples` });
    if (cnt === 0) return;
    if (max > maxAbs || min < -maxAbs) issues.push({ lead, kind: 'amplitude', detail: `samples from ${min.toPrecision(3)} to ${max.toPrecision(3)}, beyond ±${maxAbs}` });
    const mean = sum / cnt;
    const std = Math.sqrt(Math.max(0, sum2 / cnt - mean * mean));
    if (std < flatStd) {
      issues.push({ lead, kind: 'flat', detail: `std ${std.toExponential(2)} mV < ${flatStd}` });
      return;
    }
    let run = 0, longest = 0, at = 0;
    for (let i = 0; i < x.length; i++) {
      run = x[i] === max || x[i] === min ? (i > 0 && x[i] === x[i - 1] ? run + 1 : 1) : 0;
      if (run > longest) { longest = run; at = x[i]; }
    }
    if (longest >= minRun) issues.push({ lead, kind: 'saturated', detail: `${longest} samples (${(longest / fs).toFixed(3)} s) at ${at}` });
  });
  return issues;
}

/** Replaces NaN by linear interpolation between finite neighbours (held at the ends); false if no finite sample. */
export function interpolateNaN(x: Float64Array): boolean {
  let last = -1;
  for (let i = 0; i < x.length; i++) {
    if (Number.isNaN(x[i])) continue;
    if (last < 0) x.fill(x[i], 0, i);
    else if (i - last > 1) for (let k = last + 1; k < i; k++) x[k] = x[last] + ((x[i] - x[last]) * (k - last)) / (i - last);
    last = i;
  }
  if (last < 0) return false;
  x.fill(x[last], last + 1);
  return true;
}

// ---------------------------------------------------------------------------------------------
// The pipeline

export interface PreprocessOptions extends QualityOptions {
  /** 8 (I, II, V1–V6, default), 12, or names. */
  leads?: LeadSpec;
  /** Output rate, Hz. Default 250. */
  fs?: number;
  /** Window length, s. Default 10. */
  seconds?: number;
  /** Where the window starts: 'start' (default, as the reference), 'center', or an offset in seconds. */
  crop?: 'start' | 'center' | number;
  /** A record shorter than the window: reject (default) or zero-pad at the end. */
  short?: 'reject' | 'pad';
  /** Zero-phase Butterworth band-pass [lo, hi] Hz, applied at the output rate; off by default. */
  bandpass?: readonly [number, number];
  /** Butterworth order of each side of the band-pass. Default 5. */
  bandpassOrder?: number;
  /** Per-lead z-score over the window ((x − mean) / std). Default false. */
  zscore?: boolean;
  /** Clip the result to [−clip, clip] (after the z-score if any). Off by default. */
  clip?: number;
  /** NaN samples: reject the record (default) or interpolate linearly. */
  nan?: 'reject' | 'interpolate';
  /** Quality issues that reject a record. Default all: nan (unless interpolated), inf, flat, saturated, amplitude. */
  reject?: readonly QualityKind[];
}

export type PreprocessResult =
  | { ok: true; signals: Float32Array; leads: string[]; fs: number; samples: number; issues: QualityIssue[] }
  | { ok: false; reason: string; issues: QualityIssue[] };

/** The longest window in samples per lead (2^24: a minute at 250 kHz; a record is held as float64 while prepared). */
const MAX_WINDOW_SAMPLES = 2 ** 24;

/** Throws for options no record could be prepared with (a caller checks them once, before any record). */
export function checkPreprocessOptions(opts: PreprocessOptions): void {
  const fsOut = opts.fs ?? 250, seconds = opts.seconds ?? 10;
  if (!(fsOut > 0 && Number.isFinite(fsOut)) || !(seconds > 0 && Number.isFinite(seconds))) throw new Error(`preprocess: fs and seconds must be positive (got ${fsOut}, ${seconds})`);
  const samples = Math.round(seconds * fsOut);
  if (samples < 2 || samples > MAX_WINDOW_SAMPLES)
    throw new Error(`preprocess: a window of ${seconds} s at ${fsOut} Hz holds ${samples} samples per lead; it must hold 2 to ${MAX_WINDOW_SAMPLES}`);
  if (opts.bandpass) {
    const [lo, hi] = opts.bandpass;
    if (!(lo > 0 && hi < fsOut / 2 && lo < hi)) throw new Error(`preprocess: band-pass ${lo}–${hi} Hz must lie within (0, ${fsOut / 2}) Hz`);
  }
}

/**
 * One record → [leads, fs · seconds] float32 (row-major, one lead per row). Steps: lead selection,
 * window at the source rate, quality checks on the window, resampling, band-pass, z-score, clip,
 * zero-padding. Never throws for a bad record: returns ok false with the reason and the issues.
 */
export function preprocess(record: EcgRecord, opts: PreprocessOptions = {}): PreprocessResult {
  checkPreprocessOptions(opts);
  const fsOut = opts.fs ?? 250, seconds = opts.seconds ?? 10;
  if (!(record.fs > 0)) return { ok: false, reason: `bad sampling rate ${record.fs}`, issues: [] };
  let sel: { names: string[]; signals: Float32Array[] };
  try {
    sel = selectLeads(record, opts.leads ?? 8);
  } catch (e) {
    return { ok: false, reason: (e as Error).message, issues: [] };
  }
  const fsIn = record.fs;
  const len = Math.min(...sel.signals.map((s) => s.length));
  const want = Math.round(seconds * fsIn); // window at the source rate
  const nOut = Math.round(seconds * fsOut);
  let start = 0, take = want;
  if (len < want) {
    if ((opts.short ?? 'reject') === 'reject')
      return { ok: false, reason: `too short: ${(len / fsIn).toFixed(2)} s < ${seconds} s`, issues: [] };
    take = len;
  } else {
    const c = opts.crop ?? 'start';
    start = c === 'start' ? 0 : c === 'center' ? Math.floor((len - want) / 2) : Math.round(c * fsIn);
    if (!(start >= 0 && start + want <= len)) return { ok: false, reason: `crop offset ${c} s leaves no full ${seconds} s window`, issues: [] };
  }
  if (take < 2) return { ok: false, reason: 'too short: fewer than 2 samples', issues: [] };
  const win = sel.signals.map((s) => Float64Array.from(s.subarray(start, start + take)));

  const issues = checkQuality(win, sel.names, fsIn, opts);
  const interpolate = opts.nan === 'interpolate';
  const rejectKinds = new Set<QualityKind>(opts.reject ?? QUALITY_KINDS);
  const fatal = issues.filter((q) => rejectKinds.has(q.kind) && !(q.kind === 'nan' && interpolate));
  if (fatal.length > 0) return { ok: false, reason: fatal.map((q) => `${q.lead} ${q.kind}`).join(', '), issues };
  for (let li = 0; li < win.length; li++) {
    const x = win[li];
    if (interpolate && !interpolateNaN(x)) return { ok: false, reason: `${sel.names[li]} all NaN`, issues };
    // anything still not finite (accepted inf, or NaN not rejected) would poison the FFT and filters
    for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) x[i] = 0;
  }

  // a short record keeps its own length at the new rate and is padded afterwards
  const valid = take === want ? nOut : Math.min(nOut, Math.max(2, Math.round((take * fsOut) / fsIn)));
  const out = new Float32Array(sel.names.length * nOut);
  for (let li = 0; li < win.length; li++) {
    let y = resampleTo(win[li], valid);
    if (opts.bandpass) y = bandpass(y, fsOut, opts.bandpass[0], opts.bandpass[1], opts.bandpassOrder ?? 5);
    if (opts.zscore) {
      let m = 0;
      for (let i = 0; i < y.length; i++) m += y[i];
      m /= y.length;
      let v = 0;
      for (let i = 0; i < y.length; i++) v += (y[i] - m) ** 2;
      const sd = Math.sqrt(v / y.length) + 1e-8;
      for (let i = 0; i < y.length; i++) y[i] = (y[i] - m) / sd;
    }
    const row = out.subarray(li * nOut, li * nOut + y.length);
    const c = opts.clip;
    for (let i = 0; i < y.length; i++) row[i] = c === undefined ? y[i] : Math.max(-c, Math.min(c, y[i]));
  }
  return { ok: true, signals: out, leads: sel.names, fs: fsOut, samples: nOut, issues };
}

function resampleTo(x: Float64Array, n: number): Float64Array {
  return x.length === n ? x : resample(x, n);
}
