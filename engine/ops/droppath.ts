// Drop-path (stochastic depth): each sample's branch is kept with probability 1 − rate and then
// scaled by 1/(1 − rate), or zeroed. The per-sample factors are drawn from a seeded Rng on the CPU
// and uploaded (a queue write, no submit); forward and backward multiply by the same factors.
import { addScaledGroups, scaleGroups } from '../../kernels/elementwise.js';
import type { UniformSource } from '../random.js';
import { checkShape, requireF32, type Tape } from '../tape.js';
import type { Tensor } from '../tensor.js';
import { add } from './elementwise.js';

export interface DropPathOptions {
  rate: number;
  rng: UniformSource;
  /** Off (identity) unless training. */
  training: boolean;
}

/** Whether o drops anything (training, rate > 0), after checking the rate (`op` in the error). */
function active(o: DropPathOptions, op = 'dropPath'): boolean {
  if (!(o.rate >= 0 && o.rate < 1)) throw new RangeError(`${op}: rate ${o.rate} outside [0, 1)`);
  return o.training && o.rate > 0;
}

/** One factor per sample of x [B, ...], drawn from o.rng and uploaded. */
function drawFactors(g: Tape, x: Tensor, o: DropPathOptions): { factors: Tensor; groups: number; groupSize: number } {
  const groups = x.shape[0];
  const keep = 1 - o.rate;
  const f = new Float32Array(groups);
  for (let i = 0; i < groups; i++) f[i] = o.rng.next() < keep ? 1 / keep : 0;
  return { factors: g.engine.upload(f), groups, groupSize: x.size / groups };
}

/** x [B, ...] with each sample's values scaled by its keep factor; identity when rate = 0 or not training. */
export function dropPath(g: Tape, x: Tensor, o: DropPathOptions): Tensor {
  requireF32('dropPath', { x });
  if (!active(o)) return x;
  const { factors, groups, groupSize } = drawFactors(g, x, o);
  const y = g.engine.empty(x.shape);
  scaleGroups(g.batch, x.buffer, factors.buffer, y.buffer, { groups, groupSize });
  if (g.wants(x)) {
    const fs = g.save(factors);
    g.record('dropPath', y, [fs], (dy) => g.addGrad(x, (dx, acc) => scaleGroups(g.batch, dy.buffer, fs.buffer, dx.buffer, { groups, groupSize, accumulate: acc })));
  }
  return y;
}

/** residual + dropPath(x) in one pass (a training block's residual branches), with the same draws:
 *  residual's gradient is dy itself, x's dy scaled. Not training or rate 0: residual + x. */
export function addDropPath(g: Tape, residual: Tensor, x: Tensor, o: DropPathOptions): Tensor {
  requireF32('addDropPath', { x });
  checkShape('addDropPath', `residual (x is [${x.shape}])`, residual, x.shape);
  if (!active(o, 'addDropPath')) return add(g, residual, x);
  const { factors, groups, groupSize } = drawFactors(g, x, o);
  const y = g.engine.empty(x.shape);
  addScaledGroups(g.batch, residual.buffer, x.buffer, factors.buffer, y.buffer, { groups, groupSize });
  if (g.wants(residual, x)) {
    const fs = g.save(factors);
    g.record('addDropPath', y, [fs], (dy) => {
      g.addGrad(x, (dx, acc) => scaleGroups(g.batch, dy.buffer, fs.buffer, dx.buffer, { groups, groupSize, accumulate: acc }));
      // last: residual may take dy itself (a view), after which dy is not read
      g.passGrad(residual, dy, 1, true);
    });
  }
  return y;
}
