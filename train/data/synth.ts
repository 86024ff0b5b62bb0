// Synthetic 12-lead ECGs with known labels and features, for tests, demos and pipeline checks.
//
// The heart is a 3-D dipole (the VCG, Frank axes X right→left, Y head→feet, Z front→back), each
// axis a sum of Gaussian waves (Sameni et al. 2007 normal parameters, shared/docs/ecg-data.md §4.3),
// rendered beat by beat in time: P and QRS keep their widths in seconds, the T wave stretches with
// the preceding RR (Bazett). The VCG is projected to I, II, V1–V6 by the Dower matrix and III, aVR,
// aVL, aVF are derived from I and II, so Einthoven's and Goldberger's identities hold to float32
// rounding, noise included. Conditions are vector operations on the waves (§4.4). The features (QRS,
// PR, QT) are measured on each record's own noise-free template (onset/end where the group's spatial
// magnitude crosses a few % of its peak), so labels match the waveform by construction. Record i
// depends only on (seed, i): generation can run in parallel and resume anywhere. ECGSYN/neurokit2
// and OSET served as references for ideas only.
import { Rng } from '../../engine/random.js';
import { LEADS_12, type EcgRecord } from './record.js';

export const SYNTH_CLASSES = ['NORM', 'SBRAD', 'STACH', 'AFIB', 'AFLT', '1AVB', 'RBBB', 'LBBB', 'STE', 'STD', 'LVH', 'PVC'] as const;
export type SynthClass = (typeof SYNTH_CLASSES)[number];

/** Meaning and codes of each class: PTB-XL scp_code and SNOMED CT id as used by the PhysioNet Challenge
 *  (checked against its dx_mapping_scored/unscored.csv; the Challenge scores 713427006 = 59118001 and
 *  733534002 = 164909002 as one diagnosis each, and here the complete blocks take the complete codes). */
export const SYNTH_CLASS_INFO: Record<SynthClass, { name: string; scp: string; snomed: string }> = {
  NORM: { name: 'normal sinus rhythm, normal ECG', scp: 'NORM', snomed: '426783006' },
  SBRAD: { name: 'sinus bradycardia', scp: 'SBRAD', snomed: '426177001' },
  STACH: { name: 'sinus tachycardia', scp: 'STACH', snomed: '427084000' },
  AFIB: { name: 'atrial fibrillation', scp: 'AFIB', snomed: '164889003' },
  AFLT: { name: 'atrial flutter', scp: 'AFLT', snomed: '164890007' },
  '1AVB': { name: 'first-degree AV block', scp: '1AVB', snomed: '270492004' },
  RBBB: { name: 'complete right bundle branch block', scp: 'CRBBB', snomed: '713427006' },
  LBBB: { name: 'complete left bundle branch block', scp: 'CLBBB', snomed: '733534002' },
  STE: { name: 'ST elevation (injury)', scp: 'STE_', snomed: '164931005' },
  STD: { name: 'ST depression', scp: 'STD_', snomed: '429622005' },
  LVH: { name: 'left ventricular hypertrophy', scp: 'LVH', snomed: '164873001' },
  PVC: { name: 'premature ventricular complexes', scp: 'PVC', snomed: '427172004' },
};

/** Relative weight of each class as the primary condition (and as an added one). */
export const DEFAULT_SYNTH_WEIGHTS: Record<SynthClass, number> = {
  NORM: 3, SBRAD: 1, STACH: 1, AFIB: 1, AFLT: 0.5, '1AVB': 1, RBBB: 1, LBBB: 1, STE: 1, STD: 1, LVH: 1, PVC: 1,
};

export interface SynthOptions {
  /** Base seed; record i uses only (seed, i). Default 0. */
  seed?: number;
  /** Sampling rate in Hz (any ≥ 50). Default 500. */
  fs?: number;
  /** Duration in seconds. Default 10. */
  seconds?: number;
  /** Class weights (missing = 0 when given); default DEFAULT_SYNTH_WEIGHTS. */
  conditions?: Partial<Record<SynthClass, number>>;
  /** Chance of each of up to two extra, compatible conditions (drawn by the same weights). Default 0.3. */
  combine?: number;
  /** Noise scale: 0 clean, 1 typical resting ECG (default), 2 noisy. */
  noise?: number;
}

/** The features a record's labels carry (besides `conditions`). */
export interface SynthLabels {
  conditions: SynthClass[];
  /** Mean heart rate, 60000 / mean RR over the R peaks inside the record. */
  hr: number;
  /** RR intervals between consecutive R peaks inside the record, ms. */
  rr_ms: number[];
  /** QRS duration of the dominant (supraventricular) beat, ms. */
  qrs_ms: number;
  /** P onset to QRS onset, ms; null without P waves (AF, flutter). */
  pr_ms: number | null;
  /** QRS onset to T end, mean over the dominant beats, ms. */
  qt_ms: number;
}

// ---------------------------------------------------------------------------------------------
// Geometry

type Vec3 = [number, number, number];

/** Dower (1980) VCG → I, II, V1–V6; rows X, Y, Z coefficients. */
const DOWER: readonly Vec3[] = [
  [0.632, -0.235, 0.059],
  [0.235, 1.066, -0.132],
  [-0.515, 0.157, -0.917],
  [0.044, 0.164, -1.387],
  [0.882, 0.098, -1.277],
  [1.213, 0.127, -0.601],
  [1.125, 0.127, -0.086],
  [0.831, 0.076, 0.23],
];

