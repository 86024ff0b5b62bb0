// `npm run bench -- kernels [--scale ci|full] [--group G,..] [--only SUBSTR[|SUBSTR…]] [--json] [--no-tfjs] [--save] [--target-ms N] [--stream-k off|auto|N]`
// Our kernels against tfjs-backend-webgpu, same process, same adapter. --json prints the rows as
// JSON on stdout; --save also writes them with device, date and command to bench/results/.
// `npm run bench -- sweep [--precision f32|f16] [--shape MxNxK] [--trans nn] [--layers N] ...`: matmul
// kernels given by their parameters, checked and timed (bench/sweep.ts).
// `npm run bench -- pipeline-stats [--json] [--save]`: the Vulkan driver's statistics of each kernel
// pipeline, through the layer bench/gpu.sh loads (bench/pipeline-stats.ts).
import { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import { writeFileAtomic } from '../model/checkpoint.js';
import { Engine } from '../engine/engine.js';
import { describeGpu, type GpuInfo } from '../engine/device.js';
import { formatRows, loadTfjs, runCase, type BenchRow, type Scale } from './harness.js';
import { KERNEL_GROUPS, kernelCases } from './kernels/index.js';
import { copyFractions, evaluateTargets, formatTargets } from './targets.js';
import { collectPipelineStats, compileKernels, formatPipelineStats } from './pipeline-stats.js';
import { list, nonNegInt, num, oneOf, posInt, posNum, precision, streamK } from '../train/cli-args.js';
import { setMatmulStreamK } from '../kernels/matmul.js';

/** The engine both commands measure on: subgroup matrices where Dawn has them, --backend, --dawn-toggles. */
function benchEngine(o: { backend?: string; dawnToggles?: string[] }): Promise<Engine> {
  return Engine.create({ backend: o.backend, subgroupMatrix: true, dawnToggles: o.dawnToggles });
}

/** bench/results/NAME-DEVICE-DAY.json, written atomically with the date, command and device first. */
function resultsWriter(name: string, device: GpuInfo, date: string) {
  const file = `bench/results/${name}-${device.device.replace(/[^a-z0-9]+/gi, '-')}-${date.slice(0, 10)}.json`;
  return {
    file,
    write: async (body: object) => {
      mkdirSync('bench/results', { recursive: true });
      await writeFileAtomic(file, JSON.stringify({ date, command: process.argv.slice(1).join(' '), device, ...body }, null, 2) + '\n');
    },
  };
}

const program = new Command();
program.name('bench');
program
  .command('kernels')
  .description('each kernel vs its tfjs equivalent')
  .option('--scale <ci|full>', "'ci' = tiny shapes (CPU), 'full' = ECG-JEPA shapes (GPU)", oneOf<Scale>('ci', 'full')('--scale'), 'ci')
  .option('--group <names>', `only these kernel groups, comma-separated (${KERNEL_GROUPS.join(', ')})`)
  .option('--only <substr>', "only cases whose name contains this (or any of several, separated by '|')")
  .option('--json', 'print rows as JSON on stdout')
  .option('--no-tfjs', 'skip the tfjs peer')
  .option('--save', 'write results to bench/results/')
  .option('--target-ms <n>', 'time per timed round', posNum('--target-ms'), 300)
  .option('--backend <name>', 'Dawn backend')
  .option('--dawn-toggles <list>', 'more Dawn toggles, comma-separated (e.g. disable_robustness: no index clamps on workgroup memory)', list)
  .option('--stream-k <off|auto|n>', "matmul's own stream-K (setMatmulStreamK) for the rows that leave it the choice", streamK)
  .action(async (o) => {
    const scale: Scale = o.scale;
    if (o.streamK !== undefined) setMatmulStreamK(o.streamK);
    // the options are checked before the device starts (minutes on a borrowed GPU's first call)
    const groups: string[] | undefined = o.group?.split(',').map((g: string) => g.trim());
    const names: string[] | undefined = o.only?.split('|');
    const cases = kernelCases(scale, groups).filter((c) => !names || names.some((x) => c.name.includes(x)));
    const engine = await benchEngine(o);
    const log = o.json ? (s: string) => console.error(s) : (s: string) => console.log(s);
    try {
      log(describeGpu(engine.gpu.info));
      const tf = o.tfjs ? await loadTfjs(engine) : null;
      const rows: BenchRow[] = [];
      const failed: { name: string; error: string }[] = [];
      const date = new Date().toISOString();
      const info = engine.gpu.info;
      // a filtered run names its filter, so it does not overwrite the whole group's file of the day
      const only = o.only ? `-only-${String(o.only).replace(/[^a-zA-Z0-9]+/g, '-')}` : '';
      const sk = o.streamK !== undefined ? `-streamk-${o.streamK}` : '';
      const out = resultsWriter(`kernels-${scale}${groups ? `-${groups.join('_')}` : ''}${only}${sk}`, info, date);
      // Saved after every case, so a run cut short (a time limit on a borrowed GPU) keeps what it measured.
      const save = async () => {
        for (const [name, f] of copyFractions(rows)) rows.find((r) => r.name === name)!.of_copy = f;
        if (!o.save) return;
        const targets = scale === 'full' ? { targets: evaluateTargets(rows) } : {};
        await out.write({ rows, ...targets, ...(failed.length ? { failed } : {}) });
      };
      for (const c of cases) {
        try {
          const row = await runCase(engine, tf, c, o.targetMs);
          rows.push(row);
          log(formatRows([row]).split('\n')[2]);
        } catch (e) {
          // one case that does not fit this device (memory, limits) must not cost the others
          failed.push({ name: c.name, error: (e as Error).message });
          log(`${c.name}: FAILED: ${(e as Error).message}`);
        }
        await save();
      }
      log('\n' + formatRows(rows));
      if (scale === 'full') log('\nGPU goals (ours, this run):\n' + formatTargets(evaluateTargets(rows)));
      if (failed.length) log(`\n${failed.length} case(s) failed: ${failed.map((f) => f.name).join('; ')}`);
      if (o.json) console.log(JSON.stringify(rows, null, 2));
      if (o.save) log(`saved ${out.file}`);
      if (failed.length) process.exitCode = 1;
    } finally {
      engine.close();
    }
  });

program
  .command('sweep')
  .description('matmul kernels given by their parameters (tiles, K steps, thread blocks, subgroups), checked and timed on one shape')
  .option('--precision <f32|f16>', 'f32: register-blocked tiles; f16: staged subgroup-matrix kernels', precision, 'f32')
  .option('--shape <MxNxK>', 'the product to time', '4096x4096x4096')
  .option('--trans <nn|nt|tn|tt>', 'A and B stored transposed (t) or not (n)', oneOf('nn', 'nt', 'tn', 'tt')('--trans'), 'nn')
  .option('--limit <n>', 'at most this many candidates (the named configs first)', posInt('--limit'))
  .option('--budget-s <n>', 'start no candidate after this many seconds', num('--budget-s'))
  .option('--layers <n>', 'then time the n fastest and the autotuned choice on every ECG-JEPA layer shape', nonNegInt('--layers'), 0)
  .option('--target-ms <n>', 'time per timed round', posNum('--target-ms'), 100)
  .option('--stream-k <n>', 'run the tiles stream-K on n workgroups (MatmulOptions.streamK)', posInt('--stream-k'))
  .option('--json', 'print rows as JSON on stdout')
  .option('--save', 'write results to bench/results/')
  .option('--backend <name>', 'Dawn backend')
  .option('--dawn-toggles <list>', 'more Dawn toggles, comma-separated', list)
  .action(async (o) => {
    const { formatLayers, formatSweep, sweepLayers, sweepMatmul } = await import('./sweep.js');
    const m = /^(\d+)x(\d+)x(\d+)$/.exec(o.shape);
    if (!m) throw new Error(`--shape must be MxNxK (e.g. 4096x4096x4096), got ${o.shape}`);
    const dims = { M: +m[1], N: +m[2], K: +m[3], transA: o.trans[0] === 't', transB: o.trans[1] === 't' };
    const opts = { precision: o.precision as 'f32' | 'f16', dims, targetMs: o.targetMs as number, limit: o.limit as number | undefined, budgetS: o.budgetS as number | undefined, streamK: o.streamK as number | undefined };
    const engine = await benchEngine(o);
    const log = o.json ? (s: string) => console.error(s) : (s: string) => console.log(s);
    try {
      const info = engine.gpu.info;
      log(describeGpu(info));
      const date = new Date().toISOString();
      const out = resultsWriter(`sweep-${opts.precision}-${o.shape}-${o.trans}${opts.streamK ? `-streamk${opts.streamK}` : ''}`, info, date);
      let saved: object = { dims, precision: opts.precision, ...(opts.streamK ? { streamK: opts.streamK } : {}) };
      // saved after every candidate, so a run cut short keeps what it measured
      const save = async (more: object) => {
        saved = { ...saved, ...more };
        if (o.save) await out.write(saved);
      };
      const rows = await sweepMatmul(engine, opts, log, (r) => void save({ rows: r }));
      await save({ rows });
      log('\n' + formatSweep(rows));
      const layers = o.layers > 0 ? await sweepLayers(engine, rows, o.layers, opts.precision, opts.targetMs, log, undefined, opts.streamK) : [];
      if (layers.length) {
        await save({ layers });
        log('\n' + formatLayers(layers));
      }
      if (o.json) console.log(JSON.stringify({ rows, layers }, null, 2));
      if (o.save) log(`saved ${out.file}`);
      if (!rows.some((r) => r.status === 'ok')) process.exitCode = 1;
    } finally {
      engine.close();
    }
  });

program
  .command('pipeline-stats')
  .description("the Vulkan driver's statistics of each kernel pipeline (registers per thread on NVIDIA), through bench/pipeline-stats/layer.c; bench/gpu.sh loads the layer")
  .option('--json', 'print the pipelines and their statistics as JSON on stdout')
  .option('--save', 'write them to bench/results/')
  .action(async (o) => {
    const file = process.env.ECG_JEPA_PIPELINE_STATS_FILE;
    if (!file) throw new Error('pipeline-stats: set ECG_JEPA_PIPELINE_STATS_FILE and load the layer (bash bench/gpu.sh pipeline-stats does both)');
    const engine = await benchEngine({});
    const log = o.json ? (s: string) => console.error(s) : (s: string) => console.log(s);
    try {
      log(describeGpu(engine.gpu.info));
      const pipelines = await collectPipelineStats(engine, file, () => compileKernels(engine), process.env.ECG_JEPA_PIPELINE_IR_FILE);
      log(formatPipelineStats(pipelines));
      const reported = pipelines.filter((p) => p.executables.length).length;
      log(`${pipelines.length} pipelines, ${reported} with statistics`);
      if (o.json) console.log(JSON.stringify(pipelines, null, 2));
      if (o.save) {
        const out = resultsWriter('pipeline-stats', engine.gpu.info, new Date().toISOString());
        await out.write({ pipelines });
        log(`saved ${out.file}`);
      }
      if (reported === 0) process.exitCode = 1;
    } finally {
      engine.close();
    }
  });

program
  .parseAsync()
  .then(() => process.exit(process.exitCode ?? 0))
  .catch((e) => {
    console.error(`bench: ${e instanceof Error ? e.message : e}`); // as ecg-jepa: the message, not a stack
    process.exit(1);
  });
