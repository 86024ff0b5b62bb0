// Signal processing for ECG preprocessing and synthetic-data checks, in float64 and free of any
// environment API: an any-length FFT, the FFT resampler, Butterworth second-order sections with
// zero-phase (forward-backward) filtering, and a simple R-peak detector.

// ---------------------------------------------------------------------------------------------
// FFT
//
// A mixed-radix Stockham transform (radices 4, 2, 3, 5 and other small primes) serves lengths whose
// prime factors are small, which covers the usual ECG windows (5000 = 2³·5⁴, 2500, 3600, 7500);
// Bluestein's chirp-z serves lengths with a large prime factor (2570 = 2·5·257). Stockham's
// ping-pong between two buffers leaves the output in natural order, so no digit-reversal pass is
// needed. Only the forward transform is written out: with re and im swapped it computes the
// unnormalised inverse (swap∘DFT∘swap = n·DFT⁻¹), so plans need no direction either.

/** Prime factors above this go through Bluestein: a generic radix-p stage costs O(p) per point (measured faster than Bluestein up to 31). */
const MAX_RADIX = 31;

interface Plan {
  n: number;
  /** Stage radices, product n; empty (and the arrays below too) when the length needs Bluestein. */
  radices: number[];
  /** e^{−2πik/n} for k < n (the twiddles of every stage are a subset). */
  twr: Float64Array;
  twi: Float64Array;
  /** The second buffer of the ping-pong. */
  sr: Float64Array;
  si: Float64Array;
  blue?: Bluestein;
}

interface Bluestein {
  /** Convolution length: 5-smooth, at least 2n − 1. */
  m: number;
  /** Chirp e^{−iπk²/n}, k < n. */
  wr: Float64Array;
  wi: Float64Array;
  /** DFT of the conjugate chirp, wrapped circularly to length m. */
  br: Float64Array;
  bi: Float64Array;
  /** Work buffers of length m. */
  ar: Float64Array;
  ai: Float64Array;
}

const planCache = new Map<number, Plan>();

/** Radices for a Stockham transform of length n (4s first, then 2, 3, 5, ...), or null when a prime factor exceeds MAX_RADIX. */
function factorize(n: number): number[] | null {
  const radices: number[] = [];
  for (; n % 4 === 0; n /= 4) radices.push(4);
  if (n % 2 === 0) {
    radices.push(2);
    n /= 2;
  }
  for (let p = 3; p <= MAX_RADIX && n > 1; p += 2) for (; n % p === 0; n /= p) radices.push(p);
  return n === 1 ? radices : null;
}

/** Smallest 5-smooth number ≥ n: a fast Stockham length that pads Bluestein's convolution less than a power of two. */
function nextSmooth(n: number): number {
  for (let m = n; ; m++) {
    let r = m;
    for (const p of [2, 3, 5]) while (r % p === 0) r /= p;
    if (r === 1) return m;
  }
}

function plan(n: number): Plan {
  let p = planCache.get(n);
  if (p) return p;
  const radices = factorize(n);
  const len = radices ? n : 0;
  const twr = new Float64Array(len), twi = new Float64Array(len);
  for (let k = 0; k < len; k++) {
    twr[k] = Math.cos((2 * Math.PI * k) / n);
    twi[k] = -Math.sin((2 * Math.PI * k) / n);
  }
  p = { n, radices: radices ?? [], twr, twi, sr: new Float64Array(len), si: new Float64Array(len) };
  if (!radices) p.blue = bluesteinPlan(n);
  if (planCache.size >= 32) planCache.clear(); // bounded memory when many odd lengths pass through
  planCache.set(n, p);
  return p;
}

function bluesteinPlan(n: number): Bluestein {
  const m = nextSmooth(2 * n - 1);
  const wr = new Float64Array(n), wi = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    // k² mod 2n keeps the angle small, so large n loses no precision
    const a = (Math.PI * ((k * k) % (2 * n))) / n;
    wr[k] = Math.cos(a);
    wi[k] = -Math.sin(a);
  }
  const br = new Float64Array(m), bi = new Float64Array(m);
  br[0] = wr[0];
  bi[0] = -wi[0];
  for (let k = 1; k < n; k++) {
    br[k] = br[m - k] = wr[k];
    bi[k] = bi[m - k] = -wi[k];
  }
  forward(br, bi);
  return { m, wr, wi, br, bi, ar: new Float64Array(m), ai: new Float64Array(m) };
}

