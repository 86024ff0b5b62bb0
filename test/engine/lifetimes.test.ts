// What the engine does with misuse and failures: a disposed tensor stays dead, uploads take the
// typed array of their dtype, a backward or an optimizer step that throws leaves no state behind,
// and a LayerNorm with one of its parameters frozen still trains the other.
import * as ops from '../../engine/ops/index.js';
import { AdamW } from '../../engine/optim.js';
import { Registry } from '../../engine/nn.js';
import { Tape } from '../../engine/tape.js';
import { assert, assertClose, expectThrow, getEngine } from '../helpers.js';

describe('engine: lifetimes and failures', () => {
  it('a disposed tensor cannot be reshaped back to life (its buffer would be freed twice)', async () => {
    const engine = await getEngine();
    const a = engine.upload([1, 2, 3, 4]);
    a.dispose();
    expectThrow(() => a.reshape([2, 2]), 'use of a disposed tensor [4] (reshape)');
    const p = engine.empty([4]), q = engine.empty([4]);
    assert(p.buffer !== q.buffer, 'two live tensors, two buffers');
    p.dispose();
    q.dispose();
  });

  it('reading a disposed tensor is an error; a leaf whose gradient was disposed gets a fresh one, written, not added to', async () => {
    const engine = await getEngine();
    const a = engine.upload([1, 2]);
    a.dispose();
    await engine.readRaw(a).then(
      () => assert(false, 'read a disposed tensor'),
      (e) => assert(/use of a disposed tensor/.test((e as Error).message), (e as Error).message),
    );
    const g = new Tape(engine);
    const w = engine.upload([1, 1]);
    const leaf = g.watch(w);
    leaf.grad = engine.upload([5, 5]);
    leaf.hasGrad = true;
    leaf.grad.dispose(); // its buffer goes back to the pool, holding 5s
    const z = engine.scope(() => ops.scale(g, w, 2));
    g.backward(z);
    assertClose(await engine.read(leaf.grad!), [2, 2], 1e-7, 'dz/dw in a fresh gradient');
    [w, z, leaf.grad!].forEach((t) => t.dispose());
  });

  it('upload takes the typed array of the tensor dtype (or numbers where they convert)', async () => {
    const engine = await getEngine();
    expectThrow(() => engine.upload([1, 2, 3], [3], 'f16'), 'upload: a f16 tensor takes a Uint16Array of half bits, got a number[]');
    expectThrow(() => engine.upload(new Float32Array(2), [2], 'u32'), 'upload: a u32 tensor takes a Uint32Array or a number[], got Float32Array');
    const u = engine.upload([7, 9], [2], 'u32');
    assert(new Uint32Array(await engine.readRaw(u)).slice(0, 2).join() === '7,9', 'u32 from numbers');
    u.dispose();
  });

  it('a backward that throws leaves the tape empty: the next one does not rerun its nodes', async () => {
    const engine = await getEngine();
    const g = new Tape(engine);
    const w = engine.upload([1, 2, 3, 4]);
    const leaf = g.watch(w);
    // y = 7w + f, where f's backward fails once: it runs after y's and before 7w's, which is left pending
    let failed = false;
    const y = engine.scope(() => {
      const a = ops.scale(g, w, 7);
      const f = engine.empty([4]);
      engine.batch.clear(f.buffer, 0, 16);
      g.record('fails', f, [], () => {
        if (failed) return;
        failed = true;
        throw new Error('boom');
      });
      return ops.add(g, a, f);
    });
    expectThrow(() => g.backward(y), 'boom');
    y.dispose();
    leaf.grad?.dispose();
    const again = g.watch(w); // a backward, failed or not, ends the tape's watches
    const z = engine.scope(() => ops.scale(g, w, 2));
    g.backward(z);
    assertClose(await engine.read(again.grad!), [2, 2, 2, 2], 1e-7, 'dz/dw alone (not 7 more from the failed step)');
    again.grad!.dispose();
    [w, z].forEach((t) => t.dispose());
  });

  it('a kernel that refuses its arguments leaves no buffer behind: op temporaries, the step\'s loss; a refused backward empties the tape', async () => {
    const engine = await getEngine();
    const g = new Tape(engine);
    const live = () => engine.pool.stats().liveBuffers;
    const x = engine.upload(new Float32Array(2 * 6 * 4).fill(1), [2, 6, 4]);
    const qkv = engine.upload(new Float32Array(1 * 2 * 3 * 130), [1, 2, 3 * 130]);
    const before = live();
    // forward kernels that throw after the op made its temporaries (mean/rstd, lse)
    expectThrow(() => engine.scope(() => ops.layerNorm(g, x, null, null, -1)), 'eps must be ≥ 0');
    expectThrow(() => engine.scope(() => ops.attention(g, qkv, { heads: 1, C: 1, V: 2, mask: 'none' })), 'Dh 130 > 128 is not supported');
    assert(live() === before, `forward failures left ${live() - before} buffers`);
    // a backward refused for its output or its seed: no op of it joins the next backward
    const w = engine.upload([1, 2, 3, 4]);
    g.watch(w);
    const y = engine.scope(() => ops.scale(g, w, 3));
    expectThrow(() => g.backward(w), 'is not the output of a recorded op');
    assert(g.length === 0, `${g.length} ops left on the tape after a refused backward`);
    g.watch(w);
    const z = engine.scope(() => ops.scale(g, w, 3));
    expectThrow(() => g.backward(z, { grad: engine.upload([1]) }), 'seed gradient');
    assert(g.length === 0, `${g.length} ops left on the tape after a refused seed`);
    [y, z, w, x, qkv].forEach((t) => t.dispose());
    // a training step whose backward throws disposes its loss (the caller never gets it)
    const { EcgJepa } = await import('../../model/jepa.js');
    const { makeConfig, inputLength } = await import('../../model/config.js');
    const cfg = makeConfig('tiny');
    const model = new EcgJepa(engine, cfg, { seed: 1 });
    try {
      const input = engine.upload(new Float32Array(2 * cfg.leads.length * inputLength(cfg)).fill(0.5), [2, cfg.leads.length, inputLength(cfg)]);
      engine.batch.submit();
      const held = live();
      const backward = model.scaler.backward;
      model.scaler.backward = () => { throw new Error('boom'); };
      expectThrow(() => model.recordStep(input), 'boom');
      model.scaler.backward = backward;
      model.tape.clear();
      engine.batch.submit();
      assert(live() === held, `a failed step left ${live() - held} buffers`);
      input.dispose();
    } finally {
      model.dispose();
    }
  });

  it('layerNorm trains beta with gamma frozen, and mixes a fresh and an accumulating gradient', async () => {
    const engine = await getEngine();
    const D = 3;
    const run = async (freezeGamma: boolean, preloadBeta: boolean) => {
      const g = new Tape(engine);
      const reg = new Registry(engine); // parameters: leaves of every backward, keeping their gradients
      const gamma = reg.create('gamma', [D], new Float32Array([1, 2, 3])), beta = reg.create('beta', [D], new Float32Array(D));
      const x = engine.upload([1, 2, 4, -1, 0, 5], [2, D]);
      if (freezeGamma) gamma.requiresGrad = false;
      if (preloadBeta) {
        // beta already holds a gradient (10 each) from an earlier backward
        const y0 = engine.scope(() => ops.scale(g, beta.value, 10));
        g.backward(y0);
        y0.dispose();
      }
      // seeded with ones: d/dβ = the rows (2) per column, d/dγ = Σ rows of x̂
      const y = engine.scope(() => ops.layerNorm(g, x, gamma.value, beta.value));
      g.backward(y);
      const out = { dg: gamma.hasGrad ? await engine.read(gamma.grad!) : null, db: await engine.read(beta.grad!) };
      [x, y].forEach((t) => t.dispose());
      reg.dispose();
      return out;
    };
    const frozen = await run(true, false);
    assert(frozen.dg === null, 'no gamma gradient');
    assertClose(frozen.db, [2, 2, 2], 1e-6, 'dbeta with gamma frozen');
    const mixed = await run(false, true);
    assertClose(mixed.db, [12, 12, 12], 1e-6, 'dbeta added to what it held');
    const plain = await run(false, false);
    assertClose(mixed.dg!, Array.from(plain.dg!), 1e-6, 'dgamma fresh, as without the earlier op');
  });

  it('a refused AdamW step changes nothing: the next step is the first', async () => {
    const engine = await getEngine();
    const run = async (refuseFirst: boolean) => {
      const reg = new Registry(engine);
      const w = reg.create('w', [2], new Float32Array([1, 1]));
      const opt = new AdamW(engine, [w], { lr: 0.1, weightDecay: 0 });
      w.grad = engine.upload([1, -1]);
      w.hasGrad = true;
      if (refuseFirst) expectThrow(() => opt.step(NaN), 'adamw: lr must be finite, got NaN');
      opt.step(0.1);
      return { steps: opt.steps, w: Array.from(await engine.read(w.value)) };
    };
    const clean = await run(false), after = await run(true);
    assert(after.steps === 1 && clean.steps === 1, `steps ${after.steps}`);
    assertClose(after.w, clean.w, 1e-7, 'the same first update');
  });
});
