// What the launchers do with bindings WebGPU itself would refuse, which would otherwise cost the whole
// batch with only a logged error: one buffer bound writable and read-only in a dispatch (whatever the
// ranges), empty inputs, and a scratch buffer grown by one batch while another still holds work on it.
import { attentionBackward, attentionForward } from '../../kernels/attention.js';
import { clipByNorm } from '../../kernels/clip.js';
import { binary } from '../../kernels/elementwise.js';
import { layerNormBackward } from '../../kernels/layernorm.js';
import { matmul } from '../../kernels/matmul.js';
import { reduceAxis } from '../../kernels/reduce.js';
import { CommandBatch } from '../../kernels/runtime.js';
import { assertClose, expectThrow, getEngine } from '../helpers.js';

const STORAGE = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;

async function setup() {
  const { device } = await getEngine();
  const made: GPUBuffer[] = [];
  /** A buffer of `data`, or of `n` NaNs. */
  const buf = (data: number[] | number) => {
    const values = typeof data === 'number' ? new Float32Array(data).fill(NaN) : Float32Array.from(data);
    const b = device.createBuffer({ size: Math.max(4, 4 * values.length), usage: STORAGE() });
    device.queue.writeBuffer(b, 0, values);
    made.push(b);
    return b;
  };
  const read = async (b: GPUBuffer, n: number, offset = 0): Promise<Float32Array> => {
    const staging = device.createBuffer({ size: 4 * n, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(b, offset, staging, 0, 4 * n);
    device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.destroy();
    return out;
  };
  return { device, buf, read, done: () => made.forEach((b) => b.destroy()) };
}

describe('kernels: bindings WebGPU would refuse are refused (or avoided) before recording', () => {
  it('an output in the same buffer as a read-only input, at separate ranges, is an error naming the kernel', async () => {
    const { device, buf, done } = await setup();
    const batch = new CommandBatch(device);
    const b = buf(256);
    const at = (offset: number) => ({ buffer: b, offset, size: 64 });
    expectThrow(() => binary(batch, 'add', at(0), at(0), at(512), 16), /binary add: out must not share a buffer with a, whatever the ranges/);
    const other = buf(16);
    expectThrow(() => clipByNorm(batch, at(0), { buffer: b, offset: 256, size: 4 }, 16, 1), /clipByNorm: grad must not share a buffer with sumsq/);
    expectThrow(() => matmul(batch, { a: at(0), b: other, c: at(256) }, { M: 4, N: 4, K: 4 }), /matmul: c must not share a buffer with a/);
    const dims = { B: 1, H: 1, Dh: 4, C: 2, V: 2, mask: 'cropa' as const };
    const qkv = buf(48), out = buf(16), lse = buf(4);
    expectThrow(() => attentionForward(batch, { qkv, out: { buffer: qkv, offset: 256, size: 64 }, lse }, dims), /attentionForward: out must not share a buffer with qkv/);
    expectThrow(() => attentionBackward(batch, { qkv, out, lse, dout: { buffer: b, offset: 0, size: 64 }, dqkv: { buffer: b, offset: 256, size: 192 } }, dims), /attentionBackward: dqkv must not share a buffer with dout/);
    done();
  });

  it('clipByNorm checks its sizes and counts', async () => {
    const { device, buf, done } = await setup();
    const batch = new CommandBatch(device);
    expectThrow(() => clipByNorm(batch, buf(4), buf(1), 8, 1), 'clipByNorm: grad binding holds 16 bytes, needs 32 (n=8)');
    expectThrow(() => clipByNorm(batch, buf(4), buf(1), 2.5, 1), 'clipByNorm: n must be an integer in [0, 2^32), got 2.5');
    done();
  });

  it('empty inputs are not bound: sums over nothing, a product with K = 0 (its epilogue alone)', async () => {
    const { device, buf, read, done } = await setup();
    const batch = new CommandBatch(device);
    const empty = () => ({ buffer: buf(4), offset: 0, size: 0 });
    const y = buf(4);
    reduceAxis(batch, empty(), y, { outer: 1, reduce: 0, inner: 4 });
    const c = buf(6), bias = buf([1, 2, 3]);
    matmul(batch, { a: empty(), b: empty(), c, bias }, { M: 2, N: 3, K: 0 });
    const dg = buf(3), db = buf(3);
    layerNormBackward(batch, { dy: empty(), x: empty(), mean: empty(), rstd: empty(), dx: empty(), dgamma: dg, dbeta: db }, { rows: 0, dim: 3 });
    batch.submit();
    assertClose(await read(y, 4), [0, 0, 0, 0], 1e-7, 'reduce over nothing');
    assertClose(await read(c, 6), [1, 2, 3, 1, 2, 3], 1e-7, 'K = 0: the bias in every row');
    assertClose(await read(dg, 3), [0, 0, 0], 1e-7, 'dgamma over no rows');
    assertClose(await read(db, 3), [0, 0, 0], 1e-7, 'dbeta over no rows');
    done();
  });

  it('a scratch buffer grown by one batch stays whole for another batch recorded before it', async () => {
    const { device, buf, read, done } = await setup();
    const a = new CommandBatch(device), b = new CommandBatch(device);
    // column sums over many rows go through a split pass and its scratch ('reduceAxis')
    const n = 100000;
    const x = buf(new Array<number>(n).fill(1)), y = buf(1);
    reduceAxis(a, x, y, { outer: 1, reduce: n, inner: 1 });
    const x2 = buf(new Array<number>(3 * 4 * n).fill(1)), y2 = buf(3);
    reduceAxis(b, x2, y2, { outer: 1, reduce: 4 * n, inner: 3 }); // a larger scratch
    b.submit();
    a.submit();
    assertClose(await read(y, 1), [n], 1e-7, 'the first batch, submitted last');
    assertClose(await read(y2, 3), [4 * n, 4 * n, 4 * n], 1e-7, 'the second batch');
    done();
  });
});
