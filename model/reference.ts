// Float64 CPU reference of the ECG-JEPA forward passes, written straight from the official
// model's definition (eval mode: no drop-path) with plain loops. The GPU model is checked
// against it. Weights are looked up by the official state_dict names (see config.ts specs).
//
// Encoder (MaskTransformer): tokens lead-major over the columns present, patch embed W_P, then
// per block `x = block(x + pos)` — the position is re-added before every block and stays in the
// residual stream — with pre-norm CroPA attention and an erf-GELU MLP; final LayerNorm;
// representation = mean over tokens.
// Predictor: embed D → Dp, per lead [visible context, mask tokens] over P positions, 1-D sin-cos
// table ordered (visible, masked) re-added before every block, full attention, LN, Dp → D.
import { encoderParamSpecs, mlpHidden, predictorParamSpecs, type EcgJepaConfig, type TransformerDims } from './config.js';
import { sincos2d } from './posembed.js';

export type RefWeights = ReadonlyMap<string, ArrayLike<number>> | Readonly<Record<string, ArrayLike<number>>>;

function getter(w: RefWeights, cfg: EcgJepaConfig, which: 'encoder' | 'predictor', prefix: string): (name: string) => ArrayLike<number> {
  const specs = new Map((which === 'encoder' ? encoderParamSpecs(cfg) : predictorParamSpecs(cfg)).map(([n, s]) => [n, s.reduce((a, b) => a * b, 1)]));
  const lookup = (n: string) => (w instanceof Map ? w.get(n) : (w as Record<string, ArrayLike<number>>)[n]);
  return (name) => {
    const v = lookup(prefix + name);
    const n = specs.get(name);
    if (n === undefined) throw new Error(`reference: '${name}' is not a ${which} parameter`);
    if (!v) throw new Error(`reference: ${which} weight '${prefix}${name}' missing`);
    if (v.length !== n) throw new Error(`reference: ${which} weight '${prefix}${name}' has ${v.length} values, needs ${n}`);
    return v;
  };
}

/** erf to ~1e-15: a series of positive terms (no cancellation) for |x| < 2, continued fraction of erfc beyond. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2) {
    // erf(x) = 2/√π · e^{−x²} · Σ 2ⁿ x^{2n+1} / (1·3·…·(2n+1))
    const x2 = ax * ax;
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 200 && term > 1e-17 * sum; n++) {
      term *= (2 * x2) / (2 * n + 1);
      sum += term;
    }
    return Math.sign(x) * sum * Math.exp(-x2) * (2 / Math.sqrt(Math.PI));
  }
  if (ax > 27) return Math.sign(x);
  // erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated bottom-up.
  let f = ax;
  for (let n = 80; n >= 1; n--) f = ax + n / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

export function geluErf(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** y[n, out] = x[n, in] · Wᵀ + b, W [out, in]. */
function linear(x: Float64Array, n: number, inF: number, W: ArrayLike<number>, b: ArrayLike<number> | null, outF: number): Float64Array {
  const y = new Float64Array(n * outF);
  for (let r = 0; r < n; r++) {
    const xo = r * inF;
    for (let o = 0; o < outF; o++) {
      let s = b ? b[o] : 0;
      const wo = o * inF;
      for (let i = 0; i < inF; i++) s += x[xo + i] * W[wo + i];
      y[r * outF + o] = s;
    }
  }
  return y;
}

/** LayerNorm over the last dim (biased variance, as PyTorch); affine when w and b are given. */
export function layerNormRef(x: Float64Array, n: number, d: number, eps: number, w?: ArrayLike<number>, b?: ArrayLike<number>): Float64Array {
  const y = new Float64Array(n * d);
  for (let r = 0; r < n; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[r * d + i];
    mean /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[r * d + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / d + eps);
    for (let i = 0; i < d; i++) {
      const z = (x[r * d + i] - mean) * inv;
      y[r * d + i] = w && b ? z * w[i] + b[i] : z;
    }
  }
  return y;
}

