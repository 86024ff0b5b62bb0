// `ecg-jepa show`: what a prepared dataset or a checkpoint holds, read from its manifest or its
// sidecar and tensor header (no samples, no weights). Node only.
import { checkpointFiles, readCheckpointInfo, type CheckpointInfo } from '../model/checkpoint.js';
import { LEAD_NAMES, predictorParamSpecs, type EcgJepaConfig } from '../model/config.js';
import { kindOf, trainedBandpass } from '../model/export.js';
import { encoderOnlyWhat, TEACHER_PREFIX, ADAM_M_PREFIX, ADAM_V_PREFIX } from '../model/jepa.js';
import { readManifest, type Manifest } from './data/dataset.js';
import { nodeMods } from './data/fsutil.js';
import { finetunedInfo } from './eval/embed.js';
import type { FinetunedInfo } from './eval/finetune.js';
import { classLists, MAX_CLASS_CODES } from './eval/probe.js';

/** How a label field's values look across the records. */
export type FieldSummary =
  /** `codes`: records per value, where every value is one of a few integers (a classifier reads them as classes). */
  | { field: string; kind: 'number'; records: number; min: number; max: number; mean: number; codes?: [string, number][] }
  | { field: string; kind: 'classes'; records: number; classes: [string, number][] }
  | { field: string; kind: 'other'; records: number; example: unknown };

/** Per label field: numbers (range, mean) or classes (records per class, most first). */
export function summarizeLabels(records: readonly { labels?: Record<string, unknown> }[]): FieldSummary[] {
  const fields = new Set<string>();
  for (const r of records) for (const k of Object.keys(r.labels ?? {})) fields.add(k);
  return [...fields].sort().map((field): FieldSummary => {
    const values = records.map((r) => r.labels?.[field]).filter((v) => v !== undefined && v !== null);
    if (values.every((v) => typeof v === 'number')) {
      let min = Infinity, max = -Infinity, sum = 0; // a loop: spreading 10^5 values into Math.min overflows the stack
      const counts = new Map<string, number>();
      for (const v of values as number[]) {
        [min, max, sum] = [Math.min(min, v), Math.max(max, v), sum + v];
        if (Number.isInteger(v) && counts.size <= MAX_CLASS_CODES) counts.set(String(v), (counts.get(String(v)) ?? 0) + 1);
      }
      const coded = counts.size <= MAX_CLASS_CODES && (values as number[]).every(Number.isInteger);
      return { field, kind: 'number', records: values.length, min, max, mean: sum / values.length, ...(coded ? { codes: [...counts].sort((a, b) => Number(a[0]) - Number(b[0])) } : {}) };
    }
    const { lists } = classLists(values); // as probe reads the field
    if (lists.every((l) => l !== null)) {
      const counts = new Map<string, number>();
      for (const l of lists) for (const c of new Set(l)) counts.set(c, (counts.get(c) ?? 0) + 1);
      return { field, kind: 'classes', records: values.length, classes: [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])) };
    }
    return { field, kind: 'other', records: values.length, example: values[0] };
  });
}

export interface DatasetSummary {
  kind: 'dataset';
  dir: string;
  records: number;
  leads: string[];
  fs: number;
  samples: number;
  dtype: string;
  shards: number;
  bytes: number;
  source: Record<string, unknown>;
  skipped: Manifest['skipped'];
  folds: [string, number][];
  labels: FieldSummary[];
  joins: NonNullable<Manifest['labelJoins']>;
}

export async function describeDataset(dir: string): Promise<DatasetSummary> {
  const m = await readManifest(dir);
  const folds = new Map<string, number>();
  for (const r of m.records) folds.set(String(r.fold), (folds.get(String(r.fold)) ?? 0) + 1);
  return {
    kind: 'dataset', dir, records: m.records.length, leads: m.leads, fs: m.fs, samples: m.samples, dtype: m.dtype,
    shards: m.shards.length, bytes: m.shards.reduce((a, s) => a + s.bytes, 0), source: m.source, skipped: m.skipped,
    folds: [...folds].sort((a, b) => a[0].localeCompare(b[0], 'en', { numeric: true })), labels: summarizeLabels(m.records), joins: m.labelJoins ?? [],
  };
}

