// Which leads and which moments of an ECG a fine-tuned model's output rests on: integrated
// gradients (Sundararajan et al. 2017) of the head's output before its activation (a class logit, for
// multi-class minus the mean logit, or a regression value) with respect to the encoder's input samples, from a flat line.
// attribution = x ⊙ mean over α of ∇f(α·x), α at the midpoints of `steps` equal intervals of (0, 1];
// their sum approaches f(x) − f(0) as steps grow (completeness), and the gap is reported. The encoder's
// weights are frozen, so the backward computes input gradients only. Node only (reads a checkpoint).
import type { Engine } from '../../engine/engine.js';
import { Tape } from '../../engine/tape.js';
import { inputLength, LEAD_NAMES } from '../../model/config.js';
import { openDataset, type Dataset } from '../data/dataset.js';
import { inputMaker, loadEncoder } from './embed.js';
import { activateHead } from './finetune.js';
import { applyHead } from './probe.js';
import { loadFinetuned } from './predict.js';
import { Raster, type Rgb } from './raster.js';
import { encodePng } from './report.js';

export interface ExplainOptions {
  /** A fine-tuned checkpoint (`…/<name>-model`). */
  checkpoint: string;
  data: string | Dataset;
  /** Record indices to explain (default all), in this order. */
  subset?: ArrayLike<number>;
  /** The output to explain: a class name, or 'predicted' (default: the most probable class; the value
   *  for regression). */
  target?: string;
  /** Integration steps (default 32): more make the sum closer to f(x) − f(0). */
  steps?: number;
  /** Interpolated inputs per forward/backward pass (default 32). */
  batch?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface RecordExplanation {
  id: string;
  /** The class (or the regression label) explained. */
  target: string;
  /** The model's output for it: a probability, or the value in target units. */
  output: number;
  /** f(x) and f(0), the quantity explained, for the record and for a flat line: the head's output
   *  before its activation (a logit; for multi-class the logit minus the mean of all logits, which
   *  softmax does not see; for regression the value). */
  value: number;
  baseline: number;
  /** [leads, samples] row-major: what the encoder saw (band-passed as in fine-tuning), mV. */
  input: Float32Array;
  /** [leads, samples] row-major: each input sample's share of f(x) − f(0). */
  attribution: Float32Array;
  /** Σ attribution − (f(x) − f(0)): the integration error. */
  delta: number;
}

export interface Explanation {
  task: 'multilabel' | 'multiclass' | 'regression';
  label: string;
  classes: string[];
  leads: string[];
  fs: number;
  samples: number;
  patchSize: number;
  steps: number;
  bandpass: [number, number] | null;
  checkpoint: string;
  dataset: string;
  records: RecordExplanation[];
}

/** Integrated-gradients attributions of a fine-tuned model's output for each record of a dataset. */
export async function explain(engine: Engine, o: ExplainOptions): Promise<Explanation> {
  const steps = o.steps ?? 32, batch = o.batch ?? 32;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`explain: steps must be a positive integer, got ${steps}`);
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`explain: batch must be a positive integer, got ${batch}`);
  const model = await loadFinetuned(o.checkpoint, 'explain');
  const { task, label, classes } = model.info;
  const K = classes.length;
  const fixed = o.target && o.target !== 'predicted' ? (task === 'regression' ? (o.target === label ? 0 : -1) : classes.indexOf(o.target)) : null;
  if (fixed === -1) throw new Error(`explain: target '${o.target}' is not an output of this model (${task === 'regression' ? label : classes.join(', ')}, or predicted)`);
  const ds = typeof o.data === 'string' ? await openDataset(o.data) : o.data;
  const loaded = await loadEncoder(engine, { checkpoint: o.checkpoint, loaded: model.checkpoint }); // weights frozen: input gradients only
  try {
    const { encoder, config } = loaded;
    const make = inputMaker(ds, config, loaded.bandpass);
    const C = config.leads.length, L = inputLength(config), CL = C * L, D = config.encoder.dim;
    const indices = o.subset ? Array.from(o.subset) : Array.from({ length: ds.size }, (_, i) => i);
    if (!indices.length) throw new Error(`explain: no records to explain in ${ds.dir}`);
    const tape = new Tape(engine);
    /** The pooled representation of one input [C, L], no gradients. */
    const represent = async (x: Float32Array) => {
      const t = engine.upload(x, [1, C, L]);
      const rep = tape.noGrad(() => engine.scope(() => encoder.representation(tape, t)));
      const r = await engine.read(rep);
      rep.dispose();
      t.dispose();
      return r;
    };
    /** The explained linear map of output k on the representation (see RecordExplanation.value). */
    const explained = (k: number) => {
      const { weight: W, bias: b } = model.head;
      const w = Float64Array.from(W.subarray(k * D, (k + 1) * D));
      let c = b[k];
      if (task === 'multiclass') {
        for (let j = 0; j < K; j++) {
          for (let d = 0; d < D; d++) w[d] -= W[j * D + d] / K;
          c -= b[j] / K;
        }
      }
      return { w, at: (rep: Float32Array) => rep.reduce((s, v, d) => s + v * w[d], c) };
    };
    const flat = await represent(new Float32Array(CL));
    const records: RecordExplanation[] = [];
    for (const b of ds.batches({ batchSize: 1, shuffle: false, subset: indices })) {
      const x = make(b.x, 1);
      const rec = ds.manifest.records[b.indices[0]];
      const rep = await represent(x);
      if (!rep.every(Number.isFinite)) throw new Error(`explain: non-finite features for record ${rec.id} (bad input values?)`);
      const out = activateHead(task, applyHead(model.head, rep), K);
      let k = fixed ?? 0;
      if (fixed === null && task !== 'regression') for (let c = 1; c < K; c++) if (out[c] > out[k]) k = c;
      const f = explained(k);
      const seedRow = Float32Array.from(f.w);
      // ∇f at α·x, the integration points in chunks of `batch`
      const gradSum = new Float64Array(CL);
      for (let j0 = 0; j0 < steps; j0 += batch) {
        const n = Math.min(batch, steps - j0);
        const xs = new Float32Array(n * CL), seed = new Float32Array(n * D);
        for (let j = 0; j < n; j++) {
          const alpha = (j0 + j + 0.5) / steps;
          for (let i = 0; i < CL; i++) xs[j * CL + i] = alpha * x[i];
          seed.set(seedRow, j * D);
        }
        const xt = engine.upload(xs, [n, C, L]);
        const leaf = tape.watch(xt);
        const seedT = engine.upload(seed, [n, D]);
        try {
          const r = engine.scope(() => encoder.representation(tape, xt));
          tape.backward(r, { grad: seedT });
          r.dispose();
          const g = await engine.read(leaf.grad!);
          for (let j = 0; j < n; j++) for (let i = 0; i < CL; i++) gradSum[i] += g[j * CL + i];
        } finally {
          tape.clear();
          leaf.grad?.dispose();
          seedT.dispose();
          xt.dispose();
        }
      }
      const attribution = new Float32Array(CL);
      let total = 0;
      for (let i = 0; i < CL; i++) {
        attribution[i] = (x[i] * gradSum[i]) / steps;
        total += attribution[i];
      }
      const value = f.at(rep), baseline = f.at(flat);
      records.push({ id: rec.id, target: task === 'regression' ? label : classes[k], output: out[k], value, baseline, input: x, attribution, delta: total - (value - baseline) });
      o.onProgress?.(records.length, indices.length);
    }
    return {
      task, label, classes, leads: config.leads.map((i) => LEAD_NAMES[i]), fs: ds.manifest.fs, samples: L, patchSize: config.patchSize,
      steps, bandpass: loaded.bandpass, checkpoint: o.checkpoint, dataset: ds.dir, records,
    };
  } finally {
    loaded.encoder.dispose();
    if (typeof o.data === 'string') ds.close();
  }
}

