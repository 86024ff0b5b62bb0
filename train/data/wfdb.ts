// WFDB records (PhysioNet): header (.hea) parser and signal (.dat) decoder for formats 8, 16, 24,
// 32, 61, 80, 160, 212, 310 and 311, plus multi-segment records (fixed and variable layout), written
// from the WFDB spec (HEADERS.md, SIGNALS.md). Parsing works on strings/bytes so it runs in Node and
// the browser; loadWfdbRecord is the Node file-system entry.
import { canonicalLeadName, RecordError, type EcgRecord } from './record.js';

export interface WfdbSignal {
  fileName: string;
  format: number;
  samplesPerFrame: number;
  skew: number;
  byteOffset: number;
  /** ADC units per physical unit (0/missing in the file ⇒ 200). */
  gain: number;
  /** ADC value at 0 physical units (missing ⇒ adcZero). */
  baseline: number;
  units: string;
  adcRes: number;
  adcZero: number;
  initValue?: number;
  checksum?: number;
  blockSize: number;
  description: string;
}

/** One segment line of a multi-segment header: `name nsamples`; name '~' is a null segment (a gap). */
export interface WfdbSegment {
  name: string;
  nSamples: number;
}

export interface WfdbHeader {
  recordName: string;
  nSegments?: number;
  /** Multi-segment headers only: the segment lines, in order (then `signals` is empty). */
  segments?: WfdbSegment[];
  nSig: number;
  fs: number;
  counterFreq?: number;
  baseCounter?: number;
  /** Samples per signal; undefined when the header leaves it out or gives 0 (unknown). */
  nSamples?: number;
  baseTime?: string;
  baseDate?: string;
  signals: WfdbSignal[];
  /** Every comment line, without the leading '#', trimmed. */
  comments: string[];
  /** Comments after the last signal line ("info strings": Challenge #Age, #Sex, #Dx). */
  info: string[];
}

// One way to split a digit run (`\d+\.?\d*` backtracks in quadratic time on a long one)
const NUM = '[+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?';
/** The most a record's signals may take (float32), whatever its header's lengths say. */
const MAX_RECORD_BYTES = 2 ** 30;
const FS_RE = new RegExp(`^(${NUM})(?:/(${NUM})(?:\\((${NUM})\\))?)?$`);
const FORMAT_RE = /^(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?$/;
const GAIN_RE = new RegExp(`^(${NUM})(?:\\(([+-]?\\d+)\\))?(?:/(\\S*))?$`);
const INT_RE = /^[+-]?\d+$/;

/** Splits off `n` whitespace-separated fields and returns them plus the untouched remainder. */
function splitFields(line: string, n: number): { fields: string[]; rest: string } {
  const fields: string[] = [];
  let i = 0;
  while (fields.length < n) {
    while (i < line.length && /\s/.test(line[i])) i++;
    if (i >= line.length) break;
    const start = i;
    while (i < line.length && !/\s/.test(line[i])) i++;
    fields.push(line.slice(start, i));
  }
  return { fields, rest: line.slice(i).trim() };
}

function bad(msg: string): never {
  throw new RecordError('bad-header', msg);
}

/** Runs `f`; a RecordError it throws comes back with `file` in front of its detail. */
function inFile<T>(file: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (!(e instanceof RecordError) || e.message.includes(file)) throw e;
    const prefix = `${e.reason}: `;
    throw new RecordError(e.reason, e.message.startsWith(prefix) ? `${file}: ${e.message.slice(prefix.length)}` : file);
  }
}

function intField(s: string | undefined, what: string): number | undefined {
  if (s === undefined) return undefined;
  if (!INT_RE.test(s)) bad(`${what} is not an integer: '${s}'`);
  return Number(s);
}

/** A header's lines as parseWfdbHeader reads them. */
const LINES = /\r\n|\r|\n/;

/** A header's record line (its first line neither blank nor a comment), trimmed; '' if none. */
export function wfdbRecordLine(text: string): string {
  for (const raw of text.split(LINES)) {
    const line = raw.trim();
    if (line && !line.startsWith('#')) return line;
  }
  return '';
}

