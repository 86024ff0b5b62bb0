// Frozen features for downstream evaluation: the student encoder of a checkpoint (or the same
// architecture with random weights, the baseline) restricted to a lead subset, run without
// gradients over a prepared dataset; each record → its mean-pooled representation [D].
// Reduced leads: the weights do not depend on the leads, only the positional rows and the CroPA
// pattern do, and Encoder builds those for `cfg.leads` (withLeads + allowLeadSubset). Node only.
import type { Engine } from '../../engine/engine.js';
import type { Precision } from '../../engine/ops/linear.js';
import { Rng } from '../../engine/random.js';
import { Tape } from '../../engine/tape.js';
import { loadCheckpoint, readCheckpointInfo, type Checkpoint } from '../../model/checkpoint.js';
import { configDifferences, inputLength, LEAD_NAMES, makeConfig, withLeads, type EcgJepaConfig } from '../../model/config.js';
import { Encoder, loadParams } from '../../model/encoder.js';
import { trainedBandpass } from '../../model/export.js';
import { asFloat32 } from '../../model/safetensors.js';
import { bandpass } from '../data/dsp.js';
import { openDataset, type Dataset } from '../data/dataset.js';
import { leadSelector } from '../data/select.js';
import type { FinetunedInfo } from './finetune.js';

export interface EncoderSource {
  /** Checkpoint path (`…/checkpoint-last`, with or without .json/.safetensors). */
  checkpoint?: string;
  /** Random weights (the architecture of `checkpoint` if given, else of `preset`). */
  randomInit?: boolean;
  /** Without a checkpoint: the architecture for randomInit. With one: the preset it must have. */
  preset?: string;
  /** Random-init seed. Default 0: with pretrain's default seed these are the weights it started from. */
  seed?: number;
  /** Lead subset by name ('II') or index into LEAD_NAMES; default the checkpoint's leads. */
  leads?: readonly (string | number)[];
  /** The checkpoint at `checkpoint`, already loaded (so it is not read twice). */
  loaded?: Checkpoint;
}

export interface LoadedEncoder {
  encoder: Encoder;
  /** The config the encoder runs with (leads = the subset). */
  config: EcgJepaConfig;
  /** The leads the weights were trained on. */
  trainedLeads: number[];
  checkpoint: string | null;
  randomInit: boolean;
  /** Training steps of the checkpoint (null for random weights). */
  step: number | null;
  /** What a fine-tuned checkpoint records about its task, head and preprocessing; null for a pretraining one. */
  finetuned: FinetunedInfo | null;
  /** Band-pass the weights were trained behind (a fine-tuned model's, or an export of one); null: none. */
  bandpass: [number, number] | null;
}

/** The fine-tuning record of a checkpoint written by finetune (state.extra.kind 'finetune'); null for others. */
export function finetunedInfo(ck: Pick<Checkpoint, 'state'>): FinetunedInfo | null {
  const x = ck.state.extra;
  return x?.kind === 'finetune' ? (x.finetune as FinetunedInfo) : null;
}

function checkSourceFlags(src: EncoderSource): void {
  if (!src.checkpoint && !src.randomInit) throw new Error('embed: give a checkpoint, or randomInit with a preset');
  if (!src.checkpoint && !src.preset) throw new Error('embed: randomInit without a checkpoint needs a preset for the architecture');
}

/** The encoder's config (`base`: as trained, or the preset's; `config`: with src.leads), checked
 *  against src.preset and src.leads. */
function encoderConfig(src: EncoderSource, trained: EcgJepaConfig | null): { base: EcgJepaConfig; config: EcgJepaConfig } {
  const base = trained ?? makeConfig(src.preset!);
  if (trained && src.preset) {
    const diffs = configDifferences(trained, makeConfig(src.preset, { leads: trained.leads }));
    if (diffs.length) throw new Error(`checkpoint ${src.checkpoint} is not a '${src.preset}' model:\n  ${diffs.join('\n  ')}`);
  }
  const config = src.leads ? withLeads(base, src.leads) : base;
  const diffs = configDifferences(base, config, { allowLeadSubset: true });
  if (diffs.length) {
    const names = (l: number[]) => l.map((i) => LEAD_NAMES[i]).join(', ');
    throw new Error(`leads [${names(config.leads)}] are not all among the leads the ${trained ? 'checkpoint was trained on' : `'${base.preset}' preset uses`} [${names(base.leads)}]`);
  }
  return { base, config };
}

