// Signal processing for ECG preprocessing and synthetic-data checks, in float64 and free of any
// environment API: an any-length FFT, the FFT resampler, Butterworth second-order sections with
// zero-phase (forward-backward) filtering, and a simple R-peak detector.

// ---------------------------------------------------------------------------------------------
// FFT

const pow2Cache = new Map<number, { cos: Float64Array; sin: Float64Array; rev: Uint32Array }>();

function pow2Plan(n: number) {
  let p = pow2Cache.get(n);
  if (!p) {
    const cos = new Float64Array(n / 2), sin = new Float64Array(n / 2);
    for (let k = 0; k < n / 2; k++) {
      cos[k] = Math.cos((2 * Math.PI * k) / n);
      sin[k] = Math.sin((2 * Math.PI * k) / n);
    }
    const rev = new Uint32Array(n);
    const bits = Math.round(Math.log2(n));
    for (let i = 0; i < n; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >>> b) & 1) << (bits - 1 - b);
      rev[i] = r >>> 0;
    }
    p = { cos, sin, rev };
    pow2Cache.set(n, p);
  }
  return p;
}

/** Iterative radix-2 transform, in place; n a power of two. Unnormalised in both directions. */
function fftPow2(re: Float64Array, im: Float64Array, inverse: boolean): void {
  const n = re.length;
  if (n <= 1) return;
  const { cos, sin, rev } = pow2Plan(n);
  for (let i = 0; i < n; i++) {
    const j = rev[i];
    if (j > i) {
      let t = re[i]; re[i] = re[j]; re[j] = t;
      t = im[i]; im[i] = im[j]; im[j] = t;
    }
  }
  const sgn = inverse ? 1 : -1;
  for (let size = 2; size <= n; size *= 2) {
    const half = size / 2, step = n / size;
    for (let start = 0; start < n; start += size) {
      for (let k = 0; k < half; k++) {
        const wr = cos[k * step], wi = sgn * sin[k * step];
        const a = start + k, b = a + half;
        const xr = re[b] * wr - im[b] * wi, xi = re[b] * wi + im[b] * wr;
        re[b] = re[a] - xr; im[b] = im[a] - xi;
        re[a] += xr; im[a] += xi;
      }
    }
  }
}

interface Bluestein { m: number; wr: Float64Array; wi: Float64Array; br: Float64Array; bi: Float64Array }
const bluesteinCache = new Map<string, Bluestein>();

// Bluestein's chirp-z turns a length-n DFT into a circular convolution of power-of-two length,
// so record lengths such as 2570 (257 Hz) or 3600 (360 Hz) need no mixed-radix code.
function bluesteinPlan(n: number, inverse: boolean): Bluestein {
  const key = `${n}:${inverse ? 1 : 0}`;
  let p = bluesteinCache.get(key);
  if (!p) {
    let m = 1;
    while (m < 2 * n - 1) m *= 2;
    const sgn = inverse ? 1 : -1;
    const wr = new Float64Array(n), wi = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      // k² mod 2n keeps the angle small, so large n loses no precision
      const a = (Math.PI * ((k * k) % (2 * n))) / n;
      wr[k] = Math.cos(a);
      wi[k] = sgn * Math.sin(a);
    }
    const br = new Float64Array(m), bi = new Float64Array(m);
    br[0] = wr[0]; bi[0] = -wi[0];
    for (let k = 1; k < n; k++) {
      br[k] = br[m - k] = wr[k];
      bi[k] = bi[m - k] = -wi[k];
    }
    fftPow2(br, bi, false);
    p = { m, wr, wi, br, bi };
    if (bluesteinCache.size > 32) bluesteinCache.clear();
    bluesteinCache.set(key, p);
  }
  return p;
}

/** In-place DFT of any length (forward: e^{-2πikn/N}); unnormalised, so divide by N after an inverse. */
export function fft(re: Float64Array, im: Float64Array, inverse = false): void {
  const n = re.length;
  if (im.length !== n) throw new Error('fft: re and im differ in length');
  if ((n & (n - 1)) === 0) return fftPow2(re, im, inverse);
  const { m, wr, wi, br, bi } = bluesteinPlan(n, inverse);
  const ar = new Float64Array(m), ai = new Float64Array(m);
  for (let k = 0; k < n; k++) {
    ar[k] = re[k] * wr[k] - im[k] * wi[k];
    ai[k] = re[k] * wi[k] + im[k] * wr[k];
  }
  fftPow2(ar, ai, false);
  for (let k = 0; k < m; k++) {
    const r = ar[k] * br[k] - ai[k] * bi[k];
    ai[k] = ar[k] * bi[k] + ai[k] * br[k];
    ar[k] = r;
  }
  fftPow2(ar, ai, true);
  for (let k = 0; k < n; k++) {
    const cr = ar[k] / m, ci = ai[k] / m;
    re[k] = cr * wr[k] - ci * wi[k];
    im[k] = cr * wi[k] + ci * wr[k];
  }
}

