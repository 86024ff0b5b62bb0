import { Rng } from '../../engine/random.js';
import { bandpass, bandpassSos, butterworth, detectBeats, detectRPeaks, fft, resample, resampleRate, sosfilt, sosfiltfilt, sosGain } from '../../train/data/dsp.js';
import { checkQuality, interpolateNaN, preprocess, selectLeads } from '../../train/data/preprocess.js';
import { LEADS_12, type EcgRecord } from '../../train/data/record.js';
import { synthRecord } from '../../train/data/synth.js';
import { assert, assertClose, expectThrow } from '../helpers.js';

const sine = (n: number, fs: number, f: number, amp = 1, phase = 0) => Float64Array.from({ length: n }, (_, i) => amp * Math.sin((2 * Math.PI * f * i) / fs + phase));
const maxAbs = (x: ArrayLike<number>, from = 0, to = x.length) => {
  let m = 0;
  for (let i = from; i < to; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
};
const throwsWith = (f: () => unknown, text: string) => {
  try {
    f();
  } catch (e) {
    return (e as Error).message.includes(text);
  }
  return false;
};

/** Direct O(n²) DFT in float64 (forward e^{−2πikt/n}; unnormalised inverse), the reference for fft. */
function dft(re: Float64Array, im: Float64Array, inverse = false): [Float64Array, Float64Array] {
  const n = re.length, sgn = inverse ? 1 : -1;
  const c = Float64Array.from({ length: n }, (_, j) => Math.cos((2 * Math.PI * j) / n));
  const s = Float64Array.from({ length: n }, (_, j) => sgn * Math.sin((2 * Math.PI * j) / n));
  const wr = new Float64Array(n), wi = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    let ar = 0, ai = 0;
    for (let t = 0, j = 0; t < n; t++, j += j + k >= n ? k - n : k) {
      ar += re[t] * c[j] - im[t] * s[j]; // j = kt mod n
      ai += re[t] * s[j] + im[t] * c[j];
    }
    wr[k] = ar;
    wi[k] = ai;
  }
  return [wr, wi];
}

/**
 * scipy.signal.resample of a real signal, written out the way scipy does it (rfft, keep the bins
 * below the smaller Nyquist, double or halve that Nyquist bin, irfft, scale by num/nx), by direct DFT.
 */
function resampleRef(x: Float64Array, num: number): Float64Array {
  const nx = x.length, [xr, xi] = dft(x, new Float64Array(nx));
  const n = Math.min(num, nx), bins = Math.floor(num / 2) + 1;
  const yr = new Float64Array(bins), yi = new Float64Array(bins);
  for (let k = 0; k <= Math.floor(n / 2); k++) [yr[k], yi[k]] = [xr[k], xi[k]];
  if (n % 2 === 0 && num !== nx) {
    const f = num < nx ? 2 : 0.5;
    yr[n / 2] *= f;
    yi[n / 2] *= f;
  }
  // irfft: bins 1 … ⌈num/2⌉ − 1 count with their conjugates; an even num's Nyquist bin once, real part only
  const c = Float64Array.from({ length: num }, (_, j) => Math.cos((2 * Math.PI * j) / num));
  const s = Float64Array.from({ length: num }, (_, j) => Math.sin((2 * Math.PI * j) / num));
  const y = new Float64Array(num);
  for (let t = 0; t < num; t++) {
    let acc = yr[0];
    for (let k = 1, j = t; k < bins; k++, j += j + t >= num ? t - num : t) acc += (2 * k === num ? 1 : 2) * (yr[k] * c[j] - yi[k] * s[j]);
    y[t] = acc / nx; // 1/num of the inverse times num/nx
  }
  return y;
}

function record(names: string[], signals: Float32Array[], fs = 500): EcgRecord {
  return { id: 'test', signals, fs, leadNames: names, labels: {}, meta: {} };
}

