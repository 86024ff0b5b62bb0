// Training a tiny ViT on the tape: it overfits a fixed batch, memory stays flat over 200 steps,
// and each step is exactly one submit (forward, backward and AdamW all recorded into one batch);
// mixed precision with a static or a dynamic loss scale.
import type { Engine } from '../../engine/engine.js';
import { LayerNorm, Linear, Registry, TransformerBlock } from '../../engine/nn.js';
import * as ops from '../../engine/ops/index.js';
import { LossScaler, type LossScaleOption } from '../../engine/lossscale.js';
import { AdamW, cosineLr } from '../../engine/optim.js';
import { Rng } from '../../engine/random.js';
import { Tape } from '../../engine/tape.js';
import type { Tensor } from '../../engine/tensor.js';
import { assert, assertClose, getEngine, randomArray } from '../helpers.js';

const [B, C, V, F, D, H] = [2, 3, 4, 8, 16, 2];
const T = C * V;

/** Patch embedding, a fixed positional table re-added before every block (as ECG-JEPA), two
 *  CroPA blocks, final LayerNorm and a linear head regressing F values per token. */
class TinyViT {
  readonly reg: Registry;
  readonly embed: Linear;
  readonly blocks: TransformerBlock[];
  readonly norm: LayerNorm;
  readonly head: Linear;
  readonly pos: Tensor;

  constructor(engine: Engine, dropPath: number, precision: 'f32' | 'f16' = 'f32') {
    const rng = new Rng(1);
    this.reg = new Registry(engine);
    this.embed = new Linear(this.reg, 'W_P', F, D, { rng, precision });
    this.blocks = [1, 2].map((id) => new TransformerBlock(this.reg, `blocks.${id - 1}`, { dim: D, heads: H, layerId: id, mask: 'cropa', dropPath: dropPath * (id - 1), rng, precision }));
    this.norm = new LayerNorm(this.reg, 'norm', D);
    this.head = new Linear(this.reg, 'head', D, F, { rng, precision });
    const pos = new Float32Array(T * D);
    for (let t = 0; t < T; t++) for (let d = 0; d < D; d++) pos[t * D + d] = Math.sin((t + 1) * (d + 1) * 0.37);
    this.pos = engine.upload(pos, [T, D]);
  }

  loss(g: Tape, x: Tensor, target: Tensor, rng: Rng): Tensor {
    let h = this.embed.forward(g, x);
    for (const b of this.blocks) h = b.forward(g, ops.addBroadcast(g, h, this.pos), { C, V, training: true, rng });
    return ops.smoothL1(g, this.head.forward(g, this.norm.forward(g, h)), target);
  }

  dispose(): void {
    this.reg.dispose();
    this.pos.dispose();
  }
}

interface Setup {
  engine: Engine;
  model: TinyViT;
  opt: AdamW;
  scaler: LossScaler;
  step: (i: number) => Tensor;
  dispose: () => void;
}

interface SetupOptions {
  precision?: 'f32' | 'f16';
  lossScale?: LossScaleOption;
  maxGradNorm?: number;
}

async function setup(dropPath: number, lr: (i: number) => number, o: SetupOptions = {}): Promise<Setup> {
  const engine = await getEngine();
  const model = new TinyViT(engine, dropPath, o.precision);
  const opt = new AdamW(engine, model.reg, { lr: 0, weightDecay: 0.05, maxGradNorm: o.maxGradNorm });
  const scaler = new LossScaler(engine, o.lossScale ?? 1);
  const g = new Tape(engine);
  const data = new Rng(2);
  const x = engine.upload(randomArray(data, B * T * F), [B, T, F]);
  const target = engine.upload(randomArray(data, B * T * F), [B, T, F]);
  const rng = new Rng(3);
  // One training step: everything is recorded into engine.batch; the caller flushes once.
  const step = (i: number) => {
    model.reg.zeroGrad();
    const loss = engine.scope(() => model.loss(g, x, target, rng));
    // Loss scaling (mixed precision): gradients are computed times the scale, AdamW divides it out.
    scaler.backward(g, loss);
    opt.step(lr(i), scaler);
    return loss;
  };
  await engine.sync();
  return {
    engine,
    model,
    opt,
    scaler,
    step,
    dispose: () => {
      [x, target].forEach((t) => t.dispose());
      opt.dispose();
      scaler.dispose();
      model.dispose();
    },
  };
}

/** Runs `steps` steps (a submit each) and returns the first and the last loss. */
async function firstAndLastLoss(s: Setup, steps: number): Promise<[number, number]> {
  const first = s.step(0);
  let last = first;
  for (let i = 1; i < steps; i++) {
    if (last !== first) last.dispose();
    last = s.step(i);
    s.engine.flush();
  }
  const r: [number, number] = [(await s.engine.read(first))[0], (await s.engine.read(last))[0]];
  first.dispose();
  if (last !== first) last.dispose();
  return r;
}

