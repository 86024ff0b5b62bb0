import { Rng } from '../../engine/random.js';
import { makeConfig, withLeads, encoderParamSpecs } from '../../model/config.js';
import { checkpointFromBytes, checkpointToBytes, type Checkpoint } from '../../model/checkpoint.js';
import { EcgJepa } from '../../model/jepa.js';
import { initEncoderParams } from '../../model/params.js';
import type { StTensor } from '../../model/safetensors.js';
import { assert, expectThrow, getEngine, isBrowser, randomArray } from '../helpers.js';

/** Bit-exact equality of two checkpoints' tensors (names, order, dtypes, shapes, bits). */
function assertSameTensors(a: Map<string, StTensor>, b: Map<string, StTensor>, what: string): void {
  assert(JSON.stringify([...a.keys()]) === JSON.stringify([...b.keys()]), `${what}: tensor names`);
  for (const [name, t] of a) {
    const u = b.get(name)!;
    assert(u.dtype === t.dtype && JSON.stringify(u.shape) === JSON.stringify(t.shape), `${what}: ${name} dtype/shape`);
    const bits = (x: StTensor) => new Uint8Array(x.data.buffer, x.data.byteOffset, x.data.byteLength);
    const [p, q] = [bits(t), bits(u)];
    assert(p.length === q.length && p.every((v, i) => v === q[i]), `${what}: ${name} values differ`);
  }
}

