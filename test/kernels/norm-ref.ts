// Float64 CPU references for the layernorm, softmax, GELU and axis-reduction kernels (forward and
// backward), and a central-difference gradient to check the reference backwards themselves.

import { setSubgroupsForTests } from '../../kernels/rows.js';
import { setMaxGridDimForTests } from '../../kernels/grid.js';

type Arr = ArrayLike<number>;

// ---- erf / erfc in float64 (JS has no Math.erf)

/** erf(z) = 2/√π · e^(−z²) · Σ_n 2^n z^(2n+1) / (1·3·…·(2n+1)): all terms positive, no cancellation. */
function erfSeries(z: number): number {
  let term = z;
  let sum = z;
  for (let n = 1; n < 500 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
    term *= (2 * z * z) / (2 * n + 1);
    sum += term;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-z * z) * sum;
}

/** erfc(z) for z ≥ 2.5 by its continued fraction e^(−z²)/√π · 1/(z + ½/(z + 1/(z + 3/2/(z + …)))). */
function erfcFraction(z: number): number {
  let f = z;
  for (let n = 200; n >= 1; n--) f = z + n / 2 / f;
  return Math.exp(-z * z) / (Math.sqrt(Math.PI) * f);
}

export function erf64(z: number): number {
  if (Math.abs(z) < 2.5) return erfSeries(z);
  return Math.sign(z) * (1 - erfcFraction(Math.abs(z)));
}

export function erfc64(z: number): number {
  return z >= 2.5 ? erfcFraction(z) : 1 - erf64(z);
}

/** Φ(x), the standard normal CDF, relatively accurate in the lower tail. */
export function normCdf64(x: number): number {
  return 0.5 * erfc64(-x / Math.SQRT2);
}

export function gelu64(x: number): number {
  return x * normCdf64(x);
}

export function geluGrad64(x: number): number {
  return normCdf64(x) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
}

// ---- LayerNorm

export function layerNormRef(x: Arr, rows: number, dim: number, gamma?: Arr, beta?: Arr, eps = 1e-5) {
  const y = new Float64Array(rows * dim), mean = new Float64Array(rows), rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < dim; c++) s += x[r * dim + c];
    const mu = s / dim;
    let q = 0;
    for (let c = 0; c < dim; c++) q += (x[r * dim + c] - mu) ** 2;
    const rs = 1 / Math.sqrt(q / dim + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let c = 0; c < dim; c++) y[r * dim + c] = (x[r * dim + c] - mu) * rs * (gamma ? gamma[c] : 1) + (beta ? beta[c] : 0);
  }
  return { y, mean, rstd };
}

/** Gradients of Σ dy·layerNorm(x) w.r.t. x, gamma and beta. */
export function layerNormBackwardRef(dy: Arr, x: Arr, rows: number, dim: number, gamma?: Arr, eps = 1e-5) {
  const { mean, rstd } = layerNormRef(x, rows, dim, undefined, undefined, eps);
  const dx = new Float64Array(rows * dim), dgamma = new Float64Array(dim), dbeta = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    let a = 0, b = 0;
    for (let c = 0; c < dim; c++) {
      const i = r * dim + c;
      const xh = (x[i] - mean[r]) * rstd[r];
      const g = dy[i] * (gamma ? gamma[c] : 1);
      a += g;
      b += g * xh;
      dgamma[c] += dy[i] * xh;
      dbeta[c] += dy[i];
    }
    for (let c = 0; c < dim; c++) {
      const i = r * dim + c;
      const xh = (x[i] - mean[r]) * rstd[r];
      dx[i] = rstd[r] * (dy[i] * (gamma ? gamma[c] : 1) - a / dim - (xh * b) / dim);
    }
  }
  return { dx, dgamma, dbeta };
}

// ---- softmax

export function softmaxRef(x: Arr, rows: number, cols: number, scale = 1): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, scale * x[r * cols + c]);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(scale * x[r * cols + c] - m);
    for (let c = 0; c < cols; c++) y[r * cols + c] = Math.exp(scale * x[r * cols + c] - m) / s;
  }
  return y;
}

export function softmaxBackwardRef(y: Arr, dy: Arr, rows: number, cols: number, scale = 1): Float64Array {
  const dx = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let d = 0;
    for (let c = 0; c < cols; c++) d += y[r * cols + c] * dy[r * cols + c];
    for (let c = 0; c < cols; c++) dx[r * cols + c] = scale * y[r * cols + c] * (dy[r * cols + c] - d);
  }
  return dx;
}

// ---- axis reduction

export function reduceRef(x: Arr, outer: number, reduce: number, inner: number, mean = false): Float64Array {
  const y = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++)
    for (let r = 0; r < reduce; r++) for (let i = 0; i < inner; i++) y[o * inner + i] += x[(o * reduce + r) * inner + i];
  if (mean) for (let j = 0; j < y.length; j++) y[j] /= reduce;
  return y;
}

export function broadcastRef(x: Arr, outer: number, reduce: number, inner: number, scale = 1): Float64Array {
  const y = new Float64Array(outer * reduce * inner);
  for (let o = 0; o < outer; o++) for (let r = 0; r < reduce; r++) for (let i = 0; i < inner; i++) y[(o * reduce + r) * inner + i] = scale * x[o * inner + i];
  return y;
}

// ---- gradient checking

/** Central differences of a scalar function f at p, for every component (float64). */
export function numericGrad(f: (p: Float64Array) => number, p: Float64Array, h = 1e-6): Float64Array {
  const g = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const keep = p[i];
    p[i] = keep + h;
    const up = f(p);
    p[i] = keep - h;
    const down = f(p);
    p[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

export function dot(a: Arr, b: Arr): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Float64 copy (so references see exactly the f32 values the GPU got). */
export function f64(a: Arr): Float64Array {
  return Float64Array.from(a as ArrayLike<number>);
}

/** Runs fn with the kernels' per-dimension workgroup limit lowered to `limit`, so small shapes
 *  take the 2-D launch path (row = wid.y·nwg.x + wid.x, with idle bound-checked groups). */
export async function withGridLimit<T>(limit: number, fn: () => Promise<T>): Promise<T> {
  const old = setMaxGridDimForTests(limit);
  try {
    return await fn();
  } finally {
    setMaxGridDimForTests(old);
  }
}

/** Runs fn with the subgroup reductions disabled, so the workgroup-memory fallback is tested on
 *  adapters that have subgroups (its pipelines are keyed apart). */
export async function withoutSubgroups<T>(fn: () => Promise<T>): Promise<T> {
  const old = setSubgroupsForTests(false);
  try {
    return await fn();
  } finally {
    setSubgroupsForTests(old);
  }
}
