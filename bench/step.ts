// Whole-model benchmarks (`ecg-jepa bench step|embed [--peer tfjs]`): our full ECG-JEPA training
// step (EcgJepa.trainStep: forward, backward, AdamW, EMA, one submit) and encoder inference,
// against the TensorFlow.js peer (bench/tfjs-jepa.ts) on the same adapter with the same config,
// starting weights, input and masks. Timing: `warmup` untimed steps (compilation), then `steps`
// steps back to back (a step's masks cycle through the warm-up's), one wait for the queue to drain
// at the end, wall-clock / steps.
// Memory: ours = the buffer pool's peak of live bytes during the timed steps (size-class rounded);
// tfjs = tf.profile's peak of live tensor bytes over one extra step, and the bytes its backend
// has allocated on the GPU (tensors + its free pool) after the timed steps.
import { mkdirSync, writeFileSync } from 'node:fs';
import type * as tfjs from '@tensorflow/tfjs';
import type { GpuInfo } from '../engine/device.js';
import type { Engine } from '../engine/engine.js';
import type { Precision } from '../engine/ops/linear.js';
import type { Tensor } from '../engine/tensor.js';
import { Rng } from '../engine/random.js';
import { makeConfig, type EcgJepaConfig } from '../model/config.js';
import { EcgJepa, uploadMicroBatches } from '../model/jepa.js';
import { drawMask, type BatchMask } from '../model/masking.js';
import { matmulTunesSettled } from '../kernels/matmul.js';
import { busyAndIdle, byFamily, KernelProfiler, SubmitTimer, type KernelTime } from '../kernels/profiler.js';
import { gpuChecked, loadTfjs, tfSync } from './harness.js';
import { freshTfjsBackend, tfjsDevice } from './tfjs-backend.js';
import { readJepaWeights, TfJepa } from './tfjs-jepa.js';

type Tf = typeof import('@tensorflow/tfjs');

export interface StepOptions {
  preset: string;
  batch: number;
  /** Our step in micro-batches of this many (EcgJepa.recordStep's parts; it divides the batch). */
  microBatch?: number;
  /** Our step recomputing its block activations in the backward (JepaOptions.recompute). */
  recompute?: boolean;
  /** Our step's drop-path rate (the config's; base trains with 0.1). Default 0: the tfjs peer has none. */
  dropPath?: number;
  /** Timed steps. */
  steps: number;
  /** Untimed steps first (pipeline compilation, pool warm-up). */
  warmup: number;
  peer?: 'tfjs';
  /** The batch tfjs tries first (default: batch), halved on failure; samples/s compares the two. */
  peerBatch?: number;
  seed?: number;
  /** Our matmul input precision (f16 = mixed precision; the tfjs peer always runs f32). */
  precision?: Precision;
  /** A loaded tfjs (else loaded on the engine's GPU object when peer is 'tfjs'). */
  tf?: Tf;
  /** Time each of our kernels over one more step (kernels/profiler.ts). */
  profile?: boolean;
  /** Called with a line as each side's measurement (or a failed tfjs try) ends: tfjs's tries take minutes on a big preset. */
  progress?: (line: string) => void;
}

export interface EmbedOptions {
  preset: string;
  batch: number;
  iters: number;
  warmup?: number;
  peer?: 'tfjs';
  peerBatch?: number;
  seed?: number;
  precision?: Precision;
  tf?: Tf;
  profile?: boolean;
  progress?: (line: string) => void;
}

