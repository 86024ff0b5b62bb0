// PhysioNet/CinC Challenge 2020/2021 records (CPSC2018, Georgia, Chapman-Shaoxing, Ningbo, ...):
// a WFDB header whose info comments carry #Age/#Sex/#Dx, plus a MATLAB Level-4 .mat holding `val`
// (nsig × nsamp, column-major). The .mat is parsed directly so int16 and double files both work.
import { RecordError, type EcgRecord } from './record.js';
import { buildRecord, decodeWfdbSignals, parseWfdbHeader, readWfdbFiles, wfdbChecksum, type WfdbHeader, type WfdbReadOptions } from './wfdb.js';

export type MatV4Data = Float64Array | Float32Array | Int32Array | Int16Array | Uint16Array | Uint8Array;

export interface MatV4Variable {
  name: string;
  rows: number;
  cols: number;
  /** The MOPT type code as stored. */
  type: number;
  text: boolean;
  /** Real part, column-major: element (r, c) is data[c * rows + r]. */
  data: MatV4Data;
  imag?: MatV4Data;
}

const PRECISION = [
  { bytes: 8, make: (n: number) => new Float64Array(n), get: (dv: DataView, o: number, le: boolean) => dv.getFloat64(o, le) },
  { bytes: 4, make: (n: number) => new Float32Array(n), get: (dv: DataView, o: number, le: boolean) => dv.getFloat32(o, le) },
  { bytes: 4, make: (n: number) => new Int32Array(n), get: (dv: DataView, o: number, le: boolean) => dv.getInt32(o, le) },
  { bytes: 2, make: (n: number) => new Int16Array(n), get: (dv: DataView, o: number, le: boolean) => dv.getInt16(o, le) },
  { bytes: 2, make: (n: number) => new Uint16Array(n), get: (dv: DataView, o: number, le: boolean) => dv.getUint16(o, le) },
  { bytes: 1, make: (n: number) => new Uint8Array(n), get: (dv: DataView, o: number) => dv.getUint8(o) },
] as const;

/** MOPT = M·1000 + O·100 + P·10 + T; valid when M ≤ 4, O = 0, P ≤ 5, T ≤ 2. */
function validType(t: number): boolean {
  return t >= 0 && t < 5000 && Math.floor(t / 100) % 10 === 0 && Math.floor(t / 10) % 10 <= 5 && t % 10 <= 2;
}

/** Parses every variable of a MATLAB Level-4 file (the format written by savemat(format='4')). */
export function parseMatV4(bytes: Uint8Array): MatV4Variable[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const vars: MatV4Variable[] = [];
  let off = 0;
  while (off + 20 <= bytes.byteLength) {
    // The header is written in the machine's byte order; M says which, so try little-endian first.
    let le = true;
    let type = dv.getInt32(off, true);
    if (!validType(type)) {
      type = dv.getInt32(off, false);
      le = false;
      if (!validType(type)) throw new RecordError('bad-mat', `not a MATLAB v4 matrix header at byte ${off}`);
    }
    const m = Math.floor(type / 1000);
    if (m > 1) throw new RecordError('bad-mat', `unsupported MATLAB v4 number format M=${m} (VAX/Cray)`);
    const dataLe = m === 0;
    const rows = dv.getInt32(off + 4, le);
    const cols = dv.getInt32(off + 8, le);
    const imagf = dv.getInt32(off + 12, le);
    const namlen = dv.getInt32(off + 16, le);
    if (rows < 0 || cols < 0 || namlen < 1 || namlen > 4096) throw new RecordError('bad-mat', `bad matrix header at byte ${off}`);
    const nameEnd = off + 20 + namlen;
    if (nameEnd > bytes.byteLength) throw new RecordError('truncated', 'MATLAB v4 name past end of file');
    let name = '';
    for (let i = off + 20; i < nameEnd && bytes[i] !== 0; i++) name += String.fromCharCode(bytes[i]);
    const p = PRECISION[Math.floor(type / 10) % 10];
    const n = rows * cols;
    const parts = imagf ? 2 : 1;
    const end = nameEnd + n * p.bytes * parts;
    if (end > bytes.byteLength) throw new RecordError('truncated', `MATLAB v4 variable '${name}' needs ${end} bytes, file has ${bytes.byteLength}`);
    const read = (start: number): MatV4Data => {
      const a = p.make(n);
      for (let i = 0; i < n; i++) a[i] = p.get(dv, start + i * p.bytes, dataLe);
      return a;
    };
    const v: MatV4Variable = { name, rows, cols, type, text: type % 10 === 1, data: read(nameEnd) };
    if (imagf) v.imag = read(nameEnd + n * p.bytes);
    vars.push(v);
    off = end;
  }
  return vars;
}

/** Writes MATLAB v4 little-endian full matrices (int16 ⇒ type 30, double ⇒ type 0). */
export function writeMatV4(vars: { name: string; rows: number; cols: number; data: Int16Array | Float64Array }[]): Uint8Array {
  const sizes = vars.map((v) => 20 + v.name.length + 1 + v.data.byteLength);
  const out = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
  const dv = new DataView(out.buffer);
  let off = 0;
  for (const v of vars) {
    if (v.data.length !== v.rows * v.cols) throw new Error(`writeMatV4: ${v.name} has ${v.data.length} elements, not ${v.rows}×${v.cols}`);
    const int16 = v.data instanceof Int16Array;
    dv.setInt32(off, int16 ? 30 : 0, true);
    dv.setInt32(off + 4, v.rows, true);
    dv.setInt32(off + 8, v.cols, true);
    dv.setInt32(off + 12, 0, true);
    dv.setInt32(off + 16, v.name.length + 1, true);
    for (let i = 0; i < v.name.length; i++) out[off + 20 + i] = v.name.charCodeAt(i);
    off += 20 + v.name.length + 1;
    for (let i = 0; i < v.data.length; i++) {
      if (int16) dv.setInt16(off + 2 * i, v.data[i], true);
      else dv.setFloat64(off + 8 * i, v.data[i], true);
    }
    off += v.data.byteLength;
  }
  return out;
}

