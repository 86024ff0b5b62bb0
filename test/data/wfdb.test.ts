// WFDB header parser and signal decoder on hand-made records whose bytes the test writes itself.
import { assert, isBrowser } from '../helpers.js';
import { RecordError } from '../../train/data/record.js';
import {
  decodeSamples,
  decodeWfdbSignals,
  encodeSamples,
  parseWfdbHeader,
  unitsToMv,
  wfdbChecksum,
  wfdbToRecord,
} from '../../train/data/wfdb.js';

const close = (a: number, b: number, tol = 1e-6) => Math.abs(a - b) <= tol;

function assertSeries(got: ArrayLike<number>, want: number[], what: string, tol = 1e-6): void {
  assert(got.length === want.length, `${what}: length ${got.length}, want ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    const ok = Number.isNaN(want[i]) ? Number.isNaN(got[i]) : close(got[i], want[i], tol);
    assert(ok, `${what}[${i}] = ${got[i]}, want ${want[i]}`);
  }
}

/** ecg-data.md §7.1: 12 leads × 4 frames of lead k, frame f = (k+1)·10·(f+1)·(−1)^k µV, lead I frame 2 invalid. */
function fixture(): { hea: string; dat: Uint8Array; digital: number[][] } {
  const digital = Array.from({ length: 12 }, (_, k) => Array.from({ length: 4 }, (_, f) => (k + 1) * 10 * (f + 1) * (k % 2 ? -1 : 1)));
  digital[0][2] = -32768;
  const dat = new Uint8Array(96);
  const dv = new DataView(dat.buffer);
  for (let f = 0; f < 4; f++) for (let k = 0; k < 12; k++) dv.setInt16(2 * (f * 12 + k), digital[k][f], true);
  const hea = `fx_lr 12 100 4
fx_lr.dat 16 1000.0(0)/mV 16 0 10 32838 0 I
fx_lr.dat 16 1000.0(0)/mV 16 0 -20 65336 0 II
fx_lr.dat 16 1000.0(0)/mV 16 0 30 300 0 III
fx_lr.dat 16 1000.0(0)/mV 16 0 -40 65136 0 AVR
fx_lr.dat 16 1000.0(0)/mV 16 0 50 500 0 AVL
fx_lr.dat 16 1000.0(0)/mV 16 0 -60 64936 0 AVF
fx_lr.dat 16 1000.0(0)/mV 16 0 70 700 0 V1
fx_lr.dat 16 1000.0(0)/mV 16 0 -80 64736 0 V2
fx_lr.dat 16 1000.0(0)/mV 16 0 90 900 0 V3
fx_lr.dat 16 1000.0(0)/mV 16 0 -100 64536 0 V4
fx_lr.dat 16 1000.0(0)/mV 16 0 110 1100 0 V5
fx_lr.dat 16 1000.0(0)/mV 16 0 -120 64336 0 V6
`;
  return { hea, dat, digital };
}

// The real PTB-XL header records100/00000/00001_lr.hea (ecg-data.md §1.2).
const PTBXL_HEA = `00001_lr 12 100 1000
00001_lr.dat 16 1000.0(0)/mV 16 0 -119 1508 0 I
00001_lr.dat 16 1000.0(0)/mV 16 0 -55 723 0 II
00001_lr.dat 16 1000.0(0)/mV 16 0 64 64758 0 III
00001_lr.dat 16 1000.0(0)/mV 16 0 86 64423 0 AVR
00001_lr.dat 16 1000.0(0)/mV 16 0 -91 1211 0 AVL
00001_lr.dat 16 1000.0(0)/mV 16 0 4 7 0 AVF
00001_lr.dat 16 1000.0(0)/mV 16 0 -69 63827 0 V1
00001_lr.dat 16 1000.0(0)/mV 16 0 -31 6999 0 V2
00001_lr.dat 16 1000.0(0)/mV 16 0 0 63759 0 V3
00001_lr.dat 16 1000.0(0)/mV 16 0 -26 61447 0 V4
00001_lr.dat 16 1000.0(0)/mV 16 0 -39 64979 0 V5
00001_lr.dat 16 1000.0(0)/mV 16 0 -79 832 0 V6
`;

describe('data: WFDB', () => {
  it('parses the real PTB-XL header', () => {
    const h = parseWfdbHeader(PTBXL_HEA);
    assert(h.recordName === '00001_lr' && h.nSig === 12 && h.fs === 100 && h.nSamples === 1000, `record line: ${JSON.stringify(h)}`);
    const s = h.signals[2];
    assert(s.fileName === '00001_lr.dat' && s.format === 16 && s.gain === 1000 && s.baseline === 0 && s.units === 'mV', `signal III: ${JSON.stringify(s)}`);
    assert(s.adcRes === 16 && s.adcZero === 0 && s.initValue === 64 && s.checksum === 64758 && s.blockSize === 0 && s.description === 'III', 'signal III fields');
    assert(h.signals[0].initValue === -119 && h.signals[0].checksum === 1508, 'signal I init/checksum');
    assert(h.signals.every((x) => x.samplesPerFrame === 1 && x.skew === 0 && x.byteOffset === 0), 'no spf/skew/offset');
  });

  it('decodes the §7.1 format-16 fixture: interleaving, NaN sentinel, checksums, lead names', () => {
    const { hea, dat, digital } = fixture();
    assert([...dat.subarray(0, 8)].join(',') === [0x0a, 0x00, 0xec, 0xff, 0x1e, 0x00, 0xd8, 0xff].join(','), 'fixture bytes');
    const dec = decodeWfdbSignals(parseWfdbHeader(hea), () => dat);
    assert(dec.checksumOk.every((ok) => ok === true), `checksums: ${dec.checksumOk} ${dec.warnings}`);
    assert(dec.warnings.length === 0, `warnings: ${dec.warnings}`);
    const rec = wfdbToRecord(hea, (n) => (n === 'fx_lr.dat' ? dat : undefined));
    assert(rec.id === 'fx_lr' && rec.fs === 100 && rec.signals.length === 12, 'record shape');
    assert(rec.leadNames.join(' ') === 'I II III aVR aVL aVF V1 V2 V3 V4 V5 V6', `lead names ${rec.leadNames}`);
    assertSeries(rec.signals[0], [0.01, 0.02, NaN, 0.04], 'lead I');
    for (let k = 1; k < 12; k++) assertSeries(rec.signals[k], digital[k].map((d) => d / 1000), `lead ${k}`);
  });

  it('decodes format 212 with byte offset, skew, gain(baseline), µV units and adczero default baseline', () => {
    // Frames (A, B): (100, 999) (−200, 5) (−2048, −6) (7, 2047); B is skewed by one frame.
    const bytes = new Uint8Array([0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0x64, 0x30, 0xe7, 0x38, 0x0f, 0x05, 0x00, 0xf8, 0xfa, 0x07, 0x70, 0xff]);
    assert(
      [...encodeSamples([100, 999, -200, 5, -2048, -6, 7, 2047], 212)].join() === [...bytes.subarray(6)].join(),
      'encodeSamples(212) reproduces the hand-packed bytes',
    );
    const ckA = wfdbChecksum([100, -200, -2048]);
    const ckB = wfdbChecksum([5, -6, 2047]);
    assert(ckA === 63388 && ckB === 2046, `checksums ${ckA} ${ckB}`);
    const hea = `# a comment before the record line
r212 2 360/0.5(3) 3 10:00:00 01/02/2003
r212.dat 212+6 200(-10)/mV 12 0 100 ${ckA} 0 MLII
# a comment between signal lines
r212.dat 212:1+6 100/uV 12 3 5 ${ckB} 0 ECG lead V1
#Age: 50
`;
    const h = parseWfdbHeader(hea);
    assert(h.fs === 360 && h.counterFreq === 0.5 && h.baseCounter === 3 && h.baseTime === '10:00:00' && h.baseDate === '01/02/2003', 'record line fields');
    assert(h.signals[1].skew === 1 && h.signals[1].byteOffset === 6 && h.signals[1].baseline === 3 && h.signals[1].units === 'uV', 'signal B fields');
    assert(h.signals[1].description === 'ECG lead V1', `description with spaces: '${h.signals[1].description}'`);
    assert(h.comments.length === 3 && h.info.length === 1 && h.info[0] === 'Age: 50', `comments ${JSON.stringify(h.comments)} info ${h.info}`);
    const dec = decodeWfdbSignals(h, () => bytes);
    assert(dec.checksumOk[0] === true && dec.checksumOk[1] === true, `checksums ${dec.checksumOk} ${dec.warnings}`);
    const rec = wfdbToRecord(hea, () => bytes);
    assertSeries(rec.signals[0], [0.55, -0.95, NaN], 'A (mV)');
    assertSeries(rec.signals[1], [2 / 100 / 1000, -9 / 100 / 1000, 2044 / 100 / 1000], 'B (µV → mV)', 1e-9);
  });

  it('applies the header defaults: gain 0/missing ⇒ 200, units ⇒ mV, baseline ⇒ adczero, fs ⇒ 250', () => {
    const h = parseWfdbHeader('rec 3\nrec.dat 16\nrec.dat 16 0 12 1024\nrec.dat 16 500/uV 16 -3\n');
    assert(h.fs === 250 && h.nSamples === undefined, 'fs default, unknown length');
    assert(h.signals[0].gain === 200 && h.signals[0].units === 'mV' && h.signals[0].baseline === 0 && h.signals[0].adcRes === 12, 'bare line');
    assert(h.signals[1].gain === 200 && h.signals[1].baseline === 1024, 'gain 0 and adczero baseline');
    assert(h.signals[2].gain === 500 && h.signals[2].baseline === -3 && h.signals[2].units === 'uV', 'units and baseline');
    const dat = encodeSamples([1224, 1024, 197, 0, 0, 0], 16); // 2 frames × 3 signals; unknown length ⇒ all frames
    const rec = wfdbToRecord('rec 3\nrec.dat 16\nrec.dat 16 0 12 1024\nrec.dat 16 500/uV 16 -3\n', () => dat);
    assertSeries(rec.signals[0], [1224 / 200, 0], 's0');
    assertSeries(rec.signals[1], [0, -1024 / 200], 's1');
    assertSeries(rec.signals[2], [200 / 500 / 1000, 3 / 500 / 1000], 's2', 1e-9);
  });

  it('decodes formats 8, 24, 32, 61, 80, 160 and an odd-length 212 stream', () => {
    assertSeries(decodeSamples(new Uint8Array([0, 128, 255]), 80), [-128, 0, 127], 'fmt 80');
    assertSeries(decodeSamples(new Uint8Array([0xff, 0xff, 0xff, 0x00, 0x00, 0x80, 0x01, 0x02, 0x03]), 24), [-1, -8388608, 0x030201], 'fmt 24');
    assertSeries(decodeSamples(new Uint8Array([0xfe, 0xff, 0xff, 0xff, 0x01, 0, 0, 0]), 32), [-2, 1], 'fmt 32');
    assertSeries(decodeSamples(new Uint8Array([0xff, 0xfe, 0x01, 0x00]), 61), [-2, 256], 'fmt 61 (big-endian)');
    assertSeries(decodeSamples(new Uint8Array([0x00, 0x80, 0xff, 0xff]), 160), [0, 32767], 'fmt 160 (offset binary)');
    const odd = encodeSamples([-1, 2047, -5], 212);
    assert(odd.length === 5, `3 samples in 212 take 5 bytes, got ${odd.length}`);
    assertSeries(decodeSamples(odd, 212), [-1, 2047, -5], 'fmt 212 odd');
    // Format 8 stores first differences from the initial value.
    const rec = wfdbToRecord('d 1 100 4\nd.dat 8 100 8 0 50 0 0 x\n', () => new Uint8Array([2, 0xfe, 10, 0]));
    assertSeries(rec.signals[0], [0.52, 0.5, 0.6, 0.6], 'fmt 8');
  });

  it('averages samples per frame, reads a truncated file with a warning, and flags checksums', () => {
    const twoPerFrame = wfdbToRecord('s 2 100 2\ns.dat 16x2 1 16 0\ns.dat 16 1 16 0\n', () => encodeSamples([1, 3, 10, 5, 7, 20], 16));
    assertSeries(twoPerFrame.signals[0], [2, 6], 'spf 2 averaged');
    assertSeries(twoPerFrame.signals[1], [10, 20], 'spf 1 beside it');

    const { hea, dat } = fixture();
    const short = wfdbToRecord(hea, () => dat.subarray(0, 48));
    assert(short.signals[0].length === 2, `truncated: ${short.signals[0].length} samples`);
    assert(((short.meta.warnings as string[]) ?? []).some((w) => w.includes('2 of 4')), `warning: ${short.meta.warnings}`);

    const bad = dat.slice();
    bad[2] ^= 1; // lead II, frame 0
    const warned = wfdbToRecord(hea, () => bad);
    assert(((warned.meta.warnings as string[]) ?? []).some((w) => w.includes('checksum mismatch in signal 1')), `warned ${warned.meta.warnings}`);
    let threw: unknown;
    try {
      wfdbToRecord(hea, () => bad, { checksum: 'error' });
    } catch (e) {
      threw = e;
    }
    assert(threw instanceof RecordError && threw.reason === 'checksum', `strict checksum: ${threw}`);
  });

  it('rejects malformed headers and missing files with RecordError reasons', () => {
    const reason = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof RecordError ? e.reason : `other: ${e}`;
      }
      return 'no error';
    };
    assert(reason(() => parseWfdbHeader('')) === 'bad-header', 'empty');
    assert(reason(() => parseWfdbHeader('r 2 100 4\nr.dat 16 200 16 0 0 0 0 I\n')) === 'bad-header', 'missing signal line');
    assert(reason(() => parseWfdbHeader('r 1 100 4\nr.dat 16q 200\n')) === 'bad-header', 'bad format');
    assert(reason(() => parseWfdbHeader('r 1 100 4\nr.dat 16 abc\n')) === 'bad-header', 'bad gain');
    assert(reason(() => parseWfdbHeader('r/2 1 100 4\nr.dat 16\n')) === 'bad-header', 'multi-segment');
    assert(reason(() => wfdbToRecord('r 1 100 4\nr.dat 16\n', () => undefined)) === 'missing-file', 'missing file');
    assert(reason(() => wfdbToRecord('r 1 100 4\nr.dat 311\n', () => new Uint8Array(8))) === 'unsupported-format', 'format 311');
    assert(unitsToMv('µV') === 1e-3 && unitsToMv('V') === 1000 && unitsToMv('mmHg') === undefined, 'units');
  });

  if (!isBrowser)
    it('loads a record from disk (Node)', async () => {
      const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
      const { join } = await import('node:path');
      const { tmpdir } = await import('node:os');
      const { loadWfdbRecord } = await import('../../train/data/wfdb.js');
      const dir = mkdtempSync(join(tmpdir(), 'wfdb-'));
      try {
        const { hea, dat } = fixture();
        writeFileSync(join(dir, 'fx_lr.hea'), hea);
        writeFileSync(join(dir, 'fx_lr.dat'), dat);
        const rec = await loadWfdbRecord(join(dir, 'fx_lr'));
        assertSeries(rec.signals[0], [0.01, 0.02, NaN, 0.04], 'lead I from disk');
        let reason = '';
        await loadWfdbRecord(join(dir, 'nope')).catch((e) => (reason = e instanceof RecordError ? e.reason : String(e)));
        assert(reason === 'missing-file', `missing header: ${reason}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
});
