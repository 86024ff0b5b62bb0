// Element-wise ops and the broadcast add of a table (positional embedding), forward and backward.
import { addBroadcast as addBroadcastKernel, binary, scale as scaleKernel } from '../../kernels/elementwise.js';
import { reduceAxis } from '../../kernels/reduce.js';
import { checkShape, requireF32, untracked, type Tape } from '../tape.js';
import type { Tensor } from '../tensor.js';

function sameShape(op: string, a: Tensor, b: Tensor): void {
  checkShape(op, `b (a is [${a.shape}])`, b, a.shape);
  checkShape(op, 'a', a, b.shape);
}

/** a + b (same shapes). */
export function add(g: Tape, a: Tensor, b: Tensor): Tensor {
  return addSub(g, 'add', a, b);
}

/** a − b (same shapes). */
export function sub(g: Tape, a: Tensor, b: Tensor): Tensor {
  return addSub(g, 'sub', a, b);
}

function addSub(g: Tape, op: 'add' | 'sub', a: Tensor, b: Tensor): Tensor {
  sameShape(op, a, b);
  const y = g.engine.empty(a.shape);
  binary(g.batch, op, a.buffer, b.buffer, y.buffer, a.size, 1);
  if (g.wants(a, b))
    g.record(op, y, [], (dy) => {
      // b first: a may take dy itself (a view, no copy), after which dy must not be read.
      g.passGrad(b, dy, op === 'add' ? 1 : -1);
      g.passGrad(a, dy, 1, true);
    });
  return y;
}

/** a ⊙ b (same shapes). */
export function mul(g: Tape, a: Tensor, b: Tensor): Tensor {
  sameShape('mul', a, b);
  const y = g.engine.empty(a.shape);
  binary(g.batch, 'mul', a.buffer, b.buffer, y.buffer, a.size, 1);
  if (g.wants(a, b)) {
    const as = g.requiresGrad(b) ? g.save(a) : undefined;
    const bs = g.requiresGrad(a) ? g.save(b) : undefined;
    g.record('mul', y, [as, bs].filter((t): t is Tensor => !!t), (dy) => {
      // The binary kernel cannot add into its output: a second contribution goes through a temporary.
      if (bs) g.addGrad(a, (da) => binary(g.batch, 'mul', dy.buffer, bs.buffer, da.buffer, a.size, 1), { accumulate: false });
      if (as) g.addGrad(b, (db) => binary(g.batch, 'mul', dy.buffer, as.buffer, db.buffer, a.size, 1), { accumulate: false });
    });
  }
  return y;
}

/** alpha · x. */
export function scale(g: Tape, x: Tensor, alpha: number): Tensor {
  requireF32('scale', { x });
  const y = g.engine.empty(x.shape);
  scaleKernel(g.batch, x.buffer, y.buffer, x.size, alpha);
  if (g.wants(x)) g.record('scale', y, [], (dy) => g.passGrad(x, dy, alpha, true));
  return y;
}

/**
 * x + alpha · table, the table repeated over x's leading dims: table's shape must be x's trailing
 * dims (e.g. x [B, T, D] + pos [T, D]). The table's gradient is the sum over the repeats.
 */
export function addBroadcast(g: Tape, x: Tensor, table: Tensor, alpha = 1): Tensor {
  const lead = x.shape.length - table.shape.length;
  requireF32('addBroadcast', { x });
  if (lead < 0) throw new RangeError(`addBroadcast: table [${table.shape}] has more dims than x [${x.shape}]`);
  checkShape('addBroadcast', `table (x is [${x.shape}])`, table, x.shape.slice(lead));
  const period = table.size;
  const reps = period === 0 ? 0 : x.size / period;
  const y = g.engine.empty(x.shape);
  addBroadcastKernel(g.batch, x.buffer, table.buffer, y.buffer, { n: x.size, period, alpha });
  if (g.wants(x, table))
    g.record('addBroadcast', y, [], (dy) => {
      if (alpha === 1) g.addGrad(table, (dt, acc) => reduceAxis(g.batch, dy.buffer, dt.buffer, { outer: 1, reduce: reps, inner: period, accumulate: acc }));
      else if (g.requiresGrad(table)) {
        const tmp = untracked(g.engine, table.shape);
        reduceAxis(g.batch, dy.buffer, tmp.buffer, { outer: 1, reduce: reps, inner: period });
        g.passGrad(table, tmp, alpha);
        tmp.dispose();
      }
      g.passGrad(x, dy, 1, true);
    });
  return y;
}