/** Per lead: its share of the record's total |attribution| (sums to 1 over the leads). */
export function leadShares(e: Pick<Explanation, 'leads' | 'samples'>, r: Pick<RecordExplanation, 'attribution'>): number[] {
  const C = e.leads.length, L = e.samples;
  const abs = Array.from({ length: C }, (_, c) => {
    let s = 0;
    for (let i = 0; i < L; i++) s += Math.abs(r.attribution[c * L + i]);
    return s;
  });
  const total = abs.reduce((a, b) => a + b, 0);
  return abs.map((s) => (total > 0 ? s / total : 0));
}

/** Per lead and patch: the signed sum of its samples' attributions ([leads][patches]). */
export function patchAttribution(e: Pick<Explanation, 'leads' | 'samples' | 'patchSize'>, r: Pick<RecordExplanation, 'attribution'>): number[][] {
  const C = e.leads.length, L = e.samples, P = Math.floor(L / e.patchSize);
  return Array.from({ length: C }, (_, c) =>
    Array.from({ length: P }, (_, p) => {
      let s = 0;
      for (let i = p * e.patchSize; i < (p + 1) * e.patchSize; i++) s += r.attribution[c * L + i];
      return s;
    }),
  );
}

/** A record's leads as traces over a background shaded per patch: red where the patch raised the
 *  explained output, blue where it lowered it, deeper for larger shares (scaled to the record's largest). */