describe('data/dsp', () => {
  it('fft of any length matches a direct DFT, forward and inverse', () => {
    const rng = new Rng(1);
    // radix 4, 2, 3, 5 and odd-prime stages (7, 11·13, 31), and Bluestein for large primes (97, 257, 2570 = 2·5·257)
    for (const n of [1, 2, 3, 5, 7, 12, 30, 64, 97, 100, 143, 250, 257, 992, 1000, 2570, 5000]) {
      const re = Float64Array.from({ length: n }, () => rng.normal()), im = Float64Array.from({ length: n }, () => rng.normal());
      for (const inverse of [false, true]) {
        const [wr, wi] = dft(re, im, inverse);
        const xr = Float64Array.from(re), xi = Float64Array.from(im);
        fft(xr, xi, inverse);
        assertClose(xr, wr, 1e-10, `fft re n=${n} inverse=${inverse}`);
        assertClose(xi, wi, 1e-10, `fft im n=${n} inverse=${inverse}`);
      }
      const xr = Float64Array.from(re), xi = Float64Array.from(im);
      fft(xr, xi);
      fft(xr, xi, true);
      assertClose(xr.map((v) => v / n), re, 1e-12, `round trip re n=${n}`);
      assertClose(xi.map((v) => v / n), im, 1e-12, `round trip im n=${n}`);
    }
  });

  it('resampling matches scipy.signal.resample written out by direct DFT', () => {
    const rng = new Rng(2);
    for (const [nx, num] of [[5000, 2500], [2500, 5000], [1000, 2500], [7, 3], [2570, 2500], [9, 12]]) {
      const x = Float64Array.from({ length: nx }, () => rng.normal());
      assertClose(resample(x, num), resampleRef(x, num), 1e-10, `resample ${nx} → ${num}`);
    }
  });

  it('resampling to 250 Hz keeps a sine exactly, with the exact length, from common and odd rates', () => {
    for (const fsIn of [500, 400, 360, 257, 1000, 100]) {
      const x = sine(10 * fsIn, fsIn, 5, 1.3, 0.4);
      const y = resampleRate(x, fsIn, 250);
      assert(y.length === 2500, `${fsIn} Hz → ${y.length} samples`);
      assertClose(y, sine(2500, 250, 5, 1.3, 0.4), 1e-9, `5 Hz sine from ${fsIn} Hz`);
    }
    // a tone that does not fit the window a whole number of times: exact away from the edges
    const y = resample(sine(5000, 500, 7.37, 1), 2500), ref = sine(2500, 250, 7.37, 1);
    const err = Float64Array.from(y, (v, i) => v - ref[i]);
    assert(maxAbs(err, 500, 2000) < 0.02, `7.37 Hz: mid-window error ${maxAbs(err, 500, 2000)}`);
    for (const num of [1, 2, 999, 2500, 2501, 7919]) assert(resample(sine(2570, 257, 3), num).length === num, `length ${num}`);
  });

  it('resampling removes tones above the new Nyquist frequency and keeps those below', () => {
    // 150 Hz at 500 Hz (would alias to 100 Hz at 250 Hz) and 140 Hz at 360 Hz (→ 110 Hz)
    for (const [fsIn, f] of [[500, 150], [360, 140], [1000, 300]]) {
      const y = resampleRate(sine(10 * fsIn, fsIn, f), fsIn, 250);
      assert(maxAbs(y) < 1e-9, `${f} Hz tone at ${fsIn} Hz leaves ${maxAbs(y)}`);
    }
    const y = resampleRate(sine(5000, 500, 100), 500, 250);
    assertClose(y, sine(2500, 250, 100), 1e-9, '100 Hz (in band) kept');
  });

  it('Butterworth sections match the analytic magnitude; high-pass blocks DC', () => {
    const fs = 250;
    for (const order of [1, 2, 3, 4, 5, 6]) {
      for (const [type, fc] of [['lowpass', 40], ['highpass', 0.67]] as const) {
        const sos = butterworth(order, fc, fs, type);
        assert(sos.length === Math.ceil(order / 2), 'one biquad per pole pair');
        for (const f of [0.1, 0.5, 0.67, 1, 5, 20, 40, 60, 100, 124]) {
          // bilinear-transformed Butterworth: |H|² = 1 / (1 + (tan(πf/fs) / tan(πfc/fs))^{±2N})
          const r = Math.tan((Math.PI * f) / fs) / Math.tan((Math.PI * fc) / fs);
          const want = 1 / Math.sqrt(1 + (type === 'lowpass' ? r : 1 / r) ** (2 * order));
          const got = sosGain(sos, f, fs);
          assert(Math.abs(got - want) < 1e-9, `${type} N=${order} at ${f} Hz: ${got} vs ${want}`);
        }
      }
    }
    assert(sosGain(butterworth(5, 0.67, fs, 'highpass'), 0, fs) < 1e-12, 'high-pass DC gain 0');
    assert(Math.abs(sosGain(bandpassSos(0.67, 40, fs), 10, fs) - 1) < 1e-6, 'band-pass unit gain at 10 Hz');
    assert(throwsWith(() => butterworth(2, 130, fs, 'lowpass'), 'cutoff'), 'cutoff above Nyquist refused');
  });

  it('forward-backward band-pass is zero phase: a peak stays put, in-band sines keep their amplitude', () => {
    const fs = 250, n = 2500;
    const pulse = Float64Array.from({ length: n }, (_, i) => Math.exp(-0.5 * ((i - 1234) / 4) ** 2));
    const sos = bandpassSos(0.67, 40, fs, 5);
    const zp = sosfiltfilt(sos, pulse, 1000);
    const argmax = (x: ArrayLike<number>) => {
      let b = 0;
      for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i;
      return b;
    };
    assert(argmax(zp) === 1234, `zero-phase peak at ${argmax(zp)}`);
    const oneWay = sosfilt(sos, pulse);
    assert(argmax(oneWay) > 1234, `a one-way pass delays the peak (${argmax(oneWay)}): the test can tell`);
    // 10 Hz passes at unit gain, 0.1 Hz drift and 60 Hz hum are attenuated (gain |H|² twice over)
    const x = sine(n, fs, 10);
    const y = bandpass(x, fs, 0.67, 40);
    // (the outer 2 s hold the edge transients of a 0.67 Hz high-pass)
    assert(Math.abs(maxAbs(y, 500, 2000) - 1) < 0.005, `10 Hz amplitude ${maxAbs(y, 500, 2000)}`);
    assert(maxAbs(bandpass(sine(n, fs, 60), fs, 0.67, 40), 500, 2000) < 0.01, '60 Hz attenuated');
    assert(maxAbs(bandpass(sine(n, fs, 0.1, 1, 1), fs, 0.67, 40), 500, 2000) < 0.01, '0.1 Hz attenuated');
    // a record that ends high (on an R peak, on wander) gets no large step at its end
    const ramp = Float64Array.from({ length: n }, (_, i) => 1 + 0.3 * Math.sin((2 * Math.PI * i) / n));
    assert(maxAbs(bandpass(ramp, fs, 0.67, 40)) < 0.1, `offset and slow wave leave ${maxAbs(bandpass(ramp, fs, 0.67, 40))}`);
  });

  it('R-peak detection finds regular beats in a synthetic pulse train', () => {
    const fs = 360, n = 10 * fs;
    const x = new Float64Array(n);
    const at = [100, 400, 700, 1000, 1300, 1600, 1900, 2200, 2500, 2800, 3100, 3400];
    for (const c of at) for (let i = 0; i < n; i++) x[i] += Math.exp(-0.5 * ((i - c) / 3) ** 2) + 0.2 * Math.exp(-0.5 * ((i - c - 100) / 15) ** 2);
    const pk = detectRPeaks(x, fs);
    assert(pk.join() === at.join(), `peaks ${pk}`);
  });

  it('beats on several leads at once: the energy of all of them, one place per beat (a beat may show in some leads only, inverted)', () => {
    const fs = 250, n = 10 * fs;
    const at = [125, 325, 525, 725, 925, 1125, 1325, 1525, 1725, 1925, 2125, 2325];
    const lead = (beats: number[], sign: number, size: number) =>
      Float64Array.from({ length: n }, (_, i) => beats.reduce((v, c) => v + sign * size * Math.exp(-0.5 * ((i - c) / 4) ** 2) + 0.3 * size * Math.exp(-0.5 * ((i - c - 60) / 15) ** 2), 0));
    // the even beats in one lead, the odd ones inverted in another, a flat lead
    const leads = [lead(at.filter((_, k) => k % 2 === 0), 1, 1), lead(at.filter((_, k) => k % 2 === 1), -1, 0.8), new Float64Array(n)];
    const beats = detectBeats(leads, fs);
    assert(beats.length === at.length && beats.every((b, k) => Math.abs(b - at[k]) <= 2), `beats ${beats}`);
    // one lead alone: detectRPeaks's beats before their refinement to the peak sample
    const all = lead(at, 1, 1);
    assert(detectBeats([all], fs).every((b, k) => Math.abs(b - at[k]) <= 2) && detectRPeaks(all, fs).join() === at.join(), 'one lead');
    assert(detectBeats([new Float64Array(n), new Float64Array(n)], fs).length === 0, 'flat leads have no beats');
    expectThrow(() => detectBeats([new Float64Array(n), new Float64Array(n - 1)], fs), `detectBeats: leads of unequal length (${n}, ${n - 1})`);
  });
});