export interface Measured {
  /** The batch this side ran (tfjs may run a smaller one than asked when the asked one fails). */
  batch: number;
  samplesPerSec: number;
  msPerStep: number;
  /** Of msPerStep, the time the CPU spent recording and submitting (the calls return before the GPU
   *  finishes, so the next call records while the GPU runs this one): near msPerStep = CPU-bound. */
  cpuMsPerStep: number;
  /** GPU dispatches one call runs: ours counted as recorded, tfjs's counted at its backend's
   *  runWebGPUProgram over one more call (tf.profile's kernel list also holds ops that dispatch nothing). */
  kernelsPerStep?: number;
  /** Ours, where the device has timestamps: of msPerStep, the GPU's time from the start to the end of
   *  a step's submit, and its idle time between one submit's end and the next one's start. */
  gpuMsPerStep?: number;
  gpuIdleMsPerStep?: number;
  /** Peak bytes of live tensors. */
  peakBytes: number;
  /** Bytes held on the GPU, free buffers of the side's pool included: ours, the pool's peak over the
   *  timed loop; tfjs, what its WebGPU backend holds after it (its pool never gives memory back). */
  gpuAllocatedBytes?: number;
}

export interface BenchResult {
  kind: 'step' | 'embed';
  preset: string;
  /** Our matmul input precision. */
  precision: Precision;
  batch: number;
  /** Our step's micro-batches, when in parts. */
  microBatch?: number;
  /** Our step recomputed its block activations (when it did). */
  recompute?: boolean;
  /** Our step's drop-path rate, when above 0. */
  dropPath?: number;
  steps: number;
  warmup: number;
  device: GpuInfo;
  ours: Measured;
  tfjs?: Measured;
  /** Batches at which tfjs failed (a GPU error such as out of memory) before the one it ran, or all of them. */
  tfjsFailed?: { batch: number; error: string }[];
  /** Our samples/s over tfjs's (= tfjs ms / our ms at the same batch; > 1: ours is faster); null without a peer. */
  ratio: number | null;
  /** With profile: our GPU time per kernel family and per kernel over one more call. */
  profile?: { families: KernelTime[]; kernels: KernelTime[] };
}

/** The same configuration for both sides; drop-path off unless asked (the peer has none). */
function benchConfig(preset: string, dropPath = 0): EcgJepaConfig {
  return makeConfig(preset, { dropPath });
}

function inputs(cfg: EcgJepaConfig, batch: number, seed: number): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: batch * cfg.leads.length * cfg.patches * cfg.patchSize }, () => r.normal());
}

/**
 * The mask of step i (warm-up steps first), drawn with the configured rule and shared by both
 * sides. The timed steps cycle through the warm-up's masks, so they meet only token counts both
 * sides have met: a long run's steady state. A fresh mask each step measured tfjs compiling: random
 * masks change the student's token count, tfjs builds its programs per shape and pools buffers by
 * exact size, and on an H100 its base step at batch 4 took 4.0 s (3.99 of them CPU) while the
 * card's memory grew ~5 GB a step, until batch 8 ran out of memory.
 */
export function stepMasks(preset: string, batch: number, warmup: number, seed: number): (step: number) => BatchMask {
  const cfg = benchConfig(preset);
  const r = new Rng(seed);
  const m = Array.from({ length: Math.max(1, warmup) }, () => drawMask(r, cfg.mask, batch, cfg.leads.length, cfg.patches));
  return (step) => m[step % m.length];
}

function measured(t: LoopTime, batch: number, peakBytes: number): Measured {
  return { batch, samplesPerSec: (1000 * batch) / t.ms, msPerStep: t.ms, cpuMsPerStep: t.cpuMs, peakBytes };
}

async function tfPeer(engine: Engine, o: { peer?: 'tfjs'; tf?: Tf }): Promise<Tf | null> {
  if (o.peer === undefined) return null;
  if (o.peer !== 'tfjs') throw new Error(`bench: unknown peer '${o.peer}' (only 'tfjs')`);
  return o.tf ?? (await loadTfjs(engine));
}

interface LoopTime {
  /** Wall-clock ms per timed call. */
  ms: number;
  /** ms per timed call spent inside run() (recording and submitting, not waiting for the GPU). */
  cpuMs: number;
}

/** `warmup` untimed calls of run(i), a sync, then `iters` timed ones (i runs on from warmup) and a
 *  sync. beforeTimed runs between the two (after the first sync). */