export function parseWfdbHeader(text: string): WfdbHeader {
  const comments: string[] = [];
  const info: string[] = [];
  let head: WfdbHeader | undefined;
  for (const raw of text.split(LINES)) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const c = line.slice(1).trim();
      comments.push(c);
      if (head && (head.segments ? head.segments.length === head.nSegments : head.signals.length === head.nSig)) info.push(c);
      continue;
    }
    if (!head) {
      head = parseRecordLine(line);
      if (head.nSegments !== undefined) head.segments = [];
      continue;
    }
    if (head.segments) {
      if (head.segments.length >= head.nSegments!) bad(`more segment lines than the ${head.nSegments} declared`);
      head.segments.push(parseSegmentLine(line));
      continue;
    }
    if (head.signals.length >= head.nSig) bad(`more signal lines than the ${head.nSig} declared`);
    head.signals.push(parseSignalLine(line));
  }
  if (!head) bad('no record line');
  if (head.segments) {
    if (head.segments.length !== head.nSegments) bad(`${head.nSegments} segments declared, ${head.segments.length} segment lines`);
  } else if (head.signals.length !== head.nSig) bad(`${head.nSig} signals declared, ${head.signals.length} signal lines`);
  head.comments = comments;
  head.info = info;
  return head;
}

function parseRecordLine(line: string): WfdbHeader {
  const { fields } = splitFields(line, 6);
  const [nameField, nsigField, fsField, nsampField, baseTime, baseDate] = fields;
  // Early Challenge files put the .mat file name here; be lenient.
  const [name, nseg] = nameField.replace(/\.(mat|hea|dat)$/i, '').split('/');
  const nSig = intField(nsigField, 'number of signals');
  if (nSig === undefined || nSig < 0) bad(`missing number of signals in '${line}'`);
  const h: WfdbHeader = { recordName: name, nSig, fs: 250, signals: [], comments: [], info: [] };
  if (nseg !== undefined) {
    const n = intField(nseg, 'number of segments');
    if (n === undefined || n < 1) bad(`bad number of segments '${nseg}' in '${line}'`);
    h.nSegments = n;
  }
  if (fsField !== undefined) {
    const m = FS_RE.exec(fsField);
    if (!m) bad(`bad sampling frequency '${fsField}'`);
    h.fs = Number(m[1]);
    // The WFDB library reads a rate ≤ 0 as its default 250 Hz; an ECG header always gives its rate,
    // so one ≤ 0 is a broken header (read as 250 Hz it would stretch the record in time).
    if (!(h.fs > 0)) bad(`sampling frequency ${fsField} is not positive`);
    if (m[2] !== undefined) h.counterFreq = Number(m[2]);
    if (m[3] !== undefined) h.baseCounter = Number(m[3]);
  }
  if (nsampField !== undefined && INT_RE.test(nsampField)) {
    const n = Number(nsampField);
    if (n > 0) h.nSamples = n;
  }
  if (baseTime !== undefined) h.baseTime = baseTime;
  if (baseDate !== undefined) h.baseDate = baseDate;
  return h;
}

function parseSegmentLine(line: string): WfdbSegment {
  const { fields } = splitFields(line, 3);
  const [name, nsampField, extra] = fields;
  if (nsampField === undefined || extra !== undefined || !/^\d+$/.test(nsampField)) bad(`bad segment line '${line}': want 'name nsamples'`);
  return { name, nSamples: Number(nsampField) };
}

