// Fused sparse CroPA attention (kernels/attention.ts) against attention composed from tfjs ops:
// matMul, an additive −1e9 CroPA mask, softmax, matMul, and tf.grad for the backward.
import type { Engine } from '../../engine/engine.js';
import type { Tensor } from '../../engine/tensor.js';
import { attentionBackward, attentionForward, type AttentionDims, type AttentionKernelOptions, type AttentionMask, type AttentionTypes } from '../../kernels/attention.js';
import { castF32ToF16 } from '../../kernels/cast.js';
import type { KernelCase, Scale } from '../harness.js';

type Tf = typeof import('@tensorflow/tfjs');

function allowed(mask: AttentionMask, V: number, i: number, j: number): boolean {
  if (mask === 'none') return true;
  const sameLead = Math.floor(i / V) === Math.floor(j / V);
  return sameLead || (mask === 'cropa' && i % V === j % V);
}

/** Query–key pairs the mask allows, over the whole batch and all heads. */
function pairs(d: AttentionDims): number {
  const T = d.C * d.V;
  const perQuery = d.mask === 'none' ? T : d.mask === 'lead' ? d.V : d.V + d.C - 1;
  return d.B * d.H * T * perQuery;
}

// Deterministic inputs without an Rng dependency: a cheap hash in [-1, 1).
function filled(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (((Math.imul(i + seed, 2654435761) >>> 8) & 0xffff) / 32768) - 1;
  return a;
}

/** With `o` (lanes per query, f16 qkv and output as mixed precision has them): a 'variant' row
 *  (the goals read the others). */
function attentionCase(d: AttentionDims, backward: boolean, label: string, o: AttentionKernelOptions & AttentionTypes = {}): KernelCase {
  const T = d.C * d.V, n = d.B * T * d.H * d.Dh;
  // Useful FLOPs on the allowed pairs, the same count for both sides (tfjs does the dense T² work):
  // forward 4·Dh per pair (q·k, p·v); backward 10·Dh (recomputed q·k, dV, dP, dQ, dK).
  const flops = pairs(d) * d.Dh * (backward ? 14 : 4);
  const qkvData = filled(3 * n, 1), doutData = filled(n, 7);
  const variant = [
    ...(o.lanes ? [`${o.lanes} lane${o.lanes > 1 ? 's' : ''}`] : []),
    ...(o.input === 'f16' ? ['f16 qkv'] : []),
    ...(o.output === 'f16' ? ['f16 output'] : []),
  ];
  return {
    name: `${variant.length ? 'variant ' : ''}attention ${label} ${d.mask} B${d.B} H${d.H} T${T} Dh${d.Dh} ${backward ? 'fwd+bwd' : 'fwd'}${variant.map((v) => `, ${v}`).join('')}`,
    flops,
    ours(engine: Engine) {
      const qkv = halfQkv(engine, engine.upload(qkvData), o), dout = engine.upload(doutData);
      const out = engine.empty([n]), lse = engine.empty([d.B * d.H * T]), dqkv = engine.empty([3 * n]), delta = engine.empty([d.B * d.H * T]);
      return {
        run() {
          attentionForward(engine.batch, { qkv: qkv.buffer, out: out.buffer, lse: lse.buffer }, d, o);
          if (backward)
            attentionBackward(engine.batch, { qkv: qkv.buffer, out: out.buffer, lse: lse.buffer, dout: dout.buffer, dqkv: dqkv.buffer, delta: delta.buffer }, d, o);
        },
        dispose: () => [qkv, dout, out, lse, dqkv, delta].forEach((t) => t.dispose()),
      };
    },
    tfjs(tf: Tf) {
      const { B, H, Dh, V } = d;
      const scale = d.scale ?? 1 / Math.sqrt(Dh);
      const qkv = tf.tensor3d(qkvData, [B, T, 3 * H * Dh]), dout = tf.tensor3d(doutData, [B, T, H * Dh]);
      const bias = new Float32Array(T * T);
      for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) bias[i * T + j] = allowed(d.mask, V, i, j) ? 0 : -1e9;
      const maskAdd = tf.tensor2d(bias, [T, T]);
      const forward = (x: import('@tensorflow/tfjs').Tensor) => {
        const [q, k, v] = tf.unstack(x.reshape([B, T, 3, H, Dh]).transpose([2, 0, 3, 1, 4])); // each [B, H, T, Dh]
        const p = tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), scale), maskAdd));
        return tf.matMul(p, v).transpose([0, 2, 1, 3]).reshape([B, T, H * Dh]);
      };
      const grad = tf.grad((x) => tf.sum(tf.mul(forward(x), dout)));
      return {
        run: () => (backward ? grad(qkv) : forward(qkv)),
        dispose: () => tf.dispose([qkv, dout, maskAdd]),
      };
    },
  };
}

/** qkv as the kernel is told to read it: f16 halves of the f32 data (then the f32 copy is freed). */
function halfQkv(engine: Engine, qkv: Tensor, o: AttentionTypes): Tensor {
  if (o.input !== 'f16') return qkv;
  const h = engine.empty(qkv.shape, 'f16');
  castF32ToF16(engine.batch, qkv.buffer, h.buffer, qkv.size);
  qkv.dispose();
  return h;
}

export function cases(scale: Scale): KernelCase[] {
  if (scale === 'ci')
    return [
      attentionCase({ B: 2, H: 2, Dh: 16, C: 3, V: 10, mask: 'cropa' }, false, 'tiny'),
      attentionCase({ B: 2, H: 2, Dh: 16, C: 3, V: 10, mask: 'cropa' }, true, 'tiny'),
      attentionCase({ B: 4, H: 2, Dh: 8, C: 1, V: 20, mask: 'none' }, true, 'tiny predictor'),
    ];
  return [
    attentionCase({ B: 64, H: 16, Dh: 48, C: 8, V: 50, mask: 'cropa' }, false, 'encoder'),
    attentionCase({ B: 64, H: 16, Dh: 48, C: 8, V: 50, mask: 'cropa' }, true, 'encoder'),
    // 1 and 4 invocations per query (2 by default where subgroups are); the f16 output (the model
    // casts the f32 one: on an H200 the f16 forward ran 3× slower before its store was unrolled); the
    // f16 qkv that mixed precision reads
    ...[{ lanes: 1 }, { lanes: 4 }, { output: 'f16' }, { lanes: 1, output: 'f16' }, { input: 'f16' }].flatMap((o) =>
      [false, true].map((bwd) => attentionCase({ B: 64, H: 16, Dh: 48, C: 8, V: 50, mask: 'cropa' }, bwd, 'encoder', o as AttentionKernelOptions & AttentionTypes)),
    ),
    // The student sees 16–20 of 50 columns (random masking); 18 here.
    attentionCase({ B: 64, H: 16, Dh: 48, C: 8, V: 18, mask: 'cropa' }, true, 'student'),
    // The predictor: per lead, dense over the 50 columns, 12 heads of 32.
    attentionCase({ B: 64 * 8, H: 12, Dh: 32, C: 1, V: 50, mask: 'none' }, true, 'predictor'),
  ];
}
