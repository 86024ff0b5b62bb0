// Sum of squares Σ x² over a list of f32 buffers, for gradient-norm clipping and the loss-scale
// overflow check (one total over all parameter tensors, then sqrt) and the collapse guard's
// statistics. Two passes through partials.ts (its per-device scratch is documented there); a pass
// covers up to MAX_INPUTS buffers, each workgroup striding over their concatenation, so a model's
// ~200 gradients take a few dispatches instead of two each.
import { checkCount, requireBytes, requireDisjoint, groupUnits, segmentBranches, segmentFields, segmentGroups, segmentParams, unitType } from './checks.js';
import { fill } from './elementwise.js';
import { maskTail, reduceTerms } from './partials.js';
import type { Binding, CommandBatch } from './runtime.js';

/** Buffers per pass, within the device's storage buffers per stage (one more holds the partials). */
const MAX_INPUTS = 8;

export interface SquaresInput {
  x: Binding;
  n: number;
}

/** Input k is x{k} (segment k); past the last one a unit adds 0. */
function term(V: 1 | 4, inputs: number): string {
  const square = (k: number) => (V === 4 ? `let v = ${maskTail(`x${k}[j]`, 'j', `p.n${k}`)};
    return dot(v, v);` : `return x${k}[j] * x${k}[j];`);
  return `  ${segmentBranches(inputs, square)}
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
  const groups = segmentGroups(xs, Math.max(1, Math.min(MAX_INPUTS, batch.device.limits.maxStorageBuffersPerShaderStage - 1)), (q) => [q.x]);
  if (groups.length === 0 && !accumulate) fill(batch, out, 1, 0);
  groups.forEach((g, pass) => {
    const count = g.items.length;
    const decls = g.items.map((_, k) => `@group(0) @binding(${k}) var<storage, read> x${k}: array<${unitType(g.V)}>;`).join('\n');
    reduceTerms(
      batch,
      { key: `sumSquares_v${g.V}_x${count}`, decls, inputs: count, term: term(g.V, count), fields: `, ${segmentFields(count)}` },
      g.items.map((q) => q.x),
      out,
      { n: 0, units: groupUnits(g), scale: 1, accumulate: accumulate || pass > 0, more: (p) => segmentParams(p, g) },
    );
  });
}
