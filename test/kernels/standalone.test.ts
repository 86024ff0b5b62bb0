// The README's "Using the kernels with your own device" example, as a user would run it: the
// package's kernels entry, a bare GPUDevice and buffers the caller creates, fills and reads back
// itself (no Engine, no Tensor), checked against float64.
import { CommandBatch, layerNormForward, matmul } from '../../kernels/index.js';
import { Rng } from '../../engine/random.js';
import { assertClose, getEngine, randomArray } from '../helpers.js';
import { gelu64, layerNormRef } from './norm-ref.js';

describe('kernels used with a bare GPUDevice (the README example)', () => {
  it('Y = gelu(A·Wᵀ + b), then a non-affine LayerNorm, in one submit, against float64', async () => {
    const { device } = await getEngine(); // only its GPUDevice: what any caller has
    const M = 37, N = 300, K = 76; // the README's shapes are 400 × 3072 × 768; these are not tile multiples
    const rng = new Rng(41);
    const A = randomArray(rng, M * K, 0.3), W = randomArray(rng, N * K, 0.3), bias = randomArray(rng, N, 0.3);
    const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
    const make = (data: Float32Array | number) => {
      const buf = device.createBuffer({ size: 4 * (typeof data === 'number' ? data : data.length), usage: storage });
      device.queue.writeBuffer(buf, 0, typeof data === 'number' ? new Float32Array(data).fill(NaN) : data);
      return buf;
    };
    const bufA = make(A), bufW = make(W), bufB = make(bias);
    const bufY = make(M * N), bufZ = make(M * N), mean = make(M), rstd = make(M);

    const batch = new CommandBatch(device);
    matmul(batch, { a: bufA, b: bufW, c: bufY, bias: bufB }, { M, N, K, transB: true, activation: 'gelu' });
    layerNormForward(batch, { x: bufY, y: bufZ, mean, rstd }, { rows: M, dim: N });
    batch.submit();

    const staging = device.createBuffer({ size: 4 * M * N, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(bufZ, 0, staging, 0, 4 * M * N);
    device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const got = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();

    const y = new Float64Array(M * N);
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = bias[n];
        for (let k = 0; k < K; k++) s += A[m * K + k] * W[n * K + k];
        y[m * N + n] = gelu64(s);
      }
    assertClose(got, layerNormRef(y, M, N).y, 1e-5, 'LayerNorm(gelu(A·Wᵀ + b))');
    for (const b of [bufA, bufW, bufB, bufY, bufZ, mean, rstd, staging]) b.destroy();
  });
});
