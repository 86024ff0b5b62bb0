// Checkpoints: a safetensors file (tensors: weights, teacher, optimizer moments...) plus
// `<base>.json` (config, step, PRNG and data-order state, and the tensor file's name). Both carry the
// same random save id; a pair from two different saves is refused on load.
// checkpointToBytes / checkpointFromBytes are environment-neutral (a browser fetches the two files
// and parses them); saveCheckpoint / loadCheckpoint add the file I/O under Node: each file is
// written to a temp file in the same folder, fsynced, renamed over the target and the folder
// fsynced. The sidecar's rename commits a save: the tensors go first, to the one of
// `<base>.safetensors` and `<base>.alt.safetensors` that the current sidecar does not name, so a
// crash at any point leaves a whole pair, the old one or the new one.
// Node modules are imported lazily so this file can sit in the browser bundle unused.
import { configDifferences, validateConfig, type EcgJepaConfig, type ParamSpec } from './config.js';
import { decodeSafetensors, encodeSafetensors, parseSafetensorsLayout, safetensorsHeaderLength, type StTensor } from './safetensors.js';

export const CHECKPOINT_FORMAT = 'ecg-jepa-checkpoint';
export const CHECKPOINT_VERSION = 1;

export interface CheckpointState {
  /** Optimizer steps done. */
  step: number;
  epoch?: number;
  /** Rng.state() of the run's PRNG, to resume masks and data order exactly. */
  rng?: number[];
  /** Data-order state (e.g. epoch permutation seed and position); any JSON. */
  data?: unknown;
  /** Anything else JSON-able (loss history, timings...). */
  extra?: Record<string, unknown>;
}

export interface Checkpoint {
  config: EcgJepaConfig;
  state: CheckpointState;
  tensors: Map<string, StTensor>;
}

interface Sidecar {
  format: string;
  version: number;
  id: string;
  tensors: string;
  config: EcgJepaConfig;
  state: CheckpointState;
  /** SHA-256 (hex) of the tensor file, where the writer computed it (saveCheckpoint does): a load under
   *  Node checks it, so a file damaged on disk is refused instead of trained on. */
  sha256?: string;
}

export interface LoadOptions {
  /** The config the caller will build; a checkpoint for another preset, architecture or lead set is refused. */
  expect?: EcgJepaConfig;
  /** Accept a checkpoint trained on a superset of `expect.leads` (reduced-lead evaluation). */
  allowLeadSubset?: boolean;
  /** Accept another preset name when the architecture matches (e.g. a tweaked copy of base). */
  ignorePreset?: boolean;
}

// The module name is hidden from bundlers (as engine/device.ts hides Dawn's), so a web bundler
// taking the browser build never tries to resolve a node: module.
const nodeImport = (name: string): Promise<any> => import(/* @vite-ignore */ /* webpackIgnore: true */ name);

async function nodeFs() {
  const [fs, path, crypto] = await Promise.all([
    nodeImport('node:fs/promises') as Promise<typeof import('node:fs/promises')>,
    nodeImport('node:path') as Promise<typeof import('node:path')>,
    nodeImport('node:crypto') as Promise<typeof import('node:crypto')>,
  ]);
  return { fs, path, crypto };
}

/** A checkpoint's base path from its base, its sidecar or either tensor file name. */
export function checkpointBase(path: string): string {
  return path.replace(/(\.alt)?\.safetensors$|\.json$/, '');
}

/** Every file a checkpoint at `path` (any of its names) may have: the sidecar first, then both tensor names. */
export function checkpointFiles(path: string): string[] {
  const b = checkpointBase(path);
  return [`${b}.json`, `${b}.safetensors`, `${b}.alt.safetensors`];
}

function paths(base: string): { tensors: string; meta: string } {
  const b = checkpointBase(base);
  return { tensors: `${b}.safetensors`, meta: `${b}.json` };
}

/** writeFileAtomic's temp files: `.<name>.<pid>.<8 hex digits>.tmp` beside the target. */
const ATOMIC_TEMP = /^\..+\.\d+\.[0-9a-f]{8}\.tmp$/;

