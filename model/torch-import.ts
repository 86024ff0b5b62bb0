// The authors' released ECG-JEPA weights (multiblock_epoch100.pth, random_epoch100.pth: torch.save of
// {'encoder': MaskTransformer state_dict, 'epoch': int}) as one of our checkpoints, from the file's
// bytes (Node and browsers). Our parameter names are the official state_dict keys, so the mapping is
// a check: every key and shape against the preset, nothing missing or left over, and the stored
// fixed sin-cos table (pos_embed) against ours. The checkpoint holds the encoder only (no teacher,
// predictor or optimizer): embed / probe / finetune take it, pretrain --resume does not.
import type { Checkpoint } from './checkpoint.js';
import { encoderParamSpecs, makeConfig, PRESETS, tokenCount, type EcgJepaConfig } from './config.js';
import { encoderPosEmbed } from './posembed.js';
import type { StTensor } from './safetensors.js';
import { readTorchFile, TorchTensor, type PyKey, type PyValue } from './torch-pth.js';

export const TORCH_IMPORT_KIND = 'torch-import';
/** The official name of the fixed 2-D sin-cos table (MaskTransformer.pos_embed, [c·p, D]). */
export const POS_EMBED_KEY = 'pos_embed';
/** Largest |stored − ours| in pos_embed that still counts as the same table. */
export const POS_EMBED_TOLERANCE = 1e-5;

/** What an imported checkpoint's JSON records (state.extra.torchImport). */
export interface TorchImportInfo {
  /** The .pth file as given (a path or name). */
  source: string;
  /** Its SHA-256 (hex), when the caller computed it. */
  sha256: string | null;
  bytes: number;
  /** The file's 'epoch' entry as stored (the official script counts from 0), or null. */
  epoch: number | null;
  preset: string;
  /** Always true: no EMA teacher, predictor or optimizer state; pretraining cannot resume from it. */
  encoderOnly: true;
  /** Where the state_dict was in the file: 'encoder' or '' (the file is the state_dict). */
  stateDictKey: string;
  /** Tensors imported (the trainable encoder). */
  tensors: number;
  /** Stored pos_embed vs our table: max |difference|, or null when the file has none. */
  posEmbedMaxAbsDiff: number | null;
  /** Other top-level entries of the file, not imported. */
  ignored: string[];
}

export interface TorchImport {
  checkpoint: Checkpoint;
  info: TorchImportInfo;
  /** Things the user should know (a pos_embed that differs, none stored...). */
  warnings: string[];
}

export interface TorchImportOptions {
  /** Architecture the weights are for (default 'base', the released models). */
  preset?: string;
  /** Names the file in errors and in the record. */
  source?: string;
  /** SHA-256 of the file (hex), recorded. */
  sha256?: string;
}

function keyList(m: Map<PyKey, PyValue>): string {
  const ks = [...m.keys()].map((k) => JSON.stringify(k));
  return ks.slice(0, 10).join(', ') + (ks.length > 10 ? `, … (${ks.length} in all)` : '');
}

function isStateDict(x: PyValue): x is Map<PyKey, PyValue> {
  return x instanceof Map && x.size > 0 && [...x.values()].every((t) => t instanceof TorchTensor);
}

/** The state_dict inside the file's object: obj['encoder'], or the object itself when it is one. */
function findStateDict(root: PyValue, what: string): { sd: Map<string, TorchTensor>; key: string; epoch: number | null; ignored: string[] } {
  if (!(root instanceof Map)) throw new Error(`${what}: holds a ${root === null ? 'None' : Array.isArray(root) ? 'list' : typeof root}, not a dict with an 'encoder' state_dict`);
  let sd: Map<PyKey, PyValue>;
  let key: string;
  const enc = root.get('encoder');
  if (enc !== undefined) {
    if (!isStateDict(enc)) throw new Error(`${what}: 'encoder' is not a state_dict of tensors`);
    sd = enc;
    key = 'encoder';
  } else if (isStateDict(root)) {
    sd = root;
    key = '';
  } else throw new Error(`${what}: no 'encoder' state_dict (top-level keys: ${keyList(root)}); the released ECG-JEPA checkpoints are {'encoder': state_dict, 'epoch': int}`);
  const e = key ? root.get('epoch') : undefined;
  const epoch = typeof e === 'number' && Number.isInteger(e) ? e : null;
  const ignored = key ? [...root.keys()].filter((k) => k !== 'encoder' && k !== 'epoch').map(String) : [];
  // DataParallel / DDP prefix every key with 'module.'.
  const out = new Map<string, TorchTensor>();
  for (const [k, t] of sd) {
    if (typeof k !== 'string') throw new Error(`${what}: state_dict key ${String(k)} is not a string`);
    const name = k.startsWith('module.') ? k.slice('module.'.length) : k;
    if (out.has(name)) throw new Error(`${what}: state_dict has '${name}' twice (with and without 'module.')`);
    out.set(name, t as TorchTensor);
  }
  return { sd: out, key, epoch, ignored };
}

