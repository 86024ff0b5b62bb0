// The PyTorch .pth reader (model/torch-pth.ts) and the import of ECG-JEPA encoder weights
// (model/torch-import.ts). Both runners: hand-built torch.save zips (test/model/torch-builder.ts)
// with tensors of every float dtype, strided views, protocol-4 opcodes, ZIP64 records, and hostile or
// broken files. Node only: the committed fixture test/model/fixtures/torch-tiny.pth, written in
// torch's exact byte layout by scripts/make-torch-fixture.py (regenerate: python3 scripts/make-torch-fixture.py;
// the output is deterministic).
import { encoderParamSpecs, makeConfig, tokenCount } from '../../model/config.js';
import { encoderPosEmbed } from '../../model/posembed.js';
import { f32ToF16Bits } from '../../model/safetensors.js';
import { importTorchEncoder, torchImportInfo } from '../../model/torch-import.js';
import { readTorchFile, TorchTensor, unpickle, type PyValue } from '../../model/torch-pth.js';
import { assert, expectThrow, isBrowser } from '../helpers.js';
import { f32Bytes, fixtureValue, pickle, stateDict, tensor, torchZip, type Py } from './torch-builder.js';

const enc = new TextEncoder();

function get(m: PyValue, k: string): PyValue {
  assert(m instanceof Map, `not a dict: ${String(m)}`);
  return (m as Map<string, PyValue>).get(k)!;
}

function sameValues(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  assert(a.length === b.length, `${what}: ${a.length} values, want ${b.length}`);
  for (let i = 0; i < a.length; i++) assert(a[i] === b[i], `${what}[${i}] = ${a[i]}, want ${b[i]}`);
}

/** A tiny-preset encoder state dict with the fixture's values, as a torch zip. */
function tinyEncoderFile(opts: { drop?: string; extra?: [string, Py]; shape?: Record<string, number[]>; pos?: number[] | null; prefix?: string; bare?: boolean } = {}): Uint8Array {
  const cfg = makeConfig('tiny');
  const storages: Record<string, Uint8Array> = {};
  const entries: [string, Py][] = [];
  const add = (name: string, shape: number[], values: ArrayLike<number>) => {
    const key = String(Object.keys(storages).length);
    storages[key] = f32Bytes(values);
    const stride = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
    entries.push([(opts.prefix ?? '') + name, tensor(key, 'FloatStorage', values.length, 0, shape, stride)]);
  };
  if (opts.pos !== null) add('pos_embed', [tokenCount(cfg), cfg.encoder.dim], opts.pos ?? encoderPosEmbed(cfg));
  for (const [name, spec] of encoderParamSpecs(cfg)) {
    if (name === opts.drop) continue;
    const shape = opts.shape?.[name] ?? [...spec];
    add(name, shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => fixtureValue(name, i)));
  }
  if (opts.extra) entries.push(opts.extra);
  const root: Py = opts.bare ? stateDict(entries) : new Map<string, Py>([['encoder', stateDict(entries)], ['epoch', 7]]);
  return torchZip(pickle(root), storages);
}

