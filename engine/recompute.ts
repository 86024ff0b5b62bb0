// Activation recomputation (gradient checkpointing): y = fn(x) keeps only x for the backward, not
// the activations inside fn; the backward runs fn again on x, recording this time, and
// backpropagates y's gradient through that. The memory of a stack of blocks then holds one input a
// block, plus one block's activations at a time in the backward, for one more forward of each block.
//
// The gradients are those of running fn on the tape itself, bit for bit, where fn computes the same
// the second time: its kernels are deterministic, and its random draws (drop-path) come from `rng`,
// which the second run replays, and x has no other reader on the caller's tape (x's gradient is
// summed inside fn's tape, then handed on whole: another reader's contribution would be added in
// another order). fn must take every tensor that wants a gradient from x or from parameters (leaves
// for every tape): not from other tensors of the caller's tape, intermediates or watched, since the
// tapes of the two runs know neither.
import type { UniformSource } from './random.js';
import { Tape } from './tape.js';
import type { Tensor } from './tensor.js';

/** fn(t, x, rng) with fn's activations recomputed in the backward instead of held (see above). */
export function recompute(g: Tape, x: Tensor, rng: UniformSource | undefined, fn: (t: Tape, x: Tensor, rng: UniformSource | undefined) => Tensor): Tensor {
  if (!g.enabled) return fn(g, x, rng);
  const engine = g.engine;
  // The forward records on a tape of its own, to learn whether anything in fn wants a gradient; what
  // that tape saved is dropped at once.
  const draws: number[] = [];
  const recording = rng && { next: () => (draws.push(rng.next()), draws[draws.length - 1]) };
  const probe = new Tape(engine);
  if (g.requiresGrad(x)) probe.watch(x);
  let y: Tensor;
  try {
    y = fn(probe, x, recording);
  } catch (e) {
    probe.clear();
    throw e;
  }
  const wanted = probe.length > 0;
  probe.clear();
  if (!wanted) return y;
  const xs = g.save(x);
  g.record('recompute', y, [xs], (dy) => {
    let at = 0;
    const replay = rng && {
      next: () => {
        if (at >= draws.length) throw new Error(`recompute: the second run drew more than the first's ${draws.length} numbers`);
        return draws[at++];
      },
    };
    engine.scope(() => {
      const t = new Tape(engine);
      const leaf = g.requiresGrad(x) ? t.watch(xs) : undefined;
      try {
        t.backward(fn(t, xs, replay), { grad: dy });
        // x's gradient moves to the caller's tape (a view of the leaf's buffer, which goes with it)
        if (leaf?.grad) g.passGrad(x, leaf.grad, 1, true);
      } catch (e) {
        t.clear(); // what a second run that failed had saved (a failed backward clears itself)
        throw e;
      } finally {
        leaf?.grad?.dispose();
      }
    });
  });
  return y;
}