function parseSignalLine(line: string): WfdbSignal {
  const { fields, rest } = splitFields(line, 8);
  const [fileName, formatField, gainField, adcResField, adcZeroField, initField, checksumField, blockField] = fields;
  const fm = formatField === undefined ? null : FORMAT_RE.exec(formatField);
  if (!fm) bad(`bad format field '${formatField ?? ''}' in '${line}'`);
  const adcZero = intField(adcZeroField, 'adc zero') ?? 0;
  const s: WfdbSignal = {
    fileName,
    format: Number(fm[1]),
    samplesPerFrame: fm[2] !== undefined ? Math.max(1, Number(fm[2])) : 1,
    skew: fm[3] !== undefined ? Number(fm[3]) : 0,
    byteOffset: fm[4] !== undefined ? Number(fm[4]) : 0,
    gain: 200,
    baseline: adcZero,
    units: 'mV',
    adcRes: intField(adcResField, 'adc resolution') || 12,
    adcZero,
    blockSize: intField(blockField, 'block size') ?? 0,
    description: rest,
  };
  if (gainField !== undefined) {
    const g = GAIN_RE.exec(gainField);
    if (!g) bad(`bad gain field '${gainField}'`);
    const gain = Number(g[1]);
    s.gain = gain === 0 ? 200 : gain; // 0 means uncalibrated; the spec's default gain applies
    if (g[2] !== undefined) s.baseline = Number(g[2]);
    if (g[3]) s.units = g[3];
  }
  const init = intField(initField, 'initial value');
  if (init !== undefined) s.initValue = init;
  const ck = intField(checksumField, 'checksum');
  if (ck !== undefined) s.checksum = ck;
  return s;
}

/** Digital value that means "no sample" (NaN) in each format. */
export function invalidSampleValue(format: number): number | undefined {
  switch (format) {
    case 16:
    case 61:
    case 160:
      return -32768;
    case 212:
      return -2048;
    case 310:
    case 311:
      return -512;
    case 80:
      return -128;
    case 24:
      return -8388608;
    case 32:
      return -2147483648;
    default:
      return undefined;
  }
}

/** Decodes a byte stream of one format into samples in file order. */
export function decodeSamples(bytes: Uint8Array, format: number): Int32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = bytes.byteLength;
  let out: Int32Array;
  switch (format) {
    case 16:
    case 61:
    case 160: {
      out = new Int32Array(len >> 1);
      for (let i = 0; i < out.length; i++)
        out[i] = format === 16 ? dv.getInt16(2 * i, true) : format === 61 ? dv.getInt16(2 * i, false) : dv.getUint16(2 * i, true) - 32768;
      return out;
    }
    case 80:
    case 8: {
      out = new Int32Array(len);
      for (let i = 0; i < len; i++) out[i] = format === 80 ? bytes[i] - 128 : (bytes[i] << 24) >> 24;
      return out;
    }
    case 24: {
      out = new Int32Array(Math.floor(len / 3));
      for (let i = 0; i < out.length; i++) {
        const o = 3 * i;
        out[i] = ((bytes[o] | (bytes[o + 1] << 8) | (bytes[o + 2] << 16)) << 8) >> 8;
      }
      return out;
    }
    case 32: {
      out = new Int32Array(len >> 2);
      for (let i = 0; i < out.length; i++) out[i] = dv.getInt32(4 * i, true);
      return out;
    }
    case 212: {
      // Two 12-bit samples per 3 bytes; a trailing 2-byte group holds one last sample.
      const pairs = Math.floor(len / 3);
      out = new Int32Array(2 * pairs + (len % 3 >= 2 ? 1 : 0));
      for (let p = 0; p < pairs; p++) {
        const b0 = bytes[3 * p], b1 = bytes[3 * p + 1], b2 = bytes[3 * p + 2];
        out[2 * p] = ((b0 | ((b1 & 0x0f) << 8)) << 20) >> 20;
        out[2 * p + 1] = ((b2 | ((b1 & 0xf0) << 4)) << 20) >> 20;
      }
      if (len % 3 >= 2) out[2 * pairs] = ((bytes[3 * pairs] | ((bytes[3 * pairs + 1] & 0x0f) << 8)) << 20) >> 20;
      return out;
    }
    case 310:
    case 311: {
      // Three 10-bit samples per little-endian 32-bit word. A trailing partial word holds the
      // samples whose bits it covers: 2 bytes ⇒ 1 sample; 3 bytes ⇒ 2 in format 311, 1 in 310.
      const words = len >> 2;
      const rem = len & 3;
      const tail = rem < 2 ? 0 : format === 311 && rem === 3 ? 2 : 1;
      out = new Int32Array(3 * words + tail);
      for (let w = 0; w < words; w++) unpack10(dv.getUint32(4 * w, true), format, out, 3 * w, 3);
      if (tail) {
        let word = 0;
        for (let b = 0; b < rem; b++) word |= bytes[4 * words + b] << (8 * b);
        unpack10(word >>> 0, format, out, 3 * words, tail);
      }
      return out;
    }
    default:
      throw new RecordError('unsupported-format', `WFDB format ${format}`);
  }
}

