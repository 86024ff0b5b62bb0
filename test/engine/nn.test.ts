// Layers, registry and optimiser: a whole TransformerBlock (CroPA, drop-path) against float64
// finite differences, names and init as the reference, AdamW (clipping, dynamic loss scaling) and
// the cosine schedule.
import { KernelProfiler } from '../../kernels/profiler.js';
import { LayerNorm, Linear, Registry, TransformerBlock } from '../../engine/nn.js';
import * as ops from '../../engine/ops/index.js';
import { LossScaler, parseLossScale } from '../../engine/lossscale.js';
import { AdamW, cosineLr } from '../../engine/optim.js';
import { Rng } from '../../engine/random.js';
import { Tape } from '../../engine/tape.js';
import type { Engine } from '../../engine/engine.js';
import type { Tensor } from '../../engine/tensor.js';
import { assert, assertClose, expectThrow, getEngine, randomArray } from '../helpers.js';
import { gradcheck } from './gradcheck.js';
import * as ref from './reference.js';

/** The kernels `forward` runs, and with a tape its backward too (seeded with ones), by name. */
async function dispatches(engine: Engine, forward: () => Tensor, tape?: Tape): Promise<Map<string, number>> {
  const prof = (engine.batch.profiler = new KernelProfiler(engine.device));
  const y = engine.scope(forward);
  if (tape) tape.backward(y);
  y.dispose();
  engine.batch.submit();
  engine.batch.profiler = null;
  const counts = new Map((await prof.results()).map((k) => [k.kernel, k.count]));
  prof.destroy();
  return counts;
}

