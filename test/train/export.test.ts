// `ecg-jepa export` end to end on a tiny pretraining checkpoint: the files it writes (f32 bit-identical
// to the student, f16 half the bytes, teacher), the sizes it prints, embed / probe / finetune
// --checkpoint on the export, an export of the fine-tuned model (head dropped, band-pass kept), and
// the errors, writing nothing. Node only.
import { assert, expectReject, getEngine, isBrowser, useTempDir } from '../helpers.js';
import { tinyPretrained } from '../model/tiny-pretrained.js';
import { nodeMods as mods, runCli as cli } from './cli.js';

if (!isBrowser)
  describe('train: export', function () {
    this.timeout(300_000);
    let tmp = '';
    let src = '';
    let data = '';
    const files = async (base: string) => {
      const { fs } = await mods();
      return fs.statSync(`${base}.safetensors`).size + fs.statSync(`${base}.json`).size;
    };

    useTempDir('export-', (d) => (tmp = d));
    before(async () => {
      const { path } = await mods();
      src = path.join(tmp, 'run', 'checkpoint-last');
      const { saveCheckpoint } = await import('../../model/checkpoint.js');
      await saveCheckpoint(src, await tinyPretrained(5));
      const { prepare } = await import('../../train/data/prepare.js');
      data = path.join(tmp, 'data');
      await prepare({ source: 'synth', root: '', out: data, leads: 8, synth: { n: 20, seed: 4, fs: 250 }, workers: 0, log: () => {} });
    });

    it('writes f32 (the student bit for bit), f16 (half the bytes) and teacher exports, printing the sizes before and after', async () => {
      const { fs, path } = await mods();
      const { loadCheckpoint } = await import('../../model/checkpoint.js');
      const ck = await loadCheckpoint(src);
      const out = (n: string) => path.join(tmp, 'web', n);
      const printed = await cli(['export', '--checkpoint', src, '--out', out('f32')]);
      const before = await files(src), after = await files(out('f32'));
      assert(printed.includes(`${src}: pretrain checkpoint, step 2, preset tiny, leads I,II,V1: `) && printed.includes(`(${before} bytes)`) &&
        printed.includes(`student encoder, 26 tensors, 26912 parameters, f32: `) && printed.includes(`(${after} bytes, ${((100 * after) / before).toFixed(1)}% of the source)`), printed);
      const f32 = await loadCheckpoint(out('f32'));
      const bits = (t: { data: ArrayBufferView }) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      for (const [name, t] of f32.tensors) assert(t.dtype === 'F32' && bits(t).equals(bits(ck.tensors.get(name)!)), `${name}: not the student's bits`);
      const meta = JSON.parse(fs.readFileSync(`${out('f32')}.json`, 'utf8'));
      const rec = meta.state.extra.encoderExport;
      assert(meta.state.extra.kind === 'encoder-export' && meta.state.step === 2 && meta.config.preset === 'tiny' && rec.dtype === 'f32' && rec.encoder === 'student' &&
        rec.source.checkpoint === src && rec.source.kind === 'pretrain' && rec.leads.join() === 'I,II,V1', JSON.stringify(meta.state));

      const said = await cli(['export', '--checkpoint', src, '--out', out('f16'), '--dtype', 'f16']);
      assert(/student encoder, 26 tensors, 26912 parameters, f16: /.test(said), said);
      const [t32, t16] = [fs.statSync(`${out('f32')}.safetensors`).size, fs.statSync(`${out('f16')}.safetensors`).size];
      assert(t16 / t32 > 0.5 && t16 / t32 < 0.53, `f16 tensors ${t16} bytes, f32 ${t32}`);
      assert((await loadCheckpoint(out('f16'))).tensors.get('W_P.weight')!.dtype === 'F16', 'stored as F16');

      await cli(['export', '--checkpoint', `${src}.json`, '--out', out('teacher'), '--encoder', 'teacher']);
      const teacher = await loadCheckpoint(out('teacher'));
      for (const [name, t] of teacher.tensors) assert(bits(t).equals(bits(ck.tensors.get(`teacher.${name}`)!)), `${name}: not the teacher's bits`);
      assert(fs.readdirSync(path.join(tmp, 'web')).sort().join() === 'f16.json,f16.safetensors,f32.json,f32.safetensors,teacher.json,teacher.safetensors', 'no temp files');
    });

    it('embed, probe and finetune take the f16 export; an export of the fine-tuned model drops the head and keeps its band-pass', async () => {
      const { fs, path } = await mods();
      const engine = await getEngine();
      const f16 = path.join(tmp, 'use', 'f16');
      await cli(['export', '--checkpoint', src, '--out', f16, '--dtype', 'f16']);
      const emb = path.join(tmp, 'emb');
      const said = await cli(['embed', '--checkpoint', f16, '--data', data, '--out', emb, '--batch', '8']);
      assert(/20 records × 32 features/.test(said), said);
      const { embed } = await import('../../train/eval/embed.js');
      const [a, b] = [await embed(engine, { checkpoint: src, data }), await embed(engine, { checkpoint: f16, data })];
      let maxAbs = 0, scale = 0;
      for (let i = 0; i < a.features.length; i++) [maxAbs, scale] = [Math.max(maxAbs, Math.abs(b.features[i] - a.features[i])), Math.max(scale, Math.abs(a.features[i]))];
      assert(maxAbs / scale < 1e-2 && b.step === 2, `f16 export vs pretraining checkpoint features: max |Δ| ${maxAbs}, max |r| ${scale}`);

      const md = await cli(['probe', '--checkpoint', f16, '--data', data, '--task', 'regression', '--label', 'hr', '--split', '1-6//7-10', '--bootstrap', '0', '--epochs', '2', '--out', path.join(tmp, 'probe')]);
      assert(/\| test \| 8 \|/.test(md), md);
      const ft = path.join(tmp, 'ft');
      await cli(['finetune', '--checkpoint', f16, '--data', data, '--task', 'regression', '--label', 'hr', '--split', '1-5/6/7-10', '--epochs', '1', '--batch', '8', '--bootstrap', '0', '--out', ft]);
      const model = path.join(ft, 'finetune-regression-hr-model');
      assert(fs.existsSync(`${model}.safetensors`), 'fine-tuned model written');

      // a multi-label model's thresholds belong to its head: the export drops them with it
      const sidecar = JSON.parse(fs.readFileSync(`${model}.json`, 'utf8'));
      sidecar.state.extra.finetune.thresholds = [0.5];
      fs.writeFileSync(`${model}.json`, JSON.stringify(sidecar));
      const exported = path.join(tmp, 'use', 'ft');
      const printed = await cli(['export', '--checkpoint', model, '--out', exported]);
      assert(/finetune checkpoint, .*student encoder, 26 tensors, .*band-pass 0\.67–40 Hz recorded/s.test(printed), printed);
      const { loadCheckpoint } = await import('../../model/checkpoint.js');
      const ex = await loadCheckpoint(exported);
      const rec = ex.state.extra!.encoderExport as { source: { kind: string; record: { task: string; head?: unknown } }; bandpass: number[] };
      assert(ex.tensors.size === 26 && !ex.tensors.has('head.weight') && rec.source.kind === 'finetune' && rec.source.record.task === 'regression' && !rec.source.record.head && !('thresholds' in rec.source.record) &&
        rec.bandpass.join() === '0.67,40', JSON.stringify(rec));
      // The export embeds as the fine-tuned model does: same weights, same band-pass.
      const [m, e] = [await embed(engine, { checkpoint: model, data, subset: [0, 1, 2] }), await embed(engine, { checkpoint: exported, data, subset: [0, 1, 2] })];
      assert(e.bandpass?.join() === '0.67,40' && e.features.every((v, i) => v === m.features[i]), `export of the fine-tuned model: band ${e.bandpass}`);
    });

    it('refuses a checkpoint without an encoder, --encoder teacher without a teacher, bad options and overwriting the source, writing nothing', async () => {
      const { fs, path } = await mods();
      const { saveCheckpoint } = await import('../../model/checkpoint.js');
      const { makeConfig } = await import('../../model/config.js');
      const other = path.join(tmp, 'other');
      await saveCheckpoint(other, { config: makeConfig('tiny'), state: { step: 0 }, tensors: new Map([['w', { dtype: 'F32', shape: [1], data: Float32Array.of(1) }]]) });
      const encoderOnly = path.join(tmp, 'enc');
      await cli(['export', '--checkpoint', src, '--out', encoderOnly]);
      const out = path.join(tmp, 'refused', 'x');
      await expectReject(() => cli(['export', '--checkpoint', other, '--out', out]), /other holds no encoder \(none of the 26 encoder tensors/);
      await expectReject(() => cli(['export', '--checkpoint', encoderOnly, '--out', out, '--encoder', 'teacher']), /enc has no EMA teacher .*an exported encoder \(export\).*\(--encoder student\)/);
      await expectReject(() => cli(['export', '--checkpoint', src, '--out', out, '--dtype', 'bf16']), /--dtype must be f32 or f16, got 'bf16'/);
      await expectReject(() => cli(['export', '--checkpoint', src, '--out', out, '--encoder', 'ema']), /--encoder must be student or teacher, got 'ema'/);
      await expectReject(() => cli(['export', '--checkpoint', src, '--out', `${src}.safetensors`]), /export: writing .*checkpoint-last\.json would overwrite the checkpoint .*checkpoint-last it reads/);
      // the source's other tensor name too (saves alternate between the two)
      await expectReject(() => cli(['export', '--checkpoint', src, '--out', `${src}.alt`]), /writing .*checkpoint-last\.alt\.safetensors would overwrite the checkpoint/);
      // embed, predict and finetune: no output over what they read, no folder for a file
      await expectReject(() => cli(['embed', '--checkpoint', src, '--data', data, '--out', src]), /embed: writing .*checkpoint-last\.json would overwrite the checkpoint/);
      await expectReject(() => cli(['embed', '--checkpoint', src, '--data', data, '--out', path.join(data, 'manifest')]), /would overwrite the dataset .*data it reads/);
      await expectReject(() => cli(['embed', '--checkpoint', src, '--data', data, '--out', `${tmp}${path.sep}`]), /embed: --out .* is a folder/);
      await expectReject(() => cli(['predict', '--checkpoint', src, '--data', data, '--out', `${src}.json`]), /predict: writing .* would overwrite the checkpoint/);
      await expectReject(
        () => cli(['finetune', '--checkpoint', path.join(tmp, 'ft', 'finetune-multilabel-conditions-model'), '--data', data, '--task', 'multilabel', '--label', 'conditions', '--out', path.join(tmp, 'ft')]),
        /finetune: writing .*finetune-multilabel-conditions-model\.json would overwrite the checkpoint/,
      );
      // a finetune into a name an earlier run used removes that run's report and model first (this one
      // then fails in its first epoch): never a new model beside an old report; a label, split,
      // checkpoint or preset it cannot use is refused before anything is removed
      const ft2 = path.join(tmp, 'ft2');
      fs.mkdirSync(ft2, { recursive: true });
      const earlier = (...fs2: string[]) => fs2.forEach((f) => fs.writeFileSync(path.join(ft2, f), 'earlier'));
      earlier('finetune-multilabel-conditions.json', 'finetune-multilabel-conditions.md', 'finetune-multilabel-conditions-model.json');
      const ft = ['finetune', '--checkpoint', src, '--data', data, '--task', 'multilabel', '--label', 'conditions', '--out', ft2];
      const kept = (why: string) => assert(fs.readdirSync(ft2).length === 3, `${why} keeps the earlier run's files: ${fs.readdirSync(ft2)}`);
      await expectReject(() => cli([...ft, '--split', '1-8/9/1O']), /no usable record in the test folds/);
      kept('a refused split');
      await expectReject(() => cli([...ft, '--preset', 'base']), /is not a 'base' model/);
      kept('a preset the checkpoint is not');
      await expectReject(() => cli([...ft.map((a) => (a === src ? `${src}-typo` : a))]), /checkpoint-last-typo\.json: not found/);
      kept('a checkpoint not found');
      // --no-save: the earlier model, which would otherwise sit beside the new report, goes too
      await cli([...ft, '--epochs', '1', '--bootstrap', '0', '--no-save']);
      const after = fs.readdirSync(ft2);
      assert(after.includes('finetune-multilabel-conditions.md') && !after.some((f) => f.includes('-model')), `the new run's report, no model: ${after}`);
      assert(after.every((f) => fs.readFileSync(path.join(ft2, f), 'utf8') !== 'earlier'), `nothing of the earlier run: ${after}`);
      await expectReject(() => cli(['export', '--checkpoint', path.join(tmp, 'nope'), '--out', out]), /nope\.json: not found/);
      assert(!fs.existsSync(path.dirname(out)), 'nothing written');
    });
  });
