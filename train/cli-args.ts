// Option parsers shared by the CLI commands: each names the option in its error.
import { QUALITY_KINDS, type QualityKind } from './data/preprocess.js';
/** A parser of numbers that pass `ok`; its error names the option and what it expects. */
const numeric = (ok: (n: number) => boolean, what: string) => (name: string) => (v: string) => {
  const n = v.trim() === '' ? NaN : Number(v); // Number('') is 0
  if (!ok(n)) throw new Error(`${name}: expected ${what}, got '${v}'`);
  return n;
};
export const posInt = numeric((n) => Number.isInteger(n) && n > 0, 'a positive integer');
export const nonNegInt = numeric((n) => Number.isInteger(n) && n >= 0, 'a non-negative integer');
export const num = numeric(Number.isFinite, 'a number');
export const posNum = numeric((n) => Number.isFinite(n) && n > 0, 'a positive number');
export const nonNegNum = numeric((n) => Number.isFinite(n) && n >= 0, 'a number ≥ 0');
export const rate = numeric((n) => Number.isFinite(n) && n >= 0 && n < 1, 'a rate in [0, 1)');
export const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);
/** A parser of one of `values` (`name` in the error: "must be a, b or c"). */
export const oneOf = <T extends string>(...values: T[]) => (name: string) => (v: string): T => {
  const choices = [values.slice(0, -1).join(', '), values[values.length - 1]].filter(Boolean).join(' or ');
  if (!(values as string[]).includes(v)) throw new Error(`${name} must be ${choices}, got '${v}'`);
  return v as T;
};
/** An f32-or-f16 option (`name` in the error). */
export const f32OrF16 = oneOf('f32', 'f16');
/** --precision: f32, or f16 for mixed precision (f16 matmul inputs). */
export const precision = f32OrF16('--precision');
/** --leads of prepare and synth: the 8 leads the model reads, or all 12. */
const leadNames = oneOf('8', '12')('--leads');
export const leadCount = (v: string) => Number(leadNames(v)) as 8 | 12;
/** --sg-epilogue: MatmulOptions.epilogue's modes. */
export const sgEpilogue = oneOf('fused', 'pass')('--sg-epilogue');
/** --stream-k: setMatmulStreamK's settings (off, auto, or a resident workgroup count). */
const workgroups = numeric((n) => Number.isInteger(n) && n > 0, 'off, auto or a positive integer')('--stream-k');
export const streamK = (v: string): 'off' | 'auto' | number => (v === 'off' || v === 'auto' ? v : workgroups(v));
/** --loss-scale's help, for every command that trains in mixed precision (values: engine/lossscale.ts parseLossScale). */
export const LOSS_SCALE_HELP = 'loss scale: dynamic (from 2^16, or dynamic:<first>; an overflowed step is skipped and halves it, 2000 good ones double it) or a fixed x (default: dynamic with f16, 1 with f32)';
/** prepare --reject: the quality issues that skip a record, or `none`. */
export const qualityKinds = (v: string): QualityKind[] => {
  const kinds = list(v);
  if (kinds.length === 1 && kinds[0] === 'none') return [];
  const bad = kinds.filter((k) => !(QUALITY_KINDS as readonly string[]).includes(k));
  if (bad.length || !kinds.length) throw new Error(`--reject: expected a comma list of ${QUALITY_KINDS.join(', ')}, or none; got '${v}'`);
  return kinds as QualityKind[];
};
