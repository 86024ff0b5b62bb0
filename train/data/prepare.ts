// Builds a prepared dataset (dataset.ts) from a source tree: scan → decode + preprocess in
// worker_threads → fixed-stride shards written atomically → manifest.json + skipped.jsonl.
//
// Resumable: items are cut into shards in a fixed order, and each finished shard leaves a sidecar
// (shard-NNNNN.json) holding its records, its skips, its SHA-256 and a key over the settings and its
// items. A re-run reuses a shard whose key matches and whose bytes still hash to the sidecar's value,
// and rebuilds the rest; the manifest is assembled from the sidecars at the end.
//
// Workers: the worker runs the library bundle (dist/train.mjs, which re-exports this module and has
// no other top-level effects) with ECG_JEPA_PREPARE_WORKER=1 in its environment; this module's body
// then starts the worker loop. That works from the CLI bundle (dist/cli.mjs finds dist/train.mjs
// beside itself), from the test runner (scripts/ → ../dist/train.mjs) and with an explicit
// `workerEntry`; with none found, or workers: 0, records are processed in this thread.
import type { Worker as NodeWorker } from 'node:worker_threads';
import { Code15File, code15Fold, code15ToRecord, parseCode15Exams, type Code15Exam } from './code15.js';
import { loadChallengeRecord } from './challenge.js';
import {
  bytesPerElement,
  DATASET_FORMAT,
  DATASET_VERSION,
  encodeRecords,
  LAYOUT,
  MANIFEST_ASIDE,
  shardFileName,
  writeManifest,
  type Manifest,
  type ManifestRecord,
  type ShardDtype,
  type ShardInfo,
} from './dataset.js';
import { atomicRename, atomicWrite, lockFolder, nodeMods, readBytes, readText, sha256, sha256File, walkFiles } from './fsutil.js';
import { decodeNpyData, parseNpy, parseNpyHeader, parseSignalCsv, type NpyHeader } from './npy.js';
import { checkPreprocessOptions, leadList, preprocess, type PreprocessOptions, type QualityIssue } from './preprocess.js';
import { loadPtbxlIndex, ptbxlLabels, ptbxlRecordPath } from './ptbxl.js';
import { LEADS_12, LEADS_8, reasonOf, RecordError, type EcgRecord } from './record.js';
import { synthRecord, type SynthOptions } from './synth.js';
import { loadWfdbRecord, parseWfdbHeader, wfdbRecordLine } from './wfdb.js';
import { carryJoinedLabels } from './labels.js';

export type PrepareSource = 'ptbxl' | 'challenge' | 'code15' | 'wfdb' | 'npy' | 'synth';

export interface PrepareProgress {
  phase: 'scan' | 'records' | 'done';
  /** Items handled so far (written + skipped + items of reused shards). */
  done: number;
  total: number;
  written: number;
  skipped: number;
  /** Shard being built (0-based) and the number of shards. */
  shard: number;
  shards: number;
  /** Shards reused from an earlier run. */
  reused: number;
}

export interface PrepareOptions {
  source: PrepareSource;
  /** Source root: PTB-XL folder with the CSVs, Challenge/WFDB tree, CODE-15 folder, .npy/.csv folder (unused for synth). */
  root: string;
  /** Output folder (created). */
  out: string;
  /** Default 8 (I, II, V1–V6), as Kim's ECG-JEPA. */
  leads?: 8 | 12;
  /** Output rate, Hz. Default 250. */
  fs?: number;
  /** Window, s. Default 10. */
  seconds?: number;
  /** Shard element type. Default 'f32'. */
  dtype?: ShardDtype;
  /** Worker threads; 0 decodes in this thread. Default min(4, cores − 1). */
  workers?: number;
  /** Seconds a worker may spend on one record before it is stopped and the record skipped as
   *  'timeout' (retried by the next run, like a crashed worker's). Default 300. Not enforced with
   *  workers: 0 (this thread cannot stop its own work). */
  recordTimeoutS?: number;
  /** Seconds a worker may take to start (load its bundle) before its records fail as a crash would.
   *  Default max(60, recordTimeoutS). */
  workerStartS?: number;
  /** Called after every record (and per reused shard); throwing from it aborts the run (resumable). */
  onProgress?: (p: PrepareProgress) => void;
  /** Messages about the run (worker fallback, stale files removed). */
  log?: (msg: string) => void;
  /** Records per shard. Default 1024. */
  recordsPerShard?: number;
  /** Further preprocessing options (band-pass, z-score, clip, NaN policy, short records, ...). */
  preprocess?: Omit<PreprocessOptions, 'leads' | 'fs' | 'seconds'>;
  /** A WFDB checksum mismatch: skip the record (default) or keep it with a warning in its meta. */
  checksum?: 'skip' | 'keep';
  /** PTB-XL: read records500 (default) or records100. */
  ptbxlRate?: 100 | 500;
  /** npy/csv sources: sampling rate of the files (default 500) and factor to mV (default 1). */
  sourceFs?: number;
  scale?: number;
  /** npy sources: lead names in file order (default: the 12 or 8 standard leads by count). */
  npyLeads?: string[];
  /** CODE-15: factor from stored values to mV (default 1). */
  code15Scale?: number;
  /** synth source: generator options and record count. */
  synth?: SynthOptions & { n: number };
  /** Only the first `limit` items (smoke runs). */
  limit?: number;
  /** Module that runs the worker loop (default: dist/train.mjs found from the running script). */
  workerEntry?: string;
}

export interface SkipEntry {
  id: string;
  source: string;
  reason: string;
  message: string;
}

