import type { Engine } from '../../engine/engine.js';
import { castF32ToF16 } from '../../kernels/cast.js';
import { binary, scale as scaleKernel } from '../../kernels/elementwise.js';
import type { KernelCase, Scale } from '../harness.js';

/** Name prefix of the bandwidth-reference case. */
export const COPY_CASE = 'copy (vec4)';

/** The bandwidth reference (a vec4 copy: y = 1·x, 2 × 4 bytes per element), the residual add
 *  (3 × 4 bytes per element) and the f32 → f16 cast of mixed precision (6 bytes per element; tfjs has
 *  no float16 dtype, so no peer). The memory-bound kernels are judged against the first copy's GB/s.
 *  At full scale a second copy spans a footprint like AdamW's and softmax's (1.07 GB): on an H100
 *  those two ran at 0.83 and 1.03 of the small copy in one run and 0.60 and 0.66 in the next, the
 *  small copy unchanged, so the big copy tells whether large footprints move the card itself. */
export function cases(scale: Scale): KernelCase[] {
  const n = scale === 'full' ? 64 * 400 * 768 : 400 * 768;
  const copies = scale === 'full' ? [n, 2 ** 27] : [n];
  return [
    ...copies.map((size): KernelCase => ({
      name: `${COPY_CASE} ${size}`,
      bytes: 8 * size,
      ours(engine: Engine) {
        const x = engine.upload(new Float32Array(size).fill(1)), y = engine.empty([size]);
        return { run: () => scaleKernel(engine.batch, x.buffer, y.buffer, size, 1), dispose: () => [x, y].forEach((t) => t.dispose()) };
      },
      tfjs(tf) {
        const x = tf.ones([size]);
        return { run: () => tf.mul(x, 1), dispose: () => tf.dispose(x) };
      },
    })),
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
    {
      name: `cast f32→f16 ${n}`,
      bytes: 6 * n,
      ours(engine: Engine) {
        const x = engine.upload(new Float32Array(n).fill(1.5)), y = engine.empty([n], 'f16');
        return { run: () => castF32ToF16(engine.batch, x.buffer, y.buffer, n), dispose: () => [x, y].forEach((t) => t.dispose()) };
      },
    },
  ];
}
