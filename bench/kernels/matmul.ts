// Matmul against tf.matMul on the same device: the square reference, the ECG-JEPA linear layers
// (64 ECGs × 400 tokens = 25600 rows; weights stored [out, in] as in engine/ops/linear.ts, so the
// forward is X·Wᵀ, dX = dZ·W and dW = dZᵀ·X), the fused bias + GELU forward, a batched product and f16.
import type { Engine } from '../../engine/engine.js';
import type { Tensor } from '../../engine/tensor.js';
import { matmul, matmulPlan, matmulTuneTimes, tuneMatmul, type MatmulDims, type MatmulTileName, type SubgroupEpilogue } from '../../kernels/matmul.js';
import type { KernelCase, Scale } from '../harness.js';

type Tf = typeof import('@tensorflow/tfjs');

interface Spec {
  name: string;
  dims: MatmulDims;
  /** bias + GELU epilogue (tfjs: matMul, add, and GELU composed from erf). */
  fused?: boolean;
  /** bias + residual epilogue (a block's proj and fc2: x + (a·Wᵀ + b)); tfjs: matMul and two adds. */
  residual?: boolean;
  /** How a subgroup-matrix kernel applies the epilogue (MatmulOptions.epilogue). */
  epilogue?: SubgroupEpilogue;
  f16?: boolean;
  /** K splits forced (a 'variant' row; matmul's own follow the shape). */
  splitK?: number;
  /** Stream-K's workgroups (MatmulOptions.streamK; a 'variant' row). */
  streamK?: number;
  /** A tile config forced instead of the tuned one (a 'variant' row). */
  config?: MatmulTileName;
}

/** Cheap deterministic values in [-0.5, 0.5): timing does not depend on them, upload time does. */
export function values(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    a[i] = x / 2 ** 32 - 0.5;
  }
  return a;
}

/** f16 bits of values in [-0.5, 0.5) (exponent 14 or less; truncated mantissa is fine here). */
function halves(n: number, seed: number): Uint16Array {
  const f = values(n, seed), h = new Uint16Array(n), u = new Uint32Array(f.buffer);
  for (let i = 0; i < n; i++) {
    const e = ((u[i] >>> 23) & 0xff) - 127 + 15;
    h[i] = e <= 0 ? (u[i] >>> 16) & 0x8000 : ((u[i] >>> 16) & 0x8000) | (e << 10) | ((u[i] >>> 13) & 0x3ff);
  }
  return h;
}

/** An operand of n cheap values on the engine, f16 or f32. */
export function operand(engine: Engine, n: number, seed: number, f16: boolean): Tensor {
  return f16 ? engine.upload(halves(n, seed), [n], 'f16') : engine.upload(values(n, seed), [n]);
}

function shapes(d: MatmulDims) {
  const batch = d.batch ?? 1;
  const lead = batch > 1 ? [batch] : [];
  return {
    a: [...lead, ...(d.transA ? [d.K, d.M] : [d.M, d.K])],
    b: [...lead, ...(d.transB ? [d.N, d.K] : [d.K, d.N])],
    c: [...lead, d.M, d.N],
    batch,
  };
}

function gelu(tf: Tf, x: import('@tensorflow/tfjs').Tensor) {
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
}

