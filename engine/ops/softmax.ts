// Softmax over the last dim, forward and backward: dx = y ⊙ (dy − Σ dy⊙y) · scale, so the backward
// keeps the output, not the input.
import { softmaxBackward, softmaxForward } from '../../kernels/softmax.js';
import { requireF32, type Tape } from '../tape.js';
import type { Tensor } from '../tensor.js';

/** softmax(scale · x) over x's last dim. */
export function softmax(g: Tape, x: Tensor, scale = 1): Tensor {
  requireF32('softmax', { x });
  const cols = x.shape[x.shape.length - 1];
  const rows = x.size / cols;
  const y = g.engine.empty(x.shape);
  softmaxForward(g.batch, x.buffer, y.buffer, { rows, cols, scale });
  if (g.wants(x)) {
    const ys = g.save(y);
    g.record('softmax', y, [ys], (dy) => g.addGrad(x, (dx) => softmaxBackward(g.batch, ys.buffer, dy.buffer, dx.buffer, { rows, cols, scale }), { accumulate: false }));
  }
  return y;
}
