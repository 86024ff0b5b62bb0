// Smooth-L1 loss (mean over all elements, PyTorch's SmoothL1Loss), forward and backward.
import { smoothL1Backward, smoothL1Forward } from '../../kernels/loss.js';
import { checkShape, requireF32, untracked, type Tape } from '../tape.js';
import type { Tensor } from '../tensor.js';

/** mean(ℓ(pred − target)), ℓ(d) = d²/(2β) for |d| < β, else |d| − β/2. Returns a [1] tensor. */
export function smoothL1(g: Tape, pred: Tensor, target: Tensor, beta = 1): Tensor {
  requireF32('smoothL1', { pred });
  checkShape('smoothL1', `target (pred is [${pred.shape}])`, target, pred.shape);
  const n = pred.size;
  const loss = g.engine.empty([1]);
  smoothL1Forward(g.batch, pred.buffer, target.buffer, loss.buffer, { n, beta });
  if (g.wants(pred, target)) {
    const ps = g.save(pred);
    const ts = g.save(target);
    g.record('smoothL1', loss, [ps, ts], (dloss) => {
      const back = (dst: Tensor, acc: boolean) => smoothL1Backward(g.batch, ps.buffer, ts.buffer, dloss.buffer, dst.buffer, { n, beta, accumulate: acc });
      // d/dtarget = −d/dpred (targets usually come from a no-grad teacher and skip this).
      if (g.requiresGrad(target)) {
        const tmp = untracked(g.engine, pred.shape);
        back(tmp, false);
        g.passGrad(target, tmp, -1);
        tmp.dispose();
      }
      g.addGrad(pred, back);
    });
  }
  return loss;
}
