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
