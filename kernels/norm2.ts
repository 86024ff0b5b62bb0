// Sum of squares Σ x² over a list of f32 buffers, for gradient-norm clipping and the loss-scale
// overflow check (one total over all parameter tensors, then sqrt) and the collapse guard's
// statistics. Two passes through partials.ts (its per-device scratch is documented there); a pass
// covers up to MAX_INPUTS buffers, each workgroup striding over their concatenation, so a model's
// ~200 gradients take a few dispatches instead of two each.
import { checkCount, requireBytes, requireDisjoint, unitType, vecWidth } from './checks.js';
import { fill } from './elementwise.js';
import { maskTail, reduceTerms } from './partials.js';
import type { Binding, CommandBatch } from './runtime.js';

/** Buffers per pass, within the device's storage buffers per stage (one more holds the partials). */
const MAX_INPUTS = 8;

export interface SquaresInput {
  x: Binding;
  n: number;
}

/** Input k is x{k}; units e(k−1) ≤ i < ek of the pass are its. */
function term(V: 1 | 4, inputs: number): string {
  const parts: string[] = [];
  for (let k = 0; k < inputs; k++) {
    const j = k === 0 ? 'i' : `i - p.e${k - 1}`;
    const sq = V === 4 ? `let v = ${maskTail(`x${k}[j]`, 'j', `p.n${k}`)}; return dot(v, v);` : `return x${k}[j] * x${k}[j];`;
    parts.push(`  if (i < p.e${k}) { let j = ${j}; ${sq} }`);
  }
  return `${parts.join('\n')}
  return 0.0;`;
}

/** out[0] = Σ over the inputs of Σ_{i<n} x[i]² (accumulate: out[0] += …). No input, or n = 0 everywhere, gives 0. */
export function sumSquares(batch: CommandBatch, xs: SquaresInput[], out: Binding, accumulate = false): void {
  const K = 'sumSquares';
  requireBytes(K, 'out', out, 4, `${xs.length} inputs`);
  xs.forEach(({ x, n }, k) => {
    checkCount(K, `input ${k} n`, n);
    requireBytes(K, `input ${k} x`, x, 4 * n, `n=${n}`);
    requireDisjoint(K, ['out', out], [`input ${k} x`, x]);
  });
  const live = xs.filter((x) => x.n > 0);
  if (live.length === 0) {
    if (!accumulate) fill(batch, out, 1, 0);
    return;
  }
  const perPass = Math.max(1, Math.min(MAX_INPUTS, batch.device.limits.maxStorageBuffersPerShaderStage - 1));
  for (let first = 0, g = 0; first < live.length; first += perPass, g++) {
    const group = live.slice(first, first + perPass);
    const V = group.every((q) => vecWidth(q.n, q.x) === 4) ? 4 : 1;
    const decls = group.map((_, k) => `@group(0) @binding(${k}) var<storage, read> x${k}: array<${unitType(V)}>;`).join('\n');
    const ends: number[] = [];
    for (const q of group) ends.push((ends[ends.length - 1] ?? 0) + Math.ceil(q.n / V));
    const units = ends[ends.length - 1];
    reduceTerms(
      batch,
      { key: `sumSquares_v${V}_x${group.length}`, decls, inputs: group.length, term: term(V, group.length), fields: group.map((_, k) => `, e${k}: u32, n${k}: u32`).join('') },
      group.map((q) => q.x),
      out,
      { n: 0, units, scale: 1, accumulate: accumulate || g > 0, more: (p) => group.forEach((q, k) => p.u32(ends[k]).u32(q.n)) },
    );
  }
}
