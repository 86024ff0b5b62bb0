#!/usr/bin/env node
// The ecg-jepa command line: a thin layer over library functions.
import { Command } from 'commander';
import { describeGpu } from '../engine/device.js';
import { Engine } from '../engine/engine.js';
import { parseLossScale } from '../engine/lossscale.js';
import { smokeDemo } from './smoke.js';
import { openDataset } from './data/dataset.js';
import { addLabels, MAX_DEFAULT_COLUMNS, removeLabels } from './data/labels.js';
import { describe, formatSummary } from './show.js';
import { deriveLabels, DERIVABLE } from './data/derive.js';
import { prepare, type PrepareOptions, type PrepareSource } from './data/prepare.js';
import { progressBar } from './progress.js';
import { f32OrF16, leadCount, list, LOSS_SCALE_HELP, nonNegInt, nonNegNum, oneOf, posInt, posNum, precision, qualityKinds, rate, sgEpilogue, streamK } from './cli-args.js';
import { QUALITY_KINDS } from './data/preprocess.js';
import { pretrain, signalExitCode } from './pretrain.js';
import { RECORDS_BAR, registerEvalCommands } from './cli-eval.js';
import { registerImportTorch } from './import-torch.js';
import { registerExport } from './export.js';
import { benchEmbed, benchStep, formatBench, saveBench } from '../bench/step.js';
import { setMatmulStreamK, setSubgroupEpilogue } from '../kernels/matmul.js';


const program = new Command();
program.name('ecg-jepa').description('ECG-JEPA on a hand-written WebGPU engine').version('0.1.0');
program.option('--backend <name>', 'Dawn backend (vulkan, metal, d3d12, ...)');
program.option('--dawn-toggles <list>', 'more Dawn toggles, comma-separated (e.g. disable_robustness: no index clamps on workgroup memory)', list);

/** Runs `fn` with an engine and always releases the device so the process can exit. Subgroup
 *  matrices are asked for: where the GPU has them (NVIDIA under Dawn), f16 matmuls use tensor cores. */
async function withEngine<T>(fn: (engine: Engine) => Promise<T>): Promise<T> {
  const engine = await Engine.create({ backend: program.opts().backend, subgroupMatrix: true, dawnToggles: program.opts().dawnToggles });
  try {
    return await fn(engine);
  } finally {
    engine.close();
  }
}

program
  .command('info')
  .description('print the adapter, backend, features and limits in use')
  .option('--json', 'print JSON')
  .action(async (o) =>
    withEngine(async (engine) => {
      console.log(o.json ? JSON.stringify(engine.gpu.info, null, 2) : describeGpu(engine.gpu.info));
    }),
  );

program
  .command('smoke')
  .description('run a kernel on the device and check every element against the CPU')
  .option('-n, --size <n>', 'elements', posInt('--size'), 1000000)
  .action(async (o) =>
    withEngine(async (engine) => {
      const r = await smokeDemo(engine, o.size);
      console.log(`smoke: ${r.n} elements, max abs error ${r.maxError.toExponential(2)}, ${r.ms.toFixed(1)} ms -> ${r.ok ? 'OK' : 'FAILED'}`);
      if (!r.ok) process.exitCode = 1;
    }),
  );

async function runPrepare(opts: PrepareOptions): Promise<void> {
  const bar = progressBar(`prepare ${opts.source}`, '{bar} {percentage}% | {value}/{total} records | skipped {skipped} | ETA {eta_formatted}');
  const r = await prepare({
    ...opts,
    onProgress: (p) => bar.update(p.done, p.total, { skipped: p.skipped }),
    log: (m) => console.error(m),
  });
  bar.stop();
  if (r.written === 0) process.exitCode = 1; // an empty dataset is no result; the line below says why
  console.log(`${r.out}: ${r.written} records written, ${r.skipped} skipped` +
    (r.skipped ? ` (${Object.entries(r.skippedByReason).map(([k, v]) => `${k} ${v}`).join(', ')}; see ${r.out}/skipped.jsonl)` : '') +
    `, ${r.shardsWritten} shards written, ${r.shardsReused} reused, ${r.workers} workers`);
}


