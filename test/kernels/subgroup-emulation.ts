// Runs the subgroup-matrix matmul kernels on devices without subgroup matrices (every CI device), so
// their indexing (tile origins, staged panels, transposes, strides, zero fill past K, epilogue) is
// checked everywhere, not only on a GPU. The emulation rewrites the WGSL: a 16×16 fragment becomes a
// slot of 256 floats in a scratch storage buffer, and the collective load / multiply-accumulate /
// store become loops over it. Only the first invocation of each subgroup computes (the others store
// nothing); the kernels consume fragments only through stores, so the results are what the
// collective operations give. It cannot check what only hardware decides (uniformity rules, which
// invocations form a subgroup); the device self-check does that before first use.
//
// Kept cheap to compile on lavapipe (cold JIT per pipeline: 1 s for the direct kernel, 8 s for a
// 4-subgroup staged one, against 9 and 43 s with fragments as private arrays):
//  - the loop bounds come from a uniform, so nothing is unrolled;
//  - fragments live in a storage buffer: lavapipe runs a kernel with barriers as a coroutine, and
//    private arrays live across a barrier (the staged K loop, the per-fragment epilogue) were most of
//    its JIT time;
//  - every call is inlined, so runs of calls become loops over tables (see emulateSubgroupMatrix).
import { getPipeline, type CommandBatch } from '../../kernels/runtime.js';
import { recordSubgroupMatrix, subgroupMatrixSource, type MatmulBuffers, type MatmulDims, type SgSpelling, type SubgroupConfigName, type SubgroupEpilogue, type SubgroupSpec } from '../../kernels/matmul.js';

const at = (i: string, j: string) => `select(off + ${i} * stride + ${j}, off + ${j} * stride + ${i}, colMajor)`;
const slot = (s: string, i: string) => `smS[smBase + ${s} + ${i}]`;

// A staged kernel's panels are arrays of blocks, loaded from as &As[block]: their load takes the block.
const loadFn = (x: string, blocks: boolean) => `
fn smLoad_${x}(s: u32, ${blocks ? 'blk: u32, ' : ''}off: u32, colMajor: bool, stride: u32) {
  if (!smActive) { return; }
  for (var r = 0u; r < smN; r++) { for (var c = 0u; c < smN; c++) { ${slot('s', 'r * 16u + c')} = f32(${x}${blocks ? '[blk]' : ''}[${at('r', 'c')}]); } }
}`;

const storeFn = (x: string) => `
fn smStore_${x}(off: u32, s: u32, colMajor: bool, stride: u32) {
  if (!smActive) { return; }
  for (var r = 0u; r < smN; r++) { for (var c = 0u; c < smN; c++) { ${x}[${at('r', 'c')}] = ${slot('s', 'r * 16u + c')}; } }
}`;

// Operands hold f16 values as f32 (exact), and products of two f16 are exact in f32.
const HELPERS = `
fn smZero(s: u32) {
  if (!smActive) { return; }
  for (var i = 0u; i < smN * 16u; i++) { ${slot('s', 'i')} = 0.0; }
}
fn smMma(acc: u32, a: u32, b: u32) {
  if (!smActive) { return; }
  for (var r = 0u; r < smN; r++) {
    for (var c = 0u; c < smN; c++) {
      var s = ${slot('acc', 'r * 16u + c')};
      for (var k = 0u; k < smN; k++) { s += ${slot('a', 'r * 16u + k')} * ${slot('b', 'k * 16u + c')}; }
      ${slot('acc', 'r * 16u + c')} = s;
    }
  }
}`;

/** The kernel's WGSL (built for subgroup size `sg`) with every subgroup-matrix type and builtin replaced
 *  by per-invocation code, and `slots`, the fragments each subgroup keeps in the scratch (binding 6;
 *  the uniform moves to binding 7). */
