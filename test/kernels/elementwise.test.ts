import { accumulate, addBroadcast, addScaledGroups, binary, fill, scale, scaleGroups, type BinaryOp } from '../../kernels/elementwise.js';
import { Rng } from '../../engine/random.js';
import { assert, assertClose, getEngine, poisoned, randomArray } from '../helpers.js';
import { bind, checkPadded, expectThrow, f64, MODES, PAD, padded, SENTINEL, SIZES } from './map-helpers.js';

describe('kernels/elementwise', () => {
  for (const op of ['add', 'sub', 'mul'] as BinaryOp[]) {
    it(`${op}: every element against a float64 reference`, async () => {
      const engine = await getEngine();
      const rng = new Rng(7);
      for (const n of [1, 7, 257, 1000, 65537]) {
        const a = randomArray(rng, n), b = randomArray(rng, n);
        const alpha = 0.75;
        const ta = engine.upload(a), tb = engine.upload(b), out = poisoned(engine, [n]);
        binary(engine.batch, op, ta.buffer, tb.buffer, out.buffer, n, alpha);
        const got = await engine.read(out);
        const ref = new Float64Array(n);
        for (let i = 0; i < n; i++) ref[i] = op === 'add' ? a[i] + alpha * b[i] : op === 'sub' ? a[i] - alpha * b[i] : a[i] * alpha * b[i];
        assertClose(got, ref, 1e-6, `${op} n=${n}`);
        [ta, tb, out].forEach((t) => t.dispose());
      }
    });
  }

  it('binary: vec4 and scalar paths, tail untouched, overlap refused', async () => {
    const engine = await getEngine();
    const rng = new Rng(8);
    for (const mode of MODES)
      for (const n of SIZES) {
        const a = randomArray(rng, n), b = randomArray(rng, n), alpha = -1.25;
        const ta = engine.upload(a), tb = engine.upload(b), out = padded(engine, null, n);
        binary(engine.batch, 'add', bind(ta, n, mode), bind(tb, n, mode), bind(out, n, mode), n, alpha);
        checkPadded(await engine.read(out), f64(a).map((v, i) => v + alpha * b[i]), n, 1e-6, `binary ${mode} n=${n}`);
        [ta, tb, out].forEach((t) => t.dispose());
      }
    const t = engine.upload(new Float32Array(8));
    expectThrow(() => binary(engine.batch, 'add', t.buffer, t.buffer, t.buffer, 8), 'binary add');
    t.dispose();
  });
});

