// Several prepared folders read as one: every record once per epoch in a seed-determined order that
// mixes folders, exact mid-epoch resume, per-folder dtype, per-folder filtering, and folders that
// do not match refused with the folder and the mismatch named. Node only (files).
import { assert, expectReject, isBrowser, useTempDir } from '../helpers.js';

if (!isBrowser)
  describe('data: union of prepared datasets', () => {
    let dir = '';
    const S = 10;
    const LEADS = ['I', 'II', 'V1'];
    // record r of folder f holds f * 100 + r * 10 + i / 8 (exact in f16: below 256, steps of 1/8)
    const value = (f: number, r: number, i: number) => f * 100 + r * 10 + i / 8;
    const records = (f: number, n: number) =>
      Array.from({ length: n }, (_, r) => ({ x: Float32Array.from({ length: LEADS.length * S }, (_, i) => value(f, r, i)), id: `f${f}r${r}`, fold: (r % 3) + 1 }));
    const mods = async () => {
      const [fs, path, os, dataset, union] = await Promise.all([
        import('node:fs'), import('node:path'), import('node:os'), import('../../train/data/dataset.js'), import('../../train/data/union.js'),
      ]);
      return { fs, path, os, ...dataset, ...union };
    };

    useTempDir('union-', (d) => (dir = d));
    before(async () => {
      const { path, writeDataset } = await mods();
      await writeDataset(path.join(dir, 'a'), records(0, 7), { leads: LEADS, fs: 250, samples: S, recordsPerShard: 3 });
      await writeDataset(path.join(dir, 'b'), records(1, 5), { leads: LEADS, fs: 250, samples: S, dtype: 'f16', recordsPerShard: 2 });
    });

    it('covers every record of every folder once per epoch, in a seed-determined order, and resumes exactly', async () => {
      const { path, openDatasetUnion, epochOrder } = await mods();
      const u = await openDatasetUnion([path.join(dir, 'a'), path.join(dir, 'b')]);
      try {
        assert(u.size === 12 && u.recordLength === LEADS.length * S && u.offsets.join() === '0,7', `size ${u.size}, offsets ${u.offsets}`);
        assert(u.locate(6).part === 0 && u.locate(7).part === 1 && u.locate(11).index === 4, 'locate');
        const truth = (i: number) => (i < 7 ? [0, i] : [1, i - 7]);
        for (let i = 0; i < 12; i++) {
          const [f, r] = truth(i);
          assert(u.read(i).every((v, k) => v === value(f, r, k)), `record ${i} (f32 and f16 folders decoded)`);
        }
        const run = (o: { seed: number; epoch: number; startBatch?: number }) => [...u.batches({ batchSize: 5, ...o })];
        const full = run({ seed: 4, epoch: 1 });
        const order = full.flatMap((b) => [...b.indices]);
        assert(full.length === 3 && full[2].indices.length === 2, `batches ${full.map((b) => b.indices.length)}`);
        assert([...order].sort((x, y) => x - y).join() === Array.from({ length: 12 }, (_, i) => i).join(), 'each record once per epoch');
        assert(order.join() === epochOrder(12, { seed: 4, epoch: 1 }).join(), 'the order is epochOrder over the union');
        assert(run({ seed: 4, epoch: 1 }).flatMap((b) => [...b.indices]).join() === order.join(), 'same seed and epoch ⇒ same order');
        assert(run({ seed: 5, epoch: 1 }).flatMap((b) => [...b.indices]).join() !== order.join(), 'another seed, another order');
        assert(run({ seed: 4, epoch: 2 }).flatMap((b) => [...b.indices]).join() !== order.join(), 'next epoch reshuffles');
        assert(full.some((b) => b.indices.some((i) => i < 7) && b.indices.some((i) => i >= 7)), 'batches mix folders');
        for (const b of full)
          b.indices.forEach((i, k) => {
            const [f, r] = truth(i);
            assert(b.x.subarray(k * u.recordLength, (k + 1) * u.recordLength).every((v, j) => v === value(f, r, j)), `batch ${b.batch} slot ${k}`);
          });
        const resumed = run({ seed: 4, epoch: 1, startBatch: 1 });
        assert(resumed.length === 2 && resumed.every((b, i) => b.batch === i + 1 && b.indices.join() === full[i + 1].indices.join() && b.x.every((v, j) => v === full[i + 1].x[j])), 'resume mid-epoch');
        assert(u.batchCount({ batchSize: 5, dropLast: true }) === 2 && run({ seed: 4, epoch: 1 }).length === 3, 'batch counts');
        // per-folder filtering: fold 1 of a, folds 2 and 3 of b
        const sub = u.indicesWhere((r, _i, part) => (part === 0 ? r.fold === 1 : r.fold !== 1));
        assert(sub.join() === '0,3,6,8,9,11', `filtered union indices ${sub}`);
        const got = [...u.batches({ batchSize: 4, seed: 1, subset: sub })].flatMap((b) => [...b.indices]);
        assert([...got].sort((x, y) => x - y).join() === sub.join(), 'subset batches');
        assert((await u.verify()).ok, 'verify');
      } finally {
        u.close();
      }
    });

    it('one folder as a union reads in the same order as the folder itself', async () => {
      const { path, openDatasetUnion, openDataset } = await mods();
      const [u, d] = [await openDatasetUnion([path.join(dir, 'a')]), await openDataset(path.join(dir, 'a'))];
      try {
        const bu = [...u.batches({ batchSize: 3, seed: 7, epoch: 2, dropLast: true })], bd = [...d.batches({ batchSize: 3, seed: 7, epoch: 2, dropLast: true })];
        assert(bu.length === bd.length && bu.every((b, i) => b.indices.join() === bd[i].indices.join() && b.x.every((v, j) => v === bd[i].x[j])), 'same batches');
      } finally {
        u.close();
        d.close();
      }
    });

    it('refuses folders that do not match, naming the folder and the mismatch', async () => {
      const { path, writeDataset, openDatasetUnion } = await mods();
      const a = path.join(dir, 'a');
      const other = async (name: string, o: { leads?: string[]; fs?: number; samples?: number }) => {
        const samples = o.samples ?? S, leads = o.leads ?? LEADS;
        const d = path.join(dir, name);
        await writeDataset(d, [{ x: new Float32Array(leads.length * samples), id: 'x' }], { leads, fs: o.fs ?? 250, samples });
        return d;
      };
      const leads = await other('leads', { leads: ['I', 'V1', 'II'] });
      await expectReject(() => openDatasetUnion([a, leads]), new RegExp(`dataset ${leads} does not match .*leads I,V1,II vs I,II,V1`));
      const rate = await other('rate', { fs: 500 });
      await expectReject(() => openDatasetUnion([a, rate]), /does not match .*sampling rate 500 Hz vs 250 Hz/);
      const win = await other('win', { samples: 12 });
      await expectReject(() => openDatasetUnion([a, win]), /does not match .*window 12 samples vs 10/);
      await expectReject(() => openDatasetUnion([a, path.join(dir, 'b'), a + '/']), /listed twice/);
      // the same folder through a symbolic link is still the same folder
      const { symlinkSync } = await import('node:fs');
      symlinkSync(a, path.join(dir, 'a-link'));
      await expectReject(() => openDatasetUnion([a, path.join(dir, 'a-link')]), /a-link is listed twice/);
      await expectReject(() => openDatasetUnion([a, path.join(dir, 'missing')]), /missing.*manifest\.json/);
    });

    it('splits folder lists and hashes manifests by content', async () => {
      const { fs, path, splitDataList, readManifest, sha256OfManifest, writeDataset } = await mods();
      assert((await splitDataList('x, y')).join('|') === 'x|y' && (await splitDataList(['p,q'])).join('|') === 'p,q', 'lists');
      await expectReject(() => splitDataList('x,,y'), /empty folder name/);
      const comma = path.join(dir, 'c,d');
      await writeDataset(comma, records(2, 2), { leads: LEADS, fs: 250, samples: S });
      assert((await splitDataList(comma)).length === 1, 'a prepared folder whose name has a comma stays whole');
      const m = await readManifest(path.join(dir, 'a'));
      const h = await sha256OfManifest(m);
      assert(h === (await sha256OfManifest({ ...m, created: 'another time' })) && /^[0-9a-f]{64}$/.test(h), 'created does not enter');
      assert(h !== (await sha256OfManifest(await readManifest(path.join(dir, 'b')))), 'other data, other hash');
      assert(h !== (await sha256OfManifest({ ...m, records: [...m.records].reverse() })), 'record order enters');
      fs.rmSync(comma, { recursive: true });
    });
  });