async function timeLoop(warmup: number, iters: number, run: (i: number) => void, sync: () => Promise<void>, beforeTimed?: () => void): Promise<LoopTime> {
  for (let i = 0; i < warmup; i++) run(i);
  await sync();
  beforeTimed?.();
  let cpu = 0;
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) {
    const c0 = performance.now();
    run(warmup + i);
    cpu += performance.now() - c0;
  }
  await sync();
  return { ms: (performance.now() - t0) / iters, cpuMs: cpu / iters };
}

/** Ours: timeLoop with the pool's peak of live bytes over the timed calls. */
async function measureOurs(engine: Engine, batch: number, warmup: number, iters: number, run: (i: number) => void): Promise<Measured> {
  // Each warm-up call may meet new matmul shape classes (the masks change the student's token count)
  // and start their autotune in the background; until a tune ends its class runs an untuned choice
  // (an H100 step ran the size heuristic's tiles throughout, 'large' where 'wide' is 30 % faster).
  // A long run settles in its first seconds; the timed loop here starts once the warm-up's have.
  for (let i = 0; i < warmup; i++) {
    run(i);
    await engine.sync();
    await matmulTunesSettled(engine.device);
  }
  const timer = engine.device.features.has('timestamp-query') && iters <= 2048 ? new SubmitTimer(engine.device, 2048) : null;
  let t: LoopTime;
  let recorded = 0;
  try {
    t = await timeLoop(0, iters, (i) => run(warmup + i), () => engine.sync(), () => {
      engine.pool.resetPeak();
      timer?.start();
      recorded = engine.batch.dispatchesRecorded;
    });
  } finally {
    timer?.stop();
  }
  const spans = timer ? await timer.spans() : [];
  // (only when every submit of the loop was timed)
  const gpu = timer && timer.seen === spans.length ? busyAndIdle(spans) : null;
  // The GPU's time per step, and its idle time between steps (waiting for the CPU).
  const kernelsPerStep = (engine.batch.dispatchesRecorded - recorded) / iters;
  return { ...measured(t, batch, engine.pool.peakBytes), kernelsPerStep, gpuAllocatedBytes: engine.pool.peakHeldBytes, ...(gpu ? { gpuMsPerStep: gpu.busyMs / iters, gpuIdleMsPerStep: gpu.idleMs / Math.max(1, iters - 1) } : {}) };
}

/** tfjs: timeLoop, then the GPU bytes its backend holds and tf.profile's peak over one more call. */
async function measureTf(tf: Tf, batch: number, warmup: number, iters: number, run: (i: number) => void, once: () => tfjs.Tensor): Promise<Measured> {
  const t = await timeLoop(warmup, iters, run, () => tfSync(tf));
  const gpuAllocatedBytes = (tf.memory() as { numBytesAllocatedInGPU?: number }).numBytesAllocatedInGPU; // tfjs-backend-webgpu's memory() name
  const prof = await countTfDispatches(tf, () => tf.profile(once));
  prof.result.result instanceof tf.Tensor && prof.result.result.dispose();
  return { ...measured(t, batch, prof.result.peakBytes), kernelsPerStep: prof.dispatches, gpuAllocatedBytes };
}

/** `fn`'s result and the GPU programs tfjs's WebGPU backend dispatched while it ran. */
async function countTfDispatches<T>(tf: Tf, fn: () => Promise<T>): Promise<{ result: T; dispatches: number }> {
  const backend = tf.backend() as unknown as { runWebGPUProgram: (...args: unknown[]) => unknown };
  const own = Object.prototype.hasOwnProperty.call(backend, 'runWebGPUProgram');
  const real = backend.runWebGPUProgram;
  let dispatches = 0;
  backend.runWebGPUProgram = function (this: unknown, ...args: unknown[]) {
    dispatches++;
    return real.apply(this, args);
  };
  try {
    return { result: await fn(), dispatches };
  } finally {
    if (own) backend.runWebGPUProgram = real;
    else delete (backend as Partial<typeof backend>).runWebGPUProgram;
  }
}

