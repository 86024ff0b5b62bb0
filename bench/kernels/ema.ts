import type { Engine } from '../../engine/engine.js';
import { emaUpdate } from '../../kernels/ema.js';
import type { Variable } from '@tensorflow/tfjs';
import type { KernelCase, Scale } from '../harness.js';
import { paramSizes, pattern } from './adamw.js';

/** EMA teacher update over the student's parameters; 12 B/param (read t, s; write t). */
export function cases(scale: Scale): KernelCase[] {
  const sizes = paramSizes(scale);
  const total = sizes.reduce((a, b) => a + b, 0);
  const m = 0.996;
  return [
    {
      name: `ema ${(total / 1e6).toFixed(3)}M params / ${sizes.length} tensors`,
      bytes: 12 * total,
      ours(engine: Engine) {
        const ts = sizes.map((n, k) => ({ n, t: engine.upload(pattern(n, k)), s: engine.upload(pattern(n, k + 3)) }));
        return {
          run: () => emaUpdate(engine.batch, ts.map((x) => ({ teacher: x.t.buffer, student: x.s.buffer, n: x.n })), m),
          dispose: () => ts.forEach((x) => [x.t, x.s].forEach((t) => t.dispose())),
        };
      },
      tfjs(tf) {
        const ts = sizes.map((n, k) => ({ t: tf.variable(tf.tensor1d(pattern(n, k))) as Variable, s: tf.tensor1d(pattern(n, k + 3)) }));
        return {
          run: () => ts.forEach((x) => x.t.assign(x.t.mul(m).add(x.s.mul(1 - m)))),
          dispose: () => ts.forEach((x) => tf.dispose([x.t, x.s])),
        };
      },
    },
  ];
}
