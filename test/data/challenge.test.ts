// PhysioNet/CinC Challenge records: WFDB header with #Age/#Sex/#Dx + MATLAB v4 .mat (val, column-major).
import { assert, isBrowser } from '../helpers.js';
import { challengeToRecord, parseMatV4, writeMatV4 } from '../../train/data/challenge.js';
import { RecordError } from '../../train/data/record.js';
import { decodeWfdbSignals, parseWfdbHeader, wfdbChecksum } from '../../train/data/wfdb.js';

const LEADS = ['I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'];
const NSAMP = 7;

/** Lead k, sample t in µV. */
const value = (k: number, t: number) => (k - 5) * 100 + t * 13 - (t % 3) * 40;

function challengeFixture(): { hea: string; mat: Uint8Array } {
  const val = new Int16Array(12 * NSAMP);
  for (let t = 0; t < NSAMP; t++) for (let k = 0; k < 12; k++) val[t * 12 + k] = value(k, t); // column-major 12 × N
  // Built byte by byte as ecg-data.md §2.1 describes, independent of writeMatV4.
  const mat = new Uint8Array(24 + val.byteLength);
  const dv = new DataView(mat.buffer);
  [30, 12, NSAMP, 0, 4].forEach((v, i) => dv.setInt32(4 * i, v, true));
  mat.set([0x76, 0x61, 0x6c, 0x00], 20);
  val.forEach((v, i) => dv.setInt16(24 + 2 * i, v, true));
  const lines = LEADS.map((name, k) => {
    const sig = Array.from({ length: NSAMP }, (_, t) => value(k, t));
    return `A0001.mat 16+24 1000/mV 16 0 ${sig[0]} ${wfdbChecksum(sig) - (k % 2 ? 65536 : 0)} 0 ${name}`; // signed and unsigned checksums both occur
  });
  const hea = [`A0001 12 500 ${NSAMP} 05-Feb-2020 11:39:16`, ...lines, '#Age: 74', '#Sex: Male', '#Dx: 426783006,164889003', '#Rx: Unknown', '#Hx: Unknown', '#Sx: Unknown', ''].join('\n');
  return { hea, mat };
}

describe('data: Challenge 2020/2021 (.hea + MATLAB v4)', () => {
  it('writeMatV4 produces the documented v4 layout', () => {
    const { mat } = challengeFixture();
    const vars = parseMatV4(mat);
    assert(vars.length === 1 && vars[0].name === 'val' && vars[0].rows === 12 && vars[0].cols === NSAMP && vars[0].type === 30, `header ${JSON.stringify(vars.map((v) => [v.name, v.rows, v.cols, v.type]))}`);
    assert(vars[0].data instanceof Int16Array, 'int16 data');
    const again = writeMatV4([{ name: 'val', rows: 12, cols: NSAMP, data: vars[0].data as Int16Array }]);
    assert(again.length === mat.length && again.every((b, i) => b === mat[i]), 'writeMatV4 bytes equal the hand-built file');
  });

  it('reads the record, labels and demographics; the WFDB 16+24 path agrees', () => {
    const { hea, mat } = challengeFixture();
    const rec = challengeToRecord(hea, (n) => (n === 'A0001.mat' ? mat : undefined));
    assert(rec.id === 'A0001' && rec.fs === 500 && rec.signals.length === 12 && rec.signals[0].length === NSAMP, 'shape');
    assert(rec.leadNames.join() === LEADS.join(), `leads ${rec.leadNames}`);
    for (let k = 0; k < 12; k++) for (let t = 0; t < NSAMP; t++) assert(Math.abs(rec.signals[k][t] - value(k, t) / 1000) < 1e-7, `lead ${k} t ${t}: ${rec.signals[k][t]}`);
    assert(JSON.stringify(rec.labels) === JSON.stringify({ dx: ['426783006', '164889003'] }), `labels ${JSON.stringify(rec.labels)}`);
    assert(rec.meta.age === 74 && rec.meta.sex === 'male' && rec.meta.rx === 'Unknown', `meta ${JSON.stringify(rec.meta)}`);
    assert(!rec.meta.warnings, `no warnings expected (checksums match): ${rec.meta.warnings}`);
    // Column-major int16 after 24 bytes is exactly WFDB format 16 with a 24-byte offset.
    const dec = decodeWfdbSignals(parseWfdbHeader(hea), () => mat);
    assert(dec.checksumOk.every((ok) => ok === true), `wfdb checksums ${dec.checksumOk}`);
    for (let k = 0; k < 12; k++) for (let t = 0; t < NSAMP; t++) assert(dec.digital[k][t] === value(k, t), `wfdb path lead ${k} t ${t}`);
  });

  it('reads double and big-endian .mat files, NaN age, and reports bad files', () => {
    const { hea } = challengeFixture();
    const dbl = new Float64Array(12 * NSAMP);
    for (let t = 0; t < NSAMP; t++) for (let k = 0; k < 12; k++) dbl[t * 12 + k] = value(k, t);
    const rec = challengeToRecord(hea.replace('#Age: 74', '#Age: NaN').replace('#Sex: Male', '#Sex: Female'), () => writeMatV4([{ name: 'val', rows: 12, cols: NSAMP, data: dbl }]));
    assert(Math.abs(rec.signals[3][4] - value(3, 4) / 1000) < 1e-7, 'double .mat values');
    assert(rec.meta.age === null && rec.meta.sex === 'female', `meta ${JSON.stringify(rec.meta)}`);

    // Big-endian v4 (M = 1): header and data big-endian, type 1030.
    const be = new Uint8Array(20 + 2 + 4);
    const dv = new DataView(be.buffer);
    [1030, 1, 2, 0, 2].forEach((v, i) => dv.setInt32(4 * i, v, false));
    be.set([0x78, 0x00], 20);
    dv.setInt16(22, -300, false);
    dv.setInt16(24, 42, false);
    const v = parseMatV4(be)[0];
    assert(v.name === 'x' && v.rows === 1 && v.cols === 2 && v.data[0] === -300 && v.data[1] === 42, `big-endian ${JSON.stringify(v)}`);

    const reason = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof RecordError ? e.reason : `other: ${e}`;
      }
      return 'no error';
    };
    const { mat } = challengeFixture();
    assert(reason(() => challengeToRecord(hea, () => mat.subarray(0, 100))) === 'truncated', 'truncated .mat');
    assert(reason(() => challengeToRecord(hea, () => new Uint8Array(40).fill(0xff))) === 'bad-mat', 'garbage .mat');
    const other = writeMatV4([{ name: 'foo', rows: 12, cols: 1, data: new Int16Array(12) }, { name: 'bar', rows: 1, cols: 1, data: new Int16Array(1) }]);
    assert(reason(() => challengeToRecord(hea, () => other)) === 'bad-mat', 'no val');
    assert(reason(() => challengeToRecord(hea, () => undefined)) === 'missing-file', 'missing .mat');
  });

  if (!isBrowser)
    it('loads a record from disk (Node)', async () => {
      const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
      const { join } = await import('node:path');
      const { tmpdir } = await import('node:os');
      const { loadChallengeRecord } = await import('../../train/data/challenge.js');
      const dir = mkdtempSync(join(tmpdir(), 'challenge-'));
      try {
        const { hea, mat } = challengeFixture();
        writeFileSync(join(dir, 'A0001.hea'), hea);
        writeFileSync(join(dir, 'A0001.mat'), mat);
        const rec = await loadChallengeRecord(join(dir, 'A0001.hea'));
        assert((rec.labels.dx as string[]).length === 2 && rec.signals[11].length === NSAMP, 'from disk');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
});
