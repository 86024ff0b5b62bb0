import { describeGpu, NoAdapterError, requestGpu } from '../../engine/device.js';
import { assert, getEngine, isBrowser } from '../helpers.js';

describe('engine/device', () => {
  it('gets an adapter and device and describes them', async () => {
    const engine = await getEngine();
    const info = engine.gpu.info;
    assert(typeof info.vendor === 'string', 'vendor is a string');
    assert(info.limits.maxStorageBufferBindingSize >= 128 * 2 ** 20, 'requests at least 128 MiB bindings');
    const text = describeGpu(info);
    assert(text.includes('adapter:') && text.includes('features:'), `description: ${text}`);
    assert(info.backend === (isBrowser ? 'browser' : 'dawn-node'), `backend ${info.backend}`);
  });

  it('gives a clear error when no adapter exists', async () => {
    // In Node a Dawn backend this OS does not have; in the browser a GPU whose requestAdapter
    // returns null (a page cannot switch its browser's backend).
    const absent = typeof process !== 'undefined' && process.platform === 'win32' ? 'metal' : 'd3d12';
    const opts = isBrowser ? { gpu: { requestAdapter: async () => null } as unknown as GPU } : { backend: absent };
    let err: unknown;
    try {
      await requestGpu(opts);
    } catch (e) {
      err = e;
    }
    assert(err instanceof NoAdapterError, `expected NoAdapterError, got ${err}`);
    const msg = (err as Error).message;
    assert(/No WebGPU adapter/.test(msg), msg);
    assert(isBrowser ? /WebGPU enabled/.test(msg) : /scripts\/setup\.sh|driver/.test(msg), `message says how to fix it: ${msg}`);
  });
});
