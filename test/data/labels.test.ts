// Labels joined from a CSV table into a prepared dataset (train/data/labels.ts, `ecg-jepa labels`):
// values, keys, refusals, what a re-join replaces, and prepare carrying joined labels over. Node only.
import { assert, expectReject, expectThrow, isBrowser, useTempDir } from '../helpers.js';

if (!isBrowser)
  describe('data: labels joined from a table', function () {
    this.timeout(60_000);
    let tmp = '';
    const mods = async () => {
      const fs = await import('node:fs');
      const path = await import('node:path');
      const os = await import('node:os');
      const labels = await import('../../train/data/labels.js');
      const ds = await import('../../train/data/dataset.js');
      return { fs, path, os, ...labels, ...ds };
    };
    /** A 4-record dataset whose ids are given, each with a source label `rhythm`. */
    const dataset = async (name: string, ids: string[]) => {
      const { path, writeDataset } = await mods();
      const dir = path.join(tmp, name);
      await writeDataset(dir, ids.map((id, i) => ({ id, x: new Float32Array(2 * 8).fill(i), labels: { rhythm: i % 2 ? 'AF' : 'SR' }, fold: i })), { leads: ['I', 'II'], fs: 250, samples: 8 });
      return dir;
    };
    const write = async (name: string, text: string) => {
      const { fs, path } = await mods();
      const f = path.join(tmp, name);
      fs.writeFileSync(f, text);
      return f;
    };

    useTempDir('labels-', (d) => (tmp = d));

    it('cells: numbers where they read as one, missing markers dropped, the rest text; digit keys without leading zeros', async () => {
      const { cellValue, canonicalKey } = await mods();
      const cases: [string, unknown][] = [['72', 72], [' -0.5 ', -0.5], ['1e3', 1000], ['.25', 0.25], ['', undefined], ['NaN', undefined], ['NA', undefined],
        ['n/a', 'n/a'], ['none', 'none'], ['0x10', '0x10'], ['Infinity', 'Infinity'], ['1,5', '1,5'], ['AF', 'AF'], ['12 ms', '12 ms']];
      for (const [s, want] of cases) assert(cellValue(s) === want, `cellValue(${JSON.stringify(s)}) = ${JSON.stringify(cellValue(s))}, want ${JSON.stringify(want)}`);
      assert(canonicalKey('00042') === '42' && canonicalKey('0') === '0' && canonicalKey(' A0042 ') === 'A0042', 'canonical keys');
    });

    it('joins numbers and texts by record id; records without a row keep none; the samples and their hash stay', async () => {
      const { path, fs, addLabels, readManifest, openDataset } = await mods();
      const dir = await dataset('a', ['1', '2', '3', '4']);
      const before = await readManifest(dir);
      const csv = await write('feat.csv', 'ecg_id,HR,QRS_ms,note\n00001,61.5,92,\n2,nan,101,wide\n4,80,,ok\n9,70,90,\n');
      const r = await addLabels(dir, csv, { columns: ['HR:hr', 'QRS_ms:qrs_ms', 'note'] });
      assert(r.key === 'ecg_id' && r.matched === 3 && r.records === 4 && r.unmatchedRows === 1 && r.unmatchedKeys.join() === '9', `report ${JSON.stringify(r)}`);
      assert(JSON.stringify(r.counts) === JSON.stringify({ hr: { numbers: 2, texts: 0 }, qrs_ms: { numbers: 2, texts: 0 }, note: { numbers: 0, texts: 2 } }), `counts ${JSON.stringify(r.counts)}`);
      const m = await readManifest(dir); // the hash of what fixes the samples still matches
      assert(m.dataSha256 === before.dataSha256, 'dataSha256 unchanged');
      const labels = m.records.map((x) => x.labels);
      assert(JSON.stringify(labels) === JSON.stringify([
        { rhythm: 'SR', hr: 61.5, qrs_ms: 92 }, { rhythm: 'AF', qrs_ms: 101, note: 'wide' }, { rhythm: 'SR' }, { rhythm: 'AF', hr: 80, note: 'ok' },
      ]), `labels ${JSON.stringify(labels)}`);
      const join = m.labelJoins?.[0];
      assert(m.labelJoins?.length === 1 && join!.key === 'ecg_id' && join!.fields.join() === 'hr,qrs_ms,note' && join!.source === path.resolve(csv) && /^[0-9a-f]{64}$/.test(join!.sha256), `joins ${JSON.stringify(m.labelJoins)}`);
      assert(!fs.existsSync(path.join(dir, '.lock')), 'lock released');
      const ds = await openDataset(dir, { verify: true });
      ds.close();
      // what probe reads: a regression target on the joined field
      const { extractTargets } = await import('../../train/eval/probe.js');
      const t = extractTargets(labels, 'regression', 'hr');
      assert(t.rows.join() === '0,3' && [...t.y].join() === '61.5,80' && t.notes[0].startsWith('2 record(s)'), `targets ${JSON.stringify(t)}`);
    });

    it("a re-join replaces its own fields (stale values removed); the source's fields only with replace", async () => {
      const { addLabels, readManifest } = await mods();
      const dir = await dataset('b', ['1', '2', '3', '4']);
      await addLabels(dir, await write('b1.csv', 'id,hr\n1,60\n2,70\n3,80\n'));
      await addLabels(dir, await write('b2.csv', 'id,hr,qt\n1,61,\n4,90,400\n'));
      let m = await readManifest(dir);
      assert(m.records.map((r) => r.labels.hr ?? '-').join() === '61,-,-,90', `hr ${m.records.map((r) => r.labels.hr)}`);
      assert(m.labelJoins!.length === 1 && m.labelJoins![0].fields.join() === 'hr,qt', `the first join, fully replaced, is gone: ${JSON.stringify(m.labelJoins)}`);
      const clash = await write('b3.csv', 'id,rhythm\n1,VT\n');
      await expectReject(() => addLabels(dir, clash), /rhythm already hold the source's labels.*--replace/);
      m = await readManifest(dir);
      assert(m.records[0].labels.rhythm === 'SR', 'a refused join changes nothing');
      await addLabels(dir, clash, { replace: true });
      m = await readManifest(dir);
      assert(m.records.map((r) => r.labels.rhythm ?? '-').join() === 'VT,-,-,-' && (m.labelJoins ?? []).length === 2, `rhythm ${m.records.map((r) => r.labels.rhythm)}`);
    });

    it('refuses duplicate keys, a missing key column, too many columns, a join matching nothing; matches path ids by basename', async () => {
      const { addLabels, readManifest, parseLabelTable, MAX_DEFAULT_COLUMNS } = await mods();
      const dir = await dataset('c', ['g1/A0001', 'g1/A0002', 'g2/A0003', 'g2/A0004']);
      await expectReject(async () => addLabels(dir, await write('c1.csv', 'rec,hr\nA0001,60\nA0001,61\n'), { match: 'basename' }), /1 key\(s\) appear more than once in 'rec' \(A0001\)/);
      await expectReject(async () => addLabels(dir, await write('c2.csv', 'rec,hr\nA0001,60\n')), /no key in 'rec' matches a record id \(ids: g1\/A0001.*keys: A0001\); for ids that are paths, try --match basename/);
      await expectReject(async () => addLabels(dir, await write('c3.csv', 'rec,hr\nA0001,60\n'), { key: 'id' }), /no key column 'id' \(columns: rec, hr\)/);
      const wide = ['rec', ...Array.from({ length: MAX_DEFAULT_COLUMNS + 1 }, (_, i) => `f${i}`)].join(',') + '\nA0001' + ',1'.repeat(MAX_DEFAULT_COLUMNS + 1) + '\n';
      expectThrow(() => parseLabelTable(wide, 'wide.csv'), `${MAX_DEFAULT_COLUMNS + 1} columns besides 'rec'; choose some with --columns`);
      expectThrow(() => parseLabelTable('rec,hr\n1,2\n', 't', { columns: ['HR'] }), "no column 'HR' (columns: rec, hr)");
      expectThrow(() => parseLabelTable('rec,hr\n1,2\n', 't', { columns: ['hr:a.b'] }), "the label field 'a.b' has a dot");
      expectThrow(() => parseLabelTable('rec,hr,qt\n1,2,3\n', 't', { columns: ['hr:x', 'qt:x'] }), "label field 'x' named twice");
      expectThrow(() => parseLabelTable('rec,hr,hr\n1,2,3\n', 't'), "column 'hr' appears twice");
      expectThrow(() => parseLabelTable('rec,hr\n1,2\n', 't', { columns: ['hr:a:b'] }), "expected column or column:field");
      expectThrow(() => parseLabelTable('rec,P.axis\n1,2\n', 't'), "the label field 'P.axis' has a dot");
      expectThrow(() => parseLabelTable('rec,hr\n1,2\n', 't', { key: '' }), '--key: give a column name');
      expectThrow(() => parseLabelTable('rec,hr\n', 't'), 't: no rows below the header');
      expectThrow(() => parseLabelTable('rec,hr\n1,"2\n', 'q.csv'), /^q\.csv: CSV: /);
      // a decimal comma (61,5) or a missing cell would shift values: refused with the lines
      expectThrow(() => parseLabelTable('rec,hr,qrs\n1,61,5,92\n2,70\n3,80,100\n', 't'), "2 row(s) have other than the header's 3 cells (row 1, 2 below the header)");
      // pandas' unnamed index column is neither the key nor a field
      const pandas = parseLabelTable(',ecg_id,HR\n0,1,60\n1,2,70\n', 't');
      assert(pandas.key === 'ecg_id' && JSON.stringify(pandas.columns) === '[["HR","HR"]]' && JSON.stringify([...pandas.rows]) === '[["1",{"HR":60}],["2",{"HR":70}]]', `pandas table ${JSON.stringify([...pandas.rows])}`);
      // two records read as one key are refused, not both given the row
      const twice = await dataset('c2', ['mitdb/100', 'nstdb/100', 'mitdb/101', 'x/7']);
      await expectReject(async () => addLabels(twice, await write('c5.csv', 'rec,hr\n100,60\n101,70\n'), { match: 'basename' }), 'more than one record matches a row: mitdb/100 and nstdb/100 (key 100); their ids differ only in folders');
      const zeros = await dataset('c3', ['42', '042', '7', '8']);
      await expectReject(async () => addLabels(zeros, await write('c6.csv', 'id,hr\n42,60\n')), 'more than one record matches a row: 42 and 042 (key 42); their ids differ only in leading zeros');
      const r = await addLabels(dir, await write('c4.csv', 'rec,hr\nA0002,66\n,70\nA0004,77\n'), { match: 'basename' });
      assert(r.matched === 2 && r.emptyKeys === 1, `report ${JSON.stringify(r)}`);
      const m = await readManifest(dir);
      assert(m.records.map((x) => x.labels.hr ?? '-').join() === '-,66,-,77', `hr ${m.records.map((x) => x.labels.hr)}`);
    });

    it('prepare run again carries joined tables over to the records it still has; not measured labels, nor tables of another source', async () => {
      const { addLabels, readManifest } = await mods();
      const { prepare } = await import('../../train/data/prepare.js');
      const { deriveLabels } = await import('../../train/data/derive.js');
      const { path } = await mods();
      const out = path.join(tmp, 'synth');
      await prepare({ source: 'synth', root: '', out, workers: 0, synth: { n: 4, seed: 1, noise: 1 } });
      await addLabels(out, await write('s.csv', 'id,score\nsynth-1-0,1\nsynth-1-2,3\n'));
      // a source field replaced by a table: new records get none of it either (the join owns the field)
      await addLabels(out, await write('q.csv', 'id,qrs_ms\nsynth-1-1,150\n'), { replace: true });
      await deriveLabels(out, 'hr', { field: 'hr_ecg' });
      const logs: string[] = [];
      await prepare({ source: 'synth', root: '', out, workers: 0, synth: { n: 5, seed: 1, noise: 1 }, log: (s) => logs.push(s) });
      let m = await readManifest(out);
      assert(m.records.map((r) => r.labels.score ?? '-').join() === '1,-,3,-,-', `score ${m.records.map((r) => r.labels.score)}`);
      assert(m.records.map((r) => r.labels.qrs_ms ?? '-').join() === '-,150,-,-,-', `qrs_ms ${m.records.map((r) => r.labels.qrs_ms)}`);
      assert(m.records.every((r) => !('hr_ecg' in r.labels)) && m.labelJoins?.map((j) => j.fields.join()).join(' ') === 'score qrs_ms', `joins ${JSON.stringify(m.labelJoins)}`);
      assert(logs.some((l) => l.includes('carried over to 4 records; 1 new records have none')) && logs.some((l) => l.includes('hr_ecg from derived:hr not carried over: measured from the signals as they were')), `log ${logs.join(' | ')}`);
      // another source in the same folder: the same ids may be other ECGs
      const { wfdb16Record, testSignal } = await import('./fixtures.js');
      const { fs } = await mods();
      const root = path.join(tmp, 'synth-src');
      fs.mkdirSync(root, { recursive: true });
      const { hea, dat } = wfdb16Record('synth-1-0', 500, 5000, (k, t) => testSignal(k, t, 500, 1));
      fs.writeFileSync(path.join(root, 'synth-1-0.hea'), hea);
      fs.writeFileSync(path.join(root, 'synth-1-0.dat'), dat);
      logs.length = 0;
      await prepare({ source: 'wfdb', root, out, workers: 0, log: (s) => logs.push(s) });
      m = await readManifest(out);
      assert(m.records.length === 1 && m.records[0].id === 'synth-1-0' && !('score' in m.records[0].labels) && !m.labelJoins, `after a new source: ${JSON.stringify(m.records[0].labels)} ${JSON.stringify(m.labelJoins)}`);
      assert(logs.some((l) => l.includes("score from") && l.includes("not carried over: the dataset's source changed (synth")), `log ${logs.join(' | ')}`);
    });

    it('--remove takes a joined field out of every record and the list of joins; the source\'s fields are refused', async () => {
      const { addLabels, removeLabels, readManifest } = await mods();
      const dir = await dataset('e', ['1', '2', '3', '4']);
      await addLabels(dir, await write('e.csv', 'id,hr,qt\n1,60,400\n2,70,\n'));
      await expectReject(() => removeLabels(dir, ['rhythm']), 'rhythm: not written by a join (joined: hr, qt)');
      const held = await removeLabels(dir, ['qt']);
      const m = await readManifest(dir);
      assert(JSON.stringify(held) === '{"qt":1}' && m.records.every((r) => !('qt' in r.labels)) && m.records[0].labels.hr === 60 && m.labelJoins?.[0].fields.join() === 'hr', `after removing qt: ${JSON.stringify(m.records.map((r) => r.labels))} ${JSON.stringify(m.labelJoins)}`);
      await removeLabels(dir, ['hr']);
      assert(!(await readManifest(dir)).labelJoins?.length, 'the last field removed: no join left');
    });

    it('a probe reads an integer-coded class column (0/1 outcome, sex) as classes', async () => {
      const { extractTargets } = await import('../../train/eval/probe.js');
      const t = extractTargets([{ sex: 0 }, { sex: 1 }, {}, { sex: 1 }], 'multiclass', 'sex');
      assert(t.classes.join() === '0,1' && t.rows.join() === '0,1,3' && Array.from(t.classIndex!).join() === '0,1,1' && t.notes.some((n) => n.includes("'sex' holds integers")), `targets ${JSON.stringify(t)}`);
      expectThrow(() => extractTargets([{ hr: 61.5 }, { hr: 70.2 }], 'multiclass', 'hr'), "'hr' holds measurements (e.g. 61.5), not class codes; use --task regression");
      // a measurement with some whole values is still a measurement
      expectThrow(() => extractTargets([{ hr: 60 }, { hr: 61.5 }, { hr: 62 }], 'multiclass', 'hr'), "'hr' holds measurements (e.g. 61.5)");
      expectThrow(() => extractTargets(Array.from({ length: 30 }, (_, i) => ({ hr: 50 + i })), 'multiclass', 'hr'), "'hr' holds 30 distinct integers, too many to be class codes; use --task regression");
    });

    it('heart rate measured from the signals: exact on a pulse train, a noisy lead outvoted, none from noise or a flat line', async () => {
      const { heartRate } = await import('../../train/data/derive.js');
      const { Rng } = await import('../../engine/random.js');
      const fs = 250, n = 2500, leads = 8;
      const rng = new Rng(3);
      const x = new Float32Array(leads * n);
      for (let l = 0; l < leads; l++)
        for (let i = 0; i < n; i++) {
          const t = i / fs, phase = ((t + 0.1 * l) % (60 / 72)) - 0.3; // 72 bpm, a beat 0.3 s into each period
          x[l * n + i] = (l === 2 ? 0 : Math.exp(-(phase * phase) / (2 * 0.012 ** 2))) + (l === 2 ? 0.8 * rng.normal() : 0.01 * rng.normal());
        }
      const hr = heartRate(x, leads, fs);
      assert(hr !== undefined && Math.abs(hr - 72) < 0.2, `pulse train: ${hr} bpm, want 72`);
      const noise = Float32Array.from({ length: leads * n }, () => 0.05 * rng.normal());
      assert(heartRate(new Float32Array(leads * n), leads, fs) === undefined, 'a flat record has no rate');
      const fromNoise = heartRate(noise, leads, fs);
      assert(fromNoise === undefined || fromNoise > 100, `noise read as a plausible rate: ${fromNoise}`);
    });

    it('--derive hr on synthetic ECGs agrees with their labels; stored under its own field, the source\'s hr kept', async () => {
      const { path, readManifest } = await mods();
      const { prepare } = await import('../../train/data/prepare.js');
      const { deriveLabels } = await import('../../train/data/derive.js');
      const out = path.join(tmp, 'synth-hr');
      await prepare({ source: 'synth', root: '', out, workers: 0, synth: { n: 40, seed: 7, noise: 1 } });
      await expectReject(() => deriveLabels(out, 'hr'), /label field\(s\) hr already hold the source's labels/);
      await expectReject(() => deriveLabels(out, 'qt'), "can measure hr, qrs, not 'qt'");
      const seen: number[] = [];
      const r = await deriveLabels(out, 'hr', { field: 'hr_ecg', onProgress: (d) => seen.push(d) });
      assert(r.records === 40 && r.measured === 40 && seen[seen.length - 1] === 40, `report ${JSON.stringify(r)}, progress ${seen}`);
      const m = await readManifest(out);
      const err = m.records.map((x) => Math.abs((x.labels.hr_ecg as number) - (x.labels.hr as number))).sort((a, b) => a - b);
      const mae = err.reduce((a, b) => a + b, 0) / err.length;
      assert(mae < 1 && err[20] < 0.2 && err.filter((e) => e > 5).length <= 2, `|measured − label| bpm: MAE ${mae.toFixed(2)}, median ${err[20].toFixed(2)}, max ${err[39].toFixed(1)}`);
      assert(m.labelJoins?.length === 1 && m.labelJoins[0].source === 'derived:hr' && m.labelJoins[0].fields.join() === 'hr_ecg', `joins ${JSON.stringify(m.labelJoins)}`);
    });

    it('QRS duration of the median beat: a known width within 6 ms in any lead set; ectopic beats, a bigeminy\'s early beats, a later deflection and a broken lead left out; none from noise or a flat line; refused below 100 Hz', async () => {
      const { measureQrs } = await import('../../train/data/delineate.js');
      const { Rng } = await import('../../engine/random.js');
      const fs = 250, n = 2500, leads = 8;
      const rng = new Rng(5);
      // raised-cosine waves (their slopes fall smoothly to 0 at both ends) centred at t s, `width` s wide,
      // in every lead at its own sign and size times `a`; a little noise
      type Wave = { t: number; width: number; a: number };
      const record = (waves: Wave[]) => {
        const x = new Float32Array(leads * n);
        for (let l = 0; l < leads; l++) {
          const size = (l % 3 === 1 ? -1 : 1) * (0.5 + 0.2 * l);
          for (let i = 0; i < n; i++) {
            let v = 0.005 * rng.normal();
            for (const w of waves) {
              const u = Math.abs(i / fs - w.t) / (w.width / 2);
              if (u < 1) v += (size * w.a * (1 + Math.cos(Math.PI * u))) / 2;
            }
            x[l * n + i] = v;
          }
        }
        return x;
      };
      // beats every 0.8 s from 0.4 s; those in `ectopic` twice as wide and the other way up
      const regular = (width: number, ectopic: number[] = [], extra?: (t: number) => Wave) =>
        record(Array.from({ length: 12 }, (_, k) => {
          const t = 0.4 + 0.8 * k, odd = ectopic.includes(k);
          return [{ t, width: odd ? 2 * width : width, a: odd ? -1 : 1 }, ...(extra ? [extra(t)] : [])];
        }).flat());
      for (const width of [0.08, 0.1, 0.16]) {
        const m = measureQrs(regular(width), leads, fs);
        assert(m && Math.abs(m.durationMs - 1000 * width) < 6 && m.beats === 12, `width ${1000 * width} ms: ${JSON.stringify(m)}`);
        assert(Math.abs(m.onset + width / 2) < 0.005 && Math.abs(m.end - width / 2) < 0.005, `width ${1000 * width} ms: onset ${m.onset} s, end ${m.end} s from R`);
        const one = measureQrs(regular(width).subarray(0, n), 1, fs); // a single lead
        assert(one && Math.abs(one.durationMs - 1000 * width) < 6, `width ${1000 * width} ms, one lead: ${JSON.stringify(one)}`);
      }
      const mixed = measureQrs(regular(0.09, [1, 2, 5, 8, 9]), leads, fs);
      assert(mixed && Math.abs(mixed.durationMs - 90) < 6 && mixed.beats === 7 && mixed.found === 12, `5 of 12 beats wide and inverted: ${JSON.stringify(mixed)}`);
      // bigeminy: as many ectopic beats (wide, inverted, 0.6 s after a normal one, then a 1 s pause) as
      // normal ones, whichever comes first
      for (const first of ['normal', 'ectopic']) {
        const waves = Array.from({ length: 6 }, (_, k) => [{ t: 0.4 + 1.6 * k, width: 0.08, a: 1 }, { t: 1.0 + 1.6 * k, width: 0.16, a: -1 }]).flat();
        const m = measureQrs(record(first === 'normal' ? waves : waves.map((w) => ({ ...w, t: w.t + (w.a > 0 ? 1.6 : 0) }))), leads, fs);
        assert(m && Math.abs(m.durationMs - 80) < 6, `bigeminy, ${first} beat first: ${JSON.stringify(m)}`);
      }
      // a steep deflection 20 ms after the QRS, the beat back at its baseline between: not the QRS
      const later = measureQrs(regular(0.08, [], (t) => ({ t: t + 0.04 + 0.02 + 0.015, width: 0.03, a: 0.25 })), leads, fs);
      assert(later && Math.abs(later.durationMs - 80) < 6, `a deflection after the QRS: ${JSON.stringify(later)}`);
      // a lead with a NaN sample is left out
      const broken = regular(0.1);
      broken[3 * n + 700] = NaN;
      const withoutIt = measureQrs(broken, leads, fs);
      assert(withoutIt && Math.abs(withoutIt.durationMs - 100) < 6, `one lead with a NaN: ${JSON.stringify(withoutIt)}`);
      assert(measureQrs(new Float32Array(leads * n), leads, fs) === undefined, 'a flat record has no QRS');
      const noise = Float32Array.from({ length: leads * n }, () => 0.05 * rng.normal());
      assert(measureQrs(noise, leads, fs) === undefined, 'noise read as a QRS');
      expectThrow(() => measureQrs(new Float32Array(leads * 500), leads, 50), 'needs a sampling rate of at least 100 Hz, got 50');
    });

    it('--derive qrs on synthetic ECGs agrees with their labels; narrow and bundle-branch-block QRS told apart', async () => {
      const { path, readManifest } = await mods();
      const { prepare } = await import('../../train/data/prepare.js');
      const { deriveLabels } = await import('../../train/data/derive.js');
      const out = path.join(tmp, 'synth-qrs');
      await prepare({ source: 'synth', root: '', out, workers: 0, synth: { n: 60, seed: 11, noise: 1 } });
      await expectReject(() => deriveLabels(out, 'qrs'), /label field\(s\) qrs_ms already hold the source's labels/);
      const r = await deriveLabels(out, 'qrs', { field: 'qrs_ecg' });
      assert(r.records === 60 && r.measured === 60, `report ${JSON.stringify(r)}`);
      const m = await readManifest(out);
      const err = m.records.map((x) => Math.abs((x.labels.qrs_ecg as number) - (x.labels.qrs_ms as number))).sort((a, b) => a - b);
      const mae = err.reduce((a, b) => a + b, 0) / err.length;
      assert(mae < 7 && err[30] < 5, `|measured − label| ms: MAE ${mae.toFixed(2)}, median ${err[30].toFixed(2)}, max ${err[59].toFixed(1)}`);
      // the clinical line: QRS ≥ 120 ms in bundle-branch block
      const wide = m.records.filter((x) => (x.labels.conditions as string[]).some((c) => c === 'RBBB' || c === 'LBBB'));
      const narrow = m.records.filter((x) => (x.labels.qrs_ms as number) < 110);
      // (a slow R′ can stay under the velocity edge: 1 of 51 bundle-branch blocks in README's run)
      assert(wide.length >= 5 && wide.filter((x) => (x.labels.qrs_ecg as number) < 120).length <= 1, `bundle-branch blocks: ${wide.map((x) => `${(x.labels.qrs_ms as number).toFixed(0)}→${(x.labels.qrs_ecg as number).toFixed(0)}`)}`);
      assert(narrow.length >= 20 && narrow.every((x) => (x.labels.qrs_ecg as number) < 120), `narrow: ${narrow.map((x) => (x.labels.qrs_ecg as number).toFixed(0))}`);
      assert(m.labelJoins?.some((j) => j.source === 'derived:qrs' && j.fields.join() === 'qrs_ecg'), `joins ${JSON.stringify(m.labelJoins)}`);
    });

    it('the command line prints the counts per field', async () => {
      const { path } = await mods();
      const cp = await import('node:child_process');
      const dir = await dataset('d', ['1', '2', '3', '4']);
      const csv = await write('d.csv', 'ecg_id,HR\n1,60\n2,x\n');
      const out = cp.execFileSync(process.execPath, [path.resolve('dist/cli.mjs'), 'labels', '--data', dir, '--csv', csv, '--columns', 'HR:hr'], { encoding: 'utf8' });
      assert(out.includes('1 label field(s)') && out.includes('joined to 2 of 4 records; 2 records have no row') && out.includes('hr: 1 numbers, 1 texts, 0 missing'), out);
      const both = cp.spawnSync(process.execPath, [path.resolve('dist/cli.mjs'), 'labels', '--data', dir, '--csv', csv, '--derive', 'hr'], { encoding: 'utf8' });
      assert(both.status !== 0 && both.stderr.includes('give one of --csv <file>, --derive <what>, --remove <fields>'), `--csv with --derive: ${both.status} ${both.stderr}`);
      for (const [args, msg] of [[['--remove', 'hr', '--key', 'x'], '--remove takes no other option'], [['--derive', 'hr:a:b'], "expected what or what:field, got 'hr:a:b'"], [['--derive', 'hr', '--match', 'basename'], '--key, --columns and --match go with --csv']] as const) {
        const r = cp.spawnSync(process.execPath, [path.resolve('dist/cli.mjs'), 'labels', '--data', dir, ...args], { encoding: 'utf8' });
        assert(r.status !== 0 && r.stderr.includes(msg), `${args.join(' ')}: ${r.status} ${r.stderr}`);
      }
      // flat records: nothing measured, nothing written
      const derived = cp.spawnSync(process.execPath, [path.resolve('dist/cli.mjs'), 'labels', '--data', dir, '--derive', 'hr:rate'], { encoding: 'utf8' });
      assert(derived.status !== 0 && derived.stderr.includes('--derive hr: measured in none of the 4 records') && !JSON.stringify((await (await mods()).readManifest(dir)).records).includes('rate'), `${derived.status} ${derived.stderr}`);
    });
  });
