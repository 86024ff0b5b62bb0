// Every kernel's benchmark cases, in the order they print.
import type { KernelCase, Scale } from '../harness.js';
import * as elementwise from './elementwise.js';

const modules: { cases(scale: Scale): KernelCase[] }[] = [elementwise];

export function kernelCases(scale: Scale): KernelCase[] {
  return modules.flatMap((m) => m.cases(scale));
}