// One Stockham stage of radix p. Before it, x holds the length-L DFTs of the n/L decimated sequences
// x[s + t·n/L], bin k of sequence s at k·(n/L) + s; after it, y holds the length-pL DFTs in the same
// layout. With m = n/(pL): output bin k + jL of sequence s is Σ_q ω_p^{qj} · w^{qk}·x[(pk + q)m + s],
// w = e^{−2πi/(pL)} = tw[m]. A stage is a twiddle pass (x[(pk + q)m + s] *= w^{qk}, in place: x is
// spent anyway) and then p-point butterflies; the split keeps the butterflies free of twiddles.

function twiddle(xr: Float64Array, xi: Float64Array, p: number, L: number, m: number, tr: Float64Array, ti: Float64Array): void {
  for (let k = 1; k < L; k++)
    for (let q = 1; q < p; q++) {
      const wr = tr[q * k * m], wi = ti[q * k * m];
      for (let i = (p * k + q) * m, end = i + m; i < end; i++) {
        const r = xr[i], c = xi[i];
        xr[i] = r * wr - c * wi;
        xi[i] = r * wi + c * wr;
      }
    }
}

/** p-point butterflies: inputs q at i + q·m, i = pkm + s; outputs j at o + j·h, o = km + s, h = n/p. */
type Butterflies = (xr: Float64Array, xi: Float64Array, yr: Float64Array, yi: Float64Array, L: number, m: number) => void;

const radix2: Butterflies = (xr, xi, yr, yi, L, m) => {
  const h = L * m;
  for (let k = 0; k < L; k++)
    for (let s = 0, i = 2 * k * m, o = k * m; s < m; s++, i++, o++) {
      const ar = xr[i], ai = xi[i], br = xr[i + m], bi = xi[i + m];
      yr[o] = ar + br; yi[o] = ai + bi;
      yr[o + h] = ar - br; yi[o + h] = ai - bi;
    }
};

const radix4: Butterflies = (xr, xi, yr, yi, L, m) => {
  const h = L * m;
  for (let k = 0; k < L; k++)
    for (let s = 0, i = 4 * k * m, o = k * m; s < m; s++, i++, o++) {
      const a0r = xr[i], a0i = xi[i], a1r = xr[i + m], a1i = xi[i + m];
      const a2r = xr[i + 2 * m], a2i = xi[i + 2 * m], a3r = xr[i + 3 * m], a3i = xi[i + 3 * m];
      const t0r = a0r + a2r, t0i = a0i + a2i, t1r = a0r - a2r, t1i = a0i - a2i;
      const t2r = a1r + a3r, t2i = a1i + a3i, t3r = a1r - a3r, t3i = a1i - a3i;
      yr[o] = t0r + t2r; yi[o] = t0i + t2i;
      yr[o + h] = t1r + t3i; yi[o + h] = t1i - t3r; // t1 − i·t3
      yr[o + 2 * h] = t0r - t2r; yi[o + 2 * h] = t0i - t2i;
      yr[o + 3 * h] = t1r - t3i; yi[o + 3 * h] = t1i + t3r; // t1 + i·t3
    }
};

const SIN_60 = Math.sqrt(3) / 2;

const radix3: Butterflies = (xr, xi, yr, yi, L, m) => {
  const h = L * m;
  for (let k = 0; k < L; k++)
    for (let s = 0, i = 3 * k * m, o = k * m; s < m; s++, i++, o++) {
      const a0r = xr[i], a0i = xi[i], a1r = xr[i + m], a1i = xi[i + m], a2r = xr[i + 2 * m], a2i = xi[i + 2 * m];
      // ω₃ = −1/2 − i·√3/2: y₁,₂ = a₀ − (a₁ + a₂)/2 ∓ i·(√3/2)(a₁ − a₂)
      const sr = a1r + a2r, si = a1i + a2i, dr = SIN_60 * (a1r - a2r), di = SIN_60 * (a1i - a2i);
      const mr = a0r - sr / 2, mi = a0i - si / 2;
      yr[o] = a0r + sr; yi[o] = a0i + si;
      yr[o + h] = mr + di; yi[o + h] = mi - dr;
      yr[o + 2 * h] = mr - di; yi[o + 2 * h] = mi + dr;
    }
};

const C1_5 = Math.cos((2 * Math.PI) / 5), C2_5 = Math.cos((4 * Math.PI) / 5);
const S1_5 = Math.sin((2 * Math.PI) / 5), S2_5 = Math.sin((4 * Math.PI) / 5);

