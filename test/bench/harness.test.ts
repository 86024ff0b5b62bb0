// The benchmark harness turns GPU errors that WebGPU would only log into failures.
import { gpuChecked } from '../../bench/harness.js';
import { assert, expectReject, getEngine } from '../helpers.js';

describe('bench/harness', () => {
  it('gpuChecked: a validation error inside fails, a clean run returns its value', async () => {
    const { device } = await getEngine();
    await expectReject(() => gpuChecked(device, async () => void device.createBuffer({ size: 4, usage: 0 })), 'GPU error');
    const ok = await gpuChecked(device, async () => 42);
    assert(ok === 42, `value ${ok}`);
    await expectReject(() => gpuChecked(device, async () => { throw new Error('own failure'); }), 'own failure');
  });
});
