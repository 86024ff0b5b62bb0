import type { Engine } from '../../engine/engine.js';
import { smoothL1Forward } from '../../kernels/loss.js';
import { sumSquares } from '../../kernels/norm2.js';
import type { KernelCase, Scale } from '../harness.js';
import { paramSizes, pattern } from './adamw.js';

/** The two reductions: smooth-L1 forward over the predictor's masked outputs (8 B/element) and the
 *  sum of squares over all gradients (grad-norm clipping, 4 B/element). */
export function cases(scale: Scale): KernelCase[] {
  // batch × 8 leads × ~20 masked columns × 768 ('full'), one sample's worth for 'ci'
  const n = scale === 'full' ? 64 * 8 * 20 * 768 : 8 * 20 * 768;
  const sizes = paramSizes(scale);
  const total = sizes.reduce((a, b) => a + b, 0);
  return [
    {
      name: `smoothL1Forward ${n}`,
      bytes: 8 * n,
      ours(engine: Engine) {
        const p = engine.upload(pattern(n, 1)), t = engine.upload(pattern(n, 2)), l = engine.zeros([1]);
        return { run: () => smoothL1Forward(engine.batch, p.buffer, t.buffer, l.buffer, { n }), dispose: () => [p, t, l].forEach((x) => x.dispose()) };
      },
      tfjs(tf) {
        const p = tf.tensor1d(pattern(n, 1)), t = tf.tensor1d(pattern(n, 2));
        return { run: () => tf.losses.huberLoss(t, p, undefined, 1, tf.Reduction.MEAN), dispose: () => tf.dispose([p, t]) };
      },
    },
    {
      name: `sumSquares ${(total / 1e6).toFixed(3)}M / ${sizes.length} tensors`,
      bytes: 4 * total,
      ours(engine: Engine) {
        const xs = sizes.map((n, k) => ({ n, x: engine.upload(pattern(n, k)) }));
        const out = engine.zeros([1]);
        return {
          run: () => sumSquares(engine.batch, xs.map((x) => ({ x: x.x.buffer, n: x.n })), out.buffer),
          dispose: () => [out, ...xs.map((x) => x.x)].forEach((t) => t.dispose()),
        };
      },
      tfjs(tf) {
        const xs = sizes.map((n, k) => tf.tensor1d(pattern(n, k)));
        return { run: () => tf.addN(xs.map((x) => tf.sum(tf.square(x)))), dispose: () => tf.dispose(xs) };
      },
    },
  ];
}
