// The prepared dataset: header-free little-endian shards of fixed-size records [leads, samples]
// (f32 or f16), so record i of a shard starts at i × recordBytes and the files can be memory-mapped
// (numpy.memmap, mmap) as they are; plus manifest.json with records, labels, folds, provenance,
// preprocessing settings and a SHA-256 per shard. Reading streams from disk, one record at a time.
import type { LabelJoin } from './labels.js';
import { Rng } from '../../engine/random.js';
import { f32ToF16Bits, halfToFloatTable } from '../../model/safetensors.js';
import { atomicWrite, nodeMods, sha256, sha256File } from './fsutil.js';

export const DATASET_FORMAT = 'ecg-jepa-dataset';
export const DATASET_VERSION = 1;
/** Where prepare sets the manifest aside before it changes the shards a manifest describes; it goes
 *  once the new manifest is written (a folder holding it alone is a prepare that did not finish). */
export const MANIFEST_ASIDE = 'manifest.previous.json';

export type ShardDtype = 'f32' | 'f16';

export interface ManifestRecord {
  id: string;
  shard: number;
  /** Position inside the shard. */
  index: number;
  labels: Record<string, unknown>;
  /** e.g. PTB-XL strat_fold, a Challenge group folder; null when the source has none. */
  fold: number | string | null;
  /** Source file (relative to the source root), with `#row` for records inside a multi-record file. */
  source: string;
  meta?: Record<string, unknown>;
}

export interface ShardInfo {
  file: string;
  records: number;
  bytes: number;
  sha256: string;
}

export interface Manifest {
  format: typeof DATASET_FORMAT;
  version: number;
  dtype: ShardDtype;
  leads: string[];
  fs: number;
  samples: number;
  /** leads × samples × bytes per element: the fixed record stride inside every shard. */
  recordBytes: number;
  layout: string;
  shards: ShardInfo[];
  records: ManifestRecord[];
  preprocessing: Record<string, unknown>;
  source: Record<string, unknown>;
  skipped: { count: number; byReason: Record<string, number>; report: string | null };
  created: string;
  /** sha256OfManifest of the fields above, written with them: an edit or corruption of what fixes
   *  the samples and their order is refused on reading (absent in manifests written before it). */
  dataSha256?: string;
  /** Tables joined into the records' labels after prepare (`ecg-jepa labels`); absent if none. */
  labelJoins?: LabelJoin[];
}

export const LAYOUT = 'little-endian, no header, record-major [record][lead][sample]';

export function bytesPerElement(dtype: ShardDtype): number {
  if (dtype !== 'f16' && dtype !== 'f32') throw new Error(`shard dtype must be f32 or f16, got ${JSON.stringify(dtype)}`);
  return dtype === 'f16' ? 2 : 4;
}

