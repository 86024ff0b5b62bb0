// Headless ECG-JEPA pretraining: prepared datasets (one folder, several read as one shuffled union,
// or the synthetic generator) in, checkpoints and a JSONL log out. Resumes exactly (weights,
// optimizer moments, PRNG, data position); SIGINT finishes the current step and saves; a NaN or
// exploding loss stops the run and keeps the last good checkpoint. With snapshotEveryEpochs, the
// student encoder alone is also kept every N epochs (train/snapshots.ts). Node only.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Engine } from '../engine/engine.js';
import * as ops from '../engine/ops/index.js';
import type { Tensor } from '../engine/tensor.js';
import type { LossScaleOption } from '../engine/lossscale.js';
import type { Precision } from '../engine/ops/linear.js';
import { inputLength, makeConfig, maskRecipe, paramCount, type EcgJepaConfig, type MaskType } from '../model/config.js';
import { checkpointFiles, loadCheckpoint, removeAtomicTemps, removeCheckpoint, saveCheckpoint, writeFileAtomic, type Checkpoint } from '../model/checkpoint.js';
import type { ExportDType } from '../model/export.js';
import { EcgJepa, uploadMicroBatches } from '../model/jepa.js';
import { openDataset } from './data/dataset.js';
import { lockFolder } from './data/fsutil.js';
import { prepare } from './data/prepare.js';
import { leadSelector } from './data/select.js';
import { describeFolders, openDatasetUnion, splitDataList, type DataFolder, type RecordSource } from './data/union.js';
import { listSnapshots, snapshotDue, SNAPSHOT_DIR, writeSnapshot, type SnapshotRecord } from './snapshots.js';

export interface PretrainOptions {
  /**
   * A prepared dataset folder, or 'synthetic' (generated into <out>/synthetic-data first; the
   * default), or several folders, comma-separated or as a list, read as one shuffled union (same
   * leads, rate and window). On resume: left out, the run's; given, it must be the run's list.
   */
  data?: string | string[];
  out: string;
  /** 'tiny' (the default) or 'base'. */
  preset?: string;
  mask?: MaskType;
  batch?: number;
  /** ECGs per micro-batch: each batch goes forward and back in parts of this many, their gradients
   *  adding up before the update (less memory; the same training up to the order of the sums: the
   *  batch's masks and drop-path draws). It must divide the batch. Saved with the run; a resume
   *  keeps it unless given another (then the same up to rounding, not bit for bit). */
  microBatch?: number;
  /** Recompute the student's and the predictor's block activations in the backward instead of
   *  holding them (less memory, one more forward of those blocks a step; the same training bit for
   *  bit). Saved with the run; a resume keeps it unless given. */
  recompute?: boolean;
  /** Total epochs (sets the LR and EMA schedules); `steps` may stop earlier. */
  epochs?: number;
  steps?: number;
  lr?: number;
  seed?: number;
  /** Matmul input precision: f16 is mixed precision (f32 accumulation, weights and optimizer). */
  precision?: Precision;
  /** 'dynamic' (the default with f16: start at 2^16, skip overflowed steps and halve, double after
   *  2000 good steps) or its settings, or a fixed scale (the default with f32: 1, none). */
  lossScale?: LossScaleOption;
  /** Records generated for data = 'synthetic'. */
  syntheticRecords?: number;
  /** Read back the loss (and check it) every N steps. */
  logEvery?: number;
  checkpointEvery?: number;
  /**
   * Write the student encoder alone (as `ecg-jepa export` does) to <out>/snapshots/encoder-epoch{E}
   * after every N-th epoch and at the end of training; 0 or absent: never. On resume, given, it
   * replaces the run's setting (and is saved with it).
   */
  snapshotEveryEpochs?: number;
  /** The snapshots' tensor type: f32 (the student bit for bit, the default) or f16. */
  snapshotDtype?: ExportDType;
  resume?: boolean;
  /** A new run in a folder holding an earlier run's checkpoint replaces it (without: refused, so a
   *  command repeated without --resume cannot cost a run its progress). */
  restart?: boolean;
  /** Called after every logged step. */
  onLog?: (row: LogRow, totalSteps: number) => void;
  log?: (msg: string) => void;
}

