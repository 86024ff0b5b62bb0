// CODE-15%: exams.csv labels, zero-padding trim, and an HDF5 part file written by h5wasm itself.
import { assert, isBrowser } from '../helpers.js';
import { code15ToRecord, nonZeroRange, parseCode15Exams } from '../../train/data/code15.js';
import { RecordError } from '../../train/data/record.js';

const CODE15_EXAMS_CSV = `exam_id,age,is_male,nn_predicted_age,1dAVb,RBBB,LBBB,SB,ST,AF,patient_id,death,timey,normal_ecg,trace_file
1169160,38,True,40.1,False,False,False,False,False,False,523632,False,2.1,True,exams_part0.hdf5
2873686,73,False,67.5,False,True,False,False,False,True,1724173,,,False,exams_part0.hdf5
168405,67,True,80.9,True,False,False,False,False,False,51421,False,6.5,False,exams_part0.hdf5
`;

describe('data: CODE-15', () => {
  it('parses exams.csv labels and demographics', () => {
    const exams = parseCode15Exams(CODE15_EXAMS_CSV);
    assert(exams.size === 3, `exams ${exams.size}`);
    const e = exams.get(2873686)!;
    assert(e.labels.RBBB && e.labels.AF && !e.labels['1dAVb'] && e.labels.normal_ecg === false, `labels ${JSON.stringify(e.labels)}`);
    assert(e.sex === 'female' && e.age === 73 && e.patientId === 1724173 && e.traceFile === 'exams_part0.hdf5', 'demographics');
    assert(exams.get(1169160)!.labels.normal_ecg === true && exams.get(1169160)!.sex === 'male', 'normal, male');
  });

  it('trims zero padding and rejects all-zero tracings', () => {
    const T = 20, L = 3;
    const tr = new Float32Array(T * L);
    for (let t = 4; t < 15; t++) tr[t * L + (t % L)] = t; // one lead non-zero per sample
    const rec = code15ToRecord(42, tr, T, L);
    assert(rec.signals.length === 3 && rec.signals[0].length === 11 && rec.fs === 400, `trimmed length ${rec.signals[0].length}`);
    assert(rec.meta.padStart === 4 && rec.meta.padEnd === 5 && rec.signals[1][0] === 4, `pads ${rec.meta.padStart} ${rec.meta.padEnd}`);
    assert(nonZeroRange([new Float32Array(5)]).end === 0, 'all zero range');
    let reason = '';
    try {
      code15ToRecord(43, new Float32Array(T * L), T, L);
    } catch (e) {
      reason = e instanceof RecordError ? e.reason : String(e);
    }
    assert(reason === 'all-zero', `all-zero: ${reason}`);
  });

  if (!isBrowser)
    it('reads tracings from an HDF5 file written with h5wasm (Node)', async () => {
      const { mkdtempSync, rmSync } = await import('node:fs');
      const { join } = await import('node:path');
      const { tmpdir } = await import('node:os');
      const { Code15File, loadH5wasm } = await import('../../train/data/code15.js');
      const dir = mkdtempSync(join(tmpdir(), 'code15-'));
      try {
        const file = join(dir, 'exams_part0.hdf5');
        const N = 3, T = 4096, L = 12;
        const tracings = new Float32Array(N * T * L);
        // exam 0: 7 s (2800 samples) centred in 4096; exam 1: all zeros; exam 2: full length
        for (let t = 648; t < 648 + 2800; t++) for (let l = 0; l < L; l++) tracings[(0 * T + t) * L + l] = Math.sin(t / 50 + l) + 0.01 * (l + 1);
        for (let t = 0; t < T; t++) for (let l = 0; l < L; l++) tracings[(2 * T + t) * L + l] = l - 5.5;
        const h5 = await loadH5wasm();
        const w = new h5.File(file, 'w');
        w.create_dataset({ name: 'tracings', data: tracings, shape: [N, T, L], dtype: '<f' });
        w.create_dataset({ name: 'exam_id', data: new BigInt64Array([1169160n, 2873686n, 168405n]), shape: [N] });
        w.close();

        const f = await Code15File.open(file);
        try {
          assert(f.size === 3 && f.samples === 4096 && f.leads === 12 && f.examIds.join() === '1169160,2873686,168405', `file ${f.size} ${f.examIds}`);
          const exams = parseCode15Exams(CODE15_EXAMS_CSV);
          const r0 = f.read(0, exams);
          assert(r0.id === '1169160' && r0.signals.length === 12 && r0.signals[0].length === 2800, `exam 0 length ${r0.signals[0].length}`);
          assert(r0.meta.padStart === 648 && r0.meta.padEnd === 648 && r0.labels.normal_ecg === true, `exam 0 meta ${JSON.stringify(r0.meta)}`);
          assert(Math.abs(r0.signals[3][10] - tracings[(648 + 10) * L + 3]) < 1e-7, 'exam 0 value');
          assert(r0.leadNames.join() === 'I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6', 'standard lead order');
          let reason = '';
          try {
            f.read(1, exams);
          } catch (e) {
            reason = e instanceof RecordError ? e.reason : String(e);
          }
          assert(reason === 'all-zero', `exam 1: ${reason}`);
          const r2 = f.read(2, exams);
          assert(r2.signals[11].length === 4096 && r2.signals[11][100] === 5.5 && r2.labels['1dAVb'] === true, 'exam 2');
        } finally {
          f.close();
        }
        let missing = '';
        await Code15File.open(join(dir, 'nope.hdf5')).catch((e) => (missing = e instanceof RecordError ? e.reason : String(e)));
        assert(missing === 'missing-file', `missing file: ${missing}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
});
