import type { Engine } from '../../engine/engine.js';
import { binary } from '../../kernels/elementwise.js';
import type { KernelCase, Scale } from '../harness.js';

/** Residual add, the simplest bandwidth-bound kernel: 3 × 4 bytes per element. */
export function cases(scale: Scale): KernelCase[] {
  const n = scale === 'full' ? 64 * 400 * 768 : 400 * 768;
  return [
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
