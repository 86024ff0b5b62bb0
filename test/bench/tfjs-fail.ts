// Provokes the failure that poisoned the tfjs peer on an H100 (an upload whose buffer could not be
// allocated) without running out of memory: the next `n` STORAGE buffers created mapped on a device
// (how tfjs-backend-webgpu's uploadToGPU makes the buffer of a tensor that holds CPU values) are
// destroyed as soon as they are made, so the upload's copy and every later use of the tensor is a
// validation error, as an invalid (out-of-memory) buffer's would be. A tensor whose buffer comes
// from tfjs's pool creates none: start from an empty pool (bench/tfjs-backend.ts freshTfjsBackend).

/** Patches device.createBuffer; returns the function that puts it back. */
export function failUploads(device: GPUDevice, n: number): () => void {
  const create = device.createBuffer;
  let left = n;
  device.createBuffer = function (d: GPUBufferDescriptor) {
    const b = create.call(this, d);
    if (d.mappedAtCreation && d.usage & GPUBufferUsage.STORAGE && left > 0) {
      left--;
      b.destroy();
    }
    return b;
  };
  return () => void (device.createBuffer = create);
}