export interface LogRow {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  momentum: number;
  samples_per_s: number;
  /** Mean over features of the std across the batch of the teacher's representation (collapse guard). */
  teacher_std: number;
  /** Share of the teacher targets' variance that differs between the batch's records (the rest is fixed by position). */
  target_content: number;
  /** The loss scale the next step starts with, and the steps skipped so far on overflow. */
  loss_scale: number;
  skipped_steps: number;
  time: string;
}

export interface PretrainResult {
  out: string;
  checkpoint: string;
  steps: number;
  lastLoss: number;
  stoppedBy: 'done' | 'signal';
  /** The signal that stopped it (stoppedBy 'signal'). */
  signal?: 'SIGINT' | 'SIGTERM';
  /** The encoder snapshots of the run so far, in <out>/snapshots. */
  snapshots: SnapshotRecord[];
}

/** Saved next to the checkpoints so `--resume` continues with the same settings. */
interface RunFile {
  options: Omit<PretrainOptions, 'onLog' | 'log' | 'resume'>;
  config: EcgJepaConfig;
  /** The folders read, with their manifests' hashes (absent in runs started before it was kept). */
  data?: DataFolder[];
}

export class TrainingDivergedError extends Error {}

const LAST = 'checkpoint-last';

/** The options that make a run what it is: a resume keeps the run's, and refuses others given. */
const RUN_SETTINGS = ['preset', 'mask', 'batch', 'lr', 'seed', 'precision', 'lossScale', 'syntheticRecords', 'logEvery', 'checkpointEvery'] as const;
type RunSetting = (typeof RUN_SETTINGS)[number];

/** Each setting of a run as it trains: the option given, else the library's default (batch, lr,
 *  mask and preset as the run's config has them). The CLI passes its own defaults, the same. */
function runSettings(o: PretrainOptions, cfg: EcgJepaConfig): { [K in RunSetting]-?: NonNullable<PretrainOptions[K]> } {
  const precision = o.precision ?? 'f32';
  return {
    preset: cfg.preset, mask: cfg.mask.type, batch: cfg.optim.batchSize, lr: cfg.optim.lr, seed: o.seed ?? 0, precision,
    lossScale: o.lossScale ?? (precision === 'f16' ? 'dynamic' : 1),
    syntheticRecords: o.syntheticRecords ?? 512, logEvery: o.logEvery ?? 10, checkpointEvery: o.checkpointEvery ?? 200,
  };
}

/** `--resume` with a setting other than the run's is refused, naming each by its flag. */
function checkResumeSettings(out: string, given: PretrainOptions, saved: RunFile): void {
  const run = runSettings(saved.options, saved.config);
  const changed = RUN_SETTINGS.filter((k) => given[k] !== undefined && JSON.stringify(given[k]) !== JSON.stringify(run[k]));
  const flag = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  if (changed.length)
    throw new Error(`--resume: the run in ${out} keeps its own settings: ${changed.map((k) => `${flag(k)} ${JSON.stringify(run[k])}, not ${JSON.stringify(given[k])}`).join('; ')}. ` +
      'A resume may change --steps, --epochs, --micro-batch, --recompute and the snapshot options; start a new run (another --out) to change the others');
}

/** The data folders of a run, 'synthetic' generated into <out>/synthetic-data first. */
async function resolveData(data: PretrainOptions['data'], out: string, run: { syntheticRecords: number; seed: number }, log: (m: string) => void): Promise<string[]> {
  const dirs = await splitDataList(data ?? 'synthetic');
  for (let k = 0; k < dirs.length; k++) {
    if (dirs[k] !== 'synthetic') continue;
    const dir = (dirs[k] = join(out, 'synthetic-data'));
    const n = run.syntheticRecords;
    if (!existsSync(join(dir, 'manifest.json'))) log(`generating ${n} synthetic ECGs into ${dir}`);
    await prepare({ source: 'synth', root: '', out: dir, leads: 8, synth: { n, seed: run.seed, fs: 250 }, log: () => {} });
  }
  return dirs;
}