program
  .command('prepare')
  .description('read a downloaded dataset and write a prepared dataset (shards + manifest)')
  .requiredOption('--source <ptbxl|challenge|code15|wfdb|npy>', 'source format', oneOf<PrepareSource>('ptbxl', 'challenge', 'code15', 'wfdb', 'npy')('--source'))
  .requiredOption('--root <dir>', 'where the downloaded files are')
  .requiredOption('--out <dir>', 'prepared dataset folder (e.g. data/ptbxl)')
  .option('--leads <8|12>', 'leads to keep', leadCount, 8)
  .option('--fs <hz>', 'target sampling rate', posNum('--fs'), 250)
  .option('--seconds <s>', 'window length', posNum('--seconds'), 10)
  .option('--dtype <f32|f16>', 'shard sample type', f32OrF16('--dtype'), 'f32')
  .option('--workers <n>', 'worker threads (0 = main thread)', nonNegInt('--workers'))
  .option('--record-timeout <s>', 'stop a worker that spends longer on one record and skip the record as timeout (the next run tries it again; not with --workers 0)', posNum('--record-timeout'), 300)
  .option('--limit <n>', 'only the first N records', posInt('--limit'))
  .option('--source-fs <hz>', 'npy/csv: sampling rate of the files', posNum('--source-fs'))
  .option('--scale <x>', "npy/csv: factor from the files' unit to mV (e.g. 0.001 for µV; default 1)", posNum('--scale'))
  .option('--reject <kinds>', `quality issues that skip a record: comma list of ${QUALITY_KINDS.join(', ')}, or none (NaN and Inf kept are set to 0; default: all)`, qualityKinds)
  .action(async (o) => {
    await runPrepare({
      source: o.source, root: o.root, out: o.out, leads: o.leads, fs: o.fs, seconds: o.seconds,
      dtype: o.dtype, workers: o.workers, recordTimeoutS: o.recordTimeout, limit: o.limit, sourceFs: o.sourceFs, scale: o.scale, preprocess: o.reject ? { reject: o.reject } : {},
    });
  });

program
  .command('verify')
  .description("check a prepared dataset: its manifest, and every shard's size and SHA-256 (the commands that read one check sizes only)")
  .requiredOption('--data <dir>', 'prepared dataset folder')
  .action(async (o) => {
    const ds = await openDataset(o.data);
    try {
      const v = await ds.verify();
      if (!v.ok) throw new Error(`${o.data}: checksum mismatch in ${v.bad.join(', ')} (prepare it again; a re-run rebuilds those shards)`);
      console.log(`${o.data}: ${ds.size} records in ${ds.manifest.shards.length} shards, every checksum matches`);
    } finally {
      ds.close();
    }
  });

program
  .command('show')
  .description('what a prepared dataset (records, leads, rate, folds, labels with their classes or ranges) or a checkpoint (kind, preset, step, parameters, head) holds')
  .argument('<path>', 'dataset folder, or checkpoint (…/checkpoint-last, …-model, with or without .json)')
  .option('--json', 'print JSON')
  .action(async (path: string, o) => {
    const s = await describe(path);
    console.log(o.json ? JSON.stringify(s, null, 1) : formatSummary(s));
  });

