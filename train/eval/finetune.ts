// Fine-tuning (the paper's second protocol): the encoder and a linear head trained end to end on
// band-passed (0.67–40 Hz), augmented records; AdamW betas (0.9, 0.95), weight decay 0.05,
// lr = 1e-4 · batch/256, batch 16, 10 epochs, 3 warm-up epochs then a half-cycle cosine to 0.
// Unlike the reference (best test value per metric over epochs), the reported epoch is the one with
// the best validation score, and its test metrics are what is reported.
//
// The encoder trains on the GPU; the head (D × K) stays on the CPU in float64 like the probe's: the
// pooled representation [B, D] is read back each step, the loss and dL/drep computed here, and
// dL/drep seeds the tape's backward through the encoder (tape.backward(rep, { grad })). So no BCE
// or cross-entropy kernels are needed, at the price of one small readback per step. Node only.
//
// Mixed precision (`precision: 'f16'`, the reference's autocast + GradScaler): the encoder's Linears
// take f16 matmul inputs (f32 accumulation, weights, gradients and AdamW); the head stays float64 on
// the CPU. The backward's seed dL/drep is multiplied by the loss scale, read back with rep each step
// (engine/lossscale.ts; dynamic by default), and AdamW removes it. A step whose gradients overflowed
// is skipped whole, as torch's scaler.step(optimizer) skips encoder and head alike: AdamW skips the
// encoder's update on the GPU, and the head's update waits for the next readback, which tells
// whether that step was skipped. Weights stay f32, so the saved model does not depend on precision.
//
// With `save`, the chosen epoch's model is written as a checkpoint (model/checkpoint.ts, atomic)
// each time validation improves: the encoder under the official state_dict keys (so embed, probe
// and a further finetune load it as they load a pretraining checkpoint) and the head as float64
// `head.weight` [K, D], `head.bias` [K], folded with the input standardisation (and regression's
// target scaling) into one linear map on the mean-pooled representation: logits, or values in
// target units. The JSON's state.extra = { kind: 'finetune', finetune: FinetunedInfo }.
import type { Engine } from '../../engine/engine.js';
import { LossScaler, type LossScaleOption, type LossScaleState } from '../../engine/lossscale.js';
import type { Precision } from '../../engine/ops/linear.js';
import { AdamW } from '../../engine/optim.js';
import { Rng } from '../../engine/random.js';
import { Tape } from '../../engine/tape.js';
import { saveCheckpoint } from '../../model/checkpoint.js';
import { inputLength, LEAD_NAMES, type EcgJepaConfig } from '../../model/config.js';
import { readParams, type Encoder } from '../../model/encoder.js';
import type { StTensor } from '../../model/safetensors.js';
import { openDataset } from '../data/dataset.js';
import { randAugment, type AugmentOptions } from './augment.js';
import { inputMaker, loadEncoder, type EncoderSource } from './embed.js';
import { column, meanStd, rocCurve, sigmoid, softmaxRows, tuneThresholds, type RocCurve } from './metrics.js';
import { adamwStep64, applyHead, aucScores, DEFAULT_SPLIT, evaluate, extractTargets, foldHead, rowLossGrad, splitRows, type HeadMap, type Metrics, type ProbeTask, type SplitSpec } from './probe.js';