export function explanationPlot(e: Explanation, r: RecordExplanation): Raster {
  const C = e.leads.length, L = e.samples;
  const left = 60, top = 34, rowH = 70, width = 1060, plotW = width - left - 10;
  const img = new Raster(width, top + C * rowH + 10);
  const patches = patchAttribution(e, r);
  const peak = Math.max(1e-30, ...patches.flat().map(Math.abs));
  const shares = leadShares(e, r);
  const out = e.task === 'regression' ? `VALUE ${r.output.toFixed(3)}` : `P ${r.output.toFixed(3)}`;
  img.text(8, 8, `${r.id}: ${r.target} ${out}`.slice(0, 80), [0, 0, 0], 2);
  const patchW = (plotW * e.patchSize) / L;
  for (let c = 0; c < C; c++) {
    const y0 = top + c * rowH;
    patches[c].forEach((a, p) => {
      const t = Math.min(1, Math.abs(a) / peak);
      const tint: Rgb = a >= 0 ? [255, Math.round(255 * (1 - 0.75 * t)), Math.round(255 * (1 - 0.75 * t))] : [Math.round(255 * (1 - 0.75 * t)), Math.round(255 * (1 - 0.75 * t)), 255];
      img.fillRect(left + p * patchW, y0 + 2, patchW, rowH - 4, tint);
    });
    img.text(6, y0 + rowH / 2 - 10, e.leads[c], [0, 0, 0], 2);
    img.text(6, y0 + rowH / 2 + 8, `${Math.round(100 * shares[c])}%`, [90, 90, 90], 1);
    const row = r.input.subarray(c * L, (c + 1) * L);
    let lo = Infinity, hi = -Infinity;
    for (const v of row) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    const span = Math.max(hi - lo, 1e-6);
    const yOf = (v: number) => y0 + rowH - 6 - ((v - lo) / span) * (rowH - 12);
    for (let i = 1; i < L; i++) img.line(left + ((i - 1) * plotW) / L, yOf(row[i - 1]), left + (i * plotW) / L, yOf(row[i]), [0, 0, 0]);
  }
  return img;
}

/** A file name from a record id (path separators and other characters outside [A-Za-z0-9._-] as _). */
const safeName = (id: string) => id.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_') || '_';

/**
 * Writes `<dir>/explain.json` (per record: target, output, f(x), f(0), integration error, share per
 * lead, signed attribution per patch), `<dir>/attribution.npy` and `<dir>/input.npy` (float32
 * [records, leads, samples]: the attributions, and the band-passed input they are of) and, with
 * `png`, one plot per record; plots an earlier run listed that this one does not write are removed.
 * Each file atomically. Returns the paths written.
 */
export async function writeExplanation(dir: string, e: Explanation, o: { png?: boolean } = {}): Promise<string[]> {
  const [{ writeFileAtomic }, { writeNpy }, fsp, path] = await Promise.all([
    import('../../model/checkpoint.js'), import('../data/npy.js'), import('node:fs/promises'), import('node:path'),
  ]);
  await fsp.mkdir(dir, { recursive: true });
  const C = e.leads.length, L = e.samples, n = e.records.length;
  const used = new Set<string>();
  const plots = e.records.map((r) => {
    let name = safeName(r.id);
    for (let k = 2; used.has(name); k++) name = `${safeName(r.id)}-${k}`;
    used.add(name);
    return `${name}.png`;
  });
  const summary = path.join(dir, 'explain.json');
  const earlier = await fsp.readFile(summary, 'utf8').then((t) => (JSON.parse(t) as { records?: { plot?: unknown }[] }).records ?? [], () => []);
  for (const r of earlier)
    if (typeof r.plot === 'string' && /^[^/\\]+\.png$/.test(r.plot) && !(o.png && plots.includes(r.plot))) await fsp.rm(path.join(dir, r.plot), { force: true });
  const written: string[] = [];
  for (const [file, key] of [['attribution.npy', 'attribution'], ['input.npy', 'input']] as const) {
    const all = new Float32Array(n * C * L);
    e.records.forEach((r, i) => all.set(r[key], i * C * L));
    written.push(path.join(dir, file));
    await writeFileAtomic(written[written.length - 1], writeNpy(all, [n, C, L]));
  }
  const { records, ...meta } = e;
  const json = {
    format: 'ecg-jepa-explanation', version: 1, method: 'integrated gradients, flat-line baseline', ...meta, npy: { attribution: 'attribution.npy', input: 'input.npy' }, shape: [n, C, L],
    records: records.map((r, i) => ({
      id: r.id, target: r.target, output: r.output, value: r.value, baseline: r.baseline, delta: r.delta,
      leadShare: Object.fromEntries(leadShares(e, r).map((s, c) => [e.leads[c], s])),
      patches: patchAttribution(e, r),
      ...(o.png ? { plot: plots[i] } : {}),
    })),
  };
  written.push(summary);
  await writeFileAtomic(summary, JSON.stringify(json) + '\n');
  if (o.png)
    for (let i = 0; i < n; i++) {
      const f = path.join(dir, plots[i]);
      await writeFileAtomic(f, await encodePng(explanationPlot(e, e.records[i])));
      written.push(f);
    }
  return written;
}
