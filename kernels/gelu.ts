// GELU in the exact (erf) form of PyTorch's nn.GELU(): gelu(x) = x·Φ(x), Φ(x) = ½(1 + erf(x/√2)),
// and its derivative Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π). Element-wise, a vec4 per thread where the
// bindings hold whole vec4s (one float per thread ran at 0.54 of a vec4 copy's bandwidth on an H200).
//
// WGSL has no erf. ERF_WGSL below is ours, fitted by scripts/fit-erf.py (least squares on
// Chebyshev nodes against mpmath):
//   |z| < 1: erf(z) = z·Q(z²), Q of degree 6 (fit error 1e-9);
//   z ≥ 1:  erfc(z) = t·exp(P(s) − z²), t = 1/(1 + z/2), s = 3t − 1 ∈ (−1, 0], P of degree 9
//           (relative fit error 1e-8 all the way into the tail).
// Measured in fp32 (test/kernels/gelu.test.ts): erf within ~1.5e-7 absolute. Φ(x) for x < −√2 is
// ½·erfc(|x|/√2) computed directly, so it keeps its relative accuracy where 1 + erf(x/√2) would
// cancel (x ≪ 0), and the exponent −x²/2 is formed from x itself (one rounding).
import { TO_FLOAT_WGSL, TO_HALF_WGSL } from './cast.js';
import { bindingBytes, checkCount, mapSource, requireBytes, requireDisjoint, unitType, vecWidth, type MapBinding } from './checks.js';
import { CommandBatch, getPipeline, grid, Params, type Binding } from './runtime.js';

const WG = 256;

/** WGSL functions erf_f32(z), norm_cdf(x) (= Φ), gelu_f32(x) and gelu_grad_f32(x), for any kernel. */
export const ERF_WGSL = /* wgsl */ `
// erf(z) for |z| < 1
fn erf_core(z: f32) -> f32 {
  let u = z * z;
  return z * (1.1283791658815032 + u * (-0.37612626903580720 + u * (0.11283597463491149 + u * (-0.026854328796209415
    + u * (0.0051893119429773370 + u * (-0.00080188549955552410 + u * 0.000078824971199251140))))));
}
// erfc(z) for z >= 1, given zz = z·z
fn erfc_tail(z: f32, zz: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.5 * z);
  let s = 3.0 * t - 1.0;
  let q = -0.88916601297991850 + s * (0.41826136154945703 + s * (0.037732926269819780 + s * (-0.0077427957674862680
    + s * (-0.0037647555991751347 + s * (0.00015267905118919545 + s * (0.00041068922901646430 + s * (0.000017831121152324507
    + s * (-0.000039119301148637930 + s * -0.0000032155858234287060))))))));
  return t * exp(q - zz);
}
fn erf_f32(z: f32) -> f32 {
  let a = abs(z);
  if (a < 1.0) { return erf_core(z); }
  return sign(z) * (1.0 - erfc_tail(a, a * a));
}
// the standard normal CDF, relatively accurate in the lower tail
fn norm_cdf(x: f32) -> f32 {
  let z = abs(x) * 0.70710678118654752;
  if (z < 1.0) { return 0.5 + 0.5 * erf_core(x * 0.70710678118654752); }
  let e = 0.5 * erfc_tail(z, 0.5 * x * x);
  return select(1.0 - e, e, x < 0.0);
}
fn gelu_f32(x: f32) -> f32 { return x * norm_cdf(x); }
fn gelu_grad_f32(x: f32) -> f32 { return norm_cdf(x) + x * 0.39894228040143268 * exp(-0.5 * x * x); }
`;

/** A map over n elements in units of V floats (checks.mapSource; vec4 where every binding holds whole
 *  vec4s): `body` may call f_u(v), the scalar WGSL function `f` on each lane of a unit. */
function mapKernel(f: string, V: 1 | 4, bindings: MapBinding[], out: string, body: string): string {
  const lanes = V === 4 ? `vec4<f32>(${f}(v.x), ${f}(v.y), ${f}(v.z), ${f}(v.w))` : `${f}(v)`;
  return `${ERF_WGSL}
fn ${f}_u(v: ${unitType(V)}) -> ${unitType(V)} { return ${lanes}; }
${mapSource({ V, wg: WG, bindings, out, body })}`;
}

function launch(batch: CommandBatch, key: string, source: (V: 1 | 4) => string, bindings: Binding[], n: number): void {
  const V = vecWidth(n, ...bindings);
  const units = Math.ceil(n / V);
  const pipe = getPipeline(batch.device, `${key}_v${V}`, () => source(V));
  batch.dispatch(pipe, bindings, new Params().u32(n).u32(units), grid(Math.ceil(units / WG)));
}

function checkMap(K: string, n: number, outName: string, out: Binding, ins: [string, Binding][]): void {
  checkCount(K, 'n', n);
  for (const [name, b] of [...ins, [outName, out] as [string, Binding]]) requireBytes(K, name, b, 4 * n, `n=${n}`);
  requireDisjoint(K, [outName, out], ...ins);
}