const radix5: Butterflies = (xr, xi, yr, yi, L, m) => {
  const h = L * m;
  for (let k = 0; k < L; k++)
    for (let s = 0, i = 5 * k * m, o = k * m; s < m; s++, i++, o++) {
      const a0r = xr[i], a0i = xi[i], a1r = xr[i + m], a1i = xi[i + m], a2r = xr[i + 2 * m], a2i = xi[i + 2 * m];
      const a3r = xr[i + 3 * m], a3i = xi[i + 3 * m], a4r = xr[i + 4 * m], a4i = xi[i + 4 * m];
      // pair inputs q and 5 − q: their sum takes the cosines, their difference the sines
      const b1r = a1r + a4r, b1i = a1i + a4i, b2r = a2r + a3r, b2i = a2i + a3i;
      const d1r = a1r - a4r, d1i = a1i - a4i, d2r = a2r - a3r, d2i = a2i - a3i;
      const t1r = a0r + C1_5 * b1r + C2_5 * b2r, t1i = a0i + C1_5 * b1i + C2_5 * b2i;
      const t2r = a0r + C2_5 * b1r + C1_5 * b2r, t2i = a0i + C2_5 * b1i + C1_5 * b2i;
      const u1r = S1_5 * d1r + S2_5 * d2r, u1i = S1_5 * d1i + S2_5 * d2i;
      const u2r = S2_5 * d1r - S1_5 * d2r, u2i = S2_5 * d1i - S1_5 * d2i;
      yr[o] = a0r + b1r + b2r; yi[o] = a0i + b1i + b2i;
      yr[o + h] = t1r + u1i; yi[o + h] = t1i - u1r; // t1 − i·u1
      yr[o + 2 * h] = t2r + u2i; yi[o + 2 * h] = t2i - u2r;
      yr[o + 3 * h] = t2r - u2i; yi[o + 3 * h] = t2i + u2r; // t2 + i·u2
      yr[o + 4 * h] = t1r - u1i; yi[o + 4 * h] = t1i + u1r;
    }
};

/**
 * Any odd radix p by a direct p-point DFT, pairing inputs q and p − q as radix 5 does, so each output
 * costs (p − 1)/2 multiply-adds per part. For the rarer small primes 7 … MAX_RADIX.
 */
function radixOdd(p: number): Butterflies {
  const half = (p - 1) / 2;
  // cos and sin of 2π·q·j/p for j, q in 1..half, row j at (j − 1)·half
  const cs = new Float64Array(half * half), sn = new Float64Array(half * half);
  for (let j = 1; j <= half; j++)
    for (let q = 1; q <= half; q++) {
      cs[(j - 1) * half + q - 1] = Math.cos((2 * Math.PI * ((q * j) % p)) / p);
      sn[(j - 1) * half + q - 1] = Math.sin((2 * Math.PI * ((q * j) % p)) / p);
    }
  const br = new Float64Array(half), bi = new Float64Array(half), dr = new Float64Array(half), di = new Float64Array(half);
  return (xr, xi, yr, yi, L, m) => {
    const h = L * m;
    for (let k = 0; k < L; k++)
      for (let s = 0, i = p * k * m, o = k * m; s < m; s++, i++, o++) {
        let y0r = xr[i], y0i = xi[i];
        for (let q = 1; q <= half; q++) {
          const ar = xr[i + q * m], ai = xi[i + q * m], cr = xr[i + (p - q) * m], ci = xi[i + (p - q) * m];
          br[q - 1] = ar + cr; bi[q - 1] = ai + ci;
          dr[q - 1] = ar - cr; di[q - 1] = ai - ci;
          y0r += ar + cr; y0i += ai + ci;
        }
        yr[o] = y0r; yi[o] = y0i;
        for (let j = 1, row = 0; j <= half; j++, row += half) {
          let tr = xr[i], ti = xi[i], ur = 0, ui = 0; // cosine part t and sine part u
          for (let q = 0; q < half; q++) {
            tr += cs[row + q] * br[q]; ti += cs[row + q] * bi[q];
            ur += sn[row + q] * dr[q]; ui += sn[row + q] * di[q];
          }
          yr[o + j * h] = tr + ui; yi[o + j * h] = ti - ur; // t − i·u
          yr[o + (p - j) * h] = tr - ui; yi[o + (p - j) * h] = ti + ur; // t + i·u
        }
      }
  };
}

/** Butterflies by radix; odd radices above 5 are added on first use. */
const BUTTERFLIES: Record<number, Butterflies> = { 2: radix2, 3: radix3, 4: radix4, 5: radix5 };

function stockham(re: Float64Array, im: Float64Array, p: Plan): void {
  let xr = re, xi = im, yr = p.sr, yi = p.si;
  let L = 1;
  for (const r of p.radices) {
    const m = p.n / (L * r);
    twiddle(xr, xi, r, L, m, p.twr, p.twi);
    (BUTTERFLIES[r] ??= radixOdd(r))(xr, xi, yr, yi, L, m);
    [xr, xi, yr, yi] = [yr, yi, xr, xi];
    L *= r;
  }
  if (xr !== re) {
    re.set(xr);
    im.set(xi);
  }
}

