// The engine: a device, its buffer pool and the open command batch. Everything the layers above
// do goes through here: create tensors, record kernels into the batch, submit once per step,
// read back rarely.
import { checkSubgroupMatrices } from '../kernels/matmul.js';
import { CommandBatch, releaseDestroyed } from '../kernels/runtime.js';
import { requestGpu, type DeviceOptions, type Gpu } from './device.js';
import { BufferPool } from './pool.js';
import { DTYPE_BYTES, shapeSize, Storage, Tensor, type DType } from './tensor.js';

type TypedArray = Float32Array | Uint32Array | Int32Array | Uint16Array;

/** Anything a scope may return: tensors inside plain arrays or objects are kept alive. */
type Kept = unknown;

export class Engine {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly batch: CommandBatch;
  private scopes: Set<Tensor>[] = [];

  constructor(readonly gpu: Gpu) {
    this.device = gpu.device;
    this.pool = new BufferPool(this.device);
    this.batch = new CommandBatch(this.device);
  }

  static async create(opts?: DeviceOptions): Promise<Engine> {
    const gpu = await requestGpu(opts);
    // f16 products take the subgroup-matrix kernels once those pass their checks here, and these add in
    // another order than the tiled ones: settled before any work, results never depend on when they pass
    await checkSubgroupMatrices(gpu.device);
    return new Engine(gpu);
  }

  /** Registers a tensor made outside engine.empty (e.g. a view) with the innermost scope. */
  track(t: Tensor): Tensor {
    this.scopes[this.scopes.length - 1]?.add(t);
    return t;
  }

  /** A tensor with undefined contents. */
  empty(shape: readonly number[], dtype: DType = 'f32', forUpload = false): Tensor {
    const bytes = Math.max(4, shapeSize(shape) * DTYPE_BYTES[dtype]);
    const storage = new Storage(this.pool, this.pool.acquire(bytes, forUpload), bytes);
    return this.track(new Tensor(storage, shape, dtype));
  }

  zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const t = this.empty(shape, dtype);
    this.batch.clear(t.buffer, 0, Math.ceil(t.bytes / 4) * 4);
    return t;
  }

  /** Uploads `data` (f32 -> Float32Array, f16 -> Uint16Array of half bits, u32/i32 likewise; a
   *  number[] for f32, u32 or i32). */
  upload(data: TypedArray | number[], shape: readonly number[] = [data.length], dtype: DType = 'f32'): Tensor {
    const n = shapeSize(shape);
    if (data.length !== n) throw new RangeError(`upload: ${data.length} values for shape [${shape}] (${n})`);
    // the bytes go up as they are: an array of another kind would be reinterpreted, not converted
    const kind = { f32: Float32Array, f16: Uint16Array, u32: Uint32Array, i32: Int32Array }[dtype];
    if (Array.isArray(data) ? dtype === 'f16' : !(data instanceof kind))
      throw new TypeError(`upload: a ${dtype} tensor takes a ${kind.name}${dtype === 'f16' ? ' of half bits' : ' or a number[]'}, got ${Array.isArray(data) ? 'a number[]' : data.constructor.name}`);
    const arr = Array.isArray(data) ? (dtype === 'u32' ? Uint32Array.from(data) : dtype === 'i32' ? Int32Array.from(data) : Float32Array.from(data)) : data;
    const t = this.empty(shape, dtype, true);
    const bytes = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
    if (bytes.byteLength % 4 === 0) this.device.queue.writeBuffer(t.buffer, 0, bytes);
    else {
      const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
      padded.set(bytes);
      this.device.queue.writeBuffer(t.buffer, 0, padded);
    }
    return t;
  }

  /** Submits everything recorded so far. */
  flush(): void {
    this.batch.submit();
    this.pool.generation++;
  }

  /** Reads a tensor back (submits the open batch first). */
  async readRaw(t: Tensor): Promise<ArrayBuffer> {
    const bytes = Math.ceil(t.bytes / 4) * 4;
    const source = t.buffer; // a disposed tensor throws here, before anything is made
    const staging = this.device.createBuffer({ size: Math.max(4, bytes), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      if (bytes > 0) this.batch.copy(source, 0, staging, 0, bytes);
      this.flush();
      try {
        await staging.mapAsync(GPUMapMode.READ);
      } catch (e) {
        throw this.gpu.lostError() ?? e;
      }
      const out = staging.getMappedRange().slice(0, t.bytes);
      staging.unmap();
      return out;
    } finally {
      staging.destroy();
    }
  }

  async read(t: Tensor): Promise<Float32Array> {
    if (t.dtype !== 'f32') throw new TypeError(`read: tensor is ${t.dtype}; use readRaw`);
    return new Float32Array(await this.readRaw(t));
  }

  /** Waits until the GPU finished all submitted work. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    const lost = this.gpu.lostError();
    if (lost) throw lost;
  }

  /** Destroys the pool's free buffers and waits until their memory is the driver's again (before
   *  another user of the device, e.g. a tfjs peer, allocates). */
  async releaseMemory(): Promise<void> {
    await this.sync();
    this.pool.trim();
    await releaseDestroyed(this.device);
  }

  /**
   * Runs `fn`, then disposes every tensor created inside it except those in its result (a tensor,
   * or tensors inside arrays/objects). Like tf.tidy; nests. `fn` must be synchronous.
   */
  scope<T extends Kept>(fn: () => T): T {
    const set = new Set<Tensor>();
    this.scopes.push(set);
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.scopes.pop();
      for (const t of set) t.dispose();
      throw e;
    }
    this.scopes.pop();
    const keep = new Set<Tensor>();
    collectTensors(result, keep);
    for (const t of set) if (!keep.has(t)) t.dispose();
    for (const t of keep) if (set.has(t)) this.track(t);
    return result;
  }

  close(): void {
    this.pool.trim();
    this.gpu.close();
  }
}

function collectTensors(v: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 4 || v === null || typeof v !== 'object') return;
  if (v instanceof Tensor) out.add(v);
  else if (Array.isArray(v)) for (const x of v) collectTensors(x, out, depth + 1);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collectTensors(x, out, depth + 1);
}