export function emulateSubgroupMatrix(wgsl: string, sg: number): { code: string; slots: number } {
  // the arrays loaded from and stored to: each gets its own function (WGSL has no generic pointers to them)
  const loads = new Map<string, boolean>(), stores = new Set<string>(); // loads: array → loaded by block
  const slots = new Map<string, number>();
  const slotOf = (v: string) => (slots.has(v) || slots.set(v, slots.size), `${slots.get(v)! * 256}u`);
  let src = wgsl.replace('enable chromium_experimental_subgroup_matrix;\n', '').replace('enable subgroups;\n', '');
  // The 'template' spelling (majorness in the template) as the 'argument' one, which the rest rewrites.
  src = src
    .replace(/subgroupMatrixLoad<(subgroup_matrix_\w+<f16, 16, 16>), (row|col)_major>\((&[^,]+), ([^,]+), ([^,)]+)\)/g, (_, t, m, p, off, stride) => `subgroupMatrixLoad<${t}>(${p}, ${off}, ${m === 'col'}, ${stride})`)
    .replace(/subgroupMatrixStore<(row|col)_major>\((&\w+), ([^,]+), (\w+), ([^,)]+)\);/g, (_, m, p, off, v, stride) => `subgroupMatrixStore(${p}, ${off}, ${v}, ${m === 'col'}, ${stride});`);
  src = src.replace('@group(0) @binding(6) var<uniform> p: P;', '@group(0) @binding(7) var<uniform> p: P;\n@group(0) @binding(6) var<storage, read_write> smS: array<f32>;');
  // Subgroup i is invocations i·sg … i·sg+sg−1 here (the device's own subgroups may be of another size).
  src = src.replace(
    /, @builtin\(subgroup_id\) (\w+): u32, @builtin\(subgroup_invocation_id\) (\w+): u32\) \{\n/,
    (_, id, lane) => `) {\n  let ${id} = lid / ${sg}u;\n  let ${lane} = lid % ${sg}u;\n`,
  );
  src = src.replace(/var (\w+) = subgroup_matrix_result<f32, 16, 16>\(\);/g, (_, v) => `let ${v} = ${slotOf(v)}; smZero(${v});`);
  src = src.replace(/let (\w+) = subgroupMatrixLoad<subgroup_matrix_(?:left|right)<f16, 16, 16>>\(&(\w+)(?:\[([^\]]+)\])?, /g, (_, v, x, blk?: string) => {
    if (loads.get(x) === !blk) throw new Error(`emulateSubgroupMatrix: ${x} loaded both whole and by block`);
    loads.set(x, !!blk);
    return `let ${v} = ${slotOf(v)}; smLoad_${x}(${v}, ${blk ? `${blk}, ` : ''}`;
  });
  // Fewer inlined copies: a switch whose cases each store one fragment selects the fragment's slot and
  // stores once after it; a run of stores or of multiply-accumulates is one loop over a table of their
  // operands, in the kernel's order.
  src = src.replace(/switch (\w+) \{\n((?:\s*case \d+u: \{ subgroupMatrixStore\(&\w+, \w+, \w+, \w+, \w+\); \}\n)+)(\s*default: \{\}\n\s*\})/g, (all, f, cases: string, end) => {
    const stored = [...cases.matchAll(/subgroupMatrixStore\(&(\w+), (\w+), (\w+), (\w+), (\w+)\);/g)];
    const [, x, off, , colMajor, stride] = stored[0];
    if (stored.some((m) => m[1] !== x || m[2] !== off || m[4] !== colMajor || m[5] !== stride)) return all;
    stores.add(x);
    return `var smSel: u32;\n      switch ${f} {\n${cases.replace(/subgroupMatrixStore\(&\w+, \w+, (\w+), \w+, \w+\);/g, 'smSel = $1;')}${end}\n      smStore_${x}(${off}, smSel, ${colMajor}, ${stride});`;
  });
  src = src.replace(/(?:\s*subgroupMatrixStore\(&\w+, [^,]+, \w+, \w+, [^,)]+\);)+/g, (run) => {
    const ops = [...run.matchAll(/subgroupMatrixStore\(&(\w+), ([^,]+), (\w+), (\w+), ([^,)]+)\);/g)];
    const [, x, , , colMajor, stride] = ops[0];
    if (ops.some((m) => m[1] !== x || m[4] !== colMajor || m[5] !== stride)) throw new Error('emulateSubgroupMatrix: a run of stores to different layouts');
    stores.add(x);
    const table = ops.map((m) => `vec2u(${m[2]}, ${m[3]})`).join(', ');
    return `\n    let smSts = array<vec2u, ${ops.length}>(${table});\n    for (var i = 0u; i < ${ops.length}u; i++) { smStore_${x}(smSts[i].x, smSts[i].y, ${colMajor}, ${stride}); }`;
  });
  src = src.replace(/(?:\s*\w+ = subgroupMatrixMultiplyAccumulate\(\w+, \w+, \w+\);)+/g, (run) => {
    const ops = [...run.matchAll(/(\w+) = subgroupMatrixMultiplyAccumulate\((\w+), (\w+), (\w+)\);/g)];
    if (ops.some((m) => m[1] !== m[4])) throw new Error('emulateSubgroupMatrix: an accumulate into another fragment');
    const table = ops.map((m) => `vec3u(${m[1]}, ${m[2]}, ${m[3]})`).join(', ');
    return `\n      let smOps = array<vec3u, ${ops.length}>(${table});\n      for (var i = 0u; i < ${ops.length}u; i++) { smMma(smOps[i].x, smOps[i].y, smOps[i].z); }`;
  });
  // Loop bounds from the uniform block: 16 unless M is 2^32 − 1, which no matmul has.
  src = src.replace(/(@builtin\(local_invocation_index\) lid: u32\) \{\n)/, `$1  smActive = lid % ${sg}u == 0u;\n  smN = select(16u, 0u, p.M == 0xffffffffu);\n`);
  // Each subgroup's slots: by output tile (pid), batch item or K slice (wid.z) and subgroup.
  const wgSize = Number(/@workgroup_size\((\d+)\)/.exec(src)?.[1]);
  src = src.replace(
    /(  if \(pid >= p\.tilesM \* p\.tilesN\) \{ return; \}\n)/,
    `$1  smBase = ((wid.z * p.tilesM * p.tilesN + pid) * ${wgSize / sg}u + lid / ${sg}u) * ${slots.size * 256}u;\n`,
  );
  if (!src.includes('smActive = ') || !src.includes('smBase = ')) throw new Error('emulateSubgroupMatrix: entry point not as expected (lid, pid)');
  if (/subgroup_?[mM]atrix|subgroup_id|subgroup_invocation_id/.test(src)) throw new Error('emulateSubgroupMatrix: a subgroup-matrix construct was left unrewritten');
  const code = `${src}\nvar<private> smActive: bool;\nvar<private> smN: u32;\nvar<private> smBase: u32;${[...loads].map(([x, blocks]) => loadFn(x, blocks)).join('')}${[...stores].map(storeFn).join('')}${HELPERS}`;
  return { code, slots: slots.size };
}

