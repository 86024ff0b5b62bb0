// Reads PyTorch `.pth` files (torch.save >= 1.6: a zip) without Python, as a pure function over
// bytes (Node and browsers): the zip's central directory (ZIP64 records too: torch always writes
// them), STORED entries only; `<archive>/data.pkl` through a restricted unpickler that executes
// nothing: GLOBAL / STACK_GLOBAL resolve only a whitelist (collections.OrderedDict, torch's tensor
// and parameter rebuilders, storage classes, dtypes), anything else is an error naming it; storages
// (BINPERSID) come from `<archive>/data/<key>`; tensors are views (offset, size, stride) into them,
// read out as float32 (float16, bfloat16 and float64 converted).
import { f16BitsToF32 } from './safetensors.js';

// ---------------------------------------------------------------------------------------------
// Zip

export interface ZipEntry {
  name: string;
  /** 0 = STORED (the only one read), 8 = DEFLATE, ... */
  method: number;
  /** Offset of the entry's local header. */
  headerOffset: number;
  compressedSize: number;
  size: number;
  /** CRC-32 of the data, as recorded in the central directory. */
  crc32: number;
}

let crcTable: Uint32Array | null = null;

/** CRC-32 (the zip / zlib polynomial 0xEDB88320), table-driven. */
export function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[i] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_LOCATOR64 = 0x07064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const U32_MAX = 0xffffffff;

function u64(v: DataView, at: number, what: string): number {
  const lo = v.getUint32(at, true);
  const hi = v.getUint32(at + 4, true);
  if (hi >= 2 ** 21) throw new Error(`${what}: a 64-bit field (${hi}·2^32 + ${lo}) is too large to address`);
  return hi * 2 ** 32 + lo;
}

/** The central directory of a zip: every entry by name. Throws on anything malformed or truncated. */
export function readZipEntries(bytes: Uint8Array, what = 'zip'): Map<string, ZipEntry> {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.length;
  // End of central directory: 22 bytes + a comment of up to 65535.
  let eocd = -1;
  for (let i = n - 22; i >= Math.max(0, n - 22 - 0xffff); i--)
    if (v.getUint32(i, true) === SIG_EOCD && i + 22 + v.getUint16(i + 20, true) === n) {
      eocd = i;
      break;
    }
  if (eocd < 0) {
    const zip = n >= 4 && v.getUint32(0, true) === SIG_LOCAL;
    throw new Error(`${what}: ${zip ? 'truncated or damaged zip (no end of central directory record)' : 'not a zip archive'}` +
      (!zip && n >= 2 && bytes[0] === 0x80 ? ' (a pickle: the legacy torch.save format before 1.6 / _use_new_zipfile_serialization=False, not supported; re-save it with a recent torch)' : ''));
  }
  let count = v.getUint16(eocd + 10, true);
  let cdSize = v.getUint32(eocd + 12, true);
  let cdOffset = v.getUint32(eocd + 16, true);
  // ZIP64: a locator right before the EOCD points at the ZIP64 end record with 64-bit fields.
  if (eocd >= 20 && v.getUint32(eocd - 20, true) === SIG_LOCATOR64) {
    const at = u64(v, eocd - 12, what);
    if (at + 56 > eocd - 20 || v.getUint32(at, true) !== SIG_EOCD64) throw new Error(`${what}: damaged ZIP64 end of central directory record`);
    count = u64(v, at + 32, what);
    cdSize = u64(v, at + 40, what);
    cdOffset = u64(v, at + 48, what);
  } else if (count === 0xffff || cdSize === U32_MAX || cdOffset === U32_MAX) {
    throw new Error(`${what}: ZIP64 sizes without a ZIP64 end of central directory locator (damaged zip)`);
  }
  if (cdOffset + cdSize > n) throw new Error(`${what}: truncated (central directory at ${cdOffset}+${cdSize}, file ${n} bytes)`);
  const entries = new Map<string, ZipEntry>();
  const dec = new TextDecoder();
  let p = cdOffset;
  for (let k = 0; k < count; k++) {
    if (p + 46 > cdOffset + cdSize || v.getUint32(p, true) !== SIG_CENTRAL) throw new Error(`${what}: damaged central directory (entry ${k} at ${p})`);
    const method = v.getUint16(p + 10, true);
    const crc = v.getUint32(p + 16, true);
    let compressedSize = v.getUint32(p + 20, true);
    let size = v.getUint32(p + 24, true);
    const nameLen = v.getUint16(p + 28, true);
    const extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true);
    let headerOffset = v.getUint32(p + 42, true);
    if (p + 46 + nameLen + extraLen + commentLen > cdOffset + cdSize) throw new Error(`${what}: damaged central directory (entry ${k} runs past it)`);
    const name = dec.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    if (v.getUint16(p + 8, true) & 1) throw new Error(`${what}: entry '${name}' is encrypted`);
    // ZIP64 extended information (0x0001): 64-bit values for the fields that are 0xFFFFFFFF, in this order.
    for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen; ) {
      const id = v.getUint16(e, true);
      const len = v.getUint16(e + 2, true);
      if (id === 0x0001) {
        let q = e + 4;
        const next = () => {
          if (q + 8 > e + 4 + len) throw new Error(`${what}: entry '${name}': short ZIP64 extra field`);
          const x = u64(v, q, what);
          q += 8;
          return x;
        };
        if (size === U32_MAX) size = next();
        if (compressedSize === U32_MAX) compressedSize = next();
        if (headerOffset === U32_MAX) headerOffset = next();
      }
      e += 4 + len;
    }
    entries.set(name, { name, method, headerOffset, compressedSize, size, crc32: crc });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** The bytes of a STORED entry (a view into `bytes`); refuses compressed, truncated or damaged
 *  (CRC-32 mismatch) entries. */