export interface ChallengeInfo {
  age: number | null;
  sex: 'male' | 'female' | null;
  /** Diagnosis codes as written: SNOMED CT codes in later releases, abbreviations in the first. */
  dx: string[];
  rx?: string;
  hx?: string;
  sx?: string;
}

/** Reads #Age/#Sex/#Dx/#Rx/#Hx/#Sx from the header comments ("Unknown"/"NaN" ⇒ null). */
export function parseChallengeInfo(header: WfdbHeader): ChallengeInfo {
  const info: ChallengeInfo = { age: null, sex: null, dx: [] };
  for (const c of header.comments) {
    const m = /^(\w+)\s*:\s*(.*)$/.exec(c);
    if (!m) continue;
    const key = m[1].toLowerCase();
    const val = m[2].trim();
    if (key === 'age') {
      const a = Number(val);
      info.age = val !== '' && Number.isFinite(a) ? a : null;
    } else if (key === 'sex') {
      const s = val.toLowerCase();
      info.sex = s === 'male' || s === 'm' ? 'male' : s === 'female' || s === 'f' ? 'female' : null;
    } else if (key === 'dx') {
      info.dx = val.split(',').map((d) => d.trim()).filter((d) => d !== '' && d.toLowerCase() !== 'unknown');
    } else if (key === 'rx' || key === 'hx' || key === 'sx') info[key] = val;
  }
  return info;
}

/**
 * Challenge header text + file bytes → record with labels { dx } and meta { age, sex, ... }.
 * Signals stored in a .mat are read from its `val` matrix; any other file goes through the WFDB decoder.
 */
export function challengeToRecord(headerText: string, getFile: (name: string) => Uint8Array | undefined, opts: WfdbReadOptions = {}): EcgRecord {
  const header = parseWfdbHeader(headerText);
  const info = parseChallengeInfo(header);
  const files = new Set(header.signals.map((s) => s.fileName));
  let rec: EcgRecord;
  if (files.size === 1 && /\.mat$/i.test(header.signals[0]?.fileName ?? '')) {
    const name = header.signals[0].fileName;
    const bytes = getFile(name);
    if (!bytes) throw new RecordError('missing-file', name);
    const vars = parseMatV4(bytes);
    const val = vars.find((v) => v.name === 'val') ?? (vars.length === 1 ? vars[0] : undefined);
    if (!val) throw new RecordError('bad-mat', `${name}: no 'val' matrix`);
    // Expected nsig × nsamp; accept the transpose too since some re-exports store it that way.
    const transposed = val.rows !== header.nSig && val.cols === header.nSig;
    if (!transposed && val.rows !== header.nSig) throw new RecordError('bad-mat', `${name}: val is ${val.rows}×${val.cols}, header declares ${header.nSig} signals`);
    const nSamples = transposed ? val.rows : val.cols;
    const warnings: string[] = [];
    if (header.nSamples !== undefined && header.nSamples !== nSamples) warnings.push(`header says ${header.nSamples} samples, .mat holds ${nSamples}`);
    const isInteger = !(val.data instanceof Float64Array || val.data instanceof Float32Array);
    const digital = header.signals.map((_, s) => {
      const d = new Float64Array(nSamples);
      for (let t = 0; t < nSamples; t++) d[t] = transposed ? val.data[s * nSamples + t] : val.data[t * val.rows + s];
      return d;
    });
    if (isInteger)
      header.signals.forEach((s, i) => {
        if (s.checksum !== undefined && header.nSamples === nSamples && wfdbChecksum(digital[i]) !== (s.checksum & 0xffff)) {
          warnings.push(`checksum mismatch in signal ${i} (${s.description})`);
          if (opts.checksum === 'error') throw new RecordError('checksum', `signal ${i} (${s.description})`);
        }
      });
    rec = buildRecord(header, digital, nSamples, warnings, isInteger);
  } else {
    const dec = decodeWfdbSignals(header, getFile);
    if (opts.checksum === 'error' && dec.checksumOk.some((ok) => ok === false)) throw new RecordError('checksum', dec.warnings.join('; '));
    rec = buildRecord(header, dec.digital, dec.nSamples, dec.warnings);
  }
  rec.labels = { dx: info.dx };
  rec.meta = { ...rec.meta, age: info.age, sex: info.sex };
  for (const k of ['rx', 'hx', 'sx'] as const) if (info[k] !== undefined) rec.meta[k] = info[k];
  delete rec.meta.comments;
  return rec;
}

/** Node: reads `<path>.hea` and its .mat (or .dat) beside it. */
export async function loadChallengeRecord(heaPath: string, opts: WfdbReadOptions = {}): Promise<EcgRecord> {
  const { text, getFile } = await readWfdbFiles(heaPath);
  return challengeToRecord(text, getFile, opts);
}
