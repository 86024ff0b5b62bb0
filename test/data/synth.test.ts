import { detectRPeaks } from '../../train/data/dsp.js';
import { LEADS_12 } from '../../train/data/record.js';
import { SYNTH_CLASSES, synthesize, synthRecord, type SynthClass, type SynthLabels, type SynthOptions } from '../../train/data/synth.js';
import { assert } from '../helpers.js';

type Rec = ReturnType<typeof synthRecord>;
const labelsOf = (r: Rec) => r.labels as unknown as SynthLabels;
const peaksOf = (r: Rec) => r.meta.r_peaks as number[];
const INDEPENDENT = [0, 1, 6, 7, 8, 9, 10, 11]; // I, II, V1–V6

function records(n: number, opts: SynthOptions & { start?: number }): Rec[] {
  return [...synthesize({ ...opts, n })];
}

/** Mean of the window [R − pre, R + post) over the beats of one type (N conducted, V ventricular) in one lead. */
function avgBeat(r: Rec, lead: number, pre: number, post: number, type = 'N'): Float64Array {
  const fs = r.fs, a = Math.round(pre * fs), b = Math.round(post * fs), pk = peaksOf(r), types = r.meta.beat_types as string;
  const x = r.signals[lead];
  const avg = new Float64Array(a + b);
  let k = 0;
  pk.forEach((p, i) => {
    if (types[i] !== type || p - a < 0 || p + b > x.length) return;
    for (let j = 0; j < a + b; j++) avg[j] += x[p - a + j];
    k++;
  });
  assert(k > 0, `${r.id}: no beat to average`);
  return avg.map((v) => v / k);
}

/** QRS width from the spatial slope of the averaged beat (8 leads): walk out from the steepest point while the slope stays above 5 % of its peak (20 ms gaps allowed). */
function measuredQrsMs(r: Rec, type = 'N'): number {
  const fs = r.fs, pre = 0.2;
  const beats = INDEPENDENT.map((l) => avgBeat(r, l, pre, 0.25, type));
  const n = beats[0].length, act = new Float64Array(n);
  for (let i = 1; i < n - 1; i++) {
    let s = 0;
    for (const y of beats) s += (y[i + 1] - y[i - 1]) ** 2;
    act[i] = Math.sqrt(s);
  }
  let ip = 0;
  for (let i = 0; i < n; i++) if (act[i] > act[ip]) ip = i;
  const thr = 0.05 * act[ip], gap = Math.round(0.02 * fs);
  let a = ip, b = ip;
  for (let i = ip, quiet = 0; i > 0 && quiet < gap; i--) if (act[i] >= thr) { a = i; quiet = 0; } else quiet++;
  for (let i = ip, quiet = 0; i < n - 1 && quiet < gap; i++) if (act[i] >= thr) { b = i; quiet = 0; } else quiet++;
  return ((b - a) / fs) * 1000;
}

/** P peak → R, ms: the largest summed deflection (from a straight baseline) 70–450 ms before R. */
function measuredPrMs(r: Rec): number {
  const fs = r.fs, pre = 0.45, stop = 0.07;
  const act = new Float64Array(Math.round((pre - stop) * fs));
  for (const l of INDEPENDENT) {
    const y = avgBeat(r, l, pre, 0);
    const n = act.length;
    for (let i = 0; i < n; i++) act[i] += Math.abs(y[i] - (y[0] + ((y[n - 1] - y[0]) * i) / (n - 1)));
  }
  let ip = 0;
  for (let i = 0; i < act.length; i++) if (act[i] > act[ip]) ip = i;
  return (pre - ip / fs) * 1000;
}

/**
 * Time-locked atrial activity 70–250 ms before R: per lead, the peak-to-peak of the averaged segment
 * times the coherence of the segments (the share of their energy that the average keeps, corrected
 * for its 1/N floor: ≈1 for a P wave in every beat, ≈0 for unsynchronised f-waves); the largest over
 * the 8 leads. Only beats whose previous T wave has ended well before the window (RR ≥ its QT + 300 ms,
 * the QT from the label scaled by Bazett for the RR before it); NaN if fewer than 8 such beats.
 */
