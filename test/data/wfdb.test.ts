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

/**
 * Packs 10-bit two's-complement samples (file order) in format 310 or 311, as the WFDB library
 * writes them: 3 samples per 32-bit little-endian group; a last group of 1 sample takes 2 bytes, of
 * 2 samples 4. Format 310: low 16-bit word = a in bits 1–10 and c's low 5 bits in bits 11–15, high
 * word = b in bits 1–10 and c's high 5 bits in bits 11–15. Format 311: a | b << 10 | c << 20.
 */
function pack10(samples: number[], format: 310 | 311): Uint8Array {
  const n = samples.length;
  const rem = n % 3;
  const out = new Uint8Array(4 * Math.floor(n / 3) + (rem === 1 ? 2 : rem === 2 ? 4 : 0));
  for (let g = 0; 3 * g < n; g++) {
    const [a, b, c] = [0, 1, 2].map((k) => (samples[3 * g + k] ?? 0) & 0x3ff);
    const word = format === 310 ? ((a << 1) | ((c & 0x1f) << 11) | (((b << 1) | ((c >> 5) << 11)) << 16)) >>> 0 : (a | (b << 10) | (c << 20)) >>> 0;
    for (let j = 0; j < 4 && 4 * g + j < out.length; j++) out[4 * g + j] = (word >>> (8 * j)) & 0xff;
  }
  return out;
}

interface FixtureSignal {
  desc: string;
  gain: number;
  baseline: number;
  units: 'mV' | 'uV' | 'mmHg';
  values: number[];
}

/** A single-segment record whose signals share `<name>.dat` in `format`, with checksums and an optional byte offset. */
function makeRecord(name: string, format: 16 | 310 | 311, fs: number, sigs: FixtureSignal[], offset = 0): { hea: string; dat: Uint8Array } {
  const n = sigs[0].values.length;
  const stream: number[] = [];
  for (let t = 0; t < n; t++) for (const sg of sigs) stream.push(sg.values[t]);
  const body = format === 16 ? encodeSamples(stream, 16) : pack10(stream, format);
  const dat = new Uint8Array(offset + body.length).fill(0xff);
  dat.set(body, offset);
  const fmt = `${format}${offset ? `+${offset}` : ''}`;
  const bits = format === 16 ? 16 : 10;
  const lines = sigs.map((sg) => `${name}.dat ${fmt} ${sg.gain}(${sg.baseline})/${sg.units} ${bits} 0 ${sg.values[0]} ${wfdbChecksum(sg.values)} 0 ${sg.desc}`);
  return { hea: [`${name} ${sigs.length} ${fs} ${n}`, ...lines].join('\n') + '\n', dat };
}

/** What the reader must return for a signal: (d − baseline) / gain in mV, in float32; the invalid value ⇒ NaN. */
function expectedMv(sg: FixtureSignal, invalid: number): number[] {
  const scale = sg.units === 'uV' ? 1e-3 : 1;
  return sg.values.map((d) => (d === invalid ? NaN : Math.fround(((d - sg.baseline) / sg.gain) * scale)));
}

/** An in-memory file source over name → bytes or text. */
function files(map: Record<string, Uint8Array | string>): (name: string) => Uint8Array | undefined {
  return (name) => {
    const f = map[name];
    return typeof f === 'string' ? new TextEncoder().encode(f) : f;
  };
}

function errorOf(f: () => unknown): { reason: string; message: string } {
  try {
    f();
  } catch (e) {
    return e instanceof RecordError ? { reason: e.reason, message: e.message } : { reason: 'other', message: String(e) };
  }
  return { reason: 'no error', message: '' };
}

// Values of the 10-bit tests: both ends of the range (−512 is the invalid value ⇒ NaN), ±1, 0.
const TEN_BIT = [511, -511, -1, 0, 1, -512, 300, -300, 5, -7, 256, -256, 100, -2];

