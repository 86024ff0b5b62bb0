// Row-wise and axis kernels against tfjs: LayerNorm (forward; forward + backward), softmax (forward;
// forward + backward), GELU (forward, backward), sums over an axis and the broadcast back. All are
// bandwidth-bound, so each case reports GB/s over the bytes it must move at least once.
// tfjs peers: LayerNorm from tf.moments + element-wise ops (as tfjs-layers builds it), its
// gradients from tf.grads; tf.softmax; GELU composed as x·½·(1 + erf(x/√2)) (tfjs has no erf GELU);
// tf.sum / tf.mean over an axis.
import type { Tensor } from '../../engine/tensor.js';
import { geluBackward, geluForward } from '../../kernels/gelu.js';
import { layerNormBackward, layerNormForward, type LayerNormBackwardState } from '../../kernels/layernorm.js';
import { broadcastAxis, reduceAxis } from '../../kernels/reduce.js';
import { softmaxBackward, softmaxForward } from '../../kernels/softmax.js';
import type { KernelCase, Runner, Scale, TfRunner } from '../harness.js';

type Tf = typeof import('@tensorflow/tfjs');

/** Cheap deterministic values in [-2, 2) (content does not change the speed; normals would take seconds at 'full'). */
function data(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (Math.imul(i + 0x632be5ab * seed, 0x9e3779b1) >>> 8) / 4194304 - 2;
  return a;
}

function ours(tensors: Tensor[], run: () => void): Runner {
  return { run, dispose: () => tensors.forEach((t) => t.dispose()) };
}

function peer(tf: Tf, tensors: import('@tensorflow/tfjs').Tensor[], run: () => any): TfRunner {
  return { run, dispose: () => tf.dispose(tensors) };
}

const EPS = 1e-5;

function tfLayerNorm(tf: Tf, x: import('@tensorflow/tfjs').Tensor, g: import('@tensorflow/tfjs').Tensor, b: import('@tensorflow/tfjs').Tensor) {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, EPS))), g), b);
}

