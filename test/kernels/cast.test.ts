import { castF16ToF32, castF32ToF16 } from '../../kernels/cast.js';
import { Rng } from '../../engine/random.js';
import type { Engine } from '../../engine/engine.js';
import type { Tensor } from '../../engine/tensor.js';
import { assert, getEngine } from '../helpers.js';

/** f32 bits of the exact value of half `h`, by arithmetic (NaN: sign, all-ones exponent, payload << 13). */
function halfToF32Bits(h: number): number {
  const sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  if (e === 31) return ((sign << 31) | 0x7f800000 | (m << 13)) >>> 0;
  const mag = e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15);
  const f = new Float32Array([sign ? -mag : mag]);
  if (mag === 0 && sign) f[0] = -0;
  return new Uint32Array(f.buffer)[0];
}

function roundHalfEven(v: number): number {
  const f = Math.floor(v), r = v - f;
  return r > 0.5 || (r === 0.5 && f % 2 === 1) ? f + 1 : f;
}

/** IEEE binary16 round-to-nearest-even of a float, in float64 arithmetic; NaN → -1. */
function f16Ref(x: number): number {
  if (Number.isNaN(x)) return -1;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24); // subnormal (1024 = smallest normal, also right)
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  let q = roundHalfEven((a / 2 ** e - 1) * 1024);
  if (q === 1024) {
    q = 0;
    e++;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | q;
}

async function halves(engine: Engine, t: Tensor, n: number): Promise<Uint16Array> {
  return new Uint16Array(await engine.readRaw(t)).subarray(0, n);
}

