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
export const posNum = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: expected a positive number, got '${v}'`);
  return n;
};
export const nonNegNum = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}: expected a number ≥ 0, got '${v}'`);
  return n;
};
export const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);
/** An f32-or-f16 option (`name` in the error). */
export const f32OrF16 = (name: string) => (v: string): 'f32' | 'f16' => {
  if (v !== 'f32' && v !== 'f16') throw new Error(`${name} must be f32 or f16, got '${v}'`);
  return v;
};
/** --precision: f32, or f16 for mixed precision (f16 matmul inputs). */
export const precision = f32OrF16('--precision');
/** --loss-scale's help, for every command that trains in mixed precision (values: engine/lossscale.ts parseLossScale). */
export const LOSS_SCALE_HELP = 'loss scale: dynamic (from 2^16, or dynamic:<first>; an overflowed step is skipped and halves it, 2000 good ones double it) or a fixed x (default: dynamic with f16, 1 with f32)';
