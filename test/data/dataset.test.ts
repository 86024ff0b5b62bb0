// Prepared-dataset format: f16 conversion, data order, shards + manifest on disk, deterministic and
// resumable batches, checksum verification.
import { assert, isBrowser } from '../helpers.js';
import { decodeInto, encodeRecords, epochOrder } from '../../train/data/dataset.js';
import { f32ToF16Bits, halfToFloatTable } from '../../model/safetensors.js';

describe('data: prepared dataset', () => {
  it('converts float32 ↔ float16 with round-to-nearest-even', () => {
    const cases: [number, number][] = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00],
      [-Infinity, 0xfc00], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [1.5 * 2 ** -25, 0x0001], [2 ** -14, 0x0400],
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [0.1, 0x2e66],
    ];
    for (const [v, h] of cases) assert(f32ToF16Bits(v) === h, `toHalf(${v}) = 0x${f32ToF16Bits(v).toString(16)}, want 0x${h.toString(16)}`);
    assert((f32ToF16Bits(NaN) & 0x7c00) === 0x7c00 && (f32ToF16Bits(NaN) & 0x3ff) !== 0, 'NaN stays NaN');
    const t = halfToFloatTable();
    for (const [v, h] of cases) if (Number.isFinite(v) && Math.abs(v) <= 65504 && h !== 0 && v === t[h]) assert(t[f32ToF16Bits(v)] === v, `exact ${v}`);
    assert(Number.isNaN(t[0x7e00]) && t[0x7c00] === Infinity && t[0x3555] === 0.333251953125, 'table');
    // Round trip of every finite half value
    for (let h = 0; h < 0x7c00; h++) assert(f32ToF16Bits(t[h]) === h, `round trip 0x${h.toString(16)}`);
  });

  it('encodes and decodes records in f32 and f16', () => {
    const recs = [Float32Array.from([1, -2.5, 3.25, 1e-3]), Float32Array.from([0, 7, -8, 0.1])];
    const f32 = encodeRecords(recs, 'f32');
    const out = new Float32Array(8);
    decodeInto(f32, 'f32', out);
    assert(f32.length === 32 && [...out].join() === [...recs[0], ...recs[1]].join(), 'f32 exact');
    const f16 = encodeRecords(recs, 'f16');
    decodeInto(f16.subarray(8), 'f16', out, 4);
    assert(f16.length === 16 && out[4] === 0 && out[5] === 7 && out[6] === -8 && Math.abs(out[7] - 0.1) < 1e-4, `f16 ${[...out]}`);
  });

  it('epoch order: a seeded permutation of the subset, reproducible, different per epoch', () => {
    const a = epochOrder(100, { seed: 3, epoch: 0 });
    const b = epochOrder(100, { seed: 3, epoch: 0 });
    const c = epochOrder(100, { seed: 3, epoch: 1 });
    const d = epochOrder(100, { seed: 4, epoch: 0 });
    assert(a.join() === b.join(), 'same seed and epoch ⇒ same order');
    assert(a.join() !== c.join() && a.join() !== d.join(), 'epoch and seed change the order');
    assert([...a].sort((x, y) => x - y).join() === Array.from({ length: 100 }, (_, i) => i).join(), 'a permutation');
    assert(epochOrder(5, { shuffle: false }).join() === '0,1,2,3,4', 'unshuffled');
    const sub = epochOrder(100, { seed: 1, subset: [5, 7, 9, 11] });
    assert([...sub].sort((x, y) => x - y).join() === '5,7,9,11', 'subset permuted');
  });

  if (!isBrowser)
    describe('on disk (Node)', () => {
      let dir = '';
      const L = 3, S = 10, N = 23;
      const recordValue = (r: number, i: number) => r * 100 + i * 0.5 - 7;
      const records = Array.from({ length: N }, (_, r) => ({
        x: Float32Array.from({ length: L * S }, (_, i) => recordValue(r, i)),
        id: `rec${r}`,
        labels: { cls: r % 3 },
        fold: (r % 10) + 1,
        source: `src/${r}.hea`,
      }));

      before(async () => {
        const { mkdtempSync } = await import('node:fs');
        const { join } = await import('node:path');
        const { tmpdir } = await import('node:os');
        dir = mkdtempSync(join(tmpdir(), 'dataset-'));
      });
      after(async () => {
        const { rmSync } = await import('node:fs');
        rmSync(dir, { recursive: true, force: true });
      });

      it('writes shards + manifest and reads records back', async () => {
        const { writeDataset, openDataset } = await import('../../train/data/dataset.js');
        const { join } = await import('node:path');
        const { statSync } = await import('node:fs');
        const m = await writeDataset(join(dir, 'a'), records, { leads: ['I', 'II', 'V1'], fs: 250, samples: S, recordsPerShard: 5 });
        assert(m.shards.length === 5 && m.shards[4].records === 3 && m.recordBytes === L * S * 4, `shards ${JSON.stringify(m.shards.map((s) => s.records))}`);
        assert(statSync(join(dir, 'a', 'shard-00004.bin')).size === 3 * L * S * 4, 'shard size = records × stride (no header)');
        const ds = await openDataset(join(dir, 'a'), { verify: true });
        try {
          assert(ds.size === N && ds.recordLength === L * S, 'size');
          for (const r of [0, 4, 5, 22]) assert(ds.read(r).every((v, i) => v === recordValue(r, i)), `record ${r}`);
          assert(ds.manifest.records[7].id === 'rec7' && ds.manifest.records[7].shard === 1 && ds.manifest.records[7].index === 2, 'manifest record');
          assert((ds.manifest.records[7].labels as { cls: number }).cls === 1 && ds.manifest.records[7].fold === 8, 'labels and fold');
        } finally {
          ds.close();
        }
      });

      it('batches are deterministic, cover the epoch, and resume exactly from startBatch', async () => {
        const { openDataset, indicesWhere } = await import('../../train/data/dataset.js');
        const { join } = await import('node:path');
        const ds = await openDataset(join(dir, 'a'));
        try {
          const run = (o: { epoch: number; startBatch?: number; dropLast?: boolean; shuffle?: boolean }) => [...ds.batches({ batchSize: 4, seed: 9, ...o })];
          const full = run({ epoch: 2 });
          assert(full.length === 6 && full[5].indices.length === 3, `6 batches, last of 3: ${full.map((b) => b.indices.length)}`);
          const seen = full.flatMap((b) => [...b.indices]).sort((a, b) => a - b);
          assert(seen.join() === Array.from({ length: N }, (_, i) => i).join(), 'each record once per epoch');
          for (const b of full)
            b.indices.forEach((r, k) => assert(b.x.subarray(k * L * S, (k + 1) * L * S).every((v, i) => v === recordValue(r, i)), `batch ${b.batch} slot ${k}`));
          const again = run({ epoch: 2 });
          assert(again.every((b, i) => b.indices.join() === full[i].indices.join()), 'same seed+epoch ⇒ same batches');
          const resumed = run({ epoch: 2, startBatch: 3 });
          assert(resumed.length === 3 && resumed.every((b, i) => b.batch === i + 3 && b.indices.join() === full[i + 3].indices.join() && b.x.every((v, j) => v === full[i + 3].x[j])), 'resume mid-epoch');
          assert(run({ epoch: 3 })[0].indices.join() !== full[0].indices.join(), 'next epoch reshuffles');
          assert(run({ epoch: 2, startBatch: 6 }).length === 0, 'resuming at the epoch end: nothing left');
          for (const startBatch of [-1, 1.5, 7]) {
            let msg = '';
            try {
              run({ epoch: 2, startBatch });
            } catch (e) {
              msg = (e as Error).message;
            }
            assert(msg === `startBatch must be an integer in [0, 6] (the epoch's batches), got ${startBatch}`, `startBatch ${startBatch}: ${msg}`);
          }
          assert(run({ epoch: 2, dropLast: true }).length === 5 && ds.batchCount({ batchSize: 4, dropLast: true }) === 5, 'dropLast');
          const seq = run({ epoch: 0, shuffle: false });
          assert(seq[1].indices.join() === '4,5,6,7' && seq[1].x.every((v, j) => v === recordValue(4 + Math.floor(j / (L * S)), j % (L * S))), 'unshuffled, runs across a shard boundary');
          const train = indicesWhere(ds.manifest, (r) => r.fold !== 10);
          assert(train.length === N - 2 && !train.includes(9) && !train.includes(19), `fold filter ${train}`);
          const sub = [...ds.batches({ batchSize: 2, subset: [1, 3, 20], seed: 1 })];
          assert(sub.length === 2 && sub.flatMap((b) => [...b.indices]).sort((a, b) => a - b).join() === '1,3,20', 'subset');
        } finally {
          ds.close();
        }
      });

      it('f16 datasets, checksum verification and size checks', async () => {
        const { writeDataset, openDataset } = await import('../../train/data/dataset.js');
        const { join } = await import('node:path');
        const { readFileSync, writeFileSync, truncateSync } = await import('node:fs');
        const d = join(dir, 'h');
        const m = await writeDataset(d, records.slice(0, 6), { leads: ['I', 'II', 'V1'], fs: 250, samples: S, dtype: 'f16', recordsPerShard: 4 });
        assert(m.recordBytes === L * S * 2 && m.dtype === 'f16', 'f16 stride');
        const ds = await openDataset(d);
        assert(ds.read(5).every((v, i) => Math.abs(v - recordValue(5, i)) <= Math.abs(recordValue(5, i)) * 1e-3), 'f16 values');
        assert((await ds.verify()).ok, 'verify ok');
        ds.close();
        const shard = join(d, 'shard-00001.bin');
        const bytes = readFileSync(shard);
        bytes[3] ^= 0x40;
        writeFileSync(shard, bytes);
        let msg = '';
        await openDataset(d, { verify: true }).catch((e) => (msg = String(e)));
        assert(msg.includes('checksum mismatch in shard-00001.bin'), `verify catches a flipped bit: ${msg}`);
        truncateSync(shard, 10);
        msg = '';
        await openDataset(d).catch((e) => (msg = String(e)));
        assert(msg.includes('shard-00001.bin has 10 bytes'), `open catches a short shard: ${msg}`);
        // a manifest whose record table points past a shard, or twice at one slot
        const e = join(dir, 'e');
        await writeDataset(e, records.slice(0, 6), { leads: ['I', 'II', 'V1'], fs: 250, samples: S, recordsPerShard: 4 });
        const manifest = JSON.parse(readFileSync(join(e, 'manifest.json'), 'utf8'));
        type M = { records: { shard: number; index: number }[]; shards: { file: string }[]; leads: string[]; fs: number; dtype: string; recordBytes: number; dataSha256?: string };
        const EDITED = 'differs from when it was written';
        for (const [edit, want, keepHash] of [
          // written with its data hash: any edit of what fixes the samples is caught, consistent or not
          [(m: M) => { const [a, b] = m.records; [a.shard, a.index, b.shard, b.index] = [b.shard, b.index, a.shard, a.index]; }, EDITED, true], // labels on another record's data
          [(m: M) => Object.assign(m, { dtype: 'f16', recordBytes: m.recordBytes / 2 }), EDITED, true],
          [(m: M) => m.leads.reverse(), EDITED, true],
          // a manifest from before the hash: the structural checks
          [(m: M) => (m.records[5].index = 4), 'manifest record 5 (rec5) points at shard 1 index 4, which is not there', false],
          [(m: M) => (m.records[5] = { ...m.records[5], shard: 0, index: 1 }), 'manifest records share shard 0 index 1 (record 5, rec5)', false],
          [(m: M) => (m.fs = 0), 'sampling rate 0 is not positive', false],
          [(m: M) => (m.leads[2] = 'I'), 'leads ["I","II","I"] are not distinct names', false],
          [(m: M) => (m.shards[1].file = '../shard-00001.bin'), 'are not distinct plain file names', false],
          [(m: M) => (m.shards[1].file = m.shards[0].file), 'are not distinct plain file names', false],
        ] as const) {
          const m = JSON.parse(JSON.stringify(manifest)) as M;
          assert(typeof m.dataSha256 === 'string', 'the manifest carries its data hash');
          edit(m);
          if (!keepHash) delete m.dataSha256;
          writeFileSync(join(e, 'manifest.json'), JSON.stringify(m));
          msg = '';
          await openDataset(e).catch((err) => (msg = String(err)));
          assert(msg.includes(want), `open catches a bad manifest (${want}): ${msg}`);
        }
      });
    });
});
