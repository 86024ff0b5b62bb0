// QRS onset, end and duration of a multi-lead record, from its median beat (`labels --derive qrs`).
//
// Beats are found by detectBeats on the QRS energy of all leads together and centred on the mean
// time of their slopes' energy (of two within 360 ms only the steeper is kept: a T wave taken for a
// beat goes). Cut from every lead band-passed at 0.5–40 Hz and aligned to their first median (the
// shift within ±20 ms that matches it best), they give a median beat per lead over the dominant
// morphology: the beats roughly alike (r ≥ 0.8) to the beat that is so to the most (in bigeminy, of
// the two groups the one whose beats come later after the beat before: ectopic beats come early),
// then those alike (r ≥ 0.9) to that group's median. Ectopic beats and artefacts are so left out:
// the duration is the dominant beat's, as a 12-lead system reports it.
// On the median beats the spatial velocity (the norm over leads of the derivative) is high through
// the QRS and low on the PR and ST segments, ST shifts included. The QRS is the span around the
// velocity's peak where it stays above 8 % of the way from the beat's median velocity to that peak.
// A dip below that of up to 40 ms during which the beat stays far from its isoelectric level (≥ 20 %
// of the QRS's largest distance from it) does not end it: the slow apex of an R′ or of a notched,
// slurred complex, where every lead's slope is near 0 at once (and noise in the QRS). An ST segment
// is near that level (or, raised, flat for longer than 40 ms), so the end stops there. Onset and
// end are interpolated between samples. One lead much larger than the rest dominates the velocity
// (no per-lead scaling), as it would a vectorcardiogram's.
//
// Checked on synthetic ECGs only (their labels: where the QRS waves' own spatial magnitude crosses
// 4 % of its peak): see README. Real recordings are messier; check against a reference first.
import { pearson } from '../eval/metrics.js';
import { bandpassSos, detectBeats, sosfiltfilt } from './dsp.js';

/** Durations outside this range (ms) are failures of the measure, not QRS complexes. */
export const QRS_RANGE = [40, 250] as const;
/** The lowest sampling rate measured (Hz): below it the QRS spans a few samples and its band-limited
 *  edges smear it (synthetic ECGs at 50 Hz measured 22 ms long on average; at 100 Hz, 1.7). */
export const QRS_MIN_FS = 100;

/** Window of a beat around its centre (slopeCentre), s. */
const BEFORE = 0.25, AFTER = 0.35;
/** Beats at least this alike (Pearson r over all leads) share a morphology. */
const MIN_LIKENESS = 0.9;
/** Beats at least this alike may share a morphology (a first, rough grouping). */
const ROUGHLY = 0.8;
/** Groups of beats at least this fraction of the largest's size compete on their timing. */
const NEAR_TIE = 0.8;
/** The QRS edge: this fraction of the velocity's rise from its floor (median) to its peak. */
const EDGE = 0.08;
/** Dips up to this long (s) are inside the QRS where the beat stays FAR from its isoelectric level. */
const MAX_DIP = 0.04;
/** Far from the isoelectric level: at least this fraction of the QRS's largest distance from it. */
const FAR = 0.2;
/** The velocity peak is looked for within this distance of the beat's centre, s. */
const NEAR = 0.06;
/** Beats are aligned to the median within this many seconds. */
const ALIGN = 0.02;
/** Beats closer than this (s) are not both QRS complexes of the median. */
const SPACING = 0.36;

export interface QrsMeasure {
  /** Onset and end in seconds from the median beat's centre (slopeCentre). */
  onset: number;
  end: number;
  /** end − onset, ms. */
  durationMs: number;
  /** Beats in the median (after the likeness check) and beats found. */
  beats: number;
  found: number;
}

