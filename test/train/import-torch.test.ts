// `ecg-jepa import-torch` end to end on the committed torch-format fixture (tiny preset): the
// checkpoint it writes records the source and its SHA-256, `embed --checkpoint` runs it with the
// imported weights, pretraining refuses to resume from it, and a wrong preset is a clear error. Node only.
import { assert, expectReject, getEngine, isBrowser, useTempDir } from '../helpers.js';
import { fixtureValue } from '../model/torch-builder.js';
import { nodeMods as mods, runCli as cli } from './cli.js';

if (!isBrowser)
  describe('train: import-torch', function () {
    this.timeout(300_000);
    let tmp = '';
    const FIXTURE = 'test/model/fixtures/torch-tiny.pth';
    useTempDir('import-torch-', (d) => (tmp = d));

    it('writes a checkpoint that embed loads with the imported weights; pretraining refuses to resume from it', async () => {
      const { fs, path, crypto } = await mods();
      const out = path.join(tmp, 'imported');
      const printed = await cli(['import-torch', FIXTURE, '--out', out, '--preset', 'tiny']);
      assert(/torch-tiny\.pth .*epoch 99.*26 encoder tensors, preset tiny/.test(printed), printed);
      assert(!/warning/.test(printed), printed);
      const meta = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8'));
      const sha = crypto.createHash('sha256').update(fs.readFileSync(FIXTURE)).digest('hex');
      const rec = meta.state.extra.torchImport;
      assert(meta.state.extra.kind === 'torch-import' && rec.sha256 === sha && rec.source === 'torch-tiny.pth' && rec.epoch === 99 && rec.preset === 'tiny' && rec.encoderOnly === true,
        JSON.stringify(meta.state));

      // The encoder embed builds holds the fixture's values.
      const { loadEncoder } = await import('../../train/eval/embed.js');
      const { readParams } = await import('../../model/encoder.js');
      const engine = await getEngine();
      const loaded = await loadEncoder(engine, { checkpoint: out });
      try {
        const params = await readParams(loaded.encoder.reg);
        for (const name of ['W_P.weight', 'encoder_blocks.blocks.1.attn.proj.weight', 'norm.weight', 'norm.bias']) {
          const v = params.get(name)!;
          for (let i = 0; i < v.length; i++) assert(v[i] === fixtureValue(name, i), `${name}[${i}] = ${v[i]}, want ${fixtureValue(name, i)}`);
        }
      } finally {
        loaded.encoder.dispose();
      }

      // embed --checkpoint on a few synthetic records.
      const { prepare } = await import('../../train/data/prepare.js');
      const data = path.join(tmp, 'data');
      await prepare({ source: 'synth', root: '', out: data, leads: 8, synth: { n: 6, seed: 3, fs: 250 }, workers: 0, log: () => {} });
      const emb = path.join(tmp, 'emb');
      const said = await cli(['embed', '--checkpoint', out, '--data', data, '--out', emb, '--batch', '4']);
      assert(/6 records × 32 features/.test(said), said);
      const npy = fs.readFileSync(`${emb}.npy`);
      const feats = new Float32Array(npy.buffer.slice(npy.byteOffset + npy.length - 6 * 32 * 4, npy.byteOffset + npy.length));
      assert(feats.every(Number.isFinite) && feats.some((x) => x !== 0), 'finite, non-zero features');

      // An encoder-only checkpoint cannot seed the pretraining state.
      const { loadCheckpoint } = await import('../../model/checkpoint.js');
      const { EcgJepa } = await import('../../model/jepa.js');
      const { makeConfig } = await import('../../model/config.js');
      const model = new EcgJepa(engine, makeConfig('tiny'), { seed: 0 });
      try {
        const ck = await loadCheckpoint(out);
        let msg = '';
        try {
          model.fromCheckpoint(ck);
        } catch (e) {
          msg = (e as Error).message;
        }
        assert(/imported from PyTorch weights .* pretraining cannot resume from it/.test(msg), msg);
      } finally {
        model.dispose();
      }
    });

    it('refuses a file for another preset, a missing file and a non-torch file, writing nothing', async () => {
      const { fs, path } = await mods();
      const out = path.join(tmp, 'refused');
      await expectReject(() => cli(['import-torch', FIXTURE, '--out', out]), /torch-tiny\.pth does not fit the 'base' encoder \(it fits --preset tiny\)/);
      await expectReject(() => cli(['import-torch', path.join(tmp, 'nope.pth'), '--out', out]), /nope\.pth: not found/);
      const txt = path.join(tmp, 'notes.pth');
      fs.writeFileSync(txt, 'not a checkpoint, just some text that is long enough');
      await expectReject(() => cli(['import-torch', txt, '--out', out, '--preset', 'tiny']), /notes\.pth: not a zip archive/);
      assert(!fs.existsSync(`${out}.json`) && !fs.existsSync(`${out}.safetensors`), 'nothing written');
    });

    it('warns when a file named as a release does not have its published SHA-256', async () => {
      const { fs, path } = await mods();
      const named = path.join(tmp, 'multiblock_epoch100.pth');
      fs.copyFileSync(FIXTURE, named);
      const printed = await cli(['import-torch', named, '--out', path.join(tmp, 'renamed'), '--preset', 'tiny']);
      assert(/warning: multiblock_epoch100\.pth has SHA-256 [0-9a-f]{64}, not the published 61334869/.test(printed), printed);
    });
  });