export interface PrepareResult {
  out: string;
  manifest: Manifest;
  written: number;
  skipped: number;
  skippedByReason: Record<string, number>;
  shardsWritten: number;
  shardsReused: number;
  workers: number;
}

// ---------------------------------------------------------------------------------------------
// Work items: small, serialisable descriptions of one record, so workers can load them.

interface Code15Lite {
  patientId: number | null;
  age: number | null;
  sex: 'male' | 'female' | null;
  labels: Record<string, boolean>;
}

type Item =
  | { kind: 'wfdb' | 'challenge'; file: string; fold: string | null }
  | { kind: 'ptbxl'; file: string; id: string; fold: number; labels: Record<string, unknown>; meta: Record<string, unknown> }
  | { kind: 'code15'; file: string; row: number; examId: number; exam: Code15Lite | null }
  | { kind: 'npy'; file: string; row: number | null; leadAxisFirst: boolean }
  | { kind: 'csv'; file: string }
  | { kind: 'synth'; index: number }
  // a source file the scan could not open: one skip entry for it, with the scan's reason
  | { kind: 'unreadable'; file: string; reason: string; message: string };

/** What workers need besides the item; also the part of the settings that keys a shard. */
interface Settings {
  source: PrepareSource;
  root: string;
  leads: 8 | 12;
  fs: number;
  seconds: number;
  preprocess: Omit<PreprocessOptions, 'leads' | 'fs' | 'seconds'>;
  checksum: 'skip' | 'keep';
  sourceFs: number;
  scale: number;
  npyLeads: string[] | null;
  code15Scale: number;
  /** CODE-15 records carry the grouped `code15` class list and a patient fold (code15.ts): a setting
   *  of its own, so shards written before it are rebuilt, not reused with the flags alone. */
  code15Labels?: 'grouped';
  synth: (SynthOptions & { n: number }) | null;
}

type ItemResult =
  | { ok: true; x: Float32Array; id: string; labels: Record<string, unknown>; fold: number | string | null; meta?: Record<string, unknown> }
  | { ok: false; id: string; reason: string; message: string };

function itemSource(it: Item): string {
  if (it.kind === 'synth') return `synth#${it.index}`;
  if (it.kind === 'code15' || (it.kind === 'npy' && it.row !== null)) return `${it.file}#${it.row}`;
  return it.file;
}

function itemId(it: Item): string {
  switch (it.kind) {
    case 'ptbxl':
      return it.id;
    case 'code15':
      return String(it.examId);
    case 'synth':
      return `synth-${it.index}`;
    case 'npy':
      return it.row === null ? it.file.replace(/\.npy$/i, '') : `${it.file.replace(/\.npy$/i, '')}#${it.row}`;
    default:
      return it.file.replace(/\.(hea|csv)$/i, '');
  }
}

// ---------------------------------------------------------------------------------------------
// Scanning a source tree

/** Drops the headers that multi-segment records name as their segments (and layout): those are
 *  read as parts of their record, not as records of their own. */
