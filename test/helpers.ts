// Shared by every spec, in both runners: one engine per run, seeded random data, float64 references
// compared by relative error, and poisoned outputs so an element a kernel never wrote fails.
import { Engine } from '../engine/engine.js';
import { Rng } from '../engine/random.js';
import type { Tensor } from '../engine/tensor.js';

export const isBrowser = typeof window !== 'undefined';

let shared: Promise<Engine> | null = null;

/** The engine all specs share (one device per runner). It asks for subgroup matrices so that on a
 *  GPU that has them (NVIDIA under Dawn) the suite checks that matmul path too. Under Node,
 *  ECG_DAWN_TOGGLES=a,b enables those Dawn toggles: the suite then checks the kernels without Dawn's
 *  safety nets (disable_robustness, disable_workgroup_init), as `--dawn-toggles` runs them. */
export function getEngine(): Promise<Engine> {
  const toggles = isBrowser ? undefined : process.env.ECG_DAWN_TOGGLES?.split(',').filter(Boolean);
  return (shared ??= Engine.create({ subgroupMatrix: true, dawnToggles: toggles }));
}

export async function closeEngine(): Promise<void> {
  if (!shared) return;
  const e = await shared;
  shared = null;
  e.close();
}

export function randomArray(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

/** ‖out − ref‖ / ‖ref‖ (or ‖out − ref‖ when ref is all zeros); NaN anywhere gives Infinity. */
export function relError(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) throw new Error(`length mismatch: out ${out.length}, ref ${ref.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < out.length; i++) {
    const d = out[i] - ref[i];
    if (!Number.isFinite(out[i])) return Infinity;
    num += d * d;
    den += ref[i] * ref[i];
  }
  return den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
}

export function assertClose(out: ArrayLike<number>, ref: ArrayLike<number>, tol: number, what: string): void {
  const e = relError(out, ref);
  if (!(e < tol)) {
    let worst = 0;
    for (let i = 0; i < out.length; i++) if (!(Math.abs(out[i] - ref[i]) <= Math.abs(out[worst] - ref[worst]))) worst = i;
    throw new Error(`${what}: relative error ${e.toExponential(3)} >= ${tol} (worst at ${worst}: got ${out[worst]}, want ${ref[worst]})`);
  }
}

/** A tensor of the given shape filled with NaN, so an unwritten output element fails the check. */
export function poisoned(engine: Engine, shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return engine.upload(new Float32Array(n).fill(NaN), shape);
}

export function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

/** Runs fn and expects an error whose message contains `part` (a string) or matches it (a RegExp). */
export function expectThrow(fn: () => void, part: string | RegExp): void {
  let err: unknown = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expectError(err, part);
}

/** Awaits fn and expects it to reject with an error matching `part`, as expectThrow. */
export async function expectReject(fn: () => Promise<unknown>, part: string | RegExp): Promise<void> {
  let err: unknown = null;
  await fn().catch((e) => (err = e));
  expectError(err, part);
}

function expectError(err: unknown, part: string | RegExp): void {
  assert(err instanceof Error, `expected an error matching ${part}, got none`);
  const ok = typeof part === 'string' ? err.message.includes(part) : part.test(err.message);
  assert(ok, `expected an error matching ${part}, got: ${err.message}`);
}

/** For a Node-only suite: a fresh folder under the OS temp dir, made before the suite's own `before`
 *  hooks (register this first) and removed after its specs; `set` receives its path. */
export function useTempDir(prefix: string, set: (dir: string) => void): void {
  let dir = '';
  before(async () => {
    const [fs, os, path] = await Promise.all([import('node:fs'), import('node:os'), import('node:path')]);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    set(dir);
  });
  after(async () => {
    if (dir) (await import('node:fs')).rmSync(dir, { recursive: true, force: true });
  });
}