// ---------------------------------------------------------------------------------------------
// Resampling

/**
 * Fourier resampling of `x` to exactly `num` samples, with the semantics of scipy.signal.resample,
 * which the ECG-JEPA reference (Kim 2024) uses for 500 → 250 Hz. The spectrum is truncated (or
 * zero-extended) at the lower Nyquist frequency, so the anti-aliasing is an ideal brick-wall; the
 * transform treats the window as periodic, so a jump between its ends rings near the edges, exactly
 * as in the reference.
 */
export function resample(x: ArrayLike<number>, num: number): Float64Array {
  const nx = x.length;
  if (!(Number.isInteger(num) && num > 0)) throw new Error(`resample: bad target length ${num}`);
  if (nx === 0) throw new Error('resample: empty input');
  if (num === nx) return Float64Array.from(x);
  const xr = Float64Array.from(x), xi = new Float64Array(nx);
  fft(xr, xi);
  const yr = new Float64Array(num), yi = new Float64Array(num);
  const m = Math.min(num, nx);
  const h = Math.floor((m - 1) / 2); // bins strictly below the smaller Nyquist
  for (let k = 0; k <= h; k++) {
    yr[k] = xr[k]; yi[k] = xi[k];
  }
  for (let k = 1; k <= h; k++) {
    yr[num - k] = xr[nx - k]; yi[num - k] = xi[nx - k];
  }
  if (m % 2 === 0) {
    const k = m / 2;
    if (num < nx) {
      // the output's Nyquist bin receives both the +k and −k input bins
      yr[k] = xr[k] + xr[nx - k]; yi[k] = xi[k] + xi[nx - k];
    } else {
      // the input's Nyquist bin is split between +k and −k of the longer output
      yr[k] = xr[k] / 2; yi[k] = xi[k] / 2;
      yr[num - k] = xr[k] / 2; yi[num - k] = -xi[k] / 2;
    }
  }
  fft(yr, yi, true);
  for (let k = 0; k < num; k++) yr[k] /= nx; // 1/num of the inverse times num/nx for the amplitude
  return yr;
}

/** Resamples from `fsIn` to `fsOut` Hz; the output has round(len · fsOut / fsIn) samples. */
export function resampleRate(x: ArrayLike<number>, fsIn: number, fsOut: number): Float64Array {
  if (fsIn === fsOut) return Float64Array.from(x);
  return resample(x, Math.max(1, Math.round((x.length * fsOut) / fsIn)));
}

// ---------------------------------------------------------------------------------------------
// Butterworth filters as second-order sections

/** One biquad per row: [b0, b1, b2, a1, a2] with a0 = 1 (a first-order section has b2 = a2 = 0). */
export type Sos = number[][];

/**
 * Digital Butterworth low- or high-pass of the given order, by the bilinear transform with the
 * cutoff pre-warped, so |H| = 1/√2 exactly at `fc`. Each section is normalised to unit gain in its
 * pass band (DC for low-pass, Nyquist for high-pass).
 */
