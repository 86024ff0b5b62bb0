// Sum of squares Σ x² of an f32 buffer, for gradient-norm clipping (accumulate over all parameter
// tensors, then sqrt) and the collapse guard's statistics. Two passes through partials.ts (its
// per-device scratch is documented in partials.ts).
import { checkCount, requireBytes, requireDisjoint, unitType, vecWidth } from './checks.js';
import { maskTail, reduceTerms } from './partials.js';
import type { Binding, CommandBatch } from './runtime.js';

/** out[0] = Σ_{i<n} x[i]² (accumulate: out[0] += …). n = 0 gives 0 (or leaves out unchanged). */
export function sumSquares(batch: CommandBatch, x: Binding, out: Binding, n: number, accumulate = false): void {
  const K = 'sumSquares';
  checkCount(K, 'n', n);
  requireBytes(K, 'x', x, 4 * n, `n=${n}`);
  requireBytes(K, 'out', out, 4, `n=${n}`);
  requireDisjoint(K, ['out', out], ['x', x]);
  const V = vecWidth(n, x);
  const term = V === 4 ? `  let v = ${maskTail('x[i]')};\n  return dot(v, v);` : '  return x[i] * x[i];';
  reduceTerms(
    batch,
    { key: `sumSquares_v${V}`, decls: `@group(0) @binding(0) var<storage, read> x: array<${unitType(V)}>;`, inputs: 1, term },
    [x],
    out,
    { n, units: Math.ceil(n / V), scale: 1, accumulate },
  );
}