export interface CheckpointSummary {
  kind: 'checkpoint';
  base: string;
  /** What it is: pretraining checkpoint, fine-tuned model, probe model, imported or exported encoder. */
  what: string;
  preset: string;
  leads: string[];
  encoder: { dim: number; depth: number; heads: number };
  step: number;
  epoch: number | null;
  /** Parameters by part (student = the encoder the evaluations use), and the tensors' types. */
  params: Record<string, number>;
  dtypes: string[];
  files: { meta: string; tensors: string; bytes: number };
  /** The band-pass the encoder expects on its inputs (a fine-tuned model's, kept by an export); null: none. */
  bandpass: [number, number] | null;
  /** A model with a head (finetune, probe --save): its task and where it came from. */
  head: FinetunedInfo | null;
}

/** Which part of a model a tensor belongs to (the first test that holds). */
function parts(config: EcgJepaConfig): [string, (name: string) => boolean][] {
  const predictor = new Set(predictorParamSpecs(config).map(([n]) => n));
  return [
    ['teacher', (n) => n.startsWith(TEACHER_PREFIX)],
    ['adamw', (n) => n.startsWith(ADAM_M_PREFIX) || n.startsWith(ADAM_V_PREFIX)],
    ['predictor', (n) => predictor.has(n)],
    ['head', (n) => n.startsWith('head.')],
    ['encoder', () => true],
  ];
}

export function summarizeCheckpoint(base: string, info: CheckpointInfo): CheckpointSummary {
  const kind = kindOf(info.state, info.tensors.map((t) => t.name));
  const head = finetunedInfo(info);
  const what = head ? (head.method === 'probe' ? 'a linear-probe model (frozen encoder + head; probe --save)' : 'a fine-tuned model (encoder + head)')
    : kind === 'pretrain' ? 'a pretraining checkpoint (student, EMA teacher, predictor, AdamW moments)' : encoderOnlyWhat(kind);
  const params: Record<string, number> = {};
  const of = parts(info.config);
  for (const t of info.tensors) {
    const part = of.find(([, is]) => is(t.name))![0];
    params[part] = (params[part] ?? 0) + t.shape.reduce((a, b) => a * b, 1);
  }
  const c = info.config;
  return {
    kind: 'checkpoint', base, what, preset: c.preset, leads: c.leads.map((i) => LEAD_NAMES[i]), encoder: { dim: c.encoder.dim, depth: c.encoder.depth, heads: c.encoder.heads },
    step: info.state.step, epoch: head?.method === 'probe' ? null : (info.state.epoch ?? null), params, dtypes: [...new Set(info.tensors.map((t) => t.dtype))].sort(), files: { meta: info.meta, tensors: info.tensorsFile, bytes: info.bytes },
    bandpass: trainedBandpass(info), head,
  };
}

export async function describeCheckpoint(base: string): Promise<CheckpointSummary> {
  return summarizeCheckpoint(base, await readCheckpointInfo(base));
}

/** A dataset folder (it has a manifest.json) or a checkpoint, described. */
export async function describe(path: string): Promise<DatasetSummary | CheckpointSummary> {
  const { fs, path: p } = await nodeMods();
  if (p.basename(path) === 'manifest.json') return describeDataset(p.dirname(path));
  if (fs.existsSync(p.join(path, 'manifest.json'))) return describeDataset(path);
  if (fs.existsSync(path) && fs.statSync(path).isDirectory()) throw new Error(`${path} is a folder without a manifest.json: not a prepared dataset (give a dataset folder or a checkpoint)`);
  if (!checkpointFiles(path).some((f) => fs.existsSync(f))) throw new Error(`no dataset folder or checkpoint at ${path}`);
  return describeCheckpoint(path);
}