/** Coefficients of all 12 leads (standard order) for a lead matrix of I, II, V1–V6. */
function rows12(d: readonly Vec3[]): Vec3[] {
  const [I, II] = d;
  const comb = (p: number, q: number): Vec3 => [p * I[0] + q * II[0], p * I[1] + q * II[1], p * I[2] + q * II[2]];
  return [I, II, comb(-1, 1), comb(-0.5, -0.5), comb(1, -0.5), comb(-0.5, 1), ...d.slice(2)] as Vec3[];
}

const dot = (a: Vec3, b: Vec3) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const scale = (a: Vec3, k: number): Vec3 => [a[0] * k, a[1] * k, a[2] * k];
const unit = (a: Vec3): Vec3 => scale(a, 1 / Math.hypot(a[0], a[1], a[2]));

function rotation(ax: number, ay: number, az: number): number[][] {
  const [cx, sx, cy, sy, cz, sz] = [Math.cos(ax), Math.sin(ax), Math.cos(ay), Math.sin(ay), Math.cos(az), Math.sin(az)];
  // Rz · Ry · Rx
  return [
    [cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx],
    [sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx],
    [-sy, cy * sx, cy * cx],
  ];
}

const rotate = (r: number[][], v: Vec3): Vec3 => [
  r[0][0] * v[0] + r[0][1] * v[1] + r[0][2] * v[2],
  r[1][0] * v[0] + r[1][1] * v[1] + r[1][2] * v[2],
  r[2][0] * v[0] + r[2][1] * v[1] + r[2][2] * v[2],
];

// ---------------------------------------------------------------------------------------------
// Beat template: Gaussian waves in time relative to the R reference (t = 0)

type Group = 'P' | 'QRS' | 'T';
/** One Gaussian wave: centre t and width s in seconds, amplitude vector a in mV. */
interface Term { g: Group; t: number; s: number; a: Vec3 }
/** A smooth ST plateau: rises at t0 (the J point) over `rise` s, falls at t1 over `fall` s. */
interface Plateau { t0: number; t1: number; rise: number; fall: number; a: Vec3 }

interface Template {
  terms: Term[];
  plateaus: Plateau[];
  qrsOn: number;
  /** J point (QRS end). */
  qrsOff: number;
  /** T end at T scale 1. */
  tEnd: number;
  /** P onset, or null without P waves. */
  pOn: number | null;
}

// Sameni et al. normal parameters (θ, α, b per axis); θ/(2π) s and b/(2π) s at the reference 1 Hz.
const NORMAL_VCG: [number[], number[], number[]][] = [
  [
    [-1.09, -0.83, -0.19, -0.07, 0, 0.06, 0.22, 1.2, 1.42, 1.68, 2.9],
    [0.03, 0.08, -0.13, 0.85, 1.11, 0.75, 0.06, 0.1, 0.17, 0.39, 0.03],
    [0.0906, 0.1057, 0.0453, 0.0378, 0.0332, 0.0302, 0.0378, 0.604, 0.302, 0.1812, 0.5],
  ],
  [
    [-1.1, -0.9, -0.76, -0.11, -0.01, 0.065, 0.8, 1.58, 2.9],
    [0.035, 0.015, -0.019, 0.32, 0.51, -0.32, 0.04, 0.08, 0.014],
    [0.07, 0.07, 0.04, 0.055, 0.037, 0.0604, 0.45, 0.3, 0.5],
  ],
  [
    [-1.1, -0.93, -0.7, -0.4, -0.15, 0.095, 1.05, 1.25, 1.55, 2.8],
    [-0.03, -0.14, -0.035, 0.045, -0.4, 0.46, -0.12, -0.2, -0.35, -0.035],
    [0.03, 0.12, 0.04, 0.4, 0.045, 0.05, 0.8, 0.4, 0.2, 0.4],
  ],
];

function normalTerms(): Term[] {
  const out: Term[] = [];
  NORMAL_VCG.forEach(([th, al, b], axis) => {
    for (let i = 0; i < th.length; i++) {
      // the late broad component (θ ≈ 2.8–2.9, a U-like tail) would blur the T end: left out
      if (th[i] > 2.5) continue;
      const a: Vec3 = [0, 0, 0];
      a[axis] = al[i];
      out.push({ g: th[i] < -0.3 ? 'P' : th[i] <= 0.3 ? 'QRS' : 'T', t: th[i] / (2 * Math.PI), s: b[i] / (2 * Math.PI), a });
    }
  });
  return out;
}

/** Fraction of a group's peak spatial magnitude that marks its onset and end. */
const EDGE = { P: 0.08, QRS: 0.04, T: 0.06 } as const;

/** One group's VCG on a grid (spacing dt from lo), each wave added only within ±6σ of its centre. */
function groupWave(terms: readonly Term[], g: Group, dt: number): { lo: number; v: Float64Array[] } | null {
  const sel = terms.filter((t) => t.g === g);
  if (sel.length === 0) return null;
  const lo = Math.min(...sel.map((t) => t.t - 6 * t.s)), hi = Math.max(...sel.map((t) => t.t + 6 * t.s));
  const n = Math.ceil((hi - lo) / dt) + 1;
  const v = [new Float64Array(n), new Float64Array(n), new Float64Array(n)];
  for (const w of sel) {
    const i0 = Math.max(0, Math.floor((w.t - 6 * w.s - lo) / dt)), i1 = Math.min(n - 1, Math.ceil((w.t + 6 * w.s - lo) / dt));
    for (let i = i0; i <= i1; i++) {
      const u = (lo + i * dt - w.t) / w.s;
      const e = Math.exp(-0.5 * u * u);
      v[0][i] += w.a[0] * e; v[1][i] += w.a[1] * e; v[2][i] += w.a[2] * e;
    }
  }
  return { lo, v };
}

