// Kernel benchmarks: each case runs our kernel and TensorFlow.js's equivalent (tfjs-backend-webgpu)
// in the same process, on the same adapter, timed the same way: `reps` runs back to back, submitted
// in chunks (so the GPU works while the CPU records the next ones), and where the device has
// timestamps, the GPU's busy time over those submits / reps (kernels/profiler.ts SubmitTimer; tfjs's
// submits are timed the same way on its device). Without timestamps: wall-clock / reps. Wall-clock
// over runs recorded before one submit counted the CPU's recording too: on an H100 a GELU forward
// timed 0.089 ms in one run and 0.253 ms in another that way.
// Prints GFLOP/s or GB/s and the ratio.
import type { Engine } from '../engine/engine.js';
import { busyAndIdle, SubmitTimer } from '../kernels/profiler.js';
import { defaultWarmMs, warmClocks } from './clocks.js';

export interface Runner {
  /** Records one run into engine.batch (no submit). */
  run(): void;
  dispose(): void;
  /** Awaited before timing (e.g. autotuning); resolves to a note for the row (e.g. the chosen config). */
  ready?: Promise<string | undefined>;
}
export interface TfRunner {
  /** One run; returns the result tensor(s), which the harness disposes. */
  run(): any;
  dispose(): void;
}
export interface KernelCase {
  name: string;
  /** FLOPs per run (GFLOP/s column). */
  flops?: number;
  /** Bytes moved per run (GB/s column), for bandwidth-bound kernels. */
  bytes?: number;
  ours(engine: Engine): Runner;
  /** The same computation in tfjs; absent where tfjs has none (f16 casts: no float16 dtype). */
  tfjs?(tf: typeof import('@tensorflow/tfjs')): TfRunner;
}
export type Scale = 'ci' | 'full';

export interface BenchRow {
  name: string;
  ours_ms: number;
  tfjs_ms: number | null;
  /** tfjs time / our time: > 1 means ours is faster. */
  ratio: number | null;
  unit: 'GFLOP/s' | 'GB/s' | null;
  ours_rate: number | null;
  tfjs_rate: number | null;
  reps: number;
  /** What the case chose on this device (matmul: its tile config). */
  note?: string;
  /** How both sides were timed: the GPU's busy time (timestamps), or wall-clock. */
  timing: 'gpu' | 'wall';
  /** The busy GPU time (ms of arithmetic) before each side's rounds, to raise its clock (bench/clocks.ts). */
  warm_ms: number;
  /** Bandwidth rows: our GB/s over the copy kernel's in the same run (set after all cases ran). */
  of_copy?: number;
}

type Tf = typeof import('@tensorflow/tfjs');

/** Loads tfjs with its WebGPU backend on the engine's GPU object (navigator.gpu must exist before
 *  the backend module is imported: it registers itself at import time only if it sees WebGPU). */
