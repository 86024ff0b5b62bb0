// Fixed sin-cos positional tables, exactly as the official pos_encoding.get_2d_sincos_pos_embed
// computes them (float64, then stored as float32), so official weights see the same inputs.
//
// Row for token (lead l, time t), d = D/4, ω_i = 10000^(−i/d), i = 0..d−1:
//   [ sin(t·ω) | cos(t·ω) | sin(l·ω) | cos(l·ω) ]   — the TIME half first, then the LEAD half.
// Rows are lead-major: row = leadRow · P + t.
import { type EcgJepaConfig, NUM_LEADS } from './config.js';

/**
 * The 2-D table in float64 for the given lead indices (rows in that order) × `patches` time
 * positions: [leads.length · patches, dim]. `leads` are the lead coordinates (indices into the
 * 8-lead order), so a reduced-lead subset gets the same rows the full table has for those leads.
 */
export function sincos2d(dim: number, leads: readonly number[], patches: number): Float64Array {
  if (!Number.isInteger(dim) || dim <= 0 || dim % 4 !== 0) throw new RangeError(`sincos2d: dim ${dim} must be a positive multiple of 4`);
  if (!Number.isInteger(patches) || patches <= 0) throw new RangeError(`sincos2d: patches ${patches} must be a positive integer`);
  const d = dim / 4;
  const omega = new Float64Array(d);
  for (let i = 0; i < d; i++) omega[i] = 1 / Math.pow(10000, i / d);
  const out = new Float64Array(leads.length * patches * dim);
  leads.forEach((l, li) => {
    if (!Number.isInteger(l) || l < 0) throw new RangeError(`sincos2d: bad lead coordinate ${l}`);
    for (let t = 0; t < patches; t++) {
      const row = out.subarray((li * patches + t) * dim, (li * patches + t + 1) * dim);
      for (let i = 0; i < d; i++) {
        row[i] = Math.sin(t * omega[i]);
        row[d + i] = Math.cos(t * omega[i]);
        row[2 * d + i] = Math.sin(l * omega[i]);
        row[3 * d + i] = Math.cos(l * omega[i]);
      }
    }
  });
  return out;
}

/** Rounds a float64 table to the float32 values the model actually stores. */
export function toF32(a: Float64Array): Float32Array {
  return Float32Array.from(a);
}

/** The encoder's table for the config's leads: [C · P, D] float32 (C = cfg.leads.length). */
export function encoderPosEmbed(cfg: EcgJepaConfig): Float32Array {
  for (const l of cfg.leads) if (l >= NUM_LEADS) throw new RangeError(`encoderPosEmbed: lead ${l} out of range`);
  return toF32(sincos2d(cfg.encoder.dim, cfg.leads, cfg.patches));
}

/** The predictor's table: the same function with one lead (l = 0), [P, Dp] float32; its second
 *  half is the constant [0…0, 1…1], as in the official code. */
export function predictorPosEmbed(cfg: EcgJepaConfig): Float32Array {
  return toF32(sincos2d(cfg.predictor.dim, [0], cfg.patches));
}
