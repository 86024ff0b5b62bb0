// Reshape: a view sharing storage (no copy); its gradient is the output's gradient, viewed back.
import { adopt, type Tape } from '../tape.js';
import type { Tensor } from '../tensor.js';

export function reshape(g: Tape, x: Tensor, shape: readonly number[]): Tensor {
  const y = adopt(g.engine, x.reshape(shape));
  if (g.wants(x)) g.record('reshape', y, [], (dy) => g.passGrad(x, dy, 1, true));
  return y;
}
