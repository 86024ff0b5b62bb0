// Headless ECG-JEPA pretraining: a prepared dataset (or the synthetic generator) in, checkpoints
// and a JSONL log out. Resumes exactly (weights, optimizer moments, PRNG, data position); SIGINT
// finishes the current step and saves; a NaN or exploding loss stops the run and keeps the last
// good checkpoint. Node only.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Engine } from '../engine/engine.js';
import type { LossScaleOption } from '../engine/lossscale.js';
import type { Precision } from '../engine/ops/linear.js';
import { inputLength, makeConfig, paramCount, type EcgJepaConfig, type MaskType } from '../model/config.js';
import { loadCheckpoint, saveCheckpoint, writeFileAtomic } from '../model/checkpoint.js';
import { EcgJepa } from '../model/jepa.js';
import { openDataset } from './data/dataset.js';
import { prepare } from './data/prepare.js';
import { leadSelector } from './data/select.js';

export interface PretrainOptions {
  /** A prepared dataset folder, or 'synthetic' (generated into <out>/synthetic-data first). */
  data: string;
  out: string;
  preset: string;
  mask?: MaskType;
  batch?: number;
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
  resume?: boolean;
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
}

/** Saved next to the checkpoints so `--resume` continues with the same settings. */
interface RunFile {
  options: Omit<PretrainOptions, 'onLog' | 'log' | 'resume'>;
  config: EcgJepaConfig;
}

export class TrainingDivergedError extends Error {}

const LAST = 'checkpoint-last';

async function resolveData(o: PretrainOptions, log: (m: string) => void): Promise<string> {
  if (o.data !== 'synthetic') return o.data;
  const dir = join(o.out, 'synthetic-data');
  const n = o.syntheticRecords ?? 512;
  if (!existsSync(join(dir, 'manifest.json'))) log(`generating ${n} synthetic ECGs into ${dir}`);
  await prepare({ source: 'synth', root: '', out: dir, leads: 8, synth: { n, seed: o.seed ?? 0, fs: 250 }, log: () => {} });
  return dir;
}

/** Mean over features of the std across the batch of the teacher's mean-pooled representation. */
async function teacherStd(model: EcgJepa, engine: Engine, x: import('../engine/tensor.js').Tensor): Promise<number> {
  const rep = model.tape.noGrad(() => engine.scope(() => model.teacher.representation(model.tape, x)));
  const r = await engine.read(rep);
  rep.dispose();
  const [B, D] = rep.shape;
  let total = 0;
  for (let d = 0; d < D; d++) {
    let s = 0, s2 = 0;
    for (let b = 0; b < B; b++) {
      s += r[b * D + d];
      s2 += r[b * D + d] ** 2;
    }
    total += Math.sqrt(Math.max(0, s2 / B - (s / B) ** 2));
  }
  return total / D;
}

