// EMA teacher update, teacher ← m·teacher + (1 − m)·student (the form ECG-JEPA's code uses:
// mul_(m).add_((1 − m)·student)), in place on the teacher. 12 bytes per parameter. Given the
// loss-scale state (kernels/lossscale.ts), a step whose gradients overflowed leaves the teacher as is.
import { checkCount, linearIndex, MAIN_ARGS, requireBytes, requireDisjoint, storeFn, unitType, vecWidth } from './checks.js';
import { lossScaleDecl, LOSS_SCALE_WORDS } from './lossscale.js';
import { getPipeline, grid, Params, type Binding, type CommandBatch } from './runtime.js';

const WG = 256;

function emaSource(V: 1 | 4, gated: boolean): string {
  const T = unitType(V);
  return /* wgsl */ `
struct P { n: u32, units: u32, momentum: f32, oneMinusMomentum: f32 }
@group(0) @binding(0) var<storage, read_write> teacher: array<${T}>;
@group(0) @binding(1) var<storage, read> student: array<${T}>;
${gated ? lossScaleDecl(2) : ''}
@group(0) @binding(${gated ? 3 : 2}) var<uniform> p: P;
${storeFn('teacher', V)}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  let i = ${linearIndex(WG)};
  if (i >= p.units${gated ? ' || lsSkip()' : ''}) { return; }
  put_teacher(i, p.momentum * teacher[i] + p.oneMinusMomentum * student[i]);
}`;
}

/** teacher ← m·teacher + (1 − m)·student; with `lossScale` (the state buffer) not on a skipped step. */
export function emaUpdate(batch: CommandBatch, teacher: Binding, student: Binding, n: number, momentum: number, lossScale?: Binding): void {
  const K = 'emaUpdate';
  checkCount(K, 'n', n);
  if (!(momentum >= 0 && momentum <= 1)) throw new RangeError(`${K}: momentum must be in [0, 1], got ${momentum} (n=${n})`);
  requireBytes(K, 'teacher', teacher, 4 * n, `n=${n}`);
  requireBytes(K, 'student', student, 4 * n, `n=${n}`);
  requireDisjoint(K, ['teacher', teacher], ['student', student]);
  if (lossScale) {
    requireBytes(K, 'lossScale', lossScale, 4 * LOSS_SCALE_WORDS, `n=${n}`);
    requireDisjoint(K, ['teacher', teacher], ['lossScale', lossScale]);
  }
  if (n === 0) return;
  const V = vecWidth(n, teacher, student);
  const units = Math.ceil(n / V);
  const gated = lossScale !== undefined;
  const pipe = getPipeline(batch.device, `ema.ema_v${V}${gated ? '_gated' : ''}`, () => emaSource(V, gated));
  // 1 − m in float64: with m = 0.996 the f32 of (1 − m) is closer than 1 − f32(m)
  batch.dispatch(pipe, gated ? [teacher, student, lossScale] : [teacher, student], new Params().u32(n).u32(units).f32(momentum).f32(1 - momentum), grid(Math.ceil(units / WG)));
}