export function butterworth(order: number, fc: number, fs: number, type: 'lowpass' | 'highpass'): Sos {
  if (!(Number.isInteger(order) && order >= 1)) throw new Error(`butterworth: bad order ${order}`);
  if (!(fc > 0 && fc < fs / 2)) throw new Error(`butterworth: cutoff ${fc} Hz must lie in (0, ${fs / 2}) Hz`);
  const k = 2 * fs;
  const wc = k * Math.tan((Math.PI * fc) / fs);
  const sos: Sos = [];
  const hp = type === 'highpass';
  // analog prototype poles on the left half of the unit circle; conjugate pairs give one biquad
  for (let i = 0; i < Math.floor(order / 2); i++) {
    const ang = (Math.PI * (2 * i + 1 + order)) / (2 * order);
    let pr = Math.cos(ang), pi = Math.sin(ang);
    if (hp) {
      const d = pr * pr + pi * pi; // s → ωc/s maps the pole p to ωc/p
      pr = (wc * pr) / d; pi = (-wc * pi) / d;
    } else {
      pr *= wc; pi *= wc;
    }
    // bilinear z = (k + s)/(k − s)
    const dr = k - pr, di = -pi, nr = k + pr, ni = pi;
    const dd = dr * dr + di * di;
    const zr = (nr * dr + ni * di) / dd, zi = (ni * dr - nr * di) / dd;
    const a1 = -2 * zr, a2 = zr * zr + zi * zi;
    const b = hp ? [1, -2, 1] : [1, 2, 1];
    const g = hp ? (1 - a1 + a2) / 4 : (1 + a1 + a2) / 4;
    sos.push([b[0] * g, b[1] * g, b[2] * g, a1, a2]);
  }
  if (order % 2 === 1) {
    const p = -wc; // the prototype's real pole −1, scaled by ωc (low-pass) or mapped to ωc/(−1) (high-pass)
    const z = (k + p) / (k - p);
    const a1 = -z;
    const g = hp ? (1 - a1) / 2 : (1 + a1) / 2;
    sos.push(hp ? [g, -g, 0, a1, 0] : [g, g, 0, a1, 0]);
  }
  return sos;
}

/** High-pass at `lo` followed by low-pass at `hi` (as the reference's fine-tuning filters). */
export function bandpassSos(lo: number, hi: number, fs: number, order = 5): Sos {
  if (!(lo < hi)) throw new Error(`band-pass: low cutoff ${lo} must be below high cutoff ${hi}`);
  return [...butterworth(order, lo, fs, 'highpass'), ...butterworth(order, hi, fs, 'lowpass')];
}

/** Gain |H(e^{iω})| of the cascade at frequency f. */
export function sosGain(sos: Sos, f: number, fs: number): number {
  const w = (2 * Math.PI * f) / fs;
  const c1 = Math.cos(w), s1 = Math.sin(w), c2 = Math.cos(2 * w), s2 = Math.sin(2 * w);
  let g = 1;
  for (const [b0, b1, b2, a1, a2] of sos) {
    const nr = b0 + b1 * c1 + b2 * c2, ni = -(b1 * s1 + b2 * s2);
    const dr = 1 + a1 * c1 + a2 * c2, di = -(a1 * s1 + a2 * s2);
    g *= Math.sqrt((nr * nr + ni * ni) / (dr * dr + di * di));
  }
  return g;
}

/** Runs the cascade over x (transposed direct form II), starting each section at the steady state of a constant input x0. */
export function sosfilt(sos: Sos, x: Float64Array, x0 = 0): Float64Array {
  const y = Float64Array.from(x);
  let level = x0;
  for (const [b0, b1, b2, a1, a2] of sos) {
    // steady state for a constant input `level`: output g·level, and the delays that produce it
    const g = (b0 + b1 + b2) / (1 + a1 + a2);
    const out = g * level;
    let z2 = b2 * level - a2 * out;
    let z1 = b1 * level - a1 * out + z2;
    for (let i = 0; i < y.length; i++) {
      const xi = y[i];
      const yi = b0 * xi + z1;
      z1 = b1 * xi - a1 * yi + z2;
      z2 = b2 * xi - a2 * yi;
      y[i] = yi;
    }
    level = out;
  }
  return y;
}

/**
 * Zero-phase filtering: forward then backward, so the gain is |H|² and no phase shift remains. The
 * ends are extended by mirror (even) reflection over `padlen` samples and each pass starts at the
 * steady state of its first sample. scipy's sosfiltfilt reflects oddly (2·x₀ − x), which shifts the
 * level of the extension by twice the end's offset: a high-pass then rings from that step (a record
 * ending on an R peak would get a 2 mV step). The mirror keeps the level; its kink costs little.
 */
export function sosfiltfilt(sos: Sos, x: ArrayLike<number>, padlen = 0): Float64Array {
  const n = x.length;
  if (n === 0) return new Float64Array(0);
  const p = Math.max(0, Math.min(padlen, n - 1));
  const ext = new Float64Array(n + 2 * p);
  for (let i = 0; i < p; i++) {
    ext[i] = x[p - i];
    ext[n + p + i] = x[n - 2 - i];
  }
  for (let i = 0; i < n; i++) ext[p + i] = x[i];
  const fwd = sosfilt(sos, ext, ext[0]);
  fwd.reverse();
  const bwd = sosfilt(sos, fwd, fwd[0]);
  bwd.reverse();
  return bwd.slice(p, p + n);
}