program
  .command('labels')
  .description("add labels to a prepared dataset: join a CSV table of one's own by record id (ECG features, outcomes), or measure one from the signals (--derive hr, --derive qrs); --remove undoes")
  .requiredOption('--data <dir>', 'prepared dataset folder')
  .option('--csv <file>', 'table with a header row and one row per record')
  .option('--key <column>', 'column holding the record id (default: the first named column)')
  .option('--columns <list>', `columns to join, each column or column:field (default: every other column, up to ${MAX_DEFAULT_COLUMNS})`, list)
  .option('--match <id|basename>', "compare keys with the whole record id, or with its last path part (WFDB and Challenge ids are paths)", oneOf('id', 'basename')('--match'), 'id')
  .option('--derive <what[:field]>', `measure from the signals instead: ${Object.entries(DERIVABLE).map(([what, m]) => `${what} (${m.help}; field ${m.field})`).join(' or ')}, stored as field`)
  .option('--replace', "replace label fields the dataset's source wrote (fields of an earlier join are replaced anyway)")
  .option('--remove <fields>', 'remove label fields a join wrote, from every record and the manifest\'s list of joins', list)
  .action(async (o) => {
    if ([o.csv, o.derive, o.remove].filter(Boolean).length !== 1) throw new Error('give one of --csv <file>, --derive <what>, --remove <fields>');
    const tableOnly = o.key !== undefined || o.columns || o.match !== 'id';
    if (o.remove && (tableOnly || o.replace)) throw new Error('--remove takes no other option');
    if (o.remove) {
      const held = await removeLabels(o.data, o.remove);
      console.log(`${o.data}: removed ${Object.entries(held).map(([f, n]) => `${f} (from ${n} records)`).join(', ')}`);
      return;
    }
    if (o.derive) {
      if (tableOnly) throw new Error('--key, --columns and --match go with --csv');
      const parts = String(o.derive).split(':');
      if (parts.length > 2) throw new Error(`--derive: expected what or what:field, got '${o.derive}'`);
      const [what, field] = parts;
      const bar = progressBar(`derive ${what}`, RECORDS_BAR);
      const r = await deriveLabels(o.data, what, { field, replace: o.replace, onProgress: (d, t) => bar.update(d, t) }).finally(() => bar.stop());
      console.log(`${o.data}: ${what} measured as '${r.field}' in ${r.measured} of ${r.records} records` + (r.records > r.measured ? ` (${r.records - r.measured} with ${DERIVABLE[what].none})` : ''));
      return;
    }
    const r = await addLabels(o.data, o.csv, { key: o.key, columns: o.columns, match: o.match, replace: o.replace });
    console.log(`${o.data}: ${r.fields.length} label field(s) from ${r.file} (key ${r.key}) joined to ${r.matched} of ${r.records} records` +
      (r.records > r.matched ? `; ${r.records - r.matched} records have no row` : '') +
      (r.unmatchedRows ? `; ${r.unmatchedRows} rows match no record (e.g. ${r.unmatchedKeys.join(', ')})` : '') +
      (r.emptyKeys ? `; ${r.emptyKeys} rows without a key skipped` : ''));
    for (const f of r.fields) console.log(`  ${f}: ${r.counts[f].numbers} numbers, ${r.counts[f].texts} texts, ${r.matched - r.counts[f].numbers - r.counts[f].texts} missing`);
  });

program
  .command('synth')
  .description('generate labelled synthetic 12-lead ECGs as a prepared dataset')
  .requiredOption('--n <count>', 'number of records', posInt('--n'))
  .requiredOption('--out <dir>', 'prepared dataset folder (e.g. data/synth)')
  .option('--seed <n>', 'seed (record i depends only on seed and i)', nonNegInt('--seed'), 0)
  .option('--leads <8|12>', 'leads to keep', leadCount, 8)
  .option('--noise <level>', 'noise scale: 0 clean, 1 typical, 2 noisy', nonNegNum('--noise'), 1)
  .option('--workers <n>', 'worker threads (0 = main thread)', nonNegInt('--workers'))
  .action(async (o) => {
    await runPrepare({
      source: 'synth', root: '', out: o.out, leads: o.leads,
      workers: o.workers,
      synth: { n: o.n, seed: o.seed, noise: o.noise },
    });
  });