function checkCounts(o: { batch: number; steps?: number; iters?: number; warmup?: number; peerBatch?: number; microBatch?: number }): void {
  if (o.peerBatch !== undefined && o.peerBatch > o.batch) throw new RangeError(`bench: peerBatch (${o.peerBatch}) must not exceed batch (${o.batch}): the peer runs on the first samples of our input`);
  // warmup ≥ 1 too: the first call compiles shaders (and tfjs always gets one checked untimed call)
  for (const [k, v] of Object.entries(o)) if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new RangeError(`bench: ${k} must be a positive integer, got ${v}`);
}

/** The shared frame of both benchmarks: one model and input (and the peer built from the model's
 *  initial weights, with the same input), our loop measured, then the peer's (each try of it on a
 *  new peer, after a failed one on a new tfjs backend). */
async function sideBySide(
  engine: Engine,
  kind: BenchResult['kind'],
  o: { preset: string; batch: number; microBatch?: number; recompute?: boolean; dropPath?: number; peer?: 'tfjs'; peerBatch?: number; seed?: number; precision?: Precision; tf?: Tf; profile?: boolean; progress?: (line: string) => void },
  warmup: number,
  iters: number,
  ours: (model: EcgJepa, x: Tensor[]) => (i: number) => void,
  theirs: (peer: TfJepa, xt: tfjs.Tensor, batch: number) => { run: (i: number) => void; once: () => tfjs.Tensor },
): Promise<BenchResult> {
  const cfg = benchConfig(o.preset, o.dropPath);
  const seed = o.seed ?? 0;
  const B = o.batch;
  const shape = [B, cfg.leads.length, cfg.patches * cfg.patchSize];
  const xv = inputs(cfg, B, seed + 1);
  const tf = await tfPeer(engine, o);
  const precision = o.precision ?? 'f32';
  // f16 as pretrain trains it: with the dynamic loss scale (its overflow check and update included)
  const model = new EcgJepa(engine, cfg, { seed, precision, lossScale: precision === 'f16' ? 'dynamic' : 1, recompute: !!o.recompute });
  // The peer starts from our initial weights, read back before we train and kept on the CPU: each
  // tfjs try builds its own peer from them, so a failed try cannot hand on its weights.
  const initial = tf ? await readJepaWeights(model) : null;
  // our input whole, or in micro-batches as pretrain uploads them
  const mb = o.microBatch ?? B;
  const x = uploadMicroBatches(engine, xv, [B, shape[1], shape[2]], mb);
  let mine: Measured;
  let profile: BenchResult['profile'];
  try {
    const run = ours(model, x);
    mine = await gpuChecked(engine.device, () => measureOurs(engine, B, warmup, iters, run));
    o.progress?.(measuredLine(kind, 'ours', mine));
    if (o.profile) profile = await profileOnce(engine, () => run(warmup + iters));
  } finally {
    x.forEach((t) => t.dispose());
    model.dispose();
    await engine.sync();
    // Everything we hold goes back to the GPU before the peer runs: its memory is then the card's.
    await matmulTunesSettled(engine.device);
    await engine.releaseMemory();
  }
  let peers: Measured | undefined;
  let failed: { batch: number; error: string }[] = [];
  if (tf && initial) {
    // tfjs keeps every intermediate of its composed step, so the asked batch may not fit where ours
    // does: a GPU error (out of memory) is caught and the batch halved, a batch that runs is doubled
    // while it fits (fitBatch), and the comparison is then by samples/s at tfjs's best batch.
    // Without the error scopes WebGPU would only log it and the time would be meaningless.
    // A failed try poisons tfjs (bench/tfjs-backend.ts): each try gets a new peer, and after a
    // failure the backend is replaced (only its pool emptied if the caller holds tfjs tensors).
    const outside = tf.memory().numTensors;
    ({ result: peers, failed } = await fitBatch(
      o.peerBatch ?? B,
      B,
      async (b) => {
        const device = tfjsDevice(tf);
        const peer = new TfJepa(tf, cfg, initial);
        const xt = tf.tensor(xv.subarray(0, b * shape[1] * shape[2]), [b, shape[1], shape[2]]);
        try {
          // The weights and optimizer state on the GPU first: if they do not fit, that is the error.
          try {
            await gpuChecked(device, async () => {
              peer.upload();
              await tfSync(tf);
            });
          } catch (e) {
            throw new Error(`uploading the peer's weights and optimizer state: ${(e as Error).message}`);
          }
          const t = theirs(peer, xt, b);
          // One checked call first: a batch that does not fit fails after one step, not after all of them.
          await gpuChecked(device, async () => {
            t.once().dispose();
            await tfSync(tf);
          });
          const m = await gpuChecked(device, () => measureTf(tf, b, warmup, iters, t.run, t.once));
          o.progress?.(measuredLine(kind, `tfjs (batch ${b})`, m));
          return m;
        } finally {
          xt.dispose();
          peer.dispose();
        }
      },
      (m) => m.samplesPerSec,
      (failure) => {
        // What tfjs still holds after the try disposed its peer: the diagnosis if the next try fails too.
        // Its byte counter adds every buffer it asked for, those whose allocation failed included.
        const mem = tf.memory() as { numTensors: number; numBytesAllocatedInGPU?: number };
        failure.error += ` [after it tfjs held ${mem.numTensors} tensors and counted ${((mem.numBytesAllocatedInGPU ?? 0) / 2 ** 20).toFixed(0)} MiB as allocated]`;
        o.progress?.(failedLine(failure));
        return freshTfjsBackend(tf, outside);
      },
    ));
  }
  return {
    kind, preset: o.preset, precision, batch: B, ...(mb < B ? { microBatch: mb } : {}), ...(o.recompute ? { recompute: true } : {}), ...(o.dropPath ? { dropPath: o.dropPath } : {}), steps: iters, warmup, device: engine.gpu.info, ours: mine, tfjs: peers,
    ...(failed.length ? { tfjsFailed: failed } : {}),
    ratio: peers ? mine.samplesPerSec / peers.samplesPerSec : null,
    ...(profile ? { profile } : {}),
  };
}