function tfGelu(tf: Tf, x: import('@tensorflow/tfjs').Tensor) {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

/** gelu'(x) = Φ(x) + x·φ(x), from tfjs's ops. */
function tfGeluDerivative(tf: Tf, x: import('@tensorflow/tfjs').Tensor) {
  const cdf = tf.mul(tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1), 0.5);
  const pdf = tf.mul(tf.exp(tf.mul(tf.square(x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
  return tf.add(cdf, tf.mul(x, pdf));
}

const STATE_NAMES: Record<LayerNormBackwardState, string> = {
  registers: 'gamma in registers',
  reread: 'gamma re-read',
  reload: 'x, dy and gamma read again for dx',
};

/** LayerNorm forward (x → y, mean, rstd), then backward (dy, x → dx, dgamma, dbeta); with
 *  `variant`, a variant row of the backward's subgroup kernel (its rows per subgroup and state). */
function layerNormFwdBwd(rows: number, dim: number, variant?: { rowsPerSubgroup: number; state: LayerNormBackwardState }): KernelCase {
  const n = rows * dim;
  return {
    name: `${variant ? 'variant ' : ''}layerNorm fwd+bwd ${rows}x${dim}${variant ? `, ${variant.rowsPerSubgroup} rows per subgroup, ${STATE_NAMES[variant.state]}` : ''}`,
    bytes: 8 * n + 12 * n + 16 * rows,
    ours(engine) {
      const x = engine.upload(data(n, 1)), g = engine.upload(data(dim, 2)), b = engine.upload(data(dim, 3)), dy = engine.upload(data(n, 4));
      const y = engine.empty([n]), mean = engine.empty([rows]), rstd = engine.empty([rows]);
      const dx = engine.empty([n]), dg = engine.empty([dim]), db = engine.empty([dim]);
      return ours([x, g, b, dy, y, mean, rstd, dx, dg, db], () => {
        layerNormForward(engine.batch, { x: x.buffer, y: y.buffer, mean: mean.buffer, rstd: rstd.buffer, gamma: g.buffer, beta: b.buffer }, { rows, dim });
        layerNormBackward(
          engine.batch,
          { dy: dy.buffer, x: x.buffer, mean: mean.buffer, rstd: rstd.buffer, dx: dx.buffer, gamma: g.buffer, dgamma: dg.buffer, dbeta: db.buffer },
          { rows, dim, ...variant },
        );
      });
    },
    tfjs(tf) {
      const x = tf.tensor2d(data(n, 1), [rows, dim]), g = tf.tensor1d(data(dim, 2)), b = tf.tensor1d(data(dim, 3)), dy = tf.tensor2d(data(n, 4), [rows, dim]);
      const grads = tf.grads((xx, gg, bb) => tfLayerNorm(tf, xx, gg, bb));
      return peer(tf, [x, g, b, dy], () => grads([x, g, b], dy));
    },
  };
}

export function cases(scale: Scale): KernelCase[] {
  const full = scale === 'full';
  // tokens of a batch (64 × 400) × model width 768; attention rows 64 · 16 heads · 400 × 400 keys
  const rows = full ? 25600 : 256, dim = 768;
  const sRows = full ? 64 * 16 * 400 : 4 * 400, sCols = 400;
  const B = full ? 64 : 4, T = 400, D = 768;
  const n = rows * dim, sn = sRows * sCols, pn = B * T * D;
  return [
    {
      name: `layerNorm fwd ${rows}x${dim}`,
      bytes: 8 * n + 8 * rows,
      ours(engine) {
        const x = engine.upload(data(n, 1)), g = engine.upload(data(dim, 2)), b = engine.upload(data(dim, 3));
        const y = engine.empty([n]), mean = engine.empty([rows]), rstd = engine.empty([rows]);
        return ours([x, g, b, y, mean, rstd], () =>
          layerNormForward(engine.batch, { x: x.buffer, y: y.buffer, mean: mean.buffer, rstd: rstd.buffer, gamma: g.buffer, beta: b.buffer }, { rows, dim }),
        );
      },
      tfjs(tf) {
        const x = tf.tensor2d(data(n, 1), [rows, dim]), g = tf.tensor1d(data(dim, 2)), b = tf.tensor1d(data(dim, 3));
        return peer(tf, [x, g, b], () => tfLayerNorm(tf, x, g, b));
      },
    },
    layerNormFwdBwd(rows, dim),
    // the backward's rows per subgroup (default 8) and state (default registers) on a GPU: 'variant'
    // rows are not read by the goals
    ...(full
      ? ([[4, 'registers'], [4, 'reread'], [8, 'reread'], [4, 'reload'], [8, 'reload']] as const).map(([rowsPerSubgroup, state]) =>
          layerNormFwdBwd(rows, dim, { rowsPerSubgroup, state }),
        )
      : []),
    {
      name: `softmax fwd ${sRows}x${sCols}`,
      bytes: 8 * sn,
      ours(engine) {
        const x = engine.upload(data(sn, 5)), y = engine.empty([sn]);
        return ours([x, y], () => softmaxForward(engine.batch, x.buffer, y.buffer, { rows: sRows, cols: sCols }));
      },
      tfjs(tf) {
        const x = tf.tensor2d(data(sn, 5), [sRows, sCols]);
        return peer(tf, [x], () => tf.softmax(x));
      },
    },
    {
      name: `softmax fwd+bwd ${sRows}x${sCols}`,
      bytes: 8 * sn + 12 * sn,
      ours(engine) {
        const x = engine.upload(data(sn, 5)), dy = engine.upload(data(sn, 6)), y = engine.empty([sn]), dx = engine.empty([sn]);
        return ours([x, dy, y, dx], () => {
          softmaxForward(engine.batch, x.buffer, y.buffer, { rows: sRows, cols: sCols });
          softmaxBackward(engine.batch, y.buffer, dy.buffer, dx.buffer, { rows: sRows, cols: sCols });
        });
      },
      tfjs(tf) {
        const x = tf.tensor2d(data(sn, 5), [sRows, sCols]), dy = tf.tensor2d(data(sn, 6), [sRows, sCols]);
        const grad = tf.grad((v) => tf.softmax(v));
        return peer(tf, [x, dy], () => grad(x, dy));
      },
    },
    {
      name: `gelu fwd ${n}`,
      bytes: 8 * n,
      ours(engine) {
        const x = engine.upload(data(n, 7)), y = engine.empty([n]);
        return ours([x, y], () => geluForward(engine.batch, x.buffer, y.buffer, n));
      },
      tfjs(tf) {
        const x = tf.tensor1d(data(n, 7));
        return peer(tf, [x], () => tfGelu(tf, x));
      },
    },
    {
      // dx = dy·gelu'(x) = dy·(Φ(x) + x·φ(x)) on both sides: tfjs's composed from its ops (tf.grad of
      // the composed forward would also rerun the forward, which this row does not time for us)
      name: `gelu bwd ${n}`,
      bytes: 12 * n,
      ours(engine) {
        const x = engine.upload(data(n, 7)), dy = engine.upload(data(n, 8)), dx = engine.empty([n]);
        return ours([x, dy, dx], () => geluBackward(engine.batch, x.buffer, dy.buffer, dx.buffer, n));
      },
      tfjs(tf) {
        const x = tf.tensor1d(data(n, 7)), dy = tf.tensor1d(data(n, 8));
        return peer(tf, [x, dy], () => tf.mul(dy, tfGeluDerivative(tf, x)));
      },
    },
    {
      // a bias gradient: Σ over rows
      name: `reduceAxis sum ${rows}x${dim} -> ${dim}`,
      bytes: 4 * n,
      ours(engine) {
        const x = engine.upload(data(n, 9)), y = engine.empty([dim]);
        return ours([x, y], () => reduceAxis(engine.batch, x.buffer, y.buffer, { outer: 1, reduce: rows, inner: dim }));
      },
      tfjs(tf) {
        const x = tf.tensor2d(data(n, 9), [rows, dim]);
        return peer(tf, [x], () => tf.sum(x, 0));
      },
    },
    {
      name: `reduceAxis rows ${rows}x${dim} -> ${rows}`,
      bytes: 4 * n,
      ours(engine) {
        const x = engine.upload(data(n, 9)), y = engine.empty([rows]);
        return ours([x, y], () => reduceAxis(engine.batch, x.buffer, y.buffer, { outer: rows, reduce: dim, inner: 1 }));
      },
      tfjs(tf) {
        const x = tf.tensor2d(data(n, 9), [rows, dim]);
        return peer(tf, [x], () => tf.sum(x, 1));
      },
    },
    {
      // mean-pooling over tokens
      name: `reduceAxis mean ${B}x${T}x${D} -> ${B}x${D}`,
      bytes: 4 * pn,
      ours(engine) {
        const x = engine.upload(data(pn, 10)), y = engine.empty([B * D]);
        return ours([x, y], () => reduceAxis(engine.batch, x.buffer, y.buffer, { outer: B, reduce: T, inner: D, mean: true }));
      },
      tfjs(tf) {
        const x = tf.tensor3d(data(pn, 10), [B, T, D]);
        return peer(tf, [x], () => tf.mean(x, 1));
      },
    },
    {
      // its backward
      name: `broadcastAxis ${B}x${D} -> ${B}x${T}x${D}`,
      bytes: 4 * pn,
      ours(engine) {
        const x = engine.upload(data(B * D, 11)), y = engine.empty([pn]);
        return ours([x, y], () => broadcastAxis(engine.batch, x.buffer, y.buffer, { outer: B, reduce: T, inner: D, scale: 1 / T }));
      },
      tfjs(tf) {
        const x = tf.tensor3d(data(B * D, 11), [B, 1, D]);
        return peer(tf, [x], () => tf.mul(tf.broadcastTo(x, [B, T, D]), 1 / T));
      },
    },
  ];
}
