// A buffer pool with size classes. Every tensor's storage comes from here, so the live-byte count
// is exact and peak memory is a figure we can report. Size classes (four per power of two) keep
// the free lists few even when shapes vary; a released buffer may be reused by later GPU work in
// the same command batch, but never by a queue.writeBuffer upload before that batch is submitted
// (writeBuffer runs before any unsubmitted encoder). A class hands out its oldest free buffer (lowest
// creation number), so a loop that repeats its allocations (a training step) gets the same buffer in
// each role every time, and the command batch's cached bind groups match: with last-in-first-out the
// free lists came back permuted each step, and 41% of a tiny step's bind groups were made anew even
// with the same mask every step. A request whose class has no free buffer takes a free one of a
// larger class, up to twice the size, released before the open batch: with random masks the
// student's token count, and so many sizes, change every step, and each class kept buffers of its
// own (tiny preset, batch 8, 40 steps: the pool held at most 5.1 MiB for a 3.1 MiB live peak; with
// this 4.0 MiB, for ~5 more bind groups made per step). A loop of fixed shapes then settles on its
// buffers a step later (its third step instead of its second, from an empty pool).

export const STORAGE_USAGE = 0x80 /* STORAGE */ | 0x4 /* COPY_SRC */ | 0x8; /* COPY_DST */

/** The byte size of the class that holds `bytes`: 256 B minimum, then 4 steps per power of two. */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes));
  if (p === bytes) return p;
  const step = p / 4;
  return Math.ceil(bytes / step) * step;
}

interface FreeEntry {
  buffer: GPUBuffer;
  /** Creation number: free lists are kept in this order. */
  id: number;
  /** The batch generation in which it was released. */
  gen: number;
}

export interface PoolStats {
  liveBytes: number;
  liveBuffers: number;
  peakBytes: number;
  pooledBytes: number;
  /** Peak of live + pooled bytes: what the pool held on the device at most. */
  peakHeldBytes: number;
  created: number;
  reused: number;
}

export class BufferPool {
  private free = new Map<number, FreeEntry[]>();
  private sizes = new WeakMap<GPUBuffer, number>();
  private ids = new WeakMap<GPUBuffer, number>();
  /** Incremented at every submit of the owning batch; entries released in the current generation
   *  are not handed to uploads. */
  generation = 0;
  liveBytes = 0;
  liveBuffers = 0;
  peakBytes = 0;
  pooledBytes = 0;
  /** Peak of liveBytes + pooledBytes (since resetPeak): the device memory the pool held at most. */
  peakHeldBytes = 0;
  created = 0;
  reused = 0;

  constructor(readonly device: GPUDevice) {}

  /** A buffer of at least `bytes` bytes. `forUpload`: it will be written by queue.writeBuffer. */
  acquire(bytes: number, forUpload = false): GPUBuffer {
    let cls = sizeClass(bytes);
    let buffer = this.take(cls, (e) => !forUpload || e.gen !== this.generation);
    if (!buffer) {
      // Else a larger one, up to twice the size, released before the open batch (one released in it
      // is likely wanted in its own class again soon, as in a loop of fixed shapes).
      const idle = (e: FreeEntry) => e.gen < this.generation;
      let best = Infinity;
      for (const [c, list] of this.free) if (c > cls && c <= 2 * cls && c < best && list.some(idle)) best = c;
      if (best < Infinity) {
        buffer = this.take(best, idle);
        cls = best;
      }
    }
    if (!buffer) {
      const max = this.device.limits.maxBufferSize;
      if (cls > max) throw new RangeError(`buffer of ${bytes} bytes exceeds this device's maxBufferSize (${max})`);
      buffer = this.device.createBuffer({ size: cls, usage: STORAGE_USAGE });
      this.peakHeldBytes = Math.max(this.peakHeldBytes, this.liveBytes + this.pooledBytes + cls);
      this.sizes.set(buffer, cls);
      this.ids.set(buffer, this.created++);
    }
    this.liveBytes += cls;
    this.liveBuffers++;
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes;
    return buffer;
  }

  /** The oldest free buffer of class cls that passes `ok`, removed from the free list. */
  private take(cls: number, ok: (e: FreeEntry) => boolean): GPUBuffer | undefined {
    const list = this.free.get(cls);
    const i = list ? list.findIndex(ok) : -1;
    if (i < 0) return undefined;
    this.pooledBytes -= cls;
    this.reused++;
    return list!.splice(i, 1)[0].buffer;
  }

  release(buffer: GPUBuffer): void {
    const cls = this.sizes.get(buffer);
    if (cls === undefined) throw new Error('BufferPool.release: buffer does not belong to this pool');
    this.liveBytes -= cls;
    this.liveBuffers--;
    this.pooledBytes += cls;
    let list = this.free.get(cls);
    if (!list) this.free.set(cls, (list = []));
    const id = this.ids.get(buffer)!;
    let at = list.length;
    while (at > 0 && list[at - 1].id > id) at--;
    list.splice(at, 0, { buffer, id, gen: this.generation });
  }

  /** Destroys every pooled (free) buffer. */
  trim(): void {
    for (const list of this.free.values()) for (const e of list) e.buffer.destroy();
    this.free.clear();
    this.pooledBytes = 0;
  }

  resetPeak(): void {
    this.peakBytes = this.liveBytes;
    this.peakHeldBytes = this.liveBytes + this.pooledBytes;
  }

  stats(): PoolStats {
    const { liveBytes, liveBuffers, peakBytes, pooledBytes, peakHeldBytes, created, reused } = this;
    return { liveBytes, liveBuffers, peakBytes, pooledBytes, peakHeldBytes, created, reused };
  }
}