/** Bluestein: X_k = w_k · Σ_t (x_t w_t) · conj(w_{k−t}), a circular convolution of length m done by FFT. */
function bluestein(re: Float64Array, im: Float64Array, b: Bluestein): void {
  const n = re.length, { m, wr, wi, br, bi, ar, ai } = b;
  ar.fill(0);
  ai.fill(0);
  for (let k = 0; k < n; k++) {
    ar[k] = re[k] * wr[k] - im[k] * wi[k];
    ai[k] = re[k] * wi[k] + im[k] * wr[k];
  }
  forward(ar, ai);
  for (let k = 0; k < m; k++) {
    const r = ar[k] * br[k] - ai[k] * bi[k];
    ai[k] = ar[k] * bi[k] + ai[k] * br[k];
    ar[k] = r;
  }
  forward(ai, ar); // the inverse, by the swap
  for (let k = 0; k < n; k++) {
    const cr = ar[k] / m, ci = ai[k] / m;
    re[k] = cr * wr[k] - ci * wi[k];
    im[k] = cr * wi[k] + ci * wr[k];
  }
}

function forward(re: Float64Array, im: Float64Array): void {
  if (re.length <= 1) return;
  const p = plan(re.length);
  if (p.blue) bluestein(re, im, p.blue);
  else stockham(re, im, p);
}

/** In-place DFT of any length (forward: e^{-2πikn/N}); unnormalised, so divide by N after an inverse. */
export function fft(re: Float64Array, im: Float64Array, inverse = false): void {
  if (im.length !== re.length) throw new Error('fft: re and im differ in length');
  if (inverse) forward(im, re);
  else forward(re, im);
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
 * Beat times (sample indices) from the QRS energy of one or more leads of equal length. Each lead's
 * 5–20 Hz band-pass keeps the QRS slopes; the sum over leads of its square, smoothed over 100 ms, is
 * the QRS energy, and a beat is placed at its local maximum (the middle of the complex's energy, so
 * one place per beat whatever the leads' shapes). Local energy maxima at least 200 ms apart are
 * candidates; beats are those above 30 % of the median candidate (counting candidates above 5 % of
 * the energy's 99th percentile); of two within 300–360 ms the much weaker or flatter is a P or T
 * wave (see below). Simple, for clean-ish synthetic and test signals.
 */
export function detectBeats(leads: readonly ArrayLike<number>[], fs: number): number[] {
  const n = leads.length ? leads[0].length : 0;
  if (leads.some((x) => x.length !== n)) throw new RangeError(`detectBeats: leads of unequal length (${leads.map((x) => x.length).join(', ')})`);
  if (n < fs * 0.5) return [];
  const sos = bandpassSos(5, Math.min(20, fs * 0.4), fs, 2);
  const fl = leads.map((x) => sosfiltfilt(sos, x, Math.ceil(fs / 5)));
  const w = Math.max(1, Math.round(0.1 * fs)), half = Math.floor(w / 2);
  const power = new Float64Array(n);
  for (const f of fl) for (let i = 0; i < n; i++) power[i] += f[i] * f[i];
  const env = new Float64Array(n);
  let acc = 0;
  for (let i = 0; i < n + half; i++) {
    if (i < n) acc += power[i];
    if (i >= w && i - w < n) acc -= power[i - w];
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
    for (let k = Math.max(1, c - search); k < Math.min(n, c + search); k++) {
      let d = 0;
      for (const f of fl) d += (f[k] - f[k - 1]) ** 2;
      m = Math.max(m, d);
    }
    return Math.sqrt(m);
  };
  const beats: number[] = [];
  for (const c of cands.filter((i) => env[i] > thr).sort((a, b) => a - b)) {
    const prev = beats[beats.length - 1];
    if (prev !== undefined && c - prev < 0.36 * fs && (env[c] < 0.5 * env[prev] || slope(c) < 0.5 * slope(prev))) continue;
    if (prev !== undefined && c - prev < 0.3 * fs && env[prev] < 0.5 * env[c]) beats.pop();
    beats.push(c);
  }
  return beats;
}

/**
 * R-peak sample indices in one lead: the beats detectBeats finds, each moved to the sample of
 * largest |x − baseline| within ±60 ms (baseline: the mean of that span's two ends).
 */
export function detectRPeaks(x: ArrayLike<number>, fs: number): number[] {
  const n = x.length, search = Math.round(0.06 * fs);
  return detectBeats([x], fs).map((c) => {
    const lo = Math.max(0, c - search), hi = Math.min(n - 1, c + search);
    const base = (x[lo] + x[hi]) / 2;
    let best = c;
    for (let k = lo; k <= hi; k++) if (Math.abs(x[k] - base) > Math.abs(x[best] - base)) best = k;
    return best;
  });
}