/**
 * Writes the first `count` samples of one 32-bit group into out[at…]. Format 310: sample 0 in bits
 * 1–10 of the low 16-bit word, sample 1 in bits 1–10 of the high word, sample 2's low 5 bits in
 * bits 11–15 of the low word and its high 5 bits in bits 11–15 of the high word. Format 311:
 * bits 0–9, 10–19, 20–29. Samples are 10-bit two's complement.
 */
function unpack10(word: number, format: number, out: Int32Array, at: number, count: number): void {
  for (let k = 0; k < count; k++) {
    const v =
      format === 311 ? (word >>> (10 * k)) & 0x3ff : k < 2 ? (word >>> (16 * k + 1)) & 0x3ff : ((word >>> 11) & 0x1f) | ((word >>> 22) & 0x3e0);
    out[at + k] = (v << 22) >> 22;
  }
}

/** Encodes samples (file order) in format 16 or 212; used by tests and synthetic-data writers. */
export function encodeSamples(samples: ArrayLike<number>, format: 16 | 212): Uint8Array {
  const n = samples.length;
  if (format === 16) {
    const out = new Uint8Array(2 * n);
    const dv = new DataView(out.buffer);
    for (let i = 0; i < n; i++) dv.setInt16(2 * i, samples[i], true);
    return out;
  }
  const out = new Uint8Array(3 * (n >> 1) + (n & 1 ? 2 : 0));
  for (let i = 0, o = 0; i < n; i += 2, o += 3) {
    const a = samples[i] & 0xfff;
    out[o] = a & 0xff;
    if (i + 1 < n) {
      const b = samples[i + 1] & 0xfff;
      out[o + 1] = (a >> 8) | ((b >> 8) << 4);
      out[o + 2] = b & 0xff;
    } else out[o + 1] = a >> 8;
  }
  return out;
}

/** 16-bit checksum of a signal's digital samples, unsigned (wfdb-python writes it so). */
export function wfdbChecksum(digital: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < digital.length; i++) s = (s + digital[i]) & 0xffff;
  return s;
}

/** mV per physical unit; undefined for units that are not a voltage. */
export function unitsToMv(units: string): number | undefined {
  switch (units.trim().toLowerCase()) {
    case 'mv':
      return 1;
    case 'uv':
    case 'µv':
    case 'μv':
      return 1e-3;
    case 'nv':
      return 1e-6;
    case 'v':
      return 1e3;
    default:
      return undefined;
  }
}

export interface DecodedSignals {
  /** Digital samples per signal (samplesPerFrame × nSamples each), invalid-sample values kept. */
  digital: Int32Array[];
  nSamples: number;
  /** Per signal: true/false when the header had a checksum and the whole signal was read. */
  checksumOk: (boolean | undefined)[];
  warnings: string[];
}

/**
 * Reads the digital samples of every signal from its file(s). Signals sharing a file are
 * frame-interleaved; each file's byte offset comes from its first signal. `getFile` returns the
 * bytes of a file named in the header (relative to the header's folder).
 */
