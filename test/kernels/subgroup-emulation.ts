// Runs the subgroup-matrix matmul kernels on devices without subgroup matrices (every CI device), so
// their indexing (tile origins, staged panels, transposes, strides, zero fill past K, epilogue) is
// checked everywhere, not only on a GPU. The emulation rewrites the WGSL: a 16×16 fragment becomes a
// private array, and the collective load / multiply-accumulate / store become loops. Only the first
// invocation of each subgroup computes (the others keep zeros and store nothing); the kernels consume
// fragments only through stores, so the results are what the collective operations give. It cannot
// check what only hardware decides (uniformity rules, which invocations form a subgroup); the device
// self-check does that before first use.
//
// Kept cheap to compile on lavapipe, whose JIT otherwise takes minutes on these kernels: fragments are
// passed by pointer (no array copies) and the loop bounds come from a uniform, so nothing is unrolled.
import { getPipeline } from '../../kernels/runtime.js';
import { subgroupMatrixSource, type SubgroupConfigName, type SubgroupSpec } from '../../kernels/matmul.js';

const at = (i: string, j: string) => `select(off + ${i} * stride + ${j}, off + ${j} * stride + ${i}, colMajor)`;

const loadFn = (x: string) => `
fn smLoad_${x}(m: ptr<function, array<f16, 256>>, off: u32, colMajor: bool, stride: u32) {
  if (!smActive) { return; }
  for (var r = 0u; r < smN; r++) { for (var c = 0u; c < smN; c++) { (*m)[r * 16u + c] = ${x}[${at('r', 'c')}]; } }
}`;

const storeFn = (x: string) => `
fn smStore_${x}(off: u32, v: ptr<function, array<f32, 256>>, colMajor: bool, stride: u32) {
  if (!smActive) { return; }
  for (var r = 0u; r < smN; r++) { for (var c = 0u; c < smN; c++) { ${x}[${at('r', 'c')}] = (*v)[r * 16u + c]; } }
}`;

const MMA = `
fn smMma(acc: ptr<function, array<f32, 256>>, a: ptr<function, array<f16, 256>>, b: ptr<function, array<f16, 256>>) {
  if (!smActive) { return; }
  for (var r = 0u; r < smN; r++) {
    for (var c = 0u; c < smN; c++) {
      var s = (*acc)[r * 16u + c];
      for (var k = 0u; k < smN; k++) { s += f32((*a)[r * 16u + k]) * f32((*b)[k * 16u + c]); }
      (*acc)[r * 16u + c] = s;
    }
  }
}`;

/** The kernel's WGSL (built for subgroup size `sg`) with every subgroup-matrix type and builtin replaced
 *  by per-invocation code. */
export function emulateSubgroupMatrix(wgsl: string, sg: number): string {
  // the arrays loaded from and stored to: each gets its own function (WGSL has no generic pointers to them)
  const loads = new Set<string>(), stores = new Set<string>();
  let src = wgsl.replace('enable chromium_experimental_subgroup_matrix;\n', '').replace('enable subgroups;\n', '');
  // Subgroup i is invocations i·sg … i·sg+sg−1 here (the device's own subgroups may be of another size).
  src = src.replace(
    /, @builtin\(subgroup_id\) (\w+): u32, @builtin\(subgroup_invocation_id\) (\w+): u32\) \{\n/,
    (_, id, lane) => `) {\n  let ${id} = lid / ${sg}u;\n  let ${lane} = lid % ${sg}u;\n`,
  );
  src = src.replace(/var (\w+) = subgroup_matrix_result<f32, 16, 16>\(\);/g, 'var $1: array<f32, 256>;');
  src = src.replace(/let (\w+) = subgroupMatrixLoad<subgroup_matrix_(?:left|right)<f16, 16, 16>>\(&(\w+), /g, (_, v, x) => (loads.add(x), `var ${v}: array<f16, 256>; smLoad_${x}(&${v}, `));
  src = src.replace(/subgroupMatrixStore\(&(\w+), ([^,]+), (\w+), /g, (_, x, off, v) => (stores.add(x), `smStore_${x}(${off}, &${v}, `));
  src = src.replace(/(\w+) = subgroupMatrixMultiplyAccumulate\((\w+), (\w+), \1\);/g, 'smMma(&$1, &$2, &$3);');
  // Loop bounds from the uniform block: 16 unless M is 2^32 − 1, which no matmul has.
  src = src.replace(/(@builtin\(local_invocation_index\) lid: u32\) \{\n)/, `$1  smActive = lid % ${sg}u == 0u;\n  smN = select(16u, 0u, p.M == 0xffffffffu);\n`);
  if (!src.includes('smActive = ')) throw new Error('emulateSubgroupMatrix: no entry point taking local_invocation_index as lid');
  if (/subgroup_?[mM]atrix|subgroup_id|subgroup_invocation_id/.test(src)) throw new Error('emulateSubgroupMatrix: a subgroup-matrix construct was left unrewritten');
  return `${src}\nvar<private> smActive: bool;\nvar<private> smN: u32;${[...loads].map(loadFn).join('')}${[...stores].map(storeFn).join('')}${MMA}`;
}

/** A pipeline of the emulated kernel, built as if the subgroup size were `sg` (a staged kernel stepping K by `bk`). */
export function emulatedSubgroupPipeline(device: GPUDevice, config: SubgroupConfigName | SubgroupSpec, sg: number, tA: boolean, tB: boolean, bk?: number): GPUComputePipeline {
  return getPipeline(device, `emulated_${JSON.stringify(config)}_sg${sg}_t${+tA}${+tB}_k${bk ?? ''}`, () => emulateSubgroupMatrix(subgroupMatrixSource(config, sg, tA, tB, bk), sg));
}