async function withoutSegmentHeaders(heas: string[], log: (m: string) => void): Promise<string[]> {
  const { path } = await nodeMods();
  const parts = new Set<string>();
  for (const h of heas) {
    let text: string;
    try {
      text = await readText(h);
    } catch {
      continue; // unreadable (e.g. a dangling link): reported with its reason when the record is read
    }
    // cheap test first: a master header's record line (its first line not a comment) reads 'name/segments ...'
    if (!/^[^#\s/]+\/\d+(\s|$)/.test(wfdbRecordLine(text))) continue;
    let segments;
    try {
      segments = parseWfdbHeader(text).segments;
    } catch {
      continue; // reported with its reason when the record itself is read
    }
    for (const s of segments ?? []) if (s.name !== '~') parts.add(path.join(path.dirname(h), `${s.name}.hea`));
  }
  if (parts.size) log(`${parts.size} segment headers belong to multi-segment records`);
  return heas.filter((h) => !parts.has(h));
}

async function scan(o: PrepareOptions, settings: Settings, log: (m: string) => void): Promise<Item[]> {
  const { path } = await nodeMods();
  const root = settings.root;
  const rel = (p: string) => path.relative(root, p).split(path.sep).join('/');
  switch (o.source) {
    case 'wfdb':
    case 'challenge': {
      let heas = await walkFiles(root, (n) => n.toLowerCase().endsWith('.hea'));
      if (o.source === 'wfdb') heas = await withoutSegmentHeaders(heas, log);
      return heas.map((h) => {
        const r = rel(h);
        const dir = path.posix.dirname(r);
        // The folder (relative to the root) is the fold: Challenge data come in group folders (g1 … g7:
        // Kim holds out CPSC g7), and a root holding several tranches keeps each one's g1 apart.
        return { kind: o.source as 'wfdb' | 'challenge', file: r, fold: dir === '.' ? null : dir };
      });
    }
    case 'ptbxl': {
      const { rows, statements, bad } = await loadPtbxlIndex(root);
      const unreadable = bad.map((message): Item => ({ kind: 'unreadable', file: 'ptbxl_database.csv', reason: 'bad-index-row', message }));
      return [...unreadable, ...rows.map((row): Item => ({
        kind: 'ptbxl' as const,
        file: `${ptbxlRecordPath(row, o.ptbxlRate ?? 500)}.hea`,
        id: String(row.ecgId),
        fold: row.fold,
        labels: { scp: row.scpCodes, ...ptbxlLabels(row.scpCodes, statements) },
        meta: { patientId: row.patientId, age: row.age, sex: row.sex },
      }))];
    }
    case 'code15': {
      const { fs } = await nodeMods();
      const csv = path.join(root, 'exams.csv');
      let exams = new Map<number, Code15Exam>();
      if (fs.existsSync(csv)) exams = parseCode15Exams(await readText(csv));
      else log(`code15: no exams.csv in ${root}; records get no labels`);
      const files = await walkFiles(root, (n) => /\.(hdf5|h5)$/i.test(n));
      const items: Item[] = [];
      for (const f of files) {
        let h: Code15File;
        try {
          h = await Code15File.open(f);
        } catch (e) {
          // a broken part (e.g. a partial download) is reported and skipped, the others are read
          const { reason, message } = reasonOf(e);
          items.push({ kind: 'unreadable', file: rel(f), reason, message });
          log(`code15: ${rel(f)}: ${message}`);
          continue;
        }
        try {
          h.examIds.forEach((examId, row) => {
            const e = exams.get(examId);
            items.push({ kind: 'code15', file: rel(f), row, examId, exam: e ? { patientId: e.patientId, age: e.age, sex: e.sex, labels: e.labels } : null });
          });
        } finally {
          h.close();
        }
      }
      return items;
    }
    case 'npy': {
      const { fsp } = await nodeMods();
      const files = await walkFiles(root, (n) => /\.(npy|csv)$/i.test(n));
      const items: Item[] = [];
      for (const f of files) {
        if (/\.csv$/i.test(f)) {
          items.push({ kind: 'csv', file: rel(f) });
          continue;
        }
        let h: NpyHeader;
        try {
          h = parseNpyHeader(await readHead(f));
        } catch (e) {
          // unreadable files still get an item, so the skip report names them
          items.push({ kind: 'npy', file: rel(f), row: null, leadAxisFirst: true });
          log(`npy: ${rel(f)}: ${(e as Error).message}`);
          continue;
        }
        // a header's shape must fit the file: one claiming 10^9 rows would otherwise become 10^9 items
        const claimed = h.dataOffset + h.shape.reduce((a, b) => a * b, 1) * h.itemSize;
        const size = (await fsp.stat(f)).size;
        if (claimed > size) {
          items.push({ kind: 'unreadable', file: rel(f), reason: 'truncated', message: `shape [${h.shape}] needs ${claimed} bytes, the file holds ${size}` });
          continue;
        }
        const dims = h.shape.length === 3 ? h.shape.slice(1) : h.shape;
        const leadAxisFirst = leadAxisIsFirst(dims, settings.npyLeads?.length);
        if (h.shape.length === 3) for (let r = 0; r < h.shape[0]; r++) items.push({ kind: 'npy', file: rel(f), row: r, leadAxisFirst });
        else items.push({ kind: 'npy', file: rel(f), row: null, leadAxisFirst });
      }
      return items;
    }
    case 'synth': {
      const n = settings.synth?.n ?? 0;
      if (!(n > 0)) throw new Error('prepare: source synth needs synth.n > 0');
      return Array.from({ length: n }, (_, index) => ({ kind: 'synth' as const, index }));
    }
    default:
      throw new Error(`prepare: unknown source '${o.source as string}'`);
  }
}

/** [leads, samples] or [samples, leads]: the axis of size 12/8 (or the given count) is the leads. */
function leadAxisIsFirst(dims: number[], nLeads?: number): boolean {
  if (dims.length !== 2) return true;
  const isLead = (d: number) => (nLeads ? d === nLeads : d === 12 || d === 8);
  if (isLead(dims[0]) !== isLead(dims[1])) return isLead(dims[0]);
  return dims[0] <= dims[1];
}

async function readHead(file: string): Promise<Uint8Array> {
  const { fs } = await nodeMods();
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(65536 + 16);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    return new Uint8Array(buf.buffer, buf.byteOffset, n);
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// One item → preprocessed record (runs in a worker or in this thread)

/** Open files kept between items of one worker (CODE-15 part files, .npy headers). */
class ReaderCache {
  private code15 = new Map<string, Promise<Code15File>>();
  private npy = new Map<string, Promise<{ header: NpyHeader; fd: number } | { whole: ReturnType<typeof parseNpy> }>>();

  code15File(file: string): Promise<Code15File> {
    let f = this.code15.get(file);
    if (!f) {
      // one part file at a time: items arrive in file order
      for (const [k, v] of this.code15) {
        void v.then((h) => h.close()).catch(() => undefined);
        this.code15.delete(k);
      }
      f = Code15File.open(file);
      this.code15.set(file, f);
    }
    return f;
  }

  async npyRow(file: string, row: number): Promise<{ data: ArrayLike<number>; dims: number[] }> {
    const { fs } = await nodeMods();
    let e = this.npy.get(file);
    if (!e) {
      for (const [k, v] of this.npy) {
        void v.then((x) => 'fd' in x && fs.closeSync(x.fd)).catch(() => undefined);
        this.npy.delete(k);
      }
      e = (async () => {
        const head = await readHead(file);
        const header = asRecordError('bad-npy', file, () => parseNpyHeader(head));
        // a Fortran-order stack has no contiguous rows: read it whole (rare, and only for small files)
        if (header.fortranOrder) return { whole: parseNpy(await readBytes(file)) };
        return { header, fd: fs.openSync(file, 'r') };
      })();
      this.npy.set(file, e);
    }
    const x = await e;
    if ('whole' in x) {
      const [n, a, b] = x.whole.shape;
      if (!(row < n)) throw new RecordError('truncated', `${file}: row ${row} of ${n}`);
      return { data: x.whole.data.subarray(row * a * b, (row + 1) * a * b), dims: [a, b] };
    }
    const [, a, b] = x.header.shape;
    const bytes = a * b * x.header.itemSize;
    const buf = Buffer.alloc(bytes);
    const n = fs.readSync(x.fd, buf, 0, bytes, x.header.dataOffset + row * bytes);
    if (n < bytes) throw new RecordError('truncated', `${file}: row ${row} ends past the end of the file`);
    return { data: decodeNpyData(x.header, new Uint8Array(buf.buffer, buf.byteOffset, bytes), a * b), dims: [a, b] };
  }

  close(): void {
    for (const v of this.code15.values()) void v.then((h) => h.close()).catch(() => undefined);
    this.code15.clear();
    void nodeMods().then(({ fs }) => {
      for (const v of this.npy.values()) void v.then((x) => 'fd' in x && fs.closeSync(x.fd)).catch(() => undefined);
      this.npy.clear();
    });
  }
}

/** Parser errors of a source file become RecordErrors with `reason`, so the skip report counts them. */
function asRecordError<T>(reason: string, file: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof RecordError) throw e;
    throw new RecordError(reason, `${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** A 2-D array [leads, samples] or [samples, leads] → one Float32Array per lead. */
function splitLeads(data: ArrayLike<number>, dims: number[], leadAxisFirst: boolean, scale: number): Float32Array[] {
  const [a, b] = dims;
  const nLeads = leadAxisFirst ? a : b, n = leadAxisFirst ? b : a;
  return Array.from({ length: nLeads }, (_, l) => {
    const s = new Float32Array(n);
    for (let t = 0; t < n; t++) s[t] = data[leadAxisFirst ? l * n + t : t * nLeads + l] * scale;
    return s;
  });
}

function defaultLeadNames(n: number): string[] {
  return n === 12 ? [...LEADS_12] : n === 8 ? [...LEADS_8] : Array.from({ length: n }, (_, i) => `lead${i}`);
}

async function loadItem(it: Item, s: Settings, cache: ReaderCache): Promise<{ rec: EcgRecord; fold: number | string | null }> {
  const { path } = await nodeMods();
  const abs = (f: string) => path.join(s.root, f);
  const wfdbOpts = { checksum: s.checksum === 'skip' ? ('error' as const) : ('warn' as const) };
  switch (it.kind) {
    case 'wfdb':
      return { rec: await loadWfdbRecord(abs(it.file), wfdbOpts), fold: it.fold };
    case 'challenge':
      return { rec: await loadChallengeRecord(abs(it.file), wfdbOpts), fold: it.fold };
    case 'ptbxl': {
      const rec = await loadWfdbRecord(abs(it.file), wfdbOpts);
      rec.id = it.id;
      rec.labels = it.labels;
      rec.meta = { ...rec.meta, ...it.meta };
      return { rec, fold: it.fold };
    }
    case 'code15': {
      const f = await cache.code15File(abs(it.file));
      const exam: Code15Exam | undefined = it.exam ? { examId: it.examId, traceFile: it.file, raw: {}, ...it.exam } : undefined;
      return { rec: code15ToRecord(it.examId, f.readRaw(it.row), f.samples, f.leads, exam, s.code15Scale), fold: code15Fold(exam) };
    }
    case 'npy': {
      let data: ArrayLike<number>, dims: number[];
      if (it.row === null) {
        const bytes = await readBytes(abs(it.file));
        const a = asRecordError('bad-npy', it.file, () => parseNpy(bytes));
        if (a.shape.length !== 2) throw new RecordError('bad-npy', `${it.file}: shape [${a.shape}] (want 2-D per file or 3-D [records, ·, ·])`);
        ({ data, dims } = { data: a.data, dims: a.shape });
      } else ({ data, dims } = await cache.npyRow(abs(it.file), it.row));
      const signals = splitLeads(data, dims, it.leadAxisFirst, s.scale);
      return { rec: { id: itemId(it), signals, fs: s.sourceFs, leadNames: s.npyLeads ?? defaultLeadNames(signals.length), labels: {}, meta: {} }, fold: null };
    }
    case 'csv': {
      const text = await readText(abs(it.file));
      const { leadNames, signals } = asRecordError('bad-csv', it.file, () => parseSignalCsv(text, s.scale));
      return { rec: { id: itemId(it), signals, fs: s.sourceFs, leadNames, labels: {}, meta: {} }, fold: null };
    }
    case 'unreadable': {
      const e = new RecordError(it.reason);
      e.message = it.message; // as the scan saw it (it names the reason already)
      throw e;
    }
    case 'synth': {
      const rec = synthRecord(it.index, s.synth ?? {});
      // synthetic records have no folds of their own: spread them over 1–10 like strat_fold
      return { rec, fold: (it.index % 10) + 1 };
    }
  }
}

/** A stable short code for preprocess's free-text reasons, for counting. */
function reasonCode(reason: string, issues: QualityIssue[]): string {
  if (reason.startsWith('too short')) return 'too-short';
  if (reason.startsWith('missing leads')) return 'missing-leads';
  if (reason.startsWith('leads given twice')) return 'duplicate-leads';
  if (reason.startsWith('bad sampling rate')) return 'bad-fs';
  if (reason.startsWith('crop offset')) return 'too-short';
  if (reason.endsWith('all NaN')) return 'nan';
  const kinds = [...new Set(issues.map((q) => q.kind))].filter((k) => reason.includes(k)).sort();
  return kinds.length ? kinds.join('+') : 'preprocess';
}

const META_KEYS = ['patientId', 'age', 'sex', 'examId', 'warnings'];

async function processItem(it: Item, s: Settings, cache: ReaderCache): Promise<ItemResult> {
  let id = itemId(it);
  try {
    const { rec, fold } = await loadItem(it, s, cache);
    id = rec.id || id;
    const r = preprocess(rec, { ...s.preprocess, leads: s.leads, fs: s.fs, seconds: s.seconds });
    if (!r.ok) return { ok: false, id, reason: reasonCode(r.reason, r.issues), message: r.reason };
    const meta: Record<string, unknown> = {};
    for (const k of META_KEYS) if (rec.meta[k] !== undefined && rec.meta[k] !== null) meta[k] = rec.meta[k];
    return { ok: true, x: r.signals, id, labels: rec.labels, fold, ...(Object.keys(meta).length ? { meta } : {}) };
  } catch (e) {
    const { reason, message } = reasonOf(e);
    return { ok: false, id, reason, message };
  }
}

// ---------------------------------------------------------------------------------------------
// Workers

interface Runner {
  readonly workers: number;
  run(it: Item): Promise<ItemResult>;
  close(): Promise<void>;
}

/** Items one after another: readers keep one open file, and memory stays at one record. */
function sequential(s: Settings, cache: ReaderCache): { run: (it: Item) => Promise<ItemResult>; cancel: () => void } {
  let chain: Promise<unknown> = Promise.resolve();
  let cancelled = false;
  return {
    run: (it) => {
      const p = chain.then(() =>
        cancelled ? { ok: false as const, id: itemId(it), reason: 'cancelled', message: 'run aborted' } : processItem(it, s, cache),
      );
      chain = p;
      return p;
    },
    cancel: () => {
      cancelled = true;
    },
  };
}

function inThread(s: Settings): Runner {
  const cache = new ReaderCache();
  const q = sequential(s, cache);
  return {
    workers: 0,
    run: q.run,
    close: async () => {
      q.cancel();
      cache.close();
    },
  };
}

async function findWorkerEntry(explicit: string | undefined): Promise<string | null> {
  const { fs, path, url } = await nodeMods();
  const cands: string[] = [];
  if (explicit) cands.push(explicit);
  if (process.env.ECG_JEPA_WORKER_ENTRY) cands.push(process.env.ECG_JEPA_WORKER_ENTRY);
  // the package's train bundle, found from the file running this code: dist/train.mjs beside it, above
  // it (a shared chunk in dist/chunks/), or in dist/ from a test build; never the caller's own script
  const self = import.meta.url;
  const here = typeof self === 'string' && self.startsWith('file:') ? path.dirname(url.fileURLToPath(self)) : null;
  if (here) cands.push(path.join(here, 'train.mjs'), path.join(here, '..', 'train.mjs'), path.join(here, '..', 'dist', 'train.mjs'));
  for (const c of cands) if (fs.existsSync(c)) return path.resolve(c);
  if (explicit) throw new Error(`prepare: worker entry ${explicit} not found`);
  return null;
}

/**
 * Items over n worker threads, two in flight per worker. A worker decodes its items in order, so the
 * first of its pending items is the one it is on, since `since`: one that has taken longer than
 * timeoutS (counted from the worker's ready message) stops the worker (a decoder caught in a loop) and
 * is skipped as 'timeout'; the worker's other item goes back to the front of the queue and a new
 * worker starts. A worker not ready within startS of its start fails its items as a crash would.
 * (A thread blocked in a read the operating system never completes cannot be stopped at all.)
 */
async function workerPool(n: number, entry: string, s: Settings, limits: { timeoutS: number; startS: number }, log: (m: string) => void): Promise<Runner> {
  const { timeoutS, startS } = limits;
  const { Worker } = await import('node:worker_threads');
  interface Job { it: Item; resolve: (r: ItemResult) => void }
  /** since: when the worker started, then (once ready: its loop listens) when it began its first
   *  pending item; loading the bundle does not count against the first item */
  interface Slot { w: NodeWorker; pending: Map<number, Job>; since: number; ready: boolean; fail: (why: string) => void }
  let seq = 0;
  let closed = false;
  const slots: Slot[] = [];
  const queue: Job[] = [];
  const perWorker = 2; // two in flight hides the message round trip

  const spawn = (): Slot => {
    const w = new Worker(entry, { env: { ...process.env, ECG_JEPA_PREPARE_WORKER: '1' }, workerData: { settings: s } });
    const slot: Slot = { w, pending: new Map(), since: Date.now(), ready: false, fail };
    w.on('message', (m: { id: number; result: ItemResult } | { ready: true }) => {
      if ('ready' in m) {
        slot.ready = true;
        slot.since = Date.now();
        return;
      }
      const p = slot.pending.get(m.id);
      if (!p) return;
      slot.pending.delete(m.id);
      slot.since = Date.now(); // the worker goes on to its next item
      p.resolve(m.result);
      pump();
    });
    // A crashed worker fails only its in-flight records (reported), then is replaced.
    function fail(why: string) {
      for (const p of slot.pending.values()) p.resolve({ ok: false, id: itemId(p.it), reason: 'worker-crash', message: why });
      slot.pending.clear();
      if (slots.includes(slot) && !closed) {
        log(`prepare: worker crashed (${why}); starting another`);
        replace(slot);
        pump();
      }
    }
    w.on('error', (e) => fail(e instanceof Error ? e.message : String(e)));
    w.on('exit', (code) => {
      if (!closed) fail(`exited with code ${code}`);
    });
    return slot;
  };

  const pump = () => {
    for (const slot of slots)
      while (slot.pending.size < perWorker && queue.length > 0) {
        const job = queue.shift()!;
        const id = seq++;
        if (slot.pending.size === 0 && slot.ready) slot.since = Date.now();
        slot.pending.set(id, job);
        slot.w.postMessage({ id, item: job.it });
      }
  };

  // A new worker in the slot's place; the old one is stopped when it is still running (after the new
  // one is in place, so its exit is not taken for a crash; a result it still sends finds nothing
  // pending) and not awaited.
  const replace = (slot: Slot) => {
    slots[slots.indexOf(slot)] = spawn();
    slot.w.unref();
    void slot.w.terminate().catch(() => {});
  };
  const expire = (slot: Slot) => {
    const [first, ...rest] = slot.pending.values();
    slot.pending.clear();
    replace(slot);
    const id = itemId(first.it);
    log(`prepare: ${id} took over ${timeoutS} s; its worker was stopped and the record skipped (the next run tries it again)`);
    first.resolve({ ok: false, id, reason: 'timeout', message: `no result after ${timeoutS} s (recordTimeoutS; the worker was stopped)` });
    queue.unshift(...rest);
    pump();
  };
  const watch = setInterval(() => {
    const now = Date.now();
    for (const slot of [...slots]) {
      if (slot.pending.size === 0) continue;
      if (slot.ready && now - slot.since > timeoutS * 1000) expire(slot);
      else if (!slot.ready && now - slot.since > startS * 1000) slot.fail(`not ready within ${startS} s of its start`);
    }
  }, Math.min(1000, timeoutS * 250));
  watch.unref(); // the pending items keep the run alive, not this timer

  for (let i = 0; i < n; i++) slots.push(spawn());
  return {
    workers: n,
    run: (it) =>
      new Promise<ItemResult>((resolve) => {
        queue.push({ it, resolve });
        pump();
      }),
    close: async () => {
      closed = true;
      clearInterval(watch);
      await Promise.all(slots.map((sl) => sl.w.terminate()));
    },
  };
}

/** The worker side: answers { id, item } messages with { id, result }, transferring the samples. */
async function workerMain(): Promise<void> {
  const { parentPort, workerData } = await import('node:worker_threads');
  if (!parentPort) return;
  const s = (workerData as { settings: Settings }).settings;
  const { run } = sequential(s, new ReaderCache());
  parentPort.on('message', (m: { id: number; item: Item }) => {
    void run(m.item).then((result) => parentPort.postMessage({ id: m.id, result }, result.ok ? [result.x.buffer as ArrayBuffer] : []));
  });
  parentPort.postMessage({ ready: true }); // the pool's clock for this worker's items starts now
}

if (typeof process !== 'undefined' && process.env?.ECG_JEPA_PREPARE_WORKER === '1') void workerMain();

// ---------------------------------------------------------------------------------------------
// The driver

interface Sidecar {
  key: string;
  file: string;
  sha256: string;
  bytes: number;
  items: number;
  records: Omit<ManifestRecord, 'shard' | 'index'>[];
  skipped: SkipEntry[];
}

function sidecarName(k: number): string {
  return shardFileName(k).replace(/\.bin$/, '.json');
}

/**
 * Size and modification time of each item's file and of those beside it named after it (a header's
 * .dat or .mat; `<name>_*`: a multi-segment record's segments and layout, as WFDB names them), so a
 * re-run rebuilds a shard whose sources changed. Segments named otherwise are not watched; a
 * neighbour that merely shares the prefix costs a needless rebuild, never a stale one.
 */
async function sourceStamps(root: string, items: readonly Item[], dirs: Map<string, Promise<string[]>>): Promise<string[][]> {
  const { fsp, path } = await nodeMods();
  const stamp = async (file: string) => {
    const st = await fsp.stat(file).catch(() => null);
    return st ? `${st.size}@${st.mtimeMs}` : 'none';
  };
  return Promise.all(
    items.map(async (it) => {
      if (it.kind === 'synth') return [];
      const file = path.join(root, it.file);
      const dir = path.dirname(file);
      if (!dirs.has(dir)) dirs.set(dir, fsp.readdir(dir).catch(() => [])); // the promise: items of a shard ask at once
      const base = path.basename(file).replace(/\.[^.]*$/, '');
      const beside = (await dirs.get(dir)!).filter((n) => (n.startsWith(`${base}.`) || n.startsWith(`${base}_`)) && path.join(dir, n) !== file).sort();
      return [await stamp(file), ...(await Promise.all(beside.map(async (n) => `${n}:${await stamp(path.join(dir, n))}`)))];
    }),
  );
}

/** Reads a finished shard's sidecar if its key matches and the shard's bytes still hash to it. */
async function reusable(out: string, k: number, key: string, recordBytes: number): Promise<Sidecar | null> {
  const { fs, path } = await nodeMods();
  const side = path.join(out, sidecarName(k));
  const bin = path.join(out, shardFileName(k));
  if (!fs.existsSync(side) || !fs.existsSync(bin)) return null;
  let sc: Sidecar;
  try {
    sc = JSON.parse(fs.readFileSync(side, 'utf8')) as Sidecar;
  } catch {
    return null;
  }
  if (typeof sc?.key !== 'string' || !Array.isArray(sc.records) || !Array.isArray(sc.skipped)) return null; // not a sidecar of ours: rebuilt
  if (sc.key !== key || fs.statSync(bin).size !== sc.bytes || sc.bytes !== sc.records.length * recordBytes) return null;
  // records a crashed or stopped worker took down are retried, not kept skipped
  if (sc.skipped.some((e) => e.reason === 'worker-crash' || e.reason === 'timeout')) return null;
  return (await sha256File(bin)) === sc.sha256 ? sc : null;
}

/** Why a record's values cannot be stored as `dtype` (not finite, or past f16's ±65504), or null. */
function outOfRange(x: Float32Array, dtype: 'f32' | 'f16'): string | null {
  const limit = dtype === 'f16' ? 65504 : Infinity;
  for (let i = 0; i < x.length; i++)
    if (!(Math.abs(x[i]) <= limit)) return `value ${x[i]} at ${i}: ${Number.isFinite(x[i]) ? `past f16's ±65504` : 'not finite'} (--reject amplitude skips such records before)`;
  return null;
}

/** The records and joins of the manifest a run writes over (null: none, or unreadable: said in the
 *  log): manifest.json, or the one an unfinished run set aside. */
async function previousLabels(out: string, log: (m: string) => void): Promise<Pick<Manifest, 'records' | 'labelJoins' | 'source'> | null> {
  const { fs, fsp, path } = await nodeMods();
  const file = [path.join(out, 'manifest.json'), path.join(out, MANIFEST_ASIDE)].find((f) => fs.existsSync(f));
  if (!file) return null;
  try {
    const m = JSON.parse(await fsp.readFile(file, 'utf8')) as Partial<Manifest>;
    return Array.isArray(m.records) ? { records: m.records, labelJoins: m.labelJoins, source: m.source ?? {} } : null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log(`prepare: the previous ${file} is unreadable (${(e as Error).message}); labels joined into it are not carried over`);
    return null;
  }
}

export async function prepare(o: PrepareOptions): Promise<PrepareResult> {
  const { fs, fsp, path, os } = await nodeMods();
  const log = o.log ?? (() => undefined);
  const leads = o.leads ?? 8;
  if (leads !== 8 && leads !== 12) throw new Error(`prepare: leads must be 8 or 12, got ${leads}`);
  const dtype = o.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new Error(`prepare: dtype must be f32 or f16, got ${JSON.stringify(dtype)}`);
  const rps = o.recordsPerShard ?? 1024;
  if (!(Number.isInteger(rps) && rps > 0)) throw new Error(`prepare: recordsPerShard must be a positive integer`);
  const timeoutS = o.recordTimeoutS ?? 300;
  if (!(typeof timeoutS === 'number' && timeoutS > 0 && timeoutS <= 86400)) throw new Error(`prepare: recordTimeoutS (--record-timeout) must be a number of seconds in (0, 86400], got ${JSON.stringify(timeoutS)}`);
  // loading the bundle takes well under a second; a minute allows for a loaded machine
  const startS = o.workerStartS ?? Math.max(60, timeoutS);
  if (!(typeof startS === 'number' && startS > 0 && startS <= 86400)) throw new Error(`prepare: workerStartS must be a number of seconds in (0, 86400], got ${JSON.stringify(startS)}`);
  const settings: Settings = {
    source: o.source,
    root: o.source === 'synth' ? '' : path.resolve(o.root),
    leads,
    fs: o.fs ?? 250,
    seconds: o.seconds ?? 10,
    preprocess: o.preprocess ?? {},
    checksum: o.checksum ?? 'skip',
    sourceFs: o.sourceFs ?? 500,
    scale: o.scale ?? 1,
    npyLeads: o.npyLeads ?? null,
    code15Scale: o.code15Scale ?? 1,
    ...(o.source === 'code15' ? { code15Labels: 'grouped' as const } : {}),
    synth: o.synth ?? null,
  };
  if (o.source !== 'synth' && !fs.existsSync(settings.root)) throw new Error(`prepare: source root ${settings.root} does not exist`);
  // options no record could be prepared with fail here, not as every record skipped
  checkPreprocessOptions({ ...settings.preprocess, fs: settings.fs, seconds: settings.seconds });
  const samples = Math.round(settings.fs * settings.seconds);
  const leadNames = leadList(leads);
  const recordBytes = leadNames.length * samples * bytesPerElement(dtype);
  const out = path.resolve(o.out);
  await fsp.mkdir(out, { recursive: true });
  const release = await lockFolder(out, 'prepare'); // one run per dataset folder
  try {
    // temp files of a crashed run are garbage: atomic writes never leave a real file half-written
    for (const f of await fsp.readdir(out)) if (f.includes('.tmp-')) await fsp.rm(path.join(out, f), { force: true });

    const progress: PrepareProgress = { phase: 'scan', done: 0, total: 0, written: 0, skipped: 0, shard: 0, shards: 0, reused: 0 };
    o.onProgress?.({ ...progress });
    let items = await scan(o, settings, log);
    if (o.limit !== undefined) items = items.slice(0, o.limit);
    const nShards = Math.ceil(items.length / rps);
    Object.assign(progress, { phase: 'records', total: items.length, shards: nShards });

    const settingsKey = JSON.stringify({ settings, dtype, rps, format: DATASET_VERSION });
    const wanted = o.workers ?? Math.max(1, Math.min(4, os.cpus().length - 1));
    let runner: Runner | null = null;
    const getRunner = async (): Promise<Runner> => {
      if (runner) return runner;
      const entry = wanted > 0 ? await findWorkerEntry(o.workerEntry) : null;
      if (wanted > 0 && !entry) log('prepare: no worker bundle (dist/train.mjs) found; decoding in this thread');
      runner = entry ? await workerPool(wanted, entry, settings, { timeoutS, startS }, log) : inThread(settings);
      return runner;
    };

    // Labels joined into the manifest this run replaces (read now: the manifest goes aside below).
    const previous = await previousLabels(out, log);
    // Before the first shard changes, the manifest goes aside: a run that dies midway must not leave a
    // manifest over shards it no longer describes (readManifest then says the prepare did not finish).
    let manifestAside = false;
    const setManifestAside = async () => {
      if (manifestAside) return;
      manifestAside = true;
      const m = path.join(out, 'manifest.json');
      if (fs.existsSync(m)) await atomicRename(m, path.join(out, MANIFEST_ASIDE));
    };
    const sidecars: Sidecar[] = [];
    let shardsWritten = 0;
    const dirCache = new Map<string, Promise<string[]>>();
    try {
      for (let k = 0; k < nShards; k++) {
        progress.shard = k;
        const shardItems = items.slice(k * rps, (k + 1) * rps);
        const key = await sha256(settingsKey + '\n' + JSON.stringify(shardItems) + '\n' + JSON.stringify(await sourceStamps(settings.root, shardItems, dirCache)));
        const old = await reusable(out, k, key, recordBytes);
        if (old) {
          sidecars.push(old);
          progress.reused++;
          progress.done += shardItems.length;
          progress.written += old.records.length;
          progress.skipped += old.skipped.length;
          o.onProgress?.({ ...progress });
          continue;
        }
        const r = await getRunner();
        const results = await Promise.all(
          shardItems.map((it) =>
            r.run(it).then((res) => {
              progress.done++;
              if (res.ok) progress.written++;
              else progress.skipped++;
              o.onProgress?.({ ...progress });
              return res;
            }),
          ),
        );
        const xs: Float32Array[] = [];
        const sc: Sidecar = { key, file: shardFileName(k), sha256: '', bytes: 0, items: shardItems.length, records: [], skipped: [] };
        results.forEach((res, i) => {
          const src = itemSource(shardItems[i]);
          if (!res.ok) {
            sc.skipped.push({ id: res.id, source: src, reason: res.reason, message: res.message });
            return;
          }
          if (res.x.length !== leadNames.length * samples) {
            sc.skipped.push({ id: res.id, source: src, reason: 'error', message: `preprocess returned ${res.x.length} values, expected ${leadNames.length}×${samples}` });
            return;
          }
          const bad = outOfRange(res.x, dtype);
          if (bad) {
            sc.skipped.push({ id: res.id, source: src, reason: 'out-of-range', message: bad });
            return;
          }
          xs.push(res.x);
          sc.records.push({ id: res.id, labels: res.labels, fold: res.fold, source: src, ...(res.meta ? { meta: res.meta } : {}) });
        });
        const bytes = encodeRecords(xs, dtype);
        sc.bytes = bytes.byteLength;
        sc.sha256 = await sha256(bytes);
        // shard first, sidecar second: a sidecar only ever describes a complete shard
        await setManifestAside();
        await atomicWrite(path.join(out, sc.file), bytes);
        await atomicWrite(path.join(out, sidecarName(k)), JSON.stringify(sc));
        sidecars.push(sc);
        shardsWritten++;
      }
    } finally {
      if (runner) await (runner as Runner).close();
    }

    // Shards past the end belong to an earlier, larger run.
    for (const f of await fsp.readdir(out)) {
      const m = /^shard-(\d{5})\.(bin|json)$/.exec(f);
      if (m && Number(m[1]) >= nShards) {
        await setManifestAside();
        await fsp.rm(path.join(out, f), { force: true });
        log(`prepare: removed stale ${f}`);
      }
    }

    const records: ManifestRecord[] = [];
    const skipped: SkipEntry[] = [];
    const shards: ShardInfo[] = sidecars.map((sc, k) => {
      sc.records.forEach((r, index) => records.push({ ...r, shard: k, index }));
      skipped.push(...sc.skipped);
      return { file: sc.file, records: sc.records.length, bytes: sc.bytes, sha256: sc.sha256 };
    });
    const byReason: Record<string, number> = {};
    for (const s of skipped) byReason[s.reason] = (byReason[s.reason] ?? 0) + 1;
    await atomicWrite(path.join(out, 'skipped.jsonl'), skipped.map((s) => JSON.stringify(s) + '\n').join(''));
    const { root: _root, source: _source, leads: _leads, fs: _fs, seconds: _seconds, preprocess: pre, ...sourceOpts } = settings;
    const manifest: Manifest = {
      format: DATASET_FORMAT,
      version: DATASET_VERSION,
      dtype,
      leads: leadNames,
      fs: settings.fs,
      samples,
      recordBytes,
      layout: LAYOUT,
      shards,
      records,
      preprocessing: { leads: leadNames, fs: settings.fs, seconds: settings.seconds, ...pre },
      source: { kind: o.source, root: settings.root, items: items.length, ...sourceOpts },
      skipped: { count: skipped.length, byReason, report: 'skipped.jsonl' },
      created: new Date().toISOString(),
    };
    if (previous) {
      const c = carryJoinedLabels(previous, manifest);
      for (const d of c.dropped) log(`prepare: labels ${d.join.fields.join(', ')} from ${d.join.source} not carried over: ${d.why}`);
      if (c.joins.length) {
        manifest.labelJoins = c.joins;
        log(`prepare: labels joined from ${c.joins.map((j) => j.source).join(', ')} carried over to ${c.carried} records` +
          (c.missing ? `; ${c.missing} new records have none (run ecg-jepa labels again)` : ''));
      }
    }
    await writeManifest(out, manifest);
    await fsp.rm(path.join(out, MANIFEST_ASIDE), { force: true });
    progress.phase = 'done';
    o.onProgress?.({ ...progress });
    return {
      out,
      manifest,
      written: records.length,
      skipped: skipped.length,
      skippedByReason: byReason,
      shardsWritten,
      shardsReused: progress.reused,
      workers: runner ? (runner as Runner).workers : 0,
    };
  } finally {
    release();
  }
}