export interface EmulatedSubgroupKernel {
  /** Records the emulated kernel like recordSubgroupMatrix, with a scratch for its fragments. */
  record(batch: CommandBatch, bufs: MatmulBuffers, dims: MatmulDims, opts?: { splitK?: number; epilogue?: SubgroupEpilogue }): void;
}

/** The emulated kernel of `config`, built as if the subgroup size were `sg` (a staged kernel stepping K by `bk`),
 *  its builtins spelled as `spelling` says, for an f32 or an f16 C. */
export function emulatedSubgroupKernel(device: GPUDevice, config: SubgroupConfigName | SubgroupSpec, sg: number, tA: boolean, tB: boolean, bk?: number, spelling: SgSpelling = 'template', output: 'f32' | 'f16' = 'f32'): EmulatedSubgroupKernel {
  const { code, slots } = emulateSubgroupMatrix(subgroupMatrixSource(config, sg, tA, tB, bk, spelling, output), sg);
  const pipeline = getPipeline(device, `emulated_${JSON.stringify(config)}_sg${sg}_t${+tA}${+tB}_k${bk ?? ''}_${spelling}_${output}`, () => code);
  return {
    record(batch, bufs, dims, opts = {}) {
      // Every subgroup owns at least one 16×16 block of the output (of each batch item or K slice).
      const outputs = dims.M * dims.N * (dims.batch ?? 1) * (opts.splitK ?? 1);
      const scratch = device.createBuffer({ size: (outputs / 256) * slots * 1024, usage: GPUBufferUsage.STORAGE });
      recordSubgroupMatrix(batch, pipeline, bufs, dims, config, opts, [scratch]);
      batch.onSubmit(() => scratch.destroy());
    },
  };
}