describe('model/torch-pth: reading torch.save files from bytes', () => {
  it('protocol 2 as torch writes it: float32/16/bfloat16/64 tensors, a strided view with offset into a shared storage, OrderedDict state ignored', () => {
    const f16 = new Uint16Array([1, -2, 0.5, 65504].map(f32ToF16Bits));
    const bf16 = new Uint16Array([0x3f80, 0xc040, 0x4049]); // 1, -3, 3.140625
    const f64 = new Float64Array([1 / 3, -2.5]);
    // Storage '0': 2 + 6 floats; 'b' is its first 2, 't' a [3, 2] transposed view of the 6 after.
    const shared = f32Bytes([9, 8, 0, 1, 2, 3, 4, 5]);
    const sd = stateDict([
      ['a.weight', tensor('0', 'FloatStorage', 8, 2, [2, 3], [3, 1])],
      ['t', tensor('0', 'FloatStorage', 8, 2, [3, 2], [1, 3])],
      ['b', tensor('0', 'FloatStorage', 8, 0, [2], [1])],
      ['h', tensor('1', 'HalfStorage', 4, 0, [4], [1])],
      ['bf', tensor('2', 'BFloat16Storage', 3, 0, [3], [1])],
      ['d', tensor('3', 'DoubleStorage', 2, 0, [2], [1])],
      ['scalar', tensor('3', 'DoubleStorage', 2, 1, [], [])],
    ]);
    const bytes = torchZip(pickle(new Map<string, Py>([['encoder', sd], ['epoch', 99], ['lr', 0.5], ['big', 70000]])), {
      0: shared, 1: new Uint8Array(f16.buffer), 2: new Uint8Array(bf16.buffer), 3: new Uint8Array(f64.buffer),
    });
    const f = readTorchFile(bytes, 'test.pth');
    assert(f.archive === 'archive' && f.version === '3', `archive ${f.archive}, version ${f.version}`);
    assert(get(f.root, 'epoch') === 99 && get(f.root, 'lr') === 0.5 && get(f.root, 'big') === 70000, 'scalars');
    const sd1 = get(f.root, 'encoder');
    const t = (k: string) => get(sd1, k) as TorchTensor;
    assert(t('a.weight') instanceof TorchTensor && t('a.weight').contiguous && !t('t').contiguous, 'contiguity');
    assert(t('a.weight').storage === t('b').storage, 'one storage object for one key');
    sameValues(t('a.weight').toFloat32(), [0, 1, 2, 3, 4, 5], 'a.weight');
    sameValues(t('t').toFloat32(), [0, 3, 1, 4, 2, 5], 't (transposed view)');
    sameValues(t('b').toFloat32(), [9, 8], 'b');
    sameValues(t('h').toFloat32(), [1, -2, 0.5, 65504], 'float16');
    sameValues(t('bf').toFloat32(), [1, -3, 3.140625], 'bfloat16');
    sameValues(t('d').toFloat32(), [Math.fround(1 / 3), -2.5], 'float64');
    sameValues(t('scalar').toFloat32(), [-2.5], '0-d tensor');
    // The same bytes in an array whose slice() is a view at the same offset, as a Node Buffer's is
    // (fs.readFile gives one): unaligned storages are still copied to an aligned place.
    class ViewSlice extends Uint8Array<ArrayBuffer> {
      override slice(start?: number, end?: number): Uint8Array<ArrayBuffer> {
        return this.subarray(start, end);
      }
    }
    // one more byte of pickle moves every storage off its alignment
    const shifted = torchZip(pickle(new Map<string, Py>([['encoder', sd], ['epoch', 99], ['lr', 0.5], ['big', 70000], ['pad', 'x']])), {
      0: shared, 1: new Uint8Array(f16.buffer), 2: new Uint8Array(bf16.buffer), 3: new Uint8Array(f64.buffer),
    });
    const like = new ViewSlice(new ArrayBuffer(shifted.length));
    like.set(shifted);
    const g = readTorchFile(like, 'buffer.pth');
    const u = (k: string) => get(get(g.root, 'encoder'), k) as TorchTensor;
    assert(['h', 'd'].some((k) => u(k).storage.bytes.byteOffset % (k === 'd' ? 8 : 2) !== 0), 'an unaligned storage in this file');
    sameValues(u('h').toFloat32(), [1, -2, 0.5, 65504], 'float16 from a Buffer-like array');
    sameValues(u('d').toFloat32(), [Math.fround(1 / 3), -2.5], 'float64 from a Buffer-like array');
  });

  it('protocol 4 opcodes (FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE) and ZIP64 end records and extra fields', () => {
    const sd = stateDict([
      ['w', tensor('0', 'FloatStorage', 4, 0, [2, 2], [2, 1])],
      ['same', tensor('0', 'FloatStorage', 4, 1, [3], [1])],
    ]);
    const bytes = torchZip(pickle(new Map<string, Py>([['encoder', sd], ['epoch', 3]]), 4), { 0: f32Bytes([1, 2, 3, 4]) }, { zip64: true, archive: 'multiblock_epoch100' });
    const f = readTorchFile(bytes);
    assert(f.archive === 'multiblock_epoch100', f.archive);
    sameValues((get(get(f.root, 'encoder'), 'w') as TorchTensor).toFloat32(), [1, 2, 3, 4], 'w');
    sameValues((get(get(f.root, 'encoder'), 'same') as TorchTensor).toFloat32(), [2, 3, 4], 'same');
  });

  it('refuses globals outside the whitelist, naming them, and never calls anything else', () => {
    for (const [g, p] of [['os system', 2], ['builtins eval', 4], ['posix system', 2], ['torch load', 2], ['subprocess Popen', 4]] as const) {
      const bytes = torchZip(pickle({ r: [{ g }, ['echo pwned']] }, p), {});
      expectThrow(() => readTorchFile(bytes, 'evil.pth'), `global '${g.replace(' ', '.')}' is not allowed`);
    }
    // A whitelisted name that is not callable may not be REDUCEd.
    expectThrow(() => unpickle(pickle({ r: [{ g: 'torch FloatStorage' }, []] })), 'cannot call torch.FloatStorage');
    // A persistent id without storages to load from, and one of another kind.
    expectThrow(() => unpickle(pickle({ pid: ['storage', { g: 'torch FloatStorage' }, '0', 'cpu', 1] })), 'no storage to load');
    expectThrow(() => readTorchFile(torchZip(pickle({ pid: ['module', 'x'] }), {})), 'unsupported persistent id');
  });

  it('refuses unknown opcodes, truncation, bad views and compressed or non-zip files with clear errors', () => {
    expectThrow(() => unpickle(new Uint8Array([0x80, 2, 0x69, 0x2e])), /unsupported opcode 0x69 \('i'\).*offset 2/);
    expectThrow(() => unpickle(new Uint8Array([0x80, 2, 0x58, 10, 0, 0, 0, 0x61])), 'truncated');
    expectThrow(() => unpickle(new Uint8Array([0x80, 2, 0x4e])), 'no STOP');
    expectThrow(() => unpickle(new Uint8Array([0x80, 2, 0x68, 5, 0x2e])), 'memo 5 is not defined');
    const good = tinyEncoderFile();
    for (const cut of [10, good.length >> 1, good.length - 30]) expectThrow(() => readTorchFile(good.subarray(0, cut), 'cut.pth'), /cut\.pth: (truncated|.*damaged)/);
    // A storage entry whose bytes end early, and a view past the end of its storage.
    const sd = (offset: number) => new Map<string, Py>([['encoder', stateDict([['w', tensor('0', 'FloatStorage', 4, offset, [2, 2], [2, 1])]])]]);
    expectThrow(() => readTorchFile(torchZip(pickle(sd(0)), { 0: f32Bytes([1, 2]) })), "8 bytes for 4 float32 elements");
    expectThrow(() => readTorchFile(torchZip(pickle(sd(1)), { 0: f32Bytes([1, 2, 3, 4]) })), 'reaches element 4 of a 4-element storage');
    expectThrow(() => readTorchFile(torchZip(pickle(sd(0)), { 0: f32Bytes([1, 2, 3, 4]) }, { method: 8 })), "is compressed (method 8, deflate)");
    // One flipped bit in a storage: the entry's CRC-32 no longer matches.
    const flipped = torchZip(pickle(sd(0)), { 0: f32Bytes([1, 2, 3, 4]) });
    const at = flipped.findIndex((_, i) => i + 4 <= flipped.length && new Float32Array(flipped.slice(i, i + 4).buffer)[0] === 3);
    flipped[at] ^= 1;
    expectThrow(() => readTorchFile(flipped, 'flip.pth'), /flip\.pth: entry 'archive\/data\/0': CRC-32 [0-9a-f]+ differs from the recorded [0-9a-f]+/);
    expectThrow(() => readTorchFile(new Uint8Array([0x80, 2, 0x8a, 10, 0x70, 0xa1]), 'old.pth'), 'legacy torch.save format');
    expectThrow(() => readTorchFile(enc.encode('hello, this is not a checkpoint at all'), 'x.txt'), 'not a zip archive');
  });
});