/** What loadEncoder refuses, found from the checkpoint's sidecar and tensor header alone (before a
 *  command removes an earlier run's outputs). */
export async function checkEncoderSource(src: EncoderSource): Promise<void> {
  checkSourceFlags(src);
  encoderConfig(src, src.checkpoint ? (await readCheckpointInfo(src.checkpoint)).config : null);
}

/**
 * Builds the frozen encoder a downstream evaluation uses; clear errors for mismatched checkpoints.
 * precision: its Linears' matmul inputs (f16 for finetune's mixed precision; the weights stay f32).
 */
export async function loadEncoder(engine: Engine, src: EncoderSource, precision: Precision = 'f32'): Promise<LoadedEncoder> {
  checkSourceFlags(src);
  const ck = src.checkpoint ? (src.loaded ?? (await loadCheckpoint(src.checkpoint))) : null;
  const { base, config } = encoderConfig(src, ck?.config ?? null);
  const encoder = new Encoder(engine, config, new Rng(src.seed ?? 0), precision);
  for (const p of encoder.reg.list()) p.requiresGrad = false;
  if (ck && !src.randomInit) {
    const values = new Map<string, Float32Array>();
    // The student keeps the official unprefixed names; teacher., optim., predictor and head. keys are skipped.
    for (const [k, t] of ck.tensors) values.set(k, asFloat32(t));
    try {
      loadParams(encoder.reg, values, { allowExtra: true, what: `checkpoint ${src.checkpoint}` });
    } catch (e) {
      encoder.dispose();
      throw e;
    }
  }
  const trained = ck && !src.randomInit;
  return {
    encoder, config, trainedLeads: base.leads, checkpoint: src.checkpoint ?? null, randomInit: !!src.randomInit, step: trained ? ck.state.step : null,
    finetuned: trained ? finetunedInfo(ck) : null, bandpass: trained ? trainedBandpass(ck) : null,
  };
}

/** Makes model inputs [B, C, L] from dataset batches: band-passed over the whole record (when `band`), leads selected. */
export function inputMaker(ds: Dataset, config: EcgJepaConfig, band: [number, number] | null) {
  const sel = leadSelector(ds, config);
  const fs = ds.manifest.fs;
  const S = ds.manifest.samples;
  return (x: Float32Array, B: number): Float32Array => {
    if (!band) return sel(x, B);
    const Ld = ds.manifest.leads.length;
    const filtered = new Float32Array(x.length);
    for (let r = 0; r < B * Ld; r++) {
      try {
        filtered.set(bandpass(x.subarray(r * S, (r + 1) * S), fs, band[0], band[1]), r * S);
      } catch (e) {
        throw new Error(`band-pass ${band[0]}–${band[1]} Hz failed on ${S}-sample records (${(e as Error).message}); pass bandpass: null for short records`);
      }
    }
    return sel(filtered, B);
  };
}

export interface EmbedOptions extends EncoderSource {
  /** A prepared dataset folder, or one already open (left open). */
  data: string | Dataset;
  /** Records per forward pass. Default 32. */
  batch?: number;
  /** Only these record indices (default all), in this order. */
  subset?: ArrayLike<number>;
  /** Band-pass [lo, hi] Hz before the encoder; null: none. Default: a fine-tuned checkpoint's own, or an export
   *  of one (its encoder was trained on filtered records), else none. */
  bandpass?: [number, number] | null;
  onProgress?: (done: number, total: number) => void;
}

