// safetensors encoding and decoding (environment-neutral; file I/O is in checkpoint.ts):
// 8-byte little-endian header length N, N bytes of JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then the
// raw little-endian tensor bytes, offsets relative to the end of the header, no holes.
// F32, F16 (stored as raw half bits in a Uint16Array) and F64 (small float64 tensors, e.g. a
// fine-tuned head trained in float64 on the CPU).

export type StDType = 'F32' | 'F16' | 'F64';

export interface StTensor {
  dtype: StDType;
  shape: number[];
  /** F32: Float32Array. F16: Uint16Array of half bits (a Float32Array is converted on encode). F64: Float64Array. */
  data: Float32Array | Uint16Array | Float64Array;
}

const BYTES: Record<StDType, number> = { F32: 4, F16: 2, F64: 8 };
// The format is little-endian; typed arrays use the host's order, so refuse a big-endian host.
const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const MAX_HEADER = 100_000_000; // the reference implementation's limit

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** float32 → IEEE half bits, round to nearest even; overflow → ±inf, NaN stays NaN. */
export function f32ToF16Bits(v: number): number {
  f32buf[0] = v;
  const x = u32buf[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++; // may carry into the exponent: correct
  return sign | h;
}

/** IEEE half bits → number. */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

let halfTable: Float32Array | null = null;
/** Every half value widened once (256 KiB, built on first use): decoding is one lookup per value. */
export function halfToFloatTable(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = f16BitsToF32(h);
  }
  return halfTable;
}

/** A tensor's values as float32 (F16 widened, F64 rounded). */
export function asFloat32(t: StTensor): Float32Array {
  if (t.dtype === 'F32') return t.data as Float32Array;
  if (t.dtype === 'F64') return Float32Array.from(t.data);
  const table = halfToFloatTable();
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < out.length; i++) out[i] = table[t.data[i]];
  return out;
}

function tensorBytes(name: string, t: StTensor): Uint8Array {
  if (!Object.prototype.hasOwnProperty.call(BYTES, t.dtype)) throw new Error(`safetensors: tensor '${name}': unsupported dtype ${JSON.stringify(t.dtype)} (F32, F16, F64)`);
  const n = numel(t.shape);
  if (t.shape.some((d) => !Number.isInteger(d) || d < 0)) throw new Error(`safetensors: tensor '${name}': bad shape [${t.shape}]`);
  if (t.data.length !== n) throw new Error(`safetensors: tensor '${name}': ${t.data.length} values for shape [${t.shape}] (${n})`);
  let arr: Float32Array | Uint16Array | Float64Array = t.data;
  if (t.dtype === 'F32' && !(arr instanceof Float32Array)) throw new Error(`safetensors: tensor '${name}': F32 data must be a Float32Array`);
  if (t.dtype === 'F64' && !(arr instanceof Float64Array)) throw new Error(`safetensors: tensor '${name}': F64 data must be a Float64Array`);
  if (t.dtype === 'F16' && !(arr instanceof Float32Array || arr instanceof Uint16Array)) throw new Error(`safetensors: tensor '${name}': F16 data must be a Uint16Array of half bits or a Float32Array`);
  if (t.dtype === 'F16' && arr instanceof Float32Array) arr = Uint16Array.from(arr, f32ToF16Bits);
  return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
}

