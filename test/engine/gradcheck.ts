// One helper checks the forward and backward of any op or layer (tinygrad's habit): the GPU
// forward against a float64 CPU reference, and the GPU gradients (from a random output gradient
// dy) against central differences of Σ dy·ref(x) in float64.
import type { Engine } from '../../engine/engine.js';
import type { Registry } from '../../engine/nn.js';
import { Rng } from '../../engine/random.js';
import { Tape, type GradLeaf } from '../../engine/tape.js';
import type { Tensor } from '../../engine/tensor.js';
import { assertClose, randomArray } from '../helpers.js';

export interface CheckInput {
  name: string;
  shape: number[];
  /** Default: standard normal values. */
  data?: Float32Array | Uint32Array;
  dtype?: 'f32' | 'u32';
  /** Check its gradient (default true for f32). */
  grad?: boolean;
}

export interface GradCheck {
  name: string;
  inputs: CheckInput[];
  /** Parameters whose gradients are checked too; `cpu` receives their values by name. */
  params?: Registry;
  gpu: (g: Tape, x: Tensor[]) => Tensor;
  cpu: (x: Float64Array[], p: (name: string) => Float64Array) => ArrayLike<number>;
  tolForward?: number;
  tolGrad?: number;
  seed?: number;
  /** Check at most this many elements of each gradient (evenly spread), to bound CPU time. */
  maxPerInput?: number;
}

export async function gradcheck(engine: Engine, c: GradCheck): Promise<void> {
  const rng = new Rng(c.seed ?? 1);
  const data = c.inputs.map((i) => i.data ?? randomArray(rng, i.shape.reduce((a, b) => a * b, 1)));
  const tensors = c.inputs.map((inp, k) => engine.upload(data[k], inp.shape, inp.dtype ?? 'f32'));
  const g = new Tape(engine);
  const wants = c.inputs.map((inp) => (inp.dtype ?? 'f32') === 'f32' && inp.grad !== false);
  const leaves: (GradLeaf | null)[] = tensors.map((t, k) => (wants[k] ? g.watch(t) : null));
  const params = c.params?.list() ?? [];
  c.params?.zeroGrad();
  const pvals = new Map<string, Float64Array>();
  for (const p of params) pvals.set(p.name, Float64Array.from(await engine.read(p.value)));

  const out = engine.scope(() => c.gpu(g, tensors));
  const dyData = randomArray(rng, out.size);
  const dy = engine.upload(dyData, out.shape);
  g.backward(out, { grad: dy });
  const got = await engine.read(out);
  const grads: (Float32Array | null)[] = [];
  for (const l of leaves) grads.push(l ? (l.hasGrad ? await engine.read(l.grad!) : new Float32Array(l.value.size)) : null);
  const pgrads = new Map<string, Float32Array>();
  for (const p of params) pgrads.set(p.name, p.hasGrad ? await engine.read(p.grad!) : new Float32Array(p.value.size));
  for (const l of leaves) l?.grad?.dispose();
  [out, dy, ...tensors].forEach((t) => t.dispose());

  const xs = data.map((d) => Float64Array.from(d));
  const pget = (name: string) => {
    const v = pvals.get(name);
    if (!v) throw new Error(`gradcheck ${c.name}: reference asked for unknown parameter ${name}`);
    return v;
  };
  const ref = c.cpu(xs, pget);
  assertClose(got, ref, c.tolForward ?? 1e-5, `${c.name} forward`);

  const objective = () => {
    const y = c.cpu(xs, pget);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += dyData[i] * y[i];
    return s;
  };
  const fd = (arr: Float64Array, gpu: Float32Array, what: string) => {
    const n = arr.length;
    // All elements, or a random subset of maxPerInput (random, so no stride aliases with a row length).
    const all = Array.from({ length: n }, (_, i) => i);
    const picked = c.maxPerInput && c.maxPerInput < n ? (rng.shuffle(all) as number[]).slice(0, c.maxPerInput) : all;
    const num = new Float64Array(picked.length);
    const ana = new Float64Array(picked.length);
    picked.forEach((i, k) => {
      const x0 = arr[i];
      const h = 1e-6 * Math.max(1, Math.abs(x0));
      arr[i] = x0 + h;
      const up = objective();
      arr[i] = x0 - h;
      const down = objective();
      arr[i] = x0;
      num[k] = (up - down) / (2 * h);
      ana[k] = gpu[i];
    });
    assertClose(ana, num, c.tolGrad ?? 1e-4, `${c.name} gradient of ${what}`);
  };
  c.inputs.forEach((inp, k) => grads[k] && fd(xs[k], grads[k]!, inp.name));
  for (const p of params) if (p.requiresGrad) fd(pvals.get(p.name)!, pgrads.get(p.name)!, p.name);
}