/** One more call with every dispatch timed (each in its own pass, so the sum exceeds an unprofiled call). */
async function profileOnce(engine: Engine, call: () => void): Promise<NonNullable<BenchResult['profile']>> {
  const prof = new KernelProfiler(engine.device);
  engine.batch.profiler = prof;
  try {
    await gpuChecked(engine.device, async () => {
      call();
      await engine.sync();
    });
  } finally {
    engine.batch.profiler = null;
  }
  const kernels = await prof.results();
  return { families: byFamily(kernels), kernels };
}

/**
 * The batch the peer runs at: attempt(start), halved while it rejects (down to 1); after the first
 * success, doubled while the batch stays within `max` and below any that failed. Resolves to the
 * try with the best score (the peer's samples/s), and every rejection (first line of its message),
 * each followed by afterFailure with that record (awaited; it may add to the record). Growing stops
 * at the first failure: on an H100 a tfjs try that ran out of memory left the card full (81 of 81 GB by
 * nvidia-smi) after its backend was replaced, and every smaller try then failed to upload 1.4 GB.
 */
export async function fitBatch<T>(
  start: number,
  max: number,
  attempt: (batch: number) => Promise<T>,
  score: (result: T) => number,
  afterFailure: (failure: { batch: number; error: string }) => unknown = () => {},
): Promise<{ result?: T; failed: { batch: number; error: string }[] }> {
  const failed: { batch: number; error: string }[] = [];
  let best: T | undefined;
  // growing never retries a batch that has failed (the halving's): it would not fit now either
  const untried = (b: number) => best === undefined || failed.every((f) => f.batch > b);
  for (let b = start; b >= 1 && b <= max && untried(b); b = best === undefined ? Math.floor(b / 2) : 2 * b) {
    try {
      const r = await attempt(b);
      if (best === undefined || score(r) > score(best)) best = r;
    } catch (e) {
      const failure = { batch: b, error: (e as Error).message.split('\n')[0] };
      failed.push(failure);
      await afterFailure(failure);
      if (best !== undefined) break;
    }
  }
  return { result: best, failed };
}

