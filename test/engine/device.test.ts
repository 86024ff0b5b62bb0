import { dawnFlags, describeGpu, NoAdapterError, requestGpu } from '../../engine/device.js';
import { Engine } from '../../engine/engine.js';
import { Rng } from '../../engine/random.js';
import { matmul } from '../../kernels/matmul.js';
import { assert, assertClose, expectThrow, getEngine, isBrowser, poisoned, randomArray } from '../helpers.js';
import { matmul as matmulRef } from './reference.js';

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

  it('close() removes the error listener it added (a device with one attached is never collected)', async () => {
    const listeners = new Set<unknown>();
    let destroyed = false;
    const device = {
      features: new Set<string>(), limits: {}, lost: new Promise(() => {}),
      addEventListener: (type: string, f: unknown) => type === 'uncapturederror' && listeners.add(f),
      removeEventListener: (type: string, f: unknown) => type === 'uncapturederror' && listeners.delete(f),
      destroy: () => (destroyed = true),
    };
    const adapter = { features: new Set<string>(), limits: {}, info: { vendor: 'test', architecture: '', device: '', description: '' }, requestDevice: async () => device };
    const gpu = await requestGpu({ gpu: { requestAdapter: async () => adapter } as unknown as GPU });
    const attached = () => listeners.size;
    assert(attached() === 1, `one listener while open, got ${attached()}`);
    gpu.close();
    assert(attached() === 0 && destroyed, `after close: ${attached()} listeners, destroyed ${destroyed}`);
  });

  it("Dawn's flags: the asked toggles join the enabled ones, once each, and a bad name is refused", () => {
    const [enable, disable, backend] = dawnFlags({ subgroupMatrix: true, dawnToggles: ['disable_robustness', 'allow_unsafe_apis'], backend: 'vulkan' });
    assert(enable === 'enable-dawn-features=vulkan_enable_f16_on_nvidia,allow_unsafe_apis,disable_robustness', enable);
    assert(disable === 'disable-dawn-features=timestamp_quantization' && backend === 'backend=vulkan', `${disable} ${backend}`);
    expectThrow(() => dawnFlags({ dawnToggles: ['disable_robustness,x=1'] }), 'not a Dawn toggle name');
  });

  if (!isBrowser)
    it('engines made one after another share the Dawn instance of their flags (each owns only its device)', async () => {
      const [a, b] = [await requestGpu(), await requestGpu()];
      const c = await requestGpu({ dawnToggles: ['disable_robustness'] });
      try {
        assert(a.gpu === b.gpu && a.device !== b.device, 'same flags: one instance, two devices');
        assert(c.gpu !== a.gpu, 'other flags: another instance');
      } finally {
        [a, b, c].forEach((g) => g.close());
      }
    });

  if (!isBrowser)
    it('a device without Dawn\'s index clamps multiplies exactly as well (our kernels keep their indices in bounds)', async () => {
      // Tiles of every size class cut the shape unevenly, so the kernels' own bounds checks are what keeps them in
      const engine = await Engine.create({ subgroupMatrix: true, dawnToggles: ['disable_robustness', 'disable_workgroup_init'] });
      try {
        assert(describeGpu(engine.gpu.info).includes('dawn toggles: vulkan_enable_f16_on_nvidia, allow_unsafe_apis, disable_robustness, disable_workgroup_init'), `info lists the toggles:\n${describeGpu(engine.gpu.info)}`);
        const rng = new Rng(11);
        const [M, N, K] = [67, 131, 45];
        const a = randomArray(rng, M * K), b = randomArray(rng, N * K);
        const ta = engine.upload(a), tb = engine.upload(b), c = poisoned(engine, [M * N]);
        matmul(engine.batch, { a: ta.buffer, b: tb.buffer, c: c.buffer }, { M, N, K, transB: true });
        assertClose(await engine.read(c), matmulRef(Float64Array.from(a), Float64Array.from(b), 1, M, N, K, false, true), 1e-5, 'matmul 67×131×45 A·Bᵀ without clamps');
      } finally {
        engine.close();
      }
    });
});
