// Element-wise binary ops (add, sub, mul) with an optional scale on the second operand:
// out[i] = a[i] (op) alpha * b[i]. Residual adds and gradient accumulation use these. Below them:
// accumulate, scale, fill, addBroadcast, scaleGroups and addScaledGroups.
import { aliasing, checkCount, mapSource, requireBytes, requireDisjoint, unitType, vecWidth, type MapBinding } from './checks.js';
import { CommandBatch, getPipeline, grid, Params, type Binding } from './runtime.js';

export type BinaryOp = 'add' | 'sub' | 'mul';

const WG = 256;
const EXPR: Record<BinaryOp, string> = {
  add: 'a[i] + p.alpha * b[i]',
  sub: 'a[i] - p.alpha * b[i]',
  mul: 'a[i] * (p.alpha * b[i])',
};

function binarySource(op: BinaryOp, V: 1 | 4): string {
  return mapSource({ V, wg: WG, fields: ', alpha: f32', bindings: [['a', 'read'], ['b', 'read'], ['out', 'read_write']], out: 'out', body: `put_out(i, ${EXPR[op]});` });
}

/** out = a (op) alpha*b over n f32 elements (vec4 units where the bindings allow). `out` must not
 *  overlap an input (WebGPU forbids read and write bindings of one buffer in a dispatch). */
export function binary(batch: CommandBatch, op: BinaryOp, a: Binding, b: Binding, out: Binding, n: number, alpha = 1): void {
  const K = `binary ${op}`;
  checkCount(K, 'n', n);
  for (const [name, t] of [['a', a], ['b', b], ['out', out]] as const) requireBytes(K, name, t, 4 * n, `n=${n}`);
  requireDisjoint(K, ['out', out], ['a', a], ['b', b]);
  if (n === 0) return;
  const V = vecWidth(n, a, b, out);
  const units = Math.ceil(n / V);
  const pipe = getPipeline(batch.device, `elementwise.binary_${op}_v${V}`, () => binarySource(op, V));
  batch.dispatch(pipe, [a, b, out], new Params().u32(n).u32(units).f32(alpha), launchGroups(units));
}

// ---------------------------------------------------------------------------------------------
// Unary maps, fills and broadcasts over f32 buffers. Each thread handles one unit: a vec4 when the
// bindings are big enough to read whole vec4s (checks.vecWidth), else one float; the last vec4's
// store is lane-guarded. Launches over ceil(n / V) units laid out by grid(), so n up to 2^32 − 1.

function launchGroups(units: number): [number, number] {
  return grid(Math.ceil(units / WG));
}

/**
 * The in-place decision shared by scale, addBroadcast and scaleGroups: x and y may be the same
 * binding (then only y is bound), never partly overlapping; `others` must not overlap y. Returns
 * the unit width (vec4 only when `vec4Ok`, e.g. a unit never straddles a period) and unit count.
 */
function mapPlan(K: string, x: Binding, y: Binding, others: [string, Binding][], n: number, vec4Ok: boolean): { inPlace: boolean; V: 1 | 4; units: number } {
  const inPlace = aliasing(x, y) === 'same';
  requireDisjoint(K, ['y', y], ...(inPlace ? others : [['x', x] as [string, Binding], ...others]));
  const V = !vec4Ok ? 1 : inPlace ? vecWidth(n, y) : vecWidth(n, x, y);
  return { inPlace, V, units: Math.ceil(n / V) };
}

function accumulateSource(V: 1 | 4): string {
  return mapSource({ V, wg: WG, fields: ', alpha: f32', bindings: [['t', 'read_write'], ['s', 'read']], out: 't', body: 'put_t(i, t[i] + p.alpha * s[i]);' });
}

/** target += alpha·src over n f32 elements, in place. `src` must not overlap `target`. */
export function accumulate(batch: CommandBatch, target: Binding, src: Binding, n: number, alpha = 1): void {
  const K = 'accumulate';
  checkCount(K, 'n', n);
  requireBytes(K, 'target', target, 4 * n, `n=${n}`);
  requireBytes(K, 'src', src, 4 * n, `n=${n}`);
  requireDisjoint(K, ['target', target], ['src', src]);
  if (n === 0) return;
  const V = vecWidth(n, target, src);
  const units = Math.ceil(n / V);
  const pipe = getPipeline(batch.device, `elementwise.accumulate_v${V}`, () => accumulateSource(V));
  batch.dispatch(pipe, [target, src], new Params().u32(n).u32(units).f32(alpha), launchGroups(units));
}

