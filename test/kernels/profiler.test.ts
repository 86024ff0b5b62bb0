// The per-kernel GPU timer: every profiled dispatch is counted under its pipeline's label, across
// query-set rollovers and several submits, results stay correct, and a device without
// 'timestamp-query' gets a clear error. The submit timer gives each timed submit's GPU start and end.
import { binary, fill } from '../../kernels/elementwise.js';
import { busyAndIdle, byFamily, KernelProfiler, SubmitTimer } from '../../kernels/profiler.js';
import { assert, expectThrow, getEngine } from '../helpers.js';

describe('kernels/profiler', () => {
  it('times every dispatch by pipeline label, over query-set rollovers and submits; refuses bad sizes', async () => {
    const engine = await getEngine();
    if (!engine.device.features.has('timestamp-query')) {
      expectThrow(() => new KernelProfiler(engine.device), "lacks the 'timestamp-query' feature");
      return;
    }
    expectThrow(() => new KernelProfiler(engine.device, 0), 'perSet must be an integer in [1, 2048]');
    expectThrow(() => new KernelProfiler(engine.device, 4096), 'perSet must be an integer in [1, 2048]');
    const n = 1000;
    const a = engine.empty([n]), b = engine.empty([n]), c = engine.empty([n]);
    const batch = engine.batch;
    const prof = new KernelProfiler(engine.device, 3); // 3 dispatches per query set: rollovers happen
    try {
      batch.profiler = prof;
      fill(batch, a.buffer, n, 2);
      fill(batch, b.buffer, n, 3);
      for (let i = 0; i < 4; i++) binary(batch, 'mul', a.buffer, b.buffer, c.buffer, n);
      batch.submit();
      binary(batch, 'add', a.buffer, c.buffer, b.buffer, n);
      batch.submit();
      const times = await prof.results();
      const count = (re: RegExp) => times.filter((t) => re.test(t.kernel)).reduce((s, t) => s + t.count, 0);
      assert(times.reduce((s, t) => s + t.count, 0) === 7, `7 dispatches timed, got ${JSON.stringify(times)}`);
      assert(count(/fill/) === 2, `two fills, got ${JSON.stringify(times)}`);
      assert(times.every((t) => t.ms >= 0 && Number.isFinite(t.ms)), JSON.stringify(times));
      assert(times.every((t, i) => i === 0 || times[i - 1].ms >= t.ms), 'slowest first');
      const fam = byFamily(times);
      assert(fam.reduce((s, t) => s + t.count, 0) === 7 && fam.every((f) => !/[_.]/.test(f.kernel)), JSON.stringify(fam));
    } finally {
      batch.profiler = null;
    }
    // a profiled batch computes the same: c = 2·3, then b = 2 + 6
    const got = await engine.read(b);
    assert(got.every((v) => v === 8), `b = a + c = 8, got ${got.slice(0, 4)}`);
    [a, b, c].forEach((t) => t.dispose());
  });

  it('submit timer: one ordered span per queue submit between start and stop, up to its maximum; busy and idle time', async () => {
    const engine = await getEngine();
    if (!engine.device.features.has('timestamp-query')) {
      expectThrow(() => new SubmitTimer(engine.device), "lacks the 'timestamp-query' feature");
      return;
    }
    expectThrow(() => new SubmitTimer(engine.device, 0), 'maxSubmits must be an integer in [1, 2048]');
    const n = 4096;
    const a = engine.empty([n]), b = engine.empty([n]);
    const batch = engine.batch;
    fill(batch, a.buffer, n, 1);
    batch.submit(); // before start: not timed
    const timer = new SubmitTimer(engine.device, 3);
    timer.start();
    try {
      // any submitter is timed: a raw encoder as well as the batch
      engine.device.queue.submit([engine.device.createCommandEncoder().finish()]);
      for (let i = 0; i < 5; i++) {
        binary(batch, 'add', a.buffer, a.buffer, b.buffer, n);
        binary(batch, 'add', b.buffer, b.buffer, a.buffer, n);
        batch.submit();
      }
    } finally {
      timer.stop();
    }
    batch.submit(); // after stop: not timed
    const spans = await timer.spans();
    assert(spans.length === 3, `3 timed submits (the maximum), got ${spans.length}`);
    assert(spans[0].startMs === 0, `the clock starts at the first start, got ${spans[0].startMs}`);
    for (const [i, s] of spans.entries()) {
      assert(Number.isFinite(s.endMs) && s.endMs >= s.startMs, `span ${i}: ${JSON.stringify(s)}`);
      if (i > 0) assert(s.endMs >= spans[i - 1].endMs, `span ${i} ends before span ${i - 1}: ${JSON.stringify(spans)}`);
    }
    // a timed queue computes the same: a = 1 · 4⁵
    const got = await engine.read(a);
    assert(got.every((v) => v === 1024), `a = 4^5 = 1024, got ${got.slice(0, 4)}`);
    [a, b].forEach((t) => t.dispose());
  });

  it('busy and idle time: the union of the spans, and the gaps between them', () => {
    const close = (x: number, y: number) => Math.abs(x - y) < 1e-9;
    const r = busyAndIdle([{ startMs: 0, endMs: 2 }, { startMs: 1, endMs: 3 }, { startMs: 5, endMs: 6 }]);
    assert(close(r.busyMs, 4) && close(r.idleMs, 2), JSON.stringify(r)); // [0,3] ∪ [5,6]; gap 3..5
    const e = busyAndIdle([]);
    assert(e.busyMs === 0 && e.idleMs === 0, JSON.stringify(e));
  });
});
