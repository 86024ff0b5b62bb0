// The TensorFlow.js peer (bench/tfjs-jepa.ts) against our engine on the tiny preset: identical
// weights (read back from our model), inputs and masks must give the same encoder tokens,
// representation, loss, gradients and weights after one AdamW + EMA step, to fp32 tolerance; and the
// peer holds what it must and no more (its memory is part of the comparison).
import type * as tfjs from '@tensorflow/tfjs';
import type { Engine } from '../../engine/engine.js';
import { Rng } from '../../engine/random.js';
import type { Tensor } from '../../engine/tensor.js';
import { loadTfjs } from '../../bench/harness.js';
import { TfJepa } from '../../bench/tfjs-jepa.js';
import { encoderParamSpecs, makeConfig, predictorParamSpecs, type ParamSpec } from '../../model/config.js';
import { loadParams, readParams, uploadMask } from '../../model/encoder.js';
import { EcgJepa } from '../../model/jepa.js';
import { buildBatchMask, type BatchMask } from '../../model/masking.js';
import { assert, assertClose, getEngine } from '../helpers.js';

// Non-trivial weights (LN weights ≠ 1, biases ≠ 0) so no term hides behind an init value.
function weights(specs: readonly ParamSpec[], k0: number): Map<string, Float32Array> {
  const w = new Map<string, Float32Array>();
  specs.forEach(([name, shape], k) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const vector = shape.length === 1;
    const scale = name === 'mask_token' ? 0.5 : name.endsWith('.bias') ? 0.1 : vector ? 0.2 : 1 / Math.sqrt(shape[shape.length - 1]);
    const off = vector && !name.endsWith('.bias') ? 1 : 0;
    w.set(name, Float32Array.from({ length: n }, (_, i) => off + scale * Math.cos(0.613 * i + 0.0071 * i * i + 2.1 * (k + k0 + 1))));
  });
  return w;
}

const TOL = 1e-4;