// Environment-neutral: what a browser does with a fetched checkpoint.
describe('model/checkpoint from bytes', () => {
  it("round trip of a tiny model's checkpoint: tensors bit-exact, config and state, and the model restored from it", async () => {
    const engine = await getEngine();
    const cfg = makeConfig('tiny');
    const a = new EcgJepa(engine, cfg, { seed: 21 });
    const b = new EcgJepa(engine, cfg, { seed: 22 });
    const x = engine.upload(randomArray(new Rng(5), 2 * 3 * 500), [2, 3, 500]);
    try {
      a.trainStep(x).dispose(); // moments and teacher differ from the student
      const ck = await a.toCheckpoint({ note: 'bytes' });
      ck.tensors.set('extra.f16', { dtype: 'F16', shape: [3], data: Uint16Array.of(0x3c00, 0x8001, 0x7e00) });
      const bytes = checkpointToBytes(ck, { tensorsName: 'model.safetensors' });
      assert(JSON.parse(bytes.meta).tensors === 'model.safetensors', 'sidecar names the tensor file');
      for (const meta of [bytes.meta, JSON.parse(bytes.meta)]) {
        // As fetch gives it: an ArrayBuffer, not at offset 0 of its own buffer.
        const padded = new Uint8Array(bytes.tensors.length + 3);
        padded.set(bytes.tensors, 3);
        const back = checkpointFromBytes(padded.subarray(3).slice().buffer, meta, { expect: cfg });
        assertSameTensors(ck.tensors, back.tensors, 'bytes round trip');
        assert(JSON.stringify(back.config) === JSON.stringify(ck.config) && JSON.stringify(back.state) === JSON.stringify(ck.state), 'config and state');
        assert(checkpointFromBytes(padded.subarray(3), meta).tensors.size === ck.tensors.size, 'a Uint8Array view');
      }
      b.fromCheckpoint(checkpointFromBytes(bytes.tensors, bytes.meta));
      const [ra, rb] = [a.representation(x), b.representation(x)];
      const [va, vb] = [await engine.read(ra), await engine.read(rb)];
      ra.dispose();
      rb.dispose();
      assert(va.every((v, i) => v === vb[i]) && b.step === a.step, 'the restored model gives the same representation');
    } finally {
      x.dispose();
      a.dispose();
      b.dispose();
    }
  });

  it('refuses corrupt or mismatched bytes with messages that name the part', () => {
    const config = makeConfig('tiny');
    const tensors = new Map<string, StTensor>([['w', { dtype: 'F32', shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) }]]);
    const ck = { config, state: { step: 3 } };
    const { tensors: bytes, meta } = checkpointToBytes({ ...ck, tensors });
    const source = { meta: 'https://x/ck.json', tensors: 'https://x/ck.safetensors' };
    expectThrow(() => checkpointFromBytes(bytes.subarray(0, bytes.length - 4), meta, { source }), /^checkpoint https:\/\/x\/ck\.safetensors: truncated: tensor 'w' ends at byte 24 of the data, the file has 20/);
    expectThrow(() => checkpointFromBytes(bytes.subarray(0, 5), meta), /^checkpoint tensors: truncated: 5 bytes/);
    const junk = bytes.slice();
    junk[12] = 0xff; // inside the JSON header
    expectThrow(() => checkpointFromBytes(junk, meta), /^checkpoint tensors: header is not valid JSON/);
    const big = bytes.slice();
    big[6] = 1; // header length ~ 2^48
    expectThrow(() => checkpointFromBytes(big, meta), /header length \d+ is implausible/);
    expectThrow(() => checkpointFromBytes(bytes, meta.slice(0, 40), { source }), /^checkpoint https:\/\/x\/ck\.json: unreadable \(/);
    expectThrow(() => checkpointFromBytes(bytes, '{"format":"other"}'), /^checkpoint metadata: not an ecg-jepa checkpoint \(format "other"\)/);
    expectThrow(() => checkpointFromBytes(bytes, { ...JSON.parse(meta), version: 9 }), /version 9, this build reads 1/);
    expectThrow(() => checkpointFromBytes(bytes, { ...JSON.parse(meta), state: { step: -1 } }), /state\.step must be a non-negative integer, got -1/);
    for (const name of ['../x.safetensors', 'a/b.safetensors', '..', 7])
      expectThrow(() => checkpointFromBytes(bytes, { ...JSON.parse(meta), tensors: name }), /its tensor file must be a file name beside it/);
    expectThrow(() => checkpointFromBytes(bytes, { ...JSON.parse(meta), config: { ...config, patches: 0 } }), /^checkpoint metadata: stored /);
    expectThrow(() => checkpointFromBytes(bytes, meta, { expect: makeConfig('base') }), /^checkpoint metadata does not fit this model:[\s\S]*preset: checkpoint 'tiny', wanted 'base'/);
    // Tensors of another save next to this sidecar.
    const other = checkpointToBytes({ ...ck, tensors });
    expectThrow(() => checkpointFromBytes(other.tensors, meta, { source }), /^checkpoint https:\/\/x\/ck\.json: https:\/\/x\/ck\.safetensors comes from another save/);
    expectThrow(() => checkpointToBytes({ ...ck, state: { step: 1.5 }, tensors }), /state\.step must be a non-negative integer/);
    assert(checkpointFromBytes(bytes, meta).tensors.get('w')!.data[5] === 6, 'the good pair loads');
  });
});

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

    it('a truncated tensor file, a mixed pair or a flipped byte fails clearly', async () => {
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
      // one byte of a tensor's data flipped on disk (the file still parses): its recorded SHA-256 refuses it
      const flipped = Uint8Array.from(bytes);
      flipped[flipped.length - 5] ^= 0x10;
      await fs.writeFile(files.tensors, flipped);
      await expectError(ck.loadCheckpoint(`${dir}/c`), /c\.safetensors: its bytes do not match the SHA-256 .*c\.json records/);
      await fs.writeFile(files.tensors, bytes);
      await ck.loadCheckpoint(`${dir}/c`);
    });

    it('a crash at any point of a save leaves a whole pair: tensors alternate between two names, the sidecar commits', async () => {
      const sub = `${dir}/crash`;
      const first = sample(), second = sample();
      second.state.step = 18;
      const a = await ck.saveCheckpoint(`${sub}/g`, first);
      assert(a.tensors.endsWith('g.safetensors'), a.tensors);
      // a save killed after its tensors' rename, before the sidecar's: the old pair still loads
      const torn = ck.checkpointToBytes(second, { tensorsName: 'g.alt.safetensors' });
      await ck.writeFileAtomic(`${sub}/g.alt.safetensors`, torn.tensors);
      assert((await ck.loadCheckpoint(`${sub}/g`)).state.step === 17, 'the committed save');
      // the next save overwrites the stray file, commits, and removes the previous tensors
      const b = await ck.saveCheckpoint(`${sub}/g`, second);
      assert(b.tensors.endsWith('g.alt.safetensors'), b.tensors);
      assert((await ck.loadCheckpoint(`${sub}/g`)).state.step === 18, 'the new save');
      assert(JSON.stringify((await fs.readdir(sub)).sort()) === '["g.alt.safetensors","g.json"]', `files: ${await fs.readdir(sub)}`);
      // and back to the first name
      const c = await ck.saveCheckpoint(`${sub}/g`, first);
      assert(c.tensors.endsWith('g.safetensors') && (await ck.loadCheckpoint(`${sub}/g`)).state.step === 17, c.tensors);
      assert(JSON.stringify((await fs.readdir(sub)).sort()) === '["g.json","g.safetensors"]', `files: ${await fs.readdir(sub)}`);
    });

    it('the temp files of writes killed mid-way are found and removed, nothing else', async () => {
      const sub = `${dir}/temps`;
      await ck.saveCheckpoint(`${sub}/h`, sample());
      const left = ['.h.safetensors.4242.0123abcd.tmp', '.h.json.17.deadbeef.tmp'];
      for (const n of left) await fs.writeFile(`${sub}/${n}`, 'partial');
      await fs.writeFile(`${sub}/.hidden`, 'mine');
      const removed = await ck.removeAtomicTemps(sub);
      assert(JSON.stringify(removed.sort()) === JSON.stringify([...left].sort()), `removed ${removed}`);
      assert(JSON.stringify((await fs.readdir(sub)).sort()) === '[".hidden","h.json","h.safetensors"]', `left: ${await fs.readdir(sub)}`);
      assert((await ck.removeAtomicTemps(`${dir}/no-such-folder`)).length === 0, 'no folder: nothing');
    });

    it('atomic writes: no temp files left, and a failed write keeps the old file', async () => {
      const sub = `${dir}/atomic`;
      await ck.saveCheckpoint(`${sub}/e`, sample());
      await ck.saveCheckpoint(`${sub}/e`, sample()); // overwrite: the tensors go to the other name
      let names = await fs.readdir(sub);
      assert(JSON.stringify(names.sort()) === '["e.alt.safetensors","e.json"]', `files: ${names}`);
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
