// EMA teacher update, teacher ← m·teacher + (1 − m)·student (the form ECG-JEPA's code uses:
// mul_(m).add_((1 − m)·student)), in place on the teacher. 12 bytes per parameter.
// A model's teacher has a tensor per weight (136 in the base encoder): one dispatch takes up to
// MAX_PAIRS of them (as torch's _foreach ops), each thread one unit of the concatenation, so a
// step records a few dispatches instead of one per tensor.
import { checkCount, linearIndex, MAIN_ARGS, requireBindable, requireBytes, segmentBranches, segmentFields, segmentGroups, segmentParams, storeFn, unitType } from './checks.js';
import { getPipeline, grid, Params, type Binding, type CommandBatch } from './runtime.js';

const WG = 256;
/** Teacher/student pairs per dispatch, within the device's storage buffers per stage. */
const MAX_PAIRS = 8;

export interface EmaPair {
  teacher: Binding;
  student: Binding;
  /** Elements of each. */
  n: number;
}

/** Pair k: binding 2k the teacher, 2k+1 the student (segment k). */
function emaSource(V: 1 | 4, pairs: number): string {
  const T = unitType(V);
  const decls: string[] = [], puts: string[] = [];
  for (let k = 0; k < pairs; k++) {
    decls.push(`@group(0) @binding(${2 * k}) var<storage, read_write> t${k}: array<${T}>;`, `@group(0) @binding(${2 * k + 1}) var<storage, read> s${k}: array<${T}>;`);
    puts.push(storeFn(`t${k}`, V, `p.n${k}`));
  }
  return /* wgsl */ `
struct P { momentum: f32, oneMinusMomentum: f32, ${segmentFields(pairs)} }
${decls.join('\n')}
@group(0) @binding(${2 * pairs}) var<uniform> p: P;
${puts.join('\n')}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  let i = ${linearIndex(WG)};
  ${segmentBranches(pairs, (k) => `put_t${k}(j, p.momentum * t${k}[j] + p.oneMinusMomentum * s${k}[j]);\n    return;`)}
}`;
}

/** teacher ← momentum·teacher + (1 − momentum)·student for every pair. */
export function emaUpdate(batch: CommandBatch, pairs: EmaPair[], momentum: number): void {
  const K = 'emaUpdate';
  if (!(momentum >= 0 && momentum <= 1)) throw new RangeError(`${K}: momentum must be in [0, 1], got ${momentum}`);
  pairs.forEach(({ teacher, student, n }, k) => {
    checkCount(K, `pair ${k} n`, n);
    requireBytes(K, `pair ${k} teacher`, teacher, 4 * n, `n=${n}`);
    requireBytes(K, `pair ${k} student`, student, 4 * n, `n=${n}`);
  });
  const per = Math.min(MAX_PAIRS, Math.floor(batch.device.limits.maxStorageBuffersPerShaderStage / 2));
  for (const g of segmentGroups(pairs, per, (q) => [q.teacher, q.student])) {
    // the teachers are written, the students read, all in one dispatch
    requireBindable(K, g.items.map((q): [string, Binding] => [`pair ${q.k} teacher`, q.teacher]), g.items.map((q): [string, Binding] => [`pair ${q.k} student`, q.student]));
    // 1 − m in float64: with m = 0.996 the f32 of (1 − m) is closer than 1 − f32(m)
    const params = new Params().f32(momentum).f32(1 - momentum);
    const units = segmentParams(params, g);
    const pipe = getPipeline(batch.device, `ema.ema_v${g.V}_x${g.items.length}`, () => emaSource(g.V, g.items.length));
    batch.dispatch(pipe, g.items.flatMap((q) => [q.teacher, q.student]), params, grid(Math.ceil(units / WG)));
  }
}