export async function loadTfjs(engine: Engine): Promise<Tf> {
  const nav = (globalThis as any).navigator;
  if (!nav?.gpu) Object.defineProperty(nav ?? globalThis, nav ? 'gpu' : 'navigator', nav ? { value: engine.gpu.gpu, configurable: true } : { value: { gpu: engine.gpu.gpu }, configurable: true });
  let tf: Tf;
  try {
    tf = await import('@tensorflow/tfjs');
    await import('@tensorflow/tfjs-backend-webgpu');
  } catch (e) {
    // optional peers of the package: a checkout has them (devDependencies), an installed package may not
    if ((e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND')
      throw new Error(`the tfjs peer needs @tensorflow/tfjs and @tensorflow/tfjs-backend-webgpu: npm install @tensorflow/tfjs@4 @tensorflow/tfjs-backend-webgpu@4 (${(e as Error).message.split('\n')[0]})`);
    throw e;
  }
  if (!(await tf.setBackend('webgpu'))) throw new Error('tfjs: the webgpu backend failed to initialise');
  await tf.ready();
  return tf;
}

/** Ends tfjs's open compute pass, submits what it recorded and waits for the queue. */
export async function tfSync(tf: Tf): Promise<void> {
  const backend = tf.backend() as any;
  // tfjs keeps a compute pass open across ops: end it, then submit what it recorded.
  backend.endComputePassEncoder();
  if (backend.commandEncoder) backend.submitQueue();
  await backend.device.queue.onSubmittedWorkDone();
}

function disposeResult(tf: Tf, r: any): void {
  if (Array.isArray(r)) r.forEach((t) => t?.dispose?.());
  else r?.dispose?.();
}

/** Picks a rep count so one timed round takes about `targetMs`. */
function repsFor(ms: number, targetMs: number): number {
  return Math.max(1, Math.min(2000, Math.round(targetMs / Math.max(ms, 1e-3))));
}

/** Runs fn inside GPU error scopes: a validation or out-of-memory error (which WebGPU would only
 *  log, skipping the work and leaving an impossible time) becomes a thrown error. */
export async function gpuChecked<T>(device: GPUDevice, fn: () => Promise<T>): Promise<T> {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let result: T | undefined, thrown: unknown;
  try {
    result = await fn();
  } catch (e) {
    thrown = e;
  }
  const errors = [await device.popErrorScope(), await device.popErrorScope()].filter((e) => e !== null);
  if (thrown) throw thrown;
  if (errors.length) throw new Error(`GPU error: ${errors.map((e) => e!.message.split('\n')[0]).join('; ')}`);
  return result!;
}

/** Times case `c`, ours and (with `tf`) tfjs's; each side's rounds start after `warmMs` of busy GPU
 *  (bench/clocks.ts; default: 300 ms on a GPU, none on a CPU adapter). */
export function runCase(engine: Engine, tf: Tf | null, c: KernelCase, targetMs: number, warmMs = defaultWarmMs(engine.device)): Promise<BenchRow> {
  const warm = () => warmClocks(engine.device, warmMs);
  return gpuChecked(engine.device, async () => ({ ...(await timeCase(engine, tf, c, targetMs, warm)), warm_ms: warmMs }));
}

/** Runs per submit while timing: tfjs submits every 15 dispatches by default. */
const RUNS_PER_SUBMIT = 16;
/** Submits one timed round may make (each gets a timestamp pair). */
const MAX_TIMED_SUBMITS = 2048;

interface Timed {
  /** Per run: the GPU's busy time with a timer, else wall-clock. */
  ms: number;
  /** Per run: wall-clock (the CPU's recording included). */
  wallMs: number;
  /** Submits per run (ours: a flush every RUNS_PER_SUBMIT runs; tfjs: whatever it does). */
  submitsPerRun: number;
}

async function timeRuns(device: GPUDevice, gpu: boolean, n: number, run: (i: number) => void, flush: () => void, sync: () => Promise<void>): Promise<Timed> {
  const timer = gpu ? new SubmitTimer(device, MAX_TIMED_SUBMITS) : null;
  timer?.start();
  const t0 = performance.now();
  try {
    for (let i = 0; i < n; i++) {
      run(i);
      if ((i + 1) % RUNS_PER_SUBMIT === 0) flush();
    }
    await sync();
  } finally {
    timer?.stop();
  }
  const wall = (performance.now() - t0) / n;
  if (!timer) return { ms: wall, wallMs: wall, submitsPerRun: 0 };
  const spans = await timer.spans();
  // Untimed submits would hide GPU work: bestOf sizes the rounds so that none are.
  if (timer.seen > spans.length) throw new Error(`bench: ${timer.seen} submits in a timed round, over the ${MAX_TIMED_SUBMITS} the timer can time`);
  return { ms: busyAndIdle(spans).busyMs / n, wallMs: wall, submitsPerRun: timer.seen / n };
}

/** The first timing includes compilation; then the GPU's clock is raised (`warm`); the next timing
 *  picks the reps (a round about targetMs long by the wall clock, and within the timer's submits); the
 *  best of two rounds counts. Reps by GPU time alone made rounds of cheap kernels whose CPU recording
 *  took seconds: a tfjs op costs far more CPU than GPU, and on an H100 seven kernel cases took 90 s. */
async function bestOf(targetMs: number, warm: () => Promise<void>, time: (n: number) => Promise<Timed>): Promise<{ ms: number; reps: number }> {
  await time(1);
  await warm();
  const probe = await time(1);
  const reps = Math.max(1, Math.min(repsFor(Math.max(probe.ms, probe.wallMs), targetMs), Math.floor((MAX_TIMED_SUBMITS - 2) / Math.max(1, probe.submitsPerRun))));
  return { ms: Math.min((await time(reps)).ms, (await time(reps)).ms), reps };
}

async function timeCase(engine: Engine, tf: Tf | null, c: KernelCase, targetMs: number, warm: () => Promise<void>): Promise<Omit<BenchRow, 'warm_ms'>> {
  const gpu = engine.device.features.has('timestamp-query');
  const tfDevice = tf ? ((tf.backend() as unknown as { device: GPUDevice }).device) : null;
  const timing = gpu && (!tfDevice || tfDevice.features.has('timestamp-query')) ? 'gpu' : 'wall';
  const ours = c.ours(engine);
  let mine: { ms: number; reps: number };
  let note: string | undefined;
  try {
    note = await ours.ready;
    mine = await bestOf(targetMs, warm, (n) => timeRuns(engine.device, timing === 'gpu', n, () => ours.run(), () => engine.batch.submit(), () => engine.sync()));
  } finally {
    ours.dispose();
    await engine.sync();
  }
  let tfjsMs: number | null = null;
  if (tf && tfDevice && c.tfjs) {
    const peer = c.tfjs(tf);
    try {
      const run = () => disposeResult(tf, tf.tidy(() => peer.run()));
      // tfjs submits by itself as it records; on its own device, so its GPU errors are caught there (a
      // dropped submit would otherwise read as a fast one)
      tfjsMs = (await gpuChecked(tfDevice, () => bestOf(targetMs, warm, (n) => timeRuns(tfDevice, timing === 'gpu', n, run, () => {}, () => tfSync(tf))))).ms;
      if (!(tfjsMs > 0)) throw new Error(`tfjs's time came out as ${tfjsMs} ms`);
    } finally {
      peer.dispose();
    }
  }
  const oursMs = mine.ms, reps = mine.reps;
  const unit = c.flops ? 'GFLOP/s' : c.bytes ? 'GB/s' : null;
  const work = c.flops ?? c.bytes ?? 0;
  const rate = (ms: number | null) => (unit && ms ? work / (ms * 1e6) : null);
  return {
    name: c.name,
    ours_ms: oursMs,
    tfjs_ms: tfjsMs,
    ratio: tfjsMs ? tfjsMs / oursMs : null,
    unit,
    ours_rate: rate(oursMs),
    tfjs_rate: rate(tfjsMs),
    reps,
    ...(note ? { note } : {}),
    timing,
  };
}

export function formatRows(rows: BenchRow[]): string {
  const f = (x: number | null, d = 3) => (x === null ? '-' : x >= 100 ? x.toFixed(1) : x.toPrecision(d));
  const copyColumn = rows.some((r) => r.of_copy !== undefined);
  const head = ['kernel', 'ours ms', 'tfjs ms', 'ours rate', 'tfjs rate', 'unit', 'ratio', ...(copyColumn ? ['of copy'] : [])];
  const body = rows.map((r) => [
    r.note ? `${r.name} [${r.note}]` : r.name, f(r.ours_ms), f(r.tfjs_ms), f(r.ours_rate), f(r.tfjs_rate), r.unit ?? '', r.ratio === null ? '-' : `${r.ratio.toFixed(2)}x`,
    ...(copyColumn ? [r.of_copy === undefined ? '' : `${Math.round(100 * r.of_copy)}%`] : []),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...body.map(line)].join('\n');
}
