// Option parsers shared by the CLI commands: each names the option in its error.
export const posInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}: expected a positive integer, got '${v}'`);
  return n;
};
export const nonNegInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}: expected a non-negative integer, got '${v}'`);
  return n;
};
export const num = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name}: expected a number, got '${v}'`);
  return n;
};
export const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);
/** --precision: f32, or f16 for mixed precision (f16 matmul inputs). */
export const precision = (v: string): 'f32' | 'f16' => {
  if (v !== 'f32' && v !== 'f16') throw new Error(`--precision must be f32 or f16, got '${v}'`);
  return v;
};