export function shardFileName(k: number): string {
  return `shard-${String(k).padStart(5, '0')}.bin`;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
function requireLittleEndian(): void {
  // Typed arrays use the platform's byte order; every platform Node and browsers run on is LE.
  if (!LITTLE_ENDIAN) throw new Error('prepared datasets need a little-endian platform');
}


/** Records (each leads × samples floats) → shard bytes. */
export function encodeRecords(records: readonly Float32Array[], dtype: ShardDtype): Uint8Array {
  requireLittleEndian();
  bytesPerElement(dtype); // an unknown dtype throws
  const n = records.reduce((a, r) => a + r.length, 0);
  if (dtype === 'f32') {
    const out = new Float32Array(n);
    let o = 0;
    for (const r of records) {
      out.set(r, o);
      o += r.length;
    }
    return new Uint8Array(out.buffer);
  }
  const out = new Uint16Array(n);
  let o = 0;
  for (const r of records) for (let i = 0; i < r.length; i++) out[o++] = f32ToF16Bits(r[i]);
  return new Uint8Array(out.buffer);
}

/** Shard bytes (one or more whole records) → floats, written into `out` at `offset`. */
export function decodeInto(bytes: Uint8Array, dtype: ShardDtype, out: Float32Array, offset = 0): void {
  requireLittleEndian();
  if (dtype === 'f32') {
    // copy through a byte view: the source need not be 4-byte aligned
    new Uint8Array(out.buffer, out.byteOffset + offset * 4, bytes.byteLength).set(bytes);
    return;
  }
  const t = halfToFloatTable();
  const n = bytes.byteLength >> 1;
  for (let i = 0; i < n; i++) out[offset + i] = t[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
}

// ---------------------------------------------------------------------------------------------
// data order

/** A 32-bit seed from (seed, epoch), mixed so nearby pairs give unrelated streams. */
export function epochSeed(seed: number, epoch: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  h = Math.imul((h ^ (h >>> 13)) + (epoch >>> 0) * 0x27d4eb2f, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The visiting order of an epoch: `subset` (default 0…n−1), Fisher–Yates shuffled by a PRNG seeded
 * from (seed, epoch) when `shuffle`. Depends only on its arguments, so any run can recompute it.
 */
export function epochOrder(n: number, opts: { seed?: number; epoch?: number; shuffle?: boolean; subset?: ArrayLike<number> } = {}): Uint32Array {
  const order = opts.subset ? Uint32Array.from(opts.subset) : Uint32Array.from({ length: n }, (_, i) => i);
  for (const i of order) if (i >= n) throw new RangeError(`subset index ${i} out of range (${n} records)`);
  if (opts.shuffle ?? true) {
    const rng = new Rng(epochSeed(opts.seed ?? 0, opts.epoch ?? 0));
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
  }
  return order;
}

/** Indices of the records that pass `keep`, e.g. the training folds: r => r.fold !== 10. */
export function indicesWhere(manifest: Pick<Manifest, 'records'>, keep: (r: ManifestRecord, i: number) => boolean): Uint32Array {
  const out: number[] = [];
  manifest.records.forEach((r, i) => {
    if (keep(r, i)) out.push(i);
  });
  return Uint32Array.from(out);
}

// ---------------------------------------------------------------------------------------------
// reading

export interface BatchOptions {
  batchSize: number;
  seed?: number;
  /** Default true. */
  shuffle?: boolean;
  epoch?: number;
  /** Resume mid-epoch: skip the batches before this one (same order as an uninterrupted epoch). */
  startBatch?: number;
  /** Drop a last batch smaller than batchSize (fixed shapes for training). Default false. */
  dropLast?: boolean;
  /** Only these record indices (e.g. the training folds). */
  subset?: ArrayLike<number>;
}

export interface Batch {
  /** [B, leads, samples], row-major. */
  x: Float32Array;
  /** Dataset indices of the B records, in batch order. */
  indices: Uint32Array;
  /** Batch number within the epoch. */
  batch: number;
  epoch: number;
}

/** Batches of `batchSize` records (the last may be smaller unless `dropLast`). */
export function countBatches(n: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/**
 * The batches of one epoch over records 0…n−1 (or `o.subset`) in `epochOrder`: the loop behind every
 * dataset's `batches`. `fill` reads the batch's records, in order, into x [B, recordLength].
 */
export function* epochBatches(
  n: number,
  recordLength: number,
  o: BatchOptions,
  fill: (indices: Uint32Array, x: Float32Array) => void,
): Generator<Batch, void, undefined> {
  if (!(Number.isInteger(o.batchSize) && o.batchSize > 0)) throw new Error(`batchSize must be a positive integer, got ${o.batchSize}`);
  const epoch = o.epoch ?? 0;
  const order = epochOrder(n, { seed: o.seed, epoch, shuffle: o.shuffle, subset: o.subset });
  const nb = countBatches(order.length, o.batchSize, o.dropLast);
  const start = o.startBatch ?? 0;
  if (!(Number.isInteger(start) && start >= 0 && start <= nb)) throw new Error(`startBatch must be an integer in [0, ${nb}] (the epoch's batches), got ${start}`);
  for (let b = start; b < nb; b++) {
    const indices = order.slice(b * o.batchSize, Math.min(order.length, (b + 1) * o.batchSize));
    const x = new Float32Array(indices.length * recordLength);
    fill(indices, x);
    yield { x, indices, batch: b, epoch };
  }
}

export interface Dataset {
  readonly dir: string;
  readonly manifest: Manifest;
  readonly size: number;
  /** leads × samples: floats per record. */
  readonly recordLength: number;
  read(i: number): Float32Array;
  readInto(i: number, out: Float32Array, offset?: number): void;
  batchCount(opts: Pick<BatchOptions, 'batchSize' | 'dropLast' | 'subset'>): number;
  batches(opts: BatchOptions): Generator<Batch, void, undefined>;
  /** Recomputes every shard's SHA-256; lists the shards that differ from the manifest. */
  verify(): Promise<{ ok: boolean; bad: string[] }>;
  close(): void;
}

export interface OpenOptions {
  /** Verify every shard's SHA-256 before returning (reads every byte). Default false. */
  verify?: boolean;
}

export async function readManifest(dir: string): Promise<Manifest> {
  const { fsp, path } = await nodeMods();
  const file = path.join(dir, 'manifest.json');
  let m: Manifest;
  try {
    m = JSON.parse(await fsp.readFile(file, 'utf8')) as Manifest;
  } catch (e) {
    const unfinished = (e as NodeJS.ErrnoException).code === 'ENOENT' && (await fsp.stat(path.join(dir, MANIFEST_ASIDE)).catch(() => null));
    throw new Error(`${file}: ${unfinished ? `none: a prepare of this folder did not finish (it set the earlier manifest aside as ${MANIFEST_ASIDE} before changing shards); run it again` : (e as Error).message}`);
  }
  if (m.format !== DATASET_FORMAT) throw new Error(`${file}: not an ${DATASET_FORMAT} manifest`);
  if (m.version !== DATASET_VERSION) throw new Error(`${file}: version ${m.version}, this code reads ${DATASET_VERSION}`);
  if (!(Number.isFinite(m.fs) && m.fs > 0)) throw new Error(`${file}: sampling rate ${m.fs} is not positive`);
  if (!(Number.isInteger(m.samples) && m.samples > 0)) throw new Error(`${file}: samples ${m.samples} is not a positive integer`);
  if (!Array.isArray(m.leads) || !m.leads.length || new Set(m.leads).size !== m.leads.length) throw new Error(`${file}: leads ${JSON.stringify(m.leads)} are not distinct names`);
  const names = m.shards.map((s) => s.file);
  if (names.some((f) => typeof f !== 'string' || !/^[^/\\]+$/.test(f) || f === '.' || f === '..') || new Set(names).size !== names.length)
    throw new Error(`${file}: shard files ${JSON.stringify(names)} are not distinct plain file names`);
  if (m.dataSha256 !== undefined && m.dataSha256 !== (await sha256OfManifest(m)))
    throw new Error(`${file}: what fixes the samples (dtype, leads, rate, window, shards, record order) differs from when it was written; prepare the dataset again`);
  return m;
}

export async function writeManifest(dir: string, m: Manifest): Promise<void> {
  const { path } = await nodeMods();
  // one record per line keeps a 180 k-record manifest diffable and greppable
  const { records, ...rest } = m;
  rest.dataSha256 = await sha256OfManifest(m);
  const head = JSON.stringify(rest, null, 1).replace(/\n}$/, '');
  const body = records.map((r) => JSON.stringify(r)).join(',\n');
  await atomicWrite(path.join(dir, 'manifest.json'), `${head},\n"records": [\n${body}\n]\n}\n`);
}

/**
 * SHA-256 of what fixes a dataset's samples and their order: dtype, leads, rate, window, layout, the
 * shards' SHA-256s and the record ids in order. Unlike manifest.json's bytes it survives a re-run of
 * prepare (which rewrites `created`); labels and provenance do not enter.
 */
export async function sha256OfManifest(m: Manifest): Promise<string> {
  const { dtype, leads, fs, samples, layout } = m;
  const shards = m.shards.map((s) => [s.file, s.records, s.sha256]);
  const records = m.records.map((r) => [r.id, r.shard, r.index]);
  return sha256(JSON.stringify({ dtype, leads, fs, samples, layout, shards, records }));
}

/** Opens a prepared dataset; shard sizes are checked against the manifest now, hashes on `verify`. */
export async function openDataset(dir: string, opts: OpenOptions = {}): Promise<Dataset> {
  requireLittleEndian();
  const { fs, path } = await nodeMods();
  const manifest = await readManifest(dir);
  const stride = manifest.recordBytes;
  const perRecord = manifest.leads.length * manifest.samples;
  if (stride !== perRecord * bytesPerElement(manifest.dtype)) throw new Error(`manifest: recordBytes ${stride} ≠ ${manifest.leads.length}×${manifest.samples}×${bytesPerElement(manifest.dtype)}`);
  for (const s of manifest.shards) {
    const p = path.join(dir, s.file);
    let size: number;
    try {
      size = fs.statSync(p).size;
    } catch {
      throw new Error(`dataset ${dir}: shard ${s.file} is missing`);
    }
    if (size !== s.bytes || s.bytes !== s.records * stride) throw new Error(`dataset ${dir}: shard ${s.file} has ${size} bytes, manifest says ${s.bytes} (${s.records} records × ${stride})`);
  }
  // every record at its own slot of a listed shard (else a read fails late, or two records read the same bytes)
  const slots = new Set<string>();
  manifest.records.forEach((r, i) => {
    const shard = manifest.shards[r.shard];
    if (!Number.isInteger(r.shard) || !shard || !Number.isInteger(r.index) || r.index < 0 || r.index >= shard.records)
      throw new Error(`dataset ${dir}: manifest record ${i} (${r.id}) points at shard ${r.shard} index ${r.index}, which is not there`);
    const slot = `${r.shard}:${r.index}`;
    if (slots.has(slot)) throw new Error(`dataset ${dir}: manifest records share shard ${r.shard} index ${r.index} (record ${i}, ${r.id})`);
    slots.add(slot);
  });
  const verify = async () => {
    const bad: string[] = [];
    for (const s of manifest.shards) if ((await sha256File(path.join(dir, s.file))) !== s.sha256) bad.push(s.file);
    return { ok: bad.length === 0, bad };
  };
  if (opts.verify) {
    const v = await verify();
    if (!v.ok) throw new Error(`dataset ${dir}: checksum mismatch in ${v.bad.join(', ')}`);
  }
  const fds = new Map<number, number>();
  const fdOf = (shard: number) => {
    let fd = fds.get(shard);
    if (fd === undefined) {
      fd = fs.openSync(path.join(dir, manifest.shards[shard].file), 'r');
      fds.set(shard, fd);
    }
    return fd;
  };
  let scratch = Buffer.allocUnsafe(stride);
  const readRun = (first: number, count: number, out: Float32Array, offset: number) => {
    const r = manifest.records[first];
    const bytes = count * stride;
    if (scratch.length < bytes) scratch = Buffer.allocUnsafe(bytes);
    const fd = fdOf(r.shard);
    let got = 0;
    while (got < bytes) {
      const n = fs.readSync(fd, scratch, got, bytes - got, r.index * stride + got);
      if (n === 0) throw new Error(`dataset ${dir}: shard ${manifest.shards[r.shard].file} ends early`);
      got += n;
    }
    decodeInto(scratch.subarray(0, bytes), manifest.dtype, out, offset);
  };
  const check = (i: number) => {
    if (!(Number.isInteger(i) && i >= 0 && i < manifest.records.length)) throw new RangeError(`record ${i} of ${manifest.records.length}`);
  };
  const ds: Dataset = {
    dir,
    manifest,
    size: manifest.records.length,
    recordLength: perRecord,
    readInto(i, out, offset = 0) {
      check(i);
      readRun(i, 1, out, offset);
    },
    read(i) {
      const out = new Float32Array(perRecord);
      ds.readInto(i, out);
      return out;
    },
    batchCount({ batchSize, dropLast = false, subset }) {
      return countBatches(subset ? subset.length : manifest.records.length, batchSize, dropLast);
    },
    batches(o) {
      return epochBatches(manifest.records.length, perRecord, o, (indices, x) => {
        // Neighbouring records of one shard (unshuffled order) are read with one call.
        for (let k = 0; k < indices.length; ) {
          const first = indices[k];
          let run = 1;
          while (
            k + run < indices.length &&
            indices[k + run] === first + run &&
            manifest.records[first + run].shard === manifest.records[first].shard &&
            manifest.records[first + run].index === manifest.records[first].index + run
          )
            run++;
          readRun(first, run, x, k * perRecord);
          k += run;
        }
      });
    },
    verify,
    close() {
      for (const fd of fds.values()) fs.closeSync(fd);
      fds.clear();
    },
  };
  return ds;
}

// ---------------------------------------------------------------------------------------------
// writing small datasets in one go (tests, synthetic sets, evaluation subsets)

export interface InMemoryRecord {
  /** leads × samples floats. */
  x: Float32Array;
  id: string;
  labels?: Record<string, unknown>;
  fold?: number | string | null;
  source?: string;
  meta?: Record<string, unknown>;
}

export interface WriteDatasetOptions {
  leads: string[];
  fs: number;
  samples: number;
  dtype?: ShardDtype;
  recordsPerShard?: number;
  preprocessing?: Record<string, unknown>;
  source?: Record<string, unknown>;
}

/** Writes records held in memory as a dataset (shards atomically, then the manifest). */
export async function writeDataset(dir: string, records: readonly InMemoryRecord[], o: WriteDatasetOptions): Promise<Manifest> {
  const { fsp, path } = await nodeMods();
  await fsp.mkdir(dir, { recursive: true });
  const dtype = o.dtype ?? 'f32';
  const per = o.leads.length * o.samples;
  const rps = o.recordsPerShard ?? 1024;
  const shards: ShardInfo[] = [];
  const recs: ManifestRecord[] = [];
  for (let k = 0; k * rps < records.length || (k === 0 && records.length === 0); k++) {
    const part = records.slice(k * rps, (k + 1) * rps);
    part.forEach((r) => {
      if (r.x.length !== per) throw new Error(`writeDataset: record ${r.id} has ${r.x.length} values, expected ${o.leads.length}×${o.samples}`);
    });
    const bytes = encodeRecords(
      part.map((r) => r.x),
      dtype,
    );
    const file = shardFileName(k);
    await atomicWrite(path.join(dir, file), bytes);
    shards.push({ file, records: part.length, bytes: bytes.byteLength, sha256: await sha256(bytes) });
    part.forEach((r, i) => recs.push({ id: r.id, shard: k, index: i, labels: r.labels ?? {}, fold: r.fold ?? null, source: r.source ?? '', ...(r.meta ? { meta: r.meta } : {}) }));
    if (records.length === 0) break;
  }
  const m: Manifest = {
    format: DATASET_FORMAT,
    version: DATASET_VERSION,
    dtype,
    leads: o.leads,
    fs: o.fs,
    samples: o.samples,
    recordBytes: per * bytesPerElement(dtype),
    layout: LAYOUT,
    shards,
    records: recs,
    preprocessing: o.preprocessing ?? {},
    source: o.source ?? {},
    skipped: { count: 0, byReason: {}, report: null },
    created: new Date().toISOString(),
  };
  await writeManifest(dir, m);
  return m;
}
