// `ecg-jepa bench step|embed` end to end on the tiny preset: both sides measured, the ratio is theirs
// over ours, the saved JSON carries date, command and device, and bad counts are refused.
import { assert, expectReject, getEngine, isBrowser } from '../helpers.js';
import { failUploads } from './tfjs-fail.js';

if (!isBrowser) {
  describe('bench/step (Node)', () => {
    it('step and embed against tfjs, saved with date, command and device', async () => {
      const engine = await getEngine();
      const { benchStep, benchEmbed, saveBench } = await import('../../bench/step.js');
      const { mkdtemp, readFile, rm } = await import('node:fs/promises');
      const { tmpdir } = await import('node:os');
      const { join } = await import('node:path');
      const progress: string[] = [];
      const step = await benchStep(engine, { preset: 'tiny', batch: 2, steps: 1, warmup: 1, peer: 'tfjs', progress: (l) => progress.push(l) });
      assert(progress.length === 2 && progress[0].startsWith('ours ') && progress[1].startsWith('tfjs (batch 2) ') && progress[1].includes('samples/s'), `a line as each side ends: ${JSON.stringify(progress)}`);
      const embed = await benchEmbed(engine, { preset: 'tiny', batch: 2, iters: 1, warmup: 1, peer: 'tfjs' });
      for (const r of [step, embed]) {
        assert(r.tfjs && r.ours.msPerStep > 0 && r.tfjs.msPerStep > 0, `${r.kind}: both sides timed ${JSON.stringify(r)}`);
        assert(Math.abs(r.ratio! - r.tfjs.msPerStep / r.ours.msPerStep) < 1e-12, `${r.kind}: ratio is tfjs ms / ours ms`);
        assert(Math.abs(r.ours.samplesPerSec - 2000 / r.ours.msPerStep) < 1e-9, `${r.kind}: samples/s from ms and batch`);
        assert(r.ours.peakBytes > 0 && r.tfjs.peakBytes > 0, `${r.kind}: peak memory of both`);
        // one step is hundreds of our dispatches on the tiny preset, and several times as many tfjs kernels
        assert(r.ours.kernelsPerStep! > 10 && r.tfjs.kernelsPerStep! > r.ours.kernelsPerStep!, `${r.kind}: kernels per call ${r.ours.kernelsPerStep} ours, ${r.tfjs.kernelsPerStep} tfjs`);
        assert(r.ours.gpuAllocatedBytes! >= r.ours.peakBytes, `${r.kind}: our pool holds at least the live peak: ${r.ours.gpuAllocatedBytes} vs ${r.ours.peakBytes}`);
        for (const m of [r.ours, r.tfjs]) assert(m.cpuMsPerStep > 0 && m.cpuMsPerStep <= m.msPerStep, `${r.kind}: CPU time ${m.cpuMsPerStep} ms within the wall time ${m.msPerStep} ms`);
        assert(r.tfjs.batch === 2 && !r.tfjsFailed, `${r.kind}: tfjs ran the asked batch`);
      }
      const dir = await mkdtemp(join(tmpdir(), 'ecg-jepa-bench-'));
      try {
        const saved = JSON.parse(await readFile(saveBench(step, 'ecg-jepa bench step --peer tfjs', dir), 'utf8'));
        assert(saved.command === 'ecg-jepa bench step --peer tfjs' && !Number.isNaN(Date.parse(saved.date)) && saved.device.vendor === engine.gpu.info.vendor, `saved ${JSON.stringify(saved).slice(0, 300)}`);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('step in micro-batches: a lower peak than the whole batch, said in the header; one that does not divide the batch refused', async () => {
      const engine = await getEngine();
      const { benchStep, formatBench } = await import('../../bench/step.js');
      const o = { preset: 'tiny', batch: 8, steps: 1, warmup: 1 };
      const [whole, parts] = [await benchStep(engine, o), await benchStep(engine, { ...o, microBatch: 2 })];
      assert(parts.microBatch === 2 && whole.microBatch === undefined && parts.ours.peakBytes < whole.ours.peakBytes, `peak ${parts.ours.peakBytes} in micro-batches of 2, ${whole.ours.peakBytes} whole`);
      assert(formatBench(parts).includes('batch 8 in micro-batches of 2,'), formatBench(parts));
      await expectReject(() => benchStep(engine, { ...o, microBatch: 3 }), 'microBatch (3) must divide batch (8)');
    });

    it("timed steps reuse the warm-up's masks, so they meet no token count the warm-up did not", async () => {
      const { stepMasks } = await import('../../bench/step.js');
      const warmup = 3;
      const m = stepMasks('tiny', 4, warmup, 7);
      const warm = [0, 1, 2].map(m);
      for (let i = warmup; i < warmup + 8; i++) assert(warm.includes(m(i)), `step ${i} draws a mask the warm-up did not meet`);
      assert(new Set(warm).size === warmup, 'the warm-up steps have masks of their own');
      assert(m(0).batch === 4 && m(0).numVisible + m(0).numMasked === m(0).patches, 'masks of the asked batch');
      const none = stepMasks('tiny', 4, 0, 7);
      assert(none(0) === none(5), 'no warm-up: every step the same mask');
    });

    it('formats a base batch-64 step against the PyTorch anchor, and only that', async () => {
      const { formatBench, PYTORCH_STEP_H100 } = await import('../../bench/step.js');
      const m = (ms: number, batch = 64) => ({ batch, msPerStep: ms, cpuMsPerStep: 1, samplesPerSec: (1000 * batch) / ms, peakBytes: 1 });
      const device = { vendor: 'nvidia', architecture: '', device: 'nvidia-h200', description: '', backend: 'dawn-node' as const, features: [], limits: {} };
      const r = { kind: 'step' as const, preset: 'base', precision: 'f32' as const, batch: 64, steps: 5, warmup: 2, device, ours: m(320), tfjs: m(1600), ratio: 5 };
      const text = formatBench(r);
      // 64 000 / 320 = 200 samples/s = 94% of 212; tfjs 40 samples/s = 19%
      assert(text.includes(`PyTorch on an H100, same step: ${PYTORCH_STEP_H100.fp32} samples/s fp32`) && text.includes('ours = 94% of its fp32, tfjs = 19% of its fp32') && text.includes('not an H100'), text);
      // mixed precision against its AMP step: 200 / 316 = 63%
      const f16 = formatBench({ ...r, precision: 'f16' });
      assert(f16.includes(`${PYTORCH_STEP_H100.amp} AMP; ours = 63% of its AMP, tfjs = 19% of its fp32`), f16);
      assert(!formatBench({ ...r, preset: 'tiny' }).includes('PyTorch') && !formatBench({ ...r, batch: 4 }).includes('PyTorch'), 'no anchor for other configurations');
      assert(!formatBench({ ...r, device: { ...device, device: 'nvidia-h100-80gb-hbm3' } }).includes('not an H100'), 'an H100 is comparable');
      // tfjs out of memory at 64 and 32, run at 16: the failures are shown and the ratio is by samples/s
      const failedAt = [64, 32].map((batch) => ({ batch, error: 'GPU error: Out of memory' }));
      const small = formatBench({ ...r, tfjs: m(400, 16), tfjsFailed: failedAt, ratio: 5 });
      assert(small.includes('tfjs  failed at batch 64: GPU error: Out of memory') && small.includes('tfjs (batch 16)') && small.includes('ratio (our samples/s / tfjs samples/s): 5.00x'), small);
    });

    it('--profile: GPU time per kernel family and kernel over one more step', async () => {
      const engine = await getEngine();
      const { benchStep, formatBench } = await import('../../bench/step.js');
      const o = { preset: 'tiny', batch: 2, steps: 1, warmup: 1, profile: true };
      if (!engine.device.features.has('timestamp-query')) return expectReject(() => benchStep(engine, o), "lacks the 'timestamp-query' feature");
      const r = await benchStep(engine, o);
      const fam = new Map(r.profile!.families.map((f) => [f.kernel, f]));
      assert(fam.get('matmul')!.count > 0 && fam.has('attention') && fam.has('adamw'), `families ${JSON.stringify(r.profile!.families)}`);
      const n = (ts: { count: number }[]) => ts.reduce((s, t) => s + t.count, 0);
      assert(n(r.profile!.kernels) === n(r.profile!.families) && n(r.profile!.kernels) > 20, 'every dispatch of the step is counted once');
      const text = formatBench(r);
      assert(text.includes('GPU time of one more call') && text.includes('slowest kernels:'), text);
    });

    it('halves the peer batch until one runs, then doubles it while it fits, keeping the best', async () => {
      const { fitBatch } = await import('../../bench/step.js');
      let cleanups = 0;
      const tried: number[] = [];
      const upTo = (fits: number, score: (b: number) => number) => async (b: number) => {
        tried.push(b);
        if (b > fits) throw new Error(`GPU error: Out of memory at ${b}\nmore detail`);
        return score(b);
      };
      const down = await fitBatch(64, 64, upTo(16, (b) => b), (x) => x, () => cleanups++);
      assert(down.result === 16 && tried.join() === '64,32,16' && cleanups === 2, JSON.stringify({ down, tried, cleanups }));
      assert(down.failed.map((f) => `${f.batch}:${f.error}`).join('|') === '64:GPU error: Out of memory at 64|32:GPU error: Out of memory at 32', JSON.stringify(down.failed));
      // Up from a batch that fits: the best score wins (not the largest batch), and the first failure ends it.
      tried.length = 0;
      const up = await fitBatch(2, 64, upTo(8, (b) => (b === 4 ? 10 : b)), (x) => x);
      assert(up.result === 10 && tried.join() === '2,4,8,16' && up.failed.map((f) => f.batch).join() === '16', JSON.stringify({ up, tried }));
      tried.length = 0;
      const capped = await fitBatch(3, 12, upTo(64, (b) => b), (x) => x);
      assert(capped.result === 12 && tried.join() === '3,6,12' && capped.failed.length === 0, JSON.stringify({ capped, tried }));
      tried.length = 0;
      const between = await fitBatch(16, 64, upTo(5, (b) => b), (x) => x);
      assert(between.result === 4 && tried.join() === '16,8,4' && between.failed.map((f) => f.batch).join() === '16,8', `no retry of a failed batch: ${JSON.stringify({ between, tried })}`);
      const none = await fitBatch(3, 3, async () => Promise.reject(new Error('no')), (x: number) => x);
      assert(none.result === undefined && none.failed.map((f) => f.batch).join() === '3,1', JSON.stringify(none));
    });

    it('a tfjs try that failed leaves nothing to the halved one (its weights and tfjs buffers start anew)', async () => {
      // The H100 case without running out of memory: tfjs uploads a tensor made from CPU values at
      // its first use and drops the CPU copy then, so a weight whose buffer failed then (out of
      // memory) keeps the invalid buffer for good. Here the first STORAGE buffers tfjs creates
      // mapped (weight, moment and input uploads) are destroyed at birth: the batch-2 try fails on
      // them. Reusing that peer, every later try failed down to batch 1; each try now builds its
      // peer anew from the saved initial weights on a fresh tfjs backend.
      const engine = await getEngine();
      const { loadTfjs } = await import('../../bench/harness.js');
      const { benchStep } = await import('../../bench/step.js');
      const { freshTfjsBackend, tfjsDevice } = await import('../../bench/tfjs-backend.js');
      const tf = await loadTfjs(engine);
      await freshTfjsBackend(tf, tf.memory().numTensors); // an empty pool: each upload creates its buffer
      const restore = failUploads(tfjsDevice(tf), 8);
      let r;
      const progress: string[] = [];
      try {
        r = await benchStep(engine, { preset: 'tiny', batch: 2, steps: 1, warmup: 1, peer: 'tfjs', tf, progress: (l) => progress.push(l) });
      } finally {
        restore();
      }
      assert(r.tfjsFailed?.length === 1 && r.tfjsFailed[0].batch === 2 && r.tfjsFailed[0].error.includes('GPU error'), `the batch-2 try failed, and only it: ${JSON.stringify(r.tfjsFailed)}`);
      assert(r.tfjs?.batch === 1 && r.tfjs.msPerStep > 0 && r.ratio! > 0, `the halved try ran: ${JSON.stringify(r.tfjs)}`);
      assert(progress.length === 3 && progress[1].startsWith('tfjs  failed at batch 2: ') && progress[1].includes('GPU error') && progress[2].startsWith('tfjs (batch 1) '), `the failure is told as it happens: ${JSON.stringify(progress)}`);
      assert(r.tfjs.gpuAllocatedBytes! > 0, `tfjs's GPU bytes are read (tf.memory().numBytesAllocatedInGPU): ${r.tfjs.gpuAllocatedBytes}`);
    });

    it('refuses counts that are not positive integers', async () => {
      const engine = await getEngine();
      const { benchStep, benchEmbed } = await import('../../bench/step.js');
      await expectReject(() => benchStep(engine, { preset: 'tiny', batch: 0, steps: 1, warmup: 1 }), 'batch must be a positive integer');
      await expectReject(() => benchStep(engine, { preset: 'tiny', batch: 2, steps: 1.5, warmup: 1 }), 'steps must be a positive integer');
      await expectReject(() => benchEmbed(engine, { preset: 'tiny', batch: 2, iters: 1, warmup: 0 }), 'warmup must be a positive integer, got 0');
      await expectReject(() => benchStep(engine, { preset: 'tiny', batch: 2, steps: 1, warmup: 1, peer: 'tfjs', peerBatch: 0 }), 'peerBatch must be a positive integer');
      await expectReject(() => benchEmbed(engine, { preset: 'tiny', batch: 2, iters: 1, peer: 'tfjs', peerBatch: 4 }), 'peerBatch (4) must not exceed batch (2)');
    });

    it('the peer starts at peerBatch (a batch known to fit) and grows while it fits; samples/s compares the two', async function () {
      this.timeout(120_000);
      const engine = await getEngine();
      const { benchEmbed } = await import('../../bench/step.js');
      const r = await benchEmbed(engine, { preset: 'tiny', batch: 2, iters: 1, warmup: 1, peer: 'tfjs', peerBatch: 1 });
      // it starts at 1, then tries 2 (the whole batch), and reports the faster per sample
      assert(r.ours.batch === 2 && (r.tfjs?.batch === 1 || r.tfjs?.batch === 2) && !r.tfjsFailed, `ours at 2, tfjs at 1 or 2: ${JSON.stringify({ ours: r.ours, tfjs: r.tfjs })}`);
      assert(Math.abs(r.ratio! - r.ours.samplesPerSec / r.tfjs.samplesPerSec) < 1e-12, `ratio by samples/s: ${r.ratio}`);
    });
  });
}
