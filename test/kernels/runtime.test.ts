// CommandBatch: its own checks (on a stand-in device: they throw before any WebGPU call is made), and
// its reuse of bind groups on a real one.
import { binary } from '../../kernels/elementwise.js';
import { CommandBatch } from '../../kernels/runtime.js';
import { assert, assertClose, expectThrow, getEngine } from '../helpers.js';

describe('kernels/runtime', () => {
  it('refuses bindings WebGPU would refuse (over maxStorageBufferBindingSize, empty, not whole words, unaligned), naming the kernel, binding and limit', () => {
    const device = { limits: { maxStorageBufferBindingSize: 64, minUniformBufferOffsetAlignment: 256, minStorageBufferOffsetAlignment: 256 } } as unknown as GPUDevice;
    const batch = new CommandBatch(device);
    const pipeline = { label: 'elementwise.fill_v4' } as GPUComputePipeline;
    const big = { size: 128 } as GPUBuffer, long = { size: 512 } as GPUBuffer;
    expectThrow(() => batch.dispatch(pipeline, [big], null, [1]), "elementwise.fill_v4: binding 0 spans 128 bytes, over this device's maxStorageBufferBindingSize (64)");
    expectThrow(() => batch.dispatch(pipeline, [{ buffer: long, offset: 256, size: 16 }, { buffer: long, offset: 0, size: 96 }], null, [1]), 'binding 1 spans 96 bytes');
    expectThrow(() => batch.dispatch(pipeline, [{ buffer: long, offset: 0, size: 0 }], null, [1]), 'binding 0 spans 0 bytes; a storage binding must hold a positive multiple of 4');
    expectThrow(() => batch.dispatch(pipeline, [{ buffer: long, offset: 0, size: 10 }], null, [1]), 'binding 0 spans 10 bytes');
    expectThrow(() => batch.dispatch(pipeline, [{ buffer: long, offset: 4, size: 16 }], null, [1]), "binding 0 starts at byte 4, not a multiple of this device's minStorageBufferOffsetAlignment (256)");
  });

  it('reuses a bind group for the same pipeline and buffer ranges, with whatever the buffers hold then', async () => {
    const engine = await getEngine();
    const batch = engine.batch;
    const n = 6;
    const a = engine.upload([1, 2, 3, 4, 5, 6]), b = engine.upload([10, 20, 30, 40, 50, 60]), out = engine.empty([n]), out2 = engine.empty([n]);
    const created = () => batch.bindGroupsCreated;
    const c0 = created();
    binary(batch, 'add', a.buffer, b.buffer, out.buffer, n);
    assert(created() === c0 + 1, `first dispatch: ${created() - c0} bind groups made`);
    assertClose(await engine.read(out), [11, 22, 33, 44, 55, 66], 1e-7, 'a + b');
    engine.device.queue.writeBuffer(a.buffer, 0, new Float32Array([0, 0, 0, 0, 0, 7]));
    binary(batch, 'add', a.buffer, b.buffer, out.buffer, n); // same ranges, new contents (and a new submit)
    assert(created() === c0 + 1, `same ranges again: ${created() - c0 - 1} more bind groups`);
    assertClose(await engine.read(out), [10, 20, 30, 40, 50, 67], 1e-7, 'the reused bind group reads the new contents');
    binary(batch, 'add', a.buffer, b.buffer, out2.buffer, n);
    binary(batch, 'add', a.buffer, b.buffer, { buffer: out.buffer, offset: 0, size: 4 * n }, n);
    assert(created() === c0 + 3, `another output buffer, and an explicit range: ${created() - c0 - 1} more (2 expected)`);
    assertClose(await engine.read(out2), [10, 20, 30, 40, 50, 67], 1e-7, 'other output');
    [a, b, out, out2].forEach((t) => t.dispose());
  });
});