export function decodeWfdbSignals(header: WfdbHeader, getFile: (name: string) => Uint8Array | undefined): DecodedSignals {
  const warnings: string[] = [];
  const groups = new Map<string, number[]>();
  header.signals.forEach((s, i) => {
    const g = groups.get(s.fileName);
    if (g) g.push(i);
    else groups.set(s.fileName, [i]);
  });
  interface Group { stream: Int32Array; members: number[]; frameSize: number; slot: number[]; frames: number }
  const decoded: Group[] = [];
  for (const [name, members] of groups) {
    const fmt = header.signals[members[0]].format;
    if (members.some((i) => header.signals[i].format !== fmt)) throw new RecordError('bad-header', `mixed formats in ${name}`);
    const bytes = getFile(name);
    if (!bytes) throw new RecordError('missing-file', name);
    const off = header.signals[members[0]].byteOffset;
    if (off > bytes.byteLength) throw new RecordError('truncated', `${name}: byte offset ${off} past end (${bytes.byteLength} bytes)`);
    const stream = inFile(name, () => decodeSamples(bytes.subarray(off), fmt));
    const slot: number[] = [];
    let frameSize = 0;
    for (const i of members) {
      slot.push(frameSize);
      frameSize += header.signals[i].samplesPerFrame;
    }
    decoded.push({ stream, members, frameSize, slot, frames: Math.floor(stream.length / frameSize) });
  }
  const avail = decoded.length ? Math.min(...decoded.map((g) => g.frames)) : 0;
  let n = header.nSamples ?? avail;
  const complete = header.nSamples !== undefined && avail >= header.nSamples;
  if (header.nSamples !== undefined && avail < header.nSamples) {
    warnings.push(`signal file holds ${avail} of ${header.nSamples} samples; reading what is there`);
    n = avail;
  }
  const digital: Int32Array[] = new Array(header.nSig);
  const checksumOk: (boolean | undefined)[] = new Array(header.nSig).fill(undefined);
  for (const g of decoded) {
    g.members.forEach((sig, k) => {
      const spec = header.signals[sig];
      const spf = spec.samplesPerFrame;
      const d = new Int32Array(n * spf);
      const invalid = invalidSampleValue(spec.format) ?? -2147483648;
      if (spec.format === 8) {
        // Difference format: each byte is the step from the previous sample, starting at initValue.
        let v = spec.initValue ?? 0;
        for (let t = 0; t < n; t++)
          for (let j = 0; j < spf; j++) {
            v += g.stream[t * g.frameSize + g.slot[k] + j];
            d[t * spf + j] = v;
          }
      } else {
        // Skew: sample t of this signal lies in frame t + skew.
        for (let t = 0; t < n; t++) {
          const f = t + spec.skew;
          for (let j = 0; j < spf; j++) d[t * spf + j] = f < g.frames ? g.stream[f * g.frameSize + g.slot[k] + j] : invalid;
        }
      }
      digital[sig] = d;
      if (spec.checksum !== undefined && complete && n + spec.skew <= g.frames) {
        const ok = wfdbChecksum(d) === (spec.checksum & 0xffff);
        checksumOk[sig] = ok;
        if (!ok) warnings.push(`checksum mismatch in signal ${sig} (${spec.description || spec.fileName})`);
      }
    });
  }
  return { digital, nSamples: n, checksumOk, warnings };
}

/**
 * Physical values in mV: (digital − baseline) / gain, times the unit scale; invalid samples become
 * NaN and samples-per-frame > 1 are averaged into one sample per frame.
 */
export function digitalToMv(spec: WfdbSignal, digital: ArrayLike<number>, nSamples: number, isInteger = true): Float32Array {
  const scale = unitsToMv(spec.units) ?? 1;
  const invalid = isInteger ? invalidSampleValue(spec.format) : undefined;
  const spf = digital.length === nSamples ? 1 : spec.samplesPerFrame;
  const out = new Float32Array(nSamples);
  for (let t = 0; t < nSamples; t++) {
    let acc = 0;
    for (let j = 0; j < spf; j++) {
      const d = digital[t * spf + j];
      acc += d === invalid ? NaN : ((d - spec.baseline) / spec.gain) * scale;
    }
    out[t] = acc / spf;
  }
  return out;
}

export interface WfdbReadOptions {
  /** 'warn' (default) keeps a record whose checksum differs; 'error' throws RecordError('checksum'). */
  checksum?: 'warn' | 'error';
}

function recordMeta(header: WfdbHeader, warnings: string[]): Record<string, unknown> {
  const meta: Record<string, unknown> = { units: header.signals.map((s) => s.units) };
  if (header.baseTime) meta.baseTime = header.baseTime;
  if (header.baseDate) meta.baseDate = header.baseDate;
  if (header.comments.length) meta.comments = header.comments;
  if (warnings.length) meta.warnings = warnings;
  const nonVoltage = header.signals.filter((s) => unitsToMv(s.units) === undefined).map((s) => s.description);
  if (nonVoltage.length) meta.nonVoltageSignals = nonVoltage;
  return meta;
}