/** Multi-head attention over n tokens; `allow(q, k)` false → the logit is −inf. */
function attention(y: Float64Array, n: number, dims: TransformerDims, qkvW: ArrayLike<number>, projW: ArrayLike<number>, projB: ArrayLike<number>, allow: ((q: number, k: number) => boolean) | null): Float64Array {
  const D = dims.dim;
  const H = dims.heads;
  const Dh = D / H;
  const qkv = linear(y, n, D, qkvW, null, 3 * D); // [n, 3, H, Dh] as torch reshapes it
  const out = new Float64Array(n * D);
  const scale = 1 / Math.sqrt(Dh);
  const logits = new Float64Array(n);
  for (let h = 0; h < H; h++) {
    for (let q = 0; q < n; q++) {
      let max = -Infinity;
      for (let k = 0; k < n; k++) {
        if (allow && !allow(q, k)) {
          logits[k] = -Infinity;
          continue;
        }
        let s = 0;
        for (let i = 0; i < Dh; i++) s += qkv[q * 3 * D + h * Dh + i] * qkv[k * 3 * D + D + h * Dh + i];
        logits[k] = s * scale;
        if (logits[k] > max) max = logits[k];
      }
      let sum = 0;
      for (let k = 0; k < n; k++) {
        logits[k] = logits[k] === -Infinity ? 0 : Math.exp(logits[k] - max);
        sum += logits[k];
      }
      for (let k = 0; k < n; k++) {
        const p = logits[k] / sum;
        if (p === 0) continue;
        for (let i = 0; i < Dh; i++) out[q * D + h * Dh + i] += p * qkv[k * 3 * D + 2 * D + h * Dh + i];
      }
    }
  }
  return linear(out, n, D, projW, projB, D);
}

/** One pre-norm block on x (which already includes the re-added position): returns the new x. */
function block(x: Float64Array, n: number, dims: TransformerDims, eps: number, get: (name: string) => ArrayLike<number>, p: string, allow: ((q: number, k: number) => boolean) | null): Float64Array {
  const D = dims.dim;
  const Hd = mlpHidden(dims);
  const a = attention(layerNormRef(x, n, D, eps, get(`${p}.norm1.weight`), get(`${p}.norm1.bias`)), n, dims, get(`${p}.attn.qkv.weight`), get(`${p}.attn.proj.weight`), get(`${p}.attn.proj.bias`), allow);
  const x1 = new Float64Array(n * D);
  for (let i = 0; i < x1.length; i++) x1[i] = x[i] + a[i];
  const h = linear(layerNormRef(x1, n, D, eps, get(`${p}.norm2.weight`), get(`${p}.norm2.bias`)), n, D, get(`${p}.mlp.fc1.weight`), get(`${p}.mlp.fc1.bias`), Hd);
  for (let i = 0; i < h.length; i++) h[i] = geluErf(h[i]);
  const m = linear(h, n, Hd, get(`${p}.mlp.fc2.weight`), get(`${p}.mlp.fc2.bias`), D);
  for (let i = 0; i < x1.length; i++) x1[i] += m[i];
  return x1;
}

function f32Round(a: Float64Array): Float64Array {
  return Float64Array.from(Float32Array.from(a));
}

/** Per-sample column lists: `cols` is one list for all samples, one per sample, or undefined (all). */
function perSample(cols: readonly (readonly number[])[] | readonly number[] | undefined, batch: number, patches: number, what: string): number[][] {
  if (cols === undefined) return Array.from({ length: batch }, () => Array.from({ length: patches }, (_, i) => i));
  const lists = cols.length > 0 && Array.isArray(cols[0]) ? (cols as number[][]) : [cols as number[]];
  if (lists.length !== 1 && lists.length !== batch) throw new Error(`reference: ${what}: ${lists.length} lists for a batch of ${batch}`);
  const out = Array.from({ length: batch }, (_, b) => [...lists[lists.length === 1 ? 0 : b]].sort((a, c) => a - c));
  for (const l of out) {
    if (l.length !== out[0].length) throw new Error(`reference: ${what}: samples have different counts`);
    l.forEach((c, i) => {
      if (!Number.isInteger(c) || c < 0 || c >= patches || (i > 0 && l[i - 1] === c)) throw new Error(`reference: ${what}: bad column list [${l}]`);
    });
  }
  return out;
}