/** The 3-segment fixed-layout record: 4 samples in format 16, a 3-sample gap, 3 samples in format 311. */
function fixedLayoutRecord(): { map: Record<string, Uint8Array | string>; sigs1: FixtureSignal[]; sigs2: FixtureSignal[] } {
  const sigs1: FixtureSignal[] = [
    { desc: 'I', gain: 200, baseline: 0, units: 'mV', values: [10, -20, 30, -32768] },
    { desc: 'II', gain: 200, baseline: 4, units: 'mV', values: [-1, 2, -3, 4] },
  ];
  const sigs2: FixtureSignal[] = [
    { desc: 'I', gain: 100, baseline: -5, units: 'mV', values: [511, -512, 7] },
    { desc: 'II', gain: 50, baseline: 0, units: 'uV', values: [-511, 0, 9] },
  ];
  const s1 = makeRecord('fix_1', 16, 250, sigs1);
  const s2 = makeRecord('fix_2', 311, 250, sigs2);
  const master = 'fix/3 2 250 10 12:00:00 01/01/2020\nfix_1 4\n~ 3\nfix_2 3\n# a gap in the middle\n';
  return { map: { 'fix.hea': master, 'fix_1.hea': s1.hea, 'fix_1.dat': s1.dat, 'fix_2.hea': s2.hea, 'fix_2.dat': s2.dat }, sigs1, sigs2 };
}

