// Hand-built torch.save files for the reader's tests in both runners: a tiny pickler that writes the
// opcodes torch's protocol-2 pickles use (or protocol-4 ones: FRAME, SHORT_BINUNICODE,
// STACK_GLOBAL, MEMOIZE), and a zip writer (STORED or a fake DEFLATE method, optional ZIP64
// records). Also the value formula of scripts/make-torch-fixture.py.
import { crc32 } from '../../model/torch-pth.js';

/** Python values to pickle: `{ g }` a global 'module name', `{ r }` a REDUCE of a callable and args,
 *  `{ pid }` a persistent id (BINPERSID), `{ b }` BUILD of an object with a state, `{ list }` a list,
 *  `{ od }` an OrderedDict with items and instance state; arrays are tuples. */
export type Py = string | number | boolean | null | Py[] | Map<string, Py> | { g: string } | { r: [Py, Py[]] } | { pid: Py[] } | { b: [Py, Py] } | { list: Py[] } | { od: [[string, Py][], Py] };

const enc = new TextEncoder();
const le32 = (x: number) => [x & 255, (x >>> 8) & 255, (x >>> 16) & 255, (x >>> 24) & 255];
const le16 = (x: number) => [x & 255, (x >>> 8) & 255];

/** Pickles `root` (protocol 2 as torch writes it, or 4 with its short forms). */
export function pickle(root: Py, protocol: 2 | 4 = 2): Uint8Array {
  const out: number[] = [0x80, protocol];
  if (protocol === 4) out.push(0x95, 0, 0, 0, 0, 0, 0, 0, 0); // FRAME (length unchecked)
  const put = (...b: number[]) => {
    for (const x of b) out.push(x);
  };
  const memo = () => protocol === 4 && put(0x94);
  const str = (s: string) => {
    const b = enc.encode(s);
    if (protocol === 4 && b.length < 256) put(0x8c, b.length, ...b);
    else put(0x58, ...le32(b.length), ...b);
    memo();
  };
  const w = (x: Py): void => {
    if (x === null) put(0x4e);
    else if (typeof x === 'boolean') put(x ? 0x88 : 0x89);
    else if (typeof x === 'number') {
      if (Number.isInteger(x) && x >= 0 && x < 256) put(0x4b, x);
      else if (Number.isInteger(x) && x >= 0 && x < 65536) put(0x4d, ...le16(x));
      else if (Number.isInteger(x)) put(0x4a, ...le32(x));
      else {
        const b = new Uint8Array(8);
        new DataView(b.buffer).setFloat64(0, x, false);
        put(0x47, ...b);
      }
    } else if (typeof x === 'string') str(x);
    else if (Array.isArray(x)) {
      if (x.length === 0) put(0x29);
      else if (x.length <= 3) {
        x.forEach(w);
        put(0x84 + x.length);
      } else {
        put(0x28);
        x.forEach(w);
        put(0x74);
      }
      memo();
    } else if (x instanceof Map) {
      put(0x7d);
      memo();
      if (x.size) {
        put(0x28);
        for (const [k, v] of x) {
          w(k);
          w(v);
        }
        put(0x75);
      }
    } else if ('list' in x) {
      put(0x5d);
      memo();
      if (x.list.length) {
        put(0x28);
        x.list.forEach(w);
        put(0x65);
      }
    } else if ('od' in x) {
      w({ r: [{ g: 'collections OrderedDict' }, []] });
      put(0x28);
      for (const [k, v] of x.od[0]) {
        w(k);
        w(v);
      }
      put(0x75);
      w(x.od[1]);
      put(0x62);
    } else if ('g' in x) {
      const [m, n] = x.g.split(' ');
      if (protocol === 4) {
        str(m);
        str(n);
        put(0x93);
      } else put(0x63, ...enc.encode(`${m}\n${n}\n`));
      memo();
    } else if ('r' in x) {
      w(x.r[0]);
      w(x.r[1]);
      put(0x52);
      memo();
    } else if ('pid' in x) {
      w(x.pid);
      put(0x51);
    } else {
      w(x.b[0]);
      w(x.b[1]);
      put(0x62);
    }
  };
  w(root);
  put(0x2e);
  return new Uint8Array(out);
}

