// Gather and scatter of rows (token subsets: the visible tokens a student sees, the masked ones a
// predictor fills), forward and backward; each is the other's backward. Indices are u32 row
// numbers into the flattened [rows, dim] view and must be distinct (the backward scatters).
import { fill } from '../../kernels/elementwise.js';
import { gatherRows as gatherKernel, scatterRows as scatterKernel } from '../../kernels/gather.js';
import { requireF32, type Tape } from '../tape.js';
import type { Tensor } from '../tensor.js';

function checkIdx(op: string, idx: Tensor): void {
  if (idx.dtype !== 'u32') throw new TypeError(`${op}: idx is ${idx.dtype} [${idx.shape}], expected u32`);
}

/** out[i, :] = src[idx[i], :] with src viewed as [srcRows, dim] (dim = its last dim); out is
 *  [idx.size, dim] unless `shape` gives another of the same size. */
export function gatherRows(g: Tape, src: Tensor, idx: Tensor, shape?: readonly number[]): Tensor {
  checkIdx('gatherRows', idx);
  requireF32('gatherRows', { src });
  const dim = src.shape[src.shape.length - 1];
  const rows = idx.size;
  const srcRows = src.size / dim;
  const outShape = shape ?? [rows, dim];
  if (outShape.reduce((a, b) => a * b, 1) !== rows * dim) throw new RangeError(`gatherRows: ${rows} rows of src [${src.shape}] do not fill shape [${outShape}]`);
  const out = g.engine.empty(outShape);
  gatherKernel(g.batch, src.buffer, idx.buffer, out.buffer, { rows, dim, srcRows });
  if (g.wants(src)) {
    const is = g.save(idx);
    g.record('gatherRows', out, [is], (dy) =>
      g.addGrad(src, (ds, acc) => {
        if (!acc) fill(g.batch, ds.buffer, src.size, 0); // rows never gathered get zero gradient
        scatterKernel(g.batch, dy.buffer, is.buffer, ds.buffer, { rows, dim, dstRows: srcRows, accumulate: true });
      }),
    );
  }
  return out;
}

/** out [dstRows, dim] (or `shape`): zero except out[idx[i], :] = src[i, :], src viewed as [idx.size, dim]. */
export function scatterRows(g: Tape, src: Tensor, idx: Tensor, dstRows: number, shape?: readonly number[]): Tensor {
  checkIdx('scatterRows', idx);
  requireF32('scatterRows', { src });
  const dim = src.shape[src.shape.length - 1];
  const rows = idx.size;
  if (rows * dim !== src.size) throw new RangeError(`scatterRows: src [${src.shape}] is not ${rows} rows (idx [${idx.shape}]) of its last dim`);
  const outShape = shape ?? [dstRows, dim];
  if (outShape.reduce((a, b) => a * b, 1) !== dstRows * dim) throw new RangeError(`scatterRows: shape [${outShape}] is not ${dstRows} rows of ${dim}`);
  const out = g.engine.empty(outShape);
  fill(g.batch, out.buffer, out.size, 0);
  scatterKernel(g.batch, src.buffer, idx.buffer, out.buffer, { rows, dim, dstRows });
  if (g.wants(src)) {
    const is = g.save(idx);
    g.record('scatterRows', out, [is], (dy) => g.addGrad(src, (ds) => gatherKernel(g.batch, dy.buffer, is.buffer, ds.buffer, { rows, dim, srcRows: dstRows }), { accumulate: false }));
  }
  return out;
}
