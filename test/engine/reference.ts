// Float64 CPU forwards of the ops, written straight from their definitions; the gradient checks
// differentiate these by central differences, so no reference backward is written by hand, except
// attention's, which the kernel test compares against directly (a dense masked softmax, fwd and bwd).
import type { AttentionDims, AttentionMask } from '../../kernels/attention.js';

export type F = Float64Array;

/** erf to ~1e-14: Taylor series below 3, continued fraction for erfc above. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = x, sum = x;
    for (let n = 1; n < 80; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated from the tail
  let f = ax;
  for (let k = 60; k >= 1; k--) f = ax + k / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

export function gelu(x: F): F {
  return x.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
}

/** y [M, N] = x [M, K] · wᵀ (w [N, K]) + b. */
export function linear(x: F, w: F, b: F | null, M: number, N: number, K: number): F {
  const y = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = b ? b[j] : 0;
      for (let k = 0; k < K; k++) s += x[i * K + k] * w[j * K + k];
      y[i * N + j] = s;
    }
  return y;
}

/** c [batch, M, N] = op(a) op(b), with a [batch, M, K] or [batch, K, M] (transA), b likewise. */
export function matmul(a: F, b: F, batch: number, M: number, N: number, K: number, transA: boolean, transB: boolean, shareB = false): F {
  const c = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const oa = z * M * K, ob = shareB ? 0 : z * K * N;
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[oa + (transA ? k * M + i : i * K + k)] * b[ob + (transB ? j * K + k : k * N + j)];
        c[z * M * N + i * N + j] = s;
      }
  }
  return c;
}

export function layerNorm(x: F, gamma: F | null, beta: F | null, dim: number, eps: number): F {
  const rows = x.length / dim;
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += x[r * dim + i];
    mean /= dim;
    let v = 0;
    for (let i = 0; i < dim; i++) v += (x[r * dim + i] - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / dim + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = (x[r * dim + i] - mean) * rstd * (gamma ? gamma[i] : 1) + (beta ? beta[i] : 0);
  }
  return y;
}

export function softmax(x: F, cols: number, scale: number): F {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / cols; r++) {
    let m = -Infinity;
    for (let i = 0; i < cols; i++) m = Math.max(m, scale * x[r * cols + i]);
    let s = 0;
    for (let i = 0; i < cols; i++) s += Math.exp(scale * x[r * cols + i] - m);
    for (let i = 0; i < cols; i++) y[r * cols + i] = Math.exp(scale * x[r * cols + i] - m) / s;
  }
  return y;
}

export type Mask = AttentionMask;

// The mask written straight from the rule, independent of the kernel's sparse visiting.
export function allowed(mask: Mask, V: number, tq: number, tk: number): boolean {
  if (mask === 'none') return true;
  const sameLead = Math.floor(tq / V) === Math.floor(tk / V);
  const sameTime = tq % V === tk % V;
  return mask === 'lead' ? sameLead : sameLead || sameTime;
}

export interface AttentionRef {
  out: Float64Array;
  lse: Float64Array;
  dqkv: Float64Array;
}

