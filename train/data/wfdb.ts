// WFDB records (PhysioNet): header (.hea) parser and signal (.dat) decoder for formats 8, 16, 24,
// 32, 61, 80, 160 and 212, written from the WFDB spec (HEADERS.md, SIGNALS.md). Parsing works on
// strings/bytes so it runs in Node and the browser; loadWfdbRecord is the Node file-system entry.
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

export interface WfdbHeader {
  recordName: string;
  nSegments?: number;
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

const NUM = '[+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?';
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

function intField(s: string | undefined, what: string): number | undefined {
  if (s === undefined) return undefined;
  if (!INT_RE.test(s)) bad(`${what} is not an integer: '${s}'`);
  return Number(s);
}

export function parseWfdbHeader(text: string): WfdbHeader {
  const comments: string[] = [];
  const info: string[] = [];
  let head: WfdbHeader | undefined;
  for (const raw of text.split(/\r\n|\r|\n/)) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const c = line.slice(1).trim();
      comments.push(c);
      if (head && head.signals.length === head.nSig) info.push(c);
      continue;
    }
    if (!head) {
      head = parseRecordLine(line);
      continue;
    }
    if (head.nSegments !== undefined) bad('multi-segment records are not supported');
    if (head.signals.length >= head.nSig) bad(`more signal lines than the ${head.nSig} declared`);
    head.signals.push(parseSignalLine(line));
  }
  if (!head) bad('no record line');
  if (head.signals.length !== head.nSig) bad(`${head.nSig} signals declared, ${head.signals.length} signal lines`);
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
  if (nseg !== undefined) h.nSegments = intField(nseg, 'number of segments');
  if (fsField !== undefined) {
    const m = FS_RE.exec(fsField);
    if (!m) bad(`bad sampling frequency '${fsField}'`);
    h.fs = Number(m[1]);
    if (!(h.fs > 0)) h.fs = 250;
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
    default:
      throw new RecordError('unsupported-format', `WFDB format ${format}`);
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
    const stream = decodeSamples(bytes.subarray(off), fmt);
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

/** Header text + file bytes → record. */
export function wfdbToRecord(headerText: string, getFile: (name: string) => Uint8Array | undefined, opts: WfdbReadOptions = {}): EcgRecord {
  const header = parseWfdbHeader(headerText);
  const dec = decodeWfdbSignals(header, getFile);
  if (opts.checksum === 'error' && dec.checksumOk.some((ok) => ok === false))
    throw new RecordError('checksum', dec.warnings.filter((w) => w.startsWith('checksum')).join('; '));
  return buildRecord(header, dec.digital, dec.nSamples, dec.warnings);
}

/** Node: reads `<path>.hea` (extension optional) and every signal file it names, beside it. */
export async function readWfdbFiles(heaPath: string): Promise<{ text: string; getFile: (name: string) => Uint8Array | undefined }> {
  const { nodeMods, readBytes, readText } = await import('./fsutil.js');
  const { path } = await nodeMods();
  const hea = heaPath.endsWith('.hea') ? heaPath : `${heaPath}.hea`;
  const text = await readText(hea);
  const header = parseWfdbHeader(text);
  const files = new Map<string, Uint8Array>();
  for (const s of header.signals)
    if (!files.has(s.fileName)) files.set(s.fileName, await readBytes(path.join(path.dirname(hea), s.fileName)));
  return { text, getFile: (n) => files.get(n) };
}

/** Node: reads `<path>.hea` (extension optional) and the signal files beside it. */
export async function loadWfdbRecord(heaPath: string, opts: WfdbReadOptions = {}): Promise<EcgRecord> {
  const { text, getFile } = await readWfdbFiles(heaPath);
  return wfdbToRecord(text, getFile, opts);
}
