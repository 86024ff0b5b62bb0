// f32 ↔ f16 casts over packed half bits (an f16 buffer holds n halves, two per 32-bit word, as
// engine uploads them). The conversion is done with integer bit operations instead of WGSL's f16
// type or pack2x16float: it then needs no shader-f16 (SwiftShader, Chromium's software adapter,
// lacks it) and rounds exactly as IEEE round-to-nearest-even on every device, subnormals
// included, where WGSL leaves float→f16 rounding, subnormal flushing and overflow to the driver.
// f32 → f16: |x| ≥ 65520 → ±Inf, NaN → quiet NaN (sign kept). f16 → f32 is exact.
// Four elements a thread where n is a multiple of 4 (every cast in a transformer block of the model:
// a 16-byte f32 read per thread, as the copy kernel's, where a pair reads 8), else a pair (one 32-bit
// word) a thread; with odd n the last word's upper half is left as it was.
import { checkCount, linearIndex, MAIN_ARGS, requireBytes, requireDisjoint } from './checks.js';
import { getPipeline, grid, Params, type Binding, type CommandBatch } from './runtime.js';

const WG = 256;

/** WGSL `toHalf(x: f32) -> u32`: the f16 bits of x (rounding as castF32ToF16), and for kernels that
 *  write f16 outputs themselves, two or four of them packed as castF32ToF16 lays them out (element 2w
 *  in word w's low half): `halves2(a, b) -> u32`, `halves4(v: vec4f) -> vec2u`. */
export const TO_HALF_WGSL = /* wgsl */ `
fn toHalf(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  let sign = (b >> 16u) & 0x8000u;
  let a = b & 0x7fffffffu;
  if (a > 0x7f800000u) { return sign | 0x7e00u | ((a >> 13u) & 0x3ffu); } // NaN, payload top bits kept
  if (a >= 0x477ff000u) { return sign | 0x7c00u; }                         // ≥ 65520 (and Inf): rounds to Inf
  if (a >= 0x38800000u) {                                                  // normal half: ≥ 2^-14
    let r = a - 0x38000000u;                                               // rebias exponent 127 → 15
    return sign | ((r + 0xfffu + ((r >> 13u) & 1u)) >> 13u);               // RNE on the 13 dropped bits
  }
  let e = a >> 23u;
  if (e < 102u) { return sign; }                                           // < 2^-25: rounds to ±0
  // subnormal half: k = value · 2^24 = mant · 2^(e − 126), shift = 126 − e in [14, 24]
  let mant = (a & 0x7fffffu) | 0x800000u;
  let shift = 126u - e;
  var k = mant >> shift;
  let rem = mant & ((1u << shift) - 1u);
  let half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (k & 1u) == 1u)) { k += 1u; }           // k = 1024 is the smallest normal: right
  return sign | k;
}
fn halves2(a: f32, b: f32) -> u32 { return toHalf(a) | (toHalf(b) << 16u); }
fn halves4(v: vec4f) -> vec2u { return vec2u(halves2(v.x, v.y), halves2(v.z, v.w)); }`;

/** WGSL `toFloat(h: u32) -> f32`: the f32 of the f16 bits in h's low half (exact, as castF16ToF32),
 *  and for kernels that read f16 inputs themselves `floats4(w: vec2u) -> vec4f`, the halves that
 *  halves4 packs. */
export const TO_FLOAT_WGSL = /* wgsl */ `
fn toFloat(h: u32) -> f32 {
  let sign = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  if (e == 31u) { return bitcast<f32>(sign | 0x7f800000u | (m << 13u)); }  // Inf, NaN
  if (e == 0u) { return bitcast<f32>(sign | bitcast<u32>(f32(m) * 5.9604644775390625e-8)); } // m · 2^-24, exact
  return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}
fn floats4(w: vec2u) -> vec4f { return vec4f(toFloat(w.x & 0xffffu), toFloat(w.x >> 16u), toFloat(w.y & 0xffffu), toFloat(w.y >> 16u)); }`;

/** One thread per unit w: `body` converts unit w (of p.units; the f16 side's 32-bit word, or with
 *  vec4 types four elements). */
function castSource(xType: string, yType: string, fn: string, body: string): string {
  return /* wgsl */ `
struct P { n: u32, units: u32 }
@group(0) @binding(0) var<storage, read> x: array<${xType}>;
@group(0) @binding(1) var<storage, read_write> y: array<${yType}>;
@group(0) @binding(2) var<uniform> p: P;
${fn}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  let w = ${linearIndex(WG)};
  if (w >= p.units) { return; }
  ${body}
}`;
}

const toF16Source = castSource('f32', 'u32', TO_HALF_WGSL, `if (2u * w + 1u < p.n) { y[w] = halves2(x[2u * w], x[2u * w + 1u]); }
  else { y[w] = (y[w] & 0xffff0000u) | toHalf(x[2u * w]); }`);
const toF16Source4 = castSource('vec4<f32>', 'vec2<u32>', TO_HALF_WGSL, 'y[w] = halves4(x[w]);');

const toF32Source = castSource('u32', 'f32', TO_FLOAT_WGSL, `let h = x[w];
  y[2u * w] = toFloat(h & 0xffffu);
  if (2u * w + 1u < p.n) { y[2u * w + 1u] = toFloat(h >> 16u); }`);
const toF32Source4 = castSource('vec2<u32>', 'vec4<f32>', TO_FLOAT_WGSL, 'y[w] = floats4(x[w]);');

/** Dispatches the 4-element form where n allows, else the pair form. */
function dispatchCast(batch: CommandBatch, name: string, sources: [pairs: string, fours: string], x: Binding, y: Binding, n: number): void {
  const four = n % 4 === 0;
  const units = four ? n / 4 : Math.ceil(n / 2);
  const pipe = getPipeline(batch.device, four ? `${name}_v4` : name, () => sources[+four]);
  batch.dispatch(pipe, [x, y], new Params().u32(n).u32(units), grid(Math.ceil(units / WG)));
}

function check(K: string, x: Binding, y: Binding, n: number, xBytes: number, yBytes: number): void {
  checkCount(K, 'n', n);
  requireBytes(K, 'x', x, xBytes, `n=${n}`);
  requireBytes(K, 'y', y, yBytes, `n=${n}`);
  requireDisjoint(K, ['y', y], ['x', x]);
}

/** y (f16 bits, n halves) = round-to-nearest-even(x) (n f32). */
export function castF32ToF16(batch: CommandBatch, x: Binding, y: Binding, n: number): void {
  const words = Math.ceil(n / 2);
  check('castF32ToF16', x, y, n, 4 * n, 4 * words);
  if (n > 0) dispatchCast(batch, 'cast.f32_f16', [toF16Source, toF16Source4], x, y, n);
}

/** y (n f32) = x (f16 bits, n halves), exactly. Works without the shader-f16 feature. */
export function castF16ToF32(batch: CommandBatch, x: Binding, y: Binding, n: number): void {
  const words = Math.ceil(n / 2);
  check('castF16ToF32', x, y, n, 4 * words, 4 * n);
  if (n > 0) dispatchCast(batch, 'cast.f16_f32', [toF32Source, toF32Source4], x, y, n);
}