/** `--resume` with a `--data` other than the run's, or with folders that changed since, is refused. */
async function checkResumeData(out: string, given: PretrainOptions['data'], saved: PretrainOptions['data']): Promise<void> {
  const list = async (d: PretrainOptions['data']) => (await splitDataList(d ?? 'synthetic')).map((p) => (p === 'synthetic' ? p : resolve(p)));
  const [a, b] = [await list(given), await list(saved)];
  if (a.length !== b.length || a.some((p, i) => p !== b[i]))
    throw new Error(`--resume: the run in ${out} reads --data ${b.join(',')}, not ${a.join(',')}; resume with the same folders in the same order, or leave --data out`);
}

const fmt = (fs: readonly DataFolder[]) => fs.map((f) => `${f.dir} (${f.records} records, manifest ${f.manifest_sha256.slice(0, 12)})`).join(', ');

function checkSameFolders(out: string, was: readonly DataFolder[], now: readonly DataFolder[]): void {
  if (was.length !== now.length || was.some((f, i) => f.manifest_sha256 !== now[i].manifest_sha256 || f.records !== now[i].records))
    throw new Error(`--resume: the run in ${out} was trained on ${fmt(was)}; the data is now ${fmt(now)}. An exact resume needs the same prepared folders, unchanged, in the same order`);
}

/**
 * The log's view of the teacher on a batch, from one forward pass. `std`: the mean over features of
 * the std across the batch of its mean-pooled representation (collapse guard). `content`: the share
 * of the targets' variance (every token's non-affine LN) that differs between the batch's records,
 * 1 − the share a token's position fixes. The position table is re-added before every block, so at
 * first the targets are nearly all position; a loss can fall far by learning where a token is, and
 * only a rising content share says the targets carry the ECG.
 */
export async function teacherStats(model: EcgJepa, engine: Engine, x: Tensor | readonly Tensor[]): Promise<{ std: number; content: number }> {
  const g = model.tape;
  const parts = Array.isArray(x) ? (x as readonly Tensor[]) : [x as Tensor];
  const squares = (t: Tensor) => ops.sum(g, ops.reshape(g, ops.mul(g, t, t), [t.size]), 0);
  // per micro-batch: its records' mean-pooled representations, Σ target² and Σ over its records of
  // each position's target; the positions' means are taken over the whole batch at the end
  const reps: Float32Array[] = [];
  let total = 0;
  let perPositionSum: Tensor | null = null;
  for (const xi of parts) {
    const [rep, sq, sums] = g.noGrad(() =>
      engine.scope(() => {
        const { out, target } = model.teacherTokens(xi);
        const b = target.shape[0];
        return [ops.mean(g, out, 1), squares(target), ops.sum(g, ops.reshape(g, target, [b, target.size / b]), 0)];
      }),
    );
    reps.push(await engine.read(rep));
    total += (await engine.read(sq))[0];
    const before: Tensor | null = perPositionSum;
    perPositionSum = before ? g.noGrad(() => ops.add(g, before, sums)) : sums;
    [rep, sq, ...(before ? [before, sums] : [])].forEach((v) => v.dispose());
  }
  const B = parts.reduce((n, t) => n + t.shape[0], 0);
  const sumT = perPositionSum!;
  const fixedT = g.noGrad(() => engine.scope(() => ops.scale(g, squares(ops.scale(g, sumT, 1 / B)), B)));
  const fixed = (await engine.read(fixedT))[0];
  [sumT, fixedT].forEach((v) => v.dispose());
  const D = model.cfg.encoder.dim;
  const r = new Float32Array(B * D);
  reps.forEach((v, i) => r.set(v, i * v.length));
  let std = 0;
  for (let d = 0; d < D; d++) {
    let s = 0, s2 = 0;
    for (let b = 0; b < B; b++) {
      s += r[b * D + d];
      s2 += r[b * D + d] ** 2;
    }
    std += Math.sqrt(Math.max(0, s2 / B - (s / B) ** 2));
  }
  return { std: std / D, content: total > 0 ? Math.max(0, 1 - fixed / total) : 0 };
}

