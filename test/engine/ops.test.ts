// Every differentiable op: forward against a float64 reference and gradients against central
// differences, on shapes that are not tile or vec4 multiples.
import { castF16ToF32, castF32ToF16 } from '../../kernels/cast.js';
import { accumulate, scale } from '../../kernels/elementwise.js';
import { geluForward } from '../../kernels/gelu.js';
import * as ops from '../../engine/ops/index.js';
import { Rng } from '../../engine/random.js';
import { Tape } from '../../engine/tape.js';
import type { Tensor } from '../../engine/tensor.js';
import type { Engine } from '../../engine/engine.js';
import { assert, assertClose, expectThrow, getEngine, randomArray } from '../helpers.js';
import { gradcheck } from './gradcheck.js';
import * as ref from './reference.js';

const upload = (engine: Engine, rng: Rng) => (...shape: number[]) => engine.upload(randomArray(rng, shape.reduce((a, b) => a * b, 1)), shape);

/** An op's f16 output holds the bits of its f32 output cast to f16. */
async function sameAsCast(engine: Engine, y16: Tensor, y32: Tensor): Promise<void> {
  assert(y16.dtype === 'f16', `an f16 output, got ${y16.dtype}`);
  const cast = engine.empty(y32.shape, 'f16');
  castF32ToF16(engine.batch, y32.buffer, cast.buffer, y32.size);
  const [a, b] = [await engine.readRaw(y16), await engine.readRaw(cast)].map((r) => new Uint16Array(r, 0, y32.size));
  cast.dispose();
  const bad = a.findIndex((v, i) => v !== b[i]);
  assert(bad < 0, `f16 output element ${bad}: ${a[bad]?.toString(16)}, the cast gives ${b[bad]?.toString(16)}`);
}

/** A chain's output and each input's gradient (seeded with dy), read back. */
async function outputAndGrads(engine: Engine, inputs: Tensor[], dy: Float32Array, chain: (t: Tape) => Tensor): Promise<Float32Array[]> {
  const t = new Tape(engine);
  const leaves = inputs.map((v) => t.watch(v));
  const out = engine.scope(() => chain(t));
  const seed = engine.upload(dy, out.shape);
  t.backward(out, { grad: seed });
  const res = [await engine.read(out)];
  for (const l of leaves) res.push(await engine.read(l.grad!));
  leaves.forEach((l) => l.grad?.dispose());
  [out, seed].forEach((v) => v.dispose());
  return res;
}

/** Two chains over the same inputs give the same bits, forward and every input's gradient (seeded
 *  with dy). */
async function sameBits(engine: Engine, inputs: Tensor[], names: string[], dy: Float32Array, chains: [(t: Tape) => Tensor, (t: Tape) => Tensor], what: string): Promise<void> {
  const [a, b] = [await outputAndGrads(engine, inputs, dy, chains[0]), await outputAndGrads(engine, inputs, dy, chains[1])];
  ['output', ...names.map((n) => `d${n}`)].forEach((name, i) => assert(a[i].every((v, j) => Object.is(v, b[i][j])), `${name}: ${what}`));
}

// drop-path tests: [samples, values a sample, rate], and the factors Rng(99) draws for them
const DROP = [6, 7, 0.4] as const;
function dropFactors(): Float64Array {
  const [B, , rate] = DROP;
  const r = new Rng(99);
  return Float64Array.from({ length: B }, () => (r.next() < 1 - rate ? 1 / (1 - rate) : 0));
}