describe('kernels/cast', () => {
  it('f16 → f32: all 65536 half bit patterns, exactly, four a thread and in pairs', async () => {
    const engine = await getEngine();
    // 65536: the 4-element form; 65535 (all but 0xffff): the pair form
    for (const n of [65536, 65535]) {
      const h = Uint16Array.from({ length: n }, (_, i) => i);
      const tx = engine.upload(h, [n], 'f16'), ty = engine.upload(new Float32Array(n + 1).fill(NaN));
      castF16ToF32(engine.batch, tx.buffer, ty.buffer, n);
      const got = new Uint32Array(await engine.readRaw(ty));
      for (let i = 0; i < n; i++) assert(got[i] === halfToF32Bits(i), `n=${n} half 0x${i.toString(16)}: got bits 0x${got[i].toString(16)}, want 0x${halfToF32Bits(i).toString(16)}`);
      assert(Number.isNaN(new Float32Array(got.buffer)[n]), `n=${n}: element n was written`);
      [tx, ty].forEach((t) => t.dispose());
    }
  });

  it('f32 → f16: round-to-nearest-even on specials, ties, subnormals, overflow and random values', async () => {
    const engine = await getEngine();
    const rng = new Rng(71);
    const xs: number[] = [0, -0, 1, -1, 65504, 65519.99, 65520, -65520, 1e6, Infinity, -Infinity, NaN, 2 ** -14, 2 ** -24, 2 ** -25, 2 ** -25 * 1.0001, 3 * 2 ** -26, 1e-40, -1e-45, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 2049, 2051];
    // exact midpoints between neighbouring halves (normal and subnormal): ties go to even
    for (let k = 0; k < 300; k++) {
      const hb = rng.int(0x7bff);
      const lo = new Float32Array(new Uint32Array([halfToF32Bits(hb)]).buffer)[0];
      const hi = new Float32Array(new Uint32Array([halfToF32Bits(hb + 1)]).buffer)[0];
      xs.push((lo + hi) / 2, -(lo + hi) / 2);
    }
    for (let k = 0; k < 4000; k++) xs.push((rng.next() < 0.5 ? -1 : 1) * 2 ** rng.uniform(-28, 17));
    assert(xs.length % 4 === 3, 'the case list should have odd length, 3 past a multiple of 4');
    const x = Float32Array.from(xs);
    // odd n (pairs: the last word's upper half must be kept), and a multiple of 4 (four a thread)
    for (const n of [xs.length, xs.length - 3]) {
      const tx = engine.upload(x), ty = engine.upload(new Uint16Array(n + 3).fill(0xbeef), [n + 3], 'f16');
      castF32ToF16(engine.batch, tx.buffer, ty.buffer, n);
      const got = await halves(engine, ty, n + 3);
      for (let i = 0; i < n; i++) {
        const want = f16Ref(x[i]);
        if (want < 0) assert((got[i] & 0x7c00) === 0x7c00 && (got[i] & 0x3ff) !== 0, `n=${n}: NaN at ${i} gave 0x${got[i].toString(16)}`);
        else assert(got[i] === want, `n=${n}: x=${x[i]} (index ${i}): got 0x${got[i].toString(16)}, want 0x${want.toString(16)}`);
      }
      for (let i = n; i < n + 3; i++) assert(got[i] === 0xbeef, `half ${i} past n=${n} was overwritten`);
      [tx, ty].forEach((t) => t.dispose());
    }
  });

  it('four a thread through bindings at an offset: the bits of the whole-buffer cast', async () => {
    const engine = await getEngine();
    const n = 1028, off = 64; // 64 floats = 256 bytes, 128 halves
    const x = Float32Array.from({ length: n + off }, (_, i) => Math.sin(i) * 2 ** ((i % 40) - 20));
    const tx = engine.upload(x), plain = engine.upload(x.subarray(off));
    const ty = engine.upload(new Uint16Array(2 * off + n).fill(0xbeef), [2 * off + n], 'f16'), want = engine.empty([n], 'f16');
    const back = engine.upload(new Float32Array(off + n).fill(12.5));
    castF32ToF16(engine.batch, { buffer: tx.buffer, offset: 4 * off, size: 4 * n }, { buffer: ty.buffer, offset: 4 * off, size: 2 * n }, n);
    castF32ToF16(engine.batch, plain.buffer, want.buffer, n);
    castF16ToF32(engine.batch, { buffer: ty.buffer, offset: 4 * off, size: 2 * n }, { buffer: back.buffer, offset: 4 * off, size: 4 * n }, n);
    const got = await halves(engine, ty, 2 * off + n), w = await halves(engine, want, n), f = await engine.read(back);
    for (let i = 0; i < n; i++) assert(got[2 * off + i] === w[i], `half ${i}: 0x${got[2 * off + i].toString(16)} through the offset, 0x${w[i].toString(16)} whole`);
    assert(got.subarray(0, 2 * off).every((v) => v === 0xbeef), 'halves before the offset were written');
    for (let i = 0; i < n; i++) assert(f[off + i] === new Float32Array(new Uint32Array([halfToF32Bits(w[i])]).buffer)[0], `f32 ${i} widened through the offset`);
    assert(f.subarray(0, off).every((v) => v === 12.5), 'floats before the offset were written');
    [tx, plain, ty, want, back].forEach((t) => t.dispose());
  });

  it('round trip f16 → f32 → f16 is the identity (NaNs stay NaN); odd n keeps neighbours; n a multiple of 4 too', async () => {
    const engine = await getEngine();
    for (const n of [1, 2, 4, 7, 4099, 4100, 65535]) {
      const h = Uint16Array.from({ length: n }, (_, i) => (i * 40503 + 7) & 0xffff);
      const tx = engine.upload(h, [n], 'f16');
      const tf = engine.upload(new Float32Array(n + 1).fill(12.5));
      const ty = engine.upload(new Uint16Array(n + 1).fill(0xbeef), [n + 1], 'f16');
      castF16ToF32(engine.batch, tx.buffer, tf.buffer, n);
      castF32ToF16(engine.batch, tf.buffer, ty.buffer, n);
      const f = await engine.read(tf), back = await halves(engine, ty, n + 1);
      assert(f[n] === 12.5, `castF16ToF32 n=${n} wrote past n`);
      assert(back[n] === 0xbeef, `castF32ToF16 n=${n} wrote past n`);
      for (let i = 0; i < n; i++) {
        const isNaN = (h[i] & 0x7c00) === 0x7c00 && (h[i] & 0x3ff) !== 0;
        assert(isNaN ? (back[i] | 0x200) === (h[i] | 0x200) : back[i] === h[i], `n=${n} half 0x${h[i].toString(16)} came back as 0x${back[i].toString(16)}`);
      }
      [tx, tf, ty].forEach((t) => t.dispose());
    }
  });
});
