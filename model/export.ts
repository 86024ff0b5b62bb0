// The encoder alone, for shipping to inference (a web page downloads it): from a pretraining
// checkpoint (student, or the EMA teacher stored under `teacher.`), a fine-tuned model (its head
// dropped) or an encoder-only checkpoint (import-torch, an earlier export), as a checkpoint holding
// just the encoder under the official state_dict keys, in f32 or f16 (half the bytes; asFloat32
// widens it on load). Environment-neutral: checkpoint in, checkpoint out; train/export.ts adds the files.
import { checkTensors, type Checkpoint } from './checkpoint.js';
import { encoderParamSpecs, LEAD_NAMES } from './config.js';
import { encoderOnlyWhat, TEACHER_PREFIX } from './jepa.js';
import { asFloat32, f32ToF16Bits, type StTensor } from './safetensors.js';

export const ENCODER_EXPORT_KIND = 'encoder-export';

export type ExportDType = 'f32' | 'f16';
/** student: the encoder the paper's downstream code uses; teacher: its EMA copy (pretraining checkpoints only). */
export type ExportedEncoder = 'student' | 'teacher';

/** What an exported checkpoint's JSON records (state.extra.encoderExport); the config sits next to it. */
export interface EncoderExportInfo {
  dtype: ExportDType;
  encoder: ExportedEncoder;
  preset: string;
  /** The lead names the encoder was trained on (config.leads). */
  leads: string[];
  tensors: number;
  params: number;
  /** Band-pass the encoder's inputs went through in training (a fine-tuned source's); embed applies it. */
  bandpass: [number, number] | null;
  source: {
    /** The checkpoint as given (a path or URL). */
    checkpoint: string;
    /** Its state.extra.kind ('finetune', 'torch-import', 'encoder-export'), or 'pretrain' for one with a teacher. */
    kind: string;
    step: number;
    /** The source's own record (import, fine-tuning without its head, earlier export); null for pretraining. */
    record: unknown;
  };
}

export interface ExportOptions {
  dtype?: ExportDType;
  encoder?: ExportedEncoder;
  /** Names the source in errors and in the record. */
  source?: string;
}

/** The kind of checkpoint `ck` is: its state.extra.kind, else 'pretrain' when it holds a teacher, else 'encoder'. */
export function checkpointKind(ck: Checkpoint): string {
  return kindOf(ck.state, ck.tensors.keys());
}

/** checkpointKind from a checkpoint's state and its tensor names (e.g. read from the header alone). */
export function kindOf(state: Checkpoint['state'], tensorNames: Iterable<string>): string {
  const kind = state.extra?.kind;
  if (typeof kind === 'string') return kind;
  return [...tensorNames].some((k) => k.startsWith(TEACHER_PREFIX)) ? 'pretrain' : 'encoder';
}

/** The source's own record, minus what the export drops (a fine-tuned head and its thresholds). */
function sourceRecord(ck: Checkpoint, kind: string): unknown {
  const x = ck.state.extra ?? {};
  if (kind === 'torch-import') return x.torchImport ?? null;
  if (kind === ENCODER_EXPORT_KIND) return x.encoderExport ?? null;
  if (kind === 'finetune' && x.finetune && typeof x.finetune === 'object') {
    const { head: _head, thresholds: _thresholds, ...rest } = x.finetune as Record<string, unknown>; // the thresholds are the head's
    return rest;
  }
  return null;
}

/** The band-pass the encoder of `ck` expects on its inputs: a fine-tuned model's, kept by an export of one; else null. */
export function trainedBandpass(ck: Pick<Checkpoint, 'state'>): [number, number] | null {
  const x = ck.state.extra;
  const rec = (x?.kind === 'finetune' ? x.finetune : x?.kind === ENCODER_EXPORT_KIND ? x.encoderExport : null) as { bandpass?: [number, number] | null } | null;
  return rec?.bandpass ?? null;
}

/** The export record of a checkpoint written by exportEncoder; null for others. */
export function encoderExportInfo(ck: Checkpoint): EncoderExportInfo | null {
  const x = ck.state.extra;
  return x?.kind === ENCODER_EXPORT_KIND ? (x.encoderExport as EncoderExportInfo) : null;
}

/** One tensor in the export's dtype: F32 as stored (bit-identical), F16 rounded to nearest even (F16 kept as is). */
function convert(t: StTensor, dtype: ExportDType, name: string, what: string): StTensor {
  const shape = [...t.shape];
  if (dtype === 'f32') return { dtype: 'F32', shape, data: asFloat32(t) };
  if (t.dtype === 'F16') return { dtype: 'F16', shape, data: t.data };
  const v = asFloat32(t);
  const h = new Uint16Array(v.length);
  for (let i = 0; i < v.length; i++) {
    h[i] = f32ToF16Bits(v[i]);
    if ((h[i] & 0x7fff) === 0x7c00 && Number.isFinite(v[i]))
      throw new Error(`${what}: ${name}[${i}] = ${v[i]} is beyond f16's range (±65504); export it as f32`);
  }
  return { dtype: 'F16', shape, data: h };
}

/**
 * An encoder-only checkpoint of `ck`'s student (or EMA teacher) in `dtype`, under the official
 * keys, recording its source. Throws when `ck` holds no complete encoder, or no teacher when asked for one.
 */
export function exportEncoder(ck: Checkpoint, opts: ExportOptions = {}): { checkpoint: Checkpoint; info: EncoderExportInfo } {
  const dtype = opts.dtype ?? 'f32';
  const which = opts.encoder ?? 'student';
  const source = opts.source ?? 'checkpoint';
  if (dtype !== 'f32' && dtype !== 'f16') throw new Error(`export: dtype must be f32 or f16, got '${dtype}'`);
  if (which !== 'student' && which !== 'teacher') throw new Error(`export: encoder must be student or teacher, got '${which}'`);
  const kind = checkpointKind(ck);
  const specs = encoderParamSpecs(ck.config);
  const prefix = which === 'teacher' ? TEACHER_PREFIX : '';
  if (!specs.some(([n]) => ck.tensors.has(prefix + n))) {
    if (which === 'teacher')
      throw new Error(`${source} has no EMA teacher (no '${TEACHER_PREFIX}' tensors): it is ${encoderOnlyWhat(kind)}; ` +
        'only pretraining checkpoints carry one. Export the student (--encoder student)');
    const kept = [...ck.tensors.keys()];
    throw new Error(`${source} holds no encoder (none of the ${specs.length} encoder tensors of the '${ck.config.preset}' preset, e.g. ${specs[0][0]}; it has ${kept.length} tensor(s)` +
      `${kept.length ? `: ${kept.slice(0, 5).join(', ')}${kept.length > 5 ? ', …' : ''}` : ''})`);
  }
  checkTensors(ck.tensors, specs, prefix, `${source}: ${which} encoder`);
  const tensors = new Map<string, StTensor>();
  let params = 0;
  for (const [name] of specs) {
    const t = convert(ck.tensors.get(prefix + name)!, dtype, prefix + name, source);
    tensors.set(name, t);
    params += t.data.length;
  }
  const info: EncoderExportInfo = {
    dtype, encoder: which, preset: ck.config.preset, leads: ck.config.leads.map((i) => LEAD_NAMES[i]), tensors: tensors.size, params,
    bandpass: trainedBandpass(ck),
    source: { checkpoint: source, kind, step: ck.state.step, record: sourceRecord(ck, kind) },
  };
  return { checkpoint: { config: ck.config, state: { step: ck.state.step, extra: { kind: ENCODER_EXPORT_KIND, encoderExport: info } }, tensors }, info };
}