describe('engine/ops: gradients against float64 finite differences', () => {
  it('linear, with bias, without, with fused gelu', async () => {
    const engine = await getEngine();
    const [B, T, K, N] = [2, 3, 5, 7];
    for (const activation of ['none', 'gelu'] as const)
      for (const bias of [true, false])
        await gradcheck(engine, {
          name: `linear ${activation}${bias ? ' +bias' : ''}`,
          inputs: [
            { name: 'x', shape: [B, T, K] },
            { name: 'w', shape: [N, K] },
            ...(bias ? [{ name: 'b', shape: [N] }] : []),
          ],
          gpu: (g, [x, w, b]) => ops.linear(g, x, w, b, { activation }),
          cpu: ([x, w, b]) => {
            const y = ref.linear(x, w, b ?? null, B * T, N, K);
            return activation === 'gelu' ? ref.gelu(y) : y;
          },
        });
  });

  it('linear with a residual added in its epilogue: gradients of all four inputs; the bits and gradients of linear, then add', async () => {
    const engine = await getEngine();
    const [B, T, K, N] = [2, 3, 5, 7];
    for (const activation of ['none', 'gelu'] as const)
      await gradcheck(engine, {
        name: `linear ${activation} + residual`,
        inputs: [
          { name: 'x', shape: [B, T, K] },
          { name: 'w', shape: [N, K] },
          { name: 'b', shape: [N] },
          { name: 'r', shape: [B, T, N] },
        ],
        gpu: (g, [x, w, b, r]) => ops.linear(g, x, w, b, { activation, residual: r }),
        cpu: ([x, w, b, r]) => {
          const y = ref.linear(x, w, b, B * T, N, K);
          return (activation === 'gelu' ? ref.gelu(y) : y).map((v, i) => v + r[i]);
        },
      });
    const rng = new Rng(6);
    const up = upload(engine, rng);
    const [x, w, b, r] = [up(B, T, K), up(N, K), up(N), up(B, T, N)];
    try {
      await sameBits(engine, [x, w, b, r], ['x', 'w', 'b', 'r'], randomArray(rng, B * T * N), [
        (t) => ops.linear(t, x, w, b, { activation: 'gelu', residual: r }),
        (t) => ops.add(t, r, ops.linear(t, x, w, b, { activation: 'gelu' })),
      ], 'the residual in the epilogue differs from linear, then add');
      // the residual is the linear's input, an op's output: its gradient becomes dy itself (a view),
      // which must not be added to before the matmuls have read dy
      const sq = up(K, K), bk = up(K);
      await sameBits(engine, [x, sq, bk], ['x', 'w', 'b'], randomArray(rng, B * T * K), [
        (t) => {
          const h = ops.scale(t, x, 1.5);
          return ops.linear(t, h, sq, bk, { residual: h });
        },
        (t) => {
          const h = ops.scale(t, x, 1.5);
          return ops.add(t, h, ops.linear(t, h, sq, bk));
        },
      ], 'h + linear(h) with the residual in the epilogue differs from linear, then add');
      [sq, bk].forEach((t) => t.dispose());
      const g = new Tape(engine);
      expectThrow(() => engine.scope(() => ops.linear(g, x, w, b, { residual: x })), /linear: residual \(y is \[2,3,7\]\) has shape \[2,3,5\]/);
    } finally {
      [x, w, b, r].forEach((t) => t.dispose());
    }
  });

  it('linear in mixed precision (f16 matmul inputs, f32 accumulation and gradients; a clear error without shader-f16)', async function () {
    const engine = await getEngine();
    if (!engine.device.features.has('shader-f16')) {
      // e.g. SwiftShader: the f16 path must refuse with a message naming the missing feature.
      const g = new Tape(engine);
      let msg = '';
      try {
        engine.scope(() => ops.linear(g, engine.zeros([2, 3]), engine.zeros([4, 3]), null, { precision: 'f16' }));
      } catch (e) {
        msg = (e as Error).message;
      }
      g.clear();
      assert(/shader-f16/.test(msg), `expected an error naming shader-f16, got '${msg}'`);
      return;
    }
    const [M, K, N] = [6, 9, 7];
    for (const activation of ['none', 'gelu'] as const)
      await gradcheck(engine, {
        name: `linear f16 ${activation}`,
        inputs: [
          { name: 'x', shape: [M, K] },
          { name: 'w', shape: [N, K] },
          { name: 'b', shape: [N] },
        ],
        gpu: (g, [x, w, b]) => ops.linear(g, x, w, b, { activation, precision: 'f16' }),
        cpu: ([x, w, b]) => {
          const y = ref.linear(x, w, b, M, N, K);
          return activation === 'gelu' ? ref.gelu(y) : y;
        },
        // f16 rounding of inputs (2^-11 relative) against the exact float64 values
        tolForward: 1e-2,
        tolGrad: 1e-2,
      });
  });

  it('linear with an f16 output: the bits of its f32 output cast, with GELU the GELU of that (as autocast\'s); feeding an f16 linear, the chain with a cast within f16 rounding; float64 gradients', async () => {
    const engine = await getEngine();
    const rng = new Rng(5);
    const [M, K, H, N] = [6, 9, 10, 7];
    const up = upload(engine, rng);
    const [x, w1, b1, w2, b2, w3] = [up(M, K), up(H, K), up(H), up(N, H), up(N), up(N, K)];
    try {
      // f32 inputs (no shader-f16 needed): the epilogue's halves are the cast's, and with GELU the
      // GELU of those halves; an odd N keeps y f32
      const g = new Tape(engine);
      const [y16, z16, y32, yOdd] = engine.scope(() => [
        ops.linear(g, x, w1, b1, { activation: 'gelu', output: 'f16' }),
        ops.linear(g, x, w1, b1, { output: 'f16' }),
        ops.linear(g, x, w1, b1),
        ops.linear(g, x, w3, null, { output: 'f16' }),
      ]);
      assert(yOdd.dtype === 'f32', `N = ${N} (odd) keeps y f32, got ${yOdd.dtype}`);
      await sameAsCast(engine, z16, y32);
      const again = engine.empty(y16.shape, 'f16');
      geluForward(engine.batch, z16.buffer, again.buffer, z16.size, { input: 'f16', output: 'f16' });
      const [h, r] = [await engine.readRaw(y16), await engine.readRaw(again)].map((b) => new Uint16Array(b, 0, y16.size));
      assert(h.every((v, i) => v === r[i]), 'the f16 output with GELU is not the GELU of the f16 output without');
      [again, z16].forEach((t) => t.dispose());
      // An f16 x needs f16 inputs; every other op refuses an f16 tensor rather than read its bits as f32.
      expectThrow(() => ops.linear(g, y16, w2, b2), /linear: x is f16, which needs precision 'f16'/);
      for (const [op, f] of [
        ['layerNorm', () => ops.layerNorm(g, y16)],
        ['gelu', () => ops.gelu(g, y16)],
        ['mean', () => ops.mean(g, y16, 1)],
        ['add', () => ops.add(g, y16, y32)],
        ['addBroadcast', () => ops.addBroadcast(g, y16, b1)],
        ['softmax', () => ops.softmax(g, y16)],
        ['matmul', () => ops.matmul(g, y16, w2, { transB: true })],
        ['smoothL1', () => ops.smoothL1(g, y16, y32)],
      ] as const)
        expectThrow(() => engine.scope(f), new RegExp(`^${op}: \\w+ is f16 \\[${M},${H}\\], expected f32`));
      if (!engine.device.features.has('shader-f16')) {
        [y16, y32, yOdd].forEach((t) => t.dispose());
        return; // the chain has f16 inputs (the test above checks the error)
      }
      // An f16 x is read as it is and stays the caller's (not disposed, not written).
      const before = new Uint16Array(await engine.readRaw(y16));
      engine.scope(() => ops.linear(g, y16, w2, b2, { precision: 'f16' })).dispose();
      assert(!y16.isDisposed && new Uint16Array(await engine.readRaw(y16)).every((v, i) => v === before[i]), 'linear changed or disposed its f16 x');
      [y16, y32, yOdd].forEach((t) => t.dispose());
      // The MLP's chain: fc1 writes f16 for fc2, against fc2 casting fc1's f32 output: within f16
      // rounding (the GELU takes the f16 pre-activation, and its backward reads it).
      const mlp = (output: 'f32' | 'f16') => (t: Tape) => ops.linear(t, ops.linear(t, x, w1, b1, { activation: 'gelu', precision: 'f16', output }), w2, b2, { precision: 'f16' });
      const dy = randomArray(rng, M * N);
      const [a, b] = [await outputAndGrads(engine, [x, w1, b1, w2, b2], dy, mlp('f16')), await outputAndGrads(engine, [x, w1, b1, w2, b2], dy, mlp('f32'))];
      ['output', 'dx', 'dw1', 'db1', 'dw2', 'db2'].forEach((name, i) => assertClose(a[i], b[i], 1e-2, `${name}: the chain writing f16 against the one with a cast`));
    } finally {
      [x, w1, b1, w2, b2, w3].forEach((t) => t.dispose());
    }
    const mlpInputs = [
      { name: 'x', shape: [M, K] },
      { name: 'w1', shape: [H, K] },
      { name: 'b1', shape: [H] },
      { name: 'w2', shape: [N, H] },
      { name: 'b2', shape: [N] },
    ];
    await gradcheck(engine, {
      name: 'linear f16 gelu → f16 output → linear f16',
      inputs: mlpInputs,
      gpu: (g, [x, w1, b1, w2, b2]) => ops.linear(g, ops.linear(g, x, w1, b1, { activation: 'gelu', precision: 'f16', output: 'f16' }), w2, b2, { precision: 'f16' }),
      cpu: ([x, w1, b1, w2, b2]) => ref.linear(Float64Array.from(ref.gelu(ref.linear(x, w1, b1, M, H, K))), w2, b2, M, N, H),
      tolForward: 1e-2,
      tolGrad: 1e-2,
    });
    // only the bias wants fc1's gradient: dz from the f16 pre-activation, in f16 for f16 matmuls (the
    // bias sums the halves), widened first for f32 ones
    for (const precision of ['f16', 'f32'] as const)
      await gradcheck(engine, {
        name: `linear ${precision} gelu → f16 output → linear f16, b1's gradient alone`,
        inputs: mlpInputs.map((i) => ({ ...i, grad: i.name === 'b1' })),
        gpu: (g, [x, w1, b1, w2, b2]) => ops.linear(g, ops.linear(g, x, w1, b1, { activation: 'gelu', precision, output: 'f16' }), w2, b2, { precision: 'f16' }),
        cpu: ([x, w1, b1, w2, b2]) => ref.linear(Float64Array.from(ref.gelu(ref.linear(x, w1, b1, M, H, K))), w2, b2, M, N, H),
        tolForward: 1e-2,
        tolGrad: 1e-2,
      });
    // f32 matmuls writing f16 (y and the pre-activation): the GELU backward widens the pre-activation
    await gradcheck(engine, {
      name: 'linear f32 gelu → f16 output → linear f16',
      inputs: mlpInputs,
      gpu: (g, [x, w1, b1, w2, b2]) => ops.linear(g, ops.linear(g, x, w1, b1, { activation: 'gelu', output: 'f16' }), w2, b2, { precision: 'f16' }),
      cpu: ([x, w1, b1, w2, b2]) => ref.linear(Float64Array.from(ref.gelu(ref.linear(x, w1, b1, M, H, K))), w2, b2, M, N, H),
      tolForward: 1e-2,
      tolGrad: 1e-2,
    });
  });

  it('linear recomputing its x from the GELU\'s pre-activation (geluOf, the MLP\'s fc2): output and every gradient the bits of keeping x, f32 and f16, and the hidden layer not held; where x is cast, x is kept; a geluOf not of x\'s type and shape refused', async () => {
    const engine = await getEngine();
    const rng = new Rng(13);
    const [M, K, H, N] = [6, 9, 10, 7];
    const up = upload(engine, rng);
    const [x, w1, b1, w2, b2, r] = [up(M, K), up(H, K), up(H), up(N, H), up(N), up(M, N)];
    const names = ['x', 'w1', 'b1', 'w2', 'b2', 'r'];
    try {
      const dy = randomArray(rng, M * N);
      const cases: [string, 'f32' | 'f16', 'f32' | 'f16'][] = [
        ['f32', 'f32', 'f32'],
        ...(engine.device.features.has('shader-f16') ? ([['f16', 'f16', 'f16'], ['f16 matmuls reading a cast (f32 hidden layer)', 'f16', 'f32']] as [string, 'f16', 'f32' | 'f16'][]) : []),
      ];
      for (const [what, precision, output] of cases) {
        const mlp = (recompute: boolean) => (t: Tape) => {
          const h = ops.linearWithPre(t, x, w1, b1, { activation: 'gelu', precision, output });
          assert(h.pre?.dtype === output, `${what}: the pre-activation kept is ${h.pre?.dtype}, want ${output}`);
          return ops.linear(t, h.y, w2, b2, { precision, residual: r, geluOf: recompute ? h.pre : null });
        };
        await sameBits(engine, [x, w1, b1, w2, b2, r], names, dy, [mlp(true), mlp(false)], `${what}: recomputing the hidden layer differs from keeping it`);
        // what the forward leaves held for the backward: the hidden layer only when it is kept
        const held = (recompute: boolean) => {
          const t = new Tape(engine);
          [x, w1, b1, w2, b2, r].forEach((v) => t.watch(v));
          const before = engine.pool.liveBytes;
          const y = engine.scope(() => mlp(recompute)(t));
          const bytes = engine.pool.liveBytes - before;
          t.clear();
          y.dispose();
          return bytes;
        };
        const [again, kept] = [held(true), held(false)];
        const cast = output !== precision; // the f16 copy of an f32 hidden layer is what fc2 keeps
        assert(cast ? again === kept : again < kept, `${what}: the forward holds ${again} bytes recomputing, ${kept} keeping the hidden layer`);
      }
      const g = new Tape(engine);
      g.watch(w1);
      const h = engine.scope(() => ops.linearWithPre(g, x, w1, b1, { activation: 'gelu' }));
      expectThrow(() => ops.linear(g, h.y, w2, b2, { geluOf: x }), /linear: geluOf f32 \[6,9\] is not of x's type and shape \(f32 \[6,10\]\)/);
      g.clear();
      [h.y, h.pre!].forEach((t) => t.dispose());
    } finally {
      [x, w1, b1, w2, b2, r].forEach((t) => t.dispose());
    }
  });

  it('matmul: all transposes, batched and with a shared b', async () => {
    const engine = await getEngine();
    const [Z, M, K, N] = [2, 3, 5, 6];
    for (const transA of [false, true])
      for (const transB of [false, true]) {
        await gradcheck(engine, {
          name: `matmul batched transA=${transA} transB=${transB}`,
          inputs: [
            { name: 'a', shape: transA ? [Z, K, M] : [Z, M, K] },
            { name: 'b', shape: transB ? [Z, N, K] : [Z, K, N] },
          ],
          gpu: (g, [a, b]) => ops.matmul(g, a, b, { transA, transB }),
          cpu: ([a, b]) => ref.matmul(a, b, Z, M, N, K, transA, transB),
        });
        await gradcheck(engine, {
          name: `matmul 2-D transA=${transA} transB=${transB}`,
          inputs: [
            { name: 'a', shape: transA ? [K, M] : [M, K] },
            { name: 'b', shape: transB ? [N, K] : [K, N] },
          ],
          gpu: (g, [a, b]) => ops.matmul(g, a, b, { transA, transB }),
          cpu: ([a, b]) => ref.matmul(a, b, 1, M, N, K, transA, transB),
        });
      }
    await gradcheck(engine, {
      name: 'matmul [Z, M, K] · shared [K, N]',
      inputs: [
        { name: 'a', shape: [Z, M, K] },
        { name: 'b', shape: [K, N] },
      ],
      gpu: (g, [a, b]) => ops.matmul(g, a, b),
      cpu: ([a, b]) => ref.matmul(a, b, 1, Z * M, N, K, false, false),
    });
  });

  it('add, sub, mul, scale, and an input used twice', async () => {
    const engine = await getEngine();
    const shape = [3, 7];
    const two = [
      { name: 'a', shape },
      { name: 'b', shape },
    ];
    await gradcheck(engine, { name: 'add', inputs: two, gpu: (g, [a, b]) => ops.add(g, a, b), cpu: ([a, b]) => ref.add(a, b) });
    await gradcheck(engine, { name: 'sub', inputs: two, gpu: (g, [a, b]) => ops.sub(g, a, b), cpu: ([a, b]) => ref.add(a, b, -1) });
    await gradcheck(engine, { name: 'mul', inputs: two, gpu: (g, [a, b]) => ops.mul(g, a, b), cpu: ([a, b]) => a.map((v, i) => v * b[i]) });
    await gradcheck(engine, { name: 'scale', inputs: [two[0]], gpu: (g, [a]) => ops.scale(g, a, -0.75), cpu: ([a]) => a.map((v) => -0.75 * v) });
    await gradcheck(engine, { name: 'add(x, x)', inputs: [two[0]], gpu: (g, [a]) => ops.add(g, a, a), cpu: ([a]) => a.map((v) => 2 * v) });
    await gradcheck(engine, { name: 'mul(x, x)', inputs: [two[0]], gpu: (g, [a]) => ops.mul(g, a, a), cpu: ([a]) => a.map((v) => v * v) });
  });

  it('addBroadcast of a table (positional embedding), with and without alpha', async () => {
    const engine = await getEngine();
    for (const alpha of [1, 0.5])
      await gradcheck(engine, {
        name: `addBroadcast alpha=${alpha}`,
        inputs: [
          { name: 'x', shape: [2, 3, 5] },
          { name: 'table', shape: [3, 5] },
        ],
        gpu: (g, [x, t]) => ops.addBroadcast(g, x, t, alpha),
        cpu: ([x, t]) => x.map((v, i) => v + alpha * t[i % 15]),
      });
  });

  it('gelu', async () => {
    const engine = await getEngine();
    const data = randomArray(new Rng(3), 37, 2.5);
    await gradcheck(engine, { name: 'gelu', inputs: [{ name: 'x', shape: [37], data }], gpu: (g, [x]) => ops.gelu(g, x), cpu: ([x]) => ref.gelu(x) });
  });

  it('layerNorm, affine and not', async () => {
    const engine = await getEngine();
    const [R, D] = [6, 13];
    await gradcheck(engine, {
      name: 'layerNorm affine',
      inputs: [
        { name: 'x', shape: [2, 3, D] },
        { name: 'gamma', shape: [D] },
        { name: 'beta', shape: [D] },
      ],
      gpu: (g, [x, w, b]) => ops.layerNorm(g, x, w, b, 1e-5),
      cpu: ([x, w, b]) => ref.layerNorm(x, w, b, D, 1e-5),
    });
    await gradcheck(engine, {
      name: 'layerNorm non-affine',
      inputs: [{ name: 'x', shape: [R, D] }],
      gpu: (g, [x]) => ops.layerNorm(g, x, null, null, 1e-6),
      cpu: ([x]) => ref.layerNorm(x, null, null, D, 1e-6),
    });
  });

  it('layerNorm with an f16 output: the bits of its f32 output cast; feeding an f16 linear, the bits and gradients of the chain with a cast', async () => {
    const engine = await getEngine();
    const rng = new Rng(6);
    const [M, D, N] = [5, 12, 6];
    const up = upload(engine, rng);
    const [x, gamma, beta, w, xOdd] = [up(M, D), up(D), up(D), up(N, D), up(M, 7)];
    try {
      const g = new Tape(engine);
      const [y16, y32, yOdd] = engine.scope(() => [
        ops.layerNorm(g, x, gamma, beta, 1e-5, 'f16'),
        ops.layerNorm(g, x, gamma, beta, 1e-5),
        ops.layerNorm(g, xOdd, null, null, 1e-5, 'f16'),
      ]);
      assert(yOdd.dtype === 'f32', `an odd last dim keeps y f32, got ${yOdd.dtype}`);
      await sameAsCast(engine, y16, y32);
      [y16, y32, yOdd].forEach((t) => t.dispose());
      if (!engine.device.features.has('shader-f16')) return;
      // A block's norm1 → qkv: the norm writes f16 for the linear, against the linear casting it. The
      // linear keeps the same f16 copy: the same output and weight gradient. The norm's own gradients
      // are taken from its output's gradient in f16 (as the linear's product writes it, as autocast
      // has it), within f16 rounding of the f32 one.
      const chain = (output: 'f32' | 'f16') => (t: Tape) => ops.linear(t, ops.layerNorm(t, x, gamma, beta, 1e-5, output), w, null, { precision: 'f16' });
      const dy = randomArray(rng, M * N);
      const [a, b] = [await outputAndGrads(engine, [x, gamma, beta, w], dy, chain('f16')), await outputAndGrads(engine, [x, gamma, beta, w], dy, chain('f32'))];
      for (const [i, name] of [[0, 'output'], [4, 'dw']] as const) assert(a[i].every((v, j) => Object.is(v, b[i][j])), `${name}: the chain writing f16 differs from the one with a cast`);
      for (const [i, name] of [[1, 'dx'], [2, 'dgamma'], [3, 'dbeta']] as const) assertClose(a[i], b[i], 1e-2, `${name}: from an f16 gradient against an f32 one`);
    } finally {
      [x, gamma, beta, w, xOdd].forEach((t) => t.dispose());
    }
  });

  it('attention: cropa, lead and none, full and token-subset layouts', async () => {
    const engine = await getEngine();
    const [B, H, Dh] = [2, 2, 3];
    for (const [C, V] of [
      [3, 4],
      [2, 3],
    ])
      for (const mask of ['cropa', 'lead', 'none'] as const)
        await gradcheck(engine, {
          name: `attention ${mask} C=${C} V=${V}`,
          inputs: [{ name: 'qkv', shape: [B, C * V, 3 * H * Dh] }],
          gpu: (g, [qkv]) => ops.attention(g, qkv, { heads: H, C, V, mask }),
          cpu: ([qkv]) => ref.attention(qkv, B, H, Dh, C, V, mask),
        });
  });

  it('attention with an f16 output: the bits of its f32 output cast; into an f16 linear, the output and weight gradient of the chain with a cast, bit for bit, and the qkv gradient within f16 rounding (its backward reads the halves)', async () => {
    const engine = await getEngine();
    const rng = new Rng(9);
    const [B, C, V, H, N] = [2, 3, 4, 2, 6];
    const up = upload(engine, rng);
    for (const Dh of [4, 3]) {
      const qkv = up(B, C * V, 3 * H * Dh), w = up(N, H * Dh);
      try {
        const o = { heads: H, C, V, mask: 'cropa' } as const;
        const g = new Tape(engine);
        const [y16, y32] = engine.scope(() => [ops.attention(g, qkv, { ...o, output: 'f16' }), ops.attention(g, qkv, o)]);
        if (Dh % 4) assert(y16.dtype === 'f32', `a head size of ${Dh} keeps the output f32, got ${y16.dtype}`);
        else await sameAsCast(engine, y16, y32);
        [y16, y32].forEach((t) => t.dispose());
        if (Dh % 4 || !engine.device.features.has('shader-f16')) continue;
        // A block's attention → proj: f16 written by the op, against the linear casting the f32 output.
        const dy = randomArray(rng, B * C * V * N);
        const chain = (output: 'f32' | 'f16') => (t: Tape) => ops.linear(t, ops.attention(t, qkv, { ...o, output }), w, null, { precision: 'f16' });
        const [a, b] = [await outputAndGrads(engine, [qkv, w], dy, chain('f16')), await outputAndGrads(engine, [qkv, w], dy, chain('f32'))];
        for (const [i, name] of [[0, 'output'], [2, 'dw']] as const) assert(a[i].every((v, j) => Object.is(v, b[i][j])), `${name}: the chain with the f16 output differs from the one with a cast`);
        assertClose(a[1], b[1], 1e-2, 'dqkv with the f16 output against the f32 one');
      } finally {
        [qkv, w].forEach((t) => t.dispose());
      }
    }
  });

  it('attention on an f16 qkv: the output and the qkv gradient are the bits of the op on its f32 values; after an f16 qkv Linear, the chain agrees with an f32 qkv within f16 rounding; other dtypes refused', async function () {
    const engine = await getEngine();
    const [B, C, V, H, Dh, D] = [2, 3, 4, 2, 4, 6];
    const o = { heads: H, C, V, mask: 'cropa' } as const;
    const ints = engine.empty([B, C * V, 3 * H * Dh], 'u32');
    expectThrow(() => ops.attention(new Tape(engine), ints, o), /attention: qkv is u32 \[2,12,24\], expected f32 or f16/);
    ints.dispose();
    if (!engine.device.features.has('shader-f16')) this.skip();
    const rng = new Rng(12);
    const up = upload(engine, rng);
    const f32 = up(B, C * V, 3 * H * Dh);
    const half = engine.empty(f32.shape, 'f16'), wide = engine.empty(f32.shape);
    castF32ToF16(engine.batch, f32.buffer, half.buffer, f32.size);
    castF16ToF32(engine.batch, half.buffer, wide.buffer, f32.size);
    const x = up(B, C * V, D), wq = up(3 * H * Dh, D), wp = up(D, H * Dh);
    try {
      const dy = randomArray(rng, B * C * V * H * Dh);
      const [a, b] = [await outputAndGrads(engine, [half], dy, (t) => ops.attention(t, half, o)), await outputAndGrads(engine, [wide], dy, (t) => ops.attention(t, wide, o))];
      for (const [i, name] of [[0, 'output'], [1, 'dqkv']] as const) assert(a[i].every((v, j) => Object.is(v, b[i][j])), `${name}: from the f16 qkv differs from its f32 values`);
      // A block's qkv → attention → proj, all f16 Linears: qkv written in f16 (read as it is) against f32.
      const dz = randomArray(rng, B * C * V * D);
      const chain = (output: 'f32' | 'f16') => (t: Tape) => {
        const qkv = ops.linear(t, x, wq, null, { precision: 'f16', output });
        assert(qkv.dtype === output, `the qkv Linear writes ${qkv.dtype}, asked ${output}`);
        return ops.linear(t, ops.attention(t, qkv, { ...o, output: 'f16' }), wp, null, { precision: 'f16' });
      };
      const [c, d] = [await outputAndGrads(engine, [x, wq, wp], dz, chain('f16')), await outputAndGrads(engine, [x, wq, wp], dz, chain('f32'))];
      ['output', 'dx', 'dwq', 'dwp'].forEach((name, i) => assertClose(c[i], d[i], 1e-2, `${name}: f16 qkv against f32`));
    } finally {
      [f32, half, wide, x, wq, wp].forEach((t) => t.dispose());
    }
  });

  it('f16 activations with two readers, in f16 matmuls: their gradients (f16 from the first writer, widened to f32 for the second: linear then attention, linear then linear) against float64', async function () {
    const engine = await getEngine();
    if (!engine.device.features.has('shader-f16')) this.skip();
    const [B, C, V, H, Dh, D] = [2, 3, 4, 2, 4, 6];
    const [T, W] = [C * V, 3 * H * Dh];
    const o = { heads: H, C, V, mask: 'cropa' } as const;
    const f16 = { precision: 'f16' } as const;
    // qkv (f16) read by the attention and by a linear recorded after it: the linear's backward runs
    // first and writes qkv's gradient in f16, the attention's then adds its dqkv in f32
    await gradcheck(engine, {
      name: 'f16 qkv read twice',
      inputs: [
        { name: 'x', shape: [B, T, D] },
        { name: 'wq', shape: [W, D] },
        { name: 'wp', shape: [D, H * Dh] },
        { name: 'w2', shape: [D, W] },
      ],
      gpu: (g, [x, wq, wp, w2]) => {
        const qkv = ops.linear(g, x, wq, null, { ...f16, output: 'f16' });
        const a = ops.linear(g, ops.attention(g, qkv, { ...o, output: 'f16' }), wp, null, f16);
        return ops.add(g, a, ops.linear(g, qkv, w2, null, f16));
      },
      cpu: ([x, wq, wp, w2]) => {
        const qkv = ref.linear(x, wq, null, B * T, W, D);
        return ref.add(ref.linear(ref.attention(qkv, B, H, Dh, C, V, 'cropa'), wp, null, B * T, D, H * Dh), ref.linear(qkv, w2, null, B * T, D, W));
      },
      tolForward: 1e-2,
      tolGrad: 1e-2,
    });
    // a norm's f16 output read by two linears (a block's norm1 feeding qkv, and another reader)
    await gradcheck(engine, {
      name: 'f16 norm output read twice',
      inputs: [
        { name: 'x', shape: [B * T, D] },
        { name: 'gamma', shape: [D] },
        { name: 'beta', shape: [D] },
        { name: 'w1', shape: [4, D] },
        { name: 'w2', shape: [4, D] },
      ],
      gpu: (g, [x, gamma, beta, w1, w2]) => {
        const y = ops.layerNorm(g, x, gamma, beta, 1e-5, 'f16');
        return ops.add(g, ops.linear(g, y, w1, null, f16), ops.linear(g, y, w2, null, f16));
      },
      cpu: ([x, gamma, beta, w1, w2]) => {
        const y = ref.layerNorm(x, gamma, beta, D, 1e-5);
        return ref.add(ref.linear(y, w1, null, B * T, 4, D), ref.linear(y, w2, null, B * T, 4, D));
      },
      tolForward: 1e-2,
      tolGrad: 1e-2,
    });
  });

  it('softmax over the last dim, with a logit scale', async () => {
    const engine = await getEngine();
    await gradcheck(engine, {
      name: 'softmax',
      inputs: [{ name: 'x', shape: [5, 11] }],
      gpu: (g, [x]) => ops.softmax(g, x, 0.7),
      cpu: ([x]) => ref.softmax(x, 11, 0.7),
    });
  });

  it('gatherRows and scatterRows of a token subset', async () => {
    const engine = await getEngine();
    const [B, T, D] = [2, 6, 5];
    const keep = [0, 2, 3]; // the same token subset in every sample, as absolute rows
    const idx = Uint32Array.from([0, 1].flatMap((b) => keep.map((t) => b * T + t)));
    await gradcheck(engine, {
      name: 'gatherRows',
      inputs: [
        { name: 'x', shape: [B, T, D] },
        { name: 'idx', shape: [idx.length], data: idx, dtype: 'u32' },
      ],
      gpu: (g, [x, i]) => ops.gatherRows(g, x, i, [B, keep.length, D]),
      cpu: ([x]) => Float64Array.from(Array.from(idx).flatMap((r) => Array.from(x.subarray(r * D, r * D + D)))),
    });
    await gradcheck(engine, {
      name: 'scatterRows',
      inputs: [
        { name: 'src', shape: [idx.length, D] },
        { name: 'idx', shape: [idx.length], data: idx, dtype: 'u32' },
      ],
      gpu: (g, [s, i]) => ops.scatterRows(g, s, i, B * T, [B, T, D]),
      cpu: ([s]) => {
        const y = new Float64Array(B * T * D);
        idx.forEach((r, k) => y.set(s.subarray(k * D, k * D + D), r * D));
        return y;
      },
    });
  });

  it('reshape (a view) inside a chain', async () => {
    const engine = await getEngine();
    await gradcheck(engine, {
      name: 'reshape',
      inputs: [
        { name: 'x', shape: [2, 3, 4] },
        { name: 'w', shape: [6, 4] },
      ],
      gpu: (g, [x, w]) => ops.mul(g, ops.reshape(g, x, [6, 4]), w),
      cpu: ([x, w]) => x.map((v, i) => v * w[i]),
    });
  });

  it('mean and sum over an axis', async () => {
    const engine = await getEngine();
    const shape = [2, 6, 5];
    for (const axis of [0, 1, -1])
      for (const op of ['mean', 'sum'] as const) {
        const ax = axis < 0 ? axis + 3 : axis;
        const outer = shape.slice(0, ax).reduce((a, b) => a * b, 1), inner = shape.slice(ax + 1).reduce((a, b) => a * b, 1);
        await gradcheck(engine, {
          name: `${op} axis ${axis}`,
          inputs: [{ name: 'x', shape }],
          gpu: (g, [x]) => ops[op](g, x, axis),
          cpu: ([x]) => ref.reduceAxis(x, outer, shape[ax], inner, op === 'mean'),
        });
      }
  });

  it('smoothL1 (both sides of beta), gradients for pred and target', async () => {
    const engine = await getEngine();
    for (const beta of [1, 0.5])
      await gradcheck(engine, {
        name: `smoothL1 beta=${beta}`,
        inputs: [
          { name: 'pred', shape: [3, 7] },
          { name: 'target', shape: [3, 7] },
        ],
        gpu: (g, [p, t]) => ops.smoothL1(g, p, t, beta),
        cpu: ([p, t]) => ref.smoothL1(p, t, beta),
      });
  });

  it('dropPath: per-sample factors from a seeded Rng', async () => {
    const engine = await getEngine();
    const [B, S, rate] = DROP;
    const factors = dropFactors();
    assert(factors.some((f) => f === 0) && factors.some((f) => f > 0), `seed 99 drops some samples and keeps some: ${factors}`);
    await gradcheck(engine, {
      name: 'dropPath',
      inputs: [{ name: 'x', shape: [B, S] }],
      gpu: (g, [x]) => ops.dropPath(g, x, { rate, rng: new Rng(99), training: true }),
      cpu: ([x]) => x.map((v, i) => v * factors[Math.floor(i / S)]),
    });
  });

  it('addDropPath: residual + dropPath(x) in one pass, the same draws; gradients of both; equal to add and dropPath within rounding; without training, the add', async () => {
    const engine = await getEngine();
    const [B, S, rate] = DROP;
    const factors = dropFactors();
    await gradcheck(engine, {
      name: 'addDropPath',
      inputs: [
        { name: 'r', shape: [B, S] },
        { name: 'x', shape: [B, S] },
      ],
      gpu: (g, [r, x]) => ops.addDropPath(g, r, x, { rate, rng: new Rng(99), training: true }),
      cpu: ([r, x]) => x.map((v, i) => r[i] + v * factors[Math.floor(i / S)]),
    });
    const rng = new Rng(3);
    const [r, x, wide] = [engine.upload(randomArray(rng, B * S), [B, S]), engine.upload(randomArray(rng, B * S), [B, S]), engine.zeros([B, S + 1])];
    const dy = randomArray(rng, B * S);
    try {
      for (const training of [true, false]) {
        const o = () => ({ rate, rng: new Rng(99), training });
        const [a, b] = [
          await outputAndGrads(engine, [r, x], dy, (t) => ops.addDropPath(t, r, x, o())),
          await outputAndGrads(engine, [r, x], dy, (t) => ops.add(t, r, ops.dropPath(t, x, o()))),
        ];
        ['output', 'dr', 'dx'].forEach((name, i) => assertClose(a[i], b[i], 1e-6, `${name}${training ? '' : ' (not training)'}: fused against add and dropPath`));
      }
      expectThrow(() => ops.addDropPath(new Tape(engine), r, wide, { rate, rng: new Rng(1), training: true }), /addDropPath: residual \(x is \[6,8\]\) has shape \[6,7\], expected \[6,8\]/);
    } finally {
      [r, x, wide].forEach((t) => t.dispose());
    }
  });

  it('accumulates gradients of a tensor used by several ops (leaf and intermediate)', async () => {
    const engine = await getEngine();
    const [M, K] = [4, 5];
    // w feeds two linears (leaf accumulation through matmul's accumulate), h feeds softmax and mul
    // (kernels that cannot add: the tape goes through temporaries).
    await gradcheck(engine, {
      name: 'shared uses',
      inputs: [
        { name: 'x', shape: [M, K] },
        { name: 'w', shape: [K, K] },
      ],
      gpu: (g, [x, w]) => {
        const h = ops.linear(g, ops.linear(g, x, w), w);
        return ops.add(g, ops.softmax(g, h), ops.mul(g, h, h));
      },
      cpu: ([x, w]) => {
        const h = ref.linear(ref.linear(x, w, null, M, K, K), w, null, M, K, K);
        return ref.add(ref.softmax(h, K, 1), h.map((v) => v * v));
      },
    });
  });

  it('the gradient of an f16 activation (RecordOptions.halfGrad): f16 where its one writer can write f16, f32 where it cannot; a second contribution widens it and adds in f32; an f16 gradient handed on is moved where taken, else widened; halfGrad on an f32 output refused', async () => {
    const engine = await getEngine();
    // values exact in f16, so every path gives the same numbers
    const values = Float32Array.from([1, -2, 0.5, 3, -0.25, 6]);
    const x = engine.upload(values);
    const seen: string[] = [];
    /** h = x in f16, its backward noting the type of the gradient it got and handing it to x (an f32
     *  leaf: widened); then `readers` ops reading h, each contributing x's values as h's gradient
     *  (written by a cast where the writer may write f16, else by a copy; `move`: the reader hands on
     *  an f16 gradient of its own output). Returns x's gradient. */
    const run = async (readers: { half?: boolean; move?: boolean }[]) => {
      const g = new Tape(engine);
      const leaf = g.watch(x);
      const outs = engine.scope(() => {
        const h = engine.empty([6], 'f16');
        castF32ToF16(engine.batch, x.buffer, h.buffer, 6);
        g.record('toHalf', h, [], (dy) => (seen.push(dy.dtype), g.passGrad(x, dy)), { halfGrad: true });
        return readers.map((r) => {
          const y = engine.empty([6], r.move ? 'f16' : 'f32');
          const write = (dst: Tensor, acc: boolean) => {
            if (dst.dtype === 'f16') castF32ToF16(engine.batch, x.buffer, dst.buffer, 6);
            else if (acc) accumulate(engine.batch, dst.buffer, x.buffer, 6);
            else scale(engine.batch, x.buffer, dst.buffer, 6, 1);
          };
          if (r.move) g.record('pass', y, [], (dy) => (seen.push(`pass ${dy.dtype}`), g.passGrad(h, dy, 1, true)), { halfGrad: true });
          else g.record('read', y, [], () => g.addGrad(h, write, { half: r.half }));
          return y;
        });
      });
      // a root whose backward hands each reader its gradient: for `move` readers an f16 one of x's
      // values (moved in: their backward takes f16), for the others one they do not read
      const dys = outs.map((y) => {
        const d = engine.empty([6], y.dtype);
        if (y.dtype === 'f16') castF32ToF16(engine.batch, x.buffer, d.buffer, 6);
        return d;
      });
      const root = engine.empty([1]);
      g.record('root', root, [], () => outs.forEach((y, i) => g.passGrad(y, dys[i], 1, true)));
      g.backward(root);
      const got = await engine.read(leaf.grad!);
      leaf.grad!.dispose();
      [...outs, ...dys, root].forEach((t) => t.dispose());
      return got;
    };
    const expect = (got: Float32Array, times: number, what: string) => assert(got.every((v, i) => v === times * values[i]), `${what}: x's gradient ${got}, expected ${times}·x`);
    seen.length = 0;
    expect(await run([{ half: true }]), 1, 'one writer of f16');
    assert(seen.join() === 'f16', `one writer of f16: the backward got ${seen}`);
    seen.length = 0;
    expect(await run([{ half: false }]), 1, 'one writer of f32');
    assert(seen.join() === 'f32', `one writer of f32: the backward got ${seen}`);
    seen.length = 0;
    expect(await run([{ half: true }, { half: true }]), 2, 'two writers of f16');
    assert(seen.join() === 'f32', `two writers: the sum is taken in f32, the backward got ${seen}`);
    seen.length = 0;
    expect(await run([{ half: false }, { half: true }, { half: true }]), 3, 'three writers');
    assert(seen.join() === 'f32', `three writers: the backward got ${seen}`);
    seen.length = 0;
    expect(await run([{ move: true }]), 1, 'an f16 gradient handed on');
    assert(seen.join() === 'pass f16,f16', `an f16 gradient handed on stays f16: ${seen}`);
    seen.length = 0;
    expect(await run([{ move: true }, { half: true }]), 2, 'an f16 gradient handed on, then a writer');
    assert(seen.join() === 'pass f16,f32', `then widened for the second: ${seen}`);
    const f32 = engine.empty([2]);
    expectThrow(() => new Tape(engine).record('bad', f32, [], () => {}, { halfGrad: true }), /tape: bad takes an f16 gradient, but its output is f32/);
    [x, f32].forEach((t) => t.dispose());
  });

  it('records nothing under noGrad or without inputs that need gradients', async () => {
    const engine = await getEngine();
    const g = new Tape(engine);
    const x = engine.upload(randomArray(new Rng(1), 12), [3, 4]);
    const w = engine.upload(randomArray(new Rng(2), 20), [5, 4]);
    const leaf = g.watch(w);
    const recorded = () => g.length;
    engine.scope(() => {
      g.noGrad(() => ops.linear(g, x, w));
      assert(recorded() === 0, 'noGrad records nothing');
      ops.gelu(g, x);
      assert(recorded() === 0, 'an op on constants records nothing');
      ops.linear(g, x, w);
      assert(recorded() === 1, 'an op on a watched tensor records');
    });
    g.clear();
    assert(recorded() === 0 && !leaf.hasGrad, 'clear drops the records');
    x.dispose();
    w.dispose();
  });

  it('shape errors name the op and both shapes', async () => {
    const engine = await getEngine();
    const g = new Tape(engine);
    engine.scope(() => {
      const x = engine.zeros([3, 4]);
      const w = engine.zeros([5, 6]);
      let msg = '';
      try {
        ops.linear(g, x, w);
      } catch (e) {
        msg = (e as Error).message;
      }
      assert(/linear/.test(msg) && msg.includes('[5,6]') && msg.includes('[5,4]'), `message: ${msg}`);
      try {
        ops.add(g, x, engine.zeros([4, 3]));
      } catch (e) {
        msg = (e as Error).message;
      }
      assert(/add/.test(msg) && msg.includes('[4,3]') && msg.includes('[3,4]'), `message: ${msg}`);
    });
  });

  it('passes gradients through add, reshape and scale (views where possible)', async () => {
    const engine = await getEngine();
    const g = new Tape(engine);
    const x = engine.upload(randomArray(new Rng(5), 8));
    const leaf = g.watch(x);
    const y = engine.scope(() => ops.scale(g, ops.reshape(g, ops.add(g, x, x), [2, 4]), 3));
    g.backward(y);
    assertClose(await engine.read(leaf.grad!), new Float64Array(8).fill(6), 1e-6, 'd(3·(x + x))/dx');
    leaf.grad!.dispose();
    x.dispose();
    y.dispose();
  });
});