/** The storage bindings of an out-of-place (x → y) or in-place (y) map, with `others` between. */
function xyBindings(inPlace: boolean, others: MapBinding[] = []): MapBinding[] {
  return inPlace ? [['y', 'read_write'], ...others] : [['x', 'read'], ...others, ['y', 'read_write']];
}

function scaleSource(V: 1 | 4, inPlace: boolean): string {
  return mapSource({ V, wg: WG, fields: ', alpha: f32', bindings: xyBindings(inPlace), out: 'y', body: `put_y(i, p.alpha * ${inPlace ? 'y' : 'x'}[i]);` });
}

/** y = alpha·x over n f32 elements. x and y may be the same binding (in place); partial overlap throws. */
export function scale(batch: CommandBatch, x: Binding, y: Binding, n: number, alpha: number): void {
  const K = 'scale';
  checkCount(K, 'n', n);
  requireBytes(K, 'x', x, 4 * n, `n=${n}`);
  requireBytes(K, 'y', y, 4 * n, `n=${n}`);
  const { inPlace, V, units } = mapPlan(K, x, y, [], n, true);
  if (n === 0) return;
  const pipe = getPipeline(batch.device, `elementwise.scale_v${V}_${inPlace ? 'inplace' : 'xy'}`, () => scaleSource(V, inPlace));
  batch.dispatch(pipe, inPlace ? [y] : [x, y], new Params().u32(n).u32(units).f32(alpha), launchGroups(units));
}

function fillSource(V: 1 | 4): string {
  return mapSource({ V, wg: WG, fields: ', value: f32', bindings: [['y', 'read_write']], out: 'y', body: `put_y(i, ${unitType(V)}(p.value));` });
}

/** y[0..n) = value (any f32, NaN and ±Infinity included). */
export function fill(batch: CommandBatch, y: Binding, n: number, value: number): void {
  const K = 'fill';
  checkCount(K, 'n', n);
  requireBytes(K, 'y', y, 4 * n, `n=${n}`);
  if (n === 0) return;
  const V = vecWidth(n, y);
  const units = Math.ceil(n / V);
  const pipe = getPipeline(batch.device, `elementwise.fill_v${V}`, () => fillSource(V));
  batch.dispatch(pipe, [y], new Params().u32(n).u32(units).f32(value), launchGroups(units));
}

function addBroadcastSource(V: 1 | 4, inPlace: boolean): string {
  return mapSource({
    V, wg: WG, fields: ', periodUnits: u32, alpha: f32', bindings: xyBindings(inPlace, [['b', 'read']]), out: 'y',
    body: `put_y(i, ${inPlace ? 'y' : 'x'}[i] + p.alpha * b[i % p.periodUnits]);`,
  });
}

/** y[i] = x[i] + alpha·b[i % period], i < n (adds a [period] tensor to every row of a batch).
 *  x and y may be the same binding; b must not overlap y. */
export function addBroadcast(batch: CommandBatch, x: Binding, b: Binding, y: Binding, dims: { n: number; period: number; alpha?: number }): void {
  const K = 'addBroadcast';
  const { n, period, alpha = 1 } = dims;
  checkCount(K, 'n', n);
  checkCount(K, 'period', period);
  if (period === 0) throw new RangeError(`${K}: period must be ≥ 1 (n=${n})`);
  const sizes = `n=${n}, period=${period}`;
  requireBytes(K, 'x', x, 4 * n, sizes);
  requireBytes(K, 'b', b, 4 * period, sizes);
  requireBytes(K, 'y', y, 4 * n, sizes);
  // vec4 needs whole vec4s of b per period, so that a unit never straddles two periods
  const { inPlace, V, units } = mapPlan(K, x, y, [['b', b]], n, period % 4 === 0);
  if (n === 0) return;
  const pipe = getPipeline(batch.device, `elementwise.addBroadcast_v${V}_${inPlace ? 'inplace' : 'xy'}`, () => addBroadcastSource(V, inPlace));
  batch.dispatch(pipe, inPlace ? [y, b] : [x, b, y], new Params().u32(n).u32(units).u32(period / V).f32(alpha), launchGroups(units));
}