/** Writes `data` to `file` atomically: temp file in the same folder, fsync, rename, fsync folder. */
export async function writeFileAtomic(file: string, data: Uint8Array | string): Promise<void> {
  const { fs, path, crypto } = await nodeFs();
  const dir = path.dirname(path.resolve(file));
  await fs.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  let renamed = false;
  try {
    const fh = await fs.open(tmp, 'wx');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, file);
    renamed = true;
  } finally {
    if (!renamed) await fs.rm(tmp, { force: true });
  }
  // The rename is durable only once the folder entry is on disk.
  try {
    const dh = await fs.open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch (e) {
    // Some systems cannot fsync a folder (EISDIR/EINVAL/EPERM); the data itself is already synced.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw e;
  }
}

/**
 * Removes the temp files that writes into `dir` killed mid-way left (a base checkpoint's is ~1.5 GB);
 * returns their names. Only for a folder no other process is writing to (a run's own folder).
 */
export async function removeAtomicTemps(dir: string): Promise<string[]> {
  const { fs, path } = await nodeFs();
  let names: string[];
  try {
    names = (await fs.readdir(dir)).filter((n) => ATOMIC_TEMP.test(n));
  } catch {
    return []; // no folder, nothing left
  }
  for (const n of names) await fs.rm(path.join(dir, n), { force: true });
  return names;
}

export interface BytesOptions extends LoadOptions {
  /** What to call the two parts in error messages (e.g. their URLs); default 'metadata' and 'tensors'. */
  source?: { meta?: string; tensors?: string };
}

function randomId(): string {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(8));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function checkStep(state: CheckpointState | undefined, what: string): void {
  const step = state?.step;
  if (!Number.isInteger(step) || step! < 0) throw new Error(`${what}: state.step must be a non-negative integer, got ${step}`);
}

/**
 * A checkpoint as the bytes of its two files: `tensors` (safetensors) and `meta` (the JSON
 * sidecar, which names the tensor file `tensorsName`, default 'checkpoint.safetensors'). The
 * config is validated first, so a checkpoint never holds an invalid one. Each call draws a new
 * save id (or uses `id`).
 */
export function checkpointToBytes(ckpt: Checkpoint, opts: { tensorsName?: string; id?: string; sha256?: (b: Uint8Array) => string } = {}): { tensors: Uint8Array; meta: string } {
  validateConfig(ckpt.config);
  checkStep(ckpt.state, 'checkpoint');
  const id = opts.id ?? randomId();
  const tensors = encodeSafetensors(ckpt.tensors, { format: CHECKPOINT_FORMAT, id, preset: ckpt.config.preset });
  const sidecar: Sidecar = {
    format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, id, tensors: opts.tensorsName ?? 'checkpoint.safetensors', config: ckpt.config, state: ckpt.state,
    ...(opts.sha256 ? { sha256: opts.sha256(tensors) } : {}),
  };
  return { tensors, meta: JSON.stringify(sidecar, null, 1) + '\n' };
}

/** Parses and checks a sidecar (text or parsed JSON); `what` names it in errors. */
function readSidecar(meta: string | object, what: string, opts: LoadOptions): { sidecar: Sidecar; config: EcgJepaConfig } {
  let sidecar: Sidecar;
  try {
    sidecar = (typeof meta === 'string' ? JSON.parse(meta) : meta) as Sidecar;
  } catch (e) {
    throw new Error(`${what}: unreadable (${(e as Error).message})`);
  }
  if (sidecar?.format !== CHECKPOINT_FORMAT) throw new Error(`${what}: not an ecg-jepa checkpoint (format ${JSON.stringify(sidecar?.format)})`);
  if (sidecar.version !== CHECKPOINT_VERSION) throw new Error(`${what}: version ${sidecar.version}, this build reads ${CHECKPOINT_VERSION}`);
  // the tensor file lies beside the sidecar: a name, not a path
  if (typeof sidecar.tensors !== 'string' || !/^[^/\\]+$/.test(sidecar.tensors) || sidecar.tensors === '..' || sidecar.tensors === '.')
    throw new Error(`${what}: its tensor file must be a file name beside it, got ${JSON.stringify(sidecar.tensors)}`);
  checkStep(sidecar.state, what);
  let config: EcgJepaConfig;
  try {
    config = validateConfig(sidecar.config);
  } catch (e) {
    throw new Error(`${what}: stored ${(e as Error).message}`);
  }
  if (opts.expect) {
    const diffs = configDifferences(config, opts.expect, opts);
    if (diffs.length) throw new Error(`${what} does not fit this model:\n  ${diffs.join('\n  ')}`);
  }
  return { sidecar, config };
}