export async function pretrain(engine: Engine, opts: PretrainOptions): Promise<PretrainResult> {
  const log = opts.log ?? ((m: string) => console.error(m));
  mkdirSync(opts.out, { recursive: true });
  const runFile = join(opts.out, 'run.json');
  let o = opts;
  if (opts.resume) {
    if (!existsSync(runFile)) throw new Error(`--resume: ${runFile} not found (nothing to resume in ${opts.out})`);
    const saved = JSON.parse(readFileSync(runFile, 'utf8')) as RunFile;
    // The saved settings win; only the stopping point may move.
    o = { ...saved.options, steps: opts.steps ?? saved.options.steps, epochs: opts.epochs ?? saved.options.epochs, resume: true, onLog: opts.onLog, log };
  }
  const cfg = makeConfig(o.preset, {
    mask: o.mask ? { type: o.mask, ...(o.mask === 'random' ? { ratio: [0.6, 0.7] as [number, number], blocks: 1 } : {}) } : undefined,
    optim: { batchSize: o.batch, epochs: o.epochs, lr: o.lr },
  });
  const B = cfg.optim.batchSize;
  const ds = await openDataset(await resolveData(o, log));
  try {
    const itersPerEpoch = ds.batchCount({ batchSize: B, dropLast: true });
    if (itersPerEpoch === 0) throw new Error(`dataset ${ds.dir}: ${ds.size} records, fewer than one batch of ${B}`);
    // With --steps and no --epochs, the schedules span exactly the steps asked for.
    if (o.epochs === undefined && o.steps !== undefined) cfg.optim.epochs = Math.ceil(o.steps / itersPerEpoch);
    const totalSteps = Math.min(o.steps ?? Infinity, itersPerEpoch * cfg.optim.epochs);
    const select = leadSelector(ds, cfg);
    const precision = o.precision ?? 'f32';
    const lossScale = o.lossScale ?? (precision === 'f16' ? 'dynamic' : 1);
    const model = new EcgJepa(engine, cfg, { seed: o.seed ?? 0, itersPerEpoch, precision, lossScale });
    const logFile = join(opts.out, 'log.jsonl');
    const ckptBase = join(opts.out, LAST);
    if (o.resume && existsSync(ckptBase + '.json')) {
      const ck = await loadCheckpoint(ckptBase, { expect: cfg });
      model.fromCheckpoint(ck);
      // Log lines past the checkpoint belong to steps that will run again.
      if (existsSync(logFile)) {
        const kept = readFileSync(logFile, 'utf8').split('\n').filter((l) => l && JSON.parse(l).step <= model.step);
        writeFileSync(logFile, kept.map((l) => l + '\n').join(''));
      }
      log(`resumed ${ckptBase} at step ${model.step}`);
    } else {
      const { onLog: _a, log: _b, resume: _c, ...saved } = o;
      await writeFileAtomic(runFile, JSON.stringify({ options: saved, config: cfg } satisfies RunFile, null, 1) + '\n');
      writeFileSync(logFile, '');
      const pc = paramCount(cfg);
      log(`ECG-JEPA ${cfg.preset}: encoder ${pc.encoder.toLocaleString('en-US')} + predictor ${pc.predictor.toLocaleString('en-US')} trainable parameters; ` +
        `${ds.size} records, batch ${B}, ${itersPerEpoch} steps/epoch, ${totalSteps} steps` +
        (precision === 'f16' ? `; mixed precision, ${typeof lossScale === 'number' ? `loss scale ${lossScale}` : 'dynamic loss scale'}` : ''));
    }
    const logEvery = o.logEvery ?? 10;
    const ckptEvery = o.checkpointEvery ?? 200;
    let stop: 'signal' | null = null;
    const onSignal = () => {
      if (stop) process.exit(130); // a second Ctrl-C does not wait
      stop = 'signal';
      log('interrupt: finishing this step and saving (Ctrl-C again to quit without saving)');
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    let lastLoss = NaN;
    let finalStep = model.step;
    let inflight: Promise<void> | null = null;
    let bestScale = Infinity;
    const save = async () => {
      await saveCheckpoint(ckptBase, await model.toCheckpoint());
    };
    try {
      let t0 = performance.now();
      let samplesSince = 0;
      outer: while (model.step < totalSteps) {
        const epoch = Math.floor(model.step / itersPerEpoch);
        const startBatch = model.step % itersPerEpoch;
        for (const batch of ds.batches({ batchSize: B, seed: o.seed ?? 0, epoch, startBatch, dropLast: true })) {
          const x = engine.upload(select(batch.x, B), [B, cfg.leads.length, inputLength(cfg)]);
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
          const logNow = step % logEvery === 0 || step === totalSteps || stop !== null || step % ckptEvery === 0;
          if (logNow) {
            // the loss scale (and AdamW's count of applied updates) come back with the loss
            const [lossValue, ls] = await Promise.all([engine.read(loss), model.lossScaleState()]);
            lastLoss = lossValue[0];
            const elapsed = (performance.now() - t0) / 1000;
            const row: LogRow = {
              step, epoch, loss: lastLoss, lr, momentum,
              samples_per_s: samplesSince / elapsed,
              teacher_std: await teacherStd(model, engine, x),
              loss_scale: ls.scale,
              skipped_steps: ls.skipped,
              time: new Date().toISOString(),
            };
            t0 = performance.now();
            samplesSince = 0;
            if (!Number.isFinite(lastLoss) || lastLoss > 1e3 * Math.max(bestScale, 1e-3)) {
              loss.dispose();
              x.dispose();
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
          x.dispose();
          if (logNow && (step % ckptEvery === 0 || step === totalSteps || stop)) await save();
          if (stop || step >= totalSteps) break outer;
        }
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      model.dispose();
    }
    return { out: opts.out, checkpoint: ckptBase + '.json', steps: finalStep, lastLoss, stoppedBy: stop ?? 'done' };
  } finally {
    ds.close();
  }
}