/** Onset, end and peak time of one group's spatial magnitude, on a 0.2 ms grid (QRS) or 0.5 ms (P, T). */
function measure(terms: readonly Term[], g: Group): { on: number; off: number; peakT: number; peak: number } | null {
  const dt = g === 'QRS' ? 2e-4 : 5e-4;
  const w = groupWave(terms, g, dt);
  if (!w) return null;
  const [x, y, z] = w.v, n = x.length;
  const mag = new Float64Array(n);
  let peak = 0, ip = 0;
  for (let i = 0; i < n; i++) {
    mag[i] = Math.sqrt(x[i] * x[i] + y[i] * y[i] + z[i] * z[i]);
    if (mag[i] > peak) { peak = mag[i]; ip = i; }
  }
  const thr = EDGE[g] * peak;
  let a = 0, b = n - 1;
  while (a < n && mag[a] < thr) a++;
  while (b > 0 && mag[b] < thr) b--;
  return { on: w.lo + a * dt, off: w.lo + b * dt, peakT: w.lo + ip * dt, peak };
}

/** Sokolow–Lyon voltage SV1 + max(RV5, RV6) of the QRS, mV; rows are I, II, V1–V6. */
function sokolow(terms: readonly Term[], rows: readonly Vec3[]): number {
  const [x, y, z] = groupWave(terms, 'QRS', 5e-4)!.v;
  const lead = (r: Vec3, i: number) => r[0] * x[i] + r[1] * y[i] + r[2] * z[i];
  let sv1 = 0, rv5 = 0;
  for (let i = 0; i < x.length; i++) {
    sv1 = Math.max(sv1, -lead(rows[2], i));
    rv5 = Math.max(rv5, lead(rows[6], i), lead(rows[7], i));
  }
  return sv1 + rv5;
}

const shift = (terms: Term[], g: Group, dt: number) => terms.forEach((w) => w.g === g && (w.t += dt));
const gain = (terms: Term[], g: Group | null, k: number | Vec3) =>
  terms.forEach((w) => {
    if (g !== null && w.g !== g) return;
    w.a = typeof k === 'number' ? scale(w.a, k) : [w.a[0] * k[0], w.a[1] * k[1], w.a[2] * k[2]];
  });

