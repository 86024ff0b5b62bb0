// The GPU model against the float64 reference on fixed weights, and training on a fixed batch.
import type { Engine } from '../../engine/engine.js';
import { Rng } from '../../engine/random.js';
import { Tape } from '../../engine/tape.js';
import type { Tensor } from '../../engine/tensor.js';
import { encoderParamSpecs, makeConfig, predictorParamSpecs, withLeads, type EcgJepaConfig, type ParamSpec } from '../../model/config.js';
import { Encoder, loadParams, readParams, uploadMask } from '../../model/encoder.js';
import { EcgJepa, schedules, TEACHER_PREFIX, type JepaOptions } from '../../model/jepa.js';
import { buildBatchMask, drawMask, type BatchMask } from '../../model/masking.js';
import { Predictor } from '../../model/predictor.js';
import { encoderForwardRef, jepaLossRef, predictorForwardRef } from '../../model/reference.js';
import { assert, assertClose, expectThrow, getEngine, isBrowser } from '../helpers.js';

// Deterministic non-trivial weights (LayerNorm weights ≠ 1, biases ≠ 0), float32.
function weights(specs: readonly ParamSpec[], k0: number): Map<string, Float32Array> {
  const w = new Map<string, Float32Array>();
  specs.forEach(([name, shape], k) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const scale = name === 'mask_token' ? 0.5 : name.endsWith('.bias') ? 0.1 : shape.length === 1 ? 0.2 : 1 / Math.sqrt(shape[shape.length - 1]);
    const off = shape.length === 1 && !name.endsWith('.bias') ? 1 : 0;
    w.set(name, Float32Array.from({ length: n }, (_, i) => off + scale * Math.sin(0.731 * i + 0.0137 * i * i + 1.37 * (k + k0 + 1))));
  });
  return w;
}

/** Smooth synthetic ECG-like signals [B, C, L]. */
function signal(cfg: EcgJepaConfig, B: number, seed: number): Float32Array {
  const C = cfg.leads.length;
  const L = cfg.patchSize * cfg.patches;
  const r = new Rng(seed);
  const x = new Float32Array(B * C * L);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++) {
      const f = 0.01 + 0.03 * r.next();
      const ph = 6 * r.next();
      for (let t = 0; t < L; t++) x[(b * C + c) * L + t] = Math.sin(f * t + ph) + 0.3 * Math.sin(3.1 * f * t) + 0.05 * r.normal();
    }
  return x;
}

const TOL = 1e-4;

