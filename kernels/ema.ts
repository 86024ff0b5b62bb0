// EMA teacher update, teacher ← m·teacher + (1 − m)·student (the form ECG-JEPA's code uses:
// mul_(m).add_((1 − m)·student)), in place on the teacher. 12 bytes per parameter.
import { checkCount, mapSource, requireBytes, requireDisjoint, vecWidth } from './checks.js';
import { getPipeline, grid, Params, type Binding, type CommandBatch } from './runtime.js';

const WG = 256;

function emaSource(V: 1 | 4): string {
  return mapSource({
    V, wg: WG, fields: ', momentum: f32, oneMinusMomentum: f32', bindings: [['teacher', 'read_write'], ['student', 'read']], out: 'teacher',
    body: 'put_teacher(i, p.momentum * teacher[i] + p.oneMinusMomentum * student[i]);',
  });
}

export function emaUpdate(batch: CommandBatch, teacher: Binding, student: Binding, n: number, momentum: number): void {
  const K = 'emaUpdate';
  checkCount(K, 'n', n);
  if (!(momentum >= 0 && momentum <= 1)) throw new RangeError(`${K}: momentum must be in [0, 1], got ${momentum} (n=${n})`);
  requireBytes(K, 'teacher', teacher, 4 * n, `n=${n}`);
  requireBytes(K, 'student', student, 4 * n, `n=${n}`);
  requireDisjoint(K, ['teacher', teacher], ['student', student]);
  if (n === 0) return;
  const V = vecWidth(n, teacher, student);
  const units = Math.ceil(n / V);
  const pipe = getPipeline(batch.device, `ema.ema_v${V}`, () => emaSource(V));
  // 1 − m in float64: with m = 0.996 the f32 of (1 − m) is closer than 1 − f32(m)
  batch.dispatch(pipe, [teacher, student], new Params().u32(n).u32(units).f32(momentum).f32(1 - momentum), grid(Math.ceil(units / WG)));
}