/** A new run's config: the preset, the mask's recipe, then the options given. */
function newRunConfig(o: PretrainOptions): EcgJepaConfig {
  const preset = o.preset ?? 'tiny';
  const recipe = o.mask ? maskRecipe(preset, o.mask) : {};
  return makeConfig(preset, { mask: recipe.mask, optim: { batchSize: o.batch ?? recipe.optim?.batchSize, epochs: o.epochs, lr: o.lr ?? recipe.optim?.lr } });
}

/** run.json, or an error naming it (a damaged one is no run to resume). */
function readRunFile(file: string): RunFile {
  let r: Partial<RunFile>;
  try {
    r = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`--resume: ${file} is unreadable (${(e as Error).message})`);
  }
  if (!r || typeof r.options !== 'object' || !r.options || typeof r.config !== 'object' || !r.config)
    throw new Error(`--resume: ${file} holds no run (its options and config are missing)`);
  return r as RunFile;
}

/** A process's exit status after `sig`, as a shell reports a process the signal killed (130, 143):
 *  an interrupted run is not a finished one to `pretrain && finetune` or a job scheduler. */
export function signalExitCode(sig: 'SIGINT' | 'SIGTERM'): number {
  return 128 + (sig === 'SIGINT' ? 2 : 15);
}

/** Pretrains into `opts.out`, holding the folder's lock while it runs (one run per folder). */
export async function pretrain(engine: Engine, opts: PretrainOptions): Promise<PretrainResult> {
  mkdirSync(opts.out, { recursive: true });
  const release = await lockFolder(opts.out, 'pretrain');
  try {
    return await pretrainLocked(engine, opts);
  } finally {
    release();
  }
}