export interface FinetuneOptions extends EncoderSource {
  data: string;
  task: ProbeTask;
  label: string;
  classes?: string[];
  split?: SplitSpec;
  epochs?: number;
  batch?: number;
  /** Peak learning rate (encoder and head). Default 1e-4 · batch / 256. */
  lr?: number;
  /** The head's peak rate, if it should differ (a fresh head next to a pretrained encoder). Default lr. */
  headLr?: number;
  weightDecay?: number;
  betas?: [number, number];
  warmupEpochs?: number;
  /** Band-pass [lo, hi] Hz applied to every record (all splits) before cropping; null: none. Default [0.67, 40]. */
  bandpass?: [number, number] | null;
  /** RandAugment on training records; false: none. Default { ops: 2, level: 10, p: 0.5 }. */
  augment?: AugmentOptions | false;
  regressionLoss?: 'mse' | 'l1';
  /** Standardise the head's input with the initial encoder's training statistics (see below). Default true. */
  standardize?: boolean;
  /** Data order, head init and augmentations. Default 0. */
  seed?: number;
  bootstrap?: number;
  /** Training steps per epoch at most (tests); default all batches. */
  maxStepsPerEpoch?: number;
  /** Matmul input precision of the encoder: f16 is mixed precision (needs shader-f16). Default f32. */
  precision?: Precision;
  /** Loss scale: a fixed number, 'dynamic' or its settings (engine/lossscale.ts). Default 'dynamic' with f16, 1 with f32. */
  lossScale?: LossScaleOption;
  /** Recompute the encoder's block activations in the backward instead of holding them (less memory,
   *  one more forward of the blocks a step; the same training bit for bit). */
  recompute?: boolean;
  /** Checkpoint base path (`<save>.safetensors` + `<save>.json`) for the chosen epoch's encoder + head. */
  save?: string;
  onEpoch?: (row: FinetuneEpoch) => void;
}

/** What a fine-tuned checkpoint's JSON records (state.extra.finetune); the config next to it holds the architecture. */
export interface FinetunedInfo {
  /** How the model was made: 'probe' for a linear probe on the frozen encoder (probe --save); absent: fine-tuned. */
  method?: 'probe';
  task: ProbeTask;
  label: string;
  /** The head's output columns: class names, or [label] for regression. */
  classes: string[];
  leads: string[];
  preset: string;
  /** The head: `head.weight` [K, D] and `head.bias` [K] (F64) on the mean-pooled representation. */
  head: { weight: string; bias: string; output: 'logits' | 'values'; activation: 'sigmoid' | 'softmax' | 'none' };
  /** Band-pass applied to every record before the encoder (null: none); predict and embed apply it too. */
  bandpass: [number, number] | null;
  /** Multi-label: per-class probability thresholds tuned on validation for F1 (predict --decisions);
   *  absent without validation folds. */
  thresholds?: number[];
  /** The chosen epoch (1-based), its validation headline (macro AUC or MAE; null without validation folds) and the steps done. */
  epoch: number;
  validation: number | null;
  steps: number;
  /** Of those, the steps skipped because their gradients overflowed (mixed precision's dynamic loss scale). */
  skippedSteps: number;
  /** Where the encoder's starting weights came from, and the data it was fine-tuned on. */
  source: { checkpoint: string | null; randomInit: boolean; step: number | null; dataset: string };
  settings: Record<string, unknown>;
}

export interface FinetuneEpoch {
  epoch: number;
  trainLoss: number;
  /** Headline on validation / test: macro AUC (classification) or MAE (regression). */
  val: number | null;
  test: number | null;
  /** The loss scale at the end of the epoch (1 without loss scaling) and the steps of this epoch skipped for overflowed gradients. */
  lossScale: number;
  skippedSteps: number;
}

export interface FinetuneResult {
  task: ProbeTask;
  label: string;
  classes: string[];
  split: SplitSpec & { sizes: { train: number; val: number; test: number } };
  history: FinetuneEpoch[];
  /** 1-based epoch whose validation score was best (the last epoch without validation folds). */
  bestEpoch: number;
  test: Metrics;
  val: Metrics | null;
  curves?: (RocCurve | null)[];
  notes: string[];
  settings: Record<string, unknown>;
  source: { checkpoint: string | null; randomInit: boolean; step: number | null; leads: string[]; preset: string; dataset: string };
  /** The chosen epoch's test-set outputs, as predict gives them: [ids.length, K] probabilities or values. */
  testPredictions: { ids: string[]; values: Float64Array };
  /** The loss scaler at the end: dynamic or fixed, its scale, and the steps skipped in all. */
  lossScale: LossScaleState & { dynamic: boolean };
  /** The checkpoint files written with `save` (null without). */
  saved: { tensors: string; meta: string } | null;
}

