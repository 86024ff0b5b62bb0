// Shared by the element-wise kernel specs (elementwise, loss, adamw, ema, norm2, cast, lossscale):
// sizes that are not workgroup or vec4 multiples, buffers with a sentinel region past n (a
// lane-guarded tail store must not touch it), bindings cut to exactly n floats, which forces the
// scalar path, and loss-scale state buffers.
import type { Engine } from '../../engine/engine.js';
import type { Tensor } from '../../engine/tensor.js';
import { LossScaleWord, LOSS_SCALE_WORDS } from '../../kernels/lossscale.js';
import type { Binding } from '../../kernels/runtime.js';
import { assert, assertClose } from '../helpers.js';

/** 1, tiny sizes of every residue mod 4, primes, sizes just past a 256-thread workgroup; small
 *  enough for SwiftShader in the browser runner. */
export const SIZES = [1, 2, 3, 5, 8, 13, 257, 1031, 4099, 65537];
export const PAD = 5;
export const SENTINEL = 777.25;

export type Mode = 'vec4' | 'scalar';
export const MODES: Mode[] = ['vec4', 'scalar'];

/** Uploads `data` (or NaN poison when null) into n + PAD floats, SENTINEL past n. */
export function padded(engine: Engine, data: ArrayLike<number> | null, n: number): Tensor {
  const a = new Float32Array(n + PAD).fill(SENTINEL);
  if (data) a.set(Array.from(data).slice(0, n));
  else a.fill(NaN, 0, n);
  return engine.upload(a);
}

/** The whole buffer (vec4 path), or a binding of exactly 4n bytes (scalar path unless n % 4 == 0). */
export function bind(t: Tensor, n: number, mode: Mode): Binding {
  return mode === 'vec4' ? t.buffer : { buffer: t.buffer, offset: 0, size: 4 * n };
}

/** got[0..n) against ref at `tol`, and got[n..n+PAD) still SENTINEL. */
export function checkPadded(got: Float32Array, ref: ArrayLike<number>, n: number, tol: number, what: string): void {
  assertClose(got.subarray(0, n), ref, tol, what);
  for (let i = n; i < n + PAD; i++) assert(got[i] === SENTINEL, `${what}: element ${i} past n=${n} was overwritten (${got[i]})`);
}

export function f64(a: ArrayLike<number>): Float64Array {
  return Float64Array.from(a as ArrayLike<number>);
}

/** A loss-scale state buffer (kernels/lossscale.ts) holding 1/scale and the skip flag. */
export function lossScaleState(engine: Engine, invScale: number, skip: boolean, good = 0, skipped = 0): Tensor {
  const w = new Uint32Array(LOSS_SCALE_WORDS);
  w[LossScaleWord.invScale] = new Uint32Array(Float32Array.of(invScale).buffer)[0];
  w[LossScaleWord.skip] = skip ? 1 : 0;
  w[LossScaleWord.good] = good;
  w[LossScaleWord.skipped] = skipped;
  return engine.upload(w, [LOSS_SCALE_WORDS], 'u32');
}

export { expectThrow } from '../helpers.js';