function atrialLock(r: Rec): number {
  const fs = r.fs, a = Math.round(0.25 * fs), b = Math.round(0.07 * fs), pk = peaksOf(r);
  const L = labelsOf(r), meanRR = L.rr_ms.reduce((x, y) => x + y, 0) / L.rr_ms.length;
  // rr_ms[i − 1] is the RR ending at peak i
  const clear = (i: number) => i >= 2 && L.rr_ms[i - 1] >= L.qt_ms * Math.sqrt(L.rr_ms[i - 2] / meanRR) + 300;
  let best = NaN;
  for (const l of INDEPENDENT) {
    const segs: Float64Array[] = [];
    pk.forEach((p, i) => {
      if (p - a < 0 || !clear(i)) return;
      const s = Float64Array.from(r.signals[l].subarray(p - a, p - b));
      const m = s.reduce((x, y) => x + y, 0) / s.length;
      segs.push(s.map((v) => v - m));
    });
    if (segs.length < 8) continue;
    const avg = new Float64Array(a - b);
    for (const s of segs) for (let i = 0; i < s.length; i++) avg[i] += s[i] / segs.length;
    const eAvg = avg.reduce((x, y) => x + y * y, 0);
    const eSeg = segs.reduce((t, s) => t + s.reduce((x, y) => x + y * y, 0), 0) / segs.length;
    const n = segs.length, coherence = (eAvg / eSeg - 1 / n) / (1 - 1 / n);
    const v = (Math.max(...avg) - Math.min(...avg)) * Math.max(0, coherence);
    if (!(v <= best)) best = v;
  }
  return best;
}

/** Median peak-to-peak within ±60 ms of the labelled R peaks, mV. */
function qrsSize(r: Rec, lead: number): number {
  const x = r.signals[lead], w = Math.round(0.06 * r.fs);
  const p2p = peaksOf(r).map((p) => {
    const s = x.subarray(Math.max(0, p - w), Math.min(x.length, p + w + 1));
    return Math.max(...s) - Math.min(...s);
  });
  return p2p.sort((a, b) => a - b)[Math.floor(p2p.length / 2)];
}

const cv = (xs: number[]) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length) / m;
};
/** Beat-to-beat irregularity: RMS of successive RR differences over the mean RR. */
const rmssd = (xs: number[]) => Math.sqrt(xs.slice(1).reduce((a, b, k) => a + (b - xs[k]) ** 2, 0) / (xs.length - 1)) / (xs.reduce((a, b) => a + b, 0) / xs.length);
const only = (c: SynthClass): SynthOptions => ({ conditions: { [c]: 1 }, combine: 0 });

