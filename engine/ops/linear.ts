// Linear and matmul: forward and backward side by side. Weights are stored [out, in] like PyTorch,
// so the forward multiplies by Wᵀ (transB) and the gradients need no transposed copies either:
//   y = act(x Wᵀ + b), z = x Wᵀ + b (kept as preact when act = gelu)
//   dz = act'(z) ⊙ dy,  dx = dz W,  dW = dzᵀ x,  db = Σ_rows dz
import { castF16ToF32, castF32ToF16 } from '../../kernels/cast.js';
import { geluBackward, geluForward } from '../../kernels/gelu.js';
import { matmul as matmulKernel, plainHalfOutputSlower } from '../../kernels/matmul.js';
import { reduceAxis } from '../../kernels/reduce.js';
import { checkShape, launchWith, requireF32, untracked, type Tape } from '../tape.js';
import { floatType, type Tensor } from '../tensor.js';

export type Precision = 'f32' | 'f16';

export interface LinearOptions {
  activation?: 'none' | 'gelu';
  /** Matmul input precision (f32 accumulation either way). */
  precision?: Precision;
  /** 'f16': y is an f16 tensor written by the matmul's epilogue, for a reader that is an f16 linear
   *  itself (it saves that linear's cast of its input: a pass over y). With f16 matmuls, y's gradient
   *  may come in f16 too (RecordOptions.halfGrad), and is used as it is. With N
   *  odd the matmul cannot pack y's halves and y stays f32 (the reader then casts it as before).
   *  With GELU the pre-activation kept for the backward is f16 too (as autocast keeps the GELU's
   *  f16 input), so the activation's gradient is taken at the rounded pre-activation. */
  output?: 'f32' | 'f16';
  /** y = residual + act(x Wᵀ + b), the add fused into the matmul's epilogue (a block's residual
   *  stream: x + proj(·), h + fc2(·)); f32, y's shape. Its gradient is y's, handed on as it is. */
  residual?: Tensor | null;
  /** x is gelu(geluOf), as a Linear with GELU wrote it (linearWithPre's pre, x's shape and type): the
   *  backward keeps geluOf, which that Linear's backward keeps anyway, instead of x, and recomputes
   *  x from it for the weight gradient (geluForward gives the bits of the matmul's GELU output, f32
   *  or f16), so the hidden layer is not held from forward to backward. Used where x is read as it
   *  is (f16 for f16 matmuls, f32 for f32 ones); otherwise x is kept as usual. */
  geluOf?: Tensor | null;
}

/** A half-precision copy of t (matmul inputs under mixed precision); the caller disposes it. */
function toF16(g: Tape, t: Tensor): Tensor {
  const h = untracked(g.engine, t.shape, false, 'f16');
  castF32ToF16(g.batch, t.buffer, h.buffer, t.size);
  return h;
}

/** An f32 copy of the f16 t; the caller disposes it. */
function toF32(g: Tape, t: Tensor): Tensor {
  const f = untracked(g.engine, t.shape);
  castF16ToF32(g.batch, t.buffer, f.buffer, t.size);
  return f;
}

/**
 * y[..., N] = act(x[..., K] · weightᵀ + bias), weight [N, K], bias [N].
 * precision 'f16': x, weight and the output gradient are rounded to f16 for the three matmuls
 * (f32 accumulation and outputs, f32 parameter gradients) and, with GELU, for the bias gradient's f32
 * sum; the backward keeps the f16 copies, half the bytes.
 * x may be f16 already (an f16 output of another layer), and is then used as it is; its gradient is
 * then written in f16 where the tape takes one (as autocast's f16 matmul writes it).
 */
export function linear(g: Tape, x: Tensor, weight: Tensor, bias?: Tensor | null, opts: LinearOptions = {}): Tensor {
  return linearWithPre(g, x, weight, bias, opts).y;
}

/** linear, and the pre-activation its backward keeps (with GELU and a gradient to take; else
 *  undefined), for a reader that recomputes y from it (LinearOptions.geluOf). */