/** Dense masked softmax attention in float64, forward and (when dout is given) backward. */
export function attentionReference(qkv: ArrayLike<number>, d: AttentionDims, dout?: ArrayLike<number>): AttentionRef {
  const { B, H, Dh, C, V, mask } = d;
  const scale = d.scale ?? 1 / Math.sqrt(Dh);
  const T = C * V, HD = H * Dh, RS = 3 * HD;
  const out = new Float64Array(B * T * HD), lse = new Float64Array(B * H * T), dqkv = new Float64Array(B * T * RS);
  const at = (b: number, t: number, s: number, h: number) => (b * T + t) * RS + s * HD + h * Dh;
  const P = new Float64Array(T * T);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        let m = -Infinity;
        const z = new Float64Array(T).fill(-Infinity);
        for (let j = 0; j < T; j++) {
          if (!allowed(mask, V, i, j)) continue;
          let s = 0;
          for (let e = 0; e < Dh; e++) s += qkv[at(b, i, 0, h) + e] * qkv[at(b, j, 1, h) + e];
          z[j] = s * scale;
          m = Math.max(m, z[j]);
        }
        let sum = 0;
        for (let j = 0; j < T; j++) sum += Math.exp(z[j] - m);
        lse[(b * H + h) * T + i] = m + Math.log(sum);
        for (let j = 0; j < T; j++) {
          P[i * T + j] = Math.exp(z[j] - m) / sum;
          for (let e = 0; e < Dh; e++) out[(b * T + i) * HD + h * Dh + e] += P[i * T + j] * qkv[at(b, j, 2, h) + e];
        }
      }
      if (!dout) continue;
      for (let i = 0; i < T; i++) {
        const g = (b * T + i) * HD + h * Dh;
        const dP = new Float64Array(T);
        let rowDot = 0;
        for (let j = 0; j < T; j++) {
          for (let e = 0; e < Dh; e++) dP[j] += dout[g + e] * qkv[at(b, j, 2, h) + e];
          rowDot += P[i * T + j] * dP[j];
        }
        for (let j = 0; j < T; j++) {
          const pij = P[i * T + j];
          const dS = pij * (dP[j] - rowDot) * scale;
          for (let e = 0; e < Dh; e++) {
            dqkv[at(b, i, 0, h) + e] += dS * qkv[at(b, j, 1, h) + e];
            dqkv[at(b, j, 1, h) + e] += dS * qkv[at(b, i, 0, h) + e];
            dqkv[at(b, j, 2, h) + e] += pij * dout[g + e];
          }
        }
      }
    }
  return { out, lse, dqkv };
}

/** Dense masked attention: qkv [B, T, 3, H, Dh] → out [B, T, H, Dh]. */
export function attention(qkv: F, B: number, H: number, Dh: number, C: number, V: number, mask: Mask): F {
  return attentionReference(qkv, { B, H, Dh, C, V, mask }).out;
}

export function smoothL1(pred: F, target: F, beta: number): F {
  let s = 0;
  for (let i = 0; i < pred.length; i++) {
    const d = Math.abs(pred[i] - target[i]);
    s += d < beta ? (0.5 * d * d) / beta : d - 0.5 * beta;
  }
  return Float64Array.of(s / pred.length);
}

export function add(a: F, b: F, alpha = 1): F {
  return a.map((v, i) => v + alpha * b[i]);
}

/** x [outer, reduce, inner] → [outer, inner], sum or mean. */
export function reduceAxis(x: F, outer: number, reduce: number, inner: number, mean: boolean): F {
  const y = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++)
    for (let r = 0; r < reduce; r++) for (let i = 0; i < inner; i++) y[o * inner + i] += x[(o * reduce + r) * inner + i];
  return mean ? y.map((v) => v / reduce) : y;
}

/** Parameters of one pre-norm block, by the suffix of their registry names. */
export interface BlockRef {
  dim: number;
  heads: number;
  hidden: number;
  eps: number;
  mask: Mask;
  p: (suffix: string) => F;
}

/** x + attn(norm1(x)), then + mlp(norm2(·)); x [B, T, D]. `factors` [2][B]: drop-path per sample. */
export function block(x: F, B: number, C: number, V: number, r: BlockRef, factors?: [F, F]): F {
  const D = r.dim, T = C * V, M = B * T;
  const scaleRows = (y: F, f?: F) => (f ? y.map((v, i) => v * f[Math.floor(i / (T * D))]) : y);
  const h1 = layerNorm(x, r.p('norm1.weight'), r.p('norm1.bias'), D, r.eps);
  const qkv = linear(h1, r.p('attn.qkv.weight'), null, M, 3 * D, D);
  const a = attention(qkv, B, r.heads, D / r.heads, C, V, r.mask);
  const o = linear(a, r.p('attn.proj.weight'), r.p('attn.proj.bias'), M, D, D);
  const x1 = add(x, scaleRows(o, factors?.[0]));
  const h2 = layerNorm(x1, r.p('norm2.weight'), r.p('norm2.bias'), D, r.eps);
  const f1 = gelu(linear(h2, r.p('mlp.fc1.weight'), r.p('mlp.fc1.bias'), M, r.hidden, D));
  const f2 = linear(f1, r.p('mlp.fc2.weight'), r.p('mlp.fc2.bias'), M, D, r.hidden);
  return add(x1, scaleRows(f2, factors?.[1]));
}
