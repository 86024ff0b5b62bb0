// GPU time per kernel from timestamp queries. While a KernelProfiler is attached to a CommandBatch
// (batch.profiler = p), every dispatch runs in its own compute pass whose beginning and end write
// timestamps; at submit the batch resolves them into a buffer that is read back once the GPU is done.
// One pass per dispatch adds a little time of its own, so a profiled run is slower than an
// unprofiled one: use it for where the time goes, not for the total. Needs 'timestamp-query'.

/** Total GPU time of one pipeline (by label) over the profiled dispatches. */
export interface KernelTime {
  kernel: string;
  ms: number;
  count: number;
}

interface Filled {
  set: GPUQuerySet;
  labels: string[];
}

export class KernelProfiler {
  readonly device: GPUDevice;
  private readonly perSet: number;
  private free: GPUQuerySet[] = [];
  private open: Filled | null = null;
  private full: Filled[] = [];
  private resolved: (Filled & { read: GPUBuffer; staging: GPUBuffer })[] = [];
  private reading: Promise<void>[] = [];
  private totals = new Map<string, { ns: number; count: number }>();

  /** `perSet`: dispatches per query set (two queries each; WebGPU allows 4096 queries per set). */
  constructor(device: GPUDevice, perSet = 2048) {
    if (!device.features.has('timestamp-query')) throw new Error(`KernelProfiler: this device lacks the 'timestamp-query' feature`);
    if (!Number.isInteger(perSet) || perSet < 1 || perSet > 2048) throw new RangeError(`KernelProfiler: perSet must be an integer in [1, 2048], got ${perSet}`);
    this.device = device;
    this.perSet = perSet;
  }