export function linearWithPre(g: Tape, x: Tensor, weight: Tensor, bias?: Tensor | null, opts: LinearOptions = {}): { y: Tensor; pre?: Tensor } {
  const K = x.shape[x.shape.length - 1];
  const N = weight.shape[0];
  checkShape('linear', `weight (x is [${x.shape}])`, weight, [N, K]);
  if (bias) checkShape('linear', `bias (weight [${weight.shape}])`, bias, [N]);
  const M = x.size / K;
  const shape = [...x.shape.slice(0, -1), N];
  const residual = opts.residual ?? null;
  if (residual) {
    requireF32('linear', { residual });
    checkShape('linear', `residual (y is [${shape}])`, residual, shape);
  }
  const gelu = opts.activation === 'gelu';
  const half = opts.precision === 'f16';
  if (x.dtype === 'f16' && !half) throw new TypeError(`linear: x is f16, which needs precision 'f16'`);
  const geluOf = opts.geluOf ?? null;
  if (geluOf && (geluOf.dtype !== x.dtype || geluOf.shape.join() !== x.shape.join()))
    throw new TypeError(`linear: geluOf ${geluOf.dtype} [${geluOf.shape}] is not of x's type and shape (${x.dtype} [${x.shape}])`);
  const mm = { precision: opts.precision ?? 'f32' } as const;
  const record = g.wants(x, weight, bias, residual);
  const packed = opts.output === 'f16' && N % 2 === 0;
  const y = g.engine.empty(shape, packed ? 'f16' : 'f32');
  const needW = record && g.requiresGrad(weight);
  const needX = record && g.requiresGrad(x);
  // The pre-activation is only needed by a backward through the activation (not by the residual's).
  // The matmul writes it as it writes y: f16 beside an f16 y (half the bytes held for the backward).
  const pre = gelu && (needW || needX || (record && g.requiresGrad(bias))) ? g.engine.empty(shape, packed ? 'f16' : 'f32') : undefined;
  const xin = half && x.dtype !== 'f16' ? toF16(g, x) : x;
  const win = half ? toF16(g, weight) : weight;
  const temps = half ? (xin === x ? [win] : [xin, win]) : [];
  launchWith(temps, () => matmulKernel(g.batch, { a: xin.buffer, b: win.buffer, c: y.buffer, bias: bias?.buffer, residual: residual?.buffer, preact: pre?.buffer }, { M, N, K, transB: true, activation: gelu ? 'gelu' : 'none', output: packed ? 'f16' : 'f32' }, mm));
  // Keep what the backward reads: x for dW (or what x is recomputed from), W for dx (the f16 copies
  // themselves when half).
  const recompute = !!geluOf && xin === x;
  const xs = needW ? g.save(recompute ? geluOf : xin) : undefined;
  const ws = needX ? g.save(win) : undefined;
  temps.forEach((t) => t.dispose());
  if (!record) return { y };

  const ps = pre ? g.save(pre) : undefined;
  const backward = (dy: Tensor) => {
    const matmuls = !!(xs || ws);
    let dz = dy;
    // dy is f16 where the reader of an f16 y wrote its gradient so (RecordOptions.halfGrad)
    let dzType = floatType(dy);
    if (ps) {
      // for f16 matmuls the GELU backward writes dz in f16 itself (pairs: M·N even), and the bias
      // gradient adds those halves up, as it would in PyTorch's autocast; it reads an f16
      // pre-activation as it is (also where only the bias wants dz), widened only for f32 matmuls
      if (half && (matmuls || ps.dtype === 'f16') && (M * N) % 2 === 0) dzType = 'f16';
      const z = ps.dtype === 'f16' && dzType === 'f32' ? toF32(g, ps) : ps;
      const d = untracked(g.engine, y.shape, false, dzType);
      const types = { output: dzType, input: floatType(z), dy: floatType(dy) } as const;
      launchWith(z !== ps ? [z, d] : [d], () => geluBackward(g.batch, z.buffer, dy.buffer, d.buffer, M * N, types));
      if (z !== ps) z.dispose();
      dz = d;
    }
    if (bias) g.addGrad(bias, (db, acc) => reduceAxis(g.batch, dz.buffer, db.buffer, { outer: 1, reduce: M, inner: N, accumulate: acc, input: dzType }));
    const dzin = half && matmuls && dzType === 'f32' ? toF16(g, dz) : dz;
    // dW [N, K] = dzᵀ [N, M] · x [M, K]: dz is stored [M, N], hence transA.
    if (xs) {
      const xr = recompute ? geluOfSaved(g, xs) : xs;
      try {
        g.addGrad(weight, (dw, acc) => matmulKernel(g.batch, { a: dzin.buffer, b: xr.buffer, c: dw.buffer }, { M: N, N: K, K: M, transA: true, accumulate: acc }, mm));
      } finally {
        if (xr !== xs) xr.dispose();
      }
    }
    // dx [M, K] = dz [M, N] · W [N, K]; in f16 where x's reader takes that (x is then an f16
    // activation) and the product can write it (K even), as autocast's f16 matmul writes it, unless
    // f16 costs this product more than f32 does (plainHalfOutputSlower): the reader then takes f32.
    if (ws) {
      const dims = { M, N: K, K: N };
      const halfDx = half && K % 2 === 0 && !plainHalfOutputSlower(g.batch.device, dims, mm);
      g.addGrad(x, (dx, acc) => matmulKernel(g.batch, { a: dzin.buffer, b: ws.buffer, c: dx.buffer }, { ...dims, accumulate: acc, output: floatType(dx) }, mm), { half: halfDx });
    }
    if (dzin !== dz) dzin.dispose();
    if (dz !== dy) dz.dispose();
    // last: the residual may take dy itself (a view), after which dy is not read
    if (residual) g.passGrad(residual, dy, 1, true);
  };
  // an f16 y's gradient may come in f16: the GELU backward, the bias sum and the matmuls read it so
  g.record('linear', y, [xs, ws, ps].filter((t): t is Tensor => !!t), backward, { halfGrad: packed && half });
  return { y, pre };
}

