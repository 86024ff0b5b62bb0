// Smooth-L1 loss with PyTorch's SmoothL1Loss semantics (reduction 'mean'):
//   d = pred − target;  l = |d| < β ? 0.5·d²/β : |d| − 0.5·β;  loss = Σ l / n
// β = 0 is plain L1 (as PyTorch special-cases it). The forward is a two-pass reduction through
// partials.ts: no float atomics in WGSL; the partial sums go to a per-device scratch buffer owned
// by partials.ts (see there), so callers pass no scratch.
import { checkCount, linearIndex, MAIN_ARGS, requireBytes, requireDisjoint, storeFn, unitType, vecWidth } from './checks.js';
import { maskTail, reduceTerms } from './partials.js';
import { getPipeline, grid, Params, type Binding, type CommandBatch } from './runtime.js';

const WG = 256;

/** The checks both directions share: n ≥ 1, β finite and ≥ 0, pred/target and the scalar `one`
 *  (loss or dloss) big enough. Returns the size string for further errors. */
function checkInputs(kernel: string, n: number, beta: number, pred: Binding, target: Binding, one: [string, Binding]): string {
  checkCount(kernel, 'n', n);
  if (n === 0) throw new RangeError(`${kernel}: n = 0 (the mean of nothing is undefined)`);
  if (!(beta >= 0) || !Number.isFinite(beta)) throw new RangeError(`${kernel}: beta must be finite and ≥ 0, got ${beta}`);
  const sizes = `n=${n}, beta=${beta}`;
  requireBytes(kernel, 'pred', pred, 4 * n, sizes);
  requireBytes(kernel, 'target', target, 4 * n, sizes);
  requireBytes(kernel, one[0], one[1], 4, sizes);
  return sizes;
}

/** loss[0] = mean smooth-L1 over n elements (overwritten). Two dispatches. */
export function smoothL1Forward(batch: CommandBatch, pred: Binding, target: Binding, loss: Binding, dims: { n: number; beta?: number }): void {
  const K = 'smoothL1Forward';
  const { n, beta = 1 } = dims;
  checkInputs(K, n, beta, pred, target, ['loss', loss]);
  requireDisjoint(K, ['loss', loss], ['pred', pred], ['target', target]);
  const V = vecWidth(n, pred, target);
  const T = unitType(V);
  // p.a = β, p.b = 0.5/β (0 when β = 0: the quadratic branch is then never taken)
  const l = `select(ad - 0.5 * p.a, d * d * p.b, ad < ${T}(p.a))`;
  const term =
    `  let d = pred[i] - tgt[i];\n  let ad = abs(d);\n` +
    (V === 4 ? `  let l = ${maskTail(l)};\n  return (l.x + l.y) + (l.z + l.w);` : `  return ${l};`);
  const decls = `@group(0) @binding(0) var<storage, read> pred: array<${T}>;
@group(0) @binding(1) var<storage, read> tgt: array<${T}>;`;
  reduceTerms(batch, { key: `smoothL1_v${V}`, decls, inputs: 2, term }, [pred, target], loss, {
    n,
    units: Math.ceil(n / V),
    a: beta,
    b: beta > 0 ? 0.5 / beta : 0,
    scale: 1 / n,
    accumulate: false,
  });
}

function backwardSource(V: 1 | 4, acc: boolean): string {
  const T = unitType(V), U = V === 4 ? 'vec4<u32>' : 'u32';
  return /* wgsl */ `
struct P { n: u32, units: u32, beta: f32, invBeta: f32, invN: f32 }
@group(0) @binding(0) var<storage, read> pred: array<${T}>;
@group(0) @binding(1) var<storage, read> tgt: array<${T}>;
@group(0) @binding(2) var<storage, read> dloss: array<f32>;
@group(0) @binding(3) var<storage, read_write> dpred: array<${T}>;
@group(0) @binding(4) var<uniform> p: P;
${storeFn('dpred', V)}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  let i = ${linearIndex(WG)};
  if (i >= p.units) { return; }
  let d = pred[i] - tgt[i];
  // d/β inside the quadratic zone, sign(d) outside (and everywhere when β = 0); a NaN difference
  // gives a NaN gradient, as in PyTorch, so a loss-scale check sees it (sign(NaN) may be 0). Tested
  // on the bits: WGSL lets an implementation assume no NaN in arithmetic.
  let nan = (bitcast<${U}>(d) & ${U}(0x7fffffffu)) > ${U}(0x7f800000u);
  let g = select(select(sign(d), d * p.invBeta, abs(d) < ${T}(p.beta)), d, nan) * (dloss[0] * p.invN);
  put_dpred(i, ${acc ? 'dpred[i] + g' : 'g'});
}`;
}

/** dpred (+)= dloss[0] · ∂loss/∂pred, the gradient of the mean smooth-L1. One dispatch. */
export function smoothL1Backward(
  batch: CommandBatch,
  pred: Binding,
  target: Binding,
  dloss: Binding,
  dpred: Binding,
  dims: { n: number; beta?: number; accumulate?: boolean },
): void {
  const K = 'smoothL1Backward';
  const { n, beta = 1, accumulate: acc = false } = dims;
  const sizes = checkInputs(K, n, beta, pred, target, ['dloss', dloss]);
  requireBytes(K, 'dpred', dpred, 4 * n, sizes);
  requireDisjoint(K, ['dpred', dpred], ['pred', pred], ['target', target], ['dloss', dloss]);
  const V = vecWidth(n, pred, target, dpred);
  const units = Math.ceil(n / V);
  const pipe = getPipeline(batch.device, `loss.smoothL1Backward_v${V}_${acc ? 'acc' : 'set'}`, () => backwardSource(V, acc));
  batch.dispatch(pipe, [pred, target, dloss, dpred], new Params().u32(n).u32(units).f32(beta).f32(beta > 0 ? 1 / beta : 0).f32(1 / n), grid(Math.ceil(units / WG)));
}