/** Turns a parsed header plus digital samples into a record (shared by the WFDB and .mat paths). */
export function buildRecord(header: WfdbHeader, digital: ArrayLike<number>[], nSamples: number, warnings: string[], isInteger = true): EcgRecord {
  return {
    id: header.recordName,
    signals: header.signals.map((s, i) => digitalToMv(s, digital[i], nSamples, isInteger)),
    fs: header.fs,
    leadNames: header.signals.map((s) => canonicalLeadName(s.description)),
    labels: {},
    meta: recordMeta(header, warnings),
  };
}

function strictChecksums(dec: DecodedSignals, opts: WfdbReadOptions, where = ''): void {
  if (opts.checksum === 'error' && dec.checksumOk.some((ok) => ok === false))
    throw new RecordError('checksum', where + dec.warnings.filter((w) => w.startsWith('checksum')).join('; '));
}

/** Header text + file bytes → record. Multi-segment headers read `<segment>.hea` through getFile. */
export function wfdbToRecord(headerText: string, getFile: (name: string) => Uint8Array | undefined, opts: WfdbReadOptions = {}): EcgRecord {
  const header = parseWfdbHeader(headerText);
  if (header.segments) return multiSegmentToRecord(header, getFile, opts);
  const dec = decodeWfdbSignals(header, getFile);
  strictChecksums(dec, opts);
  return buildRecord(header, dec.digital, dec.nSamples, dec.warnings);
}

/** A variable-layout record's layout segment: its first segment, of length 0 (HEADERS.md). */
function layoutSegment(header: WfdbHeader): WfdbSegment | undefined {
  const first = header.segments?.[0];
  return first && first.nSamples === 0 && first.name !== '~' ? first : undefined;
}

/** For each signal of a segment, the index of the layout signal with its description (k-th repeat ↔ k-th), or −1. */
function matchSignals(layout: WfdbSignal[], seg: WfdbSignal[]): number[] {
  const used = layout.map(() => false);
  return seg.map((s) => {
    const i = layout.findIndex((l, j) => !used[j] && l.description === s.description);
    if (i >= 0) used[i] = true;
    return i;
  });
}

/**
 * Concatenates the segments of a multi-segment record in the signal order of its layout: the
 * layout segment's header (variable layout) or else the first segment with samples (fixed
 * layout). Segment signals are matched to it by description and converted to mV with their own
 * gain and baseline; null segments (`~`) and signals a segment lacks are NaN.
 */