describe('engine/nn', () => {
  it('TransformerBlock with CroPA and drop-path: input and every parameter gradient against finite differences (40 random elements each)', async () => {
    const engine = await getEngine();
    const [B, C, V, D, H] = [3, 3, 4, 16, 2];
    for (const training of [false, true]) {
      const reg = new Registry(engine);
      const block = new TransformerBlock(reg, 'blocks.1', { dim: D, heads: H, mlpRatio: 2, layerId: 2, mask: 'cropa', dropPath: 0.5, rng: new Rng(4) });
      // Non-trivial norms and biases, so their gradients are exercised away from the init.
      const prng = new Rng(8);
      for (const p of reg.list())
        if (p.shape.length === 1) engine.device.queue.writeBuffer(p.value.buffer, 0, randomArray(prng, p.value.size, 0.5).map((v) => (p.name.endsWith('weight') ? 1 + v : v)));
      // The block draws its two drop-path factor sets from call.rng in this order: attention, MLP.
      const r = new Rng(21);
      const draw = () => Float64Array.from({ length: B }, () => (r.next() < 0.5 ? 2 : 0));
      const factors: [Float64Array, Float64Array] | undefined = training ? [draw(), draw()] : undefined;
      await gradcheck(engine, {
        name: `block training=${training}`,
        inputs: [{ name: 'x', shape: [B, C * V, D] }],
        params: reg,
        gpu: (g, [x]) => block.forward(g, x, { C, V, training, rng: new Rng(21) }),
        cpu: ([x], p) => ref.block(x, B, C, V, { dim: D, heads: H, hidden: 2 * D, eps: 1e-5, mask: 'cropa', p: (s) => p(`blocks.1.${s}`) }, factors),
        tolGrad: 2e-4,
        // ~3 ms per float64 block forward: a random 40 elements of each tensor bounds the CPU time
        maxPerInput: 40,
      });
      if (engine.device.features.has('timestamp-query')) {
        // without drop-path the two residual adds are in proj's and fc2's epilogues; with it, each is one
        // pass with its branch's drop-path (no add or scale of its own)
        const x = engine.upload(randomArray(new Rng(2), B * C * V * D), [B, C * V, D]);
        const g = new Tape(engine);
        const counts = await dispatches(engine, () => block.forward(g, x, { C, V, training, rng: new Rng(21) }));
        const passes = [...counts.keys()].filter((k) => /^elementwise\./.test(k));
        const fused = counts.get('elementwise.addScaledGroups_v4') ?? 0;
        assert(fused === (training ? 2 : 0) && passes.length === (training ? 1 : 0), `training=${training}: residual passes ${passes.map((k) => `${k} ×${counts.get(k)}`)}`);
        g.clear();
        x.dispose();
      }
      reg.dispose();
    }
  });

  it('TransformerBlock in mixed precision: against float64; its norms, qkv, attention and fc1 write f16 for what reads them, so no activation is cast, in training or inference; in the backward, the gradients of the f16 qkv, attention output and hidden layer are f16 as written, so only the residual stream\'s gradient is cast, for proj and fc2', async () => {
    const engine = await getEngine();
    const [B, C, V, D, H] = [2, 3, 4, 16, 2];
    const reg = new Registry(engine);
    const block = new TransformerBlock(reg, 'blocks.1', { dim: D, heads: H, mlpRatio: 2, layerId: 2, mask: 'cropa', rng: new Rng(4), precision: 'f16' });
    const x = engine.upload(randomArray(new Rng(3), B * C * V * D), [B, C * V, D]);
    const g = new Tape(engine);
    try {
      if (!engine.device.features.has('shader-f16')) {
        // (SwiftShader) a clear error instead
        expectThrow(() => engine.scope(() => block.forward(g, x, { C, V })), /shader-f16/);
        return;
      }
      await gradcheck(engine, {
        name: 'block f16',
        inputs: [{ name: 'x', shape: [B, C * V, D] }],
        params: reg,
        gpu: (t, [xi]) => block.forward(t, xi, { C, V }),
        cpu: ([xi], p) => ref.block(xi, B, C, V, { dim: D, heads: H, hidden: 2 * D, eps: 1e-5, mask: 'cropa', p: (s) => p(`blocks.1.${s}`) }),
        tolForward: 1e-2,
        tolGrad: 1e-2,
        maxPerInput: 20,
      });
      if (!engine.device.features.has('timestamp-query')) return; // the profiler names the dispatches
      /** The f32 → f16 casts of one forward of the block; its attention reads qkv in f16, as written by
       *  the qkv Linear (the pipeline's key ends in _hi), and writes its output in f16 for proj (_h). */
      const casts = async () => {
        const counts = await dispatches(engine, () => block.forward(g, x, { C, V }));
        const attention = [...counts.keys()].filter((k) => k.startsWith('attention_fwd'));
        assert(attention.length === 1 && /_h_hi(_|$)/.test(attention[0]), `the attention reads an f16 qkv and writes an f16 output: ${attention}`);
        // four halves a thread, or pairs (kernels/cast.ts)
        return (counts.get('cast.f32_f16_v4') ?? 0) + (counts.get('cast.f32_f16') ?? 0);
      };
      // the four weights only (the norms', fc1's and the attention output's casts are gone)
      const training = await casts();
      assert(training === 4, `a block's forward casts ${training} tensors to f16, expected the 4 weights`);
      // The backward: the attention reads its output's gradient in f16 (written so by proj's dx
      // product) and writes qkv's in f16 (read as it is by the qkv Linear's products); fc1's GELU
      // backward reads the hidden layer's in f16. Nothing is widened.
      const both = await dispatches(engine, () => block.forward(g, x, { C, V }), g);
      const named = (re: RegExp) => [...both.keys()].filter((k) => re.test(k));
      const count = (re: RegExp) => named(re).reduce((n, k) => n + both.get(k)!, 0);
      const bwd = named(/^attention_bwd/);
      assert(bwd.length === 2 && bwd.every((k) => /_hd_hg(_|$)/.test(k)), `the attention backward reads and writes f16 gradients: ${bwd}`);
      assert(named(/^gelu\.bwd_f16_xf16_dyf16/).length === 1, `fc1's GELU backward reads an f16 gradient: ${named(/^gelu/)}`);
      // and both norms read theirs in f16, written so by the qkv's and fc1's dx products; norm2 adds
      // its dx to the residual stream's gradient itself (_acc: no temporary, no pass to add it)
      assert(count(/^layernorm\.bwd.*_dyh(_|$)/) === 2 && count(/^layernorm\.bwd/) === 2 && count(/^layernorm\.bwd.*_acc$/) === 1, `the norms' backwards: ${named(/^layernorm\.bwd/)}`);
      assert(count(/^elementwise\.accumulate/) === 0, `no gradient should be added in a pass of its own: ${named(/^elementwise/)}`);
      assert(count(/^cast\.f32_f16/) === 6, `forward and backward cast ${count(/^cast\.f32_f16/)} tensors to f16, expected the 4 weights and proj's and fc2's output gradients`);
      assert(count(/^cast\.f16_f32/) === 0, `the backward widens ${count(/^cast\.f16_f32/)} tensors`);
      // inference (no gradients) alike
      for (const p of reg.list()) p.requiresGrad = false;
      const inference = await casts();
      assert(inference === 4, `inference casts ${inference} tensors to f16, expected the 4 weights`);
    } finally {
      g.clear();
      x.dispose();
      reg.dispose();
    }
  });

  it('names parameters as the PyTorch state_dict and initialises them as the reference', async () => {
    const engine = await getEngine();
    const reg = new Registry(engine);
    const D = 32;
    const rng = new Rng(0);
    const blocks = [1, 2].map((id) => new TransformerBlock(reg, `blocks.${id - 1}`, { dim: D, heads: 4, layerId: id, mask: 'cropa', rng }));
    void blocks;
    const names = reg.names().filter((n) => n.startsWith('blocks.1.'));
    const want = ['norm1.weight', 'norm1.bias', 'attn.qkv.weight', 'attn.proj.weight', 'attn.proj.bias', 'norm2.weight', 'norm2.bias', 'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias'];
    assert(names.join() === want.map((w) => `blocks.1.${w}`).join(), `names: ${names}`);
    assert(reg.get('blocks.0.attn.qkv.weight').shape.join() === `${3 * D},${D}`, 'weights stored [out, in]');
    assert(reg.count() === 2 * (2 * 2 * D + 3 * D * D + D * D + D + 4 * D * D + 4 * D + 4 * D * D + D), `count ${reg.count()}`);
    const std = async (name: string) => {
      const v = await engine.read(reg.get(name).value);
      return Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
    };
    const qkv = await std('blocks.1.attn.qkv.weight');
    assert(Math.abs(qkv - 0.02) < 0.002, `qkv std ${qkv}`);
    for (const [name, layer] of [
      ['blocks.0.attn.proj.weight', 1],
      ['blocks.1.mlp.fc2.weight', 2],
    ] as const) {
      const s = await std(name);
      const want = 0.02 / Math.sqrt(2 * layer);
      assert(Math.abs(s - want) < 0.15 * want, `${name} std ${s}, want ${want}`);
    }
    const w = await engine.read(reg.get('blocks.0.norm1.weight').value);
    const b = await engine.read(reg.get('blocks.0.mlp.fc1.bias').value);
    assert(w.every((x) => x === 1) && b.every((x) => x === 0), 'LayerNorm 1/0, biases 0');
    const decayed = reg.list().filter((p) => p.weightDecay).map((p) => p.name);
    assert(decayed.every((n) => n.endsWith('.weight') && !n.includes('norm')) && decayed.length === 8, `weight decay on weights only: ${decayed}`);
    let dup = '';
    try {
      new Linear(reg, 'blocks.0.attn.qkv', D, D, { rng });
    } catch (e) {
      dup = (e as Error).message;
    }
    assert(/already exists/.test(dup), 'duplicate names are refused');
    reg.dispose();
  });

  it('AdamW: one step as torch.optim.AdamW, decay only on weights, skipping parameters without a gradient', async () => {
    const engine = await getEngine();
    const reg = new Registry(engine);
    const rng = new Rng(3);
    const lin = new Linear(reg, 'fc', 4, 3, { rng, std: 0.5 });
    const ln = new LayerNorm(reg, 'norm', 4);
    const g = new Tape(engine);
    const x = engine.upload(randomArray(rng, 8), [2, 4]);
    const t = engine.upload(randomArray(rng, 6), [2, 3]);
    const opt = new AdamW(engine, reg, { lr: 0.1, weightDecay: 0.5 });
    const before = new Map(await Promise.all(reg.list().map(async (p) => [p.name, await engine.read(p.value)] as const)));
    engine.scope(() => g.backward(ops.smoothL1(g, lin.forward(g, x), t)));
    const grads = new Map(await Promise.all(reg.list().filter((p) => p.hasGrad).map(async (p) => [p.name, await engine.read(p.grad!)] as const)));
    assert(!reg.get('norm.weight').hasGrad, 'the unused LayerNorm got no gradient');
    engine.scope(() => opt.step());
    for (const p of reg.list()) {
      const after = await engine.read(p.value);
      const p0 = before.get(p.name)!;
      const gr = grads.get(p.name);
      const want = p0.map((v, i) => {
        if (!gr) return v;
        const wd = p.name === 'fc.weight' ? 0.5 : 0;
        const m = 0.1 * gr[i], vv = 0.001 * gr[i] * gr[i];
        return v * (1 - 0.1 * wd) - (0.1 / 0.1) * (m / (Math.sqrt(vv) / Math.sqrt(0.001) + 1e-8));
      });
      assertClose(after, want, 1e-6, `AdamW ${p.name}`);
    }
    void ln;
    [x, t].forEach((a) => a.dispose());
    opt.dispose();
    reg.dispose();
  });

  it('clips the global gradient norm on the GPU (no readback)', async () => {
    const engine = await getEngine();
    const reg = new Registry(engine);
    const a = reg.create('a', [3], Float32Array.of(0, 0, 0));
    const b = reg.create('b', [2], Float32Array.of(0, 0));
    const g = new Tape(engine);
    const target = engine.upload(Float32Array.of(30, 0, -40, 0, 0));
    // loss = smoothL1 mean over 5 with |d| > 1 everywhere but the zeros: gradient sign(d)/5.
    engine.scope(() => {
      const y = ops.reshape(g, ops.scatterRows(g, ops.reshape(g, a.value, [3, 1]), engine.upload(Uint32Array.of(0, 1, 2), [3], 'u32'), 5), [5]);
      const z = ops.add(g, y, ops.scatterRows(g, ops.reshape(g, b.value, [2, 1]), engine.upload(Uint32Array.of(3, 4), [2], 'u32'), 5, [5]));
      g.backward(ops.smoothL1(g, z, target));
    });
    const ga = await engine.read(a.grad!);
    assertClose(ga, [-0.2, 0, 0.2], 1e-6, 'gradient of a');
    const opt = new AdamW(engine, reg, { lr: 1, maxGradNorm: 0.1, beta1: 0, beta2: 0, eps: 0 });
    opt.step();
    const norm = Math.sqrt((await engine.read(opt.gradNormSq!))[0]);
    assertClose([norm], [Math.sqrt(0.08)], 1e-6, 'norm before clipping');
    assertClose(await engine.read(a.grad!), ga.map((v) => (v * 0.1) / (Math.sqrt(0.08) + 1e-6)), 1e-5, 'clipped gradient');
    target.dispose();
    opt.dispose();
    reg.dispose();
  });

  it('AdamW with dynamic loss scaling: an Inf gradient skips the update (weights, moments, step count) and halves the scale; N good steps double it', async () => {
    const engine = await getEngine();
    const reg = new Registry(engine);
    const rng = new Rng(12);
    reg.create('w', [4, 3], randomArray(rng, 12));
    reg.create('b', [3], randomArray(rng, 3));
    const opt = new AdamW(engine, reg, { lr: 0.1, weightDecay: 0.5, maxGradNorm: 1 });
    const scaler = new LossScaler(engine, { init: 1024, growthInterval: 3 });
    /** Gradients as a backward seeded with `scale` would give them; one Inf when `overflow`. */
    const step = (scale: number, overflow = false) => {
      for (const p of reg.list()) {
        const g = randomArray(rng, p.value.size).map((v) => v * scale);
        if (overflow && p.name === 'b') g[1] = Infinity;
        p.grad?.dispose();
        p.grad = engine.upload(g, p.shape);
        p.hasGrad = true;
      }
      opt.step(0.1, scaler);
    };
    const snapshot = () => Promise.all(reg.list().flatMap((p) => [p.value, opt.state(p).m, opt.state(p).v]).map((t) => engine.read(t)));
    const expect = async (scale: number, goodSteps: number, skipped: number, updates: number, what: string) => {
      const s = await scaler.read();
      const n = await opt.readSteps();
      assert(s.scale === scale && s.goodSteps === goodSteps && s.skipped === skipped && n === updates && opt.steps === updates,
        `${what}: scale ${s.scale}, good ${s.goodSteps}, skipped ${s.skipped}, updates ${n} (steps ${opt.steps}); want ${scale}, ${goodSteps}, ${skipped}, ${updates}`);
    };
    step(1024);
    await expect(1024, 1, 0, 1, 'a good step');
    const before = await snapshot();
    step(1024, true);
    assert(opt.steps === 2, 'until readSteps, steps counts the calls');
    const after = await snapshot();
    before.forEach((a, k) => assert(a.every((v, i) => v === after[k][i]), `the overflowed step changed ${reg.list()[Math.floor(k / 3)].name} (${['value', 'm', 'v'][k % 3]})`));
    await expect(512, 0, 1, 1, 'the Inf step: skipped (no AdamW step counted, as torch), scale halved');
    for (let k = 0; k < 2; k++) step(512);
    await expect(512, 2, 1, 3, 'two good steps');
    step(512);
    await expect(1024, 0, 1, 4, 'the third good step in a row doubles the scale');
    scaler.dispose();
    opt.dispose();
    reg.dispose();
  });

  it('parseLossScale: dynamic, dynamic:<first scale>, a fixed number; clear errors', () => {
    assert(parseLossScale('dynamic') === 'dynamic' && parseLossScale('1024') === 1024, 'plain forms');
    assert(JSON.stringify(parseLossScale('dynamic:1e6')) === '{"init":1000000}', 'first scale');
    for (const bad of ['0', '-2', 'dynamic:', 'dynamic:x', 'dynamic:2:3', 'static', 'Infinity'])
      expectThrow(() => parseLossScale(bad), `--loss-scale: expected 'dynamic', 'dynamic:<first scale>' or a positive number, got '${bad}'`);
  });

  it('accumulates parameter gradients over backward calls until zeroGrad (micro-batches)', async () => {
    const engine = await getEngine();
    const reg = new Registry(engine);
    const lin = new Linear(reg, 'fc', 3, 2, { rng: new Rng(1) });
    const g = new Tape(engine);
    const x = engine.upload(randomArray(new Rng(2), 6), [2, 3]);
    const run = () => engine.scope(() => g.backward(ops.mean(g, ops.linear(g, x, lin.weight.value, lin.bias!.value), 0)));
    run();
    const once = await engine.read(lin.weight.grad!);
    run();
    assertClose(await engine.read(lin.weight.grad!), once.map((v) => 2 * v), 1e-6, 'two backward calls add up');
    reg.zeroGrad();
    run();
    assertClose(await engine.read(lin.weight.grad!), once, 1e-6, 'after zeroGrad the next backward overwrites');
    x.dispose();
    reg.dispose();
  });

  it('cosine schedule with linear warmup as timm CosineLRScheduler', () => {
    const s = { lr: 1e-3, totalSteps: 100, warmupSteps: 10, warmupLr: 1e-6, minLr: 1e-5 };
    assertClose([cosineLr(0, s)], [1e-6], 1e-12, 'starts at warmupLr');
    assertClose([cosineLr(5, s)], [1e-6 + (5 * (1e-3 - 1e-6)) / 10], 1e-12, 'linear warmup');
    // timm: after warmup the cosine runs on the undelayed step (warmup_prefix=False).
    assertClose([cosineLr(10, s)], [1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + Math.cos(Math.PI * 0.1))], 1e-12, 'first cosine step');
    assertClose([cosineLr(50, s)], [1e-5 + 0.5 * (1e-3 - 1e-5)], 1e-12, 'half way');
    assertClose([cosineLr(100, s), cosineLr(1000, s)], [1e-5, 1e-5], 1e-12, 'floor after the cycle');
  });
});
