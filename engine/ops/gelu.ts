// GELU, forward and backward: dx = gelu'(x) ⊙ dy, so the input is what the backward keeps.
import { geluBackward, geluForward } from '../../kernels/gelu.js';
import { requireF32, type Tape } from '../tape.js';
import type { Tensor } from '../tensor.js';

export function gelu(g: Tape, x: Tensor): Tensor {
  requireF32('gelu', { x });
  const y = g.engine.empty(x.shape);
  geluForward(g.batch, x.buffer, y.buffer, x.size);
  if (g.wants(x)) {
    const xs = g.save(x);
    g.record('gelu', y, [xs], (dy) => g.addGrad(x, (dx, acc) => geluBackward(g.batch, xs.buffer, dy.buffer, dx.buffer, x.size, { accumulate: acc })));
  }
  return y;
}
