import type { Engine } from '../../engine/engine.js';
import { binary, scale as scaleKernel } from '../../kernels/elementwise.js';
import type { KernelCase, Scale } from '../harness.js';

/** Name prefix of the bandwidth-reference case. */
export const COPY_CASE = 'copy (vec4)';

/** The bandwidth reference (a vec4 copy: y = 1·x, 2 × 4 bytes per element) and the residual add
 *  (3 × 4 bytes per element). The memory-bound kernels are judged against the copy's GB/s. */
export function cases(scale: Scale): KernelCase[] {
  const n = scale === 'full' ? 64 * 400 * 768 : 400 * 768;
  return [
    {
      name: `${COPY_CASE} ${n}`,
      bytes: 8 * n,
      ours(engine: Engine) {
        const x = engine.upload(new Float32Array(n).fill(1)), y = engine.empty([n]);
        return { run: () => scaleKernel(engine.batch, x.buffer, y.buffer, n, 1), dispose: () => [x, y].forEach((t) => t.dispose()) };
      },
      tfjs(tf) {
        const x = tf.ones([n]);
        return { run: () => tf.mul(x, 1), dispose: () => tf.dispose(x) };
      },
    },
    {
      name: `add ${n}`,
      bytes: 12 * n,
      ours(engine: Engine) {
        const a = engine.upload(new Float32Array(n).fill(1)), b = engine.upload(new Float32Array(n).fill(2)), c = engine.empty([n]);
        return { run: () => binary(engine.batch, 'add', a.buffer, b.buffer, c.buffer, n, 1), dispose: () => [a, b, c].forEach((t) => t.dispose()) };
      },
      tfjs(tf) {
        const a = tf.ones([n]), b = tf.fill([n], 2);
        return { run: () => tf.add(a, b), dispose: () => tf.dispose([a, b]) };
      },
    },
  ];
}