/** Head outputs → what predict reports: sigmoid per class (multilabel), softmax (multiclass), values (regression). */
export function activateHead(task: ProbeTask, z: Float64Array, K: number): Float64Array {
  return task === 'multiclass' ? softmaxRows(z, K) : task === 'multilabel' ? z.map(sigmoid) : z;
}

/** Warm-up from 0 over `warm` epochs, then a half-cycle cosine to 0 (per iteration, epochs fractional). */
export function warmupCosine(t: number, epochs: number, warm: number, lr: number): number {
  if (t < warm) return (lr * t) / warm;
  return lr * 0.5 * (1 + Math.cos((Math.PI * (t - warm)) / Math.max(1e-12, epochs - warm)));
}

/**
 * Saves an encoder with a linear head on its mean-pooled representation as the model predict,
 * explain, embed and probe read: the encoder's tensors under the usual keys, the head folded into one
 * float64 linear map (`head.weight` [K, D], `head.bias` [K]), and `info` in state.extra (kind
 * 'finetune'). Atomic, as checkpoints are.
 */
export async function saveHeadModel(base: string, encoder: Encoder, config: EcgJepaConfig, head: HeadMap, info: Omit<FinetunedInfo, 'head'>, state: { step: number; epoch: number }) {
  const tensors = new Map<string, StTensor>();
  for (const [name, data] of await readParams(encoder.reg)) tensors.set(name, { dtype: 'F32', shape: [...encoder.reg.get(name).shape], data });
  const f = foldHead(head);
  tensors.set('head.weight', { dtype: 'F64', shape: [head.outFeatures, head.inFeatures], data: f.weight });
  tensors.set('head.bias', { dtype: 'F64', shape: [head.outFeatures], data: f.bias });
  const full: FinetunedInfo = {
    ...info,
    head: { weight: 'head.weight', bias: 'head.bias', output: info.task === 'regression' ? 'values' : 'logits', activation: info.task === 'multiclass' ? 'softmax' : info.task === 'multilabel' ? 'sigmoid' : 'none' },
  };
  return saveCheckpoint(base, { config, state: { ...state, extra: { kind: 'finetune', finetune: full } }, tensors });
}

