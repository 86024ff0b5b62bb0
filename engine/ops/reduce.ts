// Mean and sum over one axis (mean-pooling over tokens), forward and backward: the backward
// broadcasts dy back along the axis (times 1/n for the mean).
import { broadcastAxis, reduceAxis } from '../../kernels/reduce.js';
import { requireF32, type Tape } from '../tape.js';
import type { Tensor } from '../tensor.js';

function reduceOp(g: Tape, op: 'mean' | 'sum', x: Tensor, axis: number): Tensor {
  requireF32(op, { x });
  const ax = axis < 0 ? axis + x.shape.length : axis;
  if (!(ax >= 0 && ax < x.shape.length)) throw new RangeError(`${op}: axis ${axis} out of range for x [${x.shape}]`);
  const outer = x.shape.slice(0, ax).reduce((a, b) => a * b, 1);
  const reduce = x.shape[ax];
  const inner = x.shape.slice(ax + 1).reduce((a, b) => a * b, 1);
  const y = g.engine.empty([...x.shape.slice(0, ax), ...x.shape.slice(ax + 1)]);
  reduceAxis(g.batch, x.buffer, y.buffer, { outer, reduce, inner, mean: op === 'mean' });
  const scale = op === 'mean' ? 1 / reduce : 1;
  if (g.wants(x))
    g.record(op, y, [], (dy) => g.addGrad(x, (dx, acc) => broadcastAxis(g.batch, dy.buffer, dx.buffer, { outer, reduce, inner, scale, accumulate: acc })));
  return y;
}

/** Mean over `axis` (negative counts from the end); the axis is removed. */
export function mean(g: Tape, x: Tensor, axis: number): Tensor {
  return reduceOp(g, 'mean', x, axis);
}

/** Sum over `axis`; the axis is removed. */
export function sum(g: Tape, x: Tensor, axis: number): Tensor {
  return reduceOp(g, 'sum', x, axis);
}