describe('engine: training a tiny ViT on the tape', () => {
  it('overfits a fixed batch: loss falls by more than 100x within 300 steps', async () => {
    const steps = 300;
    const s = await setup(0, (i) => cosineLr(i, { lr: 1e-2, totalSteps: steps, warmupSteps: 10, warmupLr: 1e-3, minLr: 1e-4 }));
    const losses: number[] = [];
    let first = 0;
    for (let i = 0; i < steps; i++) {
      const loss = s.step(i);
      s.engine.flush();
      if (i === 0 || i % 50 === 49) {
        const v = (await s.engine.read(loss))[0];
        losses.push(v);
        if (i === 0) first = v;
        if (v < first / 100) {
          loss.dispose();
          break;
        }
      }
      loss.dispose();
    }
    console.log(`      loss every 50 steps: ${losses.map((v) => v.toExponential(2)).join(' ')}`);
    const last = losses[losses.length - 1];
    assert(Number.isFinite(first) && last < first / 100, `loss ${first} -> ${last}`);
    s.dispose();
  });

  it('trains in mixed precision (f16 matmul inputs, static loss scale): loss falls by more than 10x in 100 steps', async function () {
    if (!(await getEngine()).device.features.has('shader-f16')) {
      // Without shader-f16 (SwiftShader) the f16 model must refuse to train, naming the feature.
      let msg = '';
      try {
        (await setup(0, () => 1e-2, { precision: 'f16', lossScale: 1024 })).step(0);
      } catch (e) {
        msg = (e as Error).message;
      }
      assert(/shader-f16/.test(msg), `expected an error naming shader-f16, got '${msg}'`);
      return;
    }
    const s = await setup(0, () => 1e-2, { precision: 'f16', lossScale: 1024 });
    const [a, b] = await firstAndLastLoss(s, 100);
    console.log(`      f16 loss: ${a.toExponential(2)} -> ${b.toExponential(2)}`);
    assert(b < a / 10, `f16 loss ${a} -> ${b}`);
    s.dispose();
  });

  it('dynamic loss scaling without overflow equals the static scale (clipping on): the same weights bit for bit', async () => {
    const run = async (lossScale: LossScaleOption) => {
      const s = await setup(0, (i) => 1e-2 * (1 - i / 40), { lossScale, maxGradNorm: 0.5 });
      for (let i = 0; i < 25; i++) {
        s.step(i).dispose();
        s.engine.flush();
      }
      const w = await Promise.all(s.model.reg.list().map((p) => s.engine.read(p.value)));
      const r = { w, scale: await s.scaler.read(), updates: await s.opt.readSteps() };
      s.dispose();
      return r;
    };
    const fixed = await run(2 ** 16);
    const dyn = await run('dynamic');
    assert(dyn.scale.scale === 2 ** 16 && dyn.scale.skipped === 0 && dyn.updates === 25, `dynamic: ${JSON.stringify(dyn.scale)}, ${dyn.updates} updates`);
    fixed.w.forEach((a, k) => assert(a.every((v, i) => v === dyn.w[k][i]), `parameter ${k} differs between the static and the dynamic run`));
    // growing the scale (powers of two) changes nothing either, up to rounding in the clip norm
    const grown = await run({ growthInterval: 10 });
    assert(grown.scale.scale === 2 ** 18 && grown.scale.goodSteps === 5 && grown.scale.skipped === 0, `grown: ${JSON.stringify(grown.scale)}`);
    fixed.w.forEach((a, k) => assertClose(grown.w[k], a, 1e-6, `parameter ${k} after the scale grew`));
  });

  it('mixed precision with a start scale too large for f16: overflowed steps are skipped and halve the scale, then it trains', async function () {
    if (!(await getEngine()).device.features.has('shader-f16')) this.skip();
    const s = await setup(0, () => 1e-2, { precision: 'f16', lossScale: { init: 2 ** 40 } });
    const [a, b] = await firstAndLastLoss(s, 100);
    const st = await s.scaler.read();
    const updates = await s.opt.readSteps();
    console.log(`      f16 from scale 2^40: ${st.skipped} steps skipped, scale now 2^${Math.log2(st.scale)}; loss ${a.toExponential(2)} -> ${b.toExponential(2)}`);
    assert(st.skipped > 0 && st.scale === 2 ** (40 - st.skipped) && updates === 100 - st.skipped, `skipped ${st.skipped}, scale ${st.scale}, updates ${updates}`);
    assert(b < a / 10, `f16 loss ${a} -> ${b}`);
    s.dispose();
  });

  it('200 steps with drop-path: flat live memory from step 10 on, one submit per step', async () => {
    const s = await setup(0.2, () => 1e-3);
    const { engine } = s;
    engine.pool.resetPeak();
    const base = engine.pool.stats();
    let at10 = base;
    for (let i = 0; i < 200; i++) {
      const submits = engine.batch.submits;
      const loss = s.step(i);
      loss.dispose();
      engine.flush();
      assert(engine.batch.submits === submits + 1, `step ${i}: ${engine.batch.submits - submits} submits`);
      const st = engine.pool.stats();
      if (i === 10) at10 = st;
      if (i > 10) assert(st.liveBytes === at10.liveBytes && st.liveBuffers === at10.liveBuffers, `step ${i}: live ${st.liveBytes} B in ${st.liveBuffers} buffers, at step 10 ${at10.liveBytes} B in ${at10.liveBuffers}`);
    }
    await engine.sync();
    const st = engine.pool.stats();
    const params = s.model.reg.count(true) * 4;
    console.log(
      `      params ${params} B; live after step 10: ${at10.liveBytes} B in ${at10.liveBuffers} buffers (before training ${base.liveBytes} B); ` +
        `peak ${st.peakBytes} B; pool created ${st.created} buffers, reused ${st.reused}`,
    );
    s.dispose();
  });
});