export async function finetune(engine: Engine, o: FinetuneOptions): Promise<FinetuneResult> {
  const epochs = o.epochs ?? 10;
  const batch = o.batch ?? 16;
  const lr = o.lr ?? (1e-4 * batch) / 256;
  const wd = o.weightDecay ?? 0.05;
  const betas = o.betas ?? [0.9, 0.95];
  const warm = Math.min(o.warmupEpochs ?? 3, epochs);
  const band = o.bandpass === undefined ? ([0.67, 40] as [number, number]) : o.bandpass;
  const aug = o.augment === undefined ? { ops: 2, level: 10, p: 0.5 } : o.augment;
  const precision = o.precision ?? 'f32';
  if (precision === 'f16' && !engine.device.features.has('shader-f16'))
    throw new Error("finetune: precision 'f16' (mixed precision) needs the device feature shader-f16, which this device lacks; use f32");
  const lossScale = o.lossScale ?? (precision === 'f16' ? 'dynamic' : 1);
  const scaler = new LossScaler(engine, lossScale);
  const ds = await openDataset(o.data).catch((e) => {
    scaler.dispose();
    throw e;
  });
  let loaded: Awaited<ReturnType<typeof loadEncoder>>;
  try {
    loaded = await loadEncoder(engine, o, precision);
  } catch (e) {
    ds.close();
    scaler.dispose();
    throw e;
  }
  const { encoder, config } = loaded;
  for (const p of encoder.reg.list()) p.requiresGrad = true;
  const opt = new AdamW(engine, encoder.reg, { lr, beta1: betas[0], beta2: betas[1], eps: 1e-8, weightDecay: wd });
  try {
    const tg = extractTargets(ds.manifest.records.map((r) => r.labels ?? {}), o.task, o.label, o.classes);
    const spec = o.split ?? DEFAULT_SPLIT;
    const sp = splitRows(ds.manifest.records.map((r) => r.fold), tg.rows, spec);
    const notes = [...tg.notes];
    if (!sp.val.length) notes.push('no validation folds: the last epoch is reported');
    const K = tg.classes.length;
    const D = config.encoder.dim;
    const C = config.leads.length;
    const L = inputLength(config);
    const make = inputMaker(ds, config, band);
    // Dataset index → position among the task's rows (targets), for batches read by dataset index.
    const posOf = new Map<number, number>(tg.rows.map((r, i) => [r, i]));
    const T = Float64Array.from(tg.y);
    let shift = 0, scale = 1;
    if (o.task === 'regression') {
      const m = meanStd(sp.train.map((i) => tg.y[i]));
      shift = m.mean;
      scale = m.std > 0 ? m.std : 1;
      for (let i = 0; i < T.length; i++) T[i] = (T[i] - shift) / scale;
    }
    const rng = new Rng(o.seed ?? 0);
    const bound = 1 / Math.sqrt(D);
    const W = Float64Array.from({ length: K * D }, () => rng.uniform(-bound, bound));
    const b = Float64Array.from({ length: K }, () => rng.uniform(-bound, bound));
    const gW = new Float64Array(K * D), gb = new Float64Array(K);
    const mu = new Float64Array(D);
    const inv = new Float64Array(D).fill(1);
    // The head sees standardised features (x − μ)/σ with μ, σ of the initial encoder on the training
    // rows: a fixed affine map, so the model is still encoder + linear head, but conditioned as the
    // probe's (pooled features can vary little across records next to their mean). It trains on
    // standardised regression targets; `model` maps its outputs back to target units.
    const head: HeadMap = { weight: W, bias: b, inFeatures: D, outFeatures: K, featMean: mu, featInvStd: inv, shift: 0, scale: 1 };
    const model: HeadMap = { ...head, shift, scale };
    const m1 = [new Float64Array(K * D), new Float64Array(K)], m2 = [new Float64Array(K * D), new Float64Array(K)];
    const tape = new Tape(engine);
    const trainIdx = sp.train.map((i) => tg.rows[i]);
    const perEpoch = Math.min(Math.ceil(trainIdx.length / batch), o.maxStepsPerEpoch ?? Infinity);

    /** Pooled features [idx.length, D] of the given task rows (no augmentation, no gradients). */
    const features = async (idx: readonly number[]) => {
      const out = new Float32Array(idx.length * D);
      let done = 0;
      for (const bt of ds.batches({ batchSize: 32, shuffle: false, subset: idx.map((i) => tg.rows[i]) })) {
        const B = bt.indices.length;
        const x = engine.upload(make(bt.x, B), [B, C, L]);
        const rep = tape.noGrad(() => engine.scope(() => encoder.representation(tape, x)));
        out.set(await engine.read(rep), done * D);
        rep.dispose();
        x.dispose();
        done += B;
      }
      return out;
    };
    /** Head outputs (regression: in target units) for the given task rows. */
    const outputs = async (idx: readonly number[]) => applyHead(model, await features(idx));
    const targets = (idx: readonly number[]) => {
      const y = new Float64Array(idx.length * K);
      idx.forEach((i, j) => y.set(tg.y.subarray(i * K, i * K + K), j * K));
      return y;
    };
    if (o.standardize ?? true) {
      const f = await features(sp.train);
      const n = sp.train.length;
      for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) mu[d] += f[i * D + d] / n;
      const v = new Float64Array(D);
      for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) v[d] += (f[i * D + d] - mu[d]) ** 2 / n;
      for (let d = 0; d < D; d++) inv[d] = v[d] > 1e-24 ? 1 / Math.sqrt(v[d]) : 1;
    }
    const headline = (m: Metrics) => (m.kind === 'regression' ? m.mae : m.auc.macro);
    const better = (a: number | null, bst: number | null) => a !== null && (bst === null || (o.task === 'regression' ? a < bst : a > bst));

    const history: FinetuneEpoch[] = [];
    let best: { epoch: number; val: Metrics | null; test: Metrics; score: number | null; logits: Float64Array; valLogits: Float64Array | null } | null = null;
    let step = 0;
    let saved: FinetuneResult['saved'] = null;
    const leadNames = config.leads.map((i) => LEAD_NAMES[i]);
    const settings = { epochs, batch, lr, headLr: o.headLr ?? lr, weightDecay: wd, standardize: o.standardize ?? true, betas, warmupEpochs: warm, bandpass: band, augment: aug, seed: o.seed ?? 0, stepsPerEpoch: perEpoch, precision, lossScale };
    // The loss scaler's state as of the last readback, and the head update of the step before it,
    // held until a readback tells whether the scaler skipped that step (the top of the file).
    let ls = await scaler.read();
    let pending: { rate: number } | null = null;
    let headSteps = 0;
    const settle = (now: LossScaleState) => {
      if (pending && now.skipped === ls.skipped)
        adamwStep64([W, b], [gW, gb], m1, m2, ++headSteps, (pending.rate * (o.headLr ?? lr)) / (lr || 1), { betas, eps: 1e-8, weightDecay: wd });
      pending = null;
      ls = now;
    };
    /** Multi-label F1 thresholds tuned on validation outputs (their notes pushed to `into`). */
    const tune = (vl: Float64Array, into: string[] = []) => {
      const t = tuneThresholds(vl.map(sigmoid), targets(sp.val), K, tg.classes);
      t.notes.forEach((n) => into.push(`validation: ${n}`));
      return t.thresholds;
    };
    /** Writes the encoder as it is now and the folded head (see the top of the file). */
    const save = (base: string, epoch: number, validation: number | null, vl: Float64Array | null) =>
      saveHeadModel(base, encoder, config, model, {
        task: o.task, label: o.label, classes: tg.classes, leads: leadNames, preset: config.preset,
        bandpass: band, ...(o.task === 'multilabel' && vl ? { thresholds: tune(vl) } : {}), epoch, validation, steps: step, skippedSteps: ls.skipped,
        source: { checkpoint: loaded.checkpoint, randomInit: loaded.randomInit, step: loaded.step, dataset: ds.dir },
        settings: { ...settings, split: spec },
      }, { step, epoch });
    for (let epoch = 0; epoch < epochs; epoch++) {
      let lossSum = 0, seen = 0, s = 0;
      const skippedBefore = ls.skipped;
      for (const bt of ds.batches({ batchSize: batch, seed: o.seed ?? 0, epoch, subset: trainIdx })) {
        if (s++ >= perEpoch) break;
        const B = bt.indices.length;
        const xin = make(bt.x, B);
        if (aug) for (let j = 0; j < B; j++) randAugment(xin.subarray(j * C * L, (j + 1) * C * L), C, L, rng, { fs: ds.manifest.fs, ...aug });
        const rate = warmupCosine(step / perEpoch, epochs, warm, lr);
        encoder.reg.zeroGrad();
        const x = engine.upload(xin, [B, C, L]);
        let rep;
        try {
          rep = engine.scope(() => encoder.representation(tape, x, { recompute: o.recompute }));
        } catch (e) {
          tape.clear();
          throw e;
        }
        const [r, now] = await Promise.all([engine.read(rep), scaler.read()]);
        settle(now);
        const z = applyHead(head, r);
        for (let j = 0; j < B; j++) {
          const t = posOf.get(bt.indices[j])!;
          const l = rowLossGrad(z, j * K, T, t * K, K, B, o.task, o.regressionLoss);
          lossSum += o.task === 'multiclass' ? l : l / K;
        }
        seen += B;
        // dL/dW, dL/db on the CPU; dL/drep = dz · W goes back to the GPU as the backward's seed, times the loss scale.
        gW.fill(0);
        gb.fill(0);
        const drep = new Float32Array(B * D);
        for (let j = 0; j < B; j++)
          for (let k = 0; k < K; k++) {
            const g = z[j * K + k];
            gb[k] += g;
            for (let d = 0; d < D; d++) {
              gW[k * D + d] += g * (r[j * D + d] - mu[d]) * inv[d];
              drep[j * D + d] += g * W[k * D + d] * inv[d];
            }
          }
        const seed = engine.upload(drep, [B, D]);
        tape.backward(rep, { grad: seed, scale: ls.scale });
        opt.step(rate, scaler);
        engine.flush();
        seed.dispose();
        rep.dispose();
        x.dispose();
        step++;
        pending = { rate };
      }
      settle(await scaler.read());
      const trainLoss = lossSum / Math.max(1, seen);
      if (!Number.isFinite(trainLoss)) throw new Error(`finetune: training loss ${trainLoss} in epoch ${epoch + 1} (lower --lr)`);
      const trainMean = o.task === 'regression' ? shift : undefined;
      const vl = sp.val.length ? await outputs(sp.val) : null;
      const val = vl ? evaluate(o.task, tg.classes, vl, targets(sp.val), K, [], '', { bootstrap: 0 }, undefined, trainMean) : null;
      const tl = await outputs(sp.test);
      const test = evaluate(o.task, tg.classes, tl, targets(sp.test), K, [], '', { bootstrap: 0 }, undefined, trainMean);
      const row = { epoch: epoch + 1, trainLoss, val: val ? headline(val) : null, test: headline(test), lossScale: ls.scale, skippedSteps: ls.skipped - skippedBefore };
      history.push(row);
      o.onEpoch?.(row);
      const score = val ? headline(val) : null;
      if (!best || !val || better(score, best.score)) {
        best = { epoch: epoch + 1, val, test, score, logits: tl, valLogits: vl };
        if (o.save) saved = await save(o.save, epoch + 1, score, vl);
      }
    }
    if (!best) throw new Error('finetune: no epoch ran (epochs must be ≥ 1)');
    // The chosen epoch's test metrics again, now with notes and bootstrap CIs.
    const ty = targets(sp.test);
    // multi-label F1 also at per-class thresholds tuned on validation, as the probe reports it
    let tuned: number[] | undefined;
    if (o.task === 'multilabel' && best.valLogits) tuned = tune(best.valLogits, notes);
    else if (o.task === 'multilabel') notes.push('no validation folds: F1 thresholds not tuned');
    const test = evaluate(o.task, tg.classes, best.logits, ty, K, notes, 'test', { bootstrap: o.bootstrap ?? 1000 }, tuned, o.task === 'regression' ? shift : undefined);
    let curves: (RocCurve | null)[] | undefined;
    const probs = activateHead(o.task, best.logits, K);
    if (o.task !== 'regression') {
      const scores = aucScores(o.task, best.logits, K);
      curves = Array.from({ length: K }, (_, k) => rocCurve(column(scores, K, k), column(ty, K, k)));
    }
    return {
      task: o.task, label: o.label, classes: tg.classes,
      split: { ...spec, sizes: { train: sp.train.length, val: sp.val.length, test: sp.test.length } },
      history, bestEpoch: best.epoch, test, val: best.val, ...(curves ? { curves } : {}), notes,
      settings,
      source: { checkpoint: loaded.checkpoint, randomInit: loaded.randomInit, step: loaded.step, leads: leadNames, preset: config.preset, dataset: ds.dir },
      testPredictions: { ids: sp.test.map((i) => ds.manifest.records[tg.rows[i]].id), values: probs },
      lossScale: { ...ls, dynamic: scaler.dynamic },
      saved,
    };
  } finally {
    scaler.dispose();
    opt.dispose();
    encoder.dispose();
    ds.close();
  }
}
