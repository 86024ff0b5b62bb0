// Fused multi-head attention over qkv [B, T, 3·H·Dh] (the qkv Linear's output, no transposes),
// forward and backward. The forward's output and log-sum-exp rows are what the backward needs.
import { attentionBackward, attentionForward, type AttentionMask } from '../../kernels/attention.js';
import { launchWith, requireF32, untracked, type Tape } from '../tape.js';
import type { Tensor } from '../tensor.js';

export interface AttentionOptions {
  heads: number;
  /** Leads and time columns present per lead: T = C·V tokens, lead-major. */
  C: number;
  V: number;
  /** cropa: same lead or same column; lead: same lead; none: all tokens. */
  mask: AttentionMask;
  /** Logit scale, default 1/sqrt(head dim). */
  scale?: number;
}

/** out [B, T, H·Dh] from qkv [B, T, 3·H·Dh] (last dim ordered (3, H, Dh) like timm). */
export function attention(g: Tape, qkv: Tensor, o: AttentionOptions): Tensor {
  requireF32('attention', { qkv });
  const [B, T, W] = qkv.shape;
  const H = o.heads;
  if (qkv.shape.length !== 3 || W % (3 * H) !== 0 || T !== o.C * o.V)
    throw new RangeError(`attention: qkv [${qkv.shape}] does not fit [B, T = C·V = ${o.C}·${o.V}, 3·H·Dh with H = ${H}]`);
  const Dh = W / (3 * H);
  const dims = { B, H, Dh, C: o.C, V: o.V, mask: o.mask, scale: o.scale };
  // f32 out: the kernel's f16 output (kernels/attention.ts) took an H200 3× as long for the encoder's
  // forward (2026-11-27); its store has changed since, not yet measured
  const out = g.engine.empty([B, T, H * Dh]);
  const lse = untracked(g.engine, [B, H, T]);
  launchWith([lse], () => attentionForward(g.batch, { qkv: qkv.buffer, out: out.buffer, lse: lse.buffer }, dims));
  if (!g.wants(qkv)) {
    lse.dispose();
    return out;
  }
  const qs = g.save(qkv);
  const os = g.save(out);
  g.record('attention', out, [qs, os, lse], (dout) => {
    const d = g.gradOut(qkv)!; // the kernel overwrites dqkv
    attentionBackward(g.batch, { qkv: qs.buffer, out: os.buffer, lse: lse.buffer, dout: dout.buffer, dqkv: d.dst.buffer }, dims);
    d.done();
  });
  return out;
}