describe('model/jepa: GPU forward against the float64 reference', () => {
  let engine: Engine;
  let tape: Tape;
  const cfg = makeConfig('tiny');
  const B = 2;
  const C = cfg.leads.length;
  const L = cfg.patchSize * cfg.patches;
  const sw = weights(encoderParamSpecs(cfg), 0);
  const tw = weights(encoderParamSpecs(cfg), 100);
  const pw = weights(predictorParamSpecs(cfg), 200);
  const xv = signal(cfg, B, 11);
  let enc: Encoder;
  let x: Tensor;

  before(async () => {
    engine = await getEngine();
    tape = new Tape(engine);
    enc = new Encoder(engine, cfg, new Rng(0));
    loadParams(enc.reg, sw);
    x = engine.upload(xv, [B, C, L]);
  });
  after(() => {
    enc?.dispose();
    x?.dispose();
  });

  /** Runs fn without recording, reads every tensor it returns, disposes them. */
  async function run(fn: () => Tensor[]): Promise<Float32Array[]> {
    const out = tape.noGrad(() => engine.scope(fn));
    const vals = [];
    for (const t of out) vals.push(await engine.read(t));
    out.forEach((t) => t.dispose());
    return vals;
  }

  it('encoder: all tokens and the mean-pooled representation', async () => {
    const ref = encoderForwardRef(cfg, sw, xv, B);
    const [tok, rep] = await run(() => [enc.forward(tape, x), enc.representation(tape, x)]);
    assertClose(tok, ref.tokens, TOL, 'tokens');
    assertClose(rep, ref.representation, TOL, 'representation');
  });

  it('encoder on the visible columns: one mask per batch, and per-sample masks', async () => {
    for (const masked of [[[1, 2, 5, 7]], [[1, 2, 5, 7], [0, 4, 8, 9]]]) {
      const mask = buildBatchMask(masked, B, C, cfg.patches);
      const ref = encoderForwardRef(cfg, sw, xv, B, mask.samples.map((s) => s.visible));
      const [tok] = await run(() => [enc.forward(tape, x, { mask: uploadMask(engine, mask) })]);
      assertClose(tok, ref.tokens, TOL, `visible tokens (${masked.length} mask(s))`);
    }
  });

  it('reduced leads (II, V3): the same weights with the rows of those leads', async () => {
    const sub = withLeads(cfg, ['II', 'V3']);
    const e2 = new Encoder(engine, sub, new Rng(0));
    loadParams(e2.reg, sw);
    const x2v = signal(sub, B, 12);
    const x2 = engine.upload(x2v, [B, 2, L]);
    const [rep] = await run(() => [e2.representation(tape, x2)]);
    assertClose(rep, encoderForwardRef(sub, sw, x2v, B).representation, TOL, 'reduced-lead representation');
    e2.dispose();
    x2.dispose();
  });

  it('predictor: per-lead predictions at the masked columns (shared and per-sample masks)', async () => {
    const pred = new Predictor(engine, cfg, new Rng(0));
    loadParams(pred.reg, pw);
    for (const masked of [[[1, 2, 5, 7]], [[1, 2, 5, 7], [0, 3, 4, 9]]]) {
      const mask = buildBatchMask(masked, B, C, cfg.patches);
      const ctxRef = encoderForwardRef(cfg, sw, xv, B, mask.samples.map((s) => s.visible)).tokens;
      const ref = predictorForwardRef(cfg, pw, ctxRef, B, mask.samples.map((s) => s.masked));
      const [out] = await run(() => [pred.forward(tape, engine.upload(Float32Array.from(ctxRef), [B, C * mask.numVisible, cfg.encoder.dim]), uploadMask(engine, mask))]);
      assertClose(out, ref, TOL, `predictions (${masked.length} mask(s))`);
    }
    pred.dispose();
  });

  it('JEPA loss: teacher targets (non-affine LN) and smooth-L1 equal the reference', async () => {
    const model = new EcgJepa(engine, cfg);
    loadParams(model.student.reg, sw);
    loadParams(model.teacher.reg, tw);
    loadParams(model.predictor.reg, pw);
    const mask = buildBatchMask([[1, 2, 5, 7]], B, C, cfg.patches);
    const ref = jepaLossRef(cfg, { student: sw, teacher: tw, predictor: pw }, xv, B, mask.samples[0].masked);
    const [target, loss] = await run(() => [model.targets(x, uploadMask(engine, mask)), model.loss(x, mask, false)]);
    assertClose(target, ref.target, TOL, 'targets');
    assertClose(loss, [ref.loss], TOL, 'loss');
    model.dispose();
  });
});

describe('model/jepa: memory', () => {
  it("targets() holds only its result once it returns (the teacher's forward is freed before the student's); a forward without gradients holds one block at a time, its peak the same at depth 2 and 6", async () => {
    const engine = await getEngine();
    const tape = new Tape(engine);
    const cfg = makeConfig('tiny');
    const [B, C, L] = [2, cfg.leads.length, cfg.patchSize * cfg.patches];
    const x = engine.upload(signal(cfg, B, 3), [B, C, L]);
    const model = new EcgJepa(engine, cfg);
    const mi = uploadMask(engine, buildBatchMask([[1, 2, 5, 7]], B, C, cfg.patches));
    const before = engine.pool.liveBytes;
    const target = model.targets(x, mi);
    const held = engine.pool.liveBytes - before;
    assert(held === target.buffer.size, `targets() left ${held} bytes allocated, its result ${target.buffer.size}`);
    [target, x, mi.visibleRows, mi.maskedRows, mi.visiblePos].forEach((t) => t.dispose());
    model.dispose();
    /** The pool's peak over live bytes during an encoder's forward without gradients. */
    const forwardPeak = async (depth: number) => {
      const enc = new Encoder(engine, makeConfig('tiny', { encoder: { depth } }), new Rng(0));
      const xs = engine.upload(signal(cfg, 16, 4), [16, C, L]);
      // an empty pool: no idle buffer of a larger size class is lent (the peak would count its size)
      await engine.releaseMemory();
      const base = engine.pool.liveBytes;
      engine.pool.resetPeak();
      const out = tape.noGrad(() => engine.scope(() => enc.forward(tape, xs)));
      const peak = engine.pool.peakBytes - base;
      [out, xs].forEach((t) => t.dispose());
      enc.dispose();
      return peak;
    };
    const [p2, p6] = [await forwardPeak(2), await forwardPeak(6)];
    assert(p6 <= p2, `an encoder forward of depth 6 peaked ${p6} bytes over its inputs, depth 2 ${p2}`);
  });
});