/** The record's supraventricular beat: normal waves, per-record variation, then the conditions. */
function sinusTemplate(rng: Rng, has: (c: SynthClass) => boolean, atrial: boolean, prTarget: number, rows: Vec3[]): Template {
  const U = (a: number, b: number) => rng.uniform(a, b);
  const terms = normalTerms();
  // per-record morphology: P raised to 0.1–0.2 mV in the limb leads (the parameters give ≈0.05; Z
  // less, or V2–V3 would show 0.3 mV), QRS 75–100 ms, each wave's amplitude ±10 %
  gain(terms, 'P', [U(2, 3), U(2, 3), U(1, 1.5)]);
  const w = U(1.0, 1.25);
  for (const t of terms) if (t.g === 'QRS') { t.t *= w; t.s *= w; }
  for (const t of terms) t.a = scale(t.a, 1 + 0.1 * rng.normal());
  gain(terms, 'T', U(0.7, 1.3));
  const base = measure(terms, 'QRS')!;
  // The broad ST–T components (σ up to 127 ms) make the T wave rise straight from the J point, so a
  // normal ECG would show 0.2–0.6 mV at J + 60 ms. Narrow them to σ ≤ 45 ms and move them later by
  // 1.2× the width removed: the ST segment stays near the baseline, as in real resting ECGs.
  // The T peak magnitude is kept (the narrowed waves overlap more).
  const tPeak = () => measure(terms, 'T')!.peak;
  const before = tPeak();
  for (const t of terms) {
    if (t.g !== 'T' || t.s <= 0.045) continue;
    t.t += 1.2 * (t.s - 0.045);
    t.s = 0.045;
  }
  gain(terms, 'T', before / tPeak());

  if (has('RBBB')) {
    // late forces to the right and front: rsR′ in V1, broad S in I and V6; T away from them
    const r = measure(terms, 'QRS')!;
    terms.push({ g: 'QRS', t: r.off + U(0.01, 0.03), s: U(0.016, 0.024), a: [-U(0.3, 0.6), U(-0.1, 0.1), -U(0.4, 0.8)] });
    for (const t of terms) if (t.g === 'T') t.a = [t.a[0], t.a[1], t.a[2] * -U(0.3, 0.8)];
  }
  if (has('LBBB')) {
    // no septal q (the early −X and −Z forces go), slow notched leftward-posterior activation
    const keep = terms.filter((t) => !(t.g === 'QRS' && (t.a[0] !== 0 || t.a[2] !== 0)));
    terms.length = 0;
    terms.push(...keep);
    const A = U(1.2, 1.8), s1 = U(0.017, 0.024), s2 = U(0.017, 0.024);
    terms.push(
      { g: 'QRS', t: U(-0.01, 0), s: s1, a: [A * U(0.7, 0.95), 0, 0] },
      { g: 'QRS', t: U(0.035, 0.05), s: s2, a: [A, 0, 0] },
      { g: 'QRS', t: U(0.015, 0.03), s: U(0.028, 0.036), a: [0, 0, U(0.8, 1.2)] },
    );
    for (const t of terms) if (t.g === 'QRS' && t.a[1] !== 0) t.s *= 2;
    // T opposite to the QRS: flip the leftward part, push the rest forward
    for (const t of terms) if (t.g === 'T') t.a = [-Math.abs(t.a[0]) * U(0.6, 1), t.a[1] * 0.5, -Math.abs(t.a[2]) * U(1, 1.5) - 0.05];
  }
  if (has('LVH')) {
    const k = U(1.0, 1.12); // thicker wall, slightly longer activation
    for (const t of terms) if (t.g === 'QRS') { t.t *= k; t.s *= k; }
  }

  const q = measure(terms, 'QRS')!;
  // T follows the (possibly later) J point
  shift(terms, 'T', Math.max(0, q.off - base.off));

  if (has('LVH')) {
    // "strain": T inverted in the lateral leads
    for (const t of terms) if (t.g === 'T') t.a = [t.a[0] * -U(0.3, 0.8), t.a[1], t.a[2]];
  }
  if (has('STD')) gain(terms, 'T', (rng.next() < 0.4 ? -1 : 1) * U(0.2, 0.5)); // flat or inverted T
  let injury: Vec3 | null = null;
  let injuryLevel = 0;
  if (has('STE')) {
    const region = rng.int(3);
    injury = unit(region === 0 ? [0.1, 0.1, -1] : region === 1 ? [-0.2, 1, 0.1] : [1, -0.3, 0.2]);
    injuryLevel = U(0.2, 0.4);
    // hyperacute T along the injury, and sometimes Q waves: initial forces pointing away from it
    terms.push({ g: 'T', t: measure(terms, 'T')!.peakT, s: U(0.03, 0.05), a: scale(injury, U(0.1, 0.3)) });
    if (rng.next() < 0.5) terms.push({ g: 'QRS', t: q.on + 0.012, s: 0.006, a: scale(injury, -U(0.15, 0.35)) });
  } else if (has('STD')) {
    injury = unit([-0.7, -0.6, 0.2]); // subendocardial: ST↓ in I, II, V4–V6, ↑ in aVR
    injuryLevel = -U(0.12, 0.25);
  }

  // heart orientation: each axis N(0, 12°)
  const angle = () => ((12 * Math.PI) / 180) * Math.max(-2.5, Math.min(2.5, rng.normal()));
  const R = rotation(angle(), angle(), angle());
  for (const t of terms) t.a = rotate(R, t.a);

  // overall size, and voltage kept below the Sokolow–Lyon criterion unless the record is LVH
  gain(terms, null, U(0.7, 1.3));
  const sok = sokolow(terms, rows);
  if (has('LVH')) gain(terms, 'QRS', Math.max(1, U(3.7, 5.0) / sok));
  else if (!has('LBBB') && sok > 3.2) gain(terms, 'QRS', 3.2 / sok);

  const plateaus: Plateau[] = [];
  const qq = measure(terms, 'QRS')!;
  const tt = measure(terms, 'T')!;
  const addPlateau = (dir: Vec3, level: number, fall: number) => {
    // size so that the most deviated of the 12 leads reaches `level` mV
    const d = rotate(R, dir);
    const proj = rows12(rows).map((r) => dot(r, d));
    const k = level > 0 ? level / Math.max(...proj) : level / Math.min(...proj);
    plateaus.push({ t0: qq.off, t1: tt.peakT, rise: 0.006, fall, a: scale(d, k) });
  };
  if (injury) addPlateau(injury, injuryLevel, 0.035);
  if (has('LBBB')) {
    // secondary ST shift opposite to the main QRS forces (ST↑ in V1–V3)
    addPlateau(unit([-0.6, 0, -1]), U(0.05, 0.15), 0.05);
  }
  if (has('LVH')) addPlateau(unit([-1, 0, 0.2]), -U(0.03, 0.08), 0.05);

  let pOn: number | null = null;
  if (atrial) {
    // place the P wave so that P onset → QRS onset is exactly the target PR interval
    const p = measure(terms, 'P')!;
    shift(terms, 'P', qq.on - prTarget - p.on);
    pOn = qq.on - prTarget;
  } else {
    const keep = terms.filter((t) => t.g !== 'P');
    terms.length = 0;
    terms.push(...keep);
  }
  return { terms, plateaus, qrsOn: qq.on, qrsOff: qq.off, tEnd: tt.off, pOn };
}

/**
 * One premature ventricular beat shape per record (unifocal): slurred onset, a main and a late
 * deflection on different random axes (≈130–180 ms in all), and a T wave opposite to the QRS.
 */
function pvcTemplate(rng: Rng): Term[] {
  const U = (a: number, b: number) => rng.uniform(a, b);
  const randomUnit = (): Vec3 => unit([rng.normal(), rng.normal(), rng.normal()]);
  const u = randomUnit(), w = randomUnit();
  const v = unit([w[0] - u[0], w[1] - u[1], w[2] - u[2]]); // leans away from the main axis
  const A = U(1.2, 2.0);
  const mean = unit([u[0] + 0.5 * v[0], u[1] + 0.5 * v[1], u[2] + 0.5 * v[2]]);
  return [
    { g: 'QRS', t: -U(0.03, 0.045), s: U(0.015, 0.02), a: scale(u, A * U(0.25, 0.45)) },
    { g: 'QRS', t: 0, s: U(0.016, 0.022), a: scale(u, A) },
    { g: 'QRS', t: U(0.045, 0.065), s: U(0.016, 0.024), a: scale(v, A * U(0.4, 0.7)) },
    { g: 'T', t: U(0.28, 0.34), s: U(0.05, 0.07), a: scale(mean, -U(0.3, 0.6)) },
  ];
}

