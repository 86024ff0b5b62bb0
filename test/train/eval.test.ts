// Downstream evaluation as it is meant to be used: synthetic labelled ECGs, a briefly pretrained
// tiny model, and linear probes of its frozen features against the same architecture with random
// weights (the weights pretraining started from). Also reduced-lead probes from the same
// checkpoint, fine-tuning (saved model reloaded by predict and embed; f16 mixed precision with
// loss scaling against f32), the embed/probe/finetune/predict CLI commands and the errors for bad
// inputs. Node only.
import { assert, getEngine, isBrowser } from '../helpers.js';
import { nodeMods as mods, runCli as cli } from './cli.js';

// The smallest setting that won reliably: with 600 records and this split, 60 pretraining steps
// beat random weights for all 7 seeds tried (macro AUC +0.026 to +0.055); 30 steps won 4 of 4 by
// +0.023 to +0.052.
const RECORDS = 600;
const SPLIT = '1-5/6/7-10';
const PRETRAIN = { steps: 60, batch: 16, lr: 1e-3, seed: 0 };

if (!isBrowser)
  describe('eval: downstream on synthetic ECGs (tiny preset)', function () {
    this.timeout(900_000);
    let tmp = '';
    let data = '';
    let ckpt = '';
    const evalMods = async () => {
      const [embed, probe, report] = await Promise.all([import('../../train/eval/embed.js'), import('../../train/eval/probe.js'), import('../../train/eval/report.js')]);
      return { ...embed, ...probe, ...report };
    };
    const summary: string[] = [];
    const expectError = async (f: () => Promise<unknown>, re: RegExp) => {
      let msg = '';
      try {
        await f();
      } catch (e) {
        msg = (e as Error).message;
      }
      assert(re.test(msg), `expected an error matching ${re}, got '${msg}'`);
    };

    before(async () => {
      const { fs, path, os } = await mods();
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-'));
      data = path.join(tmp, 'data');
      const { prepare } = await import('../../train/data/prepare.js');
      const { pretrain } = await import('../../train/pretrain.js');
      await prepare({ source: 'synth', root: '', out: data, leads: 8, synth: { n: RECORDS, seed: 1, fs: 250 }, workers: 0, log: () => {} });
      const engine = await getEngine();
      // Read the loss back every 20 steps: hundreds of submits with no readback crashed Dawn/lavapipe.
      const r = await pretrain(engine, { data, out: path.join(tmp, 'run'), preset: 'tiny', ...PRETRAIN, logEvery: 20, checkpointEvery: 1_000_000, log: () => {} });
      assert(r.steps === PRETRAIN.steps && Number.isFinite(r.lastLoss), `pretraining ran ${r.steps} steps, loss ${r.lastLoss}`);
      ckpt = path.join(tmp, 'run', 'checkpoint-last');
    });
    after(async () => {
      const { fs } = await mods();
      if (summary.length) console.log(summary.join('\n'));
      if (tmp && !process.env.ECG_KEEP_EVAL) fs.rmSync(tmp, { recursive: true, force: true });
      else if (tmp) console.log(`eval test files kept in ${tmp}`);
    });

    it('pretrained features beat random weights on multi-label conditions; heart-rate MAE reported', async () => {
      const m = await evalMods();
      const { path } = await mods();
      const engine = await getEngine();
      const split = m.parseSplit(SPLIT);
      const pre = await m.embed(engine, { checkpoint: ckpt, data });
      const rnd = await m.embed(engine, { checkpoint: ckpt, randomInit: true, seed: PRETRAIN.seed, data });
      assert(pre.n === RECORDS && pre.dim === 32 && rnd.dim === 32 && pre.leads.join() === 'I,II,V1', `shapes ${pre.n}×${pre.dim}, leads ${pre.leads}`);
      assert(pre.step === PRETRAIN.steps && rnd.step === null && rnd.randomInit, 'sources recorded');
      const o = { split, bootstrap: 500 };
      const ml = (e: typeof pre) => m.probeFeatures(e.features, e.dim, e, { ...o, task: 'multilabel', label: 'conditions' });
      const hr = (e: typeof pre) => m.probeFeatures(e.features, e.dim, e, { ...o, task: 'regression', label: 'hr' });
      const [pm, rm, ph, rh] = [ml(pre), ml(rnd), hr(pre), hr(rnd)];
      assert(pm.test.kind === 'classification' && rm.test.kind === 'classification' && ph.test.kind === 'regression' && rh.test.kind === 'regression', 'kinds');
      const table = m.comparisonTable([
        { name: `pretrained (${PRETRAIN.steps} steps)`, result: pm },
        { name: 'random weights', result: rm },
        { name: `pretrained (${PRETRAIN.steps} steps)`, result: ph },
        { name: 'random weights', result: rh },
      ]);
      await m.writeReport(path.join(tmp, 'reports'), 'pretrained-conditions', pm);
      await m.writeReport(path.join(tmp, 'reports'), 'random-conditions', rm);
      summary.push(`\nLinear probes, synthetic ${RECORDS} records, split ${SPLIT}:\n${table}` +
        `(heart rate on test: mean ${ph.test.targetMean.toFixed(1)}, std ${ph.test.targetStd.toFixed(1)} bpm; predicting the training mean gives MAE ${ph.test.maeOfMean.toFixed(2)})`);
      const a = pm.test.auc.macro!, b = rm.test.auc.macro!;
      assert(a > b, `pretrained macro AUC ${a.toFixed(4)} must beat random weights ${b.toFixed(4)}\n${table}`);
      assert(Number.isFinite(ph.test.mae) && ph.test.maeCi !== null, `heart-rate MAE ${ph.test.mae}`);
    });

    it('reduced leads (II; II + V1) from the same checkpoint', async () => {
      const m = await evalMods();
      const engine = await getEngine();
      const split = m.parseSplit(SPLIT);
      const full = await m.embed(engine, { checkpoint: ckpt, data, subset: [0, 1, 2, 3] });
      const rows: { name: string; result: ReturnType<typeof m.probeFeatures> }[] = [];
      for (const leads of [['II'], ['II', 'V1']]) {
        const e = await m.embed(engine, { checkpoint: ckpt, data, leads });
        assert(e.leads.join() === leads.join() && e.dim === 32 && e.n === RECORDS, `leads ${e.leads}`);
        // Fewer tokens and another CroPA pattern: not the 3-lead features.
        let diff = 0;
        for (let i = 0; i < 4 * 32; i++) diff = Math.max(diff, Math.abs(e.features[i] - full.features[i]));
        assert(diff > 1e-4, `lead subset ${leads} gives the 3-lead features`);
        const r = m.probeFeatures(e.features, e.dim, e, { split, bootstrap: 200, task: 'multilabel', label: 'conditions' });
        assert(r.test.kind === 'classification' && r.test.auc.macro !== null, 'macro AUC defined');
        rows.push({ name: `pretrained, leads ${leads.join('+')}`, result: r });
      }
      summary.push(`\nReduced leads:\n${m.comparisonTable(rows)}`);
    });

    it('CLI: embed writes .npy + .json, probe writes JSON, markdown and plots', async () => {
      const { fs, path } = await mods();
      const { parseNpy } = await import('../../train/data/npy.js');
      const out = path.join(tmp, 'cli');
      await cli(['embed', '--checkpoint', ckpt, '--data', data, '--out', path.join(out, 'feat'), '--leads', 'II,V1']);
      const arr = parseNpy(new Uint8Array(fs.readFileSync(path.join(out, 'feat.npy'))));
      const meta = JSON.parse(fs.readFileSync(path.join(out, 'feat.json'), 'utf8'));
      assert(JSON.stringify(arr.shape) === `[${RECORDS},32]` && arr.data instanceof Float32Array, `npy shape ${arr.shape}`);
      assert(meta.ids.length === RECORDS && meta.ids[0] === 'synth-1-0' && meta.labels[0].conditions && meta.leads.join() === 'II,V1' && meta.step === PRETRAIN.steps, 'json sidecar');
      const md = await cli(['probe', '--random-init', '--preset', 'tiny', '--data', data, '--task', 'multiclass', '--label', 'conditions', '--split', SPLIT, '--bootstrap', '0', '--out', out]);
      assert(/\| test \| \d+ \| 0\.\d{3} \|/.test(md), `markdown table printed:\n${md}`);
      for (const f of ['multiclass-conditions-random.json', 'multiclass-conditions-random.md', 'multiclass-conditions-random-roc.png', 'multiclass-conditions-random-confusion.png'])
        assert(fs.existsSync(path.join(out, f)), `${f} written`);
      const png = fs.readFileSync(path.join(out, 'multiclass-conditions-random-roc.png'));
      assert(png.subarray(1, 4).toString() === 'PNG', 'a PNG file');
      const j = JSON.parse(fs.readFileSync(path.join(out, 'multiclass-conditions-random.json'), 'utf8'));
      assert(j.source.randomInit === true && j.test.confusion.length === 12, 'report JSON');
    });

    it('fine-tunes encoder + head end to end; reports the epoch best on validation', async () => {
      const { path, fs } = await mods();
      const engine = await getEngine();
      const { finetune } = await import('../../train/eval/finetune.js');
      const { parseSplit } = await import('../../train/eval/probe.js');
      const { finetuneMarkdown, fmt } = await import('../../train/eval/report.js');
      // Encoder lr 1e-4 with the head at 1e-2 (a fresh head next to a pretrained encoder); band-pass and
      // RandAugment on, as in the reference; few steps per epoch to stay inside the test budget.
      const r = await finetune(engine, {
        checkpoint: ckpt, data, task: 'multilabel', label: 'conditions', split: parseSplit(SPLIT),
        epochs: 2, warmupEpochs: 1, lr: 1e-4, headLr: 1e-2, maxStepsPerEpoch: 10, bootstrap: 200,
      });
      assert(r.history.length === 2 && r.history.every((h) => Number.isFinite(h.trainLoss) && h.val !== null && h.test !== null), JSON.stringify(r.history));
      assert(r.history[1].trainLoss < r.history[0].trainLoss, `training loss falls: ${r.history.map((h) => h.trainLoss)}`);
      const best = r.history.reduce((a, h) => (h.val! > a.val! ? h : a));
      assert(r.bestEpoch === best.epoch, `best epoch ${r.bestEpoch}, validation ${r.history.map((h) => h.val)}`);
      assert(r.test.kind === 'classification' && Math.abs(r.test.auc.macro! - best.test!) < 1e-12 && r.test.auc.ci, 'the reported test metrics are the chosen epoch\'s');
      const md = finetuneMarkdown(r);
      assert(md.includes(`- Reported: epoch ${r.bestEpoch} (best validation macro AUC)`), md);
      // without validation folds, the last epoch (and the report says so)
      const noVal = finetuneMarkdown({ ...r, bestEpoch: 2, split: { ...r.split, val: [], sizes: { ...r.split.sizes, val: 0 } } });
      assert(noVal.includes('- Reported: epoch 2 (the last epoch: no validation folds)'), noVal);
      const bestTest = r.history.reduce((a, h) => (h.test! > a.test! ? h : a));
      assert(md.includes(`as the reference logs it (picked on the test set itself, so optimistic): ${fmt(bestTest.test)} (epoch ${bestTest.epoch}).`), `best test over epochs:\n${md}`);
      // F1 at thresholds tuned on the chosen epoch's validation outputs, as the probe reports it
      const tuned = r.test.kind === 'classification' ? r.test.f1Tuned : undefined;
      assert(tuned && tuned.thresholds.length === r.classes.length && tuned.macro !== null && md.includes(`(at thresholds tuned on validation: ${fmt(tuned.macro)})`), `tuned F1: ${JSON.stringify(tuned)}\n${md}`);
      fs.mkdirSync(path.join(tmp, 'reports'), { recursive: true });
      fs.writeFileSync(path.join(tmp, 'reports', 'finetune.md'), md);
      summary.push(`\nFine-tuning (2 epochs × 10 steps; encoder lr 1e-4, head 1e-2): ${r.history.map((h) => `epoch ${h.epoch} val ${h.val!.toFixed(3)} test ${h.test!.toFixed(3)}`).join('; ')}; chosen epoch ${r.bestEpoch}`);
    });

    it('fine-tuned model saved (best epoch, atomically) and reloaded: predict gives the in-memory outputs, embed its encoder', async () => {
      const { fs, path } = await mods();
      const m = await evalMods();
      const engine = await getEngine();
      const { finetune } = await import('../../train/eval/finetune.js');
      const { predict, loadFinetuned } = await import('../../train/eval/predict.js');
      const dir = path.join(tmp, 'ft-model');
      const save = path.join(dir, 'hr');
      // Regression: the target scaling is folded into the saved head too. A lead subset: the saved config's leads.
      const r = await finetune(engine, {
        checkpoint: ckpt, data, task: 'regression', label: 'hr', split: m.parseSplit(SPLIT), leads: ['II', 'V1'],
        epochs: 2, warmupEpochs: 1, lr: 1e-4, headLr: 1e-2, maxStepsPerEpoch: 3, bootstrap: 0, save,
        // Before epoch 2's save: epoch 1's model is on disk, whole (both files, no temp file).
        onEpoch: (h) => {
          if (h.epoch !== 2) return;
          const files = fs.readdirSync(dir).sort().join();
          const epoch = JSON.parse(fs.readFileSync(`${save}.json`, 'utf8')).state.epoch;
          assert(files === 'hr.json,hr.safetensors' && epoch === 1, `after epoch 1: ${files}, epoch ${epoch}`);
        },
      });
      // a second save (a better epoch 2) goes to the other tensor file name and removes the first
      const committed = JSON.parse(fs.readFileSync(`${save}.json`, 'utf8')).tensors;
      assert(r.saved?.meta === `${save}.json` && fs.readdirSync(dir).sort().join() === ['hr.json', committed].sort().join(), `files (no temp files): ${fs.readdirSync(dir)}`);
      const meta = JSON.parse(fs.readFileSync(r.saved.meta, 'utf8'));
      const info = meta.state.extra.finetune;
      assert(meta.state.extra.kind === 'finetune' && info.task === 'regression' && info.label === 'hr' && info.classes.join() === 'hr' && info.leads.join() === 'II,V1' &&
        info.preset === 'tiny' && info.source.checkpoint === ckpt && info.source.step === PRETRAIN.steps && info.epoch === r.bestEpoch && meta.state.epoch === r.bestEpoch, JSON.stringify(info));
      const model = await loadFinetuned(save);
      const t = model.checkpoint.tensors;
      assert(t.has('W_P.weight') && t.has('encoder_blocks.blocks.0.attn.qkv.weight') && t.has('norm.bias') && ![...t.keys()].some((k) => /^(teacher|optim|predictor)/.test(k)), `keys ${[...t.keys()]}`);
      assert(t.get('head.weight')!.dtype === 'F64' && t.get('head.weight')!.shape.join() === '1,32' && t.get('head.bias')!.shape.join() === '1', 'head tensors');
      // The reloaded model on every record; the test rows must match the in-memory model's outputs of the chosen epoch.
      const p = await predict(engine, { checkpoint: save, data });
      assert(p.ids.length === RECORDS && p.values.length === RECORDS && p.leads.join() === 'II,V1', `predict: ${p.ids.length} ids, ${p.values.length} values`);
      const at = new Map(p.ids.map((id, i) => [id, i]));
      let worst = 0;
      r.testPredictions.ids.forEach((id, j) => (worst = Math.max(worst, Math.abs(p.values[at.get(id)!] - r.testPredictions.values[j]))));
      assert(r.testPredictions.ids.length === 240 && worst < 1e-5, `${r.testPredictions.ids.length} test rows, max |reloaded − in-memory| ${worst} bpm`);
      // embed (and so probe) take the encoder, with the checkpoint's leads and band-pass; its weights are the fine-tuned ones.
      const subset = [0, 1, 2, 3];
      const e = await m.embed(engine, { checkpoint: save, data, subset });
      const pre = await m.embed(engine, { checkpoint: ckpt, data, subset, leads: ['II', 'V1'], bandpass: [0.67, 40] });
      let diff = 0;
      for (let i = 0; i < e.features.length; i++) diff = Math.max(diff, Math.abs(e.features[i] - pre.features[i]));
      assert(e.leads.join() === 'II,V1' && e.bandpass?.join() === '0.67,40' && e.step === meta.state.step && diff > 0, `embed: leads ${e.leads}, band ${e.bandpass}, step ${e.step}, diff ${diff}`);
      // A checkpoint of the wrong kind.
      await expectError(() => predict(engine, { checkpoint: ckpt, data }), /has no fine-tuned head \(a pretraining checkpoint\?\): predict needs .*finetune/);
      summary.push(`\nFine-tuned model (hr, leads II+V1, epoch ${r.bestEpoch} of 2 saved): reloaded vs in-memory test outputs differ by at most ${worst.toExponential(1)} bpm`);
    });

    it('CLI: finetune writes <name>-model next to the report; predict writes CSV and JSON', async () => {
      const { fs, path } = await mods();
      const out = path.join(tmp, 'cli-ft');
      await cli(['finetune', '--checkpoint', ckpt, '--data', data, '--task', 'multilabel', '--label', 'conditions', '--split', SPLIT, '--epochs', '1', '--batch', '32', '--bootstrap', '0', '--no-standardize', '--out', out]);
      const name = 'finetune-multilabel-conditions';
      assert(JSON.stringify(fs.readdirSync(out).sort()) === JSON.stringify([`${name}-model.json`, `${name}-model.safetensors`, `${name}-roc.png`, `${name}.json`, `${name}.md`]), `files: ${fs.readdirSync(out)}`);
      const report = JSON.parse(fs.readFileSync(path.join(out, `${name}.json`), 'utf8'));
      assert(report.saved.meta.endsWith(`${name}-model.json`) && !('testPredictions' in report), 'report names the model, without per-record outputs');
      assert(report.settings.standardize === false, '--no-standardize reaches the run');
      const thresholds = JSON.parse(fs.readFileSync(path.join(out, `${name}-model.json`), 'utf8')).state.extra.finetune.thresholds;
      assert(thresholds.length === report.classes.length && JSON.stringify(thresholds) === JSON.stringify(report.test.f1Tuned.thresholds), `saved thresholds ${thresholds} vs the report's ${report.test.f1Tuned?.thresholds}`);
      const model = path.join(out, `${name}-model`);
      const printed = await cli(['predict', '--checkpoint', model, '--data', data, '--out', path.join(out, 'pred.csv')]);
      const csv = fs.readFileSync(path.join(out, 'pred.csv'), 'utf8');
      assert(!csv.includes('\r') && csv.endsWith('\n'), 'one line ending throughout, the last line ended');
      const lines = csv.trim().split('\n');
      const header = lines[0].split(',');
      assert(header[0] === 'id' && header.length === report.classes.length + 1 && header.slice(1).join() === report.classes.join() && lines.length === RECORDS + 1, `CSV header ${lines[0]}, ${lines.length} lines`);
      const row = lines[1].split(',');
      assert(row[0] === 'synth-1-0' && row.slice(1).every((v) => Number(v) > 0 && Number(v) < 1), `row ${lines[1]}`);
      assert(new RegExp(`${RECORDS} records × ${report.classes.length} probabilities`).test(printed), printed);
      await cli(['predict', '--checkpoint', model, '--data', data, '--out', path.join(out, 'pred.json')]);
      const j = JSON.parse(fs.readFileSync(path.join(out, 'pred.json'), 'utf8'));
      assert(j.format === 'ecg-jepa-predictions' && j.output === 'probability' && j.ids.length === RECORDS && j.values[0].join() === row.slice(1).join(), 'JSON predictions match the CSV');
    });

    it('explain: integrated gradients add up to f(x) − f(0), outputs as predict, any chunking; target choice; files; CLI', async () => {
      const { fs, path } = await mods();
      const engine = await getEngine();
      const { explain, writeExplanation, leadShares, patchAttribution } = await import('../../train/eval/explain.js');
      const { predict } = await import('../../train/eval/predict.js');
      const { parseNpy } = await import('../../train/data/npy.js');
      const hrModel = path.join(tmp, 'ft-model', 'hr'); // regression on II + V1 (the test above)
      const clsModel = path.join(tmp, 'cli-ft', 'finetune-multilabel-conditions-model'); // multilabel (the CLI test above)
      const subset = [0, 5];
      // 64 integration points in chunks of 24 (the last one partial)
      const e = await explain(engine, { checkpoint: hrModel, data, subset, steps: 64, batch: 24 });
      const p = await predict(engine, { checkpoint: hrModel, data, subset });
      const L = e.samples;
      assert(e.leads.join() === 'II,V1' && e.records.length === 2 && e.records.every((r) => r.target === 'hr' && r.attribution.length === 2 * L && r.input.length === 2 * L), `shape: leads ${e.leads}, ${e.records.length} records`);
      e.records.forEach((r, i) => {
        const gap = Math.abs(r.delta) / Math.abs(r.value - r.baseline);
        assert(Math.abs(r.output - p.values[i]) < 1e-3 && Math.abs(r.value - r.output) < 1e-9, `${r.id}: output ${r.output}, predict ${p.values[i]}`);
        assert(gap < 0.02 && Math.abs(r.value - r.baseline) > 1e-3, `${r.id}: Σ attribution misses f(x) − f(0) = ${r.value - r.baseline} by ${r.delta}`);
      });
      const one = await explain(engine, { checkpoint: hrModel, data, subset: [5], steps: 64, batch: 64 });
      let diff = 0;
      one.records[0].attribution.forEach((a, i) => (diff = Math.max(diff, Math.abs(a - e.records[1].attribution[i]))));
      const peak = Math.max(...e.records[1].attribution.map(Math.abs));
      assert(diff <= 1e-4 * peak, `chunks of 24 vs one pass of 64: max difference ${diff} (peak ${peak})`);
      // classification: the most probable class by default, or the one asked for
      const probs = await predict(engine, { checkpoint: clsModel, data, subset: [1] });
      const best = probs.values.indexOf(Math.max(...probs.values));
      const c = await explain(engine, { checkpoint: clsModel, data, subset: [1], steps: 16 });
      assert(c.records[0].target === probs.classes[best] && Math.abs(c.records[0].output - probs.values[best]) < 1e-3, `predicted target ${c.records[0].target} ${c.records[0].output}, predict ${probs.classes[best]} ${probs.values[best]}`);
      const other = probs.classes[(best + 1) % probs.classes.length];
      const asked = await explain(engine, { checkpoint: clsModel, data, subset: [1], steps: 16, target: other });
      const at = probs.classes.indexOf(other);
      assert(asked.records[0].target === other && Math.abs(asked.records[0].output - probs.values[at]) < 1e-3 && Math.abs(asked.records[0].delta) < 0.02 * Math.abs(asked.records[0].value - asked.records[0].baseline), `target ${other}: ${JSON.stringify({ ...asked.records[0], input: 0, attribution: 0 })}`);
      await expectError(() => explain(engine, { checkpoint: clsModel, data, subset: [1], target: 'XYZ' }), /target 'XYZ' is not an output of this model \(.*NORM.*, or predicted\)/);
      await expectError(() => explain(engine, { checkpoint: ckpt, data, subset: [1] }), /has no fine-tuned head.*explain needs/);
      const { writeDataset, readManifest } = await import('../../train/data/dataset.js');
      const man = await readManifest(data);
      const bad = new Float32Array(man.leads.length * man.samples).fill(0.1);
      bad[man.samples + 9] = NaN;
      const nanData = path.join(tmp, 'nan-data');
      await writeDataset(nanData, [{ id: 'bad', x: bad }], { leads: man.leads, fs: man.fs, samples: man.samples });
      await expectError(() => explain(engine, { checkpoint: hrModel, data: nanData }), /non-finite features for record bad/);
      // files: the attributions as .npy, a summary per record, a plot per record
      const dir = path.join(tmp, 'explain');
      const files = await writeExplanation(dir, e, { png: true });
      assert(fs.readdirSync(dir).sort().join() === 'attribution.npy,explain.json,input.npy,synth-1-0.png,synth-1-5.png' && files.length === 5, `files ${fs.readdirSync(dir)}`);
      const npy = parseNpy(new Uint8Array(fs.readFileSync(path.join(dir, 'attribution.npy'))));
      const inp = parseNpy(new Uint8Array(fs.readFileSync(path.join(dir, 'input.npy'))));
      assert(npy.shape.join() === `2,2,${L}` && npy.data[L + 7] === e.records[0].attribution[L + 7] && inp.shape.join() === npy.shape.join() && inp.data[3 * L + 5] === e.records[1].input[L + 5], `npy ${npy.shape}`);
      const j = JSON.parse(fs.readFileSync(path.join(dir, 'explain.json'), 'utf8'));
      const r0 = j.records[0];
      // shares and patch sums from the .npy's layout [record][lead][sample], not from the helpers
      const abs = [0, 1].map((c) => Array.from(npy.data.subarray(c * L, (c + 1) * L) as Float32Array).reduce((a, v) => a + Math.abs(v), 0));
      const P = L / e.patchSize;
      const lastPatchV1 = Array.from(npy.data.subarray(2 * L - e.patchSize, 2 * L) as Float32Array).reduce((a, v) => a + v, 0);
      assert(j.format === 'ecg-jepa-explanation' && r0.plot === 'synth-1-0.png' && Math.abs(r0.leadShare.II - abs[0] / (abs[0] + abs[1])) < 1e-6 && Math.abs(r0.leadShare.V1 - abs[1] / (abs[0] + abs[1])) < 1e-6 &&
        r0.patches.length === 2 && r0.patches[1].length === P && Math.abs(r0.patches[1][P - 1] - lastPatchV1) < 1e-6 * (1 + Math.abs(lastPatchV1)), `json ${JSON.stringify(r0).slice(0, 300)}`);
      assert(leadShares(e, e.records[0])[1] === r0.leadShare.V1 && patchAttribution(e, e.records[0])[0][0] === r0.patches[0][0], 'helpers as written');
      // a second run into the folder: the plot of the record it no longer explains goes
      await writeExplanation(dir, { ...e, records: [e.records[0]] }, { png: true });
      assert(fs.readdirSync(dir).sort().join() === 'attribution.npy,explain.json,input.npy,synth-1-0.png', `after a smaller run: ${fs.readdirSync(dir)}`);
      // the command line: records by id, no plots
      const out = path.join(tmp, 'explain-cli');
      const printed = await cli(['explain', '--checkpoint', clsModel, '--data', data, '--out', out, '--ids', 'synth-1-3,synth-1-4', '--steps', '8', '--no-png']);
      assert(new RegExp(`2 of ${RECORDS} records explained \\(multilabel 'conditions', 8 steps; .*\\) → 3 files`).test(printed) && /synth-1-3: \w+ 0\.\d+; leads/.test(printed), printed);
      assert(fs.readdirSync(out).sort().join() === 'attribution.npy,explain.json,input.npy', `cli files ${fs.readdirSync(out)}`);
      const args = ['explain', '--checkpoint', clsModel, '--data', data];
      await expectError(() => cli([...args, '--out', out, '--ids', 'nope']), /no record nope in/);
      await expectError(() => cli([...args, '--out', out, '--ids', 'synth-1-3,synth-1-3']), /--ids names synth-1-3 twice/);
      await expectError(() => cli([...args, '--out', out, '--ids', 'synth-1-3', '--limit', '2']), /give --ids or --limit, not both/);
      await expectError(() => cli([...args, '--out', path.join(out, 'explain.json')]), /is a file; give a folder/);
      await expectError(() => cli([...args, '--out', out, '--steps', '0']), /--steps: expected a positive integer/);
      summary.push(`\nexplain (hr model, 64 steps): Σ attribution − (f(x) − f(0)) = ${e.records.map((r) => r.delta.toExponential(1)).join(', ')} bpm for f(x) − f(0) = ${e.records.map((r) => (r.value - r.baseline).toFixed(2)).join(', ')}`);
    });

    it('probe --save: the frozen encoder with the trained head, a model predict and explain take, giving the probe head\'s outputs', async () => {
      const { fs, path } = await mods();
      const m = await evalMods();
      const engine = await getEngine();
      const { predict, loadFinetuned } = await import('../../train/eval/predict.js');
      const { explain } = await import('../../train/eval/explain.js');
      const base = path.join(tmp, 'probe-model', 'conditions');
      let fitted: import('../../train/eval/probe.js').HeadMap | null = null;
      const r = await m.probe(engine, { checkpoint: ckpt, data, task: 'multilabel', label: 'conditions', split: m.parseSplit(SPLIT), bootstrap: 0, leads: ['II', 'V1'], save: base, onHead: (h) => (fitted = h) });
      assert(r.saved?.meta === `${base}.json` && fs.existsSync(r.saved.tensors), `saved ${JSON.stringify(r.saved)}`);
      const model = await loadFinetuned(base);
      const src = await (await import('../../model/checkpoint.js')).loadCheckpoint(ckpt);
      const wp = model.checkpoint.tensors.get('W_P.weight')!.data, wsrc = src.tensors.get('W_P.weight')!.data;
      assert(model.info.method === 'probe' && model.info.leads.join() === 'II,V1' && model.info.classes.join() === r.classes.join() && model.info.head.activation === 'sigmoid' && wp.length === wsrc.length && wp.every((v, i) => v === wsrc[i]),
        `model info ${JSON.stringify({ ...model.info, settings: 0 })}, encoder weights the source's`);
      // predict = sigmoid of the fitted head (standardisation folded in) on the encoder's features
      const subset = [0, 1, 2, 3, 4];
      const p = await predict(engine, { checkpoint: base, data, subset });
      const e = await m.embed(engine, { checkpoint: ckpt, data, subset, leads: ['II', 'V1'] });
      const want = m.applyHead(fitted!, e.features);
      let worst = 0;
      want.forEach((z, i) => (worst = Math.max(worst, Math.abs(1 / (1 + Math.exp(-z)) - p.values[i]))));
      assert(worst < 1e-5, `predict vs the probe's head: max difference ${worst}`);
      // explain on it, one integration point: attribution = x ⊙ ∇f(x/2), so its sum over a region R is
      // the derivative of f(x/2 + t·x_R) at t = 0: a central difference of the encoder + head, per lead and per time span
      const x = await explain(engine, { checkpoint: base, data, subset: [0], steps: 1 });
      const rec = x.records[0], L = x.samples;
      const k = model.info.classes.indexOf(rec.target);
      const enc = await m.loadEncoder(engine, { checkpoint: base });
      const { Tape } = await import('../../engine/tape.js');
      const tape = new Tape(engine);
      const f = async (inp: Float32Array) => {
        const t = engine.upload(inp, [1, 2, L]);
        const rep = tape.noGrad(() => engine.scope(() => enc.encoder.representation(tape, t)));
        const v = await engine.read(rep);
        rep.dispose();
        t.dispose();
        return model.head.bias[k] + v.reduce((s, r, d) => s + r * model.head.weight[k * v.length + d], 0);
      };
      const eps = 0.05;
      for (const [lo, hi, what] of [[0, L, 'lead II'], [L + L / 2, 2 * L, 'V1, second half']] as const) {
        const at = (sign: number) => Float32Array.from(rec.input, (v, i) => v / 2 + (i >= lo && i < hi ? sign * eps * v : 0));
        const fd = ((await f(at(1))) - (await f(at(-1)))) / (2 * eps);
        const sum = rec.attribution.subarray(lo, hi).reduce((a, b) => a + b, 0);
        assert(Math.abs(fd - sum) <= 0.02 * Math.abs(fd) + 1e-3, `${what}: Σ attribution ${sum}, finite difference ${fd}`);
      }
      enc.encoder.dispose();
      // the command line: --save writes <out>/<name>-model beside the report
      const out = path.join(tmp, 'cli-probe');
      const printed = await cli(['probe', '--checkpoint', ckpt, '--data', data, '--task', 'regression', '--label', 'hr', '--split', SPLIT, '--bootstrap', '0', '--out', out, '--save']);
      assert(fs.readdirSync(out).sort().join() === ['regression-hr-model.json', 'regression-hr-model.safetensors', 'regression-hr.json', 'regression-hr.md'].join() && printed.includes('model (frozen encoder + this head)'), `files ${fs.readdirSync(out)}; ${printed.slice(-200)}`);
      const hr = await predict(engine, { checkpoint: path.join(out, 'regression-hr-model'), data, subset: [0] });
      assert(hr.task === 'regression' && hr.values[0] > 20 && hr.values[0] < 250, `predicted hr ${hr.values[0]} bpm`);
      // the same name again without --save: the earlier model goes (it would sit beside a report of another run)
      await cli(['probe', '--checkpoint', ckpt, '--data', data, '--task', 'regression', '--label', 'hr', '--split', SPLIT, '--bootstrap', '0', '--out', out, '--epochs', '2']);
      assert(fs.readdirSync(out).sort().join() === 'regression-hr.json,regression-hr.md', `after a run without --save: ${fs.readdirSync(out)}`);
      // a bad split is refused before anything is removed
      await expectError(() => cli(['probe', '--checkpoint', ckpt, '--data', data, '--task', 'regression', '--label', 'hr', '--split', '1-5/6/1O', '--out', out]), /no usable record in the test folds/);
      assert(fs.readdirSync(out).sort().join() === 'regression-hr.json,regression-hr.md', `after a refused run: ${fs.readdirSync(out)}`);
      // a report named like the checkpoint it reads is refused before any work
      await expectError(() => cli(['probe', '--checkpoint', base, '--data', data, '--task', 'regression', '--label', 'hr', '--out', path.dirname(base), '--name', path.basename(base)]), /would overwrite the checkpoint/);
      assert(fs.existsSync(`${base}.json`), 'the checkpoint is still there');
      // multi-class: explain takes the logit minus the mean logit (softmax ignores a shift common to all),
      // which is log p_k − mean_j log p_j of predict's probabilities
      const mc = path.join(tmp, 'probe-model', 'multiclass');
      await m.probe(engine, { checkpoint: ckpt, data, task: 'multiclass', label: 'conditions', split: m.parseSplit(SPLIT), bootstrap: 0, save: mc });
      const pm = await predict(engine, { checkpoint: mc, data, subset: [2] });
      const xm = (await explain(engine, { checkpoint: mc, data, subset: [2], steps: 32 })).records[0];
      const logp = Array.from(pm.values, Math.log);
      const centred = logp[pm.classes.indexOf(xm.target)] - logp.reduce((a, b) => a + b, 0) / logp.length;
      assert(Math.abs(xm.value - centred) < 1e-4 && Math.abs(xm.delta) < 0.02 * Math.abs(xm.value - xm.baseline), `multi-class ${xm.target}: value ${xm.value}, log p_k − mean log p ${centred}, gap ${xm.delta} of ${xm.value - xm.baseline}`);
      // decisions: multi-label at the thresholds the probe tuned on validation (saved with the model),
      // multi-class the most probable class, regression refused
      const tunedT = r.test.kind === 'classification' ? r.test.f1Tuned!.thresholds : [];
      assert(JSON.stringify(model.info.thresholds) === JSON.stringify(tunedT), `saved thresholds ${model.info.thresholds} vs tuned ${tunedT}`);
      const d = await predict(engine, { checkpoint: base, data, subset: [0, 1, 2, 3, 4, 5, 6, 7], decisions: true });
      const K = d.classes.length;
      d.ids.forEach((id, i) => {
        const want = d.classes.filter((_, k) => d.values[i * K + k] >= d.thresholds![k]);
        assert(d.positive![i].join() === want.join(), `${id}: called ${d.positive![i]}, want ${want}`);
      });
      assert(d.thresholdsFrom === 'validation' && d.positive!.some((c) => c.length > 0), `decisions ${JSON.stringify(d.positive)}`);
      const dm = await predict(engine, { checkpoint: mc, data, subset: [2], decisions: true });
      assert(dm.positive![0][0] === dm.classes[Array.from(dm.values).indexOf(Math.max(...dm.values))] && !dm.thresholds, `multi-class decision ${dm.positive}`);
      // refused before any record is embedded
      let embedded = 0;
      await expectError(() => predict(engine, { checkpoint: path.join(tmp, 'ft-model', 'hr'), data, subset: [0], decisions: true, onProgress: () => embedded++ }), /decisions need a classifier/);
      assert(embedded === 0, `${embedded} progress calls before the refusal`);
      const csvOut = path.join(tmp, 'decisions.csv');
      const said = await cli(['predict', '--checkpoint', base, '--data', data, '--out', csvOut, '--decisions']);
      const lines = fs.readFileSync(csvOut, 'utf8').trim().split('\n');
      assert(lines[0].endsWith(',positive') && said.includes('classes called at thresholds tuned on validation') && lines[1].split(',').pop() === d.positive![0].join(';'), `${lines[0]} / ${lines[1]} / ${said}`);
    });

    describe('mixed precision fine-tuning (f16 matmul inputs, loss scale)', () => {
      const hasF16 = async () => (await getEngine()).device.features.has('shader-f16');
      // The settings of the f32 fine-tuning spec above, so the two precisions see the same data, order and augmentations.
      const common = async () => ({
        checkpoint: ckpt, data, task: 'multilabel' as const, label: 'conditions', split: (await import('../../train/eval/probe.js')).parseSplit(SPLIT),
        epochs: 2, warmupEpochs: 1, lr: 1e-4, headLr: 1e-2, maxStepsPerEpoch: 10, bootstrap: 0,
      });

      it('recompute (the encoder\'s block activations recomputed in the backward): the same training, bit for bit, with a lower peak', async () => {
        const engine = await getEngine();
        const { finetune } = await import('../../train/eval/finetune.js');
        const run = async (recompute: boolean) => {
          await engine.releaseMemory();
          engine.pool.resetPeak();
          const r = await finetune(engine, { ...(await common()), recompute });
          return { rows: JSON.stringify(r.history.map((h) => [h.trainLoss, h.val])), peak: engine.pool.peakBytes };
        };
        const [held, again] = [await run(false), await run(true)];
        assert(again.rows === held.rows, `recomputing: ${again.rows}, holding: ${held.rows}`);
        assert(again.peak < held.peak, `peak ${again.peak} bytes recomputing, ${held.peak} holding`);
      });

      it('f16 with the dynamic loss scale follows the f32 run; a start scale too large for f16 skips steps, halving it, and still trains', async function () {
        const engine = await getEngine();
        const { finetune } = await import('../../train/eval/finetune.js');
        if (!(await hasF16())) {
          // Without shader-f16 (SwiftShader) f16 fine-tuning must refuse, naming the feature.
          await expectError(async () => finetune(engine, { ...(await common()), precision: 'f16' }), /finetune: precision 'f16' .* needs the device feature shader-f16/);
          return;
        }
        const f32 = await finetune(engine, await common());
        const f16 = await finetune(engine, { ...(await common()), precision: 'f16' });
        // 2^28 overflows f16 in the backward of this model (it needs a scale near 2^21): the first steps are skipped.
        const over = await finetune(engine, { ...(await common()), precision: 'f16', lossScale: { init: 2 ** 28 } });
        const show = (r: typeof f32) => r.history.map((h) => `val ${h.val!.toFixed(4)} loss ${h.trainLoss.toFixed(4)} scale ${h.lossScale} skipped ${h.skippedSteps}`).join('; ');
        summary.push(`\nFine-tuning f32 vs f16 (2 epochs × 10 steps):\n  f32: ${show(f32)}\n  f16: ${show(f16)}\n  f16 from 2^28: ${show(over)}`);
        assert(f32.lossScale.scale === 1 && !f32.lossScale.dynamic && f32.lossScale.skipped === 0 && f32.settings.precision === 'f32', `f32 scaler ${JSON.stringify(f32.lossScale)}`);
        // 2^16, the default start, does not overflow here: every step applied, the scale unchanged (growth after 2000 steps).
        assert(f16.lossScale.dynamic && f16.lossScale.scale === 2 ** 16 && f16.lossScale.skipped === 0 && f16.history.every((h) => h.skippedSteps === 0) && f16.settings.precision === 'f16', `f16 scaler ${JSON.stringify(f16.lossScale)}`);
        f16.history.forEach((h, i) => {
          const g = f32.history[i];
          assert(Math.abs(h.val! - g.val!) < 0.02 && Math.abs(h.trainLoss - g.trainLoss) < 0.01 * g.trainLoss, `epoch ${h.epoch}: f16 val ${h.val} loss ${h.trainLoss}, f32 val ${g.val} loss ${g.trainLoss}`);
        });
        const sk = over.lossScale.skipped;
        assert(sk > 0 && sk < 15 && over.lossScale.scale === 2 ** (28 - sk) && over.history.reduce((a, h) => a + h.skippedSteps, 0) === sk, `2^28: ${JSON.stringify(over.lossScale)}, ${show(over)}`);
        assert(over.history.every((h) => Number.isFinite(h.trainLoss) && Number.isFinite(h.val!)) && over.history[1].trainLoss < over.history[0].trainLoss, `2^28 trains on: ${show(over)}`);
      });

      it('a step skipped for overflow changes neither the encoder nor the head; the saved model is f32 and records the precision', async function () {
        if (!(await hasF16())) this.skip();
        const { fs, path } = await mods();
        const engine = await getEngine();
        const { finetune } = await import('../../train/eval/finetune.js');
        const { loadCheckpoint } = await import('../../model/checkpoint.js');
        const o = { ...(await common()), epochs: 1, maxStepsPerEpoch: 3, precision: 'f16' as const };
        // 1e30 overflows f16 at every step (3 halvings leave it far above 65504): no update at all,
        // so the model must be the one a learning rate of 0 leaves, output for output.
        const save = path.join(tmp, 'ft-f16', 'skipped');
        const all = await finetune(engine, { ...o, lossScale: { init: 1e30 }, save });
        const still = await finetune(engine, { ...o, lr: 0, headLr: 0 });
        assert(all.lossScale.skipped === 3 && all.history[0].skippedSteps === 3 && all.lossScale.scale === Math.fround(1e30) / 8, `scaler ${JSON.stringify(all.lossScale)}`);
        const a = all.testPredictions.values, b = still.testPredictions.values;
        assert(a.length === b.length && a.every((v, i) => v === b[i]), 'the test outputs of the all-skipped run equal those of the lr-0 run');
        const meta = JSON.parse(fs.readFileSync(`${save}.json`, 'utf8')).state.extra.finetune;
        assert(meta.settings.precision === 'f16' && meta.settings.lossScale.init === 1e30 && meta.skippedSteps === 3 && meta.steps === 3, `model JSON ${JSON.stringify(meta)}`);
        const ck = await loadCheckpoint(save);
        const pre = await loadCheckpoint(ckpt);
        const enc = [...ck.tensors].filter(([k]) => !k.startsWith('head.'));
        assert(enc.length > 0 && enc.every(([, t]) => t.dtype === 'F32'), 'encoder weights saved as F32');
        for (const [k, t] of enc) {
          const u = pre.tensors.get(k)!;
          const x = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), y = new Uint8Array(u.data.buffer, u.data.byteOffset, u.data.byteLength);
          assert(x.length === y.length && x.every((v, i) => v === y[i]), `${k} changed though every step was skipped`);
        }
        fs.rmSync(path.dirname(save), { recursive: true, force: true });
      });

      it('CLI: finetune --precision f16 --loss-scale dynamic:<x> reports the scale and the skipped steps per epoch and in the JSON; bad values refused', async function () {
        const { fs, path } = await mods();
        const out = path.join(tmp, 'cli-ft16');
        const args = ['finetune', '--checkpoint', ckpt, '--data', data, '--task', 'multilabel', '--label', 'conditions', '--split', SPLIT, '--epochs', '1', '--batch', '32', '--bootstrap', '0', '--out', out];
        await expectError(() => cli([...args, '--precision', 'bf16']), /--precision must be f32 or f16, got 'bf16'/);
        for (const v of ['dynamic:', 'dynamic:-1', '0', 'big']) await expectError(() => cli([...args, '--precision', 'f16', '--loss-scale', v]), new RegExp(`--loss-scale: expected .*got '${v}'`));
        if (!(await hasF16())) {
          await expectError(() => cli([...args, '--precision', 'f16']), /needs the device feature shader-f16/);
          return;
        }
        const printed = await cli([...args, '--precision', 'f16', '--loss-scale', `dynamic:${2 ** 28}`, '--name', 'f16']);
        const report = JSON.parse(fs.readFileSync(path.join(out, 'f16.json'), 'utf8'));
        const ls = report.lossScale;
        assert(ls.dynamic && ls.skipped > 0 && ls.scale === 2 ** (28 - ls.skipped) && report.settings.precision === 'f16' && report.settings.lossScale.init === 2 ** 28, `report ${JSON.stringify(ls)}, settings ${JSON.stringify(report.settings)}`);
        assert(report.history[0].skippedSteps === ls.skipped && report.history[0].lossScale === ls.scale, `history ${JSON.stringify(report.history)}`);
        assert(new RegExp(`epoch 1: train loss .*, loss scale ${ls.scale}, ${ls.skipped} steps skipped`).test(printed), `epoch line:\n${printed}`);
        assert(new RegExp(`mixed precision \\(f16 matmul inputs\\), dynamic loss scale ${ls.scale}, ${ls.skipped} steps skipped`).test(fs.readFileSync(path.join(out, 'f16.md'), 'utf8')), 'markdown names the precision');
        summary.push(`\nCLI finetune --precision f16 --loss-scale dynamic:2^28: ${printed.split('\n').find((l) => l.startsWith('epoch 1:'))}`);
        const model = JSON.parse(fs.readFileSync(path.join(out, 'f16-model.json'), 'utf8')).state.extra.finetune;
        assert(model.settings.precision === 'f16' && model.skippedSteps === ls.skipped, `model JSON ${JSON.stringify(model.settings)}`);
      });
    });

    it('bad inputs give clear errors', async () => {
      const { path } = await mods();
      const m = await evalMods();
      const engine = await getEngine();
      const { writeDataset } = await import('../../train/data/dataset.js');
      // checkpoint of another preset, leads it was not trained on, unknown lead names, missing files
      await expectError(() => m.embed(engine, { checkpoint: ckpt, preset: 'base', data }), /is not a 'base' model[\s\S]*encoder/);
      await expectError(() => m.embed(engine, { checkpoint: ckpt, leads: ['II', 'V2'], data }), /leads \[II, V2\] are not all among .* \[I, II, V1\]/);
      await expectError(() => m.embed(engine, { checkpoint: ckpt, leads: ['aVF'], data }), /unknown lead 'aVF'/);
      await expectError(() => m.embed(engine, { checkpoint: path.join(tmp, 'nope'), data }), /not found/);
      await expectError(() => m.embed(engine, { data }), /give a checkpoint/);
      // datasets: unlabelled, wrong rate, too short; labels of the wrong kind
      const x = new Float32Array(8 * 500);
      const leads = ['I', 'II', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'];
      const unl = path.join(tmp, 'unlabelled');
      await writeDataset(unl, [0, 1, 2, 3].map((i) => ({ x, id: `r${i}`, fold: (i % 10) + 1 })), { leads, fs: 250, samples: 500 });
      await expectError(() => m.probe(engine, { checkpoint: ckpt, data: unl, task: 'multilabel', label: 'conditions' }), /no record has a label 'conditions' \(the dataset has no labels/);
      const hz = path.join(tmp, 'hz500');
      await writeDataset(hz, [{ x, id: 'a' }], { leads, fs: 500, samples: 500 });
      await expectError(() => m.embed(engine, { checkpoint: ckpt, data: hz }), /500 Hz; ECG-JEPA needs 250 Hz/);
      const short = path.join(tmp, 'short');
      await writeDataset(short, [{ x: new Float32Array(8 * 100), id: 'a' }], { leads, fs: 250, samples: 100 });
      await expectError(() => m.embed(engine, { checkpoint: ckpt, data: short }), /100 samples per lead, the tiny preset needs 500/);
      await expectError(() => m.probe(engine, { checkpoint: ckpt, data, task: 'regression', label: 'conditions', split: m.parseSplit(SPLIT) }), /not numeric/);
      await expectError(() => m.probe(engine, { checkpoint: ckpt, data, task: 'multilabel', label: 'conditions', split: m.parseSplit('1-5/6/11') }), /no usable record in the test folds/);
    });
  });