async function pretrainLocked(engine: Engine, opts: PretrainOptions): Promise<PretrainResult> {
  const log = opts.log ?? ((m: string) => console.error(m));
  // what a save killed mid-way left in this run's folders
  for (const dir of [opts.out, join(opts.out, SNAPSHOT_DIR)])
    for (const n of await removeAtomicTemps(dir)) log(`removed ${join(dir, n)}, left by a save that was cut short`);
  const runFile = join(opts.out, 'run.json');
  const [sidecar, ...tensorFiles] = checkpointFiles(join(opts.out, LAST));
  if (opts.resume && opts.restart) throw new Error('--resume continues the run in --out, --restart replaces it: give one');
  if (!opts.resume && !opts.restart && existsSync(sidecar))
    throw new Error(`${opts.out} holds a checkpoint of an earlier run (${sidecar}): continue that run with --resume, or give --restart to replace it (or choose another --out)`);
  // a resume with no checkpoint yet starts over (the run was stopped before its first save); with
  // tensors but no sidecar, the checkpoint was damaged, and starting over would delete them
  const orphans = tensorFiles.filter((f) => existsSync(f));
  if (opts.resume && !existsSync(sidecar) && orphans.length)
    throw new Error(`--resume: ${sidecar} is missing beside the checkpoint tensors ${orphans.join(', ')}: restore it to resume, or start anew with --restart`);
  let o = opts;
  let savedRun: RunFile | undefined;
  /** run.json with a resume's new end, written once the resume is found to match its run. */
  let runFileUpdate: RunFile | undefined;
  if (opts.resume) {
    if (!existsSync(runFile)) throw new Error(`--resume: ${runFile} not found (nothing to resume in ${opts.out})`);
    const saved = (savedRun = readRunFile(runFile));
    if (opts.data !== undefined) await checkResumeData(opts.out, opts.data, saved.options.data);
    checkResumeSettings(opts.out, opts, saved);
    // The saved settings win; only the stopping point, the snapshots, the micro-batch and recompute may change.
    // They are saved (once the checkpoint and the data are found to match) so the next resume keeps them: a plain
    // --resume goes on to the new end, with the schedules a --steps without --epochs spans.
    const changes = {
      steps: opts.steps ?? saved.options.steps, epochs: opts.epochs ?? saved.options.epochs,
      snapshotEveryEpochs: opts.snapshotEveryEpochs ?? saved.options.snapshotEveryEpochs, snapshotDtype: opts.snapshotDtype ?? saved.options.snapshotDtype,
      microBatch: opts.microBatch ?? saved.options.microBatch,
      recompute: opts.recompute ?? saved.options.recompute,
    };
    if ((Object.keys(changes) as (keyof typeof changes)[]).some((k) => changes[k] !== saved.options[k]))
      runFileUpdate = { ...saved, options: { ...saved.options, ...changes } };
    // out: where the run is now (the folder may have moved since run.json was written)
    o = { ...saved.options, ...changes, out: opts.out, resume: true, onLog: opts.onLog, log };
  } else if (listSnapshots(opts.out).length) {
    throw new Error(`${join(opts.out, SNAPSHOT_DIR)} holds encoder snapshots of an earlier run (${listSnapshots(opts.out).join(', ')}); ` +
      'continue that run with --resume, or move them away (or choose another --out) to start a new one');
  }
  // A resume trains with its run's config (batch, LR, schedules, mask as they were, whatever this
  // code's defaults are now); only the epochs may change. A new run builds one from the options.
  const cfg = savedRun
    ? makeConfig(savedRun.config.preset, { ...savedRun.config, optim: { ...savedRun.config.optim, epochs: o.epochs } }) // fields newer than the run: the preset's
    : newRunConfig(o);
  const B = cfg.optim.batchSize;
  const micro = o.microBatch ?? B;
  if (!Number.isInteger(micro) || micro < 1 || B % micro) throw new Error(`--micro-batch ${o.microBatch}: must be a whole number that divides the batch, ${B}`);
  const run = runSettings(o, cfg);
  const dirs = await resolveData(o.data, o.out, run, log);
  // One folder is read exactly as before; several as a union (the same order for one folder).
  const ds: RecordSource = dirs.length === 1 ? await openDataset(dirs[0]) : await openDatasetUnion(dirs);
  try {
    const folders = await describeFolders(ds);
    const itersPerEpoch = ds.batchCount({ batchSize: B, dropLast: true });
    if (itersPerEpoch === 0) throw new Error(`dataset ${ds.dir}: ${ds.size} records, fewer than one batch of ${B}`);
    // With --steps and no --epochs, the schedules span the whole epochs that hold those steps (they end
    // at their floor only when --steps is a whole number of epochs).
    if (o.epochs === undefined && o.steps !== undefined) cfg.optim.epochs = Math.ceil(o.steps / itersPerEpoch);
    const totalSteps = Math.min(o.steps ?? Infinity, itersPerEpoch * cfg.optim.epochs);
    const select = leadSelector(ds, cfg);
    if (micro < B) log(`micro-batches of ${micro}: ${B / micro} forward and backward passes per step of ${B}`);
    if (o.recompute) log('block activations recomputed in the backward, not held');
    const { precision, lossScale } = run;
    const model = new EcgJepa(engine, cfg, { seed: run.seed, itersPerEpoch, precision, lossScale, recompute: o.recompute });
    const logFile = join(opts.out, 'log.jsonl');
    const ckptBase = join(opts.out, LAST);
    const snapEvery = o.snapshotEveryEpochs ?? 0;
    /** The series so far (each checkpoint lists those at or before its step; see train/snapshots.ts). */
    let snapshots: SnapshotRecord[] = [];
    /** Writes the snapshot due at ck's step, if any (kept as it is when already there), and lists it. */
    const snapshot = async (ck: Checkpoint) => {
      const due = snapshotDue(ck.state.step, itersPerEpoch, snapEvery, totalSteps);
      if (!due || snapshots.some((r) => r.name === due.name)) return;
      const r = await writeSnapshot(opts.out, ck, due, o.snapshotDtype);
      snapshots = [...snapshots, due];
      log(`snapshot ${r.base} (epoch ${due.epoch}, step ${due.step})${r.written ? (r.replaced ? ': replaced one made with another schedule or dtype' : '') : ': already written before the restart, kept'}`);
    };
    /** The lowest loss logged so far: a loss 1000× above it stops the run (divergence). */
    let bestScale = Infinity;
    /** The last loss logged (a resume's, until this process logs one). */
    let lastLoss = NaN;
    if (o.resume && existsSync(ckptBase + '.json')) {
      const ck = await loadCheckpoint(ckptBase, { expect: cfg });
      const ckData = ck.state.extra?.data as { folders?: DataFolder[] } | undefined;
      const wasData = ckData?.folders ?? savedRun?.data;
      if (wasData) checkSameFolders(opts.out, wasData, folders);
      if (runFileUpdate) await writeFileAtomic(runFile, JSON.stringify(runFileUpdate, null, 1) + '\n');
      model.fromCheckpoint(ck);
      snapshots = (ck.state.extra?.snapshots as SnapshotRecord[] | undefined) ?? [];
      // one due at the checkpoint's own step is on disk unless snapshots were just turned on
      await snapshot({ ...ck, config: cfg });
      // Log lines past the checkpoint belong to steps that will run again; a line cut short by a
      // crash mid-append is dropped.
      if (existsSync(logFile)) {
        const rows = readFileSync(logFile, 'utf8').split('\n').filter((l) => l);
        const step = (l: string): number => {
          try {
            return JSON.parse(l).step;
          } catch {
            log(`${logFile}: dropping an unreadable line (a write cut short): ${l.slice(0, 80)}`);
            return Infinity;
          }
        };
        const kept = rows.filter((l) => step(l) <= model.step);
        await writeFileAtomic(logFile, kept.map((l) => l + '\n').join(''));
        // the divergence guard's reference, as the uninterrupted run has it at this step
        bestScale = Math.min(Infinity, ...kept.map((l) => JSON.parse(l).loss as number));
        if (kept.length) lastLoss = JSON.parse(kept[kept.length - 1]).loss;
      }
      log(`resumed ${ckptBase} at step ${model.step}`);
      if (model.step >= totalSteps) log(`the run is already at step ${model.step} of ${totalSteps}: nothing to do (give --steps or --epochs past it to go further)`);
    } else {
      // A new run (--restart) in a used folder: the earlier run's checkpoint goes first, so a --resume
      // after a crash before this run's first save cannot continue that run under this run's run.json.
      if (existsSync(ckptBase + '.json')) {
        log(`${opts.out} held a checkpoint of an earlier run: removed for this new run (--restart)`);
        await removeCheckpoint(ckptBase);
      } else if (o.resume) log(`--resume: ${opts.out} holds no checkpoint yet (the run stopped before its first save): starting at step 0`);
      const { onLog: _a, log: _b, resume: _c, ...saved } = o;
      await writeFileAtomic(runFile, JSON.stringify({ options: saved, config: cfg, data: folders } satisfies RunFile, null, 1) + '\n');
      writeFileSync(logFile, '');
      const pc = paramCount(cfg);
      log(`ECG-JEPA ${cfg.preset}: encoder ${pc.encoder.toLocaleString('en-US')} + predictor ${pc.predictor.toLocaleString('en-US')} trainable parameters; ` +
        `${ds.size} records, batch ${B}, ${itersPerEpoch} steps/epoch, ${totalSteps} steps` +
        (precision === 'f16' ? `; mixed precision, ${typeof lossScale === 'number' ? `loss scale ${lossScale}` : 'dynamic loss scale'}` : ''));
      log(`data: ${fmt(folders)}`);
    }
    const { logEvery, checkpointEvery: ckptEvery } = run;
    /** The signal that asked the run to stop (it finishes its step and saves). */
    let signal: 'SIGINT' | 'SIGTERM' | undefined;
    const onSignal = (sig: 'SIGINT' | 'SIGTERM') => {
      if (signal) process.exit(signalExitCode(sig)); // a second Ctrl-C does not wait
      signal = sig;
      log('interrupt: finishing this step and saving (Ctrl-C again to quit without saving)');
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    let finalStep = model.step;
    let inflight: Promise<void> | null = null;
    /** The training state now; the snapshots listed are those written so far. */
    const state = async () => {
      // The data position is the step (epoch = step / itersPerEpoch, batch = the rest) in the
      // seeded order over these folders; they are saved with it, so a resume can check them.
      const step = model.step;
      const data = { folders, records: ds.size, epoch: Math.floor(step / itersPerEpoch), batch: step % itersPerEpoch };
      return model.toCheckpoint({ data, ...(snapshots.length ? { snapshots } : {}) });
    };
    try {
      let t0 = performance.now();
      let samplesSince = 0;
      outer: while (model.step < totalSteps) {
        const epoch = Math.floor(model.step / itersPerEpoch);
        const startBatch = model.step % itersPerEpoch;
        for (const batch of ds.batches({ batchSize: B, seed: run.seed, epoch, startBatch, dropLast: true })) {
          const x = uploadMicroBatches(engine, select(batch.x, B), [B, cfg.leads.length, inputLength(cfg)], micro);
          const lr = model.sched.lr(model.step);
          const momentum = model.sched.momentum(model.step);
          const loss = model.trainStep(x);
          // At most two steps in flight: waiting for the previous one yields to the event loop (Dawn
          // reclaims its upload memory there) and bounds the queue; without it a long stretch of
          // unlogged steps exhausts Dawn and crashes the process.
          const done = engine.device.queue.onSubmittedWorkDone();
          if (inflight) await inflight;
          inflight = done;
          samplesSince += B;
          const step = (finalStep = model.step);
          const snapNow = snapshotDue(step, itersPerEpoch, snapEvery, totalSteps) !== null;
          // a checkpoint or a snapshot is taken only after the loss was read and found sound
          const logNow = step % logEvery === 0 || step === totalSteps || signal !== undefined || step % ckptEvery === 0 || snapNow;
          if (logNow) {
            // the loss scale (and AdamW's count of applied updates) come back with the loss
            const [lossValue, ls] = await Promise.all([engine.read(loss), model.lossScaleState()]);
            lastLoss = lossValue[0];
            const elapsed = (performance.now() - t0) / 1000;
            const teacher = await teacherStats(model, engine, x);
            const row: LogRow = {
              step, epoch, loss: lastLoss, lr, momentum,
              samples_per_s: samplesSince / elapsed,
              teacher_std: teacher.std,
              target_content: teacher.content,
              loss_scale: ls.scale,
              skipped_steps: ls.skipped,
              time: new Date().toISOString(),
            };
            t0 = performance.now();
            samplesSince = 0;
            if (!Number.isFinite(lastLoss) || lastLoss > 1e3 * Math.max(bestScale, 1e-3)) {
              loss.dispose();
              x.forEach((t) => t.dispose());
              const kept = existsSync(ckptBase + '.json')
                ? `the last good checkpoint is ${ckptBase}.json (step ${JSON.parse(readFileSync(ckptBase + '.json', 'utf8')).state.step})`
                : 'no checkpoint had been saved yet';
              throw new TrainingDivergedError(`training diverged at step ${step}: loss ${lastLoss} (best so far ${bestScale}); ${kept}; try a lower --lr`);
            }
            bestScale = Math.min(bestScale, lastLoss);
            appendFileSync(logFile, JSON.stringify(row) + '\n');
            opts.onLog?.(row, totalSteps);
          }
          loss.dispose();
          x.forEach((t) => t.dispose());
          const saveNow = logNow && (step % ckptEvery === 0 || step === totalSteps || signal !== undefined);
          if (snapNow || saveNow) {
            // one read of the weights serves both; the snapshot first, so the checkpoint commits it
            const ck = await state();
            if (snapNow) {
              await snapshot(ck);
              ck.state.extra = { ...ck.state.extra, snapshots };
            }
            if (saveNow) await saveCheckpoint(ckptBase, ck);
          }
          if (signal || step >= totalSteps) break outer;
        }
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      model.dispose();
    }
    return { out: opts.out, checkpoint: ckptBase + '.json', steps: finalStep, lastLoss, stoppedBy: signal ? 'signal' : 'done', ...(signal ? { signal } : {}), snapshots };
  } finally {
    ds.close();
  }
}
