import { BufferPool, sizeClass } from '../../engine/pool.js';
import { assert, getEngine } from '../helpers.js';

describe('engine/pool', () => {
  it('rounds sizes up to classes of four steps per power of two', () => {
    assert(sizeClass(1) === 256 && sizeClass(256) === 256, 'minimum class 256 B');
    assert(sizeClass(1024) === 1024, 'powers of two are classes');
    assert(sizeClass(1025) === 1280 && sizeClass(1281) === 1536 && sizeClass(1793) === 2048, 'quarter steps');
    for (let b = 1; b < 1e6; b = Math.ceil(b * 1.37)) {
      const c = sizeClass(b);
      assert(c >= b && c <= Math.max(256, b * 1.25), `class of ${b} is ${c}`);
    }
  });

  it('reuses buffers and returns live bytes to the baseline after a scope', async () => {
    const engine = await getEngine();
    await engine.releaseMemory(); // no idle buffer of a larger class to lend (earlier tests' leftovers)
    const base = engine.pool.stats();
    engine.scope(() => {
      engine.empty([1000]);
      engine.empty([1000, 3]);
      const live = engine.pool.stats();
      assert(live.liveBytes - base.liveBytes === sizeClass(4000) + sizeClass(12000), `live bytes grew by ${live.liveBytes - base.liveBytes}`);
      assert(live.liveBuffers === base.liveBuffers + 2, 'two live buffers');
    });
    const after = engine.pool.stats();
    assert(after.liveBytes === base.liveBytes && after.liveBuffers === base.liveBuffers, `live back to baseline: ${after.liveBytes} vs ${base.liveBytes}`);
    // Same size class again: the pool hands back a released buffer instead of creating one.
    const created = engine.pool.created;
    const again = engine.scope(() => engine.empty([999]));
    assert(engine.pool.created === created, 'no new buffer created');
    assert(engine.pool.peakBytes >= after.liveBytes + sizeClass(12000), 'peak recorded');
    // held = live + pooled: a reused buffer adds nothing, a new one its class
    const held = engine.pool.peakHeldBytes;
    assert(held >= engine.pool.liveBytes + engine.pool.pooledBytes, `held peak ${held} covers live + pooled`);
    engine.scope(() => void engine.empty([1000, 3]));
    assert(engine.pool.peakHeldBytes === held, 'reuse holds no more');
    engine.pool.resetPeak();
    const base2 = engine.pool.liveBytes + engine.pool.pooledBytes;
    assert(engine.pool.peakHeldBytes === base2, `reset to live + pooled: ${engine.pool.peakHeldBytes} vs ${base2}`);
    engine.scope(() => void engine.empty([3_000_001]));
    assert(engine.pool.peakHeldBytes === base2 + sizeClass(12_000_004), `a new buffer adds its class: ${engine.pool.peakHeldBytes - base2}`);
    again.dispose();
    assert(engine.pool.stats().liveBytes === base.liveBytes, 'back to baseline');
  });

  it('releaseMemory destroys the free buffers and leaves the live ones usable', async () => {
    const engine = await getEngine();
    const kept = engine.upload(new Float32Array([1, 2, 3]));
    engine.scope(() => void engine.empty([5000]));
    assert(engine.pool.pooledBytes > 0, 'something pooled');
    await engine.releaseMemory();
    assert(engine.pool.pooledBytes === 0 && engine.pool.stats().pooledBytes === 0, `pool emptied: ${engine.pool.pooledBytes}`);
    const created = engine.pool.created;
    engine.scope(() => void engine.empty([5000]));
    assert(engine.pool.created === created + 1, 'the next request creates a buffer');
    assert(Array.from(await engine.read(kept)).join() === '1,2,3', 'live tensors keep their data');
    kept.dispose();
  });

  it('with no free buffer of its class, takes an idle one up to twice its size, not one the open batch released', async () => {
    const { device } = await getEngine();
    const pool = new BufferPool(device);
    const big = pool.acquire(7000); // class 7168
    const huge = pool.acquire(20000); // class 20480
    pool.release(big);
    pool.release(huge);
    const created = () => pool.created; // (read anew each time: asserts narrow a field to a literal)
    const a = pool.acquire(4000); // class 4096: big was released in this batch, so a new buffer
    assert(a !== big && created() === 3, `the open batch's buffer stays in its role (created ${created()})`);
    pool.generation++;
    const held = pool.liveBytes + pool.pooledBytes;
    const b = pool.acquire(4000);
    assert(b === big && created() === 3 && pool.liveBytes + pool.pooledBytes === held, 'an idle larger buffer is taken, holding nothing more');
    assert(pool.liveBytes === sizeClass(4000) + sizeClass(7000), `live bytes count the class handed out: ${pool.liveBytes}`);
    const c = pool.acquire(8000); // class 8192: huge is over twice that
    assert(c !== huge && created() === 4, 'nothing over twice the size');
    for (const x of [a, b, c]) pool.release(x);
    assert(pool.liveBytes === 0 && pool.pooledBytes === sizeClass(4000) + sizeClass(7000) + sizeClass(8000) + sizeClass(20000), `each back in its own class: ${pool.pooledBytes}`);
    pool.trim();
  });

  it('does not hand a buffer released in the open batch to an upload', async () => {
    const engine = await getEngine();
    await engine.sync();
    const t = engine.empty([64]);
    const buf = t.buffer;
    t.dispose();
    const up = engine.upload(new Float32Array(64));
    const upBuf = up.buffer;
    assert(upBuf !== buf, 'upload got a buffer not pending in the batch');
    up.dispose();
    engine.flush();
    // After the submit both are free for uploads again: no new buffer is needed.
    const created = engine.pool.created;
    const up2 = engine.upload(new Float32Array(64));
    assert(engine.pool.created === created, 'after submit a pooled buffer serves the upload');
    up2.dispose();
  });

  it('keeps views alive until the last one is disposed', async () => {
    const engine = await getEngine();
    const before = engine.pool.liveBytes;
    const t = engine.upload(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
    const v = t.reshape([3, 2]);
    t.dispose();
    assert(engine.pool.liveBytes > before, 'view keeps storage');
    const back = await engine.read(v);
    assert(back.join(',') === '1,2,3,4,5,6', `view reads ${back}`);
    v.dispose();
    assert(engine.pool.liveBytes === before, 'storage released with the last view');
  });

  it('hands out the oldest free buffer of a class: a repeated allocation sequence gets the same buffers', async () => {
    const engine = await getEngine();
    await engine.releaseMemory(); // no idle buffer of a larger class to lend
    // A class no other test uses, so its free list starts empty.
    const shape = [12_345];
    const round = () => {
      const ts = [engine.empty(shape), engine.empty(shape), engine.empty(shape)];
      const bufs = ts.map((t) => t.buffer);
      // released in another order than acquired (as a step's tensors are)
      for (const i of [1, 2, 0]) ts[i].dispose();
      return bufs;
    };
    const first = round();
    const created = engine.pool.created;
    const second = round();
    assert(engine.pool.created === created, 'the second round creates nothing');
    assert(second.every((b, i) => b === first[i]), 'each role gets the buffer it had (last-in-first-out would permute them)');
  });
});
