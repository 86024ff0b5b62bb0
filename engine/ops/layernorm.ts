// LayerNorm over the last dim, forward and backward. The forward keeps per-row mean and 1/std, so
// the backward never recomputes statistics; one kernel writes (or adds to) dx, and dgamma and dbeta.
import { accumulate, scale } from '../../kernels/elementwise.js';
import { layerNormBackward, layerNormForward } from '../../kernels/layernorm.js';
import { checkShape, launchWith, requireF32, untracked, type Tape } from '../tape.js';
import { floatType, type Tensor } from '../tensor.js';

/** (x − mean) / sqrt(var + eps) · gamma + beta over x's last dim; without gamma/beta, non-affine.
 *  `output` f16: y is an f16 tensor (for an f16 linear, which then casts nothing) where the last dim
 *  is even, else f32; the backward reads x, not y, and takes y's gradient in f16 where it comes so. */
export function layerNorm(g: Tape, x: Tensor, gamma?: Tensor | null, beta?: Tensor | null, eps = 1e-5, output: 'f32' | 'f16' = 'f32'): Tensor {
  requireF32('layerNorm', { x });
  const dim = x.shape[x.shape.length - 1];
  if (gamma) checkShape('layerNorm', `gamma (x is [${x.shape}])`, gamma, [dim]);
  if (beta) checkShape('layerNorm', `beta (x is [${x.shape}])`, beta, [dim]);
  if (!!gamma !== !!beta) throw new Error('layerNorm: give both gamma and beta, or neither');
  const rows = x.size / dim;
  const record = g.wants(x, gamma, beta);
  const half = output === 'f16' && dim % 2 === 0;
  const y = g.engine.empty(x.shape, half ? 'f16' : 'f32');
  const mean = untracked(g.engine, [rows]);
  const rstd = untracked(g.engine, [rows]);
  launchWith([mean, rstd], () => layerNormForward(g.batch, { x: x.buffer, y: y.buffer, mean: mean.buffer, rstd: rstd.buffer, gamma: gamma?.buffer, beta: beta?.buffer }, { rows, dim, eps, output: half ? 'f16' : 'f32' }));
  if (!record) {
    // Released in the open batch: later dispatches may reuse them, which is ordered after this one.
    mean.dispose();
    rstd.dispose();
    return y;
  }
  const xs = g.save(x);
  const gs = gamma ? g.save(gamma) : undefined;
  g.record('layerNorm', y, [xs, mean, rstd, ...(gs ? [gs] : [])], (dy) => {
    // dx written, or added to the gradient x has already (the residual stream's, in a block)
    const dx = g.gradInto(x);
    const dg = gamma ? g.gradInto(gamma) : undefined;
    const db = beta ? g.gradInto(beta) : undefined;
    const scratch = dx ? undefined : untracked(g.engine, x.shape); // dx is required by the kernel
    // The kernel writes (or adds into) dgamma and dbeta together. When only one of them wants a
    // gradient (the other frozen), or one is fresh and the other holds one, both go through fresh
    // temporaries that are then copied or added where they are wanted.
    const together = !dg === !db && dg?.accumulate === db?.accumulate;
    const temp = !together ? { g: untracked(g.engine, [dim]), b: untracked(g.engine, [dim]) } : null;
    layerNormBackward(
      g.batch,
      { dy: dy.buffer, x: xs.buffer, mean: mean.buffer, rstd: rstd.buffer, dx: (dx?.grad ?? scratch!).buffer, gamma: gs?.buffer, dgamma: (temp?.g ?? dg?.grad)?.buffer, dbeta: (temp?.b ?? db?.grad)?.buffer },
      { rows, dim, accumulateDx: dx?.accumulate ?? false, accumulateParams: !temp && (dg?.accumulate ?? false), dy: floatType(dy) },
    );
    if (temp) {
      for (const [want, t] of [[dg, temp.g], [db, temp.b]] as const)
        if (want) (want.accumulate ? accumulate(g.batch, want.grad.buffer, t.buffer, dim) : scale(g.batch, t.buffer, want.grad.buffer, dim, 1));
      temp.g.dispose();
      temp.b.dispose();
    }
    scratch?.dispose();
  }, { halfGrad: half });
  return y;
}