/** y = gelu(x) = x·Φ(x) over n elements. y must not overlap x. `input` and `output` 'f16' (both or
 *  neither): x and y hold f16 bits, two per 32-bit word, and y is rounded as castF32ToF16 rounds; n
 *  even. That is a matmul's f16 output with GELU, from its f16 pre-activation, bit for bit (the
 *  backward recomputes a hidden layer from it instead of keeping both). */
export function geluForward(batch: CommandBatch, x: Binding, y: Binding, n: number, opts: { input?: 'f32' | 'f16'; output?: 'f32' | 'f16' } = {}): void {
  const K = 'geluForward';
  const { input = 'f32', output = 'f32' } = opts;
  for (const [name, t] of [['input', input], ['output', output]])
    if (t !== 'f32' && t !== 'f16') throw new RangeError(`${K}: ${name} must be 'f32' or 'f16', got '${t}'`);
  if (input !== output) throw new RangeError(`${K}: input and output must both be f16 or both f32, got ${input} and ${output} (n=${n})`);
  if (input === 'f16') return geluForwardHalf(batch, x, y, n);
  checkMap(K, n, 'y', y, [['x', x]]);
  if (n === 0) return;
  launch(batch, 'gelu.fwd', (V) => mapKernel('gelu_f32', V, [['x', 'read'], ['y', 'read_write']], 'y', 'put_y(i, gelu_f32_u(x[i]));'), [x, y], n);
}

/** geluForward on f16 bits: a thread per four halves (two words) where both bindings hold them, else
 *  per pair (one word). */
function geluForwardHalf(batch: CommandBatch, x: Binding, y: Binding, n: number): void {
  const K = 'geluForward';
  checkCount(K, 'n', n);
  if (n % 2) throw new RangeError(`${K}: f16 x and y are read and written in pairs: n must be even, got ${n}`);
  requireBytes(K, 'x', x, 2 * n, `n=${n} f16`);
  requireBytes(K, 'y', y, 2 * n, `n=${n} f16`);
  requireDisjoint(K, ['y', y], ['x', x]);
  if (n === 0) return;
  const V = [x, y].every((b) => bindingBytes(b) >= Math.ceil(n / 4) * 8) ? 4 : 1;
  const units = V === 4 ? Math.ceil(n / 4) : n / 2;
  const T = V === 4 ? 'vec2<u32>' : 'u32';
  const body = V === 4
    ? `let v = floats4(x[i]);
  let r = halves4(vec4<f32>(gelu_f32(v.x), gelu_f32(v.y), gelu_f32(v.z), gelu_f32(v.w)));
  if (4u * i + 4u <= p.n) { y[i] = r; } else { y[i].x = r.x; }`
    : `let w = x[i];
  y[i] = halves2(gelu_f32(toFloat(w & 0xffffu)), gelu_f32(toFloat(w >> 16u)));`;
  const source = () => `${ERF_WGSL}${TO_HALF_WGSL}${TO_FLOAT_WGSL}${mapSource({ V, wg: WG, bindings: [['x', 'read', T], ['y', 'read_write', T]], body })}`;
  const pipe = getPipeline(batch.device, `gelu.fwd_f16_v${V}`, source);
  batch.dispatch(pipe, [x, y], new Params().u32(n).u32(units), grid(Math.ceil(units / WG)));
}

/** dx = dy·gelu'(x) (`accumulate`: dx +=) over n elements. dx must not overlap x or dy. `output`
 *  'f16': dx is written as f16 bits (two per 32-bit word, rounded as castF32ToF16) for an f16 reader
 *  (an f16 linear's matmuls), which then needs no cast of it; n even, no accumulate. `input` 'f16'
 *  (with an f16 output only): x holds f16 bits, as the pre-activation of a matmul with an f16
 *  output does; `dy` 'f16' (with an f16 output only) likewise dy, the gradient of an f16 activation. */
export function geluBackward(
  batch: CommandBatch,
  x: Binding,
  dy: Binding,
  dx: Binding,
  n: number,
  opts: { accumulate?: boolean; output?: 'f32' | 'f16'; input?: 'f32' | 'f16'; dy?: 'f32' | 'f16' } = {},
): void {
  const { accumulate = false, output = 'f32', input = 'f32', dy: dyType = 'f32' } = opts;
  const K = 'geluBackward';
  for (const [name, t] of [['output', output], ['input', input], ['dy', dyType]])
    if (t !== 'f32' && t !== 'f16') throw new RangeError(`${K}: ${name} must be 'f32' or 'f16', got '${t}'`);
  if (input === 'f16' && output !== 'f16') throw new RangeError(`${K}: an f16 x needs an f16 dx (n=${n})`);
  if (dyType === 'f16' && output !== 'f16') throw new RangeError(`${K}: an f16 dy needs an f16 dx (n=${n})`);
  if (output === 'f16') return geluBackwardHalf(batch, x, dy, dx, n, accumulate, input === 'f16', dyType === 'f16');
  checkMap(K, n, 'dx', dx, [['x', x], ['dy', dy]]);
  if (n === 0) return;
  const body = `put_dx(i, ${accumulate ? 'dx[i] + ' : ''}dy[i] * gelu_grad_f32_u(x[i]));`;
  const source = (V: 1 | 4) => mapKernel('gelu_grad_f32', V, [['x', 'read'], ['dy', 'read'], ['dx', 'read_write']], 'dx', body);
  launch(batch, `gelu.bwd_${accumulate ? 'acc' : 'set'}`, source, [x, dy, dx], n);
}

