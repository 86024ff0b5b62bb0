// Every kernel's benchmark cases, in the order they print.
import type { KernelCase, Scale } from '../harness.js';
import * as adamw from './adamw.js';
import * as attention from './attention.js';
import * as elementwise from './elementwise.js';
import * as ema from './ema.js';
import * as loss from './loss.js';
import * as matmul from './matmul.js';
import * as norm from './norm.js';

const GROUPS: Record<string, { cases(scale: Scale): KernelCase[] }> = { matmul, elementwise, norm, attention, adamw, ema, loss };
export const KERNEL_GROUPS = Object.keys(GROUPS);

/** The cases of the named groups (default: all), in print order. */
export function kernelCases(scale: Scale, groups: string[] = KERNEL_GROUPS): KernelCase[] {
  const unknown = groups.filter((g) => !(g in GROUPS));
  if (unknown.length) throw new Error(`unknown kernel group(s) ${unknown.join(', ')} (have ${KERNEL_GROUPS.join(', ')})`);
  return KERNEL_GROUPS.filter((g) => groups.includes(g)).flatMap((g) => GROUPS[g].cases(scale));
}