/** Training-step throughput: ours, and tfjs's composed step when o.peer is 'tfjs'. */
export async function benchStep(engine: Engine, o: StepOptions): Promise<BenchResult> {
  checkCounts({ batch: o.batch, steps: o.steps, warmup: o.warmup, peerBatch: o.peerBatch, microBatch: o.microBatch });
  if (o.microBatch !== undefined && o.batch % o.microBatch) throw new RangeError(`bench: microBatch (${o.microBatch}) must divide batch (${o.batch})`);
  if (o.dropPath && o.peer) throw new RangeError(`bench: the tfjs peer has no drop-path; compare it with drop-path 0, not ${o.dropPath}`);
  const mk = (b: number) => stepMasks(o.preset, b, o.warmup, (o.seed ?? 0) + 2);
  const ourMasks = mk(o.batch);
  return sideBySide(
    engine, 'step', o, o.warmup, o.steps,
    (model, x) => (i) => model.trainStep(x, ourMasks(i)).dispose(),
    (peer, xt, b) => {
      // the same masks when the batch is the same; a smaller batch draws its own
      const m = b === o.batch ? ourMasks : mk(b);
      return { run: (i) => peer.trainStep(xt, m(i)).dispose(), once: () => peer.trainStep(xt, m(o.warmup + o.steps)) };
    },
  );
}

/** Encoder inference throughput (mean-pooled representation of every token), ECGs/s. */
export async function benchEmbed(engine: Engine, o: EmbedOptions): Promise<BenchResult> {
  const warmup = o.warmup ?? 2;
  checkCounts({ batch: o.batch, iters: o.iters, warmup, peerBatch: o.peerBatch });
  return sideBySide(
    engine, 'embed', o, warmup, o.iters,
    // One submit per batch of ECGs, as a serving loop would do.
    (model, [x]) => () => {
      model.representation(x).dispose();
      engine.flush();
    },
    (peer, xt) => {
      const once = () => peer.tf.tidy(() => peer.representation(xt));
      return { run: () => once().dispose(), once };
    },
  );
}

/** The PyTorch anchor (../shared/docs/webgpu-notes.md): an ECG-JEPA-style pretraining step of the
 *  base model at batch 64 on an H100, 302.2 ms in fp32 (212 samples/s), 112.8 ms with TF32 (567),
 *  202.4 ms with AMP (fp16 autocast + GradScaler, 316). */
export const PYTORCH_STEP_H100 = { preset: 'base', batch: 64, fp32: 212, tf32: 567, amp: 316 } as const;

/** One side's measurement, one line. */
function measuredLine(kind: BenchResult['kind'], who: string, m: Measured): string {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  return `${who.padEnd(5)} ${m.msPerStep.toFixed(2).padStart(9)} ms/${kind === 'step' ? 'step' : 'batch'} (CPU ${m.cpuMsPerStep.toFixed(1)}${m.gpuMsPerStep !== undefined ? `, GPU ${m.gpuMsPerStep.toFixed(1)} + idle ${m.gpuIdleMsPerStep!.toFixed(1)}` : ''})  ${m.samplesPerSec.toFixed(1).padStart(9)} ${kind === 'step' ? 'samples/s' : 'ECGs/s'}${m.kernelsPerStep !== undefined ? `  ${Math.round(m.kernelsPerStep)} kernels` : ''}  peak ${mib(m.peakBytes)}${m.gpuAllocatedBytes !== undefined ? ` (held on the GPU ${mib(m.gpuAllocatedBytes)})` : ''}`;
}