export interface EncoderRefResult {
  /** [B, C·V, D] after the final LayerNorm, lead-major over the given columns. */
  tokens: Float64Array;
  /** [B, D] mean over tokens. */
  representation: Float64Array;
  /** Tokens per sample (C·V). */
  tokensPerSample: number;
}

/**
 * The encoder on `x` [B, C, patches·patchSize] (C = cfg.leads.length, leads in config order),
 * keeping only `columns` (shared list, per-sample lists, or all). `prefix` selects e.g. a
 * teacher's weights stored as 'teacher.W_P.weight'.
 */
export function encoderForwardRef(cfg: EcgJepaConfig, weights: RefWeights, x: ArrayLike<number>, batch: number, columns?: readonly (readonly number[])[] | readonly number[], prefix = ''): EncoderRefResult {
  const get = getter(weights, cfg, 'encoder', prefix);
  const C = cfg.leads.length;
  const P = cfg.patches;
  const ps = cfg.patchSize;
  const D = cfg.encoder.dim;
  const L = P * ps;
  if (x.length !== batch * C * L) throw new Error(`reference: input has ${x.length} values, needs [${batch}, ${C}, ${L}]`);
  const cols = perSample(columns, batch, P, 'columns');
  const V = cols[0].length;
  const n = C * V;
  // The model stores the table as float32; use exactly those values.
  const pos = f32Round(sincos2d(D, cfg.leads, P));
  const tokens = new Float64Array(batch * n * D);
  const rep = new Float64Array(batch * D);
  for (let b = 0; b < batch; b++) {
    const c = cols[b];
    const patches = new Float64Array(n * ps);
    const posT = new Float64Array(n * D);
    for (let l = 0; l < C; l++)
      c.forEach((col, j) => {
        const t = l * V + j;
        for (let i = 0; i < ps; i++) patches[t * ps + i] = x[(b * C + l) * L + col * ps + i];
        posT.set(pos.subarray((l * P + col) * D, (l * P + col + 1) * D), t * D);
      });
    let h = linear(patches, n, ps, get('W_P.weight'), get('W_P.bias'), D);
    // CroPA: same lead (t / V) or same column (t % V, the same column in every lead).
    const allow = (q: number, k: number) => Math.floor(q / V) === Math.floor(k / V) || q % V === k % V;
    for (let i = 0; i < cfg.encoder.depth; i++) {
      for (let j = 0; j < h.length; j++) h[j] += posT[j];
      h = block(h, n, cfg.encoder, cfg.lnEps, get, `encoder_blocks.blocks.${i}`, allow);
    }
    h = layerNormRef(h, n, D, cfg.lnEps, get('norm.weight'), get('norm.bias'));
    tokens.set(h, b * n * D);
    for (let t = 0; t < n; t++) for (let j = 0; j < D; j++) rep[b * D + j] += h[t * D + j] / n;
  }
  return { tokens, representation: rep, tokensPerSample: n };
}

/**
 * The predictor on context tokens [B, C·V, D] (lead-major over each sample's visible columns):
 * returns predictions [B, C·M, D] for the masked columns (sorted), lead-major.
 */