describe('kernels/elementwise: accumulate, scale, fill, addBroadcast, scaleGroups, addScaledGroups', () => {
  it('accumulate: target += alpha·src, vec4 and scalar paths, tail untouched', async () => {
    const engine = await getEngine();
    const rng = new Rng(11);
    for (const mode of MODES)
      for (const n of SIZES) {
        const t0 = randomArray(rng, n), s = randomArray(rng, n), alpha = -0.625;
        const tt = padded(engine, t0, n), ts = engine.upload(s);
        accumulate(engine.batch, bind(tt, n, mode), bind(ts, n, mode), n, alpha);
        const ref = f64(t0).map((v, i) => v + alpha * s[i]);
        checkPadded(await engine.read(tt), ref, n, 1e-6, `accumulate ${mode} n=${n}`);
        [tt, ts].forEach((t) => t.dispose());
      }
  });

  it('scale: y = alpha·x, out of place and in place', async () => {
    const engine = await getEngine();
    const rng = new Rng(12);
    for (const mode of MODES)
      for (const n of SIZES) {
        const x = randomArray(rng, n), alpha = 1.75;
        const ref = f64(x).map((v) => alpha * v);
        const tx = engine.upload(x), ty = padded(engine, null, n);
        scale(engine.batch, bind(tx, n, mode), bind(ty, n, mode), n, alpha);
        checkPadded(await engine.read(ty), ref, n, 1e-6, `scale ${mode} n=${n}`);
        const tz = padded(engine, x, n);
        scale(engine.batch, bind(tz, n, mode), bind(tz, n, mode), n, alpha);
        checkPadded(await engine.read(tz), ref, n, 1e-6, `scale in place ${mode} n=${n}`);
        [tx, ty, tz].forEach((t) => t.dispose());
      }
  });

  it('fill: every element, special values too', async () => {
    const engine = await getEngine();
    for (const mode of MODES)
      for (const n of SIZES)
        for (const value of [3.25, -Infinity]) {
          const ty = padded(engine, null, n);
          fill(engine.batch, bind(ty, n, mode), n, value);
          const got = await engine.read(ty);
          for (let i = 0; i < n + PAD; i++)
            assert(got[i] === (i < n ? value : SENTINEL), `fill ${value} ${mode} n=${n}: element ${i} is ${got[i]}`);
          ty.dispose();
        }
    const ty = padded(engine, null, 9);
    fill(engine.batch, ty.buffer, 9, NaN);
    const got = await engine.read(ty);
    assert(got.subarray(0, 9).every(Number.isNaN) && got[9] === SENTINEL, 'fill NaN n=9');
    ty.dispose();
  });

  it('fill: more than 65535 workgroups (2-D grid) reaches every element and stops at n', async () => {
    const engine = await getEngine();
    const n = 65536 * 256 + 5; // scalar path: 65537 workgroups of 256
    const ty = engine.zeros([n + 3]);
    fill(engine.batch, { buffer: ty.buffer, size: 4 * n }, n, 1.5);
    const got = await engine.read(ty);
    for (let i = 0; i < n + 3; i++) if (got[i] !== (i < n ? 1.5 : 0)) assert(false, `fill 2-D grid n=${n}: element ${i} is ${got[i]}`);
    ty.dispose();
  });

  it('addBroadcast: y[i] = x[i] + alpha·b[i % period], out of place and in place', async () => {
    const engine = await getEngine();
    const rng = new Rng(13);
    const cases: [number, number][] = [[1, 1], [7, 7], [55, 5], [54, 4], [84, 12], [37, 8], [3 * 768 + 2, 768], [1031, 3]];
    for (const mode of MODES)
      for (const [n, period] of cases) {
        const x = randomArray(rng, n), b = randomArray(rng, period), alpha = 0.5;
        const ref = f64(x).map((v, i) => v + alpha * b[i % period]);
        const tx = engine.upload(x), tb = engine.upload(b), ty = padded(engine, null, n);
        addBroadcast(engine.batch, bind(tx, n, mode), tb.buffer, bind(ty, n, mode), { n, period, alpha });
        checkPadded(await engine.read(ty), ref, n, 1e-6, `addBroadcast ${mode} n=${n} period=${period}`);
        const tz = padded(engine, x, n);
        addBroadcast(engine.batch, bind(tz, n, mode), tb.buffer, bind(tz, n, mode), { n, period, alpha });
        checkPadded(await engine.read(tz), ref, n, 1e-6, `addBroadcast in place ${mode} n=${n} period=${period}`);
        [tx, tb, ty, tz].forEach((t) => t.dispose());
      }
    // alpha defaults to 1
    const tx = engine.upload([1, 2, 3]), tb = engine.upload([10]), ty = padded(engine, null, 3);
    addBroadcast(engine.batch, tx.buffer, tb.buffer, ty.buffer, { n: 3, period: 1 });
    checkPadded(await engine.read(ty), [11, 12, 13], 3, 1e-6, 'addBroadcast default alpha');
    [tx, tb, ty].forEach((t) => t.dispose());
  });

  it('scaleGroups: y (+)= factors[g]·x per group, out of place and in place', async () => {
    const engine = await getEngine();
    const rng = new Rng(14);
    const cases: [number, number][] = [[1, 1], [3, 7], [5, 8], [2, 12], [7, 257], [4, 1], [3, 4 * 97]];
    for (const mode of MODES)
      for (const [groups, groupSize] of cases)
        for (const acc of [false, true]) {
          const n = groups * groupSize;
          const x = randomArray(rng, n), f = Float32Array.from({ length: groups }, () => (rng.next() < 0.3 ? 0 : 1 / 0.9));
          const y0 = randomArray(rng, n);
          const what = `scaleGroups ${mode} ${groups}x${groupSize} acc=${acc}`;
          const tx = engine.upload(x), tf = engine.upload(f), ty = padded(engine, acc ? y0 : null, n);
          scaleGroups(engine.batch, bind(tx, n, mode), tf.buffer, bind(ty, n, mode), { groups, groupSize, accumulate: acc });
          const ref = f64(x).map((v, i) => (acc ? y0[i] : 0) + f[Math.floor(i / groupSize)] * v);
          checkPadded(await engine.read(ty), ref, n, 1e-6, what);
          const tz = padded(engine, x, n);
          scaleGroups(engine.batch, bind(tz, n, mode), tf.buffer, bind(tz, n, mode), { groups, groupSize, accumulate: acc });
          const refIn = f64(x).map((v, i) => (acc ? v : 0) + f[Math.floor(i / groupSize)] * v);
          checkPadded(await engine.read(tz), refIn, n, 1e-6, `${what} in place`);
          [tx, tf, ty, tz].forEach((t) => t.dispose());
        }
  });

  it('addScaledGroups: y = base + factors[g]·x per group (drop-path\'s residual add), vec4 and scalar', async () => {
    const engine = await getEngine();
    const rng = new Rng(15);
    for (const mode of MODES)
      for (const [groups, groupSize] of [[1, 1], [3, 7], [5, 8], [7, 257], [3, 4 * 97]] as [number, number][]) {
        const n = groups * groupSize;
        const x = randomArray(rng, n), base = randomArray(rng, n), f = Float32Array.from({ length: groups }, () => (rng.next() < 0.3 ? 0 : 1 / 0.9));
        const tx = engine.upload(x), tb = engine.upload(base), tf = engine.upload(f), ty = padded(engine, null, n);
        addScaledGroups(engine.batch, bind(tb, n, mode), bind(tx, n, mode), tf.buffer, bind(ty, n, mode), { groups, groupSize });
        const ref = f64(x).map((v, i) => base[i] + f[Math.floor(i / groupSize)] * v);
        checkPadded(await engine.read(ty), ref, n, 1e-6, `addScaledGroups ${mode} ${groups}x${groupSize}`);
        [tx, tb, tf, ty].forEach((t) => t.dispose());
      }
    const [t, u, v, small] = [engine.zeros([64]), engine.zeros([64]), engine.zeros([64]), engine.zeros([3])];
    expectThrow(() => addScaledGroups(engine.batch, t.buffer, u.buffer, small.buffer, t.buffer, { groups: 4, groupSize: 16 }), 'addScaledGroups: y must not share a buffer with base');
    expectThrow(() => addScaledGroups(engine.batch, t.buffer, u.buffer, { buffer: small.buffer, size: 12 }, v.buffer, { groups: 4, groupSize: 16 }), 'addScaledGroups: factors binding holds 12 bytes, needs 16 (groups=4, groupSize=16)');
    [t, u, v, small].forEach((x) => x.dispose());
  });

  it('launchers reject overlapping and too-small bindings, naming the kernel and sizes', async () => {
    const engine = await getEngine();
    const t = engine.zeros([64]), small = engine.zeros([3]);
    expectThrow(() => accumulate(engine.batch, t.buffer, t.buffer, 8), 'accumulate: target must not share a buffer with src');
    expectThrow(() => scale(engine.batch, { buffer: t.buffer, offset: 0, size: 512 }, { buffer: t.buffer, offset: 256, size: 256 }, 64, 2), 'scale: y must not share a buffer with x');
    expectThrow(() => fill(engine.batch, small.buffer, 1000, 0), 'fill: y binding holds');
    expectThrow(() => addBroadcast(engine.batch, t.buffer, t.buffer, t.buffer, { n: 8, period: 4 }), 'addBroadcast: y must not share a buffer with b');
    expectThrow(() => scaleGroups(engine.batch, t.buffer, small.buffer, t.buffer, { groups: 1000, groupSize: 1 }), 'groups=1000');
    expectThrow(() => accumulate(engine.batch, t.buffer, small.buffer, 2.5), 'accumulate: n must be an integer');
    [t, small].forEach((x) => x.dispose());
  });
});
