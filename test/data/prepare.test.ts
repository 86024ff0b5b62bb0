// prepare() on tiny fake source trees: manifest, shards, checksums, the skip report, resume after a
// simulated crash, worker threads giving the same bytes, and every source kind. Node only.
import { assert, isBrowser, useTempDir } from '../helpers.js';
import { PTBXL_ROWS, ptbxlDatabaseCsv, SCP_STATEMENTS_CSV, testSignal, wfdb16Record } from './fixtures.js';

if (!isBrowser)
  describe('data: prepare', function () {
    this.timeout(60_000);
    let tmp = '';
    let ptbxlRoot = '';
    const FS = 500, N = 5000;

    const mods = async () => {
      const fs = await import('node:fs');
      const path = await import('node:path');
      const os = await import('node:os');
      const prep = await import('../../train/data/prepare.js');
      const ds = await import('../../train/data/dataset.js');
      return { fs, path, os, ...prep, ...ds };
    };

    useTempDir('prepare-', (d) => (tmp = d));
    before(async () => {
      const { fs, path } = await mods();
      // PTB-XL: rows 1–5 of the fixture CSV + the real row 15513, whose files are absent.
      ptbxlRoot = path.join(tmp, 'ptbxl');
      fs.mkdirSync(path.join(ptbxlRoot, 'records500', '00000'), { recursive: true });
      fs.writeFileSync(path.join(ptbxlRoot, 'ptbxl_database.csv'), ptbxlDatabaseCsv(PTBXL_ROWS.slice(0, 5)));
      fs.writeFileSync(path.join(ptbxlRoot, 'scp_statements.csv'), SCP_STATEMENTS_CSV);
      for (let id = 1; id <= 5; id++) {
        const name = `${String(id).padStart(5, '0')}_hr`;
        // record 5 has a flat V3 (lead 8 of 12)
        const { hea, dat } = wfdb16Record(name, FS, N, (k, t) => (id === 5 && k === 8 ? 0 : testSignal(k, t, FS, id)));
        if (id === 4) dat[1001] ^= 0x10; // corrupt one sample: checksum mismatch
        fs.writeFileSync(path.join(ptbxlRoot, 'records500', '00000', `${name}.hea`), hea);
        fs.writeFileSync(path.join(ptbxlRoot, 'records500', '00000', `${name}.dat`), dat);
      }
    });

    it('PTB-XL → shards, manifest (labels, folds, checksums) and a skip report with reasons', async () => {
      const { fs, path, prepare, openDataset } = await mods();
      const { preprocess } = await import('../../train/data/preprocess.js');
      const { loadWfdbRecord } = await import('../../train/data/wfdb.js');
      const out = path.join(tmp, 'out-a');
      const seen: number[] = [];
      const res = await prepare({ source: 'ptbxl', root: ptbxlRoot, out, workers: 0, recordsPerShard: 2, onProgress: (p) => seen.push(p.done) });
      assert(res.written === 3 && res.skipped === 3 && res.shardsWritten === 3, `written ${res.written}, skipped ${res.skipped}, shards ${res.shardsWritten}`);
      assert(JSON.stringify(res.skippedByReason) === JSON.stringify({ checksum: 1, flat: 1, 'missing-file': 1 }), `reasons ${JSON.stringify(res.skippedByReason)}`);
      assert(seen[seen.length - 1] === 6 && seen.includes(3), `progress ${seen}`);
      const skipped = fs.readFileSync(path.join(out, 'skipped.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert(skipped.length === 3 && skipped.map((s) => s.id).join() === '4,5,15513', `skip report ${JSON.stringify(skipped)}`);
      assert(skipped[1].message.includes('V3 flat') && skipped[2].source === 'records500/15000/15513_hr.hea', `skip detail ${JSON.stringify(skipped)}`);

      const ds = await openDataset(out, { verify: true });
      try {
        const m = ds.manifest;
        assert(m.leads.join() === 'I,II,V1,V2,V3,V4,V5,V6' && m.fs === 250 && m.samples === 2500 && m.dtype === 'f32', 'defaults: 8 leads, 250 Hz, 10 s');
        assert(m.records.map((r) => r.id).join() === '1,2,3' && m.shards.map((s) => s.records).join() === '2,1,0', `records ${m.records.map((r) => r.id)} shards ${m.shards.map((s) => s.records)}`);
        assert(m.skipped.count === 3 && m.skipped.report === 'skipped.jsonl', 'manifest skip counts');
        const r3 = m.records[2];
        const labels = r3.labels as { superdiagnostic: string[]; scp: Record<string, number> };
        assert(r3.fold === 5 && labels.superdiagnostic.join() === 'MI' && labels.scp.ASMI === 100 && r3.source === 'records500/00000/00003_hr.hea', `record 3 ${JSON.stringify(r3)}`);
        assert((r3.meta as { patientId: number }).patientId === 20372, 'patient id kept for patient-level splits');
        const direct = preprocess(await loadWfdbRecord(path.join(ptbxlRoot, 'records500/00000/00002_hr')), { leads: 8, fs: 250, seconds: 10 });
        assert(direct.ok && ds.read(1).every((v, i) => v === direct.signals[i]), 'stored values = preprocess(reader(record))');
      } finally {
        ds.close();
      }
    });

    it('resumes after a crash, rebuilds a corrupted shard, drops stale files', async () => {
      const { fs, path, prepare } = await mods();
      // 2-s windows keep this test fast; the reference is an uninterrupted run with the same settings
      const opts = { source: 'ptbxl' as const, root: ptbxlRoot, workers: 0, recordsPerShard: 2, seconds: 2 };
      const ref = (await prepare({ ...opts, out: path.join(tmp, 'out-ref') })).manifest;
      const out = path.join(tmp, 'out-b');
      let err = '';
      await prepare({
        ...opts,
        out,
        onProgress: (p) => {
          if (p.phase === 'records' && p.done === 3) throw new Error('simulated crash');
        },
      }).catch((e) => (err = String(e)));
      assert(err.includes('simulated crash'), `crash propagates: ${err}`);
      assert(fs.existsSync(path.join(out, 'shard-00000.json')) && !fs.existsSync(path.join(out, 'shard-00001.json')) && !fs.existsSync(path.join(out, 'manifest.json')), 'only shard 0 finished');
      fs.writeFileSync(path.join(out, 'shard-00001.bin.tmp-1-abc'), 'half');
      const again = await prepare({ ...opts, out });
      assert(again.shardsReused === 1 && again.shardsWritten === 2, `reused ${again.shardsReused}, written ${again.shardsWritten}`);
      assert(!fs.existsSync(path.join(out, 'shard-00001.bin.tmp-1-abc')), 'temp file removed');
      const sha = (m: { shards: { sha256: string }[] }) => m.shards.map((s) => s.sha256).join();
      assert(sha(again.manifest) === sha(ref) && again.manifest.records.map((r) => r.id).join() === '1,2,3', 'same shards as an uninterrupted run');

      const shard1 = path.join(out, 'shard-00001.bin');
      const b = fs.readFileSync(shard1);
      b[100] ^= 0xff;
      fs.writeFileSync(shard1, b);
      fs.writeFileSync(path.join(out, 'shard-00009.bin'), '');
      const third = await prepare({ ...opts, out });
      assert(third.shardsReused === 2 && third.shardsWritten === 1 && sha(third.manifest) === sha(ref), `corrupted shard rebuilt (reused ${third.shardsReused})`);
      assert(!fs.existsSync(path.join(out, 'shard-00009.bin')), 'stale shard removed');

      const f16 = await prepare({ ...opts, out, dtype: 'f16', leads: 12 });
      assert(f16.shardsWritten === 3 && f16.manifest.recordBytes === 12 * 500 * 2 && f16.manifest.leads.length === 12, 'changed settings rebuild every shard');
    });

    it('worker threads produce the same shards as the in-thread run', async () => {
      const { fs, path, prepare } = await mods();
      const ref = JSON.parse(fs.readFileSync(path.join(tmp, 'out-ref', 'manifest.json'), 'utf8'));
      const logs: string[] = [];
      const res = await prepare({ source: 'ptbxl', root: ptbxlRoot, out: path.join(tmp, 'out-w'), workers: 2, recordsPerShard: 2, seconds: 2, log: (m) => logs.push(m) });
      assert(res.workers === 2, `ran on 2 workers (log: ${logs.join('; ')})`);
      assert(res.manifest.shards.map((s) => s.sha256).join() === ref.shards.map((s: { sha256: string }) => s.sha256).join(), 'identical bytes');
      assert(JSON.stringify(res.skippedByReason) === JSON.stringify({ checksum: 1, flat: 1, 'missing-file': 1 }), `worker skip reasons ${JSON.stringify(res.skippedByReason)}`);
    });

    it('a library caller gets worker threads whatever its script is called; records a crashed worker took down are retried on the next run', async () => {
      const { fs, path, prepare } = await mods();
      const { execFileSync } = await import('node:child_process');
      const dir = path.join(tmp, 'caller');
      fs.mkdirSync(dir, { recursive: true });
      // a caller's own script named as the package's worker bundle (train.mjs) must not become the worker
      const script = path.join(dir, 'train.mjs');
      const lib = path.resolve('dist/train.mjs');
      fs.writeFileSync(script, `import { prepare } from ${JSON.stringify(lib)};
const r = await prepare({ source: 'synth', root: '', out: ${JSON.stringify(path.join(dir, 'out'))}, synth: { n: 6 }, workers: 2, seconds: 2 });
console.log(JSON.stringify({ written: r.written, workers: r.workers }));`);
      const said = JSON.parse(execFileSync(process.execPath, [script], { encoding: 'utf8' }).trim().split('\n').pop()!);
      assert(said.written === 6 && said.workers === 2, `caller run: ${JSON.stringify(said)}`);
      // a worker that dies: its records are reported, and not kept skipped by a rerun
      const crash = path.join(dir, 'crash.mjs');
      fs.writeFileSync(crash, "throw new Error('boom');\n");
      const out = path.join(dir, 'out-crash');
      const opts = { source: 'synth' as const, root: '', out, synth: { n: 4 }, seconds: 2, recordsPerShard: 4 };
      const first = await prepare({ ...opts, workers: 1, workerEntry: crash });
      assert(first.written === 0 && first.skippedByReason['worker-crash'] === 4, `crashed: ${JSON.stringify(first.skippedByReason)}`);
      const again = await prepare({ ...opts, workers: 0 });
      assert(again.written === 4 && again.shardsReused === 0, `rerun: written ${again.written}, reused ${again.shardsReused}`);
    });

    it('a re-run that dies midway leaves no manifest over the shards it changed (it was set aside, and readManifest says so); the next run finishes it', async () => {
      const { fs, path, prepare, readManifest, MANIFEST_ASIDE } = await mods();
      const out = path.join(tmp, 'aside');
      const opts = { source: 'synth' as const, root: '', out, workers: 0, seconds: 2, recordsPerShard: 2 };
      await prepare({ ...opts, synth: { n: 6, seed: 0 } });
      // another seed: every shard changes; the run dies once shard 0 is rewritten
      const died = await prepare({
        ...opts,
        synth: { n: 6, seed: 1 },
        onProgress: (p) => {
          if (p.phase === 'records' && p.shard === 1) throw new Error('killed');
        },
      }).then(() => null, (e: Error) => e.message);
      assert(died === 'killed', `the run should die, got ${died}`);
      assert(!fs.existsSync(path.join(out, 'manifest.json')) && fs.existsSync(path.join(out, MANIFEST_ASIDE)), `manifest set aside: ${fs.readdirSync(out)}`);
      const refused = await readManifest(out).then(() => '', (e: Error) => e.message);
      assert(/manifest\.json: none: a prepare of this folder did not finish .*run it again/.test(refused), `readManifest: '${refused}'`);
      const res = await prepare({ ...opts, synth: { n: 6, seed: 1 } });
      assert(res.written === 6 && res.shardsReused === 1, `finished: written ${res.written}, reused ${res.shardsReused}`);
      assert(fs.existsSync(path.join(out, 'manifest.json')) && !fs.existsSync(path.join(out, MANIFEST_ASIDE)), `after: ${fs.readdirSync(out)}`);
      // a run that changes no shard keeps the manifest where it is
      const same = await prepare({ ...opts, synth: { n: 6, seed: 1 }, onProgress: () => assert(!fs.existsSync(path.join(out, MANIFEST_ASIDE)), 'set aside though no shard changed') });
      assert(same.shardsReused === 3, `reused ${same.shardsReused}`);
    });

    it("a record that takes longer than recordTimeoutS (counted from the worker's ready message and from its previous result) stops its worker and is skipped as timeout; the worker's other record still runs; the next run tries it again", async () => {
      const { fs, path, prepare } = await mods();
      const dir = path.join(tmp, 'timeout');
      fs.mkdirSync(dir, { recursive: true });
      // The package's worker, its message handler wrapped: every synthetic record takes 0.9 s more, and
      // record 4 forever. The first worker starts 3.5 s late: past the timeout (3 s), as records 0–3
      // together are, neither of which may count against a record.
      const hang = path.join(dir, 'hang.mjs');
      const started = path.join(dir, 'started');
      fs.writeFileSync(hang, `import fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
const busy = (ms) => { for (const end = Date.now() + ms; Date.now() < end; ); };
if (!fs.existsSync(${JSON.stringify(started)})) { fs.writeFileSync(${JSON.stringify(started)}, ''); busy(3500); }
const on = parentPort.on.bind(parentPort);
parentPort.on = (event, f) => on(event, event !== 'message' ? f : (m) => { if (m.item.index === 4) for (;;); busy(900); f(m); });
await import(${JSON.stringify(path.resolve('dist/train.mjs'))});
`);
      const out = path.join(dir, 'out');
      const opts = { source: 'synth' as const, root: '', out, synth: { n: 6 }, seconds: 2, recordsPerShard: 6 };
      const logs: string[] = [];
      const first = await prepare({ ...opts, workers: 1, workerEntry: hang, recordTimeoutS: 3, log: (m) => logs.push(m) });
      const skips = fs.readFileSync(path.join(out, 'skipped.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert(first.written === 5 && skips.length === 1, `written ${first.written}, skipped ${JSON.stringify(skips)}`);
      assert(skips[0].id === 'synth-4' && skips[0].reason === 'timeout' && /no result after 3 s/.test(skips[0].message), `skipped.jsonl: ${JSON.stringify(skips)}`);
      assert(logs.some((l) => l.includes('synth-4 took over 3 s')), `said so: ${logs.join('; ')}`);
      const again = await prepare({ ...opts, workers: 0 });
      assert(again.written === 6 && again.shardsReused === 0, `rerun: written ${again.written}, reused ${again.shardsReused}`);
    });

    it('a worker that never gets ready (its bundle stuck loading) fails its records as a crash would after workerStartS, and the run ends', async () => {
      const { fs, path, prepare } = await mods();
      const dir = path.join(tmp, 'stuck');
      fs.mkdirSync(dir, { recursive: true });
      const stuck = path.join(dir, 'stuck.mjs');
      fs.writeFileSync(stuck, `import { parentPort } from 'node:worker_threads';\nparentPort.on('message', () => {}); // listens, never says ready\n`);
      const out = path.join(dir, 'out');
      const logs: string[] = [];
      const res = await prepare({ source: 'synth', root: '', out, synth: { n: 2 }, seconds: 2, workers: 1, workerEntry: stuck, workerStartS: 2, log: (m) => logs.push(m) });
      const skips = fs.readFileSync(path.join(out, 'skipped.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert(res.written === 0 && skips.length === 2 && skips.every((k) => k.reason === 'worker-crash' && /not ready within 2 s of its start/.test(k.message)), `skipped: ${JSON.stringify(skips)}`);
      assert(logs.some((l) => /worker crashed \(not ready within 2 s/.test(l)), `said so: ${logs.join('; ')}`);
    });

    it('Challenge tree: #Dx labels, group folders as folds (tranches kept apart), a truncated .mat reported', async () => {
      const { fs, path, prepare } = await mods();
      const { writeMatV4 } = await import('../../train/data/challenge.js');
      const root = path.join(tmp, 'challenge');
      const LEADS = ['I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'];
      const N = 1000; // 2 s
      // Two tranches as the Challenge 2021 training set lays them out; the second cpsc record is cut short.
      ([['cpsc_2018', 'g1', 'A0001'], ['cpsc_2018', 'g2', 'A0002'], ['georgia', 'g1', 'E00001']] as const).forEach(([tranche, g, name], gi) => {
        const dir = path.join(root, tranche, g);
        fs.mkdirSync(dir, { recursive: true });
        const val = new Int16Array(12 * N);
        for (let t = 0; t < N; t++) for (let k = 0; k < 12; k++) val[t * 12 + k] = Math.round(testSignal(k, t, FS, gi) * 1000);
        const mat = writeMatV4([{ name: 'val', rows: 12, cols: N, data: val }]);
        const lines = LEADS.map((l, k) => `${name}.mat 16+24 1000/mV 16 0 ${val[k]} 0 0 ${l}`);
        const hea = [`${name} 12 500 ${N} 05-Feb-2020 11:39:16`, ...lines, '#Age: 61', '#Sex: Female', '#Dx: 164889003,59118001', ''].join('\n');
        fs.writeFileSync(path.join(dir, `${name}.hea`), hea);
        fs.writeFileSync(path.join(dir, `${name}.mat`), gi === 1 ? mat.subarray(0, 2000) : mat);
      });
      // checksums in these headers are 0 (stale), so keep records whose checksum differs
      const opts = { source: 'challenge' as const, workers: 0, checksum: 'keep' as const, seconds: 2 };
      const res = await prepare({ ...opts, root: path.join(root, 'cpsc_2018'), out: path.join(tmp, 'out-c') });
      assert(res.written === 1 && res.skippedByReason.truncated === 1, `written ${res.written} ${JSON.stringify(res.skippedByReason)}`);
      const r = res.manifest.records[0];
      assert(r.id === 'A0001' && r.fold === 'g1' && (r.labels.dx as string[]).join() === '164889003,59118001', `record ${JSON.stringify(r)}`);
      assert((r.meta as { age: number; sex: string }).age === 61 && (r.meta as { sex: string }).sex === 'female', 'demographics');
      // Both tranches at once: each g1 stays its own fold.
      const both = await prepare({ ...opts, root, out: path.join(tmp, 'out-c2') });
      const folds = both.manifest.records.map((x) => `${x.id}:${x.fold}`).sort().join();
      assert(folds === 'A0001:cpsc_2018/g1,E00001:georgia/g1', `folds ${folds}`);
    });

    it('CODE-15 HDF5: 10 s kept, all-zero and 7 s records skipped with reasons', async () => {
      const { fs, path, prepare } = await mods();
      const { loadH5wasm } = await import('../../train/data/code15.js');
      const root = path.join(tmp, 'code15');
      fs.mkdirSync(root, { recursive: true });
      const T = 4096, L = 12;
      const tr = new Float32Array(3 * T * L);
      for (let t = 48; t < 48 + 4000; t++) for (let l = 0; l < L; l++) tr[(0 * T + t) * L + l] = testSignal(l, t, 400);
      for (let t = 648; t < 648 + 2800; t++) for (let l = 0; l < L; l++) tr[(2 * T + t) * L + l] = testSignal(l, t, 400);
      const h5 = await loadH5wasm();
      const f = new h5.File(path.join(root, 'exams_part0.hdf5'), 'w');
      f.create_dataset({ name: 'tracings', data: tr, shape: [3, T, L], dtype: '<f' });
      f.create_dataset({ name: 'exam_id', data: new BigInt64Array([11n, 12n, 13n]), shape: [3] });
      f.close();
      fs.writeFileSync(path.join(root, 'exams.csv'), 'exam_id,age,is_male,nn_predicted_age,1dAVb,RBBB,LBBB,SB,ST,AF,patient_id,death,timey,normal_ecg,trace_file\n11,50,True,51,False,True,False,False,False,False,7,False,1,False,exams_part0.hdf5\n');
      // 8-s windows: the 10-s exam fits, the 7-s one does not
      // a broken part beside it (a partial download): reported and skipped, the others read
      fs.writeFileSync(path.join(root, 'exams_part9.hdf5'), 'not an HDF5 file');
      const res = await prepare({ source: 'code15', root, out: path.join(tmp, 'out-15'), workers: 0, seconds: 8 });
      assert(res.written === 1 && res.skippedByReason['all-zero'] === 1 && res.skippedByReason['too-short'] === 1 && res.skippedByReason['bad-hdf5'] === 1, `${res.written} ${JSON.stringify(res.skippedByReason)}`);
      const report = fs.readFileSync(path.join(tmp, 'out-15', 'skipped.jsonl'), 'utf8');
      assert(/exams_part9\.hdf5/.test(report) && !/bad-hdf5: bad-hdf5/.test(report), `the broken part named once: ${report}`);
      const r = res.manifest.records[0];
      assert(r.id === '11' && r.source === 'exams_part0.hdf5#0' && r.labels.RBBB === true && (r.meta as { patientId: number }).patientId === 7, `record ${JSON.stringify(r)}`);
      // the grouped class list a probe reads (--label code15), and a fold from the patient (7 → 8)
      assert(JSON.stringify(r.labels.code15) === '["RBBB"]' && r.fold === 8, `labels ${JSON.stringify(r.labels)}, fold ${r.fold}`);
      const { extractTargets } = await import('../../train/eval/probe.js');
      const t = extractTargets(res.manifest.records.map((x) => x.labels), 'multilabel', 'code15');
      assert(t.classes.join() === '1dAVb,RBBB,LBBB,SB,ST,AF,normal_ecg' && t.rows.length === 1 && t.y[1] === 1, `probe targets ${t.classes} ${t.y}`);
    });

    it('WFDB folder: a multi-segment record is one record, its segment headers are not records', async () => {
      const { fs, path, prepare, openDataset } = await mods();
      const root = path.join(tmp, 'wfdb');
      fs.mkdirSync(root, { recursive: true });
      const write = (name: string, n: number, t0: number) => {
        const { hea, dat } = wfdb16Record(name, FS, n, (k, t) => testSignal(k, t + t0, FS, 2));
        fs.writeFileSync(path.join(root, `${name}.hea`), hea);
        fs.writeFileSync(path.join(root, `${name}.dat`), dat);
      };
      write('plain', N, 0);
      write('multi_1', N / 2, 0);
      write('multi_2', N / 2, N / 2);
      fs.writeFileSync(path.join(root, 'multi.hea'), `multi/2 12 ${FS} ${N}\nmulti_1 ${N / 2}\nmulti_2 ${N / 2}\n`);
      const res = await prepare({ source: 'wfdb', root, out: path.join(tmp, 'out-w'), workers: 0 });
      assert(res.written === 2 && res.skipped === 0, `wfdb: written ${res.written}, skipped ${JSON.stringify(res.skippedByReason)}`);
      assert(res.manifest.records.map((r) => r.source).sort().join() === 'multi.hea,plain.hea', `sources ${res.manifest.records.map((r) => r.source)}`);
      const ds = await openDataset(path.join(tmp, 'out-w'));
      const [a, b] = res.manifest.records[0].source === 'plain.hea' ? [ds.read(0), ds.read(1)] : [ds.read(1), ds.read(0)];
      ds.close();
      // the two halves join where the plain record runs on: the same signal, sample for sample
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
      assert(worst < 1e-6, `multi-segment record differs from the plain one by ${worst}`);
    });

    it('WFDB folder: symbolic links are followed (files and folders, a loop once), upper-case .HEA files read, a dangling link reported', async () => {
      const { fs, path, prepare } = await mods();
      const store = path.join(tmp, 'store'), root = path.join(tmp, 'linked');
      fs.mkdirSync(path.join(store, 'sub'), { recursive: true });
      fs.mkdirSync(root, { recursive: true });
      const write = (dir: string, name: string, seed: number) => {
        const { hea, dat } = wfdb16Record(name, FS, N, (k, t) => testSignal(k, t, FS, seed));
        fs.writeFileSync(path.join(dir, `${name}.hea`), hea);
        fs.writeFileSync(path.join(dir, `${name}.dat`), dat);
      };
      write(root, 'A', 1);
      write(store, 'B', 2);
      write(path.join(store, 'sub'), 'C', 3);
      fs.symlinkSync(path.join(store, 'B.hea'), path.join(root, 'B.hea'));
      fs.symlinkSync(path.join(store, 'B.dat'), path.join(root, 'B.dat'));
      fs.symlinkSync(path.join(store, 'sub'), path.join(root, 'sub'));
      fs.symlinkSync(root, path.join(store, 'sub', 'up')); // a loop: root/sub/up → root
      fs.symlinkSync(path.join(store, 'gone.hea'), path.join(root, 'gone.hea'));
      const { hea, dat } = wfdb16Record('REC1', FS, N, (k, t) => testSignal(k, t, FS, 4));
      fs.writeFileSync(path.join(root, 'REC1.HEA'), hea);
      fs.writeFileSync(path.join(root, 'REC1.dat'), dat);
      const res = await prepare({ source: 'wfdb', root, out: path.join(tmp, 'out-links'), workers: 0 });
      const sources = res.manifest.records.map((r) => r.source).sort().join();
      assert(sources === 'A.hea,B.hea,REC1.HEA,sub/C.hea', `records ${sources}`);
      assert(res.skipped === 1 && res.skippedByReason['missing-file'] === 1, `the dangling link reported: ${JSON.stringify(res.skippedByReason)}`);
    });

    it('options no record could be prepared with fail at once', async () => {
      const { path, prepare } = await mods();
      const out = path.join(tmp, 'out-bad');
      const expectReject = async (o: Partial<Parameters<typeof prepare>[0]>, re: RegExp) => {
        let msg = '';
        try {
          await prepare({ source: 'synth', root: '', out, synth: { n: 2 }, workers: 0, ...o });
        } catch (e) {
          msg = (e as Error).message;
        }
        assert(re.test(msg), `"${msg}" does not match ${re}`);
      };
      await expectReject({ dtype: 'F16' as 'f16' }, /dtype must be f32 or f16, got "F16"/);
      await expectReject({ fs: NaN }, /fs and seconds must be positive/);
      await expectReject({ seconds: -1 }, /fs and seconds must be positive/);
      await expectReject({ seconds: 0.001 }, /a window of 0\.001 s at 250 Hz holds 0 samples per lead; it must hold 2 to 16777216/);
      await expectReject({ fs: 1e9 }, /a window of 10 s at 1000000000 Hz holds 10000000000 samples per lead/);
      await expectReject({ preprocess: { bandpass: [0.5, 200] } }, /band-pass 0\.5–200 Hz must lie within \(0, 125\) Hz/);
      await expectReject({ recordTimeoutS: 0 }, /recordTimeoutS \(--record-timeout\) must be a number of seconds in \(0, 86400\], got 0/);
      await expectReject({ workerStartS: -1 }, /workerStartS must be a number of seconds in \(0, 86400\], got -1/);
    });

    it('.npy / .csv folder and the synthetic source', async () => {
      const { fs, path, prepare, openDataset } = await mods();
      const { writeNpy } = await import('../../train/data/npy.js');
      const root = path.join(tmp, 'npy');
      fs.mkdirSync(root, { recursive: true });
      const N = 1000; // 2 s
      const stack = new Float32Array(2 * N * 12); // [records, samples, leads]
      for (let r = 0; r < 2; r++) for (let t = 0; t < N; t++) for (let k = 0; k < 12; k++) stack[(r * N + t) * 12 + k] = testSignal(k, t, FS, r);
      fs.writeFileSync(path.join(root, 'a.npy'), writeNpy(stack, [2, N, 12]));
      const one = new Float32Array(12 * N); // [leads, samples]
      for (let k = 0; k < 12; k++) for (let t = 0; t < N; t++) one[k * N + t] = testSignal(k, t, FS, 7);
      fs.writeFileSync(path.join(root, 'b.npy'), writeNpy(one, [12, N]));
      const rows = ['I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6'];
      for (let t = 0; t < N; t++) rows.push(Array.from({ length: 12 }, (_, k) => testSignal(k, t, FS, 3).toFixed(4)).join(','));
      fs.writeFileSync(path.join(root, 'c.csv'), rows.join('\n'));
      fs.writeFileSync(path.join(root, 'd.npy'), 'not a numpy file');
      const res = await prepare({ source: 'npy', root, out: path.join(tmp, 'out-n'), workers: 0, seconds: 2 });
      assert(res.written === 4 && res.skippedByReason['bad-npy'] === 1, `npy: ${res.written} ${JSON.stringify(res.skippedByReason)}`);
      assert(res.manifest.records.map((r) => r.source).join() === 'a.npy#0,a.npy#1,b.npy,c.csv', `sources ${res.manifest.records.map((r) => r.source)}`);
      const ds = await openDataset(path.join(tmp, 'out-n'));
      const a0 = ds.read(0), b = ds.read(2);
      ds.close();
      // Lead I (row 0) of the [samples, leads] stack and the [leads, samples] file land in the same place.
      assert(Math.abs(a0[250] - testSignal(0, 500, FS, 0)) < 0.01 && Math.abs(b[500 + 250] - testSignal(1, 500, FS, 7)) < 0.01, `layouts: ${a0[250]} ${b[750]}`);

      const syn = await prepare({ source: 'synth', root: '', out: path.join(tmp, 'out-s'), workers: 0, seconds: 2, synth: { n: 3, seed: 1, seconds: 2 } });
      assert(syn.written === 3 && syn.manifest.records.map((r) => r.fold).join() === '1,2,3', `synth ${syn.written} ${JSON.stringify(syn.skippedByReason)}`);
      assert(Array.isArray(syn.manifest.records[0].labels.conditions), 'synth labels kept');
    });

    it('a re-run rebuilds the shard of a record whose source file changed, and reuses the others', async () => {
      const { fs, path, prepare, openDataset } = await mods();
      const root = path.join(tmp, 'changing');
      fs.mkdirSync(root, { recursive: true });
      const N = 1000;
      const put = (name: string, r: number) => {
        const { hea, dat } = wfdb16Record(name, FS, N, (k, t) => testSignal(k, t, FS, r));
        fs.writeFileSync(path.join(root, `${name}.hea`), hea);
        fs.writeFileSync(path.join(root, `${name}.dat`), dat);
      };
      put('a', 1);
      put('b', 2);
      // a multi-segment record: its segments have names of their own (m_1, m_2)
      put('m_1', 4);
      put('m_2', 4);
      fs.writeFileSync(path.join(root, 'm.hea'), `m/2 12 ${FS} ${2 * N}\nm_1 ${N}\nm_2 ${N}\n`);
      const opts = { source: 'wfdb' as const, root, out: path.join(tmp, 'out-changing'), workers: 0, seconds: 2, checksum: 'keep' as const, recordsPerShard: 1 };
      const first = await prepare(opts);
      assert(first.manifest.records.map((r) => r.id).join() === 'a,b,m', `records ${first.manifest.records.map((r) => r.id)}`);
      // b's samples change (its header is rewritten as it was), and a segment of m: a's shard is reused
      const { dat } = wfdb16Record('b', FS, N, (k, t) => testSignal(k, t, FS, 3));
      fs.writeFileSync(path.join(root, 'b.dat'), dat);
      fs.utimesSync(path.join(root, 'b.dat'), new Date(), new Date(Date.now() + 5000));
      fs.writeFileSync(path.join(root, 'm_1.dat'), wfdb16Record('m_1', FS, N, (k, t) => testSignal(k, t, FS, 5)).dat);
      fs.utimesSync(path.join(root, 'm_1.dat'), new Date(), new Date(Date.now() + 5000));
      const again = await prepare(opts);
      assert(again.shardsReused === 1 && again.shardsWritten === 2, `reused ${again.shardsReused}, written ${again.shardsWritten}`);
      const ds = await openDataset(opts.out);
      try {
        const x = ds.read(1);
        assert(Math.abs(x[100] - testSignal(0, 200, FS, 3)) < 0.01, `b holds its new samples: ${x[100]} vs ${testSignal(0, 200, FS, 3)}`);
      } finally {
        ds.close();
      }
    });

    it('refuses a dataset folder another live prepare holds, and leaves no lock when done', async () => {
      const { fs, path, os, prepare } = await mods();
      const out = path.join(tmp, 'out-locked');
      fs.mkdirSync(out, { recursive: true });
      // pid 1 runs (init); a lock naming this process's own pid but not taken by it would be a former process's
      fs.writeFileSync(path.join(out, '.lock'), JSON.stringify({ pid: 1, host: os.hostname(), what: 'prepare', since: 'now' }));
      const opts = { source: 'synth' as const, root: '', out, workers: 0, seconds: 2, synth: { n: 2, seed: 1, seconds: 2 } };
      const msg = await prepare(opts).then(() => 'prepared', (e: Error) => e.message);
      assert(/is in use by prepare \(pid 1, since now\)/.test(msg) && !fs.existsSync(path.join(out, 'manifest.json')), msg);
      fs.rmSync(path.join(out, '.lock'));
      const res = await prepare(opts);
      assert(res.written === 2 && !fs.existsSync(path.join(out, '.lock')), `written ${res.written}; files ${fs.readdirSync(out)}`);
    });

    it('bad inputs a fuzzer found: each is one skip entry with its reason, the others are read', async () => {
      const { fs, path, prepare } = await mods();
      const { writeNpy } = await import('../../train/data/npy.js');
      const N = 1000; // 2 s at 500 Hz
      const lead = (k: number, r: number) => Float32Array.from({ length: N }, (_, t) => testSignal(k, t, FS, r));
      const record = (r: number, edit?: (x: Float32Array) => void) => {
        const x = new Float32Array(12 * N); // [leads, samples]
        for (let k = 0; k < 12; k++) x.set(lead(k, r), k * N);
        edit?.(x);
        return writeNpy(x, [12, N]);
      };
      const root = path.join(tmp, 'fuzzed');
      fs.mkdirSync(root, { recursive: true });
      fs.writeFileSync(path.join(root, 'good.npy'), record(1));
      fs.writeFileSync(path.join(root, 'spike.npy'), record(2, (x) => (x[10] = 1e30))); // lead I, one sample at 10^30 mV
      // a header claiming 10^9 records of 12 × 5000 and no data: one entry, not 10^9
      let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 5000, 12), }";
      while ((10 + dict.length + 1) % 64) dict += ' ';
      fs.writeFileSync(path.join(root, 'claims.npy'), Buffer.concat([Buffer.from([0x93, ...Buffer.from('NUMPY'), 1, 0, (dict.length + 1) & 255, (dict.length + 1) >> 8]), Buffer.from(dict + '\n', 'latin1')]));
      const opts = { source: 'npy' as const, root, workers: 0, seconds: 2 };
      const res = await prepare({ ...opts, out: path.join(tmp, 'out-fuzzed') });
      const why = (o: typeof res) => JSON.stringify(o.skippedByReason);
      assert(res.written === 1 && res.skipped === 2 && res.skippedByReason.truncated === 1 && res.skippedByReason.amplitude === 1, `default: ${res.written} written, ${why(res)}`);
      // checks off, f16 shards: a value past ±65504 is still no record (it would be stored as Infinity)
      const f16 = await prepare({ ...opts, out: path.join(tmp, 'out-fuzzed16'), dtype: 'f16', preprocess: { reject: [] } });
      const spike = f16.manifest.records.length === 1 ? JSON.parse(fs.readFileSync(path.join(tmp, 'out-fuzzed16', 'skipped.jsonl'), 'utf8').split('\n')[1] || 'null') : null;
      assert(f16.written === 1 && f16.skippedByReason['out-of-range'] === 1 && /past f16's ±65504|not finite/.test(spike?.message ?? ''), `f16: ${f16.written} written, ${why(f16)} ${JSON.stringify(spike)}`);
      // a sidecar that is not one (here: null) is rebuilt, not a crash
      fs.writeFileSync(path.join(tmp, 'out-fuzzed', 'shard-00000.json'), 'null');
      const again = await prepare({ ...opts, out: path.join(tmp, 'out-fuzzed') });
      assert(again.written === 1 && again.shardsReused === 0, `rebuilt: ${again.written}, reused ${again.shardsReused}`);

      // WFDB: a lead given twice (III relabelled II) is no record: which II is lead II is unknown
      const wroot = path.join(tmp, 'fuzzed-wfdb');
      fs.mkdirSync(wroot, { recursive: true });
      const names = ['I', 'II', 'II', 'AVR', 'AVL', 'AVF', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'];
      const twice = wfdb16Record('twice', FS, N, (k, t) => testSignal(k, t, FS, 3), names);
      fs.writeFileSync(path.join(wroot, 'twice.hea'), twice.hea);
      fs.writeFileSync(path.join(wroot, 'twice.dat'), twice.dat);
      const w = await prepare({ source: 'wfdb', root: wroot, out: path.join(tmp, 'out-fuzzed-wfdb'), workers: 0, seconds: 2, checksum: 'keep' });
      assert(w.written === 0 && w.skippedByReason['duplicate-leads'] === 1, `duplicate leads: ${JSON.stringify(w.skippedByReason)}`);

      // CODE-15: a part whose tracings were resized far past what it stores (missing chunks read as
      // zeros) is one skip entry, not a million records
      const { loadH5wasm } = await import('../../train/data/code15.js');
      const h5 = await loadH5wasm();
      const croot = path.join(tmp, 'fuzzed-code15');
      fs.mkdirSync(croot, { recursive: true });
      const f = new h5.File(path.join(croot, 'exams_part0.hdf5'), 'w');
      const tracings = f.create_dataset({ name: 'tracings', data: new Float32Array(4096 * 12), shape: [1, 4096, 12], dtype: '<f', maxshape: [null, 4096, 12], chunks: [1, 4096, 12] });
      tracings.resize([1_000_000, 4096, 12]);
      f.close();
      const c = await prepare({ source: 'code15', root: croot, out: path.join(tmp, 'out-fuzzed-code15'), workers: 0, seconds: 8 });
      const centry = fs.readFileSync(path.join(tmp, 'out-fuzzed-code15', 'skipped.jsonl'), 'utf8');
      assert(c.written === 0 && c.skipped === 1 && c.skippedByReason['bad-hdf5'] === 1 && /claims 1000000 rows, more than its \d+ bytes can hold/.test(centry), `CODE-15: ${JSON.stringify(c.skippedByReason)} ${centry}`);

      // PTB-XL: a row of the index without its fold is one skip entry; the other rows are read
      const proot = path.join(tmp, 'ptbxl-badrow');
      fs.mkdirSync(proot, { recursive: true });
      const csv = ptbxlDatabaseCsv(PTBXL_ROWS.slice(0, 3));
      assert(csv.includes(',2,records100/00000/00002_lr'), 'fixture row 2 ends with its fold');
      fs.writeFileSync(path.join(proot, 'ptbxl_database.csv'), csv.replace(',2,records100/00000/00002_lr', ',,records100/00000/00002_lr'));
      fs.writeFileSync(path.join(proot, 'scp_statements.csv'), SCP_STATEMENTS_CSV);
      fs.symlinkSync(path.join(ptbxlRoot, 'records500'), path.join(proot, 'records500'));
      const p = await prepare({ source: 'ptbxl', root: proot, out: path.join(tmp, 'out-badrow'), workers: 0 });
      const entry = JSON.parse(fs.readFileSync(path.join(tmp, 'out-badrow', 'skipped.jsonl'), 'utf8').split('\n')[0]);
      assert(p.manifest.records.map((r) => r.id).join() === '1,3' && p.skippedByReason['bad-index-row'] === 1 && /row 3: no strat_fold/.test(entry.message), `bad row: ${p.manifest.records.map((r) => r.id)} ${JSON.stringify(entry)}`);
    });
  });
