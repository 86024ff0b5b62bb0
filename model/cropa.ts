// CroPA (cross-pattern attention) as an explicit 0/1 matrix, for references and tests; the GPU
// attention kernel applies the same rule from (C, V) without materialising it.
//
// Tokens are lead-major over the columns present: token = lead · V + column. Token (c, i) may
// attend to (c′, i′) iff c = c′ or i = i′. Under masking the student keeps the same time columns
// in every lead, so its mask over the visible tokens is again this rule with V = visible columns.

/** May query token q attend to key token k? (lead-major, `columns` per lead) */
export function cropaAllows(q: number, k: number, columns: number): boolean {
  return Math.floor(q / columns) === Math.floor(k / columns) || q % columns === k % columns;
}

/** The (C·V)² 0/1 matrix, row = query, column = key. */
export function cropaMask(leads: number, columns: number): Uint8Array {
  if (!Number.isInteger(leads) || leads <= 0 || !Number.isInteger(columns) || columns <= 0)
    throw new RangeError(`cropaMask: leads ${leads} and columns ${columns} must be positive integers`);
  const n = leads * columns;
  const m = new Uint8Array(n * n);
  for (let q = 0; q < n; q++) for (let k = 0; k < n; k++) m[q * n + k] = cropaAllows(q, k, columns) ? 1 : 0;
  return m;
}

/** Rows and columns `keep` of an n × n matrix (the official code's attention_mask[vis][:, vis]). */
export function subMatrix(m: Uint8Array, n: number, keep: readonly number[]): Uint8Array {
  if (m.length !== n * n) throw new RangeError(`subMatrix: matrix has ${m.length} entries, not ${n}²`);
  const k = keep.length;
  const out = new Uint8Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) out[i * k + j] = m[keep[i] * n + keep[j]];
  return out;
}