function multiSegmentToRecord(header: WfdbHeader, getFile: (name: string) => Uint8Array | undefined, opts: WfdbReadOptions): EcgRecord {
  const segs = header.segments!;
  const master = `${header.recordName}.hea`;
  const headers = new Map<string, WfdbHeader>();
  const segmentHeader = (name: string): WfdbHeader => {
    const file = `${name}.hea`;
    let h = headers.get(name);
    if (h) return h;
    const bytes = getFile(file);
    if (!bytes) throw new RecordError('missing-file', `${file} (segment of ${master})`);
    h = inFile(file, () => {
      const sh = parseWfdbHeader(new TextDecoder().decode(bytes));
      if (sh.segments) bad('a segment of a multi-segment record is itself multi-segment');
      if (Math.abs(sh.fs - header.fs) > 1e-9 * header.fs) bad(`sampling frequency ${sh.fs} differs from ${header.fs} in ${master}`);
      return sh;
    });
    headers.set(name, h);
    return h;
  };
  const layoutSeg = layoutSegment(header);
  const layoutName = layoutSeg?.name ?? segs.find((sg) => sg.name !== '~' && sg.nSamples > 0)?.name;
  if (layoutName === undefined) throw new RecordError('bad-header', `${master}: no segment holds samples, so the signals are unknown`);
  const layout = segmentHeader(layoutName);
  if (layout.nSig !== header.nSig) throw new RecordError('bad-header', `${layoutName}.hea has ${layout.nSig} signals, ${master} declares ${header.nSig}`);

  const warnings: string[] = [];
  const total = segs.reduce((a, sg) => a + sg.nSamples, 0);
  // the signals are held whole (float32): a header's lengths must not ask for more than a bound
  if (total * layout.nSig * 4 > MAX_RECORD_BYTES)
    throw new RecordError('too-long', `${master}: ${total} samples × ${layout.nSig} signals exceed the ${MAX_RECORD_BYTES / 2 ** 30} GiB a record may take`);
  if (header.nSamples !== undefined && header.nSamples !== total)
    warnings.push(`${master} gives ${header.nSamples} samples, its segments ${total}; using ${total}`);
  const signals = layout.signals.map(() => new Float32Array(total).fill(NaN));
  let at = 0;
  for (const seg of segs) {
    if (seg.name !== '~' && seg.nSamples > 0) {
      const h = segmentHeader(seg.name);
      const dec = decodeWfdbSignals(h, getFile);
      strictChecksums(dec, opts, `${seg.name}: `);
      for (const w of dec.warnings) warnings.push(`${seg.name}: ${w}`);
      const n = Math.min(dec.nSamples, seg.nSamples);
      const own = h.nSamples ?? n;
      if (own !== seg.nSamples) warnings.push(`${seg.name}: ${own} samples where ${master} says ${seg.nSamples}; reading ${n}, NaN after`);
      matchSignals(layout.signals, h.signals).forEach((c, i) => {
        if (c < 0) warnings.push(`${seg.name}: signal ${i} '${h.signals[i].description}' is not among ${layoutName}.hea's signals; dropped`);
        else signals[c].set(digitalToMv(h.signals[i], dec.digital[i], dec.nSamples).subarray(0, n), at);
      });
    }
    at += seg.nSamples;
  }
  const meta = recordMeta({ ...header, signals: layout.signals }, warnings);
  meta.layout = layoutSeg ? 'variable' : 'fixed';
  meta.segments = segs.map((sg) => ({ name: sg.name, nSamples: sg.nSamples }));
  return {
    id: header.recordName,
    signals,
    fs: header.fs,
    leadNames: layout.signals.map((sg) => canonicalLeadName(sg.description)),
    labels: {},
    meta,
  };
}

/**
 * Node: reads `<path>.hea` (extension optional) and every file beside it that the record needs:
 * the signal files it names or, for a multi-segment record, each segment's header and signal files.
 */
export async function readWfdbFiles(heaPath: string): Promise<{ text: string; getFile: (name: string) => Uint8Array | undefined }> {
  const { nodeMods, readBytes, readText } = await import('./fsutil.js');
  const { path } = await nodeMods();
  const hea = /\.hea$/i.test(heaPath) ? heaPath : `${heaPath}.hea`; // REC.HEA too: the scan matches any case
  const text = await readText(hea);
  const header = inFile(hea, () => parseWfdbHeader(text));
  const files = new Map<string, Uint8Array>();
  const read = async (name: string): Promise<Uint8Array> => {
    // a record's files lie beside its header: a name with a path in it is refused, not followed
    if (/[\\/]/.test(name) || name === '.' || name === '..') throw new RecordError('bad-header', `${hea}: file name '${name}' is not a file beside the header`);
    let b = files.get(name);
    if (!b) files.set(name, (b = await readBytes(path.join(path.dirname(hea), name))));
    return b;
  };
  const readSignalFiles = async (h: WfdbHeader) => {
    for (const s of h.signals) if (s.fileName !== '~') await read(s.fileName);
  };
  if (header.segments) {
    for (const seg of header.segments) {
      if (seg.name === '~') continue;
      const file = `${seg.name}.hea`;
      const segText = new TextDecoder().decode(await read(file));
      const h = inFile(path.join(path.dirname(hea), file), () => parseWfdbHeader(segText));
      if (seg.nSamples > 0) await readSignalFiles(h);
    }
  } else await readSignalFiles(header);
  return { text, getFile: (n) => files.get(n) };
}

/** Node: reads `<path>.hea` (extension optional) and the files beside it that it needs. */
export async function loadWfdbRecord(heaPath: string, opts: WfdbReadOptions = {}): Promise<EcgRecord> {
  const { text, getFile } = await readWfdbFiles(heaPath);
  return wfdbToRecord(text, getFile, opts);
}
