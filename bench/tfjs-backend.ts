// A clean tfjs WebGPU backend after a failed try (a batch that ran out of GPU memory), so that the
// next, smaller try inherits nothing from it. What tfjs-backend-webgpu 4.22 keeps after a failed
// allocation (dist/backend_webgpu.js, dist/buffer_manager.js):
// - uploadToGPU (backend_webgpu.js 552-597): a tensor made from CPU values (every weight, moment and
//   table of the peer) gets its GPU buffer at its first use, and its CPU copy is dropped then
//   (`tensorData.values = null`, 591). If that buffer could not be allocated, the tensor keeps the
//   invalid buffer as its only data for good: each later use is "[Invalid Buffer] is invalid due
//   to a previous error", whatever the batch. A buffer reused from the pool is filled by a copy
//   recorded in the shared command encoder (577), which is lost with the whole submit when any
//   other command in it is invalid: the weight then holds whatever the buffer held before.
// - BufferManager.acquireBuffer (buffer_manager.js 27-54) keeps whatever createBuffer returned,
//   invalid included, and releaseBuffer (55-79) pools it under its size and usage for the next
//   tensor of that size (popped at 34-36).
// - The steps of a failed try (AdamW's assign, the EMA) point the weights at outputs whose work was
//   dropped with their submit: valid buffers, wrong values.
// So a try must start from a new peer (bench/tfjs-jepa.ts, built from CPU copies of the weights)
// on a backend none of whose buffers a failed try has touched: freshTfjsBackend below.
import type * as tfjs from '@tensorflow/tfjs';
import { releaseDestroyed } from '../kernels/runtime.js';
import { tfSync } from './harness.js';

type Tf = typeof import('@tensorflow/tfjs');

interface WebGPUBackendLike {
  device?: GPUDevice;
  adapterInfo?: unknown;
  bufferManager?: { freeBuffers: Map<string, GPUBuffer[]>; numFreeBuffers: number; numBytesAllocated: number };
}

/** The GPUDevice of tfjs's active WebGPU backend (the same before and after freshTfjsBackend). */
export function tfjsDevice(tf: Tf): GPUDevice {
  const device = (tf.backend() as unknown as WebGPUBackendLike).device;
  if (!device) throw new Error(`tfjs: backend '${tf.getBackend()}' has no GPUDevice (not webgpu)`);
  return device;
}

/**
 * After a failed try: submits what it left recorded (its errors are that try's and are dropped),
 * then replaces the active WebGPU backend by a new one on the same GPUDevice. Disposing the old one
 * destroys every buffer it made (pooled, or still held by a tensor the try leaked), so no invalid
 * buffer, pipeline or pending command survives, and the new one's memory counters start at zero.
 * Tensors on the old backend are unusable afterwards: with `outside` > 0 (tensors that someone
 * else holds and still needs) only the pool is emptied (emptyPool). Returns which was done.
 */
export async function freshTfjsBackend(tf: Tf, outside = 0): Promise<'backend' | 'pool'> {
  const name = tf.getBackend();
  const old = tf.backend() as unknown as WebGPUBackendLike;
  const device = tfjsDevice(tf);
  const scopes = ['validation', 'out-of-memory', 'internal'] as const;
  for (const s of scopes) device.pushErrorScope(s);
  try {
    await tfSync(tf);
  } finally {
    await Promise.all(scopes.map(() => device.popErrorScope()));
  }
  if (outside > 0) {
    if (old.bufferManager) emptyPool(old.bufferManager);
    await releaseDestroyed(device);
    return 'pool';
  }
  const Backend = old.constructor as new (device: GPUDevice, adapterInfo: unknown) => tfjs.KernelBackend;
  const adapterInfo = old.adapterInfo; // tfjs's AdapterInfo: vendor and architecture, all its constructor reads
  tf.removeBackend(name); // disposes it: BufferManager.dispose destroys its free and used buffers
  // Dawn frees destroyed buffers' memory only after a later submit has completed. That gave our own
  // 65 GB back on an H100, but not tfjs's after an out-of-memory try: the card stayed full (nvidia-smi)
  // and every smaller try failed to upload its 1.4 GB of weights; the holder is not known. Hence
  // fitBatch (bench/step.ts) starts small and grows, and stops at the first failure.
  await releaseDestroyed(device);
  // priority 3, as tfjs-backend-webgpu's own registration (dist/base.js)
  tf.registerBackend(name, () => new Backend(device, adapterInfo), 3);
  if (!(await tf.setBackend(name))) throw new Error(`tfjs: the new '${name}' backend failed to initialise`);
  return 'backend';
}

/**
 * Destroys the buffers in tfjs's pool, its counters kept right. Its lists are emptied, not removed:
 * releaseBuffer pushes a released buffer onto the list of its size and usage unchecked
 * (buffer_manager.js 71-72: a TypeError when a live tensor of a removed size is disposed), and
 * releases nothing at all while the map is empty (56-58: the buffer stays counted as used).
 */
function emptyPool(bm: NonNullable<WebGPUBackendLike['bufferManager']>): void {
  for (const list of bm.freeBuffers.values())
    for (const b of list.splice(0)) {
      bm.numBytesAllocated -= b.size;
      bm.numFreeBuffers--;
      b.destroy();
    }
}
