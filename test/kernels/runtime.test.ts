// CommandBatch's own checks, on a stand-in device: they throw before any WebGPU call is made.
import { CommandBatch } from '../../kernels/runtime.js';
import { expectThrow } from '../helpers.js';

describe('kernels/runtime', () => {
  it('refuses a binding larger than maxStorageBufferBindingSize, naming the kernel, binding and limit', () => {
    const device = { limits: { maxStorageBufferBindingSize: 64, minUniformBufferOffsetAlignment: 256 } } as unknown as GPUDevice;
    const batch = new CommandBatch(device);
    const pipeline = { label: 'elementwise.fill_v4' } as GPUComputePipeline;
    const big = { size: 128 } as GPUBuffer;
    expectThrow(() => batch.dispatch(pipeline, [big], null, [1]), "elementwise.fill_v4: binding 0 spans 128 bytes, over this device's maxStorageBufferBindingSize (64)");
    expectThrow(() => batch.dispatch(pipeline, [{ buffer: big, offset: 80 }, { buffer: big, offset: 0, size: 96 }], null, [1]), 'binding 1 spans 96 bytes');
  });
});