program
  .command('pretrain')
  .description('pretrain ECG-JEPA (no options: the tiny preset on synthetic ECGs, a few minutes on a CPU)')
  .option('--data <dirs|synthetic>', 'prepared dataset folder, several comma-separated (read as one shuffled union; same leads, rate and window), or synthetic', 'synthetic')
  .option('--preset <name>', 'base (the paper) or tiny', 'tiny')
  .option('--mask <random|multiblock>', 'masking scheme (random on the base preset: batch 128 and lr 2.5e-5 unless given, as the reference)', 'multiblock')
  .option('--batch <n>', 'batch size (default: the preset\'s)', posInt('--batch'))
  .option('--micro-batch <n>', 'ECGs per micro-batch: each batch goes forward and back in parts of n, their gradients adding up (less memory, the same training up to rounding; must divide the batch; a resume keeps it unless given)', posInt('--micro-batch'))
  .option('--recompute', 'recompute the block activations in the backward instead of holding them (less memory, one more forward of the student\'s and predictor\'s blocks a step, the same training bit for bit; a resume keeps it unless given)')
  .option('--no-recompute', 'hold the block activations (the default; for a resume of a run that recomputed)')
  .option('--epochs <n>', 'epochs (sets the LR and EMA schedules)', posInt('--epochs'))
  .option('--steps <n>', 'stop after N steps (the synthetic demo defaults to 1500)', posInt('--steps'))
  .option('--lr <x>', 'peak learning rate (default: the preset\'s)', posNum('--lr'))
  .option('--seed <n>', 'seed for init, masks and data order', nonNegInt('--seed'), 0)
  .option('--precision <f32|f16>', 'matmul inputs: f16 = mixed precision (needs shader-f16)', precision, 'f32')
  .option('--loss-scale <dynamic|x>', LOSS_SCALE_HELP)
  .option('--synthetic-records <n>', 'records generated for --data synthetic', posInt('--synthetic-records'), 512)
  .option('--log-every <n>', 'read back and log the loss every N steps', posInt('--log-every'), 10)
  .option('--checkpoint-every <n>', 'save a checkpoint every N steps', posInt('--checkpoint-every'), 200)
  .option('--snapshot-every-epochs <n>', 'also write the student encoder alone to <out>/snapshots/encoder-epoch<E> every N epochs and at the end (the paper: 5; default: none; 0: none); with --resume, changes the run\'s setting', nonNegInt('--snapshot-every-epochs'))
  .option('--snapshot-dtype <f32|f16>', 'snapshot tensor type: f32 (bit for bit, the default) or f16 (half the bytes)', f32OrF16('--snapshot-dtype'))
  .option('--out <dir>', 'run folder', 'runs/demo')
  .option('--resume', 'continue the run in --out from its last checkpoint')
  .option('--restart', 'start a new run in --out even where it holds an earlier run\'s checkpoint, which is removed (without it, refused)')
  .action(async (o, cmd: Command) => {
    // --resume without --data continues with the run's folders; with it, they must be the same. Its
    // other settings likewise: only those given here are checked against the run's (defaults are not).
    const data = o.resume && cmd.getOptionValueSource('data') === 'default' ? undefined : o.data;
    const given = <T>(name: string, v: T): T | undefined => (o.resume && cmd.getOptionValueSource(name) !== 'cli' ? undefined : v);
    await withEngine(async (engine) => {
      const bar = progressBar('pretrain', '{bar} {value}/{total} | loss {loss} | lr {lr} | {sps} samples/s | teacher std {std} | content {content} | ETA {eta_formatted}');
      const r = await pretrain(engine, {
        data, out: o.out, preset: given('preset', o.preset), mask: given('mask', o.mask), batch: o.batch, microBatch: o.microBatch, recompute: o.recompute, epochs: o.epochs,
        steps: o.steps === undefined && o.epochs === undefined && o.data === 'synthetic' && !o.resume ? 1500 : o.steps,
        lr: o.lr, seed: given('seed', o.seed), syntheticRecords: given('syntheticRecords', o.syntheticRecords),
        precision: given('precision', o.precision), lossScale: o.lossScale === undefined ? undefined : parseLossScale(o.lossScale),
        logEvery: given('logEvery', o.logEvery), checkpointEvery: given('checkpointEvery', o.checkpointEvery), resume: !!o.resume, restart: !!o.restart,
        snapshotEveryEpochs: o.snapshotEveryEpochs, snapshotDtype: o.snapshotDtype,
        onLog: (row, total) => bar.update(row.step, total, { loss: row.loss.toPrecision(4), lr: row.lr.toExponential(2), sps: row.samples_per_s.toFixed(1), std: row.teacher_std.toPrecision(3), content: row.target_content.toFixed(3) }),
      });
      bar.stop();
      if (r.signal) process.exitCode = signalExitCode(r.signal);
      console.log(`${r.stoppedBy === 'signal' ? 'interrupted' : 'done'} at step ${r.steps}: loss ${r.lastLoss.toPrecision(4)}; checkpoint ${r.checkpoint}; log ${o.out}/log.jsonl` +
        (r.snapshots.length ? `; ${r.snapshots.length} encoder snapshot(s) in ${o.out}/snapshots` : ''));
    });
  });