/** acc: y += (in place, or from x); base: y = base + (from x, not in place). */
function scaleGroupsSource(V: 1 | 4, inPlace: boolean, add: 'none' | 'acc' | 'base'): string {
  // in place, f comes first (binding order of the dispatches below)
  const bindings: MapBinding[] = inPlace
    ? [['f', 'read', 'f32'], ['y', 'read_write']]
    : xyBindings(false, [['f', 'read', 'f32'], ...(add === 'base' ? [['base', 'read'] as MapBinding] : [])]);
  return mapSource({
    V, wg: WG, fields: ', groupUnits: u32', bindings, out: 'y',
    body: `let v = f[i / p.groupUnits] * ${inPlace ? 'y' : 'x'}[i];
  put_y(i, ${{ none: 'v', acc: 'y[i] + v', base: 'base[i] + v' }[add]});`,
  });
}

/** Sizes of a grouped op, checked: n = groups·groupSize, and its message part. */
function groupSizes(K: string, groups: number, groupSize: number): { n: number; sizes: string } {
  checkCount(K, 'groups', groups);
  checkCount(K, 'groupSize', groupSize);
  const n = groups * groupSize;
  checkCount(K, 'groups·groupSize', n);
  return { n, sizes: `groups=${groups}, groupSize=${groupSize}` };
}

/** y[g·S + j] (+)= factors[g]·x[g·S + j] for g < groups, j < S = groupSize. x and y may be the
 *  same binding (then accumulate gives y·(1 + f)); factors must not overlap y. */
export function scaleGroups(
  batch: CommandBatch,
  x: Binding,
  factors: Binding,
  y: Binding,
  dims: { groups: number; groupSize: number; accumulate?: boolean },
): void {
  const K = 'scaleGroups';
  const { groups, groupSize, accumulate: acc = false } = dims;
  const { n, sizes } = groupSizes(K, groups, groupSize);
  requireBytes(K, 'x', x, 4 * n, sizes);
  requireBytes(K, 'factors', factors, 4 * groups, sizes);
  requireBytes(K, 'y', y, 4 * n, sizes);
  // vec4 only when a unit never straddles two groups
  const { inPlace, V, units } = mapPlan(K, x, y, [['factors', factors]], n, groupSize % 4 === 0);
  if (n === 0) return;
  const key = `elementwise.scaleGroups_v${V}_${inPlace ? 'inplace' : 'xy'}_${acc ? 'acc' : 'set'}`;
  const pipe = getPipeline(batch.device, key, () => scaleGroupsSource(V, inPlace, acc ? 'acc' : 'none'));
  batch.dispatch(pipe, inPlace ? [factors, y] : [x, factors, y], new Params().u32(n).u32(units).u32(groupSize / V), launchGroups(units));
}

/** y[g·S + j] = base[g·S + j] + factors[g]·x[g·S + j] for g < groups, j < S = groupSize: a residual
 *  add and a per-sample scale (drop-path) in one pass. y must not overlap the others. */
export function addScaledGroups(batch: CommandBatch, base: Binding, x: Binding, factors: Binding, y: Binding, dims: { groups: number; groupSize: number }): void {
  const K = 'addScaledGroups';
  const { groups, groupSize } = dims;
  const { n, sizes } = groupSizes(K, groups, groupSize);
  requireBytes(K, 'base', base, 4 * n, sizes);
  requireBytes(K, 'x', x, 4 * n, sizes);
  requireBytes(K, 'factors', factors, 4 * groups, sizes);
  requireBytes(K, 'y', y, 4 * n, sizes);
  requireDisjoint(K, ['y', y], ['base', base], ['x', x], ['factors', factors]);
  if (n === 0) return;
  // vec4 only when a unit never straddles two groups
  const V = groupSize % 4 === 0 ? vecWidth(n, base, x, y) : 1;
  const units = Math.ceil(n / V);
  const pipe = getPipeline(batch.device, `elementwise.addScaledGroups_v${V}`, () => scaleGroupsSource(V, false, 'base'));
  batch.dispatch(pipe, [x, factors, base, y], new Params().u32(n).u32(units).u32(groupSize / V), launchGroups(units));
}