/** A tensor as torch pickles it: _rebuild_tensor_v2(storage pid, offset, size, stride, False, OrderedDict()). */
export function tensor(key: string, storage: string, numel: number, offset: number, size: number[], stride: number[]): Py {
  return {
    r: [{ g: 'torch._utils _rebuild_tensor_v2' }, [{ pid: ['storage', { g: `torch ${storage}` }, key, 'cpu', numel] }, offset, size, stride, false, { r: [{ g: 'collections OrderedDict' }, []] }]],
  };
}

/** A state_dict as torch pickles it: OrderedDict() by REDUCE, its items by SETITEMS, then BUILD
 *  with the instance dict {'_metadata': OrderedDict(...)}. */
export function stateDict(entries: [string, Py][]): Py {
  return { od: [entries, new Map([['_metadata', new Map([['', new Map([['version', 1]])]])]])] };
}

export interface ZipFileSpec {
  name: string;
  data: Uint8Array;
  /** Compression method written (default 0, STORED); the data is written as is. */
  method?: number;
}

/** A zip of `files` (no alignment padding); `zip64`: ZIP64 end records and 0xFFFFFFFF central fields with the 0x0001 extra field. */
export function zip(files: ZipFileSpec[], opts: { zip64?: boolean } = {}): Uint8Array {
  const out: number[] = [];
  const central: number[] = [];
  for (const f of files) {
    const name = enc.encode(f.name);
    const at = out.length;
    const crc = le32(crc32(f.data));
    out.push(...le32(0x04034b50), ...le16(20), 0, 0, ...le16(f.method ?? 0), 0, 0, 0, 0, ...crc, ...le32(f.data.length), ...le32(f.data.length), ...le16(name.length), 0, 0, ...name);
    for (const b of f.data) out.push(b);
    const z = opts.zip64;
    const extra = z ? [1, 0, 24, 0, ...le32(f.data.length), 0, 0, 0, 0, ...le32(f.data.length), 0, 0, 0, 0, ...le32(at), 0, 0, 0, 0] : [];
    const big = (x: number) => (z ? le32(0xffffffff) : le32(x));
    central.push(...le32(0x02014b50), ...le16(45), ...le16(45), 0, 0, ...le16(f.method ?? 0), 0, 0, 0, 0, ...crc, ...big(f.data.length), ...big(f.data.length),
      ...le16(name.length), ...le16(extra.length), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...big(at), ...name, ...extra);
  }
  const cdOfs = out.length;
  out.push(...central);
  const n = files.length;
  if (opts.zip64) {
    const z64 = out.length;
    const u64 = (x: number) => [...le32(x), 0, 0, 0, 0];
    out.push(...le32(0x06064b50), ...u64(44), ...le16(45), ...le16(45), ...le32(0), ...le32(0), ...u64(n), ...u64(n), ...u64(central.length), ...u64(cdOfs));
    out.push(...le32(0x07064b50), ...le32(0), ...u64(z64), ...le32(1));
    out.push(...le32(0x06054b50), 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, ...le32(0xffffffff), ...le32(0xffffffff), 0, 0);
  } else out.push(...le32(0x06054b50), 0, 0, 0, 0, ...le16(n), ...le16(n), ...le32(central.length), ...le32(cdOfs), 0, 0);
  return new Uint8Array(out);
}

/** A torch.save-like zip: `<archive>/data.pkl`, `data/<key>` per storage, byteorder and version. */
export function torchZip(pkl: Uint8Array, storages: Record<string, Uint8Array>, opts: { archive?: string; zip64?: boolean; method?: number } = {}): Uint8Array {
  const a = opts.archive ?? 'archive';
  return zip(
    [
      { name: `${a}/data.pkl`, data: pkl },
      { name: `${a}/byteorder`, data: enc.encode('little') },
      ...Object.entries(storages).map(([k, data]) => ({ name: `${a}/data/${k}`, data, method: opts.method })),
      { name: `${a}/version`, data: enc.encode('3\n') },
    ],
    { zip64: opts.zip64 },
  );
}

export const f32Bytes = (a: ArrayLike<number>) => new Uint8Array(Float32Array.from(a).buffer);

/** Element i of tensor `name` in scripts/make-torch-fixture.py (exact in float16 and float32). */
export function fixtureValue(name: string, i: number): number {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) % 1000003;
  return (((7 * i + h) % 997) - 498) / 4096;
}
