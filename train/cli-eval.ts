// The downstream-evaluation commands of the ecg-jepa CLI (embed, probe, finetune, predict), registered by cli.ts.
import type { Command } from 'commander';
import type { Engine } from '../engine/engine.js';
import { checkEncoderSource, embed, writeEmbeddings, type EncoderSource } from './eval/embed.js';
import { checkTargets, parseSplit, probe, type ProbeTask } from './eval/probe.js';
import { finetune } from './eval/finetune.js';
import { predict, writePredictions } from './eval/predict.js';
import { explain, leadShares, writeExplanation } from './eval/explain.js';
import { encodePng, finetuneMarkdown, markdownReport, reportJson, rocPlot, writeReport } from './eval/report.js';
// Types only: cli-progress (Node streams, readline) must stay out of the browser test bundle, which
// includes this module through the tests; cli.ts passes the real progressBar in.
import type { Progress } from './progress.js';
import { parseLossScale } from '../engine/lossscale.js';
import { list, LOSS_SCALE_HELP, nonNegInt, num, oneOf, posInt, precision } from './cli-args.js';
import { checkpointFiles } from '../model/checkpoint.js';
import { checkOutputs, type Input } from './outputs.js';

export type WithEngine = <T>(fn: (engine: Engine) => Promise<T>) => Promise<T>;
export type ProgressFactory = (label: string, format?: string) => Progress;

/** Without a progress factory: a line on stderr every 5 s. */
const plainProgress: ProgressFactory = (label) => {
  let last = 0;
  return {
    update(done, total) {
      if (Date.now() - last < 5000 && done < total) return;
      last = Date.now();
      console.error(`${label} ${done}/${total}`);
    },
    stop() {},
  };
};
export const RECORDS_BAR = '{bar} {value}/{total} records | ETA {eta_formatted}';
/** probe and finetune --task. */
const probeTask = oneOf<ProbeTask>('multilabel', 'multiclass', 'regression')('--task');
/** What embed, probe and finetune take as --checkpoint: anything holding an encoder. */
const ENCODER_SOURCES = 'pretraining checkpoint, encoder snapshot, export, import-torch output or fine-tuned model (its encoder)';

/**
 * Before a probe or fine-tuning run named `name` writes into `out`: its report and model files are
 * checked against what it reads, then `checks` (what the run would refuse: a bad label, split,
 * checkpoint or preset must not cost the earlier run), then an earlier run's files of that name are
 * removed (with or without a new model), so a run cut short never leaves a model beside another run's
 * report, nor the other way round.
 */
async function clearRun(command: string, out: string, name: string, inputs: Input[], checks: () => Promise<void>): Promise<void> {
  const [path, { existsSync }, { rm }] = await Promise.all([import('node:path'), import('node:fs'), import('node:fs/promises')]);
  const files = [...['.json', '.md', '-roc.png', '-confusion.png'].map((e) => path.join(out, `${name}${e}`)), ...checkpointFiles(path.join(out, `${name}-model`))];
  checkOutputs(command, files, inputs);
  await checks();
  const earlier = files.filter((f) => existsSync(f));
  for (const f of earlier) await rm(f, { force: true });
  if (earlier.length) console.error(`${command}: removed the earlier run's ${earlier.map((f) => path.basename(f)).join(', ')}`);
}

/** What a probe or fine-tuning run would refuse (labels, split, checkpoint, preset), checked up front. */
async function runRefusals(o: Parameters<typeof checkTargets>[0] & EncoderSource): Promise<void> {
  await checkTargets(o);
  await checkEncoderSource(o);
}

function encoderSource(o: { checkpoint?: string; randomInit?: boolean; preset?: string }): void {
  if (!o.checkpoint && !o.randomInit) throw new Error('give --checkpoint, or --random-init (with --preset or --checkpoint for the architecture)');
  if (o.randomInit && !o.checkpoint && !o.preset) throw new Error('--random-init needs --preset or --checkpoint to fix the architecture');
}

