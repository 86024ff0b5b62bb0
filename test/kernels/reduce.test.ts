import { castF16ToF32, castF32ToF16 } from '../../kernels/cast.js';
import { broadcastAxis, reduceAxis, rowSumLayout } from '../../kernels/reduce.js';
import { Rng } from '../../engine/random.js';
import { assert, assertClose, expectThrow, getEngine, poisoned, randomArray } from '../helpers.js';
import { broadcastRef, dot, f64, numericGrad, reduceRef, withGridLimit, withoutSubgroups } from './norm-ref.js';

const TOL = 1e-5;

// [outer, reduce, inner]: single elements, row sums (inner 1), bias-gradient shapes (outer 1),
// mean-pooling shapes, inner not a power of two, long axes that take the split two-pass path
// (1 × 100003 × 1, 1 × 5000 × 70, 1 × 1031 × 768), 70000 short rows (256 per workgroup), and an
// empty axis. Row sums of 32 floats and more, up to 32 per lane, take the subgroup-per-row kernel
// (up to 256 floats on lavapipe's 8-lane subgroups, 1024 on NVIDIA's 32).
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 7, 1], [3, 1000, 1], [70000, 3, 1], [9, 100, 1], [5, 256, 1], [7, 45, 1], [1, 25, 5], [1, 1031, 13], [2, 17, 768],
  [4, 37, 3], [3, 50, 96], [1, 100003, 1], [1, 5000, 70], [1, 1031, 768], [3, 0, 5],
];

async function checkReduce(shapes: [number, number, number][], seed: number): Promise<void> {
  const engine = await getEngine();
  const rng = new Rng(seed);
  for (const [outer, reduce, inner] of shapes) {
    for (const mode of ['sum', 'mean', 'accumulate'] as const) {
      if (mode === 'mean' && reduce === 0) continue;
      const x = randomArray(rng, outer * reduce * inner);
      const prior = mode === 'accumulate' ? randomArray(rng, outer * inner) : null;
      const tx = engine.upload(x), y = prior ? engine.upload(prior) : poisoned(engine, [outer * inner]);
      reduceAxis(engine.batch, tx.buffer, y.buffer, { outer, reduce, inner, mean: mode === 'mean', accumulate: mode === 'accumulate' });
      const ref = reduceRef(x, outer, reduce, inner, mode === 'mean').map((v, i) => v + (prior ? prior[i] : 0));
      // A sum's rounding error scales with the sum of magnitudes, not with the sum: random signs can
      // cancel to almost nothing (1e5 values once summed to -1.08, off by 5e-6, a relative 5e-5).
      const size = reduceRef(x.map(Math.abs), outer, reduce, inner, mode === 'mean').map((v, i) => v + (prior ? Math.abs(prior[i]) : 0));
      const out = await engine.read(y);
      const what = `reduceAxis ${mode} [${outer}, ${reduce}, ${inner}]`;
      out.forEach((v, i) => assert(Math.abs(v - ref[i]) <= TOL * size[i], `${what}: element ${i} is ${v}, want ${ref[i]} within ${TOL} of Σ|x| = ${size[i]}`));
      tx.dispose();
      y.dispose();
    }
  }
}

async function checkBroadcast(shapes: [number, number, number][], seed: number): Promise<void> {
  const engine = await getEngine();
  const rng = new Rng(seed);
  for (const [outer, reduce, inner] of shapes) {
    for (const acc of [false, true]) {
      const n = outer * reduce * inner;
      if (n === 0) continue;
      const scale = acc ? 1 : 1 / 3;
      const x = randomArray(rng, outer * inner);
      const prior = acc ? randomArray(rng, n) : null;
      const tx = engine.upload(x), y = prior ? engine.upload(prior) : poisoned(engine, [n]);
      broadcastAxis(engine.batch, tx.buffer, y.buffer, { outer, reduce, inner, scale: acc ? undefined : scale, accumulate: acc });
      const ref = broadcastRef(x, outer, reduce, inner, scale).map((v, i) => v + (prior ? prior[i] : 0));
      assertClose(await engine.read(y), ref, TOL, `broadcastAxis acc=${acc} [${outer}, ${reduce}, ${inner}]`);
      tx.dispose();
      y.dispose();
    }
  }
}

