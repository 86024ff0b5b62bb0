// NumPy .npy reader/writer (format versions 1.0, 2.0 and 3.0; little- and big-endian numeric
// dtypes; C order, Fortran order converted) and a plain CSV signal reader (one column per lead).
import { parseCsv } from './ptbxl.js';
import { canonicalLeadName } from './record.js';

export type NpyDtype = '<f4' | '<f8' | '<i2' | '<i4' | '<u2' | '|u1' | '|i1' | '<i8';
export type NpyData = Float32Array | Float64Array | Int16Array | Int32Array | Uint16Array | Uint8Array | Int8Array;

export interface NpyArray {
  /** Normalised to little-endian names ('>f4' data is converted and reported as '<f4'). */
  dtype: NpyDtype;
  shape: number[];
  /** C order (row-major), whatever the file's order. */
  data: NpyData;
}

export interface NpyHeader {
  dtype: NpyDtype;
  littleEndian: boolean;
  fortranOrder: boolean;
  shape: number[];
  /** Byte offset of the data. */
  dataOffset: number;
  itemSize: number;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const KINDS: Record<string, { size: number; make: (n: number) => NpyData; get: (dv: DataView, o: number, le: boolean) => number; set: (dv: DataView, o: number, v: number) => void }> = {
  f4: { size: 4, make: (n) => new Float32Array(n), get: (dv, o, le) => dv.getFloat32(o, le), set: (dv, o, v) => dv.setFloat32(o, v, true) },
  f8: { size: 8, make: (n) => new Float64Array(n), get: (dv, o, le) => dv.getFloat64(o, le), set: (dv, o, v) => dv.setFloat64(o, v, true) },
  i2: { size: 2, make: (n) => new Int16Array(n), get: (dv, o, le) => dv.getInt16(o, le), set: (dv, o, v) => dv.setInt16(o, v, true) },
  i4: { size: 4, make: (n) => new Int32Array(n), get: (dv, o, le) => dv.getInt32(o, le), set: (dv, o, v) => dv.setInt32(o, v, true) },
  u2: { size: 2, make: (n) => new Uint16Array(n), get: (dv, o, le) => dv.getUint16(o, le), set: (dv, o, v) => dv.setUint16(o, v, true) },
  u1: { size: 1, make: (n) => new Uint8Array(n), get: (dv, o) => dv.getUint8(o), set: (dv, o, v) => dv.setUint8(o, v) },
  i1: { size: 1, make: (n) => new Int8Array(n), get: (dv, o) => dv.getInt8(o), set: (dv, o, v) => dv.setInt8(o, v) },
  // int64 is read into float64: exact up to 2^53, enough for ids and sample values
  i8: { size: 8, make: (n) => new Float64Array(n), get: (dv, o, le) => Number(dv.getBigInt64(o, le)), set: (dv, o, v) => dv.setBigInt64(o, BigInt(Math.round(v)), true) },
};

/** Parses the header only (needs the first few hundred bytes), so big files can be read piecewise. */
export function parseNpyHeader(bytes: Uint8Array): NpyHeader {
  if (bytes.byteLength < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new Error('npy: bad magic (not a .npy file)');
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let hlen: number, start: number;
  if (major === 1) {
    hlen = dv.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.byteLength < 12) throw new Error('npy: truncated header');
    hlen = dv.getUint32(8, true);
    start = 12;
  } else throw new Error(`npy: unsupported format version ${major}`);
  if (start + hlen > bytes.byteLength) throw new Error('npy: truncated header');
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + hlen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw new Error(`npy: cannot parse header ${text.trim()}`);
  const m = /^([<>|=])([fiu])(\d)$/.exec(descr);
  const kind = m ? `${m[2]}${m[3]}` : '';
  if (!m || !(kind in KINDS)) throw new Error(`npy: unsupported dtype '${descr}'`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => Number(s.replace(/L$/, '')));
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new Error(`npy: bad shape (${shapeText})`);
  const single = KINDS[kind].size === 1;
  return {
    dtype: (single ? `|${kind}` : `<${kind}`) as NpyDtype,
    littleEndian: m[1] !== '>',
    fortranOrder: fortran === 'True',
    shape,
    dataOffset: start + hlen,
    itemSize: KINDS[kind].size,
  };
}

/** Decodes `count` elements of header's dtype from `bytes` (already positioned at the data). */
export function decodeNpyData(h: Pick<NpyHeader, 'dtype' | 'littleEndian'>, bytes: Uint8Array, count: number): NpyData {
  const k = KINDS[h.dtype.slice(1)];
  if (bytes.byteLength < count * k.size) throw new Error(`npy: data truncated (${bytes.byteLength} bytes for ${count} × ${k.size})`);
  const out = k.make(count);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < count; i++) out[i] = k.get(dv, i * k.size, h.littleEndian);
  return out;
}