const failedLine = (f: { batch: number; error: string }) => `tfjs  failed at batch ${f.batch}: ${f.error}`;

/** A few lines for the terminal. */
export function formatBench(r: BenchResult): string {
  return [
    `${r.kind} preset ${r.preset}, ${r.precision}, batch ${r.batch}${r.microBatch ? ` in micro-batches of ${r.microBatch}` : ''}${r.recompute ? ', activations recomputed' : ''}${r.dropPath ? `, drop-path ${r.dropPath}` : ''}, ${r.steps} timed after ${r.warmup} warm-up, on ${r.device.vendor} / ${r.device.device}`,
    measuredLine(r.kind, 'ours', r.ours),
    ...(r.tfjsFailed ?? []).map(failedLine),
    ...(r.tfjs
      ? [
          measuredLine(r.kind, r.tfjs.batch === r.batch ? 'tfjs' : `tfjs (batch ${r.tfjs.batch})`, r.tfjs),
          `ratio (${r.tfjs.batch === r.batch ? 'tfjs ms / ours ms' : 'our samples/s / tfjs samples/s'}): ${r.ratio!.toFixed(2)}x`,
        ]
      : []),
    ...(r.kind === 'step' && r.preset === PYTORCH_STEP_H100.preset && r.batch === PYTORCH_STEP_H100.batch ? [pytorchLine(r)] : []),
    ...(r.profile ? profileLines(r.profile) : []),
  ].join('\n');
}

/** GPU time by kernel family and the slowest kernels of the profiled call. */
function profileLines(p: NonNullable<BenchResult['profile']>): string[] {
  const total = p.families.reduce((s, f) => s + f.ms, 0);
  const row = (t: KernelTime) => `  ${t.kernel.padEnd(40)} ${t.ms.toFixed(3).padStart(10)} ms ${((100 * t.ms) / Math.max(total, 1e-12)).toFixed(1).padStart(5)}%  ×${t.count}`;
  return [
    `GPU time of one more call, each dispatch in its own timestamped pass: ${total.toFixed(2)} ms`,
    ...p.families.map(row),
    'slowest kernels:',
    ...p.kernels.slice(0, 10).map(row),
  ];
}

/** Ours (and tfjs) against the PyTorch anchor; only comparable as a speed when this GPU is an H100. */
function pytorchLine(r: BenchResult): string {
  const { fp32, tf32, amp } = PYTORCH_STEP_H100;
  const of = (m: Measured, base: number) => `${((100 * m.samplesPerSec) / base).toFixed(0)}%`;
  // our mixed precision against its mixed precision; tfjs runs fp32
  const ours = r.precision === 'f16' ? `${of(r.ours, amp)} of its AMP` : `${of(r.ours, fp32)} of its fp32`;
  return `PyTorch on an H100, same step: ${fp32} samples/s fp32, ${tf32} TF32, ${amp} AMP; ours = ${ours}${r.tfjs ? `, tfjs = ${of(r.tfjs, fp32)} of its fp32` : ''}` +
    `${/h100/i.test(r.device.device) ? '' : ' (this GPU is not an H100: a placement, not a speed-up)'}`;
}

/** Writes the result with date, device and the command to bench/results/; returns the path. */
export function saveBench(r: BenchResult, command: string, dir = 'bench/results'): string {
  const date = new Date().toISOString();
  const dev = (r.device.device || r.device.description || 'unknown').replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase();
  // the variants of our step in the name, so that one does not overwrite the plain step's file
  const variant = `${r.microBatch ? `-mb${r.microBatch}` : ''}${r.recompute ? '-recompute' : ''}${r.dropPath ? `-dp${r.dropPath}` : ''}`;
  const file = `${dir}/${r.kind}-${r.preset}-b${r.batch}${r.precision === 'f32' ? '' : `-${r.precision}`}${variant}-${dev}-${date.slice(0, 10)}.json`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, JSON.stringify({ date, command, ...r }, null, 2) + '\n');
  return file;
}