describe('data/synth', () => {
  it('12 leads in standard order, the right length, finite and in a plausible mV range', () => {
    for (const fs of [500, 250, 257]) {
      for (const r of records(3, { seed: 1, fs, seconds: 10 })) {
        assert(r.leadNames.join() === LEADS_12.join(), `lead names ${r.leadNames}`);
        assert(r.fs === fs && r.signals.length === 12, 'fs and lead count');
        for (const x of r.signals) {
          assert(x instanceof Float32Array && x.length === Math.round(10 * fs), `length ${x.length} at ${fs} Hz`);
          for (let i = 0; i < x.length; i++) assert(Number.isFinite(x[i]) && Math.abs(x[i]) < 8, `${r.id}: sample ${x[i]}`);
        }
      }
    }
    assert(synthRecord(0, { seconds: 2.5, fs: 400 }).signals[0].length === 1000, '2.5 s at 400 Hz');
  });

  it("Einthoven's and Goldberger's identities hold to float32 rounding", () => {
    for (const r of records(6, { seed: 2 })) {
      const [I, II, III, aVR, aVL, aVF] = r.signals;
      let worst = 0;
      for (let i = 0; i < I.length; i++) {
        worst = Math.max(worst, Math.abs(III[i] - (II[i] - I[i])), Math.abs(aVR[i] + (I[i] + II[i]) / 2), Math.abs(aVL[i] - (I[i] - II[i] / 2)), Math.abs(aVF[i] - (II[i] - I[i] / 2)));
      }
      assert(worst < 2e-6, `${r.id}: identity error ${worst}`);
    }
  });

  it('is deterministic per (seed, index), independent of batch, and seeds differ', () => {
    const a = synthRecord(7, { seed: 5, fs: 250 });
    const batch = records(4, { seed: 5, fs: 250, start: 5 });
    const b = batch[2];
    assert(a.id === b.id && JSON.stringify(a.labels) === JSON.stringify(b.labels), 'same labels');
    for (let l = 0; l < 12; l++) for (let i = 0; i < a.signals[l].length; i++) assert(a.signals[l][i] === b.signals[l][i], `lead ${l} sample ${i} differs`);
    const c = synthRecord(7, { seed: 6, fs: 250 });
    let diff = 0;
    for (let i = 0; i < a.signals[1].length; i++) diff += Math.abs(a.signals[1][i] - c.signals[1][i]);
    assert(diff > 1, 'another seed gives another record');
    const d = synthRecord(8, { seed: 5, fs: 250 });
    assert(d.signals[1].some((v, i) => v !== a.signals[1][i]), 'another index gives another record');
  });

  it('heart rate from R peaks (lead II) matches the label (normal, brady, tachy)', () => {
    for (const c of ['NORM', 'SBRAD', 'STACH'] as SynthClass[]) {
      for (const r of records(5, { seed: 3, ...only(c) })) {
        const L = labelsOf(r);
        assert(L.conditions.join() === c, `conditions ${L.conditions}`);
        const range = c === 'SBRAD' ? [30, 60] : c === 'STACH' ? [100, 180] : [60, 100];
        assert(L.hr >= range[0] && L.hr <= range[1], `${c}: label hr ${L.hr}`);
        // lead II, unless the heart's random orientation leaves it a QRS under 0.4 mV (then the largest)
        const lead = qrsSize(r, 1) >= 0.4 ? 1 : INDEPENDENT.reduce((b, l) => (qrsSize(r, l) > qrsSize(r, b) ? l : b));
        // a QRS cut by the record's edge may be found although its R lies outside: skip the outer 60 ms
        const n = r.signals[lead].length, edge = 0.06 * r.fs;
        const pk = detectRPeaks(r.signals[lead], r.fs).filter((p) => p >= edge && p < n - edge);
        const rr = pk.slice(1).map((p, k) => (p - pk[k]) / r.fs);
        const hr = 60 / (rr.reduce((a, b) => a + b, 0) / rr.length);
        assert(Math.abs(hr - L.hr) < 3, `${c} ${r.id}: measured ${hr.toFixed(1)} bpm, label ${L.hr.toFixed(1)}`);
        // the label is 60000 / mean of its own RR list
        assert(Math.abs(60000 / (L.rr_ms.reduce((a, b) => a + b, 0) / L.rr_ms.length) - L.hr) < 1e-6, 'hr = 60000 / mean rr');
        assert(cv(L.rr_ms) < 0.1, `${c}: sinus RR CV ${cv(L.rr_ms)}`);
      }
    }
  });

  it('atrial fibrillation: irregular RR, no P wave, no PR; sinus rhythm has P waves', () => {
    let measured = 0;
    // 30 s records, so that enough beats follow a long RR
    for (const r of records(10, { seed: 4, ...only('AFIB'), noise: 0, seconds: 30, fs: 250 })) {
      const L = labelsOf(r);
      assert(L.pr_ms === null, 'AF has no PR');
      const pk = detectRPeaks(r.signals[1], r.fs);
      const rr = pk.slice(1).map((p, k) => p - pk[k]);
      assert(rmssd(rr) > 0.12 && rmssd(L.rr_ms) > 0.12 && cv(L.rr_ms) > 0.08, `${r.id}: AF RR RMSSD/mean ${rmssd(rr).toFixed(3)} (label ${rmssd(L.rr_ms).toFixed(3)})`);
      // fast AF may leave too few beats clear of the previous T wave; skip those
      const lock = atrialLock(r);
      if (Number.isNaN(lock)) continue;
      assert(lock < 0.05, `${r.id}: time-locked atrial activity ${lock.toFixed(3)} mV in AF`);
      measured++;
    }
    assert(measured >= 5, `only ${measured} of 10 AF records measurable`);
    for (const r of records(4, { seed: 4, ...only('NORM'), noise: 0, seconds: 30, fs: 250 })) {
      const lock = atrialLock(r);
      assert(lock > 0.08, `${r.id}: P wave ${lock.toFixed(3)} mV in sinus rhythm`);
    }
  });

  it('first-degree AV block: PR label over 200 ms and the measured P → R agrees', () => {
    const avb = records(5, { seed: 5, conditions: { '1AVB': 1, SBRAD: 1 }, combine: 1, noise: 0 });
    const sinus = records(5, { seed: 5, ...only('SBRAD'), noise: 0 });
    for (const r of [...avb, ...sinus]) {
      const L = labelsOf(r);
      const block = L.conditions.includes('1AVB');
      assert(block === avb.includes(r) && L.conditions.includes('SBRAD'), `conditions ${L.conditions}`);
      assert(L.pr_ms !== null && (block ? L.pr_ms > 200 : L.pr_ms >= 120 && L.pr_ms <= 200), `${r.id}: PR ${L.pr_ms}`);
      // the P peak lies ≈15 ms after P onset minus R after QRS onset; allow ±20 ms around that
      const d = measuredPrMs(r) - L.pr_ms + 15;
      assert(Math.abs(d) < 20, `${r.id}: measured P→R ${measuredPrMs(r).toFixed(0)} ms, PR label ${L.pr_ms.toFixed(0)}`);
    }
  });

  it('bundle branch blocks: QRS ≥ 120 ms, labelled and measured; normal QRS is narrow', () => {
    for (const c of ['NORM', 'RBBB', 'LBBB'] as SynthClass[]) {
      for (const r of records(4, { seed: 6, ...only(c), noise: 0 })) {
        const L = labelsOf(r), m = measuredQrsMs(r);
        if (c === 'NORM') assert(L.qrs_ms >= 70 && L.qrs_ms < 110 && Math.abs(m - L.qrs_ms) < 20, `${r.id}: normal QRS ${L.qrs_ms}, measured ${m}`);
        else assert(L.qrs_ms >= 120 && m >= 120, `${c} ${r.id}: QRS label ${L.qrs_ms}, measured ${m}`);
        // RBBB's terminal wave leaves a clean J point; LBBB's discordant ST-T does not
        if (c === 'RBBB') assert(Math.abs(m - L.qrs_ms) < 20, `RBBB ${r.id}: QRS label ${L.qrs_ms}, measured ${m}`);
      }
    }
    // the label holds across seeds and combinations
    for (const r of records(40, { seed: 7, conditions: { RBBB: 1, LBBB: 1, PVC: 0.5, STE: 0.5, AFIB: 0.5 }, combine: 0.5, fs: 250 })) {
      const L = labelsOf(r);
      if (L.conditions.includes('RBBB') || L.conditions.includes('LBBB')) assert(L.qrs_ms >= 120 && L.qrs_ms <= 200, `${r.id} ${L.conditions}: QRS ${L.qrs_ms}`);
      assert(L.qt_ms > L.qrs_ms + 100 && L.qt_ms < 650, `${r.id}: QT ${L.qt_ms}`);
    }
  });

  it('PVCs are premature, wide, and followed by a compensatory pause', () => {
    let seen = 0, wideSeen = 0;
    for (const r of records(5, { seed: 8, ...only('PVC'), noise: 0 })) {
      const pk = peaksOf(r), types = r.meta.beat_types as string;
      assert(types.includes('V'), `${r.id}: no PVC in ${types}`);
      if (pk.some((p, i) => types[i] === 'V' && p >= 0.2 * r.fs && p + 0.25 * r.fs <= r.signals[0].length)) {
        const wide = measuredQrsMs(r, 'V'), narrow = measuredQrsMs(r, 'N');
        assert(wide >= 120 && wide > narrow + 30, `${r.id}: PVC QRS ${wide} ms, sinus ${narrow} ms`);
        wideSeen++;
      }
      const rr = labelsOf(r).rr_ms;
      for (let k = 2; k + 2 < pk.length; k++) {
        if (types.slice(k - 2, k + 3) !== 'NNVNN') continue;
        // rr[k − 1]: coupling, rr[k]: pause; rr[k − 2] and rr[k + 1]: the sinus cycle around them
        const base = (rr[k - 2] + rr[k + 1]) / 2, before = rr[k - 1], after = rr[k];
        assert(before < 0.85 * base, `${r.id}: PVC coupling ${before.toFixed(0)} ms vs RR ${base.toFixed(0)}`);
        // allow for the sinus rate drifting across the pause (heart-rate variability)
        const tol = 0.2 * base + Math.abs(rr[k + 1] - rr[k - 2]);
        assert(Math.abs(before + after - 2 * base) < tol, `${r.id}: coupling + pause ${(before + after).toFixed(0)} vs 2 RR ${(2 * base).toFixed(0)}`);
        seen++;
      }
    }
    assert(seen > 0 && wideSeen > 0, `PVCs checked: ${seen} pauses, ${wideSeen} widths`);
  });

  it('ST elevation / depression at J + 60 ms and LVH voltage', () => {
    // ST level relative to the PR segment, with J ≈ R + QRS/2 (R sits mid-QRS)
    const st = (r: Rec) => {
      const q = labelsOf(r).qrs_ms / 1000;
      return LEADS_12.map((_, l) => {
        const y = avgBeat(r, l, 0.3, 0.4);
        const at = (t: number) => y[Math.round((0.3 + t) * r.fs)];
        return at(q / 2 + 0.06) - at(-q / 2 - 0.02);
      });
    };
    for (const r of records(4, { seed: 9, ...only('STE'), noise: 0 })) assert(Math.max(...st(r)) >= 0.2, `${r.id}: max ST ${Math.max(...st(r)).toFixed(3)}`);
    for (const r of records(4, { seed: 9, ...only('STD'), noise: 0 })) assert(Math.min(...st(r)) <= -0.05, `${r.id}: min ST ${Math.min(...st(r)).toFixed(3)}`);
    // a normal ST segment stays near the baseline (V2–V3 may rise a little, as in real ECGs)
    for (const r of records(4, { seed: 9, ...only('NORM'), noise: 0 })) {
      const v = st(r);
      assert(Math.max(...v) < 0.18 && Math.min(...v) > -0.1, `${r.id}: normal ST ${Math.min(...v).toFixed(3)}..${Math.max(...v).toFixed(3)}`);
    }
    const sokolow = (r: Rec) => {
      const q = (l: number) => avgBeat(r, l, 0.1, 0.12);
      return -Math.min(...q(6)) + Math.max(...q(10), ...q(11));
    };
    for (const r of records(4, { seed: 10, ...only('LVH'), noise: 0 })) assert(sokolow(r) > 3.5, `${r.id}: LVH SV1 + RV5/6 ${sokolow(r).toFixed(2)} mV`);
    for (const r of records(4, { seed: 10, ...only('NORM'), noise: 0 })) assert(sokolow(r) < 3.5, `${r.id}: normal SV1 + RV5/6 ${sokolow(r).toFixed(2)} mV`);
  });

  it('condition weights: single class, compatible combinations, every class reachable, bad input refused', () => {
    const seen = new Set<string>();
    let multi = 0;
    for (const r of records(150, { seed: 11, fs: 100, seconds: 4, noise: 0 })) {
      const c = labelsOf(r).conditions;
      c.forEach((x) => seen.add(x));
      if (c.length > 1) multi++;
      const has = (x: SynthClass) => c.includes(x);
      assert(!(has('NORM') && c.length > 1), `NORM combined: ${c}`);
      assert(c.filter((x) => ['NORM', 'SBRAD', 'STACH', 'AFIB', 'AFLT'].includes(x)).length <= 1, `two rhythms: ${c}`);
      assert(!(has('RBBB') && has('LBBB')) && !(has('STE') && has('STD')), `exclusive pair: ${c}`);
      assert(!(has('1AVB') && (has('AFIB') || has('AFLT'))), `1AVB without P waves: ${c}`);
      assert((labelsOf(r).pr_ms === null) === (has('AFIB') || has('AFLT')), `PR null iff no P: ${c}`);
    }
    assert(SYNTH_CLASSES.every((c) => seen.has(c)), `classes seen: ${[...seen]}`);
    assert(multi > 10, `only ${multi} multi-label records`);
    for (const r of records(10, { seed: 12, fs: 100, seconds: 4, conditions: { AFLT: 1 } })) assert(labelsOf(r).conditions.join() === 'AFLT', 'only AFLT');
    const throws = (f: () => unknown) => {
      try {
        f();
      } catch {
        return true;
      }
      return false;
    };
    assert(throws(() => synthRecord(0, { conditions: { XYZ: 1 } as never })), 'unknown class');
    assert(throws(() => synthRecord(0, { conditions: { NORM: 0 } })), 'no positive weight');
    assert(throws(() => synthRecord(-1)), 'negative index');
  });
});
