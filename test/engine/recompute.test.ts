// engine/recompute.ts: a function's activations recomputed in the backward instead of held.
import * as ops from '../../engine/ops/index.js';
import { Rng, type UniformSource } from '../../engine/random.js';
import { Registry } from '../../engine/nn.js';
import { recompute } from '../../engine/recompute.js';
import { Tape } from '../../engine/tape.js';
import type { Tensor } from '../../engine/tensor.js';
import { assert, expectThrow, getEngine, randomArray } from '../helpers.js';

describe('engine/recompute', () => {
  it('the output and the gradients of x (an intermediate) and of parameters inside fn are the bits of running fn on the tape; drop-path draws replayed', async () => {
    const engine = await getEngine();
    const rng = new Rng(3);
    const [B, T, D, H] = [3, 4, 6, 10];
    const values = (...shape: number[]) => randomArray(rng, shape.reduce((a, b) => a * b, 1));
    const reg = new Registry(engine);
    const [w1, b1, w2] = [reg.create('w1', [H, D], values(H, D)), reg.create('b1', [H], values(H)), reg.create('w2', [D, H], values(D, H))];
    const x0 = engine.upload(values(B, T, D), [B, T, D]), dy = engine.upload(values(B, T, D), [B, T, D]);
    // x = 2·x0 (an op's output), then a small residual MLP with drop-path inside
    const fn = (t: Tape, x: Tensor, r: UniformSource | undefined) =>
      ops.add(t, x, ops.dropPath(t, ops.linear(t, ops.linear(t, x, w1.value, b1.value, { activation: 'gelu' }), w2.value), { rate: 0.5, rng: r!, training: true }));
    const run = async (again: boolean) => {
      const t = new Tape(engine);
      reg.zeroGrad();
      const leaf = t.watch(x0);
      const draws = new Rng(5);
      const y = engine.scope(() => {
        const x = ops.scale(t, x0, 2);
        return again ? recompute(t, x, draws, fn) : fn(t, x, draws);
      });
      t.backward(y, { grad: dy });
      const out = [await engine.read(y), await engine.read(leaf.grad!), ...(await Promise.all([w1, b1, w2].map((p) => engine.read(p.grad!))))];
      [leaf.grad!, y].forEach((v) => v.dispose());
      return out;
    };
    const [held, again] = [await run(false), await run(true)];
    ['y', 'dx0', 'dw1', 'db1', 'dw2'].forEach((name, i) => {
      const bad = held[i].findIndex((v, j) => !Object.is(v, again[i][j]));
      assert(bad < 0, `${name}[${bad}]: ${again[i][bad]} recomputed, ${held[i][bad]} held`);
    });
    [x0, dy].forEach((v) => v.dispose());
    reg.dispose();
  });

  it('records nothing without gradients (noGrad, or nothing in fn wants one); a second run that draws more than the first is an error, and leaves nothing allocated', async () => {
    const engine = await getEngine();
    const x = engine.upload(randomArray(new Rng(4), 12), [3, 4]);
    const t = new Tape(engine);
    const y1 = t.noGrad(() => recompute(t, x, undefined, (u, xi) => ops.scale(u, xi, 3)));
    const y2 = recompute(t, x, undefined, (u, xi) => ops.scale(u, xi, 3));
    const recorded = () => t.length;
    assert(recorded() === 0, `${recorded()} ops recorded for a tensor that wants no gradient`);
    [y1, y2].forEach((y) => y.dispose());
    // the function draws once in the forward, twice when recomputed, after recording an op that
    // saves its input: the failed second run leaves nothing allocated
    let calls = 0;
    const leaf = t.watch(x);
    const before = engine.pool.liveBytes;
    const y = engine.scope(() =>
      recompute(t, x, new Rng(1), (u, xi, r) => {
        const h = ops.gelu(u, ops.scale(u, xi, 3));
        for (let i = 0; i <= calls; i++) r!.next();
        calls++;
        return ops.scale(u, h, 2);
      }),
    );
    assert(recorded() === 1, `one node recorded, got ${recorded()}`);
    expectThrow(() => t.backward(y), /recompute: the second run drew more than the first's 1 numbers/);
    assert(recorded() === 0, 'the failed backward emptied the tape');
    leaf.grad?.dispose();
    y.dispose();
    assert(engine.pool.liveBytes === before, `a failed second run left ${engine.pool.liveBytes - before} bytes allocated`);
    x.dispose();
  });
});
