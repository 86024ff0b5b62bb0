// A first check that the device computes: an element-wise kernel, read back and compared in full.
import type { Engine } from '../engine/engine.js';
import { binary } from '../kernels/elementwise.js';

export async function smokeDemo(engine: Engine, n: number): Promise<{ n: number; maxError: number; ms: number; ok: boolean }> {
  const a = new Float32Array(n).map((_, i) => Math.sin(i));
  const b = new Float32Array(n).map((_, i) => Math.cos(i));
  const ta = engine.upload(a), tb = engine.upload(b), out = engine.empty([n]);
  const t0 = performance.now();
  binary(engine.batch, 'add', ta.buffer, tb.buffer, out.buffer, n, 2);
  const got = await engine.read(out);
  const ms = performance.now() - t0;
  let maxError = 0;
  for (let i = 0; i < n; i++) maxError = Math.max(maxError, Math.abs(got[i] - (a[i] + 2 * b[i])));
  for (const t of [ta, tb, out]) t.dispose();
  return { n, maxError, ms, ok: maxError < 1e-5 };
}