describe('model/torch-import: ECG-JEPA encoder weights from a .pth', () => {
  it('imports a tiny encoder state_dict: every tensor by official name, pos_embed checked, epoch and record kept', () => {
    const r = importTorchEncoder(tinyEncoderFile(), { preset: 'tiny', source: 'tiny.pth', sha256: 'ab' });
    const cfg = makeConfig('tiny');
    assert(r.warnings.length === 0, `warnings: ${r.warnings.join('; ')}`);
    assert(r.info.epoch === 7 && r.info.posEmbedMaxAbsDiff === 0 && r.info.encoderOnly && r.info.sha256 === 'ab', JSON.stringify(r.info));
    assert(JSON.stringify([...r.checkpoint.tensors.keys()]) === JSON.stringify(encoderParamSpecs(cfg).map(([n]) => n)), 'tensor names in spec order');
    for (const [name, spec] of encoderParamSpecs(cfg)) {
      const t = r.checkpoint.tensors.get(name)!;
      assert(t.dtype === 'F32' && JSON.stringify(t.shape) === JSON.stringify(spec), `${name} shape`);
      for (let i = 0; i < t.data.length; i += 7) assert(t.data[i] === fixtureValue(name, i), `${name}[${i}]`);
    }
    assert(torchImportInfo(r.checkpoint)?.source === 'tiny.pth' && r.checkpoint.state.step === 0, 'import record');
  });

  it("a bare state_dict and DataParallel's 'module.' prefix are accepted", () => {
    const r = importTorchEncoder(tinyEncoderFile({ bare: true, prefix: 'module.' }), { preset: 'tiny' });
    assert(r.info.stateDictKey === '' && r.info.epoch === null && r.checkpoint.tensors.size === encoderParamSpecs(makeConfig('tiny')).length, JSON.stringify(r.info));
  });

  it('wrong preset, missing, unexpected and mis-shaped tensors are refused, listing each', () => {
    expectThrow(() => importTorchEncoder(tinyEncoderFile(), { source: 'tiny.pth' }), /tiny\.pth does not fit the 'base' encoder \(it fits --preset tiny\).*\n.*W_P\.weight: shape \[32,50\], the 'base' preset needs \[768,50\]/);
    expectThrow(() => importTorchEncoder(tinyEncoderFile({ drop: 'norm.bias' }), { preset: 'tiny' }), 'missing norm.bias [32]');
    expectThrow(() => importTorchEncoder(tinyEncoderFile({ extra: ['mask_token', tensor('0', 'FloatStorage', 1, 0, [1], [1])] }), { preset: 'tiny' }), 'unexpected mask_token [1]');
    expectThrow(() => importTorchEncoder(tinyEncoderFile({ shape: { 'W_P.bias': [31] } }), { preset: 'tiny' }), 'W_P.bias: shape [31]');
    expectThrow(() => importTorchEncoder(torchZip(pickle(new Map<string, Py>([['model', 1]])), {}), { preset: 'tiny' }), "no 'encoder' state_dict (top-level keys: \"model\")");
  });

  it('warns when the stored pos_embed is not our sin-cos table, or missing', () => {
    const cfg = makeConfig('tiny');
    const pos = Array.from(encoderPosEmbed(cfg));
    pos[5] += 1e-3;
    const r = importTorchEncoder(tinyEncoderFile({ pos }), { preset: 'tiny' });
    assert(r.warnings.length === 1 && /pos_embed .* differs .* by up to 1\.000e-3/.test(r.warnings[0]), r.warnings.join('; '));
    const none = importTorchEncoder(tinyEncoderFile({ pos: null }), { preset: 'tiny' });
    assert(none.info.posEmbedMaxAbsDiff === null && /stores no pos_embed/.test(none.warnings[0]), none.warnings.join('; '));
  });
});