describe('data/preprocess', () => {
  it('selects leads by name, case-insensitively, in the requested order, and names missing ones', () => {
    const names = ['i', 'II', 'III', 'AVR', 'AVL', 'AVF', 'v1', 'V2', 'V3', 'V4', 'V5', 'v6'];
    const sig = names.map((_, k) => new Float32Array(10).fill(k));
    const r = record(names, sig);
    const eight = selectLeads(r, 8);
    assert(eight.names.join() === 'I,II,V1,V2,V3,V4,V5,V6', `names ${eight.names}`);
    assert(eight.signals.map((s) => s[0]).join() === '0,1,6,7,8,9,10,11', 'rows follow the names');
    assert(selectLeads(r, 12).signals.map((s) => s[0]).join() === '0,1,2,3,4,5,6,7,8,9,10,11', '12 leads');
    assert(selectLeads(r, ['aVR', 'avf', 'I']).signals.map((s) => s[0]).join() === '3,5,0', 'by name list');
    const partial = record(['I', 'II', 'V1', 'V2', 'V5', 'V6'], sig.slice(0, 6));
    assert(throwsWith(() => selectLeads(partial, 8), 'missing leads: V3, V4'), 'error names the missing leads');
    const res = preprocess(partial);
    assert(!res.ok && res.reason.includes('V3, V4'), 'preprocess reports it instead of throwing');
  });

  it('quality checks catch NaN, Inf, flat and saturated leads and pass a clean record', () => {
    const fs = 500;
    const clean = synthRecord(0, { seed: 3, fs }).signals;
    assert(checkQuality(clean, LEADS_12, fs).length === 0, `clean record: ${JSON.stringify(checkQuality(clean, LEADS_12, fs))}`);
    const bad = clean.map((x) => Float32Array.from(x));
    bad[0][100] = NaN;
    bad[1][7] = Infinity;
    bad[2].fill(0.001);
    for (let i = 1000; i < 1000 + 0.2 * fs; i++) bad[7][i] = 5; // a clipped run at the lead's maximum
    const issues = checkQuality(bad, LEADS_12, fs);
    const got = issues.map((q) => `${q.lead}:${q.kind}`).sort().join();
    assert(got === 'I:nan,II:inf,III:flat,V2:saturated', `issues ${got}`);
    // a short run at the maximum (an R peak) is not saturation
    const peaky = Float32Array.from(clean[1]);
    for (let i = 2000; i < 2005; i++) peaky[i] = 9;
    assert(checkQuality([peaky], ['II'], fs).length === 0, 'five samples at the top are fine');
    const res = preprocess(record(LEADS_12.slice(), bad, fs), { leads: 12 });
    assert(!res.ok && /I nan/.test(res.reason) && /III flat/.test(res.reason) && res.issues.length === 4, `reason ${!res.ok && res.reason}`);
    const x = Float64Array.from([NaN, 1, NaN, NaN, 4, NaN]);
    assert(interpolateNaN(x) && x.join() === '1,1,2,3,4,4', `interpolated ${x}`);
    assert(!interpolateNaN(Float64Array.from([NaN, NaN])), 'all NaN');
  });

  it('turns a 500 Hz synthetic record into [8, 2500] float32, each row the resampled lead', () => {
    const r = synthRecord(1, { seed: 4, fs: 500, seconds: 12 });
    const res = preprocess(r);
    assert(res.ok && res.signals.length === 8 * 2500 && res.fs === 250 && res.samples === 2500, 'shape');
    assert(res.leads.join() === 'I,II,V1,V2,V3,V4,V5,V6', `leads ${res.leads}`);
    // the first 10 s (5000 samples) of V1, Fourier-resampled
    const want = resample(r.signals[6].subarray(0, 5000), 2500);
    assertClose(res.signals.subarray(2 * 2500, 3 * 2500), want, 1e-6, 'V1 row');
    // the same beats remain: R-peak count in lead II at 250 Hz matches the label within the window
    const inWindow = (r.meta.r_peaks as number[]).filter((p) => p < 5000).length;
    const found = detectRPeaks(res.signals.subarray(2500, 5000), 250).length;
    assert(Math.abs(found - inWindow) <= 1, `peaks ${found} vs ${inWindow}`);
    // other source rates land on the same grid
    for (const fs of [400, 360, 257, 1000]) {
      const q = preprocess(synthRecord(1, { seed: 4, fs }), { leads: 12 });
      assert(q.ok && q.signals.length === 12 * 2500, `${fs} Hz`);
    }
  });

  it('crops, rejects or pads short records, z-scores, clips and band-passes as configured', () => {
    const r = synthRecord(2, { seed: 5, fs: 500, seconds: 14 });
    const start = preprocess(r, { fs: 500 });
    const center = preprocess(r, { fs: 500, crop: 'center' });
    const at = preprocess(r, { fs: 500, crop: 2 });
    assert(start.ok && center.ok && at.ok, 'crops ok');
    assert(start.signals[0] === r.signals[0][0] && center.signals[0] === r.signals[0][1000] && at.signals[0] === r.signals[0][1000], 'crop offsets');
    assert(!preprocess(r, { crop: 5 }).ok, 'crop past the end refused');

    const short = synthRecord(2, { seed: 5, fs: 500, seconds: 7 });
    const rej = preprocess(short);
    assert(!rej.ok && rej.reason.startsWith('too short'), 'short rejected by default');
    const pad = preprocess(short, { short: 'pad' });
    assert(pad.ok && pad.signals.length === 8 * 2500, 'padded shape');
    const row = pad.signals.subarray(0, 2500);
    assert(maxAbs(row, 1750, 2500) === 0 && maxAbs(row, 0, 1750) > 0.05, 'zeros after 7 s only');

    const z = preprocess(r, { zscore: true });
    assert(z.ok, 'z ok');
    for (let l = 0; l < 8; l++) {
      const x = z.signals.subarray(l * 2500, (l + 1) * 2500);
      const m = x.reduce((a, b) => a + b, 0) / x.length;
      const sd = Math.sqrt(x.reduce((a, b) => a + (b - m) ** 2, 0) / x.length);
      assert(Math.abs(m) < 1e-5 && Math.abs(sd - 1) < 1e-4, `lead ${l}: mean ${m}, std ${sd}`);
    }
    const c = preprocess(r, { zscore: true, clip: 2 });
    assert(c.ok && maxAbs(c.signals) <= 2 && maxAbs(c.signals) === 2, 'clipped at 2');

    // band-pass removes the baseline wander: the mean of each lead goes to ≈0, the QRS stays
    const raw = preprocess(r), bp = preprocess(r, { bandpass: [0.67, 40] });
    assert(raw.ok && bp.ok, 'bp ok');
    const mean = (x: Float32Array) => x.reduce((a, b) => a + b, 0) / x.length;
    const lead2 = (x: Float32Array) => x.subarray(2500, 5000);
    assert(Math.abs(mean(lead2(bp.signals))) < 0.02, `band-passed mean ${mean(lead2(bp.signals))}`);
    const pk = detectRPeaks(lead2(raw.signals), 250);
    const bpk = detectRPeaks(lead2(bp.signals), 250);
    assert(pk.length === bpk.length && pk.every((p, i) => Math.abs(p - bpk[i]) <= 1), 'R peaks unmoved by the zero-phase filter');
    assert(throwsWith(() => preprocess(r, { bandpass: [0.5, 200] }), 'band-pass'), 'band above Nyquist refused');
  });

  it('interpolates NaN samples on request, else rejects the record', () => {
    const r = synthRecord(3, { seed: 6, fs: 500 });
    r.signals[1].fill(NaN, 100, 110);
    const rej = preprocess(r);
    assert(!rej.ok && rej.reason === 'II nan', `reason ${!rej.ok && rej.reason}`);
    const ok = preprocess(r, { nan: 'interpolate' });
    assert(ok.ok && ok.signals.every(Number.isFinite) && ok.issues.some((q) => q.kind === 'nan'), 'interpolated, issue still reported');
  });
});
