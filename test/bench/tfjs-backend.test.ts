// A failed tfjs try poisons what it touched (bench/tfjs-backend.ts): the weights whose upload failed
// and tfjs's buffer pool. The next try, on a new peer built from the saved weights on a fresh
// backend, agrees with the engine again. The failure is injected (tfjs-fail.ts), not out of memory.
import type * as tfjs from '@tensorflow/tfjs';
import { gpuChecked, loadTfjs, tfSync } from '../../bench/harness.js';
import { freshTfjsBackend, tfjsDevice } from '../../bench/tfjs-backend.js';
import { readJepaWeights, TfJepa } from '../../bench/tfjs-jepa.js';
import { Rng } from '../../engine/random.js';
import { makeConfig } from '../../model/config.js';
import { readParams } from '../../model/encoder.js';
import { EcgJepa } from '../../model/jepa.js';
import { buildBatchMask, type BatchMask } from '../../model/masking.js';
import { assert, assertClose, expectReject, getEngine } from '../helpers.js';
import { failUploads } from './tfjs-fail.js';

describe('bench/tfjs-backend: a failed tfjs try leaves nothing to the next (tiny)', function () {
  this.timeout(120_000);

  it('a weight whose upload failed stays broken, the pool hands its buffer on; a new peer on a fresh backend agrees with the engine', async () => {
    const engine = await getEngine();
    const tf = await loadTfjs(engine);
    await freshTfjsBackend(tf); // an empty pool (earlier suites filled it): each upload creates its buffer
    const device = tfjsDevice(tf);
    const cfg = makeConfig('tiny', { optim: { weightDecay: 0.05 } });
    const C = cfg.leads.length;
    const P = cfg.patches;
    const L = cfg.patchSize * P;
    const opts = { lr: 1e-3, momentum: 0.9 };
    const model = new EcgJepa(engine, cfg, { seed: 7 });
    const r = new Rng(4);
    const xv = Float32Array.from({ length: 2 * C * L }, () => r.normal());
    const x1 = engine.upload(xv.subarray(0, C * L), [1, C, L]);
    const mask1 = buildBatchMask([[0, 3, 4, 8]], 1, C, P);
    const initial = await readJepaWeights(model); // CPU copies, as bench/step.ts keeps them
    // every tfjs tensor and peer made here, disposed together
    const made: { dispose(): void }[] = [];
    const keep = <T extends { dispose(): void }>(t: T): T => (made.push(t), t);
    const input = (b: number) => keep(tf.tensor3d(xv.subarray(0, b * C * L), [b, C, L]));
    const peer = () => keep(new TfJepa(tf, cfg, initial));
    const release = () => made.splice(0).forEach((t) => t.dispose());
    const checked = (run: () => void) =>
      gpuChecked(device, async () => {
        run();
        await tfSync(tf);
      });
    const upload = (p: TfJepa) => checked(() => p.upload());
    const step = (p: TfJepa, xt: tfjs.Tensor, m: BatchMask) => checked(() => p.trainStep(xt, m, opts).dispose());
    try {
      // The failed try at batch 2: three of the peer's tensors fail to upload (as out of memory would).
      const first = peer();
      const restore = failUploads(device, 3);
      try {
        await expectReject(() => upload(first), 'GPU error');
      } finally {
        restore();
      }
      await expectReject(() => step(first, input(2), buildBatchMask([[1, 2, 5, 6]], 2, C, P)), 'GPU error');
      // tfjs dropped those tensors' CPU copies at the upload: the failed buffers are all they hold,
      // so the same peer fails at batch 1 too (on the H100, every halved try down to 1).
      await expectReject(() => step(first, input(1), mask1), 'GPU error');
      release();
      // A new peer alone is not enough: the pool hands the failed buffers to its tensors of the same size.
      await expectReject(() => upload(peer()), 'GPU error');
      release();
      assert((await freshTfjsBackend(tf)) === 'backend', 'nothing else holds a tensor: the backend is replaced');
      assert(tfjsDevice(tf) === device, 'on the same GPUDevice');
      // The next try: a new peer from the same initial weights on the new backend takes one AdamW +
      // EMA step at batch 1 exactly as the engine does.
      const next = peer();
      await upload(next);
      const lt = next.trainStep(input(1), mask1, opts);
      const got = (await lt.data()) as Float32Array;
      lt.dispose();
      const l = model.trainStep(x1, mask1, opts);
      const want = await engine.read(l);
      l.dispose();
      assertClose(got, want, 1e-4, 'loss after the failed try');
      for (const [which, reg] of [['student', model.student.reg], ['teacher', model.teacher.reg], ['predictor', model.predictor.reg]] as const) {
        const mine = await next.readWeights(which);
        for (const [name, w] of await readParams(reg)) assertClose(mine.get(name)!, w, 1e-4, `${which} ${name} after the step`);
      }
    } finally {
      release();
      x1.dispose();
      model.dispose();
    }
  });

  it('with tensors held outside, only the pool is emptied and they stay readable', async () => {
    const engine = await getEngine();
    const tf = await loadTfjs(engine);
    const gpu = () => tf.memory() as unknown as { numBytesInGPU: number; numBytesAllocatedInGPU: number };
    const kept = tf.tidy(() => tf.range(0, 4096).mul(2)); // on the GPU; the range's buffer goes to the pool
    await tfSync(tf);
    const backend = tf.backend();
    assert(gpu().numBytesAllocatedInGPU > gpu().numBytesInGPU, 'the pool holds buffers');
    assert((await freshTfjsBackend(tf, tf.memory().numTensors)) === 'pool' && tf.backend() === backend, 'the backend is kept');
    assert(gpu().numBytesAllocatedInGPU === gpu().numBytesInGPU, `pool emptied: ${JSON.stringify(gpu())}`);
    const v = await kept.data();
    assert(v[4095] === 8190, `kept tensor reads ${v[4095]}`);
    kept.dispose(); // its size's pool list must still exist (releaseBuffer pushes onto it unchecked)
  });
});