/** geluBackward with an f16 dx (and with `xHalf` an f16 x, with `dyHalf` an f16 dy): a thread per
 *  vec4 (dx's two words) where x and dy hold whole vec4s, else per pair (one word). */
function geluBackwardHalf(batch: CommandBatch, x: Binding, dy: Binding, dx: Binding, n: number, accumulate: boolean, xHalf: boolean, dyHalf: boolean): void {
  const K = 'geluBackward';
  checkCount(K, 'n', n);
  if (accumulate) throw new RangeError(`${K}: an f16 dx cannot be accumulated into (n=${n})`);
  if (n % 2) throw new RangeError(`${K}: an f16 dx is written in pairs: n must be even, got ${n}`);
  requireBytes(K, 'x', x, (xHalf ? 2 : 4) * n, `n=${n}${xHalf ? ' f16' : ''}`);
  requireBytes(K, 'dy', dy, (dyHalf ? 2 : 4) * n, `n=${n}${dyHalf ? ' f16' : ''}`);
  requireBytes(K, 'dx', dx, 2 * n, `n=${n} f16`);
  requireDisjoint(K, ['dx', dx], ['x', x], ['dy', dy]);
  if (n === 0) return;
  // whole units: vec4s of the f32 sides, pairs of words of the f16 sides
  const halfUnits = (b: Binding) => bindingBytes(b) >= Math.ceil(n / 4) * 8;
  const inputs = [[x, xHalf], [dy, dyHalf]] as const;
  const f32s = inputs.filter(([, half]) => !half).map(([b]) => b);
  const f16s = [dx, ...inputs.filter(([, half]) => half).map(([b]) => b)];
  const V = vecWidth(n, ...f32s) === 4 && f16s.every(halfUnits) ? 4 : 1;
  const units = V === 4 ? Math.ceil(n / 4) : n / 2;
  const halfType = V === 4 ? 'vec2<u32>' : 'u32';
  // a unit of x or dy as floats: vec4 (from two words of halves, or four floats), or the pair form's
  // two (from one word of halves, or two floats)
  const four = (name: string, half: boolean) => (half ? `floats4(${name}[i])` : `${name}[i]`);
  const two = (name: string, half: boolean) => (half ? [`toFloat(${name}[i] & 0xffffu)`, `toFloat(${name}[i] >> 16u)`] : [`${name}[a]`, `${name}[a + 1u]`]);
  const [x2, dy2] = [two('x', xHalf), two('dy', dyHalf)];
  const body = V === 4
    ? `let v = ${four('dy', dyHalf)} * gelu_grad_f32_u(${four('x', xHalf)});
  if (4u * i + 4u <= p.n) { dx[i] = halves4(v); } else { dx[i].x = halves2(v.x, v.y); }`
    : `let a = 2u * i;
  dx[i] = halves2(${dy2[0]} * gelu_grad_f32(${x2[0]}), ${dy2[1]} * gelu_grad_f32(${x2[1]}));`;
  const bindings: MapBinding[] = [['x', 'read', xHalf ? halfType : undefined], ['dy', 'read', dyHalf ? halfType : undefined], ['dx', 'read_write', halfType]];
  const source = () => `${ERF_WGSL}${TO_HALF_WGSL}${xHalf || dyHalf ? TO_FLOAT_WGSL : ''}
fn gelu_grad_f32_u(v: vec4<f32>) -> vec4<f32> { return vec4<f32>(gelu_grad_f32(v.x), gelu_grad_f32(v.y), gelu_grad_f32(v.z), gelu_grad_f32(v.w)); }
${mapSource({ V, wg: WG, bindings, body })}`;
  const pipe = getPipeline(batch.device, `gelu.bwd_f16${xHalf ? '_xf16' : ''}${dyHalf ? '_dyf16' : ''}_v${V}`, source);
  batch.dispatch(pipe, [x, dy, dx], new Params().u32(n).u32(units), grid(Math.ceil(units / WG)));
}

/** y = erf(x) over n elements (ERF_WGSL's erf_f32; exposed so its accuracy can be checked on the GPU). */
export function erfForward(batch: CommandBatch, x: Binding, y: Binding, n: number): void {
  checkMap('erfForward', n, 'y', y, [['x', x]]);
  if (n === 0) return;
  launch(batch, 'gelu.erf', (V) => mapKernel('erf_f32', V, [['x', 'read'], ['y', 'read_write']], 'y', 'put_y(i, erf_f32_u(x[i]));'), [x, y], n);
}