export function predictorForwardRef(cfg: EcgJepaConfig, weights: RefWeights, context: ArrayLike<number>, batch: number, masked: readonly (readonly number[])[] | readonly number[], prefix = ''): Float64Array {
  const get = getter(weights, cfg, 'predictor', prefix);
  const C = cfg.leads.length;
  const P = cfg.patches;
  const D = cfg.encoder.dim;
  const Dp = cfg.predictor.dim;
  const mcols = perSample(masked, batch, P, 'masked columns');
  const M = mcols[0].length;
  const V = P - M;
  if (context.length !== batch * C * V * D) throw new Error(`reference: context has ${context.length} values, needs [${batch}, ${C * V}, ${D}]`);
  const pos = f32Round(sincos2d(Dp, [0], P));
  const maskTok = get('mask_token');
  const out = new Float64Array(batch * C * M * D);
  for (let b = 0; b < batch; b++) {
    const isM = new Array<boolean>(P).fill(false);
    for (const c of mcols[b]) isM[c] = true;
    const order = [...Array.from({ length: P }, (_, i) => i).filter((i) => !isM[i]), ...mcols[b]];
    const ctx = Float64Array.from({ length: C * V * D }, (_, i) => context[b * C * V * D + i]);
    const emb = linear(ctx, C * V, D, get('predictor_embed.weight'), get('predictor_embed.bias'), Dp);
    for (let l = 0; l < C; l++) {
      let h: Float64Array = new Float64Array(P * Dp);
      h.set(emb.subarray(l * V * Dp, (l + 1) * V * Dp));
      for (let j = V; j < P; j++) for (let i = 0; i < Dp; i++) h[j * Dp + i] = maskTok[i];
      for (let d = 0; d < cfg.predictor.depth; d++) {
        for (let j = 0; j < P; j++) for (let i = 0; i < Dp; i++) h[j * Dp + i] += pos[order[j] * Dp + i];
        h = block(h, P, cfg.predictor, cfg.lnEps, get, `predictor_blocks.blocks.${d}`, null);
      }
      h = layerNormRef(h, P, Dp, cfg.lnEps, get('predictor_norm.weight'), get('predictor_norm.bias'));
      const y = linear(h.subarray(V * Dp), M, Dp, get('predictor_proj.weight'), get('predictor_proj.bias'), D);
      out.set(y, (b * C + l) * M * D);
    }
  }
  return out;
}

/** Mean smooth-L1 (Huber, β) over all elements, as torch.nn.SmoothL1Loss. */
export function smoothL1Ref(pred: ArrayLike<number>, target: ArrayLike<number>, beta = 1): number {
  if (pred.length !== target.length) throw new Error(`smoothL1Ref: ${pred.length} vs ${target.length} values`);
  let s = 0;
  for (let i = 0; i < pred.length; i++) {
    const d = Math.abs(pred[i] - target[i]);
    s += d < beta ? (0.5 * d * d) / beta : d - 0.5 * beta;
  }
  return s / pred.length;
}

export interface JepaRefResult {
  loss: number;
  /** [B, C·M, D] predictor outputs at the masked columns. */
  pred: Float64Array;
  /** [B, C·M, D] layer-normed teacher features at the masked columns. */
  target: Float64Array;
}

/**
 * The JEPA loss for one batch: the teacher encodes every token, its output gets a non-affine
 * LayerNorm and the masked columns are taken; the student encodes the visible columns, the
 * predictor fills the masked ones; smooth-L1 (β = 1) mean. Weights by prefix, e.g. student '',
 * teacher 'teacher.', predictor '' (names never collide).
 */
export function jepaLossRef(
  cfg: EcgJepaConfig,
  w: { student: RefWeights; teacher: RefWeights; predictor: RefWeights; studentPrefix?: string; teacherPrefix?: string; predictorPrefix?: string },
  x: ArrayLike<number>,
  batch: number,
  masked: readonly (readonly number[])[] | readonly number[],
): JepaRefResult {
  const C = cfg.leads.length;
  const P = cfg.patches;
  const D = cfg.encoder.dim;
  const mcols = perSample(masked, batch, P, 'masked columns');
  const M = mcols[0].length;
  const vis = mcols.map((m) => Array.from({ length: P }, (_, i) => i).filter((i) => !m.includes(i)));
  const teacher = encoderForwardRef(cfg, w.teacher, x, batch, undefined, w.teacherPrefix ?? '');
  const normed = layerNormRef(teacher.tokens, batch * C * P, D, cfg.lnEps);
  const target = new Float64Array(batch * C * M * D);
  for (let b = 0; b < batch; b++)
    for (let l = 0; l < C; l++)
      mcols[b].forEach((col, j) => target.set(normed.subarray(((b * C + l) * P + col) * D, ((b * C + l) * P + col + 1) * D), ((b * C + l) * M + j) * D));
  const student = encoderForwardRef(cfg, w.student, x, batch, vis, w.studentPrefix ?? '');
  const pred = predictorForwardRef(cfg, w.predictor, student.tokens, batch, mcols, w.predictorPrefix ?? '');
  return { loss: smoothL1Ref(pred, target), pred, target };
}
