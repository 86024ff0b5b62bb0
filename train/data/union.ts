// Several prepared datasets read as one (the paper pretrains on Chapman + Ningbo + CODE-15 together):
// union index = the folder's offset + the record's index in it, folders in the order given. Epochs
// shuffle the union with the same seeded `epochOrder` as one dataset, so every record comes once
// per epoch, batches mix folders, and a batch number is the whole resume position. The folders must
// share leads, sampling rate, window length and layout; each decodes its own dtype (f16 or f32).
import { countBatches, epochBatches, openDataset, sha256OfManifest, type Dataset, type Manifest, type ManifestRecord, type OpenOptions } from './dataset.js';
import { nodeMods } from './fsutil.js';

/** What every record of a source shares. */
export type RecordShape = Pick<Manifest, 'leads' | 'fs' | 'samples' | 'layout'>;

/** A dataset or a union of datasets: what training reads. */
export type RecordSource = Omit<Dataset, 'manifest'> & { readonly manifest: RecordShape };

export interface DatasetUnion extends RecordSource {
  /** The folders, in union order. */
  readonly parts: readonly Dataset[];
  /** Union index of each part's first record. */
  readonly offsets: readonly number[];
  /** Union index → (part, index inside that part). */
  locate(i: number): { part: number; index: number };
  /** Union indices of the records that pass `keep` (per-folder filtering, e.g. folds), for `subset`. */
  indicesWhere(keep: (r: ManifestRecord, index: number, part: number) => boolean): Uint32Array;
}

/** The identity of one folder of a run: recorded in run.json and checkpoints, checked on resume. */
export interface DataFolder {
  dir: string;
  records: number;
  /** SHA-256 of what fixes the samples and their order (see `sha256OfManifest`). */
  manifest_sha256: string;
}

export async function describeFolders(ds: RecordSource): Promise<DataFolder[]> {
  const parts = 'parts' in ds ? (ds as DatasetUnion).parts : [ds as Dataset];
  return Promise.all(parts.map(async (p) => ({ dir: p.dir, records: p.size, manifest_sha256: p.manifest.dataSha256 ?? (await sha256OfManifest(p.manifest)) }))); // the hash readManifest checked, when the manifest has it
}

/** `a,b,c` (or a list) → folders; a path that is itself a prepared folder stays whole, commas and all. */
export async function splitDataList(data: string | readonly string[]): Promise<string[]> {
  if (typeof data !== 'string') return [...data];
  const { fs, path } = await nodeMods();
  if (!data.includes(',') || fs.existsSync(path.join(data, 'manifest.json'))) return [data];
  const dirs = data.split(',').map((d) => d.trim());
  if (dirs.some((d) => d === '')) throw new Error(`--data ${data}: an empty folder name in the list`);
  return dirs;
}

function sameShape(dir: string, m: RecordShape, first: string, f: RecordShape): void {
  const diff: string[] = [];
  if (m.leads.join(',').toUpperCase() !== f.leads.join(',').toUpperCase()) diff.push(`leads ${m.leads.join(',')} vs ${f.leads.join(',')}`);
  if (m.fs !== f.fs) diff.push(`sampling rate ${m.fs} Hz vs ${f.fs} Hz`);
  if (m.samples !== f.samples) diff.push(`window ${m.samples} samples vs ${f.samples}`);
  if (m.layout !== f.layout) diff.push(`layout '${m.layout}' vs '${f.layout}'`);
  if (diff.length)
    throw new Error(`dataset ${dir} does not match ${first}: ${diff.join('; ')} (folders read together must share leads in the same order, sampling rate, window length and layout)`);
}

/** Opens prepared folders as one dataset (see the top of this file). A single folder works too. */
export async function openDatasetUnion(dirs: readonly string[], opts: OpenOptions = {}): Promise<DatasetUnion> {
  if (dirs.length === 0) throw new Error('no dataset folders given');
  const { fs: files, path } = await nodeMods();
  const seen = new Map<string, string>();
  for (const d of dirs) {
    // the folder itself, through any symbolic link (a missing one is reported by openDataset)
    let r = path.resolve(d);
    try {
      r = files.realpathSync(r);
    } catch {
      // left as given
    }
    if (seen.has(r)) throw new Error(`dataset ${d} is listed twice (as ${seen.get(r)} and ${d}); each folder may appear once`);
    seen.set(r, d);
  }
  const parts: Dataset[] = [];
  try {
    for (const d of dirs) {
      const ds = await openDataset(d, opts);
      parts.push(ds);
      sameShape(d, ds.manifest, dirs[0], parts[0].manifest);
    }
  } catch (e) {
    for (const p of parts) p.close();
    throw e;
  }
  const offsets: number[] = [];
  let size = 0;
  for (const p of parts) {
    offsets.push(size);
    size += p.size;
  }
  const { leads, fs, samples, layout } = parts[0].manifest;
  const recordLength = parts[0].recordLength;
  const locate = (i: number) => {
    if (!(Number.isInteger(i) && i >= 0 && i < size)) throw new RangeError(`record ${i} of ${size}`);
    let k = parts.length - 1;
    while (offsets[k] > i) k--;
    return { part: k, index: i - offsets[k] };
  };
  const u: DatasetUnion = {
    dir: dirs.join(','),
    manifest: { leads, fs, samples, layout },
    size,
    recordLength,
    parts,
    offsets,
    locate,
    indicesWhere(keep) {
      const out: number[] = [];
      parts.forEach((p, k) => p.manifest.records.forEach((r, i) => keep(r, i, k) && out.push(offsets[k] + i)));
      return Uint32Array.from(out);
    },
    readInto(i, out, offset = 0) {
      const { part, index } = locate(i);
      parts[part].readInto(index, out, offset);
    },
    read(i) {
      const out = new Float32Array(recordLength);
      u.readInto(i, out);
      return out;
    },
    batchCount({ batchSize, dropLast = false, subset }) {
      return countBatches(subset ? subset.length : size, batchSize, dropLast);
    },
    batches(o) {
      return epochBatches(size, recordLength, o, (indices, x) => indices.forEach((i, k) => u.readInto(i, x, k * recordLength)));
    },
    async verify() {
      const bad: string[] = [];
      for (const p of parts) for (const f of (await p.verify()).bad) bad.push(path.join(p.dir, f));
      return { ok: bad.length === 0, bad };
    },
    close() {
      for (const p of parts) p.close();
    },
  };
  return u;
}