// ---------------------------------------------------------------------------------------------
// Condition sampling

const RHYTHMS: readonly SynthClass[] = ['NORM', 'SBRAD', 'STACH', 'AFIB', 'AFLT'];

function compatible(set: readonly SynthClass[], c: SynthClass): boolean {
  if (set.includes(c) || c === 'NORM' || set.includes('NORM')) return false;
  const any = (...cs: SynthClass[]) => cs.some((x) => set.includes(x));
  if (RHYTHMS.includes(c) && set.some((x) => RHYTHMS.includes(x))) return false;
  if (c === '1AVB' && any('AFIB', 'AFLT')) return false;
  if ((c === 'AFIB' || c === 'AFLT') && any('1AVB')) return false;
  if (c === 'RBBB' && any('LBBB')) return false;
  if (c === 'LBBB' && any('RBBB', 'LVH', 'STE', 'STD')) return false;
  if ((c === 'LVH' || c === 'STE' || c === 'STD') && any('LBBB')) return false;
  if ((c === 'STE' && any('STD')) || (c === 'STD' && any('STE'))) return false;
  return true;
}

function draw(rng: Rng, classes: readonly SynthClass[], w: Record<string, number>): SynthClass {
  const total = classes.reduce((s, c) => s + w[c], 0);
  let r = rng.next() * total;
  for (const c of classes) if ((r -= w[c]) < 0) return c;
  return classes[classes.length - 1];
}

function drawConditions(rng: Rng, weights: Record<string, number>, combine: number): SynthClass[] {
  const classes = SYNTH_CLASSES.filter((c) => weights[c] > 0);
  const set: SynthClass[] = [draw(rng, classes, weights)];
  for (let k = 0; k < 2; k++) {
    if (rng.next() >= combine) break;
    const cand = classes.filter((c) => compatible(set, c));
    if (cand.length === 0) break;
    set.push(draw(rng, cand, weights));
  }
  return SYNTH_CLASSES.filter((c) => set.includes(c));
}

// ---------------------------------------------------------------------------------------------
// Rhythm

interface Beat {
  /** R reference time, s. */
  t: number;
  /** N: conducted beat; V: PVC; P: a sinus P wave that was not conducted (hidden by a PVC). */
  kind: 'N' | 'V' | 'P';
  /** Preceding RR, s (drives the T-wave scale). */
  rr: number;
}

/** Mixes (seed, index) into a full xoshiro state, so neighbouring records get unrelated streams. */
function recordSeed(seed: number, index: number): number[] {
  const out: number[] = [];
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index >>> 0, 0x85ebca77) ^ Math.floor(index / 4294967296)) >>> 0;
  for (let i = 0; i < 4; i++) {
    h = (h + 0x9e3779b9 + i * 0x632be5ab) >>> 0;
    let z = h ^ Math.imul(seed >>> 0, 0x27d4eb2f);
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    out.push((z ^ (z >>> 16)) >>> 0);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rendering

function addGaussian(v: Float64Array[], fs: number, c: number, s: number, a: Vec3): void {
  const n = v[0].length;
  const i0 = Math.max(0, Math.ceil((c - 6 * s) * fs)), i1 = Math.min(n - 1, Math.floor((c + 6 * s) * fs));
  if (i1 < i0) return;
  // exp(−u²/2) by recurrence: successive ratios shrink by exp(−d²), so no exp per sample
  const d = 1 / (fs * s), u0 = (i0 / fs - c) / s;
  let g = Math.exp(-0.5 * u0 * u0), r = Math.exp(-u0 * d - 0.5 * d * d);
  const q = Math.exp(-d * d);
  const [x, y, z] = v;
  for (let i = i0; i <= i1; i++) {
    x[i] += a[0] * g; y[i] += a[1] * g; z[i] += a[2] * g;
    g *= r;
    r *= q;
  }
}

function addPlateau(v: Float64Array[], fs: number, t0: number, t1: number, rise: number, fall: number, a: Vec3): void {
  const n = v[0].length;
  const i0 = Math.max(0, Math.ceil((t0 - 10 * rise) * fs)), i1 = Math.min(n - 1, Math.floor((t1 + 10 * fall) * fs));
  for (let i = i0; i <= i1; i++) {
    const t = i / fs;
    const h = 1 / (1 + Math.exp(-(t - t0) / rise)) / (1 + Math.exp((t - t1) / fall));
    v[0][i] += a[0] * h; v[1][i] += a[1] * h; v[2][i] += a[2] * h;
  }
}

/** Fills `out` with N(0, 1) draws, using both Box–Muller outputs (noise needs many). */
function fillNormal(rng: Rng, out: Float64Array): Float64Array {
  for (let i = 0; i < out.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rng.next())), a = 2 * Math.PI * rng.next();
    out[i] = r * Math.cos(a);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(a);
  }
  return out;
}