/** The file's bytes. Tensors are laid out in the given order. */
export function encodeSafetensors(tensors: Map<string, StTensor> | Record<string, StTensor>, metadata: Record<string, string> = {}): Uint8Array {
  if (!LITTLE) throw new Error('safetensors: big-endian hosts are not supported');
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new Error(`safetensors: metadata '${k}' must be a string`);
    header.__metadata__ = metadata;
  }
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new Error("safetensors: '__metadata__' is reserved");
    const b = tensorBytes(name, t);
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + b.byteLength] };
    parts.push(b);
    offset += b.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  // Pad the header with spaces so the data starts 8-byte aligned (as the reference writer does).
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) {
    const p = new Uint8Array(json.length + pad).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, json.length, true);
  dv.setUint32(4, 0, true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

export interface Decoded {
  tensors: Map<string, StTensor>;
  metadata: Record<string, string>;
}

/** Where each tensor of a safetensors file lies (offsets into the data after the header). */
export interface SafetensorsLayout {
  metadata: Record<string, string>;
  /** Byte offset of the data: 8 + the header's length. */
  dataStart: number;
  entries: { name: string; dtype: StDType; shape: number[]; begin: number; end: number }[];
}

/** The header's byte length from a safetensors file's first 8 bytes, checked against the file's size
 *  and a plausible limit (so no caller allocates what a corrupt length says). */
export function safetensorsHeaderLength(first8: Uint8Array, fileSize: number, what = 'safetensors file'): number {
  if (fileSize < 8 || first8.byteLength < 8) throw new Error(`${what}: truncated: ${fileSize} bytes, not even the 8-byte header length`);
  const dv = new DataView(first8.buffer, first8.byteOffset, 8);
  const n = dv.getUint32(4, true) * 2 ** 32 + dv.getUint32(0, true);
  if (n > MAX_HEADER) throw new Error(`${what}: header length ${n} is implausible (not a safetensors file?)`);
  if (8 + n > fileSize) throw new Error(`${what}: truncated: header says ${n} bytes of JSON, file has ${fileSize - 8} after the length`);
  return n;
}

/**
 * Parses and checks a safetensors header against the size of its file: `head` holds at least the
 * file's first 8 + header-length bytes (the whole file will do). Dtypes, shapes, and offsets that
 * tile the data exactly, so a truncated or padded file is refused here, before any tensor is read.
 */
export function parseSafetensorsLayout(head: Uint8Array, fileSize: number, what = 'safetensors file'): SafetensorsLayout {
  if (!LITTLE) throw new Error('safetensors: big-endian hosts are not supported');
  const fail = (msg: string): never => {
    throw new Error(`${what}: ${msg}`);
  };
  const n = safetensorsHeaderLength(head, fileSize, what);
  if (8 + n > head.byteLength) fail(`${8 + n} header bytes needed, ${head.byteLength} given`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(head.subarray(8, 8 + n)));
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const entries: SafetensorsLayout['entries'] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object') fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as object)) {
        if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e === null || typeof e !== 'object') fail(`tensor '${name}': entry is not an object`);
    if (typeof e.dtype !== 'string' || !Object.prototype.hasOwnProperty.call(BYTES, e.dtype)) fail(`tensor '${name}': unsupported dtype ${JSON.stringify(e.dtype)} (F32, F16, F64)`);
    const dtype = e.dtype as StDType;
    if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isInteger(d) || d < 0)) fail(`tensor '${name}': bad shape ${JSON.stringify(e.shape)}`);
    const shape = e.shape as number[];
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isInteger(x) && x >= 0) || off[1] < off[0])
      fail(`tensor '${name}': bad data_offsets ${JSON.stringify(off)}`);
    const [begin, end] = off as [number, number];
    const want = numel(shape) * BYTES[dtype];
    if (end - begin !== want) fail(`tensor '${name}': ${end - begin} bytes for ${dtype} [${shape}] (needs ${want})`);
    if (end > dataLen) fail(`truncated: tensor '${name}' ends at byte ${end} of the data, the file has ${dataLen}`);
    entries.push({ name, dtype, shape, begin, end });
  }
  const spans = [...entries].sort((x, y) => x.begin - y.begin || x.end - y.end);
  let at = 0;
  for (const { begin, end, name } of spans) {
    if (begin !== at) fail(begin < at ? `tensor '${name}' overlaps the previous tensor` : `hole in the data before tensor '${name}'`);
    at = end;
  }
  if (at !== dataLen) fail(`${dataLen - at} unexpected bytes after the last tensor`);
  return { metadata, dataStart, entries };
}

/** Parses and validates a safetensors file; `what` names it in errors. Tensor data is copied. */
export function decodeSafetensors(bytes: Uint8Array, what = 'safetensors file'): Decoded {
  const { metadata, dataStart, entries } = parseSafetensorsLayout(bytes, bytes.byteLength, what);
  const tensors = new Map<string, StTensor>();
  for (const { name, dtype, shape, begin, end } of entries) {
    // Copy: the source may be unaligned for a typed-array view, and callers may keep the result.
    const copy = new Uint8Array(end - begin);
    copy.set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, { dtype, shape, data: dtype === 'F32' ? new Float32Array(copy.buffer) : dtype === 'F64' ? new Float64Array(copy.buffer) : new Uint16Array(copy.buffer) });
  }
  return { tensors, metadata };
}