describe('kernels/reduce', () => {
  it('CPU reference: broadcastAxis is the gradient of reduceAxis (finite differences)', () => {
    const rng = new Rng(1);
    const [outer, reduce, inner] = [2, 5, 3];
    const x = f64(randomArray(rng, outer * reduce * inner)), w = f64(randomArray(rng, outer * inner));
    for (const mean of [false, true]) {
      const fd = numericGrad((p) => dot(w, reduceRef(p, outer, reduce, inner, mean)), x.slice());
      assertClose(broadcastRef(w, outer, reduce, inner, mean ? 1 / reduce : 1), fd, 1e-8, `mean=${mean}`);
    }
  });

  it('reduceAxis against float64 (sum, mean, accumulate)', () => checkReduce(SHAPES, 2));

  it('row sums: rows that fit a subgroup take one subgroup per row (f32 and vec4 loads), others the column kernel', async () => {
    const { device } = await getEngine();
    const rowSums = SHAPES.filter(([o, r, i]) => i === 1 && o * r > 0);
    if (device.features.has('subgroups')) {
      const taken = new Set(rowSums.map(([o, r]) => rowSumLayout(device, o, r, 1)?.vec ?? 'columns'));
      for (const path of [1, 4, 'columns']) assert(taken.has(path as never), `no row-sum shape takes ${path} (took ${[...taken]})`);
    }
    // the column kernel's row sums, where the device has subgroups too
    await withoutSubgroups(() => checkReduce(rowSums, 9));
  });

  it('reduceAxis: calls sharing one batch while the scratch grows', async () => {
    const engine = await getEngine();
    const rng = new Rng(3);
    const shapes: [number, number, number][] = [[1, 3000, 20], [1, 40000, 30], [2, 20000, 17]];
    const runs = shapes.map(([o, r, i]) => {
      const x = randomArray(rng, o * r * i);
      const tx = engine.upload(x), y = poisoned(engine, [o * i]);
      reduceAxis(engine.batch, tx.buffer, y.buffer, { outer: o, reduce: r, inner: i });
      return { x, tx, y, shape: [o, r, i] as const };
    });
    for (const { x, tx, y, shape } of runs) {
      assertClose(await engine.read(y), reduceRef(x, ...shape), TOL, `reduceAxis [${shape}] in one batch`);
      tx.dispose();
      y.dispose();
    }
  });

  it('reduceAxis with a second output: outer 2 split between two buffers (sum, mean, accumulate; one pass, split, inner 1, empty)', async () => {
    const engine = await getEngine();
    const rng = new Rng(8);
    for (const [reduce, inner] of [[17, 768], [1031, 9], [40, 1], [0, 4]]) {
      for (const mode of ['sum', 'mean', 'accumulate'] as const) {
        if (mode === 'mean' && reduce === 0) continue;
        const x = randomArray(rng, 2 * reduce * inner);
        const prior = mode === 'accumulate' ? randomArray(rng, 2 * inner) : null;
        // the outputs as two tensors, or as two ranges of one buffer (a parameter gradient arena's)
        const outs = [0, 1].map((o) => (prior ? engine.upload(prior.slice(o * inner, (o + 1) * inner)) : poisoned(engine, [inner])));
        const at = Math.ceil((4 * inner) / 256) * 256; // the second range's offset
        const one = reduce === 17 || reduce === 1031 ? engine.upload(new Float32Array((at + 4 * inner) / 4).fill(NaN)) : null;
        const range = (o: number) => ({ buffer: one!.buffer, offset: o * at, size: 4 * inner });
        if (one) for (const o of [0, 1]) engine.batch.copy(outs[o].buffer, 0, one.buffer, o * at, 4 * inner);
        const tx = engine.upload(x);
        reduceAxis(engine.batch, tx.buffer, one ? range(0) : outs[0].buffer, { outer: 2, reduce, inner, mean: mode === 'mean', accumulate: mode === 'accumulate', second: one ? range(1) : outs[1].buffer });
        if (one) for (const o of [0, 1]) engine.batch.copy(one.buffer, o * at, outs[o].buffer, 0, 4 * inner);
        const ref = reduceRef(x, 2, reduce, inner, mode === 'mean').map((v, i) => v + (prior ? prior[i] : 0));
        const size = reduceRef(x.map(Math.abs), 2, reduce, inner, mode === 'mean').map((v, i) => v + (prior ? Math.abs(prior[i]) : 0));
        for (const o of [0, 1]) {
          const out = await engine.read(outs[o]);
          out.forEach((v, i) => assert(Math.abs(v - ref[o * inner + i]) <= TOL * size[o * inner + i], `second output, ${mode} [2, ${reduce}, ${inner}], output ${o}: element ${i} is ${v}, want ${ref[o * inner + i]}`));
        }
        [tx, ...outs, ...(one ? [one] : [])].forEach((t) => t.dispose());
      }
    }
  });

  it('reduceAxis of f16 input (the bias gradient of an f16 linear): against float64 of the halves, one pass and split, odd counts, a second output', async () => {
    const engine = await getEngine();
    const rng = new Rng(9);
    /** x as f16 (the cast of random floats) and the exact values of its halves. */
    const halves = async (n: number) => {
      const x32 = engine.upload(randomArray(rng, n)), h = engine.empty([n], 'f16'), back = engine.empty([n]);
      castF32ToF16(engine.batch, x32.buffer, h.buffer, n);
      castF16ToF32(engine.batch, h.buffer, back.buffer, n);
      const values = await engine.read(back);
      [x32, back].forEach((t) => t.dispose());
      return { h, values };
    };
    const within = (got: Float32Array, values: Float32Array, dims: [number, number, number], what: string) => {
      const ref = reduceRef(values, ...dims), size = reduceRef(values.map(Math.abs), ...dims);
      got.forEach((v, i) => assert(Math.abs(v - ref[i]) <= TOL * size[i], `${what}: element ${i} is ${v}, want ${ref[i]}`));
    };
    for (const dims of [[1, 7, 5], [1, 1031, 13], [1, 5000, 70], [3, 50, 96], [4, 37, 3], [1, 1031, 1]] as [number, number, number][]) {
      const { h, values } = await halves(dims[0] * dims[1] * dims[2]);
      const y = poisoned(engine, [dims[0] * dims[2]]);
      reduceAxis(engine.batch, h.buffer, y.buffer, { outer: dims[0], reduce: dims[1], inner: dims[2], input: 'f16' });
      within(await engine.read(y), values, dims, `f16 reduceAxis [${dims}]`);
      [h, y].forEach((t) => t.dispose());
    }
    for (const reduce of [17, 5000]) {
      const inner = 33, { h, values } = await halves(2 * reduce * inner);
      const y = poisoned(engine, [inner]), y2 = poisoned(engine, [inner]);
      reduceAxis(engine.batch, h.buffer, y.buffer, { outer: 2, reduce, inner, input: 'f16', second: y2.buffer });
      const both = new Float32Array(2 * inner);
      both.set(await engine.read(y));
      both.set(await engine.read(y2), inner);
      within(both, values, [2, reduce, inner], `f16 reduceAxis [2, ${reduce}, ${inner}] with a second output`);
      [h, y, y2].forEach((t) => t.dispose());
    }
    const h = engine.empty([64], 'f16'), y = engine.empty([4]);
    expectThrow(() => reduceAxis(engine.batch, { buffer: h.buffer, size: 124 }, y.buffer, { outer: 1, reduce: 16, inner: 4, input: 'f16' }), /reduceAxis: x binding holds 124 bytes, needs 128/);
    expectThrow(() => reduceAxis(engine.batch, h.buffer, y.buffer, { outer: 1, reduce: 16, inner: 4, input: 'u8' as 'f16' }), /reduceAxis: input must be 'f32' or 'f16', got 'u8'/);
    [h, y].forEach((t) => t.dispose());
  });

  it('broadcastAxis against float64 (scale, accumulate)', () => checkBroadcast(SHAPES, 4));

  it('reduceAxis and broadcastAxis on a 2-D launch grid', () => withGridLimit(5, async () => {
    await checkReduce([[1, 600, 768], [70000, 3, 1], [3, 50, 96]], 5);
    await checkBroadcast([[3, 50, 96], [1, 1031, 13]], 6);
  }));

  it('rejects bad sizes and aliasing, naming the kernel and sizes', async () => {
    const engine = await getEngine();
    const a = engine.empty([64]), b = engine.empty([64]), c = engine.empty([64]);
    const cases: [() => void, RegExp][] = [
      [() => reduceAxis(engine.batch, a.buffer, a.buffer, { outer: 1, reduce: 4, inner: 4 }), /reduceAxis: y must not share a buffer with x/],
      [() => reduceAxis(engine.batch, a.buffer, b.buffer, { outer: 2, reduce: 0, inner: 4, mean: true }), /reduceAxis: mean over an empty axis \(outer=2, reduce=0, inner=4\)/],
      [() => reduceAxis(engine.batch, a.buffer, b.buffer, { outer: 1, reduce: 65, inner: 1 }), /reduceAxis: x binding holds 256 bytes, needs 260 \(outer=1, reduce=65, inner=1\)/],
      [() => broadcastAxis(engine.batch, a.buffer, b.buffer, { outer: 1, reduce: 1.5, inner: 4 }), /broadcastAxis: reduce must be an integer/],
      [() => reduceAxis(engine.batch, a.buffer, b.buffer, { outer: 3, reduce: 4, inner: 4, second: c.buffer }), /reduceAxis: a second output takes outer = 2 \(outer=3, reduce=4, inner=4\)/],
      [() => reduceAxis(engine.batch, a.buffer, b.buffer, { outer: 2, reduce: 4, inner: 4, second: a.buffer }), /reduceAxis: second must not share a buffer with x/],
      [() => reduceAxis(engine.batch, a.buffer, b.buffer, { outer: 2, reduce: 4, inner: 4, second: { buffer: b.buffer, offset: 0, size: 16 } }), /reduceAxis: y and second share memory/],
    ];
    for (const [fn, re] of cases) expectThrow(fn, re);
    [a, b, c].forEach((t) => t.dispose());
  });
});