/** One-pole low-passed white noise with standard deviation ≈ sd. */
function coloredNoise(rng: Rng, n: number, fs: number, fc: number, sd: number): Float64Array {
  const a = Math.exp((-2 * Math.PI * fc) / fs);
  const k = sd * Math.sqrt(1 - a * a); // keeps the stationary variance at sd²
  const out = fillNormal(rng, new Float64Array(n));
  let y = out[0] * sd;
  for (let i = 0; i < n; i++) out[i] = y = a * y + k * out[i];
  return out;
}

/** x += amp · sin(2π f t + phase), by rotating a phasor rather than calling sin per sample. */
function addSine(x: Float64Array, fs: number, f: number, amp: number, phase: number): void {
  const c = Math.cos((2 * Math.PI * f) / fs), s = Math.sin((2 * Math.PI * f) / fs);
  let re = Math.cos(phase), im = Math.sin(phase);
  for (let i = 0; i < x.length; i++) {
    x[i] += amp * im;
    const r = re * c - im * s;
    im = re * s + im * c;
    re = r;
  }
}

// ---------------------------------------------------------------------------------------------
// The generator

/** Record `index` of the stream defined by `opts` (depends only on opts and index). */
export function synthRecord(index: number, opts: SynthOptions = {}): EcgRecord {
  const seed = opts.seed ?? 0, fs = opts.fs ?? 500, seconds = opts.seconds ?? 10, noise = opts.noise ?? 1;
  if (!(fs >= 50)) throw new Error(`synth: fs must be at least 50 Hz, got ${fs}`);
  if (!(seconds > 0)) throw new Error(`synth: seconds must be positive, got ${seconds}`);
  if (!(noise >= 0)) throw new Error(`synth: noise must be ≥ 0, got ${noise}`);
  if (!(Number.isInteger(index) && index >= 0)) throw new Error(`synth: bad record index ${index}`);
  const weights: Record<string, number> = {};
  for (const c of SYNTH_CLASSES) weights[c] = opts.conditions ? (opts.conditions[c] ?? 0) : DEFAULT_SYNTH_WEIGHTS[c];
  for (const k of Object.keys(opts.conditions ?? {}))
    if (!(SYNTH_CLASSES as readonly string[]).includes(k)) throw new Error(`synth: unknown condition '${k}' (known: ${SYNTH_CLASSES.join(', ')})`);
  if (!SYNTH_CLASSES.some((c) => weights[c] > 0)) throw new Error('synth: no condition has a positive weight');

  const rng = new Rng(recordSeed(seed, index));
  const U = (a: number, b: number) => rng.uniform(a, b);
  const conditions = drawConditions(rng, weights, opts.combine ?? 0.3);
  const has = (c: SynthClass) => conditions.includes(c);
  const rhythm = has('AFIB') ? 'AFIB' : has('AFLT') ? 'AFLT' : 'sinus';
  const n = Math.max(1, Math.round(seconds * fs));
  const T = n / fs;

  // per-record electrode variation: precordial placement and limb-lead gains
  const rows = DOWER.map((r, i) => (i < 2 ? scale(r, 1 + 0.03 * rng.normal()) : (r.map((c) => c + 0.05 * rng.normal()) as Vec3)));

  const prTarget = has('1AVB') ? U(0.22, 0.34) : has('STACH') ? U(0.115, 0.15) : has('SBRAD') ? U(0.14, 0.2) : U(0.13, 0.19);
  const tpl = sinusTemplate(rng, has, rhythm === 'sinus', prTarget, rows);
  const qrs = tpl.qrsOff - tpl.qrsOn;
  // QTc normal (Bazett), lengthened by a wide QRS
  const qtc = U(0.38, 0.44) + Math.max(0, qrs - 0.1) * 0.6;
  const tBase = tpl.tEnd - tpl.qrsOff; // J → T end at scale 1
  const tScale = (rr: number) => Math.max(0.3, (qtc * Math.sqrt(rr) - qrs) / tBase);

  // ---- beat times
  const beats: Beat[] = [];
  const fResp = U(0.15, 0.35);
  let atrialSignal: ((t: number) => number) | null = null;
  let atrialDir: Vec3 = [0, 0, 0];
  if (rhythm === 'sinus') {
    const hr = has('SBRAD') ? U(40, 55) : has('STACH') ? U(105, 155) : U(63, 95);
    const cv = has('SBRAD') ? U(0.02, 0.06) : has('STACH') ? U(0.01, 0.025) : U(0.02, 0.05);
    const m = 60 / hr, lf = U(0.3, 0.7);
    const aL = cv * Math.sqrt(1.6 * lf), aH = cv * Math.sqrt(1.6 * (1 - lf)), aW = cv * Math.sqrt(0.2);
    const fL = U(0.08, 0.12), pL = U(0, 2 * Math.PI), pH = U(0, 2 * Math.PI);
    // RR tachogram: Mayer-wave (≈0.1 Hz) and respiratory (RSA) sinusoids plus white jitter
    const rrAt = (t: number) => m * (1 + aL * Math.sin(2 * Math.PI * fL * t + pL) + aH * Math.sin(2 * Math.PI * fResp * t + pH) + aW * rng.normal());
    let t = -1.5 - U(0, m), rr = rrAt(t);
    while (t < T + 1) {
      beats.push({ t, kind: 'N', rr });
      rr = rrAt(t);
      t += rr;
    }
  } else if (rhythm === 'AFIB') {
    // irregularly irregular: i.i.d. log-normal RR, at least 0.3 s; no P; f-waves (Stridh & Sörnmo sawtooth model)
    const m = 60 / U(70, 150), sg = U(0.18, 0.3);
    const rrDraw = () => {
      for (;;) {
        const r = m * Math.exp(sg * rng.normal() - (sg * sg) / 2);
        if (r >= 0.3 && r <= 2) return r;
      }
    };
    let t = -1.5 - U(0, m), rr = rrDraw();
    while (t < T + 1) {
      beats.push({ t, kind: 'N', rr });
      rr = rrDraw();
      t += rr;
    }
    const f0 = U(4, 9), a = U(0.03, 0.12), ph = U(0, 2 * Math.PI), pa = U(0, 2 * Math.PI);
    atrialSignal = (t) => {
      const th = 2 * Math.PI * f0 * t + (0.25 / 0.2) * Math.sin(2 * Math.PI * 0.2 * t) + ph;
      const amp = a * (1 + Math.sin(2 * Math.PI * 0.2 * t + pa) / 3);
      let f = 0;
      for (let i = 1; i <= 3; i++) f -= (2 / (i * Math.PI)) * amp * Math.sin(i * th);
      return f;
    };
    atrialDir = unit([-0.2, 0.5, -0.8]);
  } else {
    // flutter: regular sawtooth at 240–330/min, every 2nd–4th wave conducted after a fixed AV delay
    const fa = U(4, 5.5), a = U(0.15, 0.3), ph = U(0, 1), delay = U(0.16, 0.26);
    const variable = rng.next() < 0.3;
    const fixedK = [2, 2, 2, 3, 4][rng.int(5)];
    const waveAt = (j: number) => (j - ph) / fa; // start of the j-th flutter wave
    let j = Math.floor((-2 - delay) * fa);
    let prev = waveAt(j) + delay;
    while (waveAt(j) + delay < T + 1) {
      const k = variable ? 2 + rng.int(3) : fixedK;
      j += k;
      const t = waveAt(j) + delay;
      beats.push({ t, kind: 'N', rr: t - prev });
      prev = t;
    }
    // a sawtooth with 6 harmonics: slow ramp, sharp return
    atrialSignal = (t) => {
      const th = 2 * Math.PI * (fa * t + ph);
      let f = 0;
      for (let i = 1; i <= 6; i++) f += (2 / (i * Math.PI)) * a * Math.sin(i * th);
      return f;
    };
    atrialDir = unit([-0.2, -0.8, -0.5]); // negative in II, III, aVF; positive in V1
  }

  // ---- PVCs: a premature wide beat replaces the next conducted one; the one after keeps its time
  let pvc: Term[] | null = null;
  if (has('PVC')) {
    pvc = pvcTemplate(rng);
    const p = U(0.08, 0.25);
    const cands: number[] = [];
    for (let k = 1; k + 1 < beats.length; k++) if (beats[k + 1].t > 0.2 && beats[k + 1].t < T - 0.2) cands.push(k);
    const chosen: number[] = [];
    for (const k of cands) if (rng.next() < p && !chosen.some((c) => Math.abs(c - k) < 2)) chosen.push(k);
    if (chosen.length === 0 && cands.length > 0) chosen.push(cands[rng.int(cands.length)]);
    for (const k of chosen) {
      const rr = beats[k + 1].t - beats[k].t;
      const c = Math.min(0.85, Math.max(U(0.5, 0.7), 0.3 / rr));
      const next = beats[k + 1];
      if (rhythm === 'sinus') beats.push({ t: next.t, kind: 'P', rr: next.rr }); // atria fire on time
      next.t = beats[k].t + c * rr;
      next.kind = 'V';
    }
    beats.sort((x, y) => x.t - y.t);
    // the beat after a PVC follows the compensatory pause
    let last = -Infinity;
    for (const b of beats) if (b.kind !== 'P') { if (last > -Infinity) b.rr = b.t - last; last = b.t; }
  }

  // ---- render the VCG
  const vcg = [new Float64Array(n), new Float64Array(n), new Float64Array(n)];
  const respDepth = U(0, 0.08), respPhase = U(0, 2 * Math.PI);
  const qts: number[] = [];
  for (const b of beats) {
    const amp = 1 + respDepth * Math.sin(2 * Math.PI * fResp * b.t + respPhase);
    if (b.kind === 'V') {
      for (const w of pvc!) addGaussian(vcg, fs, b.t + w.t, w.s, scale(w.a, amp * (1 + 0.03 * rng.normal())));
      continue;
    }
    const s = tScale(b.rr);
    if (b.kind === 'N' && b.t >= 0 && b.t < T) qts.push(qrs + s * tBase);
    for (const w of tpl.terms) {
      if (b.kind === 'P' && w.g !== 'P') continue;
      const jit = w.g === 'QRS' ? 0.0005 : w.g === 'P' ? 0.001 : 0.002;
      const c = w.g === 'T' ? tpl.qrsOff + s * (w.t - tpl.qrsOff) : w.t;
      addGaussian(vcg, fs, b.t + c + jit * rng.normal(), w.s * (w.g === 'T' ? s : 1) * (1 + 0.02 * rng.normal()), scale(w.a, amp * (1 + 0.03 * rng.normal())));
    }
    if (b.kind === 'N')
      for (const p of tpl.plateaus)
        addPlateau(vcg, fs, b.t + p.t0, b.t + tpl.qrsOff + s * (p.t1 - tpl.qrsOff), p.rise, p.fall * s, scale(p.a, amp));
  }
  if (atrialSignal) {
    for (let i = 0; i < n; i++) {
      const f = atrialSignal(i / fs);
      for (let d = 0; d < 3; d++) vcg[d][i] += atrialDir[d] * f;
    }
  }

  // ---- project to I, II, V1–V6 and add noise per independent lead
  const leads8 = rows.map((r) => {
    const x = new Float64Array(n);
    for (let i = 0; i < n; i++) x[i] = r[0] * vcg[0][i] + r[1] * vcg[1][i] + r[2] * vcg[2][i];
    return x;
  });
  if (noise > 0) addNoise(rng, leads8, fs, noise, fResp);

  // ---- 12 leads: the 4 others from the float32 I and II, so the identities hold to rounding
  const f32 = leads8.map((x) => Float32Array.from(x));
  const [I, II] = f32;
  const derive = (p: number, q: number) => {
    const y = new Float32Array(n);
    for (let i = 0; i < n; i++) y[i] = p * I[i] + q * II[i];
    return y;
  };
  const signals = [I, II, derive(-1, 1), derive(-0.5, -0.5), derive(1, -0.5), derive(-0.5, 1), ...f32.slice(2)];

  // ---- labels from the beats inside the record
  const inside = beats.filter((b) => b.kind !== 'P' && b.t >= 0 && b.t < T);
  const rrMs: number[] = [];
  for (let k = 1; k < inside.length; k++) rrMs.push((inside[k].t - inside[k - 1].t) * 1000);
  const all = beats.filter((b) => b.kind !== 'P');
  const rrAll = all.slice(1).map((b, k) => b.t - all[k].t);
  const meanRr = rrMs.length > 0 ? rrMs.reduce((a, b) => a + b, 0) / rrMs.length : (1000 * rrAll.reduce((a, b) => a + b, 0)) / rrAll.length;
  const labels: SynthLabels = {
    conditions,
    hr: 60000 / meanRr,
    rr_ms: rrMs,
    qrs_ms: qrs * 1000,
    pr_ms: tpl.pOn === null ? null : (tpl.qrsOn - tpl.pOn) * 1000,
    qt_ms: (qts.length > 0 ? qts.reduce((a, b) => a + b, 0) / qts.length : qrs + tScale(meanRr / 1000) * tBase) * 1000,
  };
  return {
    id: `synth-${seed}-${index}`,
    signals,
    fs,
    leadNames: [...LEADS_12],
    labels: labels as unknown as Record<string, unknown>,
    meta: {
      source: 'synth',
      seed,
      index,
      rhythm,
      noise,
      qtc_ms: qtc * 1000,
      // R reference of each beat inside the record (sample index) and its type, N or V
      r_peaks: inside.map((b) => Math.round(b.t * fs)),
      beat_types: inside.map((b) => b.kind).join(''),
    },
  };
}