  /** Timestamp writes for the pass of the next dispatch, recorded under `label`. */
  passTimestamps(label: string): GPUComputePassTimestampWrites {
    if (this.open?.labels.length === this.perSet) this.closeSet();
    this.open ??= { set: this.free.pop() ?? this.device.createQuerySet({ type: 'timestamp', count: 2 * this.perSet }), labels: [] };
    const i = this.open.labels.length;
    this.open.labels.push(label);
    return { querySet: this.open.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  private closeSet(): void {
    if (this.open) this.full.push(this.open);
    this.open = null;
  }

  /** Records, into the batch's encoder before it is finished, the copies of this batch's timestamps. */
  resolve(encoder: GPUCommandEncoder): void {
    this.closeSet();
    for (const f of this.full) {
      const bytes = f.labels.length * 16;
      const staging = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
      const read = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      encoder.resolveQuerySet(f.set, 0, 2 * f.labels.length, staging, 0);
      encoder.copyBufferToBuffer(staging, 0, read, 0, bytes);
      this.resolved.push({ ...f, read, staging });
    }
    this.full = [];
  }

  /** After the batch's submit: reads the timestamps back when the GPU is done with them. */
  submitted(): void {
    for (const r of this.resolved)
      this.reading.push(
        r.read.mapAsync(GPUMapMode.READ).then(() => {
          const t = new BigUint64Array(r.read.getMappedRange().slice(0));
          r.labels.forEach((label, i) => {
            const e = this.totals.get(label) ?? { ns: 0, count: 0 };
            // a driver may report an end before its beginning: count the dispatch, not a negative time
            e.ns += Math.max(0, Number(t[2 * i + 1] - t[2 * i]));
            e.count++;
            this.totals.set(label, e);
          });
          r.read.unmap();
          r.read.destroy();
          r.staging.destroy();
          this.free.push(r.set);
        }),
      );
    this.resolved = [];
  }

  /** Frees the query sets; call after results(), when nothing profiled is pending. */
  destroy(): void {
    for (const set of this.free.splice(0)) set.destroy();
  }

  /** Every kernel's total so far, slowest first (waits for submitted work to be read back). */
  async results(): Promise<KernelTime[]> {
    const reading = this.reading;
    this.reading = [];
    await Promise.all(reading);
    return [...this.totals].map(([kernel, e]) => ({ kernel, ms: e.ns / 1e6, count: e.count })).sort((a, b) => b.ms - a.ms);
  }
}

/** Totals by kernel family: the label up to its first '_' or '.' (matmul, attention, layernorm, ...). */
export function byFamily(times: KernelTime[]): KernelTime[] {
  const m = new Map<string, KernelTime>();
  for (const t of times) {
    const kernel = t.kernel.split(/[_.]/)[0] || t.kernel;
    const e = m.get(kernel) ?? { kernel, ms: 0, count: 0 };
    e.ms += t.ms;
    e.count += t.count;
    m.set(kernel, e);
  }
  return [...m.values()].sort((a, b) => b.ms - a.ms);
}

/** One submit on the GPU's clock: when its first command began and its last ended (ms). */
export interface SubmitSpan {
  startMs: number;
  endMs: number;
}

/**
 * When each queue submit ran on the GPU, whoever submits (our CommandBatch, or tfjs on the same
 * device): between start() and stop() every queue.submit is wrapped in two tiny command buffers
 * whose empty passes write a timestamp before and after the submitted work. Unlike KernelProfiler
 * the dispatches stay as they are, so a timed loop keeps its speed and its wall time splits into GPU
 * work and GPU idle (waiting for the CPU's next submit). Submits past maxSubmits go untimed.
 * Needs 'timestamp-query'.
 */
export class SubmitTimer {
  readonly device: GPUDevice;
  readonly maxSubmits: number;
  private readonly set: GPUQuerySet;
  // resolveQuerySet writes at 256-byte aligned offsets: one slot per submit
  private readonly resolved: GPUBuffer;
  /** Submits seen since start(), timed or not (past maxSubmits they go untimed). */
  seen = 0;
  private submits = 0;
  private restore: (() => void) | null = null;

  constructor(device: GPUDevice, maxSubmits = 64) {
    if (!device.features.has('timestamp-query')) throw new Error(`SubmitTimer: this device lacks the 'timestamp-query' feature`);
    // two queries per submit, and WebGPU allows 4096 queries per set
    if (!Number.isInteger(maxSubmits) || maxSubmits < 1 || maxSubmits > 2048) throw new RangeError(`SubmitTimer: maxSubmits must be an integer in [1, 2048], got ${maxSubmits}`);
    this.device = device;
    this.maxSubmits = maxSubmits;
    this.set = device.createQuerySet({ type: 'timestamp', count: 2 * maxSubmits });
    this.resolved = device.createBuffer({ size: 256 * maxSubmits, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  }

  /** Times the queue's submits from now until stop(). */
  start(): void {
    if (this.restore) return;
    const queue = this.device.queue;
    const submit = queue.submit;
    queue.submit = (buffers: Iterable<GPUCommandBuffer>) => {
      this.seen++;
      if (this.submits >= this.maxSubmits) return submit.call(queue, buffers);
      const i = this.submits++;
      const open = this.device.createCommandEncoder();
      open.beginComputePass({ timestampWrites: { querySet: this.set, beginningOfPassWriteIndex: 2 * i } }).end();
      const close = this.device.createCommandEncoder();
      close.beginComputePass({ timestampWrites: { querySet: this.set, endOfPassWriteIndex: 2 * i + 1 } }).end();
      close.resolveQuerySet(this.set, 2 * i, 2, this.resolved, 256 * i);
      return submit.call(queue, [open.finish(), ...buffers, close.finish()]);
    };
    this.restore = () => {
      queue.submit = submit;
    };
  }

  stop(): void {
    this.restore?.();
    this.restore = null;
  }

  /** The spans of the timed submits, in order, on a clock whose zero is the first start. Stops and frees the timer. */
  async spans(): Promise<SubmitSpan[]> {
    this.stop();
    const n = this.submits;
    const read = this.device.createBuffer({ size: Math.max(256, 256 * n), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.device.createCommandEncoder();
    if (n > 0) enc.copyBufferToBuffer(this.resolved, 0, read, 0, 256 * n);
    this.device.queue.submit([enc.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const words = new BigUint64Array(read.getMappedRange().slice(0));
    read.unmap();
    [read, this.resolved].forEach((b) => b.destroy());
    this.set.destroy();
    const t0 = words[0];
    const ms = (t: bigint) => Number(t - t0) / 1e6;
    return Array.from({ length: n }, (_, i) => ({ startMs: ms(words[32 * i]), endMs: ms(words[32 * i + 1]) }));
  }
}

/** GPU busy time (the union of the spans: a begin timestamp may be written before the previous
 *  submit has ended) and idle time (from the first start to the last end, the rest), in ms. */
export function busyAndIdle(spans: SubmitSpan[]): { busyMs: number; idleMs: number } {
  let busy = 0, end = -Infinity;
  for (const s of [...spans].sort((a, b) => a.startMs - b.startMs)) {
    busy += Math.max(0, s.endMs - Math.max(s.startMs, end));
    end = Math.max(end, s.endMs);
  }
  const total = spans.length ? Math.max(...spans.map((s) => s.endMs)) - Math.min(...spans.map((s) => s.startMs)) : 0;
  return { busyMs: busy, idleMs: Math.max(0, total - busy) };
}