registerEvalCommands(program, withEngine, progressBar);
registerImportTorch(program);
registerExport(program);

const bench = program.command('bench').description('training-step and inference throughput, optionally against the TensorFlow.js peer');
for (const kind of ['step', 'embed'] as const) {
  const cmd = bench
    .command(kind)
    .description(kind === 'step' ? 'samples/s and peak memory of a full ECG-JEPA training step' : 'ECGs/s of encoder inference (mean-pooled representation)')
    .option('--preset <name>', 'tiny or base', 'tiny')
    .option('--batch <n>', 'batch size', posInt('--batch'), 4)
    .option(kind === 'step' ? '--steps <n>' : '--iters <n>', 'timed iterations', posInt(kind === 'step' ? '--steps' : '--iters'), kind === 'step' ? 10 : 20)
    .option('--warmup <n>', 'untimed iterations first (at least 1: the first compiles shaders)', posInt('--warmup'), 3)
    .option('--peer <name>', 'also run the same computation in tfjs (tfjs)', oneOf('tfjs')('--peer'))
    .option('--peer-batch <n>', 'the batch tfjs tries first (default: --batch): halved while it fails, then doubled up to --batch while it fits; the best samples/s counts', posInt('--peer-batch'))
    .option('--precision <f32|f16>', 'our matmul inputs (f16 = mixed precision; the tfjs peer runs f32)', precision, 'f32')
    .option('--sg-epilogue <fused|pass>', "how our subgroup-matrix matmuls (f16, where the GPU has them) apply bias, GELU, residual or an f16 output: 'fused' in the kernel (the default) or 'pass', a second kernel (setSubgroupEpilogue)", sgEpilogue)
    .option('--stream-k <off|auto|n>', "whether our tiled (fp32) matmuls run stream-K by themselves where a last wave of tiles would idle the GPU: off (the default), auto (on GPUs whose SM count matmul knows) or on n resident workgroups (setMatmulStreamK)", streamK);
  if (kind === 'step')
    cmd
      .option('--micro-batch <n>', 'our step in micro-batches of n (as pretrain --micro-batch; the peak memory shows what it saves); must divide the batch', posInt('--micro-batch'))
      .option('--recompute', 'our step recomputing the block activations in the backward (as pretrain --recompute)')
      .option('--drop-path <rate>', 'our step\'s drop-path rate, as pretraining has it (base: 0.1); default 0, as the tfjs peer has none', rate('--drop-path'));
  cmd
    .option('--profile', 'then time each kernel of one more call on the GPU (needs timestamp-query)')
    .option('--save', 'write the result with device, date and command to bench/results/')
    .action(async (o) => {
      if (o.sgEpilogue !== undefined) setSubgroupEpilogue(o.sgEpilogue);
      if (o.streamK !== undefined) setMatmulStreamK(o.streamK);
      await withEngine(async (engine) => {
        const common = { preset: o.preset, batch: o.batch, warmup: o.warmup, peer: o.peer, peerBatch: o.peerBatch, precision: o.precision, profile: !!o.profile, progress: (line: string) => console.error(`measured: ${line}`) };
        const r = kind === 'step' ? await benchStep(engine, { ...common, steps: o.steps, microBatch: o.microBatch, recompute: !!o.recompute, dropPath: o.dropPath }) : await benchEmbed(engine, { ...common, iters: o.iters });
        console.log(formatBench(r));
        if (o.save) console.log(`saved ${saveBench(r, 'ecg-jepa ' + process.argv.slice(2).join(' '))}`);
      });
    });
}

program
  .parseAsync()
  .then(() => process.exit(process.exitCode ?? 0))
  .catch((e) => {
    console.error(`ecg-jepa: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  });
