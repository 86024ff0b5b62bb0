// Drop-path (stochastic depth): each sample's branch is kept with probability 1 − rate and then
// scaled by 1/(1 − rate), or zeroed. The per-sample factors are drawn from a seeded Rng on the CPU
// and uploaded (a queue write, no submit); forward and backward multiply by the same factors.
import { scaleGroups } from '../../kernels/elementwise.js';
import type { UniformSource } from '../random.js';
import { requireF32, type Tape } from '../tape.js';
import type { Tensor } from '../tensor.js';

export interface DropPathOptions {
  rate: number;
  rng: UniformSource;
  /** Off (identity) unless training. */
  training: boolean;
}

/** x [B, ...] with each sample's values scaled by its keep factor; identity when rate = 0 or not training. */
export function dropPath(g: Tape, x: Tensor, o: DropPathOptions): Tensor {
  if (!(o.rate >= 0 && o.rate < 1)) throw new RangeError(`dropPath: rate ${o.rate} outside [0, 1)`);
  requireF32('dropPath', { x });
  if (!o.training || o.rate === 0) return x;
  const groups = x.shape[0];
  const groupSize = x.size / groups;
  const keep = 1 - o.rate;
  const f = new Float32Array(groups);
  for (let i = 0; i < groups; i++) f[i] = o.rng.next() < keep ? 1 / keep : 0;
  const factors = g.engine.upload(f);
  const y = g.engine.empty(x.shape);
  scaleGroups(g.batch, x.buffer, factors.buffer, y.buffer, { groups, groupSize });
  if (g.wants(x)) {
    const fs = g.save(factors);
    g.record('dropPath', y, [fs], (dy) => g.addGrad(x, (dx, acc) => scaleGroups(g.batch, dy.buffer, fs.buffer, dx.buffer, { groups, groupSize, accumulate: acc })));
  }
  return y;
}