const NAN3 = [NaN, NaN, NaN];

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
    const reason = (f: () => unknown) => errorOf(f).reason;
    assert(reason(() => parseWfdbHeader('')) === 'bad-header', 'empty');
    assert(reason(() => parseWfdbHeader('r 2 100 4\nr.dat 16 200 16 0 0 0 0 I\n')) === 'bad-header', 'missing signal line');
    assert(reason(() => parseWfdbHeader('r 1 100 4\nr.dat 16q 200\n')) === 'bad-header', 'bad format');
    assert(reason(() => parseWfdbHeader('r 1 100 4\nr.dat 16 abc\n')) === 'bad-header', 'bad gain');
    assert(reason(() => parseWfdbHeader('r/2 1 100 4\nr_1 4\n')) === 'bad-header', 'one of two segment lines');
    assert(reason(() => wfdbToRecord('r 1 100 4\nr.dat 16\n', () => undefined)) === 'missing-file', 'missing file');
    assert(reason(() => wfdbToRecord('r 1 100 4\nr.dat 508\n', () => new Uint8Array(8))) === 'unsupported-format', 'format 508 (FLAC)');
    assert(unitsToMv('µV') === 1e-3 && unitsToMv('V') === 1000 && unitsToMv('mmHg') === undefined, 'units');
    // a rate given but not positive is a broken header (read as 250 Hz it would stretch the record)
    for (const fs of ['0', '-500', '-0.5']) assert(/sampling frequency .* is not positive/.test(errorOf(() => parseWfdbHeader(`r 1 ${fs} 4\nr.dat 16\n`)).message), `fs ${fs}`);
    // a long digit run is refused at once (the number pattern used to backtrack in quadratic time: a minute here)
    assert(reason(() => parseWfdbHeader(`r 1 ${'9'.repeat(200_000)}x 4\nr.dat 16\n`)) === 'bad-header', 'a 200k-digit rate');
    // the lengths of a multi-segment header cannot ask for more than a record may take
    const huge = errorOf(() => wfdbToRecord('h/2 2 250\nh_1 4\n~ 1000000000000\n', (n) => (n === 'h_1.hea' ? new TextEncoder().encode('h_1 2 250 4\nh_1.dat 16\nh_1.dat 16\n') : new Uint8Array(16))));
    assert(huge.reason === 'too-long' && /1000000000004 samples × 2 signals exceed the 1 GiB/.test(huge.message), `multi-segment length: ${huge.reason} ${huge.message}`);
  });

  it('decodes formats 310 and 311 from hand-packed bytes, including partial last groups', () => {
    // (1, −1, −512): 310 words 0x0002, 0x87fe; 311 word 0x200ffc01.
    assert([...pack10([1, -1, -512], 310)].join() === [0x02, 0x00, 0xfe, 0x87].join(), `pack10 310 ${[...pack10([1, -1, -512], 310)]}`);
    assert([...pack10([1, -1, -512], 311)].join() === [0x01, 0xfc, 0x0f, 0x20].join(), `pack10 311 ${[...pack10([1, -1, -512], 311)]}`);
    assertSeries(decodeSamples(new Uint8Array([0x02, 0x00, 0xfe, 0x87]), 310), [1, -1, -512], 'fmt 310 group', 0);
    assertSeries(decodeSamples(new Uint8Array([0x01, 0xfc, 0x0f, 0x20]), 311), [1, -1, -512], 'fmt 311 group', 0);
    for (const format of [310, 311] as const) {
      const all = [511, -511, 0, -1, 200];
      const packed = pack10(all, format);
      assert(packed.length === 8, `${format}: 5 samples take 8 bytes, got ${packed.length}`);
      assertSeries(decodeSamples(packed, format), all.concat([0]), `${format}: 2-sample tail written as a full word`, 0);
      assertSeries(decodeSamples(packed.subarray(0, 6), format), all.slice(0, 4), `${format}: 2-byte tail`, 0);
      // 3 tail bytes cover the 2nd sample only in 311 (bits 10–19); in 310 it needs the 4th byte.
      assertSeries(decodeSamples(packed.subarray(0, 7), format), all.slice(0, format === 311 ? 5 : 4), `${format}: 3-byte tail`, 0);
      assertSeries(decodeSamples(packed.subarray(0, 5), format), all.slice(0, 3), `${format}: 1-byte tail`, 0);
    }
  });

  it('reads 310/311 records of 1, 2, 3, 4 and 7 frames, 1 and 2 signals, exactly after gain/baseline', () => {
    for (const format of [310, 311] as const)
      for (const nSig of [1, 2])
        for (const n of [1, 2, 3, 4, 7]) {
          const both: FixtureSignal[] = [
            { desc: 'I', gain: 200, baseline: -3, units: 'mV', values: [] },
            { desc: 'V1', gain: 50, baseline: 7, units: 'uV', values: [] },
          ];
          const sigs = both.slice(0, nSig);
          for (let t = 0; t < n; t++) sigs.forEach((sg, k) => sg.values.push(TEN_BIT[(t * nSig + k) % TEN_BIT.length]));
          const { hea, dat } = makeRecord('t10', format, 500, sigs, 4);
          const what = `fmt ${format}, ${nSig} signal(s), ${n} frame(s)`;
          const dec = decodeWfdbSignals(parseWfdbHeader(hea), files({ 't10.dat': dat }));
          assert(dec.nSamples === n && dec.warnings.length === 0, `${what}: ${dec.nSamples} samples, warnings ${dec.warnings}`);
          assert(dec.checksumOk.every((ok) => ok === true), `${what}: checksums ${dec.checksumOk}`);
          sigs.forEach((sg, k) => assertSeries(dec.digital[k], sg.values, `${what}: digital ${sg.desc}`, 0));
          const rec = wfdbToRecord(hea, files({ 't10.dat': dat }));
          sigs.forEach((sg, k) => assertSeries(rec.signals[k], expectedMv(sg, -512), `${what}: mV ${sg.desc}`, 0));
        }
    const all = wfdbToRecord(makeRecord('t', 311, 500, [{ desc: 'I', gain: 1, baseline: 0, units: 'mV', values: TEN_BIT }]).hea, () => pack10(TEN_BIT, 311));
    assert(Number.isNaN(all.signals[0][5]) && all.signals[0][0] === 511 && all.signals[0][1] === -511, 'min/max and invalid');

    // A file shorter than the header says: read what is there, with a warning.
    const sigs: FixtureSignal[] = [{ desc: 'I', gain: 1, baseline: 0, units: 'mV', values: [1, 2, 3, 4, 5, 6] }];
    const { hea, dat } = makeRecord('short', 310, 500, sigs);
    const short = wfdbToRecord(hea, () => dat.subarray(0, 4));
    assertSeries(short.signals[0], [1, 2, 3], 'truncated 310', 0);
    assert(((short.meta.warnings as string[]) ?? []).some((w) => w.includes('3 of 6')), `warning: ${short.meta.warnings}`);
  });

  it('reads a fixed-layout multi-segment record with a null segment', () => {
    const { map, sigs1, sigs2 } = fixedLayoutRecord();
    const h = parseWfdbHeader(map['fix.hea'] as string);
    assert(h.nSegments === 3 && h.nSig === 2 && h.nSamples === 10 && h.signals.length === 0, `master header ${JSON.stringify(h)}`);
    assert(JSON.stringify(h.segments) === JSON.stringify([{ name: 'fix_1', nSamples: 4 }, { name: '~', nSamples: 3 }, { name: 'fix_2', nSamples: 3 }]), 'segments');
    assert(h.info.length === 1 && h.info[0] === 'a gap in the middle', `info ${h.info}`);
    const rec = wfdbToRecord(map['fix.hea'] as string, files(map), { checksum: 'error' });
    assert(rec.id === 'fix' && rec.fs === 250 && rec.leadNames.join() === 'I,II', `record ${rec.id} ${rec.fs} ${rec.leadNames}`);
    for (let k = 0; k < 2; k++)
      assertSeries(rec.signals[k], [...expectedMv(sigs1[k], -32768), ...NAN3, ...expectedMv(sigs2[k], -512)], `signal ${sigs1[k].desc}`, 0);
    assert(rec.meta.layout === 'fixed' && (rec.meta.segments as unknown[]).length === 3 && rec.meta.baseTime === '12:00:00', `meta ${JSON.stringify(rec.meta)}`);
    assert(rec.meta.warnings === undefined, `warnings ${rec.meta.warnings}`);
  });

  it('reads a variable-layout multi-segment record: layout order, missing signals NaN, extra signals dropped', () => {
    const a: FixtureSignal[] = [
      { desc: 'V', gain: 100, baseline: 0, units: 'mV', values: [100, -100, 511] },
      { desc: 'II', gain: 200, baseline: 10, units: 'mV', values: [-511, 0, 30] },
    ];
    const b: FixtureSignal[] = [
      { desc: 'ABP', gain: 10, baseline: -100, units: 'mmHg', values: [900, 950, 1000, 1100] },
      { desc: 'II', gain: 1000, baseline: 0, units: 'mV', values: [500, -500, -32768, 1] },
      { desc: 'PLETH', gain: 1, baseline: 0, units: 'mV', values: [1, 2, 3, 4] },
    ];
    const ra = makeRecord('var_a', 310, 125, a);
    const rb = makeRecord('var_b', 16, 125, b);
    const layout = 'var_layout 3 125 0\n~ 0 100/mV 10 0 0 0 0 II\n~ 0 100/mV 10 0 0 0 0 V\n~ 0 1/mmHg 8 0 0 0 0 ABP\n';
    const master = 'var/4 3 125 9\nvar_layout 0\nvar_a 3\n~ 2\nvar_b 4\n';
    const map: Record<string, Uint8Array | string> = { 'var_layout.hea': layout, 'var_a.hea': ra.hea, 'var_a.dat': ra.dat, 'var_b.hea': rb.hea, 'var_b.dat': rb.dat };
    const rec = wfdbToRecord(master, files(map));
    assert(rec.leadNames.join() === 'II,V,ABP' && rec.signals.every((x) => x.length === 9), `leads ${rec.leadNames}`);
    const NAN2 = [NaN, NaN];
    const NAN4 = [NaN, NaN, NaN, NaN];
    assertSeries(rec.signals[0], [...expectedMv(a[1], -512), ...NAN2, ...expectedMv(b[1], -32768)], 'II', 0);
    assertSeries(rec.signals[1], [...expectedMv(a[0], -512), ...NAN2, ...NAN4], 'V (absent from var_b)', 0);
    assertSeries(rec.signals[2], [...NAN3, ...NAN2, ...expectedMv(b[0], -32768)], 'ABP (absent from var_a)', 0);
    assert(rec.meta.layout === 'variable' && JSON.stringify(rec.meta.nonVoltageSignals) === '["ABP"]', `meta ${JSON.stringify(rec.meta)}`);
    const warnings = (rec.meta.warnings as string[]) ?? [];
    assert(warnings.length === 1 && warnings[0].includes("var_b: signal 2 'PLETH'"), `warnings ${warnings}`);
  });

  it('names the file and the fault in multi-segment and 310/311 errors', () => {
    const { map } = fixedLayoutRecord();
    const master = map['fix.hea'] as string;
    const check = (what: string, f: () => unknown, reason: string, ...parts: string[]) => {
      const e = errorOf(f);
      assert(e.reason === reason && parts.every((p) => e.message.includes(p)), `${what}: ${e.reason} '${e.message}'`);
    };
    const without = (name: string) => files({ ...map, [name]: undefined as unknown as string });
    const withFile = (name: string, v: string | Uint8Array) => files({ ...map, [name]: v });
    check('missing segment header', () => wfdbToRecord(master, without('fix_2.hea')), 'missing-file', 'fix_2.hea', 'segment of fix.hea');
    check('missing segment signal file', () => wfdbToRecord(master, without('fix_2.dat')), 'missing-file', 'fix_2.dat');
    check('bad segment header', () => wfdbToRecord(master, withFile('fix_1.hea', 'fix_1 2 250 4\nfix_1.dat 16q\n')), 'bad-header', 'fix_1.hea', "bad format field '16q'");
    check('other fs', () => wfdbToRecord(master, withFile('fix_2.hea', (map['fix_2.hea'] as string).replace('fix_2 2 250', 'fix_2 2 500'))), 'bad-header', 'fix_2.hea', 'sampling frequency 500');
    check('nested', () => wfdbToRecord(master, withFile('fix_2.hea', 'fix_2/1 2 250 3\nx 3\n')), 'bad-header', 'fix_2.hea', 'itself multi-segment');
    check('signal count', () => wfdbToRecord(master.replace('fix/3 2', 'fix/3 3'), files(map)), 'bad-header', 'fix_1.hea has 2 signals', 'fix.hea declares 3');
    check('offset past end', () => wfdbToRecord(master, withFile('fix_2.hea', (map['fix_2.hea'] as string).replace(/ 311 /g, ' 311+99 '))), 'truncated', 'fix_2.dat', 'byte offset 99');
    check('segment line', () => parseWfdbHeader('fix/2 2 250 7\nfix_1 four\n~ 3\n'), 'bad-header', "bad segment line 'fix_1 four'");
    check('segment count', () => parseWfdbHeader('fix/2 2 250 7\nfix_1 4\n'), 'bad-header', '2 segments declared, 1 segment lines');
    check('too many segments', () => parseWfdbHeader('fix/1 2 250 7\nfix_1 4\n~ 3\n'), 'bad-header', 'more segment lines than the 1 declared');
    check('all null', () => wfdbToRecord('gap/1 2 250 7\n~ 7\n', files({})), 'bad-header', 'gap.hea', 'no segment holds samples');
    check('unsupported format', () => wfdbToRecord('r 1 100 4\nr.dat 312\n', () => new Uint8Array(8)), 'unsupported-format', 'r.dat', 'WFDB format 312');
    check('strict checksum in a segment', () => {
      const bad = (map['fix_1.dat'] as Uint8Array).slice();
      bad[0] ^= 1;
      return wfdbToRecord(master, withFile('fix_1.dat', bad), { checksum: 'error' });
    }, 'checksum', 'fix_1: checksum mismatch in signal 0');
    // A segment file shorter than its header: what is there, NaN after, and warnings naming the segment.
    const short = wfdbToRecord(master, withFile('fix_2.dat', (map['fix_2.dat'] as Uint8Array).subarray(0, 4)));
    assertSeries(short.signals[0].subarray(7), [Math.fround((511 + 5) / 100), NaN, NaN], 'short segment', 0);
    assert(((short.meta.warnings as string[]) ?? []).some((w) => w.startsWith('fix_2: ') && w.includes('1 of 3')), `warnings ${short.meta.warnings}`);
  });

  if (!isBrowser)
    it('loads a multi-segment record from disk (Node)', async () => {
      const { mkdtempSync, writeFileSync, rmSync, unlinkSync } = await import('node:fs');
      const { join } = await import('node:path');
      const { tmpdir } = await import('node:os');
      const { loadWfdbRecord } = await import('../../train/data/wfdb.js');
      const dir = mkdtempSync(join(tmpdir(), 'wfdb-multi-'));
      try {
        const { map, sigs1, sigs2 } = fixedLayoutRecord();
        for (const [name, body] of Object.entries(map)) writeFileSync(join(dir, name), body);
        const rec = await loadWfdbRecord(join(dir, 'fix.hea'));
        assertSeries(rec.signals[1], [...expectedMv(sigs1[1], -32768), ...NAN3, ...expectedMv(sigs2[1], -512)], 'II from disk', 0);
        const failure = (p: Promise<unknown>) =>
          p.then(
            () => ({ reason: 'no error', message: '' }),
            (e) => (e instanceof RecordError ? { reason: e.reason, message: e.message } : { reason: 'other', message: String(e) }),
          );
        unlinkSync(join(dir, 'fix_2.dat'));
        const missing = await failure(loadWfdbRecord(join(dir, 'fix')));
        assert(missing.reason === 'missing-file' && missing.message.includes('fix_2.dat'), `missing segment file: ${missing.reason} ${missing.message}`);
        writeFileSync(join(dir, 'fix_1.hea'), 'fix_1 2 250 4\nfix_1.dat 16 200 16 0\n');
        const badSeg = await failure(loadWfdbRecord(join(dir, 'fix')));
        assert(badSeg.reason === 'bad-header' && badSeg.message.includes(join(dir, 'fix_1.hea')), `bad segment header: ${badSeg.reason} ${badSeg.message}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
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
        const refused = (name: string) => loadWfdbRecord(join(dir, name)).then(() => 'read', (e) => (e instanceof RecordError ? `${e.reason}: ${e.message}` : String(e)));
        // a record's files lie beside its header: a path in a file name is refused, not followed
        for (const f of ['../fx_lr.dat', 'sub/fx_lr.dat']) {
          writeFileSync(join(dir, 'up.hea'), hea.replace(/^fx_lr\.dat/gm, f).replace(/^fx_lr /, 'up '));
          const r = await refused('up');
          assert(r.startsWith('bad-header') && r.includes(`file name '${f}' is not a file beside the header`), `${f}: ${r}`);
        }
        // a FIFO (or a device) as a signal file is refused, not waited on
        const { execFileSync } = await import('node:child_process');
        execFileSync('mkfifo', [join(dir, 'pipe.dat')]);
        writeFileSync(join(dir, 'pipe.hea'), hea.replace(/^fx_lr\.dat/gm, 'pipe.dat').replace(/^fx_lr /, 'pipe '));
        const fifo = await refused('pipe');
        assert(fifo.startsWith('unreadable-file') && fifo.includes('not a regular file'), `FIFO: ${fifo}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
});