export function zipEntryData(bytes: Uint8Array, entry: ZipEntry, what = 'zip'): Uint8Array {
  if (entry.method !== 0)
    throw new Error(`${what}: entry '${entry.name}' is compressed (method ${entry.method}${entry.method === 8 ? ', deflate' : ''}); only STORED entries are read (torch.save stores them uncompressed; was the file re-zipped?)`);
  if (entry.compressedSize !== entry.size) throw new Error(`${what}: entry '${entry.name}': stored with ${entry.compressedSize} bytes for ${entry.size}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = entry.headerOffset;
  if (h + 30 > bytes.length || v.getUint32(h, true) !== SIG_LOCAL) throw new Error(`${what}: entry '${entry.name}': no local header at ${h} (truncated or damaged)`);
  // The local header's extra field (torch's alignment padding) may differ from the central one's.
  const start = h + 30 + v.getUint16(h + 26, true) + v.getUint16(h + 28, true);
  if (start + entry.size > bytes.length) throw new Error(`${what}: entry '${entry.name}' is truncated (needs bytes ${start}..${start + entry.size}, file has ${bytes.length})`);
  const data = bytes.subarray(start, start + entry.size);
  const crc = crc32(data);
  if (crc !== entry.crc32)
    throw new Error(`${what}: entry '${entry.name}': CRC-32 ${crc.toString(16)} differs from the recorded ${entry.crc32.toString(16)} (a damaged or incomplete download?)`);
  return data;
}

// ---------------------------------------------------------------------------------------------
// Python objects the unpickler builds

/** A whitelisted global (class, function or dtype object), never called except as defined below. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get fullName(): string {
    return `${this.module}.${this.name}`;
  }
}

export type TorchDType = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

const STORAGES: Record<string, TorchDType> = {
  FloatStorage: 'float32', HalfStorage: 'float16', BFloat16Storage: 'bfloat16', DoubleStorage: 'float64',
  LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16', CharStorage: 'int8', ByteStorage: 'uint8', BoolStorage: 'bool',
};
const ITEMSIZE: Record<TorchDType, number> = { float32: 4, float16: 2, bfloat16: 2, float64: 8, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1 };
const DTYPES = ['float32', 'float', 'float16', 'half', 'bfloat16', 'float64', 'double', 'int64', 'long', 'int32', 'int', 'int16', 'int8', 'uint8', 'bool'];

/** The only callables: what REDUCE / NEWOBJ may apply. */
const CALLABLES = new Set(['collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_parameter', 'torch._utils._rebuild_parameter_with_state', 'torch.Size']);

function allowedGlobal(module: string, name: string): boolean {
  const full = `${module}.${name}`;
  return CALLABLES.has(full) || (module === 'torch' && (name in STORAGES || DTYPES.includes(name)));
}

export interface TorchStorage {
  key: string;
  dtype: TorchDType;
  /** Elements. */
  numel: number;
  bytes: Uint8Array;
}

/** A tensor as torch rebuilds it: a strided view into a storage (offset, size, stride in elements). */
export class TorchTensor {
  constructor(
    readonly storage: TorchStorage,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}

  get dtype(): TorchDType {
    return this.storage.dtype;
  }

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  get contiguous(): boolean {
    let s = 1;
    for (let d = this.shape.length - 1; d >= 0; d--) {
      if (this.shape[d] !== 1 && this.stride[d] !== s) return false;
      s *= this.shape[d];
    }
    return true;
  }

  /** The values in row-major order as float32 (a copy; float16, bfloat16 and float64 converted). */
  toFloat32(what = 'tensor'): Float32Array {
    const dt = this.dtype;
    if (dt !== 'float32' && dt !== 'float16' && dt !== 'bfloat16' && dt !== 'float64') throw new Error(`${what}: dtype ${dt}, only floating-point tensors are read as float32`);
    const size = ITEMSIZE[dt];
    const b = this.storage.bytes;
    // Typed views need aligned offsets; copy the storage once when they are not.
    // (Uint8Array's slice: on a Node Buffer, Buffer.prototype.slice would return a view at the same offset)
    const aligned = b.byteOffset % size === 0 ? b : Uint8Array.prototype.slice.call(b);
    const n = this.numel;
    const src =
      dt === 'float32' ? new Float32Array(aligned.buffer, aligned.byteOffset, this.storage.numel)
      : dt === 'float64' ? new Float64Array(aligned.buffer, aligned.byteOffset, this.storage.numel)
      : new Uint16Array(aligned.buffer, aligned.byteOffset, this.storage.numel);
    const conv: (x: number) => number =
      dt === 'float16' ? f16BitsToF32
      : dt === 'bfloat16' ? (h) => bf16ToF32(h)
      : (x) => x;
    const out = new Float32Array(n);
    if (this.contiguous) {
      if (dt === 'float32') out.set((src as Float32Array).subarray(this.offset, this.offset + n));
      else for (let i = 0; i < n; i++) out[i] = conv(src[this.offset + i]);
      return out;
    }
    // General strides: walk the index like an odometer.
    const rank = this.shape.length;
    const idx = new Array<number>(rank).fill(0);
    let at = this.offset;
    for (let i = 0; i < n; i++) {
      out[i] = conv(src[at]);
      for (let d = rank - 1; d >= 0; d--) {
        if (++idx[d] < this.shape[d]) {
          at += this.stride[d];
          break;
        }
        at -= (this.shape[d] - 1) * this.stride[d];
        idx[d] = 0;
      }
    }
    return out;
  }
}

const bfBuf = new Uint32Array(1);
const bfF32 = new Float32Array(bfBuf.buffer);
function bf16ToF32(h: number): number {
  bfBuf[0] = h << 16;
  return bfF32[0];
}

/** Python values: dicts are Maps (string/number/boolean/null keys), lists and tuples arrays, ints numbers (bigint past 2^53). */
export type PyValue = null | boolean | number | bigint | string | Uint8Array | PyValue[] | Map<PyKey, PyValue> | PyGlobal | TorchTensor | TorchStorage;
export type PyKey = string | number | bigint | boolean | null;

// ---------------------------------------------------------------------------------------------
// Unpickler

export interface UnpickleOptions {
  /** BINPERSID: the persistent id (a tuple) → the object. Without it, BINPERSID is an error. */
  persistentLoad?: (pid: PyValue) => PyValue;
  /** Names the pickle in errors. */
  what?: string;
}

const MARK = Symbol('mark');

/** Tuples are frozen arrays (lists are not), so APPEND on a tuple is refused. */
function tuple(items: PyValue[]): PyValue[] {
  return Object.freeze(items) as unknown as PyValue[];
}

function typeName(x: unknown): string {
  if (x === null) return 'None';
  if (x instanceof Map) return 'dict';
  if (Array.isArray(x)) return Object.isFrozen(x) ? 'tuple' : 'list';
  if (x instanceof PyGlobal) return x.fullName;
  if (x instanceof TorchTensor) return 'tensor';
  if (x instanceof Uint8Array) return 'bytes';
  return typeof x;
}

function intArg(x: unknown, what: string): number {
  if (typeof x !== 'number' || !Number.isInteger(x)) throw new Error(`${what} must be an int, got ${typeName(x)}`);
  return x;
}

function intTuple(x: unknown, what: string): number[] {
  if (!Array.isArray(x)) throw new Error(`${what} must be a tuple of ints, got ${typeName(x)}`);
  return x.map((v, i) => intArg(v, `${what}[${i}]`));
}

/** _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]). */
function rebuildTensor(args: PyValue[], what: string): TorchTensor {
  if (args.length < 4) throw new Error(`${what}: _rebuild_tensor_v2 with ${args.length} arguments`);
  const storage = args[0] as TorchStorage;
  if (!storage || typeof storage !== 'object' || !('numel' in storage) || !('dtype' in storage)) throw new Error(`${what}: _rebuild_tensor_v2: the first argument is not a storage (${typeName(args[0])})`);
  const offset = intArg(args[1], `${what}: tensor storage offset`);
  const shape = intTuple(args[2], `${what}: tensor size`);
  const stride = intTuple(args[3], `${what}: tensor stride`);
  if (shape.length !== stride.length) throw new Error(`${what}: tensor size [${shape}] and stride [${stride}] differ in rank`);
  if (shape.some((d) => d < 0) || stride.some((s) => s < 0) || offset < 0) throw new Error(`${what}: negative tensor size, stride or offset`);
  // Every element must lie inside the storage.
  const empty = shape.some((d) => d === 0);
  const last = offset + shape.reduce((a, d, i) => a + (d - 1) * stride[i], 0);
  if (!empty && last >= storage.numel) throw new Error(`${what}: tensor [${shape}] stride [${stride}] at offset ${offset} reaches element ${last} of a ${storage.numel}-element storage '${storage.key}'`);
  return new TorchTensor(storage, offset, shape, stride);
}

/** Applies a whitelisted callable (REDUCE, NEWOBJ). */
function call(fn: PyValue, args: PyValue, what: string): PyValue {
  if (!(fn instanceof PyGlobal) || !CALLABLES.has(fn.fullName)) throw new Error(`${what}: cannot call ${typeName(fn)}`);
  if (!Array.isArray(args)) throw new Error(`${what}: arguments of ${fn.fullName} are not a tuple`);
  switch (fn.fullName) {
    case 'collections.OrderedDict': {
      const d = new Map<PyKey, PyValue>();
      if (args.length > 1) throw new Error(`${what}: OrderedDict with ${args.length} arguments`);
      for (const pair of (args[0] ?? []) as PyValue[]) {
        if (!Array.isArray(pair) || pair.length !== 2) throw new Error(`${what}: OrderedDict items must be pairs`);
        d.set(dictKey(pair[0], what), pair[1]);
      }
      return d;
    }
    case 'torch._utils._rebuild_tensor_v2':
      return rebuildTensor(args, what);
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state':
      // (data, requires_grad, backward_hooks[, state]): the parameter is its data.
      if (!(args[0] instanceof TorchTensor)) throw new Error(`${what}: ${fn.fullName} of ${typeName(args[0])}`);
      return args[0];
    case 'torch.Size':
      return tuple(intTuple(args[0] ?? [], `${what}: torch.Size`));
  }
  throw new Error(`${what}: cannot call ${fn.fullName}`);
}

function dictKey(k: PyValue, what: string): PyKey {
  if (k === null || typeof k === 'string' || typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean') return k;
  throw new Error(`${what}: unsupported dict key of type ${typeName(k)}`);
}

const OPNAMES: Record<number, string> = {};

/**
 * Unpickles protocol 0-5 opcodes a state dict uses, executing nothing: globals outside the
 * whitelist, unknown opcodes and malformed or truncated input are errors with the offset.
 */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions = {}): PyValue {
  const what = opts.what ?? 'pickle';
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder('utf-8', { fatal: true });
  const latin1 = new TextDecoder('latin1');
  const stack: (PyValue | typeof MARK)[] = [];
  const memo = new Map<number, PyValue>();
  let p = 0;
  let op = 0;
  let opAt = 0;
  const fail = (msg: string): never => {
    throw new Error(`${what}: ${msg} (opcode 0x${op.toString(16).padStart(2, '0')}${OPNAMES[op] ? ` ${OPNAMES[op]}` : ''} at offset ${opAt})`);
  };
  const need = (k: number) => {
    if (k < 0 || p + k > bytes.length) fail(`truncated: needs ${k} more bytes at offset ${p}, pickle has ${bytes.length}`);
  };
  const u8 = () => (need(1), bytes[p++]);
  const u16 = () => (need(2), (p += 2), v.getUint16(p - 2, true));
  const u32 = () => (need(4), (p += 4), v.getUint32(p - 4, true));
  const i32 = () => (need(4), (p += 4), v.getInt32(p - 4, true));
  const u64n = () => {
    need(8);
    const lo = v.getUint32(p, true);
    const hi = v.getUint32(p + 4, true);
    p += 8;
    if (hi >= 2 ** 21) fail('a length past 2^53');
    return hi * 2 ** 32 + lo;
  };
  const take = (k: number) => (need(k), (p += k), bytes.subarray(p - k, p));
  const line = () => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) fail('truncated: a GLOBAL without its newline');
    const s = latin1.decode(bytes.subarray(p, end));
    p = end + 1;
    return s;
  };
  const utf8 = (b: Uint8Array) => {
    try {
      return dec.decode(b);
    } catch {
      return fail('a string that is not UTF-8');
    }
  };
  const pop = (): PyValue => {
    if (!stack.length) fail('stack underflow');
    const x = stack.pop()!;
    if (x === MARK) fail('unexpected MARK on the stack');
    return x as PyValue;
  };
  const top = (): PyValue => {
    const x = stack[stack.length - 1];
    if (x === undefined || x === MARK) fail('stack underflow');
    return x as PyValue;
  };
  const popMark = (): PyValue[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) fail('no MARK on the stack');
    const items = stack.splice(i) as PyValue[];
    items.shift();
    return items;
  };
  const global = (module: string, name: string): PyGlobal => {
    if (!allowedGlobal(module, name))
      fail(`global '${module}.${name}' is not allowed: only collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter, torch storage classes and dtypes are (a state_dict needs nothing else; nothing in the file is ever executed)`);
    return new PyGlobal(module, name);
  };
  const setItems = (d: PyValue, items: PyValue[]) => {
    if (!(d instanceof Map)) fail(`SETITEM(S) on ${typeName(d)}`);
    if (items.length % 2) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) (d as Map<PyKey, PyValue>).set(dictKey(items[i], what), items[i + 1]);
  };
  const appendItems = (l: PyValue, items: PyValue[]) => {
    if (!Array.isArray(l) || Object.isFrozen(l)) fail(`APPEND(S) on ${typeName(l)}`);
    (l as PyValue[]).push(...items);
  };
  const memoGet = (i: number) => {
    if (!memo.has(i)) fail(`memo ${i} is not defined`);
    stack.push(memo.get(i)!);
  };

  while (true) {
    opAt = p;
    if (p >= bytes.length) {
      op = 0;
      fail('truncated: no STOP');
    }
    op = bytes[p++];
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('pickle protocol above 5');
        break;
      case 0x95: // FRAME: a length hint only
        u64n();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} items on the stack`);
        return pop();
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(tuple([]));
        break;
      case 0x74: // TUPLE
        stack.push(tuple(popMark()));
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: { // TUPLE3
        const k = op - 0x84;
        if (stack.length < k) fail('stack underflow');
        const items: PyValue[] = [];
        for (let i = 0; i < k; i++) items.unshift(pop());
        stack.push(tuple(items));
        break;
      }
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x64: { // DICT
        const d = new Map<PyKey, PyValue>();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
      case 0x8b: { // LONG4
        const n = op === 0x8a ? u8() : u32();
        if (op === 0x8b && n > 64) fail(`an integer of ${n} bytes`);
        const b = take(n);
        let x = 0n;
        for (let i = n - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i]);
        if (n > 0 && b[n - 1] & 0x80) x -= 1n << BigInt(8 * n);
        stack.push(x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x);
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        stack.push(v.getFloat64(p, false));
        p += 8;
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8(take(u64n())));
        break;
      case 0x54: // BINSTRING (Python 2 str)
        stack.push(latin1.decode(take(i32())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1.decode(take(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
        stack.push(take(u64n()).slice());
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
        memoGet(u8());
        break;
      case 0x6a: // LONG_BINGET
        memoGet(u32());
        break;
      case 0x30: // POP
        if (stack.pop() === undefined) fail('stack underflow');
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x73: { // SETITEM
        const val = pop();
        const key = pop();
        setItems(top(), [key, val]);
        break;
      }
      case 0x61: { // APPEND
        const x = pop();
        appendItems(top(), [x]);
        break;
      }
      case 0x75: // SETITEMS
      case 0x65: { // APPENDS
        const items = popMark();
        (op === 0x75 ? setItems : appendItems)(top(), items);
        break;
      }
      case 0x63: { // GLOBAL
        const module = line();
        const name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        try {
          stack.push(call(fn, args, what));
        } catch (e) {
          fail((e as Error).message.replace(`${what}: `, ''));
        }
        break;
      }
      case 0x81: { // NEWOBJ: cls.__new__(cls, *args), only for OrderedDict
        const args = pop();
        const cls = pop();
        if (!(cls instanceof PyGlobal) || cls.fullName !== 'collections.OrderedDict') fail(`NEWOBJ of ${typeName(cls)}`);
        if (!Array.isArray(args)) fail('NEWOBJ arguments are not a tuple');
        stack.push(new Map());
        break;
      }
      case 0x62: { // BUILD: state on a dict (OrderedDict._metadata) or a tensor is ignored
        const state = pop();
        void state;
        const obj = top();
        if (!(obj instanceof Map) && !(obj instanceof TorchTensor)) fail(`BUILD on ${typeName(obj)}`);
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) fail('a persistent id, but no storage to load it from');
        try {
          stack.push(opts.persistentLoad!(pid));
        } catch (e) {
          fail((e as Error).message);
        }
        break;
      }
      default:
        fail(`unsupported opcode 0x${op.toString(16).padStart(2, '0')} ('${op >= 0x20 && op < 0x7f ? String.fromCharCode(op) : '?'}')`);
    }
  }
}

Object.assign(OPNAMES, {
  0x80: 'PROTO', 0x95: 'FRAME', 0x2e: 'STOP', 0x28: 'MARK', 0x7d: 'EMPTY_DICT', 0x5d: 'EMPTY_LIST', 0x29: 'EMPTY_TUPLE', 0x74: 'TUPLE',
  0x85: 'TUPLE1', 0x86: 'TUPLE2', 0x87: 'TUPLE3', 0x6c: 'LIST', 0x64: 'DICT', 0x4a: 'BININT', 0x4b: 'BININT1', 0x4d: 'BININT2',
  0x8a: 'LONG1', 0x8b: 'LONG4', 0x47: 'BINFLOAT', 0x4e: 'NONE', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x58: 'BINUNICODE',
  0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x42: 'BINBYTES', 0x43: 'SHORT_BINBYTES',
  0x8e: 'BINBYTES8', 0x71: 'BINPUT', 0x72: 'LONG_BINPUT', 0x94: 'MEMOIZE', 0x68: 'BINGET', 0x6a: 'LONG_BINGET', 0x30: 'POP',
  0x31: 'POP_MARK', 0x32: 'DUP', 0x73: 'SETITEM', 0x75: 'SETITEMS', 0x61: 'APPEND', 0x65: 'APPENDS', 0x63: 'GLOBAL',
  0x93: 'STACK_GLOBAL', 0x52: 'REDUCE', 0x81: 'NEWOBJ', 0x62: 'BUILD', 0x51: 'BINPERSID',
});

// ---------------------------------------------------------------------------------------------
// torch.save files

export interface TorchFile {
  /** The unpickled object (e.g. a dict of state_dicts). */
  root: PyValue;
  /** The top folder of the zip's entries (torch names it after the file, or 'archive'). */
  archive: string;
  /** The contents of `<archive>/version` (e.g. '3'), if present. */
  version: string | null;
  entries: Map<string, ZipEntry>;
}

const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reads a torch.save zip file from its bytes. `what` names it in errors. */
export function readTorchFile(bytes: Uint8Array, what = '.pth file'): TorchFile {
  if (!LITTLE) throw new Error(`${what}: this reader needs a little-endian host`);
  const entries = readZipEntries(bytes, what);
  const pkls = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1)
    throw new Error(`${what}: ${pkls.length ? `${pkls.length} data.pkl entries` : 'no <folder>/data.pkl entry'}; not a torch.save file (entries: ${[...entries.keys()].slice(0, 8).join(', ')}${entries.size > 8 ? ', …' : ''})`);
  const archive = pkls[0].slice(0, -'/data.pkl'.length);
  const text = (name: string) => {
    const e = entries.get(`${archive}/${name}`);
    return e ? new TextDecoder().decode(zipEntryData(bytes, e, what)).trim() : null;
  };
  const byteorder = text('byteorder');
  if (byteorder !== null && byteorder !== 'little') throw new Error(`${what}: byteorder '${byteorder}': only little-endian files are read`);
  const storages = new Map<string, TorchStorage>();
  const persistentLoad = (pid: PyValue): TorchStorage => {
    if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') throw new Error(`unsupported persistent id ${typeName(pid)} (expected ('storage', type, key, location, numel))`);
    const [, type, key, , numel] = pid;
    if (!(type instanceof PyGlobal) || type.module !== 'torch' || !(type.name in STORAGES)) throw new Error(`unsupported storage type ${typeName(type)}`);
    if (typeof key !== 'string' || !/^\w+$/.test(key)) throw new Error(`bad storage key ${JSON.stringify(key)}`);
    const n = intArg(numel, 'storage size');
    const dtype = STORAGES[type.name];
    const known = storages.get(key);
    if (known) {
      if (known.dtype !== dtype) throw new Error(`storage '${key}' is used as ${known.dtype} and ${dtype}`);
      return known;
    }
    const entry = entries.get(`${archive}/data/${key}`);
    if (!entry) throw new Error(`storage '${key}': no entry ${archive}/data/${key}`);
    const data = zipEntryData(bytes, entry, what);
    if (data.length < n * ITEMSIZE[dtype]) throw new Error(`storage '${key}': ${data.length} bytes for ${n} ${dtype} elements`);
    const s: TorchStorage = { key, dtype, numel: n, bytes: data.subarray(0, n * ITEMSIZE[dtype]) };
    storages.set(key, s);
    return s;
  };
  const pkl = zipEntryData(bytes, entries.get(pkls[0])!, what);
  const root = unpickle(pkl, { persistentLoad, what: `${what}: ${pkls[0]}` });
  return { root, archive, version: text('version'), entries };
}