/**
 * Baseline wander, powerline, EMG (with occasional bursts) and rare electrode-motion steps, each
 * drawn per independent lead; the derived leads inherit it through I and II.
 */
function addNoise(rng: Rng, leads: Float64Array[], fs: number, level: number, fResp: number): void {
  const U = (a: number, b: number) => rng.uniform(a, b);
  const n = leads[0].length;
  const line = rng.next() < 0.5 ? 50 : 60;
  const emg = U(0.003, 0.02) * level;
  const resp = U(0, 0.1) * level, respPhase = U(0, 2 * Math.PI);
  const burst = rng.next() < 0.3 ? { i0: Math.floor(U(0, n)), len: Math.round(U(0.5, 2) * fs), k: U(2, 4) } : null;
  const motion = rng.next() < Math.min(1, 0.15 * level) ? { lead: rng.int(leads.length), i0: Math.floor(U(0, n)), h: U(-0.4, 0.4), tau: U(0.2, 1) } : null;
  leads.forEach((x, li) => {
    // respiration moves the baseline in every lead, with a lead-specific sign and size
    addSine(x, fs, fResp, resp * U(-1, 1), respPhase);
    for (let k = 0; k < 2; k++) addSine(x, fs, U(0.05, 0.5), U(0.02, 0.15) * level, U(0, 2 * Math.PI));
    const pl = U(0.005, 0.03) * level * U(0.5, 1), pp = U(0, 2 * Math.PI);
    if (line < 0.45 * fs) addSine(x, fs, line, pl, pp);
    const e = coloredNoise(rng, n, fs, Math.min(100, 0.45 * fs), emg * U(0.5, 1.5));
    if (burst) for (let i = burst.i0; i < Math.min(n, burst.i0 + burst.len); i++) e[i] *= burst.k;
    for (let i = 0; i < n; i++) x[i] += e[i];
    if (motion && motion.lead === li) for (let i = motion.i0; i < n; i++) x[i] += motion.h * Math.exp(-(i - motion.i0) / fs / motion.tau);
  });
}

/** Records start, start + 1, …, start + n − 1 of the stream (each depends only on opts.seed and its index). */
export function* synthesize(opts: SynthOptions & { n: number; start?: number }): Generator<EcgRecord> {
  const start = opts.start ?? 0;
  if (!(Number.isInteger(opts.n) && opts.n >= 0)) throw new Error(`synth: bad record count ${opts.n}`);
  for (let i = 0; i < opts.n; i++) yield synthRecord(start + i, opts);
}