/** Zero-phase Butterworth band-pass of x (order per side; the padding spans 3 periods of `lo`, within the signal). */
export function bandpass(x: ArrayLike<number>, fs: number, lo: number, hi: number, order = 5): Float64Array {
  return sosfiltfilt(bandpassSos(lo, hi, fs, order), x, Math.ceil((3 * fs) / lo));
}

// ---------------------------------------------------------------------------------------------
// R-peak detection

/**
 * R-peak sample indices in one lead. A 5–20 Hz band-pass keeps the QRS slopes; its square smoothed
 * over 100 ms is the QRS energy. Local energy maxima at least 200 ms apart are candidates; beats are
 * those above 30 % of the median candidate (counting candidates above 5 % of the energy's 99th
 * percentile); of two within 300–360 ms the much weaker or flatter is a P or T wave (see below). Each peak is then the sample of largest |x − baseline| within
 * ±60 ms (baseline: the mean of that span's two ends). Simple, for clean-ish synthetic and test signals.
 */
export function detectRPeaks(x: ArrayLike<number>, fs: number): number[] {
  const n = x.length;
  if (n < fs * 0.5) return [];
  const f = sosfiltfilt(bandpassSos(5, Math.min(20, fs * 0.4), fs, 2), x, Math.ceil(fs / 5));
  const w = Math.max(1, Math.round(0.1 * fs)), half = Math.floor(w / 2);
  const env = new Float64Array(n);
  let acc = 0;
  for (let i = 0; i < n + half; i++) {
    if (i < n) acc += f[i] * f[i];
    if (i >= w && i - w < n) acc -= f[i - w] * f[i - w];
    if (i >= half) env[i - half] = acc / w; // centred window
  }
  // non-maximum suppression over ±200 ms, strongest first
  const refractory = Math.round(0.2 * fs);
  const order = Array.from(env.keys()).filter((i) => (i === 0 || env[i] >= env[i - 1]) && (i === n - 1 || env[i] > env[i + 1]));
  order.sort((a, b) => env[b] - env[a]);
  const taken = new Uint8Array(n);
  const cands: number[] = [];
  for (const i of order) {
    if (taken[i]) continue;
    cands.push(i);
    taken.fill(1, Math.max(0, i - refractory), Math.min(n, i + refractory + 1));
  }
  if (cands.length === 0) return [];
  // candidates above 5 % of the energy's 99th percentile are mostly beats; 30 % of their median is the
  // threshold, so a few large ectopic beats do not hide the normal ones
  const sorted = Float64Array.from(env).sort();
  const floor = 0.05 * sorted[Math.floor(0.99 * (n - 1))];
  const strong = cands.map((i) => env[i]).filter((v) => v > floor).sort((a, b) => a - b);
  const thr = Math.max(floor, 0.3 * strong[Math.floor(strong.length / 2)]);
  // a candidate less than 360 ms after a beat with half its energy or half its steepest (band-passed) slope is its
  // T wave (Pan–Tompkins' rule; this also drops early PVCs that are much flatter than the beat); a much
  // stronger one less than 300 ms after is the real beat, and the earlier one its P wave or an artefact
  const search = Math.round(0.06 * fs);
  const slope = (c: number) => {
    let m = 0;
    for (let k = Math.max(1, c - search); k < Math.min(n, c + search); k++) m = Math.max(m, Math.abs(f[k] - f[k - 1]));
    return m;
  };
  const beats: number[] = [];
  for (const c of cands.filter((i) => env[i] > thr).sort((a, b) => a - b)) {
    const prev = beats[beats.length - 1];
    if (prev !== undefined && c - prev < 0.36 * fs && (env[c] < 0.5 * env[prev] || slope(c) < 0.5 * slope(prev))) continue;
    if (prev !== undefined && c - prev < 0.3 * fs && env[prev] < 0.5 * env[c]) beats.pop();
    beats.push(c);
  }
  return beats.map((c) => {
    const lo = Math.max(0, c - search), hi = Math.min(n - 1, c + search);
    const base = (x[lo] + x[hi]) / 2;
    let best = c;
    for (let k = lo; k <= hi; k++) if (Math.abs(x[k] - base) > Math.abs(x[best] - base)) best = k;
    return best;
  });
}