/** Problems of `sd` against a config's encoder: missing, unexpected, mis-shaped (empty = fits). */
function fitProblems(sd: Map<string, TorchTensor>, cfg: EcgJepaConfig): string[] {
  const problems: string[] = [];
  const specs = encoderParamSpecs(cfg);
  const known = new Set(specs.map(([n]) => n));
  for (const [name, shape] of specs) {
    const t = sd.get(name);
    if (!t) problems.push(`missing ${name} [${shape}]`);
    else if (JSON.stringify(t.shape) !== JSON.stringify(shape)) problems.push(`${name}: shape [${t.shape}], the '${cfg.preset}' preset needs [${shape}]`);
  }
  const pos = sd.get(POS_EMBED_KEY);
  const posShape = [tokenCount(cfg), cfg.encoder.dim];
  if (pos && JSON.stringify(pos.shape.length === 3 && pos.shape[0] === 1 ? pos.shape.slice(1) : pos.shape) !== JSON.stringify(posShape))
    problems.push(`${POS_EMBED_KEY}: shape [${pos.shape}], the '${cfg.preset}' preset needs [${posShape}] (${cfg.leads.length} leads × ${cfg.patches} patches)`);
  for (const name of sd.keys()) if (!known.has(name) && name !== POS_EMBED_KEY) problems.push(`unexpected ${name} [${sd.get(name)!.shape}]`);
  return problems;
}

/**
 * Converts the bytes of a released ECG-JEPA `.pth` into an encoder-only checkpoint for `preset`.
 * Throws, listing every missing, unexpected or mis-shaped tensor, when the file does not fit.
 */
export function importTorchEncoder(bytes: Uint8Array, opts: TorchImportOptions = {}): TorchImport {
  const source = opts.source ?? '.pth file';
  const preset = opts.preset ?? 'base';
  const cfg = makeConfig(preset);
  const file = readTorchFile(bytes, source);
  const { sd, key, epoch, ignored } = findStateDict(file.root, source);
  const problems = fitProblems(sd, cfg);
  if (problems.length) {
    const fits = Object.keys(PRESETS).filter((p) => p !== preset && fitProblems(sd, makeConfig(p)).length === 0);
    throw new Error(`${source} does not fit the '${preset}' encoder${fits.length ? ` (it fits --preset ${fits.join(' or ')})` : ''}: ${problems.length} problem(s):\n  ` +
      problems.slice(0, 20).join('\n  ') + (problems.length > 20 ? `\n  … ${problems.length - 20} more` : ''));
  }
  const warnings: string[] = [];
  let posDiff: number | null = null;
  const pos = sd.get(POS_EMBED_KEY);
  if (pos) {
    const stored = pos.toFloat32(`${source}: ${POS_EMBED_KEY}`);
    const ours = encoderPosEmbed(cfg);
    posDiff = 0;
    for (let i = 0; i < ours.length; i++) {
      const d = Math.abs(stored[i] - ours[i]);
      posDiff = Number.isNaN(d) ? Infinity : Math.max(posDiff, d);
    }
    if (posDiff > POS_EMBED_TOLERANCE)
      warnings.push(`${POS_EMBED_KEY} in ${source} differs from our fixed 2-D sin-cos table by up to ${posDiff.toExponential(3)} (> ${POS_EMBED_TOLERANCE}): ` +
        `the model was trained with other positional inputs (a learnable table?), so its weights will not mean the same thing here`);
  } else warnings.push(`${source} stores no ${POS_EMBED_KEY}; our fixed sin-cos table is used (the released models store it)`);
  const tensors = new Map<string, StTensor>();
  for (const [name, shape] of encoderParamSpecs(cfg)) tensors.set(name, { dtype: 'F32', shape: [...shape], data: sd.get(name)!.toFloat32(`${source}: ${name}`) });
  const info: TorchImportInfo = {
    source, sha256: opts.sha256 ?? null, bytes: bytes.length, epoch, preset, encoderOnly: true, stateDictKey: key,
    tensors: tensors.size, posEmbedMaxAbsDiff: posDiff, ignored,
  };
  const checkpoint: Checkpoint = { config: cfg, state: { step: 0, extra: { kind: TORCH_IMPORT_KIND, torchImport: info } }, tensors };
  return { checkpoint, info, warnings };
}

/** The import record of a checkpoint written by importTorchEncoder; null for others. */
export function torchImportInfo(ck: Checkpoint): TorchImportInfo | null {
  const x = ck.state.extra;
  return x?.kind === TORCH_IMPORT_KIND ? (x.torchImport as TorchImportInfo) : null;
}
