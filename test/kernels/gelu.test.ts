import { castF16ToF32, castF32ToF16 } from '../../kernels/cast.js';
import { erfForward, geluBackward, geluForward } from '../../kernels/gelu.js';
import { matmul, type MatmulOptions } from '../../kernels/matmul.js';
import { Rng } from '../../engine/random.js';
import { assert, assertClose, expectThrow, getEngine, poisoned, randomArray } from '../helpers.js';
import { bind, checkPadded, MODES, padded } from './map-helpers.js';
import { erf64, erfc64, gelu64, geluGrad64, numericGrad, withGridLimit } from './norm-ref.js';

const TOL = 1e-5;
// sizes past a workgroup and of every residue mod 4, through whole buffers (vec4 units) and bindings
// of exactly n floats (one float per thread where n % 4 != 0)
const SIZES = [1, 7, 257, 1000, 1030, 65537];
// f16 outputs: halves past n must keep this; `cut` binds exactly n halves except in the vec4 mode
const SENTINEL16 = 0x1234;
const cut = (t: { buffer: GPUBuffer }, bytes: number, mode: string) => (mode === 'vec4' ? t.buffer : { buffer: t.buffer, offset: 0, size: bytes });

describe('kernels/gelu', () => {
  it('float64 erf reference matches known values; gelu reference gradient matches finite differences', () => {
    // erf/erfc values from mpmath at 30 digits
    const known: [number, number, number][] = [
      [0.3, 0.32862675945912741619, 0.67137324054087258381],
      [1.7, 0.98379045859077456084, 0.016209541409225439159],
      [-2.2, -0.99813715370201811014, 1.9981371537020181101],
      [3.1, 0.99998835134263280041, 0.000011648657367199589313],
      [6.0, 0.99999999999999997848, 2.1519736712498913117e-17],
    ];
    for (const [z, e, c] of known) {
      assert(Math.abs(erf64(z) - e) < 1e-15, `erf64(${z}) = ${erf64(z)}, want ${e}`);
      assert(Math.abs(erfc64(z) / c - 1) < 1e-11, `erfc64(${z}) = ${erfc64(z)}, want ${c}`);
    }
    const xs = Float64Array.from([-9, -4.5, -2, -0.7, 0, 0.3, 1.2, 3.5, 8]);
    const fd = xs.map((x) => numericGrad((p) => gelu64(p[0]), Float64Array.of(x))[0]);
    assertClose(Array.from(xs, geluGrad64), fd, 1e-8, 'gelu reference gradient');
  });

  it('erf_f32 stays within 2e-7 absolute of erf', async () => {
    const engine = await getEngine();
    const n = 24001;
    const z = new Float32Array(n);
    for (let i = 0; i < n; i++) z[i] = -6 + (12 * i) / (n - 1);
    const tz = engine.upload(z), y = poisoned(engine, [n]);
    erfForward(engine.batch, tz.buffer, y.buffer, n);
    const got = await engine.read(y);
    let worst = 0, at = 0;
    for (let i = 0; i < n; i++) {
      const e = Math.abs(got[i] - erf64(z[i]));
      if (!(e <= worst)) [worst, at] = [e, i];
    }
    assert(worst < 2e-7, `erf max abs error ${worst.toExponential(2)} at z=${z[at]}`);
    tz.dispose();
    y.dispose();
  });

  it('forward against float64, and relatively accurate far into the negative tail', async () => {
    const engine = await getEngine();
    const rng = new Rng(2);
    for (const n of SIZES)
      for (const mode of MODES) {
        const x = randomArray(rng, n, 3);
        const tx = padded(engine, x, n), y = padded(engine, null, n);
        geluForward(engine.batch, bind(tx, n, mode), bind(y, n, mode), n);
        checkPadded(await engine.read(y), Array.from(x, gelu64), n, TOL, `gelu n=${n} ${mode}`);
        tx.dispose();
        y.dispose();
      }
    // x ≤ −√2: gelu is tiny and 0.5·(1 + erf) would cancel; each element must be right on its own
    const n = 2000;
    const x = Float32Array.from({ length: n }, (_, i) => -1.5 - (8 * i) / n);
    const tx = engine.upload(x), y = poisoned(engine, [n]);
    geluForward(engine.batch, tx.buffer, y.buffer, n);
    const got = await engine.read(y);
    for (let i = 0; i < n; i++) {
      const want = gelu64(x[i]);
      assert(Math.abs(got[i] / want - 1) < 2e-5, `gelu(${x[i]}) = ${got[i]}, want ${want}`);
    }
    tx.dispose();
    y.dispose();
  });

  it('backward against float64 (set and accumulate)', async () => {
    const engine = await getEngine();
    const rng = new Rng(3);
    for (const n of SIZES)
      for (const mode of MODES)
        for (const acc of [false, true]) {
          const x = randomArray(rng, n, 3), dy = randomArray(rng, n);
          const prior = acc ? randomArray(rng, n) : null;
          const tx = padded(engine, x, n), tdy = padded(engine, dy, n), dx = padded(engine, prior, n);
          geluBackward(engine.batch, bind(tx, n, mode), bind(tdy, n, mode), bind(dx, n, mode), n, { accumulate: acc });
          const ref = Array.from(x, (v, i) => dy[i] * geluGrad64(v) + (prior ? prior[i] : 0));
          checkPadded(await engine.read(dx), ref, n, TOL, `gelu dx n=${n} ${mode} accumulate=${acc}`);
          [tx, tdy, dx].forEach((t) => t.dispose());
        }
  });

  it('backward with an f16 dx (for an f16 linear), from an f32 or an f16 x and an f32 or an f16 dy: the bits of the f32 dx (on x and dy as read) cast, by vec4s, pairs and a half vec4 at the end; nothing past n written; odd n, accumulate and an f16 x or dy with an f32 dx refused', async () => {
    const engine = await getEngine();
    const rng = new Rng(8);
    for (const n of [2, 6, 8, 1030, 65538])
      for (const mode of MODES)
        for (const [xHalf, dyHalf] of [[false, false], [true, false], [false, true], [true, true]]) {
          const x = randomArray(rng, n, 3), dy = randomArray(rng, n);
          const tx = padded(engine, x, n), tdy = padded(engine, dy, n), d32 = padded(engine, null, n);
          // an f16 x or dy: its halves, and the f32 dx taken on their values
          const halves = (t: { buffer: GPUBuffer }, half: boolean) => {
            const h = engine.empty([n + 4], 'f16');
            if (half) {
              castF32ToF16(engine.batch, t.buffer, h.buffer, n);
              castF16ToF32(engine.batch, h.buffer, t.buffer, n);
            }
            return h;
          };
          const [x16, dy16] = [halves(tx, xHalf), halves(tdy, dyHalf)];
          const cast = engine.empty([n], 'f16'), d16 = engine.upload(new Uint16Array(n + 4).fill(SENTINEL16), [n + 4], 'f16');
          geluBackward(engine.batch, bind(tx, n, mode), bind(tdy, n, mode), d32.buffer, n);
          castF32ToF16(engine.batch, d32.buffer, cast.buffer, n);
          const xIn = xHalf ? cut(x16, 2 * n, mode) : bind(tx, n, mode);
          const dyIn = dyHalf ? cut(dy16, 2 * n, mode) : bind(tdy, n, mode);
          geluBackward(engine.batch, xIn, dyIn, cut(d16, 2 * n, mode), n, { output: 'f16', input: xHalf ? 'f16' : 'f32', dy: dyHalf ? 'f16' : 'f32' });
          const want = new Uint16Array(await engine.readRaw(cast), 0, n), got = new Uint16Array(await engine.readRaw(d16), 0, n + 4);
          const bad = want.findIndex((v, i) => v !== got[i]);
          const what = `n=${n} ${mode}${xHalf ? ' f16 x' : ''}${dyHalf ? ' f16 dy' : ''}`;
          assert(bad < 0, `${what}: f16 dx[${bad}] is ${got[bad]?.toString(16)}, the cast of the f32 dx ${want[bad]?.toString(16)}`);
          assert(got.subarray(n).every((v) => v === SENTINEL16), `${what}: halves past n written: ${Array.from(got.subarray(n), (v) => v.toString(16))}`);
          [tx, tdy, d32, x16, dy16, cast, d16].forEach((t) => t.dispose());
        }
    const a = engine.empty([64]), b = engine.empty([64]), h = engine.empty([64], 'f16');
    expectThrow(() => geluBackward(engine.batch, h.buffer, b.buffer, a.buffer, 64, { input: 'f16' }), /geluBackward: an f16 x needs an f16 dx \(n=64\)/);
    expectThrow(() => geluBackward(engine.batch, a.buffer, h.buffer, b.buffer, 64, { dy: 'f16' }), /geluBackward: an f16 dy needs an f16 dx \(n=64\)/);
    expectThrow(() => geluBackward(engine.batch, a.buffer, { buffer: h.buffer, size: 64 }, h.buffer, 64, { dy: 'f16', output: 'f16' }), /geluBackward: dy binding holds 64 bytes, needs 128 \(n=64 f16\)/);
    expectThrow(() => geluBackward(engine.batch, { buffer: h.buffer, size: 64 }, b.buffer, a.buffer, 64, { input: 'f16', output: 'f16' }), /geluBackward: x binding holds 64 bytes, needs 128 \(n=64 f16\)/);
    expectThrow(() => geluBackward(engine.batch, a.buffer, b.buffer, h.buffer, 63, { output: 'f16' }), /geluBackward: an f16 dx is written in pairs: n must be even, got 63/);
    expectThrow(() => geluBackward(engine.batch, a.buffer, b.buffer, h.buffer, 64, { output: 'f16', accumulate: true }), /geluBackward: an f16 dx cannot be accumulated into/);
    expectThrow(() => geluBackward(engine.batch, a.buffer, b.buffer, { buffer: h.buffer, size: 64 }, 64, { output: 'f16' }), /geluBackward: dx binding holds 64 bytes, needs 128 \(n=64 f16\)/);
    [a, b, h].forEach((t) => t.dispose());
  });

  it('forward on f16 x and y: the bits of the f32 forward on x\'s values cast, by vec4s, pairs and a half vec4 at the end; nothing past n written; and a matmul\'s f16 output with GELU again from its f16 pre-activation (tiled, split K, f16 inputs); mixed types and odd n refused', async () => {
    const engine = await getEngine();
    const rng = new Rng(9);
    for (const n of [2, 6, 8, 1030, 65538])
      for (const mode of MODES) {
        const tx = padded(engine, randomArray(rng, n, 3), n), y32 = padded(engine, null, n);
        const x16 = engine.empty([n + 4], 'f16');
        castF32ToF16(engine.batch, tx.buffer, x16.buffer, n);
        castF16ToF32(engine.batch, x16.buffer, tx.buffer, n);
        const cast = engine.empty([n], 'f16'), y16 = engine.upload(new Uint16Array(n + 4).fill(SENTINEL16), [n + 4], 'f16');
        geluForward(engine.batch, bind(tx, n, mode), y32.buffer, n);
        castF32ToF16(engine.batch, y32.buffer, cast.buffer, n);
        geluForward(engine.batch, cut(x16, 2 * n, mode), cut(y16, 2 * n, mode), n, { input: 'f16', output: 'f16' });
        const want = new Uint16Array(await engine.readRaw(cast), 0, n), got = new Uint16Array(await engine.readRaw(y16), 0, n + 4);
        const bad = want.findIndex((v, i) => v !== got[i]);
        assert(bad < 0, `n=${n} ${mode}: f16 y[${bad}] is ${got[bad]?.toString(16)}, the cast of the f32 forward ${want[bad]?.toString(16)}`);
        assert(got.subarray(n).every((v) => v === SENTINEL16), `n=${n} ${mode}: halves past n written: ${Array.from(got.subarray(n), (v) => v.toString(16))}`);
        [tx, y32, x16, cast, y16].forEach((t) => t.dispose());
      }
    // fc1's forward in mixed precision: C = gelu(f16 pre-activation), so the halves it keeps give C again
    const [M, N, K] = [37, 52, 300];
    const f16In = engine.device.features.has('shader-f16');
    for (const [o, what] of [[{}, 'tiled'], [{ splitK: 3 }, 'split K'], ...(f16In ? [[{ precision: 'f16' }, 'f16 inputs']] : [])] as [MatmulOptions, string][]) {
      const half = (t: { buffer: GPUBuffer; size: number }) => {
        const h = engine.empty([t.size], 'f16');
        castF32ToF16(engine.batch, t.buffer, h.buffer, t.size);
        return h;
      };
      const a32 = engine.upload(randomArray(rng, M * K, 0.15)), b32 = engine.upload(randomArray(rng, N * K, 0.15)), bias = engine.upload(randomArray(rng, N));
      const [a, b] = o.precision === 'f16' ? [half(a32), half(b32)] : [a32, b32];
      const c = engine.empty([M * N], 'f16'), pre = engine.empty([M * N], 'f16'), again = engine.empty([M * N], 'f16');
      matmul(engine.batch, { a: a.buffer, b: b.buffer, c: c.buffer, bias: bias.buffer, preact: pre.buffer }, { M, N, K, transB: true, activation: 'gelu', output: 'f16' }, o);
      geluForward(engine.batch, pre.buffer, again.buffer, M * N, { input: 'f16', output: 'f16' });
      const [x, y] = [await engine.readRaw(c), await engine.readRaw(again)].map((r) => new Uint16Array(r, 0, M * N));
      const bad = x.findIndex((v, i) => v !== y[i]);
      assert(bad < 0, `${what}: the matmul's f16 GELU output [${bad}] is ${x[bad]?.toString(16)}, geluForward on its pre-activation gives ${y[bad]?.toString(16)}`);
      new Set([a32, b32, a, b, bias, c, pre, again]).forEach((t) => t.dispose());
    }
    const a = engine.empty([64]), h = engine.empty([64], 'f16'), h2 = engine.empty([64], 'f16');
    expectThrow(() => geluForward(engine.batch, h.buffer, a.buffer, 64, { input: 'f16' }), /geluForward: input and output must both be f16 or both f32, got f16 and f32 \(n=64\)/);
    expectThrow(() => geluForward(engine.batch, h.buffer, h2.buffer, 63, { input: 'f16', output: 'f16' }), /geluForward: f16 x and y are read and written in pairs: n must be even, got 63/);
    expectThrow(() => geluForward(engine.batch, { buffer: h.buffer, size: 64 }, h2.buffer, 64, { input: 'f16', output: 'f16' }), /geluForward: x binding holds 64 bytes, needs 128 \(n=64 f16\)/);
    expectThrow(() => geluForward(engine.batch, h.buffer, h.buffer, 64, { input: 'f16', output: 'f16' }), /geluForward: .*y.*x/);
    [a, h, h2].forEach((t) => t.dispose());
  });

  it('forward and backward (f32 and f16 dx) on a 2-D launch grid', () => withGridLimit(7, async () => {
    const engine = await getEngine();
    const rng = new Rng(4);
    const n = 65537, even = n - 1;
    const x = randomArray(rng, n, 3), dy = randomArray(rng, n);
    const tx = engine.upload(x), tdy = engine.upload(dy), y = poisoned(engine, [n]), dx = poisoned(engine, [n]);
    const [d16, cast] = [engine.empty([even], 'f16'), engine.empty([even], 'f16')];
    geluForward(engine.batch, tx.buffer, y.buffer, n);
    geluBackward(engine.batch, tx.buffer, tdy.buffer, dx.buffer, n);
    geluBackward(engine.batch, tx.buffer, tdy.buffer, d16.buffer, even, { output: 'f16' });
    castF32ToF16(engine.batch, dx.buffer, cast.buffer, even);
    assertClose(await engine.read(y), Array.from(x, gelu64), TOL, 'gelu on a 2-D grid');
    assertClose(await engine.read(dx), Array.from(x, (v, i) => dy[i] * geluGrad64(v)), TOL, 'gelu dx on a 2-D grid');
    const [a, b] = [await engine.readRaw(d16), await engine.readRaw(cast)].map((r) => new Uint16Array(r, 0, even));
    assert(a.every((v, i) => v === b[i]), 'the f16 dx on a 2-D grid is the f32 dx cast');
    [tx, tdy, y, dx, d16, cast].forEach((t) => t.dispose());
  }));

  it('rejects bad sizes and aliasing, naming the kernel and sizes', async () => {
    const engine = await getEngine();
    const a = engine.empty([64]), b = engine.empty([64]);
    const cases: [() => void, RegExp][] = [
      [() => geluForward(engine.batch, a.buffer, a.buffer, 64), /geluForward: y must not share a buffer with x/],
      [() => geluForward(engine.batch, a.buffer, { buffer: b.buffer, size: 16 }, 64), /geluForward: y binding holds 16 bytes, needs 256 \(n=64\)/],
      [() => geluBackward(engine.batch, a.buffer, b.buffer, b.buffer, 64, { accumulate: true }), /geluBackward: dx must not share a buffer with dy/],
    ];
    for (const [fn, re] of cases) expectThrow(fn, re);
    a.dispose();
    b.dispose();
  });
});
