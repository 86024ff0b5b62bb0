// `bench pipeline-stats`: what the Vulkan driver reports about each of our compute pipelines (on
// NVIDIA the registers per thread, among others), through the layer in bench/pipeline-stats/layer.c.
// Compiles the kernels the ECG-JEPA step and the goals use, at small sizes (the statistics do not
// depend on the sizes, only on which pipeline a size selects), and pairs each pipeline's label with
// the lines the layer wrote for it. The layer must be on the loader's path before the process
// creates its Vulkan instance: bench/gpu.sh sets VK_LAYER_PATH, VK_INSTANCE_LAYERS and
// ECG_JEPA_PIPELINE_STATS_FILE.
import { appendFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import type { Engine } from '../engine/engine.js';
import type { Tensor } from '../engine/tensor.js';
import { attentionBackward, attentionForward } from '../kernels/attention.js';
import { geluBackward, geluForward } from '../kernels/gelu.js';
import { layerNormBackward, layerNormForward } from '../kernels/layernorm.js';
import { matmul, matmulConfigs } from '../kernels/matmul.js';
import { softmaxBackward, softmaxForward } from '../kernels/softmax.js';

export interface PipelineStats {
  /** Our pipeline key (the label getPipeline gives it). */
  pipeline: string;
  /** The layer's lines for it: `<executable> | <statistic>=<value> | …`. */
  executables: string[];
}

/** Every pipeline created while `work` runs, with what the layer wrote to `file` for each. With
 *  `irFile` (the layer's ECG_JEPA_PIPELINE_IR_FILE), each pipeline's label goes there as a line
 *  `##### <label>` before its creation, ahead of the representations the layer appends for it. */
export async function collectPipelineStats(engine: Engine, file: string, work: () => Promise<void>, irFile?: string): Promise<PipelineStats[]> {
  const device = engine.device;
  const create = device.createComputePipeline;
  const out: PipelineStats[] = [];
  const size = () => (existsSync(file) ? statSync(file).size : 0);
  device.createComputePipeline = (d: GPUComputePipelineDescriptor) => {
    const from = size();
    if (irFile) appendFileSync(irFile, `##### ${d.label ?? '(unlabelled)'}\n`);
    const p = create.call(device, d);
    const text = existsSync(file) ? readFileSync(file).subarray(from).toString('utf8') : ''; // none: no layer loaded
    out.push({ pipeline: d.label ?? '(unlabelled)', executables: text.split('\n').filter((l) => l.startsWith('pipeline-stats ')).map((l) => l.slice('pipeline-stats '.length)) });
    return p;
  };
  try {
    await work();
  } finally {
    device.createComputePipeline = create;
  }
  return out;
}

/** The kernels to report: every matmul config this device runs (f32 tiles, f16 tensor-core kernels)
 *  in the three layouts of a linear layer, and the f32 tiles stream-K; LayerNorm at the
 *  model width in every backward variant, the attention of the base preset (with 1, 2 and 4 lanes
 *  per query, f32 and f16 outputs), softmax and GELU. */
export async function compileKernels(engine: Engine): Promise<void> {
  const b = engine.batch;
  const made: Tensor[] = [];
  const t = (n: number, dtype: 'f32' | 'f16' = 'f32') => {
    const x = engine.empty([n], dtype);
    made.push(x);
    return x.buffer;
  };
  const n = 256;
  // f16: the tensor-core kernels only (its tiles are the f32 ones with f16 loads)
  const f16 = engine.device.features.has('shader-f16') ? matmulConfigs(engine.device, 'f16').filter((c) => c.startsWith('subgroup')) : [];
  for (const [precision, configs] of [['f32', matmulConfigs(engine.device, 'f32')], ['f16', f16]] as const) {
    const a = t(n * n, precision), w = t(n * n, precision);
    for (const config of configs)
      for (const [transA, transB] of [[false, false], [false, true], [true, false]])
        matmul(b, { a, b: w, c: t(n * n) }, { M: n, N: n, K: n, transA, transB }, { precision, config, splitK: 1 });
  }
  // the tiles stream-K (its segment loop may cost registers), as the 4096³ rows run them
  const a = t(n * n), w = t(n * n);
  for (const config of matmulConfigs(engine.device, 'f32')) matmul(b, { a, b: w, c: t(n * n) }, { M: n, N: n, K: n }, { config, streamK: 4 });
  const rows = 256, dim = 768;
  const [x, y, dy, dx, mean, rstd, gamma, beta, dg, db] = [t(rows * dim), t(rows * dim), t(rows * dim), t(rows * dim), t(rows), t(rows), t(dim), t(dim), t(dim), t(dim)];
  layerNormForward(b, { x, y, mean, rstd, gamma, beta }, { rows, dim });
  for (const state of ['registers', 'reread', 'reload'] as const)
    for (const rowsPerSubgroup of [2, 4, 8]) layerNormBackward(b, { dy, x, mean, rstd, dx, gamma, dgamma: dg, dbeta: db }, { rows, dim, rowsPerSubgroup, state });
  // base preset: the encoder's 16 heads of 48 over 8 leads × 50 columns, and over the student's
  // visible columns; the predictor's 12 heads of 32 over all 400 tokens
  for (const d of [
    { B: 1, H: 16, Dh: 48, C: 8, V: 50, mask: 'cropa' as const },
    { B: 1, H: 16, Dh: 48, C: 8, V: 20, mask: 'cropa' as const },
    { B: 1, H: 12, Dh: 32, C: 1, V: 400, mask: 'none' as const },
  ]) {
    const m = d.B * d.C * d.V * d.H * d.Dh;
    const [qkv, o, lse, dout, dqkv] = [t(3 * m), t(m), t(d.B * d.H * d.C * d.V), t(m), t(3 * m)];
    for (const lanes of [1, 2, 4] as const) {
      attentionForward(b, { qkv, out: o, lse }, d, { lanes });
      attentionBackward(b, { qkv, out: o, lse, dout, dqkv }, d, { lanes });
      // the f16 output (for an f16 reader; the model casts the f32 one for now)
      attentionForward(b, { qkv, out: o, lse }, d, { lanes, output: 'f16' });
      attentionBackward(b, { qkv, out: o, lse, dout, dqkv }, d, { lanes, output: 'f16' });
      // the f16 qkv that mixed precision reads (its f32 data read as halves: registers, not values, matter)
      if (engine.device.features.has('shader-f16')) {
        attentionForward(b, { qkv, out: o, lse }, d, { lanes, input: 'f16' });
        attentionBackward(b, { qkv, out: o, lse, dout, dqkv }, d, { lanes, input: 'f16' });
      }
    }
  }
  softmaxForward(b, x, y, { rows, cols: 400 });
  softmaxBackward(b, y, dy, dx, { rows, cols: 400 });
  geluForward(b, x, y, rows * dim);
  geluBackward(b, x, dy, dx, rows * dim);
  await engine.read(made[made.length - 1]);
  made.forEach((m) => m.dispose());
}

/** One line per executable: the pipeline, then the driver's statistics. */
export function formatPipelineStats(stats: PipelineStats[]): string {
  return stats.map((s) => (s.executables.length ? s.executables.map((e) => `${s.pipeline}  ${e}`).join('\n') : `${s.pipeline}  (no statistics)`)).join('\n');
}
