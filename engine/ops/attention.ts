// Fused multi-head attention over qkv [B, T, 3·H·Dh] (the qkv Linear's output, no transposes),
// forward and backward. The forward's output and log-sum-exp rows are what the backward needs.
import { attentionBackward, attentionForward, type AttentionMask } from '../../kernels/attention.js';
import { launchWith, untracked, type Tape } from '../tape.js';
import { floatType, type Tensor } from '../tensor.js';

export interface AttentionOptions {
  heads: number;
  /** Leads and time columns present per lead: T = C·V tokens, lead-major. */
  C: number;
  V: number;
  /** cropa: same lead or same column; lead: same lead; none: all tokens. */
  mask: AttentionMask;
  /** Logit scale, default 1/sqrt(head dim). */
  scale?: number;
  /** 'f16': out is f16 (for an f16 Linear, which then casts nothing), and the backward reads those
   *  halves, so no f32 copy is held for it; where the head size is a multiple of 4, else f32. */
  output?: 'f32' | 'f16';
}

/** out [B, T, H·Dh] from qkv [B, T, 3·H·Dh] (last dim ordered (3, H, Dh) like timm). qkv may be f16
 *  (an f16 qkv Linear's output, with the head size a multiple of 4 and the adapter's shader-f16): the
 *  kernels read it as it is, and write its gradient in f16 where the tape takes one (RecordOptions). */
export function attention(g: Tape, qkv: Tensor, o: AttentionOptions): Tensor {
  if (qkv.dtype !== 'f32' && qkv.dtype !== 'f16') throw new TypeError(`attention: qkv is ${qkv.dtype} [${qkv.shape}], expected f32 or f16`);
  const [B, T, W] = qkv.shape;
  const H = o.heads;
  if (qkv.shape.length !== 3 || W % (3 * H) !== 0 || T !== o.C * o.V)
    throw new RangeError(`attention: qkv [${qkv.shape}] does not fit [B, T = C·V = ${o.C}·${o.V}, 3·H·Dh with H = ${H}]`);
  const Dh = W / (3 * H);
  const dims = { B, H, Dh, C: o.C, V: o.V, mask: o.mask, scale: o.scale };
  const input = qkv.dtype; // the kernels refuse an f16 qkv they cannot read
  if (o.output !== undefined && o.output !== 'f32' && o.output !== 'f16') throw new RangeError(`attention: output must be 'f32' or 'f16', got '${o.output}'`);
  const half = o.output === 'f16' && Dh % 4 === 0;
  const out = g.engine.empty([B, T, H * Dh], half ? 'f16' : 'f32');
  // The kernel writes an f16 out itself, rounding as the cast does: on an H200 (2026-11-28, its f16
  // stores unrolled) the forward took 0.520 ms against 0.515 for f32, and a cast of that output 0.034.
  const lse = untracked(g.engine, [B, H, T]);
  launchWith([lse], () => attentionForward(g.batch, { qkv: qkv.buffer, out: out.buffer, lse: lse.buffer }, dims, { input, output: half ? 'f16' : 'f32' }));
  if (!g.wants(qkv)) {
    lse.dispose();
    return out;
  }
  const qs = g.save(qkv);
  const os = g.save(out);
  // An f16 out's gradient may come in f16 (the kernels widen it), and an f16 qkv's goes out in f16
  // where the tape can hand one over, as autocast has them.
  g.record(
    'attention',
    out,
    [qs, os, lse],
    (dout) => {
      const d = g.gradOut(qkv, { half: Dh % 4 === 0 })!; // the kernel overwrites dqkv
      const types = { input, output: half ? 'f16' : 'f32', dout: floatType(dout), dqkv: floatType(d.dst) } as const;
      attentionBackward(g.batch, { qkv: qs.buffer, out: os.buffer, lse: lse.buffer, dout: dout.buffer, dqkv: d.dst.buffer }, dims, types);
      d.done();
    },
    { halfGrad: half },
  );
  return out;
}