/** x again from the kept pre-activation (LinearOptions.geluOf); the caller disposes it. */
function geluOfSaved(g: Tape, pre: Tensor): Tensor {
  const x = untracked(g.engine, pre.shape, false, pre.dtype);
  const type = floatType(pre);
  launchWith([x], () => geluForward(g.batch, pre.buffer, x.buffer, pre.size, { input: type, output: type }));
  return x;
}

export interface MatmulOptions {
  /** a is stored transposed: [..., K, M]. */
  transA?: boolean;
  /** b is stored transposed: [..., N, K]. */
  transB?: boolean;
}

/**
 * c = op(a) · op(b). Either both are [batch, ·, ·] with the same batch (batched product), or b is
 * 2-D and shared: then a may have any leading dims (they become rows; a must not be transposed).
 */
export function matmul(g: Tape, a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const { transA = false, transB = false } = opts;
  const mm = { precision: 'f32' } as const;
  requireF32('matmul', { a, b });
  if (a.shape.length < 2 || (b.shape.length !== 2 && b.shape.length !== 3))
    throw new RangeError(`matmul: a [${a.shape}] and b [${b.shape}]: a needs ≥ 2 dims, b 2 or 3`);
  const [bK, N] = transB ? [b.shape[b.shape.length - 1], b.shape[b.shape.length - 2]] : [b.shape[b.shape.length - 2], b.shape[b.shape.length - 1]];
  let batch: number, M: number, K: number, outShape: number[];
  if (b.shape.length === 2) {
    if (transA && a.shape.length > 2) throw new RangeError(`matmul: a [${a.shape}] transposed with a shared 2-D b [${b.shape}] is not supported`);
    K = transA ? a.shape[0] : a.shape[a.shape.length - 1];
    M = a.size / K;
    batch = 1;
    outShape = transA ? [a.shape[1], N] : [...a.shape.slice(0, -1), N];
  } else {
    if (a.shape.length !== 3 || a.shape[0] !== b.shape[0]) throw new RangeError(`matmul: batched a [${a.shape}] and b [${b.shape}] need the same leading batch dim`);
    batch = a.shape[0];
    [K, M] = transA ? [a.shape[1], a.shape[2]] : [a.shape[2], a.shape[1]];
    outShape = [batch, M, N];
  }
  if (K !== bK) throw new RangeError(`matmul: inner dims differ: a [${a.shape}]${transA ? 'ᵀ' : ''} · b [${b.shape}]${transB ? 'ᵀ' : ''}`);
  const sA = batch > 1 ? M * K : 0, sB = batch > 1 ? K * N : 0, sC = M * N;
  const c = g.engine.empty(outShape);
  matmulKernel(g.batch, { a: a.buffer, b: b.buffer, c: c.buffer }, { M, N, K, batch, transA, transB, strideA: sA, strideB: sB, strideC: sC }, mm);
  if (!g.wants(a, b)) return c;

  const as = g.requiresGrad(b) ? g.save(a) : undefined;
  const bs = g.requiresGrad(a) ? g.save(b) : undefined;
  g.record('matmul', c, [as, bs].filter((t): t is Tensor => !!t), (dc) => {
    // With op(X) = X or Xᵀ: d op(A) = dC · op(B)ᵀ and d op(B) = op(A)ᵀ · dC; a transposed operand
    // gets the transpose of that, written as a product of stored operands with flipped flags.
    if (bs)
      g.addGrad(a, (da, acc) =>
        transA
          ? matmulKernel(g.batch, { a: bs.buffer, b: dc.buffer, c: da.buffer }, { M: K, N: M, K: N, batch, transA: transB, transB: true, strideA: sB, strideB: sC, strideC: sA, accumulate: acc }, mm)
          : matmulKernel(g.batch, { a: dc.buffer, b: bs.buffer, c: da.buffer }, { M, N: K, K: N, batch, transB: !transB, strideA: sC, strideB: sB, strideC: sA, accumulate: acc }, mm),
      );
    if (as)
      g.addGrad(b, (db, acc) =>
        transB
          ? matmulKernel(g.batch, { a: dc.buffer, b: as.buffer, c: db.buffer }, { M: N, N: K, K: M, batch, transA: true, transB: transA, strideA: sC, strideB: sA, strideC: sB, accumulate: acc }, mm)
          : matmulKernel(g.batch, { a: as.buffer, b: dc.buffer, c: db.buffer }, { M: K, N, K: M, batch, transA: !transA, strideA: sA, strideB: sC, strideC: sB, accumulate: acc }, mm),
      );
  });
  return c;
}