function kernelCase(s: Spec): KernelCase {
  const { M, N, K } = s.dims;
  const sh = shapes(s.dims);
  const precision = s.f16 ? 'f16' : 'f32';
  return {
    name: s.name,
    flops: 2 * M * N * K * sh.batch,
    ours(engine: Engine) {
      if (s.f16 && !engine.device.features.has('shader-f16')) throw new Error(`bench ${s.name}: this device has no shader-f16`);
      const size = (x: number[]) => x.reduce((p, q) => p * q, 1);
      const up = (shape: number[], seed: number) => operand(engine, size(shape), seed, !!s.f16);
      const a = up(sh.a, 1), b = up(sh.b, 2), c = engine.empty([size(sh.c)], s.dims.output ?? 'f32');
      const bias = s.fused || s.residual ? engine.upload(values(N, 3)) : undefined;
      const residual = s.residual ? engine.upload(values(size(sh.c), 4)) : undefined;
      // The tile choice for this shape class is settled (autotuned on a GPU) before the timing.
      const opts = { precision, splitK: s.splitK, epilogue: s.epilogue, streamK: s.streamK, config: s.config } as const;
      const ready = tuneMatmul(engine.device, s.dims, { precision }).then(() => {
        const p = matmulPlan(engine.device, s.dims, opts);
        // Every candidate's tuning time, so one GPU run shows how far each tile config is from the winner.
        const times = Object.entries(matmulTuneTimes(engine.device, s.dims, { precision }) ?? {});
        const tuned = times.length ? ` (tune ms: ${times.map(([c, ms]) => `${c} ${ms!.toPrecision(3)}`).join(', ')})` : '';
        return `${p.config}${p.splits > 1 ? `, split K ×${p.splits}` : ''}${p.streamK ? `, stream-K ×${p.streamK}` : ''}${tuned}`;
      });
      return {
        ready,
        run: () => matmul(engine.batch, { a: a.buffer, b: b.buffer, c: c.buffer, bias: bias?.buffer, residual: residual?.buffer }, { ...s.dims, activation: s.fused ? 'gelu' : 'none' }, opts),
        dispose: () => [a, b, c, bias, residual].forEach((t) => t?.dispose()),
      };
    },
    tfjs(tf: Tf) {
      // tfjs-backend-webgpu computes in f32 only: the f16 case's peer is the same product in f32.
      const a = tf.randomUniform(sh.a, -0.5, 0.5), b = tf.randomUniform(sh.b, -0.5, 0.5);
      const bias = s.fused || s.residual ? tf.randomUniform([N], -0.5, 0.5) : undefined;
      const residual = s.residual ? tf.randomUniform(sh.c, -0.5, 0.5) : undefined;
      const { transA = false, transB = false } = s.dims;
      return {
        run: () => {
          const y = tf.matMul(a, b, transA, transB);
          if (residual) return tf.add(tf.add(y, bias!), residual);
          return bias ? gelu(tf, tf.add(y, bias)) : y;
        },
        dispose: () => tf.dispose([a, b, ...(bias ? [bias] : []), ...(residual ? [residual] : [])]),
      };
    },
  };
}

/** The three products of a linear layer y = x·Wᵀ with x [rows, k] and W [n, k]. */
function linear(label: string, rows: number, k: number, n: number): Spec[] {
  return [
    { name: `${label} fwd ${rows}x${n}x${k} A·Bᵀ`, dims: { M: rows, N: n, K: k, transB: true } },
    { name: `${label} dX ${rows}x${k}x${n} A·B`, dims: { M: rows, N: k, K: n } },
    { name: `${label} dW ${n}x${k}x${rows} Aᵀ·B`, dims: { M: n, N: k, K: rows, transA: true } },
  ];
}

/** The products of the ECG-JEPA base encoder's linear layers at batch 64 (proj, qkv, fc1, fc2: forward, dX, dW). */
export function layerSpecs(): { name: string; dims: MatmulDims }[] {
  return [...linear('proj', 25600, 768, 768), ...linear('qkv', 25600, 768, 2304), ...linear('fc1', 25600, 768, 3072), ...linear('fc2', 25600, 3072, 768)];
}