export interface Embeddings {
  /** [n, dim] row-major, in the order of `indices`. */
  features: Float32Array;
  n: number;
  dim: number;
  /** Dataset record indices, ids, labels and folds of the rows. */
  indices: Uint32Array;
  ids: string[];
  labels: Record<string, unknown>[];
  folds: (number | string | null)[];
  /** Lead names the encoder saw. */
  leads: string[];
  config: EcgJepaConfig;
  checkpoint: string | null;
  randomInit: boolean;
  step: number | null;
  /** The band-pass applied to the records (null: none). */
  bandpass: [number, number] | null;
  dataset: string;
}

/** Mean-pooled student representations of every record (or `subset`), no gradients. */
export async function embed(engine: Engine, o: EmbedOptions): Promise<Embeddings> {
  const batch = o.batch ?? 32;
  if (!Number.isInteger(batch) || batch <= 0) throw new Error(`embed: batch must be a positive integer, got ${batch}`);
  const ds = typeof o.data === 'string' ? await openDataset(o.data) : o.data;
  let loaded: LoadedEncoder | undefined;
  try {
    loaded = await loadEncoder(engine, o);
    const { encoder, config } = loaded;
    const band = o.bandpass === undefined ? loaded.bandpass : o.bandpass;
    const make = inputMaker(ds, config, band);
    const indices = o.subset ? Uint32Array.from(o.subset) : Uint32Array.from({ length: ds.size }, (_, i) => i);
    const n = indices.length;
    if (n === 0) throw new Error(`embed: no records to embed in ${ds.dir}`);
    const D = config.encoder.dim;
    const C = config.leads.length;
    const L = inputLength(config);
    const features = new Float32Array(n * D);
    const tape = new Tape(engine);
    let done = 0;
    for (const b of ds.batches({ batchSize: batch, shuffle: false, subset: indices })) {
      const B = b.indices.length;
      const x = engine.upload(make(b.x, B), [B, C, L]);
      const rep = tape.noGrad(() => engine.scope(() => encoder.representation(tape, x)));
      features.set(await engine.read(rep), done * D);
      rep.dispose();
      x.dispose();
      done += B;
      o.onProgress?.(done, n);
    }
    for (let i = 0; i < features.length; i++)
      if (!Number.isFinite(features[i])) throw new Error(`embed: non-finite feature for record ${ds.manifest.records[indices[Math.floor(i / D)]].id} (bad input values?)`);
    const recs = Array.from(indices, (i) => ds.manifest.records[i]);
    return {
      features, n, dim: D, indices,
      ids: recs.map((r) => r.id),
      labels: recs.map((r) => r.labels ?? {}),
      folds: recs.map((r) => r.fold),
      leads: config.leads.map((i) => LEAD_NAMES[i]),
      config,
      checkpoint: loaded.checkpoint,
      randomInit: loaded.randomInit,
      step: loaded.step,
      bandpass: band,
      dataset: ds.dir,
    };
  } finally {
    loaded?.encoder.dispose();
    if (typeof o.data === 'string') ds.close();
  }
}

/** `<out>.npy` (float32 [n, dim]) and `<out>.json` (ids, labels, folds, leads, source); `out` may end in .npy. */
export async function writeEmbeddings(out: string, e: Embeddings): Promise<{ npy: string; json: string }> {
  const [{ writeFileAtomic }, { writeNpy }] = await Promise.all([import('../../model/checkpoint.js'), import('../data/npy.js')]);
  const base = out.replace(/\.(npy|json)$/, '');
  const npy = `${base}.npy`;
  const json = `${base}.json`;
  await writeFileAtomic(npy, writeNpy(e.features, [e.n, e.dim]));
  const meta = {
    format: 'ecg-jepa-embeddings',
    version: 1,
    npy: npy.split(/[\\/]/).pop(),
    shape: [e.n, e.dim],
    dataset: e.dataset,
    checkpoint: e.checkpoint,
    randomInit: e.randomInit,
    step: e.step,
    bandpass: e.bandpass,
    leads: e.leads,
    preset: e.config.preset,
    ids: e.ids,
    folds: e.folds,
    labels: e.labels,
  };
  await writeFileAtomic(json, JSON.stringify(meta) + '\n');
  return { npy, json };
}