/** Decodes the tensor file of a checked sidecar and refuses one from another save. */
function withTensors(sc: { sidecar: Sidecar; config: EcgJepaConfig }, bytes: Uint8Array, whatMeta: string, whatTensors: string, tensorsName: string): Checkpoint {
  const { tensors, metadata } = decodeSafetensors(bytes, whatTensors);
  checkSameSave(metadata.id, sc.sidecar.id, whatMeta, tensorsName);
  return { config: sc.config, state: sc.sidecar.state, tensors };
}

/** Refuses a tensor file whose save id (its metadata) is not the sidecar's. */
function checkSameSave(id: string | undefined, sidecarId: string, whatMeta: string, tensorsName: string): void {
  if (id !== sidecarId) throw new Error(`${whatMeta}: ${tensorsName} comes from another save (id ${id ?? 'none'}, sidecar ${sidecarId}); the save was interrupted or the files were mixed`);
}

/**
 * A checkpoint from the bytes of its two files (e.g. fetched in a browser): `tensors` the
 * safetensors file, `meta` the JSON sidecar as text or parsed. Checked as loadCheckpoint checks
 * files; with `opts.expect`, refuses one made for another config.
 */
export function checkpointFromBytes(tensors: Uint8Array | ArrayBuffer, meta: string | object, opts: BytesOptions = {}): Checkpoint {
  const whatMeta = `checkpoint ${opts.source?.meta ?? 'metadata'}`;
  const sc = readSidecar(meta, whatMeta, opts);
  const bytes = tensors instanceof Uint8Array ? tensors : new Uint8Array(tensors);
  return withTensors(sc, bytes, whatMeta, `checkpoint ${opts.source?.tensors ?? 'tensors'}`, opts.source?.tensors ?? sc.sidecar.tensors);
}