export function cases(scale: Scale): KernelCase[] {
  const specs: Spec[] =
    scale === 'full'
      ? [
          { name: 'matmul 4096x4096x4096', dims: { M: 4096, N: 4096, K: 4096 } },
          // its 512 output tiles of xlarge16 are not split (SPLIT_BELOW), ~4 waves on an H200 either way;
          // nor are the 600 of the dX products and fc2 fwd (fc1 dX and fc2 fwd in two splits beside)
          { name: 'variant matmul 4096x4096x4096, split K ×2', dims: { M: 4096, N: 4096, K: 4096 }, splitK: 2 },
          // Stream-K with one workgroup per SM of an H100 or H200 SXM (132; these tiles hold one an SM:
          // 512 invocations at 128 registers, or 256 at up to 255). The last of 4096³'s ~3.9 waves of
          // tiles idles 12 % of the card, the last of the layer products with N = 768 (600 tiles, ~4.5
          // waves) 45 %. Each against its config unsplit, in this run.
          ...(['xlarge16', 'xtall16', 'xlarge16-16x8'] as const).flatMap((config): Spec[] => [
            { name: `variant matmul 4096x4096x4096, ${config}`, dims: { M: 4096, N: 4096, K: 4096 }, config },
            { name: `variant matmul 4096x4096x4096, ${config}, stream-K 132`, dims: { M: 4096, N: 4096, K: 4096 }, config, streamK: 132 },
          ]),
          { name: 'variant matmul 4096x4096x4096, stream-K 132', dims: { M: 4096, N: 4096, K: 4096 }, streamK: 132 },
          { name: 'variant proj fwd 25600x768x768 A·Bᵀ, stream-K 132', dims: { M: 25600, N: 768, K: 768, transB: true }, streamK: 132 },
          { name: 'variant fc2 fwd 25600x768x3072 A·Bᵀ, stream-K 132', dims: { M: 25600, N: 768, K: 3072, transB: true }, streamK: 132 },
          ...layerSpecs(),
          { name: 'variant fc1 dX 25600x768x3072 A·B, split K ×2', dims: { M: 25600, N: 768, K: 3072 }, splitK: 2 },
          { name: 'variant fc2 fwd 25600x768x3072 A·Bᵀ, split K ×2', dims: { M: 25600, N: 768, K: 3072, transB: true }, splitK: 2 },
          // K splits follow the shape (proj dW 57 where the workspace fits, fc1 15): other counts as
          // 'variant' rows, which the goals do not read
          ...([['proj', 768, 768, 16], ['proj', 768, 768, 32], ['fc1', 3072, 768, 30]] as const).map(([label, m, n, splitK]) => ({
            name: `variant ${label} dW ${m}x${n}x25600 Aᵀ·B, split K ×${splitK}`,
            dims: { M: m, N: n, K: 25600, transA: true },
            splitK,
          })),
          { name: 'fc1 fwd+bias+gelu 25600x3072x768', dims: { M: 25600, N: 3072, K: 768, transB: true }, fused: true },
          { name: 'scores 768x(400x400x64) A·Bᵀ', dims: { M: 400, N: 400, K: 64, batch: 768, transB: true } },
          { name: 'matmul f16 4096x4096x4096', dims: { M: 4096, N: 4096, K: 4096 }, f16: true },
          { name: 'f16 fc1 fwd 25600x3072x768 A·Bᵀ', dims: { M: 25600, N: 3072, K: 768, transB: true }, f16: true },
          { name: 'f16 fc2 dW 768x3072x25600 Aᵀ·B', dims: { M: 768, N: 3072, K: 25600, transA: true }, f16: true },
          // fc2's dX, the hidden layer's gradient: f16 since stop 31 where the tiled kernels run it, f32
          // on the subgroup-matrix kernels since stop 32 (an H200: 0.957 ms into f16, 0.735 into f32; the
          // 'cast f32→f16' row, 19.7 M floats, ran 3.5 TB/s: ~0.13 ms for this output's 78.6 M)
          { name: 'f16 fc2 dX 25600x3072x768 A·B', dims: { M: 25600, N: 3072, K: 768 }, f16: true },
          { name: 'variant f16 fc2 dX 25600x3072x768 A·B, f16 output', dims: { M: 25600, N: 3072, K: 768, output: 'f16' }, f16: true },
          // qkv's forward (no bias: a plain product) writes f16 for the attention: the f16 C against the
          // f32 one plus a cast, as for fc2's dX (plainHalfOutputSlower keeps dX products f32)
          { name: 'f16 qkv fwd 25600x2304x768 A·Bᵀ', dims: { M: 25600, N: 2304, K: 768, transB: true }, f16: true },
          { name: 'variant f16 qkv fwd 25600x2304x768 A·Bᵀ, f16 output', dims: { M: 25600, N: 2304, K: 768, transB: true, output: 'f16' }, f16: true },
          // fc1's forward as the model runs it, bias and GELU in the epilogue, with an f32 and an f16 C
          { name: 'f16 fc1 fwd+bias+gelu 25600x3072x768', dims: { M: 25600, N: 3072, K: 768, transB: true }, f16: true, fused: true },
          { name: 'variant f16 fc1 fwd+bias+gelu 25600x3072x768, f16 output', dims: { M: 25600, N: 3072, K: 768, transB: true, output: 'f16' }, f16: true, fused: true },
          // proj's and fc2's forward plain, and as the model runs them: bias and the residual stream in the epilogue
          { name: 'f16 proj fwd 25600x768x768 A·Bᵀ', dims: { M: 25600, N: 768, K: 768, transB: true }, f16: true },
          { name: 'f16 proj fwd+bias+residual 25600x768x768', dims: { M: 25600, N: 768, K: 768, transB: true }, f16: true, residual: true },
          { name: 'f16 fc2 fwd 25600x768x3072 A·Bᵀ', dims: { M: 25600, N: 768, K: 3072, transB: true }, f16: true },
          { name: 'f16 fc2 fwd+bias+residual 25600x768x3072', dims: { M: 25600, N: 768, K: 3072, transB: true }, f16: true, residual: true },
          // The model's forward products (all the above with an epilogue) ran ~80 TFLOP/s in an H200's f16
          // step, half the plain products' rate: each with its epilogue as a pass of its own instead
          ...(
            [
              ['f16 qkv fwd 25600x2304x768 A·Bᵀ, f16 output', { M: 25600, N: 2304, K: 768, transB: true, output: 'f16' }, {}],
              ['f16 fc1 fwd+bias+gelu 25600x3072x768, f16 output', { M: 25600, N: 3072, K: 768, transB: true, output: 'f16' }, { fused: true }],
              ['f16 proj fwd+bias+residual 25600x768x768', { M: 25600, N: 768, K: 768, transB: true }, { residual: true }],
              ['f16 fc2 fwd+bias+residual 25600x768x3072', { M: 25600, N: 768, K: 3072, transB: true }, { residual: true }],
            ] as const
          ).map(([name, dims, epi]): Spec => ({ name: `variant ${name}, epilogue pass`, dims, f16: true, epilogue: 'pass', ...epi })),
        ]
      : [
          { name: 'matmul 256x256x256', dims: { M: 256, N: 256, K: 256 } },
          { name: 'variant matmul 256x256x256, stream-K 6', dims: { M: 256, N: 256, K: 256 }, streamK: 6 },
          ...linear('qkv-ci', 400, 128, 384),
          { name: 'fc1-ci fwd+bias+gelu 400x512x128', dims: { M: 400, N: 512, K: 128, transB: true }, fused: true },
          { name: 'scores-ci 8x(100x100x32) A·Bᵀ', dims: { M: 100, N: 100, K: 32, batch: 8, transB: true } },
          { name: 'matmul f16 256x256x256', dims: { M: 256, N: 256, K: 256 }, f16: true },
          { name: 'variant matmul f16 256x256x256, f16 output', dims: { M: 256, N: 256, K: 256, output: 'f16' }, f16: true },
          { name: 'variant matmul f16 256x256x256, f16 output, epilogue pass', dims: { M: 256, N: 256, K: 256, output: 'f16' }, f16: true, epilogue: 'pass' },
          { name: 'f16 fc2-ci fwd+bias+residual 400x128x512', dims: { M: 400, N: 128, K: 512, transB: true }, f16: true, residual: true },
        ];
  return specs.map(kernelCase);
}
