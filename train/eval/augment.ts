// Fine-tuning augmentations on one record [C, L] (C leads, L samples), RandAugment style: each call
// applies `ops` operations drawn from the list, each with probability p, at a fixed magnitude. The
// reference's list (shift, cutout, drop, flip, erase, sine, partial_sine, partial_white_noise, level
// 10, p 0.5) is followed by name; the magnitudes below are our own choices (the reference's exact
// ranges were not checked), scaled so level 10 is strong but leaves the rhythm readable.
// Pure and seeded (an Rng per call), so both test runners check them.
import type { Rng } from '../../engine/random.js';

export const AUGMENTATIONS = ['shift', 'cutout', 'drop', 'flip', 'erase', 'sine', 'partial_sine', 'partial_white_noise'] as const;
export type Augmentation = (typeof AUGMENTATIONS)[number];

export interface AugmentOptions {
  /** Operations per record. Default 2. */
  ops?: number;
  /** Magnitude 0–10 (fraction level/10 of each op's maximum). Default 10. */
  level?: number;
  /** Chance that a drawn operation is applied. Default 0.5. */
  p?: number;
  /** Restrict the draw to these operations. */
  allowed?: readonly Augmentation[];
  /** Sampling rate, Hz (sine frequencies). Default 250. */
  fs?: number;
}

/** Signal scale for additive ops: the record's mean absolute amplitude (so mV and z-scored data both work). */
function amplitude(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.abs(x[i]);
  return x.length ? s / x.length : 0;
}

/** Applies one named operation in place. `m` is the magnitude in [0, 1]. */
export function applyAugmentation(op: Augmentation, x: Float32Array, C: number, L: number, m: number, rng: Rng, fs = 250): void {
  if (x.length !== C * L) throw new RangeError(`augment: ${x.length} values for ${C} leads × ${L} samples`);
  const seg = () => {
    // a segment of up to 20 % of the record (times m)
    const len = Math.max(1, Math.round(L * 0.2 * m * rng.next()));
    const start = rng.int(L - len + 1);
    return [start, len] as const;
  };
  switch (op) {
    case 'shift': {
      // circular shift by up to ±10 % of the length, every lead alike
      const k = Math.round((rng.next() * 2 - 1) * 0.1 * m * L);
      const tmp = new Float32Array(L);
      for (let c = 0; c < C; c++) {
        const row = x.subarray(c * L, (c + 1) * L);
        for (let i = 0; i < L; i++) tmp[(((i + k) % L) + L) % L] = row[i];
        row.set(tmp);
      }
      return;
    }
    case 'cutout': {
      const [s, n] = seg();
      for (let c = 0; c < C; c++) x.fill(0, c * L + s, c * L + s + n);
      return;
    }
    case 'drop': {
      // zero up to 10 % of the samples, independently
      const q = 0.1 * m;
      for (let i = 0; i < x.length; i++) if (rng.next() < q) x[i] = 0;
      return;
    }
    case 'flip': {
      // polarity inversion of every lead
      for (let i = 0; i < x.length; i++) x[i] = -x[i];
      return;
    }
    case 'erase': {
      const c = rng.int(C);
      x.fill(0, c * L, (c + 1) * L);
      return;
    }
    case 'sine':
    case 'partial_sine': {
      const a = amplitude(x) * 0.5 * m * rng.next();
      const f = 0.5 + rng.next() * 49.5; // Hz: baseline wander up to mains hum
      const ph = rng.next() * 2 * Math.PI;
      const [s, n] = op === 'sine' ? [0, L] : seg();
      for (let c = 0; c < C; c++) for (let i = s; i < s + n; i++) x[c * L + i] += a * Math.sin((2 * Math.PI * f * i) / fs + ph);
      return;
    }
    case 'partial_white_noise': {
      const sd = amplitude(x) * 0.5 * m;
      const [s, n] = seg();
      for (let c = 0; c < C; c++) for (let i = s; i < s + n; i++) x[c * L + i] += sd * rng.normal();
      return;
    }
  }
}

/** RandAugment on one record in place: `ops` draws (with replacement), each applied with chance p. Returns the ops applied. */
export function randAugment(x: Float32Array, C: number, L: number, rng: Rng, o: AugmentOptions = {}): Augmentation[] {
  const list = o.allowed ?? AUGMENTATIONS;
  if (list.length === 0) return [];
  const m = Math.min(10, Math.max(0, o.level ?? 10)) / 10;
  const applied: Augmentation[] = [];
  for (let i = 0; i < (o.ops ?? 2); i++) {
    const op = list[rng.int(list.length)];
    if (rng.next() < (o.p ?? 0.5)) {
      applyAugmentation(op, x, C, L, m, rng, o.fs ?? 250);
      applied.push(op);
    }
  }
  return applied;
}
