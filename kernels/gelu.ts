// GELU in the exact (erf) form of PyTorch's nn.GELU(): gelu(x) = x·Φ(x), Φ(x) = ½(1 + erf(x/√2)),
// and its derivative Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π). Element-wise, one element per thread.
//
// WGSL has no erf. ERF_WGSL below is ours, fitted by scripts/fit-erf.py (least squares on
// Chebyshev nodes against mpmath):
//   |z| < 1: erf(z) = z·Q(z²), Q of degree 6 (fit error 1e-9);
//   z ≥ 1:  erfc(z) = t·exp(P(s) − z²), t = 1/(1 + z/2), s = 3t − 1 ∈ (−1, 0], P of degree 9
//           (relative fit error 1e-8 all the way into the tail).
// Measured in fp32 (test/kernels/gelu.test.ts): erf within ~1.5e-7 absolute. Φ(x) for x < −√2 is
// ½·erfc(|x|/√2) computed directly, so it keeps its relative accuracy where 1 + erf(x/√2) would
// cancel (x ≪ 0), and the exponent −x²/2 is formed from x itself (one rounding).
import { checkCount, MAIN_ARGS, requireBytes, requireDisjoint } from './checks.js';
import { workgroupGrid } from './rows.js';
import { CommandBatch, getPipeline, Params, type Binding } from './runtime.js';

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

function mapSource(expr: string, acc: boolean, inputs: string[]): string {
  const decls = inputs.map((name, i) => `@group(0) @binding(${i}) var<storage, read> ${name}: array<f32>;`).join('\n');
  const out = inputs.length;
  return /* wgsl */ `
struct P { n: u32 }
${decls}
@group(0) @binding(${out}) var<storage, read_write> y: array<f32>;
@group(0) @binding(${out + 1}) var<uniform> p: P;
${ERF_WGSL}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  let i = (wid.y * nwg.x + wid.x) * ${WG}u + lid;
  if (i >= p.n) { return; }
  let v = ${expr};
  y[i] = ${acc ? 'y[i] + v' : 'v'};
}`;
}

function checkMap(K: string, n: number, outName: string, out: Binding, ins: [string, Binding][]): void {
  checkCount(K, 'n', n);
  for (const [name, b] of [...ins, [outName, out] as [string, Binding]]) requireBytes(K, name, b, 4 * n, `n=${n}`);
  requireDisjoint(K, [outName, out], ...ins);
}

/** y = gelu(x) = x·Φ(x) over n elements. y must not overlap x. */
export function geluForward(batch: CommandBatch, x: Binding, y: Binding, n: number): void {
  checkMap('geluForward', n, 'y', y, [['x', x]]);
  if (n === 0) return;
  const pipe = getPipeline(batch.device, 'gelu.fwd', () => mapSource('gelu_f32(x[i])', false, ['x']));
  batch.dispatch(pipe, [x, y], new Params().u32(n), workgroupGrid(Math.ceil(n / WG)));
}

/** dx = dy·gelu'(x) (`accumulate`: dx +=) over n elements. dx must not overlap x or dy. */
export function geluBackward(batch: CommandBatch, x: Binding, dy: Binding, dx: Binding, n: number, accumulate = false): void {
  checkMap('geluBackward', n, 'dx', dx, [['x', x], ['dy', dy]]);
  if (n === 0) return;
  const pipe = getPipeline(batch.device, `gelu.bwd_${accumulate ? 'acc' : 'set'}`, () => mapSource('dy[i] * gelu_grad_f32(x[i])', accumulate, ['x', 'dy']));
  batch.dispatch(pipe, [x, dy, dx], new Params().u32(n), workgroupGrid(Math.ceil(n / WG)));
}

/** y = erf(x) over n elements (ERF_WGSL's erf_f32; exposed so its accuracy can be checked on the GPU). */
export function erfForward(batch: CommandBatch, x: Binding, y: Binding, n: number): void {
  checkMap('erfForward', n, 'y', y, [['x', x]]);
  if (n === 0) return;
  const pipe = getPipeline(batch.device, 'gelu.erf', () => mapSource('erf_f32(x[i])', false, ['x']));
  batch.dispatch(pipe, [x, y], new Params().u32(n), workgroupGrid(Math.ceil(n / WG)));
}
