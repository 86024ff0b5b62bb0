// Every kernel's benchmark cases, in the order they print.
import type { KernelCase, Scale } from '../harness.js';
import * as adamw from './adamw.js';
import * as attention from './attention.js';
import * as elementwise from './elementwise.js';
import * as ema from './ema.js';
import * as loss from './loss.js';
import * as matmul from './matmul.js';
import * as norm from './norm.js';

const modules: { cases(scale: Scale): KernelCase[] }[] = [matmul, elementwise, norm, attention, adamw, ema, loss];

export function kernelCases(scale: Scale): KernelCase[] {
  return modules.flatMap((m) => m.cases(scale));
}
