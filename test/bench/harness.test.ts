// The benchmark harness turns GPU errors that WebGPU would only log into failures, and times both
// sides of a kernel case the same way.
import { defaultWarmMs, warmClocks } from '../../bench/clocks.js';
import { gpuChecked, loadTfjs, runCase } from '../../bench/harness.js';
import { kernelCases } from '../../bench/kernels/index.js';
import { isCpuAdapter } from '../../kernels/runtime.js';
import { assert, expectReject, getEngine } from '../helpers.js';

describe('bench/harness', () => {
  it('gpuChecked: a validation error inside fails, a clean run returns its value', async () => {
    const { device } = await getEngine();
    await expectReject(() => gpuChecked(device, async () => void device.createBuffer({ size: 4, usage: 0 })), 'GPU error');
    const ok = await gpuChecked(device, async () => 42);
    assert(ok === 42, `value ${ok}`);
    await expectReject(() => gpuChecked(device, async () => { throw new Error('own failure'); }), 'own failure');
  });

  it('runCase: ours and tfjs timed the same way (GPU busy time where there are timestamps), rates and ratio from those times', async function () {
    this.timeout(120_000);
    const engine = await getEngine();
    const tf = await loadTfjs(engine);
    const c = kernelCases('ci', ['elementwise']).find((k) => k.name.startsWith('add'))!;
    const row = await runCase(engine, tf, c, 20);
    const tfDevice = (tf.backend() as unknown as { device: GPUDevice }).device;
    const stamps = engine.device.features.has('timestamp-query') && tfDevice.features.has('timestamp-query');
    assert(row.timing === (stamps ? 'gpu' : 'wall'), `timing ${row.timing}, timestamps ${stamps}`);
    assert(row.ours_ms > 0 && row.tfjs_ms! > 0 && Number.isFinite(row.ours_ms + row.tfjs_ms!), JSON.stringify(row));
    assert(Math.abs(row.ratio! - row.tfjs_ms! / row.ours_ms) < 1e-12, `ratio = tfjs / ours: ${JSON.stringify(row)}`);
    assert(Math.abs(row.ours_rate! - c.bytes! / (row.ours_ms * 1e6)) < 1e-9 * row.ours_rate!, `GB/s from our time: ${JSON.stringify(row)}`);
    assert(row.warm_ms === defaultWarmMs(engine.device), `warm_ms ${row.warm_ms}`);
  });

  it('warmClocks: keeps the GPU busy for the time asked, without GPU errors; none on a CPU adapter by default', async function () {
    this.timeout(60_000);
    const { device } = await getEngine();
    const t0 = performance.now();
    await gpuChecked(device, () => warmClocks(device, 40, { workgroups: 2, dispatches: 2 }));
    const took = performance.now() - t0;
    assert(took >= 40, `returned after ${took.toFixed(1)} ms`);
    assert(defaultWarmMs(device) === (isCpuAdapter(device) ? 0 : 300), `default ${defaultWarmMs(device)} ms`);
  });
});