describe('model/jepa: initialisation', () => {
  it('every Linear weight is drawn with cfg.initStd; the MLP hidden width is floor(dim · mlpRatio), as the config counts it', async () => {
    const engine = await getEngine();
    const cfg = makeConfig('tiny', { initStd: 0.2, encoder: { mlpRatio: 2.55 } });
    const enc = new Encoder(engine, cfg, new Rng(3));
    const pred = new Predictor(engine, cfg, new Rng(4));
    try {
      const std = (a: Float32Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
      const got = new Map([...(await readParams(enc.reg)), ...(await readParams(pred.reg))]);
      // the weights no depth scaling divides: qkv and fc1 of every block, the embeddings
      const names = [...got.keys()].filter((n) => /(qkv|fc1)\.weight$|^(W_P|predictor_embed|predictor_proj)\.weight$/.test(n));
      assert(names.length === 2 * (cfg.encoder.depth + cfg.predictor.depth) + 3, `weights checked: ${names}`);
      for (const n of names) assert(Math.abs(std(got.get(n)!) / 0.2 - 1) < 0.1, `${n}: std ${std(got.get(n)!)}, want ≈ 0.2`);
      const fc1 = got.get('encoder_blocks.blocks.0.mlp.fc1.weight')!;
      assert(fc1.length === Math.floor(cfg.encoder.dim * 2.55) * cfg.encoder.dim, `fc1 has ${fc1.length} weights`);
    } finally {
      enc.dispose();
      pred.dispose();
    }
  });
});

/** Two training steps from one init, the batch `data` [B, C, L] whole or in `parts` micro-batches
 *  (with `mask`, or masks the model draws for the batch): the losses, the state after them (weights,
 *  teacher, AdamW's first moments) and the pool's peak over them. */
async function twoSteps(engine: Engine, cfg: EcgJepaConfig, data: Float32Array, B: number, o: { parts?: number; mask?: BatchMask; seed: number } & JepaOptions) {
  const { parts = 1, mask, ...opts } = o;
  const [C, L] = [cfg.leads.length, cfg.patchSize * cfg.patches];
  const model = new EcgJepa(engine, cfg, opts);
  const per = (B / parts) * C * L;
  const xs = Array.from({ length: parts }, (_, i) => engine.upload(data.subarray(i * per, (i + 1) * per), [B / parts, C, L]));
  await engine.releaseMemory();
  engine.pool.resetPeak();
  const losses: number[] = [];
  for (let i = 0; i < 2; i++) {
    const loss = model.trainStep(parts === 1 ? xs[0] : xs, mask);
    losses.push((await engine.read(loss))[0]);
    loss.dispose();
  }
  const peak = engine.pool.peakBytes;
  const state = new Map([...(await readParams(model.student.reg)), ...(await readParams(model.predictor.reg))]);
  for (const [name, v] of await readParams(model.teacher.reg)) state.set(TEACHER_PREFIX + name, v);
  for (const p of [...model.student.reg.list(), ...model.predictor.reg.list()]) state.set(`m.${p.name}`, await engine.read(model.opt.state(p).m));
  xs.forEach((t) => t.dispose());
  model.dispose();
  return { losses, state, peak };
}

describe('model/jepa: training', () => {
  it('the loss halves on a fixed batch within 60 steps, one submit per step, bind groups reused, EMA teacher exact', async () => {
    const engine = await getEngine();
    const cfg = makeConfig('tiny', { optim: { lr: 2e-3, weightDecay: 0.05, momentum: [0.9, 0.9] } });
    const B = 4;
    const model = new EcgJepa(engine, cfg, { seed: 3 });
    const x = engine.upload(signal(cfg, B, 5), [B, cfg.leads.length, cfg.patchSize * cfg.patches]);
    const mask = buildBatchMask([[2, 3, 6, 7]], B, cfg.leads.length, cfg.patches);
    const s0 = await readParams(model.student.reg);
    await engine.releaseMemory(); // what earlier tests left in the pool does not shape this loop's buffers
    const losses: number[] = [];
    let first = NaN;
    for (let i = 0; i < 60; i++) {
      const submits = engine.batch.submits, groups = engine.batch.bindGroupsCreated;
      const loss = model.trainStep(x, mask);
      assert(engine.batch.submits === submits + 1, `step ${i}: ${engine.batch.submits - submits} submits`);
      // The same shapes every step: from the third on (from an empty pool, as trimmed above; a
      // request may first take an idle buffer of a larger class, engine/pool.ts) the pool hands each
      // role its buffer again, so every bind group is a cached one.
      if (i >= 3) assert(engine.batch.bindGroupsCreated === groups, `step ${i}: ${engine.batch.bindGroupsCreated - groups} bind groups made anew`);
      if (i === 0 || i % 10 === 9) {
        const v = (await engine.read(loss))[0];
        losses.push(v);
        if (i === 0) first = v;
      }
      loss.dispose();
      if (losses.length > 1 && losses[losses.length - 1] < first / 2) break;
    }
    console.log(`      loss: ${losses.map((v) => v.toExponential(2)).join(' ')}`);
    const last = losses[losses.length - 1];
    assert(Number.isFinite(first) && last < first / 2, `loss ${first} -> ${last}`);
    // EMA, checked exactly on one more step: teacher ← m·teacher + (1 − m)·student(after AdamW).
    const t0 = await readParams(model.teacher.reg);
    model.trainStep(x, mask, { momentum: 0.75 }).dispose();
    const s1 = await readParams(model.student.reg);
    const t1 = await readParams(model.teacher.reg);
    for (const [name, v] of t1) {
      const want = Float64Array.from(v, (_, i) => 0.75 * t0.get(name)![i] + 0.25 * s1.get(name)![i]);
      assertClose(v, want, 1e-6, `EMA ${name}`);
    }
    const name = 'encoder_blocks.blocks.0.attn.qkv.weight';
    assert(t1.get(name)!.some((v, i) => v !== s0.get(name)![i]) && t1.get(name)!.some((v, i) => v !== s1.get(name)![i]), 'teacher is neither the initial nor the current student');
    model.dispose();
    x.dispose();
  });

  it('micro-batches: steps of the batch in 2 and 4 parts (its mask given or drawn, drop-path on) equal the whole batch\'s (loss, weights, moments, teacher) up to rounding, with less memory at its peak; mismatched parts refused', async () => {
    const engine = await getEngine();
    // drop-path too: the parts take the whole batch's draws (partDraws)
    const cfg = makeConfig('tiny', { optim: { lr: 2e-3, weightDecay: 0.05 }, mask: { perSample: true }, dropPath: 0.3 });
    const [B, C, L] = [8, cfg.leads.length, cfg.patchSize * cfg.patches];
    const data = signal(cfg, B, 9);
    const mask = drawMask(new Rng(2), cfg.mask, B, C, cfg.patches);
    const run = (parts: number, given = true) => twoSteps(engine, cfg, data, B, { parts, mask: given ? mask : undefined, seed: 6 });
    for (const given of [true, false]) {
      const whole = await run(1, given);
      for (const parts of [2, 4]) {
        const split = await run(parts, given);
        const what = `${parts} parts, ${given ? 'a given mask' : 'drawn masks'}`;
        assertClose(split.losses, whole.losses, 1e-5, `${what}: losses`);
        for (const [name, v] of whole.state) assertClose(split.state.get(name)!, v, 2e-4, `${what}: ${name}`);
        assert(split.peak < whole.peak, `${what}: peak ${split.peak} bytes, ${whole.peak} whole`);
      }
    }
    const model = new EcgJepa(engine, cfg, { seed: 6 });
    const [a, b] = [engine.zeros([4, C, L]), engine.zeros([3, C, L])];
    expectThrow(() => model.recordStep([a, b], mask), /micro-batches must share one shape \[b, C, L\], got \[4,3,500\], \[3,3,500\]/);
    expectThrow(() => model.recordStep([a], mask), /a mask of 8 samples for a batch of 4/);
    [a, b].forEach((t) => t.dispose());
    model.dispose();
  });

  it('recomputed block activations: two steps (drop-path on, f32 and f16 matmuls) give the bits of holding them (losses, weights, moments, teacher), with less memory at the peak; micro-batches too', async () => {
    const engine = await getEngine();
    const cfg = makeConfig('tiny', { optim: { lr: 2e-3, weightDecay: 0.05 }, mask: { perSample: true }, dropPath: 0.3, encoder: { depth: 4 } });
    const [B, C, L] = [4, cfg.leads.length, cfg.patchSize * cfg.patches];
    const data = signal(cfg, B, 10);
    // masks and drop-path drawn by the model
    const run = (recompute: boolean, precision: 'f32' | 'f16', parts = 1) => twoSteps(engine, cfg, data, B, { parts, seed: 7, recompute, precision });
    const precisions = engine.device.features.has('shader-f16') ? (['f32', 'f16'] as const) : (['f32'] as const);
    for (const precision of precisions)
      for (const parts of [1, 2]) {
        const [held, again] = [await run(false, precision, parts), await run(true, precision, parts)];
        const what = `${precision}, ${parts} part${parts > 1 ? 's' : ''}`;
        assert(again.losses.every((v, i) => Object.is(v, held.losses[i])), `${what}: losses ${again.losses} recomputed, ${held.losses} held`);
        for (const [name, v] of held.state) {
          const r = again.state.get(name)!;
          const bad = v.findIndex((x, i) => !Object.is(x, r[i]));
          assert(bad < 0, `${what}: ${name}[${bad}] is ${r[bad]} recomputed, ${v[bad]} held`);
        }
        assert(again.peak < held.peak, `${what}: peak ${again.peak} bytes recomputed, ${held.peak} held`);
      }
  });

  it('drawn masks (per-sample multiblock) with drop-path: steps run and stay finite', async () => {
    const engine = await getEngine();
    const cfg = makeConfig('tiny', { dropPath: 0.3, mask: { perSample: true } });
    const model = new EcgJepa(engine, cfg, { seed: 4, itersPerEpoch: 5 });
    const x = engine.upload(signal(cfg, 3, 6), [3, cfg.leads.length, cfg.patchSize * cfg.patches]);
    for (let i = 0; i < 2; i++) {
      const loss = model.trainStep(x);
      const v = (await engine.read(loss))[0];
      loss.dispose();
      assert(Number.isFinite(v) && v > 0, `step ${i}: loss ${v}`);
    }
    model.dispose();
    x.dispose();
  });

  it('dynamic loss scaling: a step with non-finite gradients changes no weight or moment, the teacher only by its EMA, and halves the scale; a checkpoint carries it', async () => {
    const engine = await getEngine();
    const cfg = makeConfig('tiny', { optim: { lr: 1e-3, weightDecay: 0.05, momentum: [0.9, 0.9] } });
    const B = 2, C = cfg.leads.length, L = cfg.patchSize * cfg.patches;
    const good = signal(cfg, B, 8);
    const bad = good.slice();
    bad[10] = NaN; // f32 has no overflow to provoke here: NaN in a visible patch makes every gradient NaN
    const [x, xBad] = [engine.upload(good, [B, C, L]), engine.upload(bad, [B, C, L])];
    const mask = buildBatchMask([[2, 3, 6, 7]], B, C, cfg.patches);
    const a = new EcgJepa(engine, cfg, { seed: 9, lossScale: 'dynamic' });
    a.trainStep(x, mask).dispose();
    const before = await a.toCheckpoint();
    const lb = a.trainStep(xBad, mask);
    assert(Number.isNaN((await engine.read(lb))[0]), 'the poisoned step has a NaN loss');
    lb.dispose();
    const after = await a.toCheckpoint();
    const momentum = cfg.optim.momentum[0];
    for (const [name, t] of before.tensors) {
      const u = after.tensors.get(name)!.data;
      if (!name.startsWith(TEACHER_PREFIX)) {
        assert(t.data.every((v, i) => v === u[i]), `the skipped step changed ${name}`);
        continue;
      }
      // as the reference loop: the EMA follows even a skipped update, toward the unchanged student
      const s = before.tensors.get(name.slice(TEACHER_PREFIX.length))!.data;
      const err = Math.max(...Array.from(u, (v, i) => Math.abs(v - (momentum * t.data[i] + (1 - momentum) * s[i]))));
      assert(err < 1e-6, `teacher ${name} after the skipped step: off the EMA by ${err}`);
    }
    const ls = (ck: typeof after) => ck.state.extra!.lossScale as { scale: number; goodSteps: number; skipped: number; dynamic: boolean };
    assert(ls(before).scale === 2 ** 16 && ls(before).goodSteps === 1 && before.state.extra!.adamSteps === 1, `before: ${JSON.stringify(before.state.extra)}`);
    assert(after.state.step === 2 && after.state.extra!.adamSteps === 1, `the step counts, the AdamW update does not: ${after.state.step}, ${after.state.extra!.adamSteps}`);
    assert(ls(after).scale === 2 ** 15 && ls(after).goodSteps === 0 && ls(after).skipped === 1 && ls(after).dynamic, `after: ${JSON.stringify(ls(after))}`);
    // a model restored from that checkpoint goes on exactly as the original
    const b = new EcgJepa(engine, cfg, { seed: 123, lossScale: 'dynamic' });
    b.fromCheckpoint(after);
    const [la, lr] = [a.trainStep(x, mask), b.trainStep(x, mask)];
    const [va, vb] = [(await engine.read(la))[0], (await engine.read(lr))[0]];
    assert(va === vb && Number.isFinite(va), `losses ${va} and ${vb}`);
    const [wa, wb] = [await a.studentWeights(), await b.studentWeights()];
    for (const [k, v] of wa) assert(v.every((e, i) => e === wb.get(k)![i]), `weights ${k} after the resumed step`);
    const [sa, sb] = [await a.lossScaleState(), await b.lossScaleState()];
    assert(JSON.stringify(sa) === JSON.stringify(sb) && a.opt.steps === 2 && b.opt.steps === 2, `${JSON.stringify(sa)} vs ${JSON.stringify(sb)}, updates ${a.opt.steps}, ${b.opt.steps}`);
    [la, lr, x, xBad].forEach((t) => t.dispose());
    a.dispose();
    b.dispose();
  });

  if (!isBrowser)
    it('checkpoint resume (Node): the next step after a reload equals the uninterrupted run', async () => {
      const engine = await getEngine();
      const { saveCheckpoint, loadCheckpoint } = await import('../../model/checkpoint.js');
      const fs = await import('node:fs/promises');
      const os = await import('node:os');
      const path = await import('node:path');
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ecg-jepa-resume-'));
      const cfg = makeConfig('tiny', { optim: { lr: 1e-3, weightDecay: 0.05 } });
      const x = engine.upload(signal(cfg, 2, 8), [2, cfg.leads.length, cfg.patchSize * cfg.patches]);
      const a = new EcgJepa(engine, cfg, { seed: 9, itersPerEpoch: 4 });
      for (let i = 0; i < 2; i++) a.trainStep(x).dispose();
      await saveCheckpoint(`${dir}/ck`, await a.toCheckpoint());
      const la = a.trainStep(x);
      const want = (await engine.read(la))[0];
      la.dispose();
      const b = new EcgJepa(engine, cfg, { seed: 123, itersPerEpoch: 4 }); // other init: all of it must come from the file
      b.fromCheckpoint(await loadCheckpoint(`${dir}/ck`, { expect: cfg }));
      assert(b.step === 2 && b.opt.steps === 2, `step ${b.step}, adam ${b.opt.steps}`);
      const lb = b.trainStep(x);
      const got = (await engine.read(lb))[0];
      lb.dispose();
      assert(got === want, `resumed loss ${got}, uninterrupted ${want}`);
      const wa = await a.studentWeights();
      const wb = await b.studentWeights();
      for (const [k, v] of wa) assert(v.every((e, i) => e === wb.get(k)![i]), `weights ${k} after the resumed step`);
      let msg = '';
      try {
        new EcgJepa(engine, makeConfig('tiny', { encoder: { dim: 64 } })).fromCheckpoint(await loadCheckpoint(`${dir}/ck`));
      } catch (e) {
        msg = (e as Error).message;
      }
      assert(/encoder: checkpoint \{"dim":32/.test(msg), msg);
      a.dispose();
      b.dispose();
      x.dispose();
      await fs.rm(dir, { recursive: true, force: true });
    });

  it('schedules: warm-up from 1e-6 to the peak over 5 epochs, cosine to 1e-6, momentum 0.996 → 1', () => {
    const s = schedules(makeConfig('base'), 10);
    assert(s.totalSteps === 1000, 'total');
    assert(s.lr(0) === 1e-6 && Math.abs(s.lr(50) - 5e-5 * (0.5 + 0.5 * Math.cos(Math.PI * 0.05)) - 1e-6 * (0.5 - 0.5 * Math.cos(Math.PI * 0.05))) < 1e-15, `lr ${s.lr(0)} ${s.lr(50)}`);
    assert(s.lr(1000) === 1e-6 && s.momentum(0) === 0.996 && Math.abs(s.momentum(500) - 0.998) < 1e-15 && s.momentum(1000) === 1, 'ends');
  });
});
