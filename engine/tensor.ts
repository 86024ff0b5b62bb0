// Tensor = a pooled GPUBuffer + shape + dtype. Views (reshape) share the storage, which goes back
// to the pool when its last tensor is disposed.
import type { BufferPool } from './pool.js';

export type DType = 'f32' | 'f16' | 'u32' | 'i32';

export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f16: 2, u32: 4, i32: 4 };

/** A float tensor's type as kernels name it: 'f16', or 'f32' for every other dtype. */
export const floatType = (t: { dtype: DType }): 'f32' | 'f16' => (t.dtype === 'f16' ? 'f16' : 'f32');

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`bad dimension ${d} in shape [${shape}]`);
    n *= d;
  }
  return n;
}

export class Storage {
  refs = 1;
  constructor(readonly pool: BufferPool, readonly buffer: GPUBuffer, readonly bytes: number) {}
  retain(): this {
    // storage back in the pool may already be another tensor's: reviving it would free it twice
    if (this.refs <= 0) throw new Error('Storage retained after its last release');
    this.refs++;
    return this;
  }
  release(): void {
    if (--this.refs === 0) this.pool.release(this.buffer);
    else if (this.refs < 0) throw new Error('Storage released twice');
  }
}

export class Tensor {
  readonly size: number;
  private disposed = false;

  constructor(
    readonly storage: Storage,
    readonly shape: readonly number[],
    readonly dtype: DType = 'f32',
  ) {
    this.size = shapeSize(shape);
    if (this.size * DTYPE_BYTES[dtype] > storage.bytes)
      throw new RangeError(`shape [${shape}] ${dtype} needs ${this.size * DTYPE_BYTES[dtype]} bytes; storage has ${storage.bytes}`);
  }

  get buffer(): GPUBuffer {
    if (this.disposed) throw new Error(`use of a disposed tensor [${this.shape}]`);
    return this.storage.buffer;
  }

  get bytes(): number {
    return this.size * DTYPE_BYTES[this.dtype];
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** A view with another shape of the same number of elements (no copy). */
  reshape(shape: readonly number[]): Tensor {
    const n = shapeSize(shape);
    if (n !== this.size) throw new RangeError(`reshape: [${this.shape}] (${this.size}) cannot become [${shape}] (${n})`);
    if (this.disposed) throw new Error(`use of a disposed tensor [${this.shape}] (reshape)`);
    return new Tensor(this.storage.retain(), shape, this.dtype);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.storage.release();
  }
}