function median(v: Float64Array): number {
  const s = Float64Array.from(v).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The sample-by-sample median of the beats `use` selects (beats laid out [lead][sample], flat). */
function medianBeat(cuts: Float64Array[], use: number[]): Float64Array {
  const col = new Float64Array(use.length);
  return Float64Array.from(cuts[0], (_, i) => {
    use.forEach((b, k) => (col[k] = cuts[b][i]));
    return median(col);
  });
}

/** How alike two beats are: Pearson's r over all leads as one vector (0 for a flat one). */
const likeness = (a: Float64Array, b: Float64Array) => pearson(a, b) ?? 0;

/** Spatial velocity of leads of equal length: |d/dt| over leads by central differences, per sample. */
function spatialVelocity(med: Float64Array[]): Float64Array {
  const len = med[0].length, v = new Float64Array(len);
  for (let i = 1; i < len - 1; i++) {
    let s = 0;
    for (const m of med) s += (m[i + 1] - m[i - 1]) ** 2;
    v[i] = Math.sqrt(s) / 2;
  }
  v[0] = v[1];
  v[len - 1] = v[len - 2];
  return v;
}

/** The centre of the beat near `r`: the mean time of its slopes' energy (the squared spatial
 *  velocity `v`) within ±80 ms, recentred twice (the energy maximum detectBeats gives wanders over a
 *  flat-topped complex; this mean does not), and that energy. */
function slopeCentre(v: Float64Array, r: number, fs: number): { at: number; energy: number } {
  const half = Math.round(0.08 * fs);
  let at = r, energy = 0;
  for (let pass = 0; pass < 3; pass++) {
    let st = 0;
    energy = 0;
    for (let t = Math.max(0, at - half); t <= Math.min(v.length - 1, at + half); t++) {
      energy += v[t] ** 2;
      st += v[t] ** 2 * t;
    }
    if (pass < 2 && energy > 0) at = Math.round(st / energy);
  }
  return { at, energy };
}

/** Per sample, the distance over leads of the median beats from their isoelectric level: their mean
 *  over the stillest 20 ms (least velocity) between 200 and 40 ms before the beat's centre (the PR
 *  segment). */
function isoelectricDistance(med: Float64Array[], v: Float64Array, pre: number, fs: number): Float64Array {
  const still = Math.max(1, Math.round(0.02 * fs));
  let least = Infinity, at = 0;
  for (let i = Math.max(0, pre - Math.round(0.2 * fs)); i + still <= pre - Math.round(0.04 * fs); i++) {
    let sum = 0;
    for (let k = i; k < i + still; k++) sum += v[k];
    if (sum < least) [least, at] = [sum, i];
  }
  const level = med.map((m) => m.slice(at, at + still).reduce((a, b) => a + b, 0) / still);
  return Float64Array.from(med[0], (_, i) => Math.sqrt(med.reduce((q, m, l) => q + (m[i] - level[l]) ** 2, 0)));
}

/**
 * The median beat per lead ([lead][sample of a window from `pre` before the centre]) of the dominant
 * morphology among the beats centred at `centres` (ascending) in the band-passed leads `y`, and how
 * many beats it took; undefined when fewer than 3 share it.
 */
function dominantBeat(y: Float64Array[], centres: number[], pre: number, len: number, fs: number): { med: Float64Array[]; beats: number } | undefined {
  // a beat is its window of every lead, laid out [lead][sample] in one array
  const cut = (r: number) => {
    const beat = new Float64Array(y.length * len);
    y.forEach((lead, l) => beat.set(lead.subarray(r - pre, r - pre + len), l * len));
    return beat;
  };
  const all = centres.map((_, b) => b);
  // each beat moved by the shift (within ±ALIGN) that best matches the first median over the QRS's span
  const first = medianBeat(centres.map(cut), all);
  const shift = Math.round(ALIGN * fs), lo = pre - Math.round(0.1 * fs), hi = pre + Math.round(0.15 * fs);
  const aligned = centres.map((r) => {
    let best = -Infinity, at = r;
    for (let d = -shift; d <= shift; d++) {
      let c = 0;
      y.forEach((lead, l) => { for (let i = lo; i < hi; i++) c += lead[r + d - pre + i] * first[l * len + i]; });
      if (c > best) { best = c; at = r + d; }
    }
    return cut(at);
  });
  // the beats roughly alike (r ≥ ROUGHLY) to the beat that is so to the most, then those alike
  // (r ≥ MIN_LIKENESS) to their median (a median is less noisy than one beat); of groups near the
  // largest in size (bigeminy) the one whose beats come latest after the beat before: ectopic beats
  // come early
  const r = aligned.map(() => new Float64Array(aligned.length));
  aligned.forEach((a, i) => all.slice(i).forEach((j) => (r[i][j] = r[j][i] = likeness(a, aligned[j]))));
  const alikeTo = all.map((i) => all.filter((j) => r[i][j] >= ROUGHLY));
  const largest = Math.max(...alikeTo.map((g) => g.length));
  const lateness = (g: number[]) => {
    const rr = g.filter((b) => b > 0).map((b) => centres[b] - centres[b - 1]);
    return rr.length ? rr.reduce((a, b) => a + b, 0) / rr.length : 0;
  };
  const dominant = alikeTo.filter((g) => g.length >= NEAR_TIE * largest).reduce((a, b) => (lateness(b) > lateness(a) ? b : a));
  const group = medianBeat(aligned, dominant);
  const alike = all.filter((b) => likeness(aligned[b], group) >= MIN_LIKENESS);
  if (alike.length < 3) return undefined;
  const med = medianBeat(aligned, alike);
  return { med: y.map((_, l) => med.subarray(l * len, (l + 1) * len)), beats: alike.length };
}

/** QRS onset and end in the median beats `med` (fractional sample indices; the centre at `pre`):
 *  the velocity walk described at the top; undefined where an edge is not found in the window. */
function qrsEdges(med: Float64Array[], pre: number, fs: number): { on: number; end: number } | undefined {
  const near = Math.round(NEAR * fs), len = med[0].length;
  const v = spatialVelocity(med);
  let peak = pre;
  for (let i = pre - near; i <= pre + near; i++) if (v[i] > v[peak]) peak = i;
  const floor = median(v);
  const thr = floor + EDGE * (v[peak] - floor);
  const dist = isoelectricDistance(med, v, pre, fs);
  let farthest = 0;
  for (let i = pre - near; i <= pre + near; i++) farthest = Math.max(farthest, dist[i]);
  const maxDip = Math.round(MAX_DIP * fs);
  // walk out from the peak; a run below thr ends the QRS unless it is a dip as above
  const edge = (dir: 1 | -1): number | undefined => {
    let i = peak;
    for (;;) {
      let j = i + dir, far = true;
      while (j >= 0 && j < len && v[j] < thr && Math.abs(j - i) <= maxDip) {
        far &&= dist[j] >= FAR * farthest;
        j += dir;
      }
      if (j < 0 || j >= len) return undefined;
      if (v[j] >= thr && far) {
        i = j;
        continue;
      }
      // i is the last sample inside: interpolate the crossing towards the next
      return i + (dir * (v[i] - thr)) / (v[i] - v[i + dir]);
    }
  };
  const on = edge(-1), end = edge(1);
  return on === undefined || end === undefined ? undefined : { on, end };
}

/**
 * The QRS of the dominant beat of a record laid out [lead][sample] at `fs` Hz (≥ QRS_MIN_FS), or
 * undefined when fewer than 3 beats (360 ms apart) fit whole in the record or share a morphology,
 * an edge is not found in the beat's window, the duration falls outside QRS_RANGE, or no lead is
 * finite throughout (leads with NaN or infinite samples are left out).
 */
export function measureQrs(x: Float32Array, leads: number, fs: number): QrsMeasure | undefined {
  if (!(fs >= QRS_MIN_FS)) throw new RangeError(`QRS duration: needs a sampling rate of at least ${QRS_MIN_FS} Hz, got ${fs}`);
  const samples = x.length / leads;
  // a lead with a non-finite sample is left out (it would poison every sum over leads)
  const use = Array.from({ length: leads }, (_, l) => x.subarray(l * samples, (l + 1) * samples)).filter((y) => y.every(Number.isFinite));
  if (!use.length) return undefined;
  const sos = bandpassSos(0.5, Math.min(40, 0.4 * fs), fs, 2);
  const filtered = use.map((y) => sosfiltfilt(sos, y, Math.ceil(fs / 0.5)));
  const speed = spatialVelocity(filtered);
  // of beats less than 360 ms apart only the steepest is kept: the others are T or P waves taken for
  // beats (a big discordant T in bundle-branch block), or a beat the median can spare
  const kept: number[] = [];
  for (const c of detectBeats(use, fs).map((r) => slopeCentre(speed, r, fs)).sort((a, b) => b.energy - a.energy))
    if (kept.every((k) => Math.abs(k - c.at) >= SPACING * fs)) kept.push(c.at);
  const pre = Math.round(BEFORE * fs), len = pre + Math.round(AFTER * fs) + 1, shift = Math.round(ALIGN * fs);
  const inside = kept.sort((a, b) => a - b).filter((r) => r - pre - shift >= 0 && r - pre + len + shift <= samples);
  if (inside.length < 3) return undefined;
  const beat = dominantBeat(filtered, inside, pre, len, fs);
  const qrs = beat && qrsEdges(beat.med, pre, fs);
  if (!beat || !qrs) return undefined;
  const durationMs = ((qrs.end - qrs.on) / fs) * 1000;
  if (!(durationMs >= QRS_RANGE[0] && durationMs <= QRS_RANGE[1])) return undefined;
  return { onset: (qrs.on - pre) / fs, end: (qrs.end - pre) / fs, durationMs, beats: beat.beats, found: inside.length };
}