if (!isBrowser)
  describe('model/torch-import: the committed fixture (scripts/make-torch-fixture.py, torch byte layout)', () => {
    const fixture = async () => {
      const [fs, path] = await Promise.all([import('node:fs'), import('node:path')]);
      return new Uint8Array(fs.readFileSync(path.join(process.cwd(), 'test/model/fixtures/torch-tiny.pth')));
    };

    it('reads every tensor as the generator wrote it (aligned STORED entries, ZIP64 end records, f16/f64 storages, a transposed shared view)', async () => {
      const bytes = await fixture();
      const f = readTorchFile(bytes, 'torch-tiny.pth');
      assert(f.archive === 'torch-tiny' && f.version === '3' && get(f.root, 'epoch') === 99, `${f.archive} ${f.version}`);
      const sd = get(f.root, 'encoder') as Map<string, TorchTensor>;
      assert(sd.get('norm.weight')!.dtype === 'float16' && sd.get('norm.bias')!.dtype === 'float64', 'storage dtypes');
      const view = sd.get('encoder_blocks.blocks.1.attn.proj.weight')!;
      assert(!view.contiguous && view.offset === 40 && view.storage === sd.get('encoder_blocks.blocks.1.attn.proj.bias')!.storage, 'the shared transposed view');
      const r = importTorchEncoder(bytes, { preset: 'tiny', source: 'torch-tiny.pth' });
      assert(r.warnings.length === 0 && r.info.epoch === 99 && r.info.posEmbedMaxAbsDiff! < 1e-7, `${JSON.stringify(r.info)} ${r.warnings}`);
      for (const [name, t] of r.checkpoint.tensors) sameValues(t.data, Array.from({ length: t.data.length }, (_, i) => fixtureValue(name, i)), name);
    });

    it('a truncated copy is refused', async () => {
      const bytes = await fixture();
      expectThrow(() => importTorchEncoder(bytes.subarray(0, bytes.length - 100), { preset: 'tiny', source: 'cut.pth' }), 'cut.pth');
    });
  });