describe('bench/tfjs-jepa: the TensorFlow.js peer agrees with the engine (tiny)', function () {
  this.timeout(120_000);
  // Weight decay on so the decoupled decay is compared too.
  const cfg = makeConfig('tiny', { optim: { weightDecay: 0.05 } });
  const B = 2;
  const C = cfg.leads.length;
  const P = cfg.patches;
  const L = cfg.patchSize * P;
  let engine: Engine;
  let tf: Awaited<ReturnType<typeof loadTfjs>>;
  let model: EcgJepa;
  let peer: TfJepa;
  let x: Tensor;
  let xt: tfjs.Tensor;
  const shared = buildBatchMask([[1, 2, 5, 6]], B, C, P);
  const perSample = buildBatchMask([[0, 3, 4, 8], [2, 5, 6, 9]], B, C, P);

  before(async () => {
    engine = await getEngine();
    tf = await loadTfjs(engine);
    model = new EcgJepa(engine, cfg, { seed: 5 });
    loadParams(model.student.reg, weights(encoderParamSpecs(cfg), 0));
    loadParams(model.teacher.reg, weights(encoderParamSpecs(cfg), 50));
    loadParams(model.predictor.reg, weights(predictorParamSpecs(cfg), 100));
    peer = await TfJepa.fromModel(tf, model);
    const r = new Rng(21);
    const xv = Float32Array.from({ length: B * C * L }, (_, i) => Math.sin(0.02 * (i % L) + (i / L) | 0) + 0.1 * r.normal());
    x = engine.upload(xv, [B, C, L]);
    xt = tf.tensor3d(xv, [B, C, L]);
  });
  after(() => {
    model?.dispose();
    x?.dispose();
    peer?.dispose();
    xt?.dispose();
  });

  async function ours(fn: () => Tensor): Promise<Float32Array> {
    const t = model.tape.noGrad(() => engine.scope(fn));
    const v = await engine.read(t);
    t.dispose();
    return v;
  }
  async function theirs(fn: () => tfjs.Tensor): Promise<Float32Array> {
    const t = tf.tidy(fn);
    const v = (await t.data()) as Float32Array;
    t.dispose();
    return v;
  }

  it('encoder: all tokens, masked (visible) tokens, mean-pooled representation', async () => {
    assertClose(await theirs(() => peer.encode(xt)), await ours(() => model.student.forward(model.tape, x)), TOL, 'tokens');
    for (const m of [shared, perSample]) {
      const got = await theirs(() => peer.encode(xt, m));
      assertClose(got, await ours(() => model.student.forward(model.tape, x, { mask: uploadMask(engine, m) })), TOL, `visible tokens (${m.shared ? 'shared' : 'per-sample'} mask)`);
    }
    const rep = model.representation(x);
    const want = await engine.read(rep);
    rep.dispose();
    assertClose(await theirs(() => peer.representation(xt)), want, TOL, 'representation');
  });

  it('JEPA loss with a shared and a per-sample mask', async () => {
    for (const m of [shared, perSample]) {
      const want = await ours(() => model.loss(x, m, false));
      const got = await theirs(() => peer.loss(xt, m));
      assertClose(got, want, TOL, `loss (${m.shared ? 'shared' : 'per-sample'} mask)`);
    }
  });

  it('gradients of every student and predictor parameter', async function () {
    const m = perSample;
    model.student.reg.zeroGrad();
    model.predictor.reg.zeroGrad();
    const loss = engine.scope(() => model.loss(x, m, true));
    model.tape.backward(loss);
    loss.dispose();
    const { value, grads } = peer.gradients(xt, m);
    value.dispose();
    try {
      for (const p of [...model.student.reg.list(), ...model.predictor.reg.list()]) {
        const want = await engine.read(p.grad!);
        assertClose((await grads.get(p.name)!.data()) as Float32Array, want, TOL, `grad ${p.name}`);
      }
    } finally {
      for (const g of grads.values()) g.dispose();
    }
  });

  async function compareWeights(what: string): Promise<void> {
    for (const [which, reg] of [['student', model.student.reg], ['teacher', model.teacher.reg], ['predictor', model.predictor.reg]] as const) {
      const got = await peer.readWeights(which);
      for (const [name, want] of await readParams(reg)) assertClose(got.get(name)!, want, TOL, `${what}: ${which} ${name}`);
    }
  }

  it('one AdamW + EMA step: the same loss, weights and next loss', async () => {
    const masks: BatchMask[] = [perSample, shared];
    for (const [i, m] of masks.entries()) {
      const opts = { lr: 1e-3, momentum: 0.9 };
      const l = model.trainStep(x, m, opts);
      const want = await engine.read(l);
      l.dispose();
      const lt = peer.trainStep(xt, m, opts);
      const got = (await lt.data()) as Float32Array;
      lt.dispose();
      assertClose(got, want, TOL, `step ${i} loss`);
      await compareWeights(`after step ${i}`);
    }
  });

  it('the peer holds each tensor once, and a training step leaves nothing behind', async () => {
    const count = (specs: readonly ParamSpec[]) => specs.reduce((s, [, shape]) => s + shape.reduce((a, b) => a * b, 1), 0);
    const E = count(encoderParamSpecs(cfg)), Pd = count(predictorParamSpecs(cfg));
    // student and predictor with AdamW's two moments, the teacher, the two positional tables
    const want = 4 * (3 * (E + Pd) + E + C * P * cfg.encoder.dim + P * cfg.predictor.dim);
    const before = tf.memory().numBytes;
    const other = await TfJepa.fromModel(tf, model);
    try {
      const held = tf.memory().numBytes - before;
      assert(held === want, `a new peer holds ${held} bytes, want ${want}`);
      other.trainStep(xt, shared).dispose(); // the first step also caches this mask's CroPA bias
      const settled = tf.memory().numBytes;
      other.trainStep(xt, shared).dispose();
      assert(tf.memory().numBytes === settled, `a second step left ${tf.memory().numBytes - settled} bytes behind`);
    } finally {
      other.dispose();
    }
  });
});
