import { Rng } from '../../engine/random.js';
import { makeConfig, withLeads, encoderParamSpecs } from '../../model/config.js';
import type { Checkpoint } from '../../model/checkpoint.js';
import { initEncoderParams } from '../../model/params.js';
import type { StTensor } from '../../model/safetensors.js';
import { assert, isBrowser } from '../helpers.js';

if (!isBrowser) {
  describe('model/checkpoint (Node)', () => {
    let dir = '';
    let fs: typeof import('node:fs/promises');
    let ck: typeof import('../../model/checkpoint.js');

    before(async () => {
      fs = await import('node:fs/promises');
      const os = await import('node:os');
      const path = await import('node:path');
      ck = await import('../../model/checkpoint.js');
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ecg-jepa-ckpt-'));
    });
    after(async () => {
      if (dir) await fs.rm(dir, { recursive: true, force: true });
    });

    function sample(): Checkpoint {
      const config = makeConfig('tiny');
      const rng = new Rng(9);
      const params = initEncoderParams(config, rng);
      const tensors = new Map<string, StTensor>();
      for (const [name, shape] of encoderParamSpecs(config)) tensors.set(name, { dtype: 'F32', shape: [...shape], data: params.get(name)! });
      tensors.set('optim.m.W_P.weight', { dtype: 'F16', shape: [32, 50], data: params.get('W_P.weight')! });
      return { config, state: { step: 17, epoch: 2, rng: rng.state(), data: { order: [3, 1, 2], at: 1 } }, tensors };
    }

    async function expectError(p: Promise<unknown>, re: RegExp): Promise<void> {
      let msg = '';
      try {
        await p;
      } catch (e) {
        msg = (e as Error).message;
      }
      assert(re.test(msg), `"${msg}" does not match ${re}`);
    }

    it('round trip: tensors, config, step, PRNG and data-order state', async () => {
      const c = sample();
      const files = await ck.saveCheckpoint(`${dir}/a`, c);
      assert(files.tensors.endsWith('a.safetensors') && files.meta.endsWith('a.json'), 'file names');
      const back = await ck.loadCheckpoint(`${dir}/a.safetensors`, { expect: makeConfig('tiny') });
      assert(JSON.stringify(back.config) === JSON.stringify(c.config), 'config');
      assert(back.state.step === 17 && back.state.epoch === 2 && JSON.stringify(back.state.data) === '{"order":[3,1,2],"at":1}', 'state');
      const r1 = new Rng(back.state.rng!);
      const r0 = new Rng(c.state.rng!);
      assert(r1.nextU32() === r0.nextU32(), 'PRNG resumes');
      for (const [name, t] of c.tensors) {
        const b = back.tensors.get(name)!;
        assert(b.dtype === t.dtype && JSON.stringify(b.shape) === JSON.stringify(t.shape), name);
        if (t.dtype === 'F32') assert(b.data.every((v, i) => v === t.data[i]), `${name} values`);
      }
      ck.checkTensors(back.tensors, encoderParamSpecs(c.config));
    });

    it('refuses another preset or lead set, naming what differs; lead subsets on request', async () => {
      await ck.saveCheckpoint(`${dir}/b`, sample());
      await expectError(ck.loadCheckpoint(`${dir}/b`, { expect: makeConfig('base') }), /does not fit this model:[\s\S]*preset: checkpoint 'tiny', wanted 'base'[\s\S]*encoder:/);
      const sub = withLeads(makeConfig('tiny'), ['II']);
      await expectError(ck.loadCheckpoint(`${dir}/b`, { expect: sub }), /leads: checkpoint \[I, II, V1\], wanted \[II\]/);
      const ok = await ck.loadCheckpoint(`${dir}/b`, { expect: sub, allowLeadSubset: true });
      assert(ok.state.step === 17, 'subset load');
      const wrong = sample();
      wrong.tensors.set('W_P.weight', { dtype: 'F32', shape: [50, 32], data: new Float32Array(1600) });
      wrong.tensors.delete('norm.bias');
      let msg = '';
      try {
        ck.checkTensors(wrong.tensors, encoderParamSpecs(wrong.config));
      } catch (e) {
        msg = (e as Error).message;
      }
      assert(/W_P\.weight: shape \[50,32\], model needs \[32,50\]/.test(msg) && /missing norm\.bias/.test(msg), msg);
    });

    it('a truncated tensor file or a mixed pair fails clearly', async () => {
      const files = await ck.saveCheckpoint(`${dir}/c`, sample());
      const bytes = await fs.readFile(files.tensors);
      await fs.writeFile(files.tensors, bytes.subarray(0, bytes.length - 100));
      await expectError(ck.loadCheckpoint(`${dir}/c`), /c\.safetensors: truncated: tensor '.+' ends at byte/);
      await fs.writeFile(files.tensors, bytes);
      await ck.loadCheckpoint(`${dir}/c`);
      // A tensor file from another save next to this sidecar (as a crash between the renames leaves).
      const other = await ck.saveCheckpoint(`${dir}/d`, sample());
      await fs.copyFile(other.tensors, files.tensors);
      await expectError(ck.loadCheckpoint(`${dir}/c`), /comes from another save/);
      await expectError(ck.loadCheckpoint(`${dir}/missing`), /missing\.json: not found/);
    });

    it('atomic writes: no temp files left, and a failed write keeps the old file', async () => {
      const sub = `${dir}/atomic`;
      await ck.saveCheckpoint(`${sub}/e`, sample());
      await ck.saveCheckpoint(`${sub}/e`, sample()); // overwrite
      let names = await fs.readdir(sub);
      assert(JSON.stringify(names.sort()) === '["e.json","e.safetensors"]', `files: ${names}`);
      const before = await fs.readFile(`${sub}/e.json`, 'utf8');
      // Make the final rename fail: the target is a non-empty directory.
      await fs.mkdir(`${sub}/f.json/x`, { recursive: true });
      await expectError(ck.writeFileAtomic(`${sub}/f.json`, 'new'), /EISDIR|ENOTEMPTY|EEXIST|EPERM/);
      names = await fs.readdir(sub);
      assert(!names.some((n) => n.endsWith('.tmp')), `temp file left: ${names}`);
      assert((await fs.readFile(`${sub}/e.json`, 'utf8')) === before, 'old file intact');
    });
  });
}