/** Fortran-order data → C order (reverse-strided copy). */
function fortranToC(src: NpyData, shape: number[]): NpyData {
  const n = src.length;
  const dst = new (src.constructor as new (n: number) => NpyData)(n);
  const nd = shape.length;
  const idx = new Array<number>(nd).fill(0);
  const fStride = shape.map((_, d) => shape.slice(0, d).reduce((a, b) => a * b, 1));
  for (let c = 0; c < n; c++) {
    let f = 0;
    for (let d = 0; d < nd; d++) f += idx[d] * fStride[d];
    dst[c] = src[f];
    for (let d = nd - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return dst;
}

export function parseNpy(bytes: Uint8Array): NpyArray {
  const h = parseNpyHeader(bytes);
  const count = h.shape.reduce((a, b) => a * b, 1);
  let data = decodeNpyData(h, bytes.subarray(h.dataOffset), count);
  if (h.fortranOrder && h.shape.length > 1) data = fortranToC(data, h.shape);
  return { dtype: h.dtype, shape: h.shape, data };
}

function dtypeOf(data: NpyData): NpyDtype {
  if (data instanceof Float32Array) return '<f4';
  if (data instanceof Float64Array) return '<f8';
  if (data instanceof Int16Array) return '<i2';
  if (data instanceof Int32Array) return '<i4';
  if (data instanceof Uint16Array) return '<u2';
  if (data instanceof Uint8Array) return '|u1';
  return '|i1';
}

/** The .npy header bytes for C-order data (version 1.0, or 2.0 when the header exceeds 64 KiB). */
export function npyHeaderBytes(dtype: NpyDtype, shape: readonly number[]): Uint8Array {
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  // numpy pads so the data starts on a 64-byte boundary and ends the header with '\n'
  let version = 1;
  let pre = 10;
  if (dict.length + 1 + pre > 65535) {
    version = 2;
    pre = 12;
  }
  const total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  const hlen = total - pre;
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, hlen, true);
  else dv.setUint32(8, hlen, true);
  const text = dict.padEnd(hlen - 1, ' ') + '\n';
  for (let i = 0; i < text.length; i++) out[pre + i] = text.charCodeAt(i);
  return out;
}

/** Encodes a C-order array; the dtype follows the typed array ('<i8' only via an explicit dtype with Float64Array data). */
export function writeNpy(data: NpyData, shape: readonly number[], dtype: NpyDtype = dtypeOf(data)): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`writeNpy: shape [${shape}] holds ${count} elements, data has ${data.length}`);
  const head = npyHeaderBytes(dtype, shape);
  const k = KINDS[dtype.slice(1)];
  const out = new Uint8Array(head.byteLength + count * k.size);
  out.set(head, 0);
  const dv = new DataView(out.buffer, head.byteLength);
  for (let i = 0; i < count; i++) k.set(dv, i * k.size, data[i]);
  return out;
}

export interface CsvSignals {
  leadNames: string[];
  /** One array per lead, scaled by `scale`. */
  signals: Float32Array[];
}

const TIME_COLUMNS = new Set(['time', 't', 'sample', 'samples', 'index', 'ms', 's', 'seconds', 'time_ms', 'time_s', '']);

/**
 * A plain CSV of samples: one row per sample, one column per lead, optional header row of lead names
 * (otherwise lead0, lead1, …) and an optional leading time/index column, which is dropped. `scale`
 * converts values to mV (e.g. 0.001 for µV files). Empty or non-numeric cells become NaN.
 */
export function parseSignalCsv(text: string, scale = 1): CsvSignals {
  const rows = parseCsv(text);
  if (rows.length === 0) throw new Error('signal CSV is empty');
  const isNum = (s: string) => s.trim() !== '' && Number.isFinite(Number(s));
  const hasHeader = !rows[0].every(isNum);
  const width = rows[0].length;
  let names = hasHeader ? rows[0].map((s) => s.trim()) : Array.from({ length: width }, (_, i) => `lead${i}`);
  let first = 0;
  if (hasHeader && TIME_COLUMNS.has(names[0].toLowerCase())) first = 1;
  names = names.slice(first);
  const body = hasHeader ? rows.slice(1) : rows;
  const signals = names.map(() => new Float32Array(body.length));
  body.forEach((r, t) => {
    for (let l = 0; l < names.length; l++) {
      const s = r[l + first];
      signals[l][t] = s !== undefined && isNum(s) ? Number(s) * scale : NaN;
    }
  });
  return { leadNames: names.map(canonicalLeadName), signals };
}