/** The tensor file the sidecar `meta` names, or undefined when there is none or it cannot be read. */
async function committedTensors(meta: string): Promise<string | undefined> {
  const { fs } = await nodeFs();
  try {
    const name = JSON.parse(await fs.readFile(meta, 'utf8'))?.tensors;
    return typeof name === 'string' ? name : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Saves `<base>.json` and its tensor file (`base` may end in .json or .safetensors): the tensors to
 * `<base>.safetensors`, or to `<base>.alt.safetensors` where the current sidecar names the former,
 * then the sidecar, each atomically; then the previous tensor file is removed. Returns the paths
 * written. Node only.
 */
export async function saveCheckpoint(base: string, ckpt: Checkpoint): Promise<{ tensors: string; meta: string }> {
  const { fs, path, crypto } = await nodeFs();
  const p = paths(base);
  const [, plain, alt] = checkpointFiles(base).map((f) => path.basename(f));
  const previous = await committedTensors(p.meta);
  const name = previous === plain ? alt : plain;
  const tensors = path.join(path.dirname(p.tensors), name);
  const bytes = checkpointToBytes(ckpt, { tensorsName: name, sha256: (b) => crypto.createHash('sha256').update(b).digest('hex') });
  await writeFileAtomic(tensors, bytes.tensors);
  await writeFileAtomic(p.meta, bytes.meta); // the commit
  // the other name's file: the previous save's tensors, or a save's that never committed
  await fs.rm(path.join(path.dirname(p.tensors), name === plain ? alt : plain), { force: true });
  return { tensors, meta: p.meta };
}

/** Removes the checkpoint at `base`: its sidecar first (which uncommits it), then both tensor file names. Node only. */
export async function removeCheckpoint(base: string): Promise<void> {
  const { fs } = await nodeFs();
  for (const f of checkpointFiles(base)) await fs.rm(f, { force: true });
}

/** A checkpoint's sidecar read and checked, and the path of the tensor file it names. */
async function readSidecarFile(base: string, opts: LoadOptions): Promise<{ sc: { sidecar: Sidecar; config: EcgJepaConfig }; meta: string; whatMeta: string; tensorsFile: string }> {
  const { fs, path } = await nodeFs();
  const meta = paths(base).meta;
  const whatMeta = `checkpoint ${meta}`;
  let text: string;
  try {
    text = await fs.readFile(meta, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${whatMeta}: not found` : `${whatMeta}: unreadable (${(e as Error).message})`);
  }
  const sc = readSidecar(text, whatMeta, opts);
  return { sc, meta, whatMeta, tensorsFile: path.join(path.dirname(meta), sc.sidecar.tensors) };
}

/** Loads and checks a checkpoint; with `opts.expect`, refuses one made for another config. Node only. */
export async function loadCheckpoint(base: string, opts: LoadOptions = {}): Promise<Checkpoint> {
  const { fs, crypto } = await nodeFs();
  // The sidecar is checked (config included) before the larger tensor file is read.
  const { sc, whatMeta, tensorsFile } = await readSidecarFile(base, opts);
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(tensorsFile);
  } catch (e) {
    throw new Error(`checkpoint ${tensorsFile}: unreadable (${(e as Error).message})`);
  }
  // parsed first, so a file of another save is named as such
  const ck = withTensors(sc, bytes, whatMeta, `checkpoint ${tensorsFile}`, sc.sidecar.tensors);
  const want = sc.sidecar.sha256;
  if (want !== undefined && crypto.createHash('sha256').update(bytes).digest('hex') !== want)
    throw new Error(`checkpoint ${tensorsFile}: its bytes do not match the SHA-256 ${whatMeta} records (damaged on disk, or written over)`);
  return ck;
}

/** What a checkpoint holds, without reading its tensors' values (for `ecg-jepa show`). */
export interface CheckpointInfo {
  config: EcgJepaConfig;
  state: CheckpointState;
  meta: string;
  tensorsFile: string;
  bytes: number;
  /** Name, dtype and shape of every tensor, from the safetensors header. */
  tensors: { name: string; dtype: string; shape: number[] }[];
}

/** Reads a checkpoint's sidecar and its tensor file's header only: both checked as loadCheckpoint
 *  checks them (the header's offsets against the file's size), the tensors' values not read. */
export async function readCheckpointInfo(base: string): Promise<CheckpointInfo> {
  const { fs } = await nodeFs();
  const { sc, meta, whatMeta, tensorsFile } = await readSidecarFile(base, {});
  const what = `checkpoint ${tensorsFile}`;
  const fh = await fs.open(tensorsFile, 'r').catch((e: Error) => {
    throw new Error(`${what}: unreadable (${e.message})`);
  });
  try {
    const { size } = await fh.stat();
    const first = new Uint8Array(8);
    await fh.read(first, 0, 8, 0);
    const head = new Uint8Array(8 + safetensorsHeaderLength(first, size, what));
    await fh.read(head, 0, head.byteLength, 0);
    const layout = parseSafetensorsLayout(head, size, what);
    checkSameSave(layout.metadata.id, sc.sidecar.id, whatMeta, sc.sidecar.tensors);
    const tensors = layout.entries.map(({ name, dtype, shape }) => ({ name, dtype, shape }));
    return { config: sc.config, state: sc.sidecar.state, meta, tensorsFile, bytes: size, tensors };
  } finally {
    await fh.close();
  }
}

/**
 * Checks that `tensors` hold every spec (name with `prefix`) with the right shape; throws one
 * error listing every missing or mis-shaped tensor.
 */
export function checkTensors(tensors: Map<string, StTensor>, specs: readonly ParamSpec[], prefix = '', what = 'checkpoint'): void {
  const problems: string[] = [];
  for (const [name, shape] of specs) {
    const t = tensors.get(prefix + name);
    if (!t) problems.push(`missing ${prefix}${name} [${shape}]`);
    else if (JSON.stringify(t.shape) !== JSON.stringify(shape)) problems.push(`${prefix}${name}: shape [${t.shape}], model needs [${shape}]`);
  }
  if (problems.length) throw new Error(`${what}: ${problems.length} tensor problem(s):\n  ${problems.slice(0, 20).join('\n  ')}${problems.length > 20 ? `\n  … ${problems.length - 20} more` : ''}`);
}