const mb = (b: number) => (b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / 1e6).toFixed(1)} MB`);
const count = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n));
const num = (v: number) => (Number.isInteger(v) ? String(v) : v.toPrecision(4));

export function formatSummary(s: DatasetSummary | CheckpointSummary): string {
  const out: string[] = [];
  if (s.kind === 'dataset') {
    out.push(`${s.dir}: a prepared dataset of ${s.records} records, leads ${s.leads.join(', ')}, ${s.fs} Hz × ${num(s.samples / s.fs)} s (${s.samples} samples), ${s.dtype}, ${s.shards} shard${s.shards === 1 ? '' : 's'} (${mb(s.bytes)})`);
    out.push(`source: ${s.source.kind}${s.source.root ? ` ${s.source.root}` : ''}; skipped ${s.skipped.count}${s.skipped.count ? ` (${Object.entries(s.skipped.byReason).map(([k, v]) => `${k} ${v}`).join(', ')}; ${s.skipped.report})` : ''}`);
    out.push(`folds: ${s.folds.map(([f, n]) => `${f}: ${n}`).join(', ')}`);
    out.push(s.labels.length ? 'labels:' : 'labels: none');
    for (const f of s.labels) {
      const head = `  ${f.field} (${f.records} records): `;
      if (f.kind === 'number') out.push(`${head}numbers ${num(f.min)} to ${num(f.max)}, mean ${num(f.mean)}` + (f.codes ? ` (as classes: ${f.codes.map(([c, n]) => `${c} ${n}`).join(', ')})` : ''));
      else if (f.kind === 'classes') out.push(`${head}${f.classes.length} classes: ${f.classes.slice(0, 12).map(([c, n]) => `${c} ${n}`).join(', ')}${f.classes.length > 12 ? ', ...' : ''}`);
      else {
        const e = JSON.stringify(f.example) ?? String(f.example);
        out.push(`${head}e.g. ${e.length > 80 ? `${e.slice(0, 79)}…` : e}`);
      }
    }
    for (const j of s.joins) out.push(`joined: ${j.fields.join(', ')} from ${j.source} (${j.joined})`);
  } else {
    out.push(`${s.base}: ${s.what}`);
    out.push(`preset ${s.preset} (encoder ${s.encoder.dim} wide, ${s.encoder.depth} blocks, ${s.encoder.heads} heads), leads ${s.leads.join(', ')}, step ${s.step}${s.epoch !== null ? `, epoch ${s.epoch}` : ''}`);
    out.push(`parameters: ${Object.entries(s.params).map(([k, v]) => `${k} ${count(v)}`).join(', ')} (${s.dtypes.join(', ')}); ${s.files.tensors} (${mb(s.files.bytes)})`);
    out.push(`inputs band-passed: ${s.bandpass ? `${s.bandpass[0]}–${s.bandpass[1]} Hz (embed, probe, predict and explain apply it)` : 'no'}`);
    const h = s.head;
    if (h) {
      out.push(`head: ${h.task} on '${h.label}' (${h.classes.length > 12 ? `${h.classes.length} classes` : h.classes.join(', ')}), ${h.head.activation === 'none' ? 'values' : h.head.activation}; leads ${h.leads.join(', ')}`);
      const val = h.validation === null ? 'no validation folds' : `validation ${h.task === 'regression' ? 'MAE' : 'macro AUC'} ${num(h.validation)}`;
      out.push(`trained: ${h.method === 'probe' ? 'linear probe' : `epoch ${h.epoch}, ${h.steps} steps`}; ${val}; from ${h.source.randomInit ? 'random weights' : `${h.source.checkpoint} (step ${h.source.step})`} on ${h.source.dataset}`);
    }
  }
  return out.join('\n');
}
