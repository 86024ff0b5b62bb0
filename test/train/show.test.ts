// `ecg-jepa show`: a dataset's records, folds and labels summarised from its manifest; a checkpoint's
// kind, parameters by part and head from its sidecar and tensor header. Node only.
import { assert, expectReject, isBrowser, useTempDir } from '../helpers.js';
import { nodeMods } from './cli.js';

if (!isBrowser)
  describe('train: show', () => {
    let tmp = '';
    useTempDir('show-', (d) => (tmp = d));

    it('a dataset: records, folds in numeric order, each label field as numbers or classes, joins', async () => {
      const { path } = await nodeMods();
      const { writeDataset } = await import('../../train/data/dataset.js');
      const { addLabels } = await import('../../train/data/labels.js');
      const { describe, formatSummary } = await import('../../train/show.js');
      const dir = path.join(tmp, 'data');
      const labels = [
        { dx: ['AF', 'RBBB'], scp: { NORM: 100 }, sex: 'female', hr: 60 },
        { dx: ['AF'], scp: { MI: 0, NORM: 50 }, sex: 'male', hr: 90 },
        { dx: [], scp: {}, sex: 'male' },
      ];
      await writeDataset(dir, labels.map((l, i) => ({ id: String(i + 1), x: new Float32Array(2 * 10), labels: l, fold: [10, 2, 2][i] })), { leads: ['I', 'II'], fs: 5, samples: 10 });
      const { fs } = await nodeMods();
      fs.writeFileSync(path.join(tmp, 'q.csv'), 'id,qrs\n1,90\n');
      await addLabels(dir, path.join(tmp, 'q.csv'));
      const s = await describe(dir);
      assert(s.kind === 'dataset' && s.records === 3 && JSON.stringify(s.folds) === '[["2",2],["10",1]]', `summary ${JSON.stringify(s)}`);
      const by = Object.fromEntries(s.labels.map((f) => [f.field, f]));
      assert(JSON.stringify(by.dx) === '{"field":"dx","kind":"classes","records":3,"classes":[["AF",2],["RBBB",1]]}', `dx ${JSON.stringify(by.dx)}`);
      // scp maps classes to likelihoods (PTB-XL): every key counts, 0 (unknown likelihood) too, as probe reads it
      assert(JSON.stringify(by.scp.kind === 'classes' && by.scp.classes) === '[["NORM",2],["MI",1]]', `scp ${JSON.stringify(by.scp)}`);
      assert(JSON.stringify(by.hr) === '{"field":"hr","kind":"number","records":2,"min":60,"max":90,"mean":75,"codes":[["60",1],["90",1]]}' && by.sex.kind === 'classes' && by.qrs.kind === 'number', `hr ${JSON.stringify(by.hr)}, sex ${JSON.stringify(by.sex)}`);
      const text = formatSummary(s);
      assert(text.includes('3 records, leads I, II, 5 Hz × 2 s (10 samples), f32, 1 shard') && text.includes('  dx (3 records): 2 classes: AF 2, RBBB 1') && text.includes('joined: qrs from'), text);
      await expectReject(() => describe(tmp), 'is a folder without a manifest.json');
      assert((await describe(path.join(dir, 'manifest.json'))).kind === 'dataset', 'a path to the manifest is its dataset');
    });

    it('label summaries of many records (no argument-count limit), integer codes listed as classes', async () => {
      const { summarizeLabels } = await import('../../train/show.js');
      const records = Array.from({ length: 200_000 }, (_, i) => ({ labels: { age: 20 + (i % 70), sex: i % 2 } }));
      const [age, sex] = summarizeLabels(records);
      assert(age.kind === 'number' && age.min === 20 && age.max === 89 && !age.codes && sex.kind === 'number' && JSON.stringify(sex.codes) === '[["0",100000],["1",100000]]', `age ${JSON.stringify(age)}, sex ${JSON.stringify(sex)}`);
    });

    it('a checkpoint: its kind, parameters by part and head, from the sidecar and the tensor header only; a mixed-up save refused', async () => {
      const { fs, path } = await nodeMods();
      const { saveCheckpoint } = await import('../../model/checkpoint.js');
      const { makeConfig } = await import('../../model/config.js');
      const { describe, formatSummary } = await import('../../train/show.js');
      const f32 = (n: number) => ({ dtype: 'F32' as const, shape: [n], data: new Float32Array(n) });
      const tensors = new Map([['W_P.weight', f32(6)], ['teacher.W_P.weight', f32(6)], ['optim.m.W_P.weight', f32(6)], ['optim.v.W_P.weight', f32(6)], ['predictor_embed.weight', f32(4)], ['mask_token', f32(2)]]);
      const base = path.join(tmp, 'ck', 'checkpoint-last');
      await saveCheckpoint(base, { config: makeConfig('tiny'), state: { step: 7, epoch: 1 }, tensors });
      const s = await describe(base);
      assert(s.kind === 'checkpoint' && s.what.startsWith('a pretraining checkpoint') && s.step === 7 && s.epoch === 1 && JSON.stringify(s.params) === '{"encoder":6,"teacher":6,"adamw":12,"predictor":6}', `summary ${JSON.stringify(s)}`);
      const info = { method: 'probe', task: 'multiclass', label: 'rhythm', classes: ['AF', 'SR'], leads: ['II'], preset: 'tiny', head: { weight: 'head.weight', bias: 'head.bias', output: 'logits', activation: 'softmax' }, bandpass: null, epoch: 10, validation: 0.9, steps: 0, skippedSteps: 0, source: { checkpoint: base, randomInit: false, step: 7, dataset: 'data/x' }, settings: {} };
      const model = path.join(tmp, 'ck', 'probe-model');
      await saveCheckpoint(model, { config: makeConfig('tiny'), state: { step: 7, epoch: 0, extra: { kind: 'finetune', finetune: info } }, tensors: new Map([['W_P.weight', f32(6)], ['head.weight', f32(4)], ['head.bias', f32(2)]]) });
      const text = formatSummary(await describe(`${model}.json`));
      assert(text.includes('a linear-probe model') && text.includes('parameters: encoder 6, head 6') && text.includes('inputs band-passed: no') && text.includes("head: multiclass on 'rhythm' (AF, SR), softmax; leads II") &&
        text.includes(`trained: linear probe; validation macro AUC 0.9000; from ${base} (step 7) on data/x`) && !text.includes('epoch'), text);
      // a truncated tensor file is refused from its header's offsets, as loading it would be
      const tfile = path.join(tmp, 'ck', JSON.parse(fs.readFileSync(`${model}.json`, 'utf8')).tensors);
      fs.truncateSync(tfile, fs.statSync(tfile).size - 4);
      await expectReject(() => describe(model), /truncated: tensor 'head.bias' ends at byte/);
      // a corrupt header length (2^40) is refused before anything that size is allocated
      const bad = Buffer.alloc(64);
      bad.writeUInt32LE(0, 0);
      bad.writeUInt32LE(256, 4);
      fs.writeFileSync(tfile, bad);
      await expectReject(() => describe(model), /header length 1099511627776 is implausible/);
      await expectReject(() => describe(path.join(tmp, 'ck', 'nope')), /no dataset folder or checkpoint at .*nope/);
      // the sidecar of one save with the tensors of another
      const other = path.join(tmp, 'ck', 'other');
      await saveCheckpoint(other, { config: makeConfig('tiny'), state: { step: 1 }, tensors });
      fs.copyFileSync(path.join(tmp, 'ck', JSON.parse(fs.readFileSync(`${other}.json`, 'utf8')).tensors), path.join(tmp, 'ck', JSON.parse(fs.readFileSync(`${base}.json`, 'utf8')).tensors));
      await expectReject(() => describe(base), /comes from another save/);
    });
  });