export function registerEvalCommands(program: Command, withEngine: WithEngine, progressBar: ProgressFactory = plainProgress): void {
  program
    .command('embed')
    .description('write frozen mean-pooled encoder features of a dataset (.npy [N, D] + .json with ids and labels)')
    .option('--checkpoint <path>', `${ENCODER_SOURCES} (e.g. runs/demo/checkpoint-last)`)
    .option('--random-init', 'random weights with the same architecture (baseline)')
    .option('--preset <name>', 'architecture for --random-init without --checkpoint; with one, the preset it must be')
    .option('--seed <n>', 'random-init seed', '0')
    .requiredOption('--data <dir>', 'prepared dataset folder')
    .requiredOption('--out <path>', 'output base: writes <out>.npy and <out>.json')
    .option('--leads <list>', "lead subset, e.g. II or II,V1 (default: the checkpoint's leads)")
    .option('--batch <n>', 'records per forward pass', '32')
    .action(async (o) => {
      encoderSource(o);
      const out = o.out.replace(/\.(npy|json)$/, '');
      checkOutputs('embed', [o.out, `${out}.npy`, `${out}.json`], [{ data: o.data }, ...(o.checkpoint ? [{ checkpoint: o.checkpoint }] : [])]);
      await withEngine(async (engine) => {
        const bar = progressBar('embed', RECORDS_BAR);
        const e = await embed(engine, {
          checkpoint: o.checkpoint, randomInit: !!o.randomInit, preset: o.preset, seed: nonNegInt('--seed')(o.seed),
          data: o.data, leads: o.leads ? list(o.leads) : undefined, batch: posInt('--batch')(o.batch),
          onProgress: (d, t) => bar.update(d, t),
        });
        bar.stop();
        const f = await writeEmbeddings(o.out, e);
        console.log(`${e.n} records × ${e.dim} features (leads ${e.leads.join(', ')}) → ${f.npy}, ${f.json}`);
      });
    });

  program
    .command('probe')
    .description('linear probe on frozen features (the paper\'s linear evaluation): metrics, markdown, JSON, plots')
    .option('--checkpoint <path>', ENCODER_SOURCES)
    .option('--random-init', 'random weights with the same architecture (baseline)')
    .option('--preset <name>', 'architecture for --random-init without --checkpoint; with one, the preset it must be')
    .option('--seed <n>', 'random-init seed', '0')
    .requiredOption('--data <dir>', 'prepared dataset folder with labels and folds')
    .requiredOption('--task <multilabel|multiclass|regression>', 'probe task', probeTask)
    .requiredOption('--label <field>', 'label field: conditions, hr, qrs_ms, superdiagnostic, ...')
    .option('--leads <list>', 'lead subset, e.g. II or II,V1')
    .option('--split <train/val/test>', 'folds, e.g. 1-8/9/10 (default), 1-9//10 (no validation)', '1-8/9/10')
    .option('--fractions <list>', 'low-shot training fractions, e.g. 0.01,0.1')
    .option('--seeds <list>', 'low-shot seeds', '0,1,2')
    .option('--epochs <n>', 'head epochs', '10')
    .option('--lr <x>', 'head learning rate', '0.01')
    .option('--batch <n>', 'head batch size', '16')
    .option('--regression-loss <mse|l1>', 'regression loss', oneOf('mse', 'l1')('--regression-loss'), 'mse')
    .option('--no-standardize', "feed raw features to the head (the reference's exact protocol; default: standardise with training statistics)")
    .option('--bootstrap <n>', 'bootstrap resamples for the 95% CIs (0: none)', '1000')
    .option('--out <dir>', 'report folder', 'runs/eval')
    .option('--name <name>', 'report file name (default <task>-<label>[-<leads>])')
    .option('--save', 'also write the encoder with the trained head as <out>/<name>-model, a model predict and explain take')
    .action(async (o) => {
      encoderSource(o);
      const task: ProbeTask = o.task;
      const leads = o.leads ? list(o.leads) : undefined;
      const name = o.name ?? [task, o.label.replace(/[^\w.-]+/g, '_'), ...(leads ? [leads.join('+')] : []), ...(o.randomInit ? ['random'] : [])].join('-');
      const options = {
        save: o.save ? (await import('node:path')).join(o.out, `${name}-model`) : undefined,
        checkpoint: o.checkpoint, randomInit: !!o.randomInit, preset: o.preset, seed: nonNegInt('--seed')(o.seed), leads, data: o.data,
        task, label: o.label, split: parseSplit(o.split),
        fractions: o.fractions ? list(o.fractions).map(num('--fractions')) : undefined,
        seeds: list(o.seeds).map(nonNegInt('--seeds')),
        head: { epochs: posInt('--epochs')(o.epochs), lr: num('--lr')(o.lr), batch: posInt('--batch')(o.batch), regressionLoss: o.regressionLoss, standardize: o.standardize !== false },
        bootstrap: nonNegInt('--bootstrap')(o.bootstrap),
      };
      await clearRun('probe', o.out, name, [{ data: o.data }, ...(o.checkpoint ? [{ checkpoint: o.checkpoint }] : [])], () => runRefusals(options));
      await withEngine(async (engine) => {
        const bar = progressBar('embed', RECORDS_BAR);
        const r = await probe(engine, { ...options, onProgress: (d, t) => bar.update(d, t) });
        bar.stop();
        const files = await writeReport(o.out, name, r);
        console.log(markdownReport(r));
        for (const n of r.notes) if (/no positive|no negative|dropped/.test(n)) console.error(`warning: ${n}`);
        console.log(`wrote ${files.join(', ')}`);
        if (r.saved) console.log(`model (frozen encoder + this head): ${r.saved.tensors}, ${r.saved.meta}`);
      });
    });

  program
    .command('finetune')
    .description('fine-tune the encoder and a linear head end to end (band-pass, augmentation, best epoch on validation)')
    .option('--checkpoint <path>', ENCODER_SOURCES)
    .option('--random-init', 'random weights with the same architecture (supervised from scratch)')
    .option('--preset <name>', 'architecture for --random-init without --checkpoint; with one, the preset it must be')
    .requiredOption('--data <dir>', 'prepared dataset folder with labels and folds')
    .requiredOption('--task <multilabel|multiclass|regression>', 'task', probeTask)
    .requiredOption('--label <field>', 'label field: conditions, hr, superdiagnostic, ...')
    .option('--leads <list>', 'lead subset, e.g. II or II,V1')
    .option('--split <train/val/test>', 'folds, e.g. 1-8/9/10 (default)', '1-8/9/10')
    .option('--epochs <n>', 'epochs', '10')
    .option('--batch <n>', 'batch size', '16')
    .option('--lr <x>', 'peak learning rate (default 1e-4 · batch / 256)')
    .option('--warmup-epochs <n>', 'linear warm-up epochs', '3')
    .option('--no-bandpass', 'skip the 0.67–40 Hz band-pass')
    .option('--no-augment', 'skip RandAugment')
    .option('--no-standardize', "feed the pooled features to the head as they are (the reference's head; default: standardise with training statistics)")
    .option('--seed <n>', 'seed for data order, head init and augmentation', '0')
    .option('--precision <f32|f16>', "encoder matmul inputs: f16 = mixed precision, as the reference's AMP (needs shader-f16; the saved model stays f32)", precision, 'f32')
    .option('--loss-scale <dynamic|x>', LOSS_SCALE_HELP)
    .option('--recompute', 'recompute the encoder\'s block activations in the backward instead of holding them (less memory, one more forward of the blocks a step, the same training bit for bit)')
    .option('--bootstrap <n>', 'bootstrap resamples for the 95% CIs (0: none)', '1000')
    .option('--out <dir>', 'folder for the report and the model (<name>-model.json and its tensors: best epoch\'s encoder + head)', 'runs/eval')
    .option('--name <name>', 'report file name (default finetune-<task>-<label>[-<leads>])')
    .option('--no-save', 'do not write the fine-tuned model')
    .action(async (o) => {
      encoderSource(o);
      const task: ProbeTask = o.task;
      const leads = o.leads ? list(o.leads) : undefined;
      const lossScale = o.lossScale === undefined ? undefined : parseLossScale(o.lossScale);
      const name = o.name ?? ['finetune', task, o.label.replace(/[^\w.-]+/g, '_'), ...(leads ? [leads.join('+')] : []), ...(o.randomInit ? ['random'] : [])].join('-');
      const path = await import('node:path');
      const options = {
        checkpoint: o.checkpoint, randomInit: !!o.randomInit, preset: o.preset, leads, data: o.data, task, label: o.label, split: parseSplit(o.split),
        epochs: posInt('--epochs')(o.epochs), batch: posInt('--batch')(o.batch), lr: o.lr === undefined ? undefined : num('--lr')(o.lr),
        warmupEpochs: num('--warmup-epochs')(o.warmupEpochs), bandpass: o.bandpass === false ? null : undefined, augment: o.augment === false ? (false as const) : undefined,
        standardize: o.standardize !== false,
        seed: nonNegInt('--seed')(o.seed), bootstrap: nonNegInt('--bootstrap')(o.bootstrap),
        precision: o.precision, lossScale, recompute: !!o.recompute,
        save: o.save === false ? undefined : path.join(o.out, `${name}-model`),
      };
      await clearRun('finetune', o.out, name, [{ data: o.data }, ...(o.checkpoint ? [{ checkpoint: o.checkpoint }] : [])], () => runRefusals(options));
      await withEngine(async (engine) => {
        const r = await finetune(engine, {
          ...options,
          onEpoch: (h) =>
            console.error(`epoch ${h.epoch}: train loss ${h.trainLoss.toPrecision(4)}, validation ${h.val?.toFixed(4) ?? '—'}, test ${h.test?.toFixed(4) ?? '—'}` +
              (o.precision === 'f16' || lossScale !== undefined ? `, loss scale ${h.lossScale}, ${h.skippedSteps} steps skipped` : '')),
        });
        const { writeFileAtomic } = await import('../model/checkpoint.js');
        const md = finetuneMarkdown(r);
        // Per-record test outputs stay out of the report (predict writes them for any dataset).
        await writeFileAtomic(path.join(o.out, `${name}.json`), reportJson({ ...r, testPredictions: undefined }));
        await writeFileAtomic(path.join(o.out, `${name}.md`), md);
        if (r.curves && r.test.kind === 'classification') await writeFileAtomic(path.join(o.out, `${name}-roc.png`), await encodePng(rocPlot(r.curves, r.classes, r.test.auc.perClass)));
        console.log(md);
        console.log(`wrote ${[`${name}.json`, `${name}.md`, ...(r.curves ? [`${name}-roc.png`] : [])].map((f) => path.join(o.out, f)).join(', ')}`);
        if (r.saved) console.log(`model (epoch ${r.bestEpoch}): ${r.saved.tensors}, ${r.saved.meta}`);
      });
    });

  program
    .command('predict')
    .description('per-record outputs of a fine-tuned model: probabilities (classification) or values (regression)')
    .requiredOption('--checkpoint <path>', 'model with a head: written by finetune or probe --save (e.g. runs/eval/finetune-multilabel-conditions-model)')
    .requiredOption('--data <dir>', 'prepared dataset folder')
    .requiredOption('--out <file>', 'output file: .json, else CSV (id, then one column per class)')
    .option('--batch <n>', 'records per forward pass', '32')
    .option('--decisions', "also the classes called per record (CSV column 'positive'): the most probable (multi-class), or those at or above the thresholds tuned on validation (multi-label; 0.5 without)")
    .action(async (o) => {
      checkOutputs('predict', [o.out], [{ checkpoint: o.checkpoint }, { data: o.data }]);
      await withEngine(async (engine) => {
        const bar = progressBar('predict', RECORDS_BAR);
        const p = await predict(engine, { checkpoint: o.checkpoint, data: o.data, batch: posInt('--batch')(o.batch), decisions: !!o.decisions, onProgress: (d, t) => bar.update(d, t) });
        bar.stop();
        const file = await writePredictions(o.out, p);
        console.log(`${p.ids.length} records × ${p.classes.length} ${p.task === 'regression' ? 'values' : 'probabilities'} (${p.task} '${p.label}') → ${file}` +
          (p.thresholdsFrom ? `; classes called at thresholds ${p.thresholdsFrom === 'validation' ? 'tuned on validation (0.5 for a class without positives there)' : 'of 0.5 (the model has no tuned ones)'}` : '') +
          (p.task === 'multiclass' && p.positive ? '; the most probable class called' : ''));
      });
    });

  program
    .command('explain')
    .description("which leads and moments a fine-tuned model's output rests on: integrated gradients per input sample (JSON, .npy, a plot per record)")
    .requiredOption('--checkpoint <path>', 'model with a head: written by finetune or probe --save (e.g. runs/eval/finetune-multilabel-conditions-model)')
    .requiredOption('--data <dir>', 'prepared dataset folder')
    .requiredOption('--out <dir>', 'folder for explain.json, attribution.npy and the plots')
    .option('--ids <list>', 'record ids to explain (default: the first --limit records)', list)
    .option('--limit <n>', 'records to explain without --ids (default 8)')
    .option('--target <class|predicted>', 'the output explained: a class, or the most probable one (regression: its value)', 'predicted')
    .option('--steps <n>', 'integration steps: more bring the attributions\' sum closer to f(x) − f(0)', '32')
    .option('--batch <n>', 'inputs per forward/backward pass', '32')
    .option('--no-png', 'skip the per-record plots')
    .action(async (o) => {
      const out = o.out.replace(/[\\/]+$/, '');
      const { existsSync, statSync } = await import('node:fs');
      if (existsSync(out) && !statSync(out).isDirectory()) throw new Error(`explain: --out ${out} is a file; give a folder`);
      checkOutputs('explain', ['explain.json', 'attribution.npy', 'input.npy'].map((f) => `${out}/${f}`), [{ checkpoint: o.checkpoint }, { data: o.data }]);
      const steps = posInt('--steps')(o.steps), batch = posInt('--batch')(o.batch);
      if (o.ids && o.limit !== undefined) throw new Error('explain: give --ids or --limit, not both');
      const { readManifest } = await import('./data/dataset.js');
      const records = (await readManifest(o.data)).records;
      let subset: number[];
      if (o.ids) {
        const ids = o.ids as string[];
        const twice = ids.find((id, i) => ids.indexOf(id) !== i);
        if (twice !== undefined) throw new Error(`explain: --ids names ${twice} twice`);
        const at = new Map(records.map((r, i) => [r.id, i]));
        const missing = ids.filter((id) => !at.has(id));
        if (missing.length) throw new Error(`explain: no record ${missing.slice(0, 5).join(', ')} in ${o.data}`);
        subset = ids.map((id) => at.get(id)!);
      } else subset = Array.from({ length: Math.min(o.limit === undefined ? 8 : posInt('--limit')(o.limit), records.length) }, (_, i) => i);
      await withEngine(async (engine) => {
        const bar = progressBar('explain', RECORDS_BAR);
        const e = await explain(engine, { checkpoint: o.checkpoint, data: o.data, subset, target: o.target, steps, batch, onProgress: (d, t) => bar.update(d, t) });
        bar.stop();
        const files = await writeExplanation(out, e, { png: o.png });
        const worst = Math.max(...e.records.map((r) => Math.abs(r.delta) / Math.max(Math.abs(r.value - r.baseline), 1e-12)));
        console.log(`${e.records.length} of ${records.length} records explained (${e.task} '${e.label}', ${e.steps} step${e.steps === 1 ? '' : 's'}; the sums miss f(x) − f(0) by at most ${(100 * worst).toFixed(1)} %) → ${files.length} files in ${out}`);
        for (const r of e.records) {
          const top = leadShares(e, r).map((s, c) => [e.leads[c], s] as const).sort((a, b) => b[1] - a[1]).slice(0, 3);
          console.log(`  ${r.id}: ${r.target} ${r.output.toFixed(3)}; leads ${top.map(([l, s]) => `${l} ${Math.round(100 * s)}%`).join(', ')}`);
        }
      });
    });
}
