import type { Engine } from '../../engine/engine.js';
import type { Tensor } from '../../engine/tensor.js';
import { adamw } from '../../kernels/adamw.js';
import type { Variable } from '@tensorflow/tfjs';
import type { KernelCase, Scale } from '../harness.js';

const H = { lr: 5e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 };

/** Cheap deterministic values in [-0.5, 0.5) (content does not affect speed; normals for 96 M would take seconds). */
export function pattern(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (Math.imul(i + seed, 0x9e3779b1) >>> 20) / 4096 - 0.5;
  return a;
}

/** Parameter tensor sizes: 'full' is ECG-JEPA's 96.3 M learnable parameters as a few big tensors
 *  (each under lavapipe's 128 MiB binding limit), 'ci' ~100 k with an odd-sized one. */
export function paramSizes(scale: Scale): number[] {
  return scale === 'full' ? [23_592_960, 23_592_960, 23_592_960, 23_592_960, 1_928_160] : [65_536, 24_576, 9_216, 768, 1_031];
}

/** One fused AdamW step over all tensors (one dispatch each); 28 B/param (read p, g, m, v; write p, m, v). */
export function cases(scale: Scale): KernelCase[] {
  const sizes = paramSizes(scale);
  const total = sizes.reduce((a, b) => a + b, 0);
  return [
    {
      name: `adamw ${(total / 1e6).toFixed(3)}M params / ${sizes.length} tensors`,
      bytes: 28 * total,
      ours(engine: Engine) {
        const ts = sizes.map((n, k) => ({ n, p: engine.upload(pattern(n, k)), g: engine.upload(pattern(n, k + 7)), m: engine.zeros([n]), v: engine.zeros([n]) }));
        let step = 0;
        return {
          run() {
            step++;
            adamw(engine.batch, ts.map((t) => ({ param: t.p.buffer, grad: t.g.buffer, m: t.m.buffer, v: t.v.buffer, n: t.n, weightDecay: H.weightDecay })), { ...H, step });
          },
          dispose: () => ts.forEach((t) => [t.p, t.g, t.m, t.v].forEach((x: Tensor) => x.dispose())),
        };
      },
      tfjs(tf) {
        // tfjs has no AdamW: the same update composed from its ops on Variables
        const ts = sizes.map((n, k) => ({
          p: tf.variable(tf.tensor1d(pattern(n, k))) as Variable,
          g: tf.tensor1d(pattern(n, k + 7)),
          m: tf.variable(tf.zeros([n])) as Variable,
          v: tf.variable(tf.zeros([n])) as Variable,
        }));
        let step = 0;
        return {
          run() {
            step++;
            const stepSize = H.lr / (1 - H.beta1 ** step), invSqrtBc2 = 1 / Math.sqrt(1 - H.beta2 ** step);
            for (const t of ts) {
              const m1 = t.m.mul(H.beta1).add(t.g.mul(1 - H.beta1));
              const v1 = t.v.mul(H.beta2).add(t.g.square().mul(1 - H.beta2));
              const p1 = t.p.mul(1 - H.lr * H.weightDecay).sub(m1.mul(stepSize).div(v1.sqrt().mul(invSqrtBc2).add(H.eps)));
              t.m.assign(m1);
              t.v.assign(v1);
              t.p.assign(p1);
            }
          },
          dispose: () => ts.forEach((t) => tf.dispose([t.p, t.g, t.m, t.v])),
        };
      },
    },
  ];
}
