// Per-record outputs of a fine-tuned model (the checkpoint finetune writes with `save`): each
// record's mean-pooled representation from the fine-tuned encoder (band-passed as in fine-tuning),
// through the float64 head → probabilities (sigmoid per class for multilabel, softmax for
// multiclass) or values in target units (regression), written as CSV or JSON. Node only.
import Papa from 'papaparse';
import type { Engine } from '../../engine/engine.js';
import { checkTensors, loadCheckpoint, writeFileAtomic, type Checkpoint } from '../../model/checkpoint.js';
import { asFloat32 } from '../../model/safetensors.js';
import type { Dataset } from '../data/dataset.js';
import { embed, finetunedInfo } from './embed.js';
import { activateHead, type FinetunedInfo } from './finetune.js';
import { applyHead, type HeadMap } from './probe.js';

export interface FinetunedModel {
  /** The whole checkpoint (encoder tensors, config). */
  checkpoint: Checkpoint;
  info: FinetunedInfo;
  /** The head as a plain linear map on the pooled representation. */
  head: HeadMap;
}

/** Loads a fine-tuned checkpoint and checks its head; a checkpoint without one (pretraining) is refused. */
export async function loadFinetuned(file: string, command = 'predict'): Promise<FinetunedModel> {
  const ck = await loadCheckpoint(file);
  const info = finetunedInfo(ck);
  if (!info)
    throw new Error(`checkpoint ${file} has no fine-tuned head (a pretraining checkpoint?): ${command} needs the <name>-model checkpoint 'ecg-jepa finetune' (or 'probe --save') writes; embed and probe take this one`);
  const K = info.classes.length, D = ck.config.encoder.dim;
  checkTensors(ck.tensors, [[info.head.weight, [K, D]], [info.head.bias, [K]]], '', `fine-tuned checkpoint ${file}`);
  const f64 = (name: string) => {
    const t = ck.tensors.get(name)!;
    return t.dtype === 'F64' ? (t.data as Float64Array) : Float64Array.from(asFloat32(t));
  };
  const head: HeadMap = { weight: f64(info.head.weight), bias: f64(info.head.bias), inFeatures: D, outFeatures: K, featMean: new Float64Array(D), featInvStd: new Float64Array(D).fill(1), shift: 0, scale: 1 };
  return { checkpoint: ck, info, head };
}

export interface PredictOptions {
  /** A fine-tuned checkpoint (`…/<name>-model`, with or without .json/.safetensors). */
  checkpoint: string;
  data: string | Dataset;
  /** Records per forward pass. Default 32. */
  batch?: number;
  /** Only these record indices (default all), in this order. */
  subset?: ArrayLike<number>;
  /** Also the classes called per record: the most probable (multi-class), or those at or above their
   *  thresholds tuned on validation (multi-label; 0.5 where the model has none). */
  decisions?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface Predictions {
  task: FinetunedInfo['task'];
  label: string;
  classes: string[];
  ids: string[];
  /** [ids.length, classes.length]: probabilities (classification) or values (regression). */
  values: Float64Array;
  leads: string[];
  checkpoint: string;
  dataset: string;
  /** With `decisions`: the classes called per record, and the multi-label thresholds used and where
   *  they came from. */
  positive?: string[][];
  thresholds?: number[];
  thresholdsFrom?: 'validation' | 'default 0.5';
}

/** The fine-tuned model's outputs for every record of a dataset (or `subset`). */
export async function predict(engine: Engine, o: PredictOptions): Promise<Predictions> {
  const m = await loadFinetuned(o.checkpoint);
  if (o.decisions && m.info.task === 'regression') throw new Error(`predict: decisions need a classifier; ${o.checkpoint} predicts values of '${m.info.label}'`);
  const e = await embed(engine, { checkpoint: o.checkpoint, loaded: m.checkpoint, data: o.data, batch: o.batch, subset: o.subset, onProgress: o.onProgress });
  const { task, label, classes } = m.info;
  const K = classes.length;
  const values = activateHead(task, applyHead(m.head, e.features), K);
  const out: Predictions = { task, label, classes, ids: e.ids, values, leads: e.leads, checkpoint: o.checkpoint, dataset: e.dataset };
  if (!o.decisions) return out;
  const row = (i: number) => values.subarray(i * K, (i + 1) * K);
  if (task === 'multiclass') return { ...out, positive: e.ids.map((_, i) => [classes[row(i).indexOf(Math.max(...row(i)))]]) };
  const thresholds = m.info.thresholds ?? classes.map(() => 0.5);
  return {
    ...out, thresholds, thresholdsFrom: m.info.thresholds ? 'validation' : 'default 0.5',
    positive: e.ids.map((_, i) => classes.filter((_c, k) => row(i)[k] >= thresholds[k])),
  };
}

/** Writes `out` atomically: JSON when it ends in .json, else CSV (id, then one column per class or the label). */
export async function writePredictions(out: string, p: Predictions): Promise<string> {
  const K = p.classes.length;
  const rows = p.ids.map((id, i) => [id, ...p.values.subarray(i * K, (i + 1) * K), ...(p.positive ? [p.positive[i].join(';')] : [])]);
  const text = out.endsWith('.json')
    ? JSON.stringify({
        format: 'ecg-jepa-predictions', version: 1, task: p.task, label: p.label, output: p.task === 'regression' ? 'value' : 'probability',
        classes: p.classes, leads: p.leads, checkpoint: p.checkpoint, dataset: p.dataset, ids: p.ids, values: rows.map((r) => r.slice(1, 1 + K)),
        ...(p.positive ? { positive: p.positive, thresholds: p.thresholds, thresholdsFrom: p.thresholdsFrom } : {}),
      }) + '\n'
    : Papa.unparse({ fields: ['id', ...p.classes, ...(p.positive ? ['positive'] : [])], data: rows }, { newline: '\n' }) + '\n'; // one line ending throughout
  await writeFileAtomic(out, text);
  return out;
}
