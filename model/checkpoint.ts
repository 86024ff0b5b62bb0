// Checkpoints (Node only): `<base>.safetensors` (tensors: weights, teacher, optimizer moments...)
// plus `<base>.json` (config, step, PRNG and data-order state). Each file is written to a temp
// file in the same folder, fsynced, renamed over the target and the folder fsynced, so a crash
// leaves either the old file or the new one. Both files carry the same random save id; a pair
// from two different saves (a crash between the two renames) is refused on load.
// Node modules are imported lazily so this file can sit in the browser bundle unused.
import { configDifferences, validateConfig, type EcgJepaConfig, type ParamSpec } from './config.js';
import { decodeSafetensors, encodeSafetensors, type StTensor } from './safetensors.js';

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
}

export interface LoadOptions {
  /** The config the caller will build; a checkpoint for another preset, architecture or lead set is refused. */
  expect?: EcgJepaConfig;
  /** Accept a checkpoint trained on a superset of `expect.leads` (reduced-lead evaluation). */
  allowLeadSubset?: boolean;
  /** Accept another preset name when the architecture matches (e.g. a tweaked copy of base). */
  ignorePreset?: boolean;
}

async function nodeFs() {
  const [fs, path, crypto] = await Promise.all([import('node:fs/promises'), import('node:path'), import('node:crypto')]);
  return { fs, path, crypto };
}

function paths(base: string): { tensors: string; meta: string } {
  const b = base.replace(/\.(safetensors|json)$/, '');
  return { tensors: `${b}.safetensors`, meta: `${b}.json` };
}

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
 * Saves `<base>.safetensors` and `<base>.json` (`base` may end in either extension). The config
 * is validated first, so a checkpoint never holds an invalid one.
 */
export async function saveCheckpoint(base: string, ckpt: Checkpoint): Promise<{ tensors: string; meta: string }> {
  const { path, crypto } = await nodeFs();
  validateConfig(ckpt.config);
  if (!Number.isInteger(ckpt.state.step) || ckpt.state.step < 0) throw new Error(`saveCheckpoint: state.step must be a non-negative integer, got ${ckpt.state.step}`);
  const p = paths(base);
  const id = crypto.randomBytes(8).toString('hex');
  const bytes = encodeSafetensors(ckpt.tensors, { format: CHECKPOINT_FORMAT, id, preset: ckpt.config.preset });
  const sidecar: Sidecar = { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, id, tensors: path.basename(p.tensors), config: ckpt.config, state: ckpt.state };
  // Tensors first: the sidecar is the commit point that names them.
  await writeFileAtomic(p.tensors, bytes);
  await writeFileAtomic(p.meta, JSON.stringify(sidecar, null, 1) + '\n');
  return p;
}

/** Loads and checks a checkpoint; with `opts.expect`, refuses one made for another config. */
export async function loadCheckpoint(base: string, opts: LoadOptions = {}): Promise<Checkpoint> {
  const { fs, path } = await nodeFs();
  const p = paths(base);
  let sidecar: Sidecar;
  try {
    sidecar = JSON.parse(await fs.readFile(p.meta, 'utf8')) as Sidecar;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `checkpoint ${p.meta}: not found` : `checkpoint ${p.meta}: unreadable (${(e as Error).message})`);
  }
  if (sidecar?.format !== CHECKPOINT_FORMAT) throw new Error(`checkpoint ${p.meta}: not an ecg-jepa checkpoint (format ${JSON.stringify(sidecar?.format)})`);
  if (sidecar.version !== CHECKPOINT_VERSION) throw new Error(`checkpoint ${p.meta}: version ${sidecar.version}, this build reads ${CHECKPOINT_VERSION}`);
  let config: EcgJepaConfig;
  try {
    config = validateConfig(sidecar.config);
  } catch (e) {
    throw new Error(`checkpoint ${p.meta}: stored ${(e as Error).message}`);
  }
  if (opts.expect) {
    const diffs = configDifferences(config, opts.expect, opts);
    if (diffs.length) throw new Error(`checkpoint ${p.meta} does not fit this model:\n  ${diffs.join('\n  ')}`);
  }
  const tensorsFile = path.join(path.dirname(p.meta), sidecar.tensors);
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(tensorsFile);
  } catch (e) {
    throw new Error(`checkpoint ${tensorsFile}: unreadable (${(e as Error).message})`);
  }
  const { tensors, metadata } = decodeSafetensors(bytes, `checkpoint ${tensorsFile}`);
  if (metadata.id !== sidecar.id)
    throw new Error(`checkpoint ${p.meta}: ${sidecar.tensors} comes from another save (id ${metadata.id ?? 'none'}, sidecar ${sidecar.id}); the save was interrupted or the files were mixed`);
  return { config, state: sidecar.state, tensors };
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
