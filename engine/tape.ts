// Reverse-mode autograd as a tape: ops record themselves as they run (only while gradients are
// wanted), and `backward` replays the records in reverse. Everything is recorded into
// engine.batch: no submit and no readback here, so a whole training step is one submit that the
// caller makes.
//
// Ownership, which is what keeps memory flat:
// - An op's output is an ordinary tensor (engine.empty, so engine.scope disposes it).
// - What an op's backward needs it keeps as a retained view (`save`), which the tape disposes right
//   after that backward ran. Run the forward inside engine.scope: its tensors are then released at
//   the end of the forward and each saved activation goes back to the pool as soon as backward used it.
// - Gradients of intermediates belong to the tape and are disposed once their op's backward ran.
// - Gradients of leaves (parameters, watched tensors) are kept: a leaf's .grad buffer is allocated
//   once, and `hasGrad` says whether it holds this step's gradient (false after zeroGrad, so the
//   first contribution overwrites instead of adding to a cleared buffer).
//
// A training step (test/engine/train.test.ts trains a small ViT this way):
//   reg.zeroGrad();
//   const loss = engine.scope(() => model.loss(tape, x, y)); // forward; records only what needs grads
//   tape.backward(loss);                                     // { scale } for loss scaling
//   opt.step(cosineLr(step, schedule));                      // AdamW kernels, same batch
//   engine.flush();                                          // the step's one submit
//   ... every N steps: await engine.read(loss); always loss.dispose()
import { castF16ToF32 } from '../kernels/cast.js';
import { accumulate, fill, scale } from '../kernels/elementwise.js';
import type { CommandBatch } from '../kernels/runtime.js';
import type { Engine } from './engine.js';
import { DTYPE_BYTES, shapeSize, Storage, Tensor, type DType } from './tensor.js';

/** A tensor that collects and keeps its gradient: a Parameter, or an input watched by `Tape.watch`. */
export interface GradLeaf {
  readonly value: Tensor;
  /** The gradient buffer (allocated at the first contribution, then reused); valid iff hasGrad. */
  grad: Tensor | null;
  hasGrad: boolean;
  requiresGrad: boolean;
}

const leaves = new WeakMap<Tensor, GradLeaf>();

/** Makes `leaf.value` a gradient-collecting leaf for every tape (Parameter's constructor calls this). */
export function registerLeaf(leaf: GradLeaf): void {
  leaves.set(leaf.value, leaf);
}

/** A tensor no engine.scope tracks: its owner (the tape, a parameter, the caller) disposes it.
 *  forUpload: it will be written by queue.writeBuffer (see BufferPool.acquire). */
export function untracked(engine: Engine, shape: readonly number[], forUpload = false, dtype: DType = 'f32'): Tensor {
  // Rounded up to whole 4-byte words: f16 kernels read and write pairs.
  const bytes = Math.max(4, Math.ceil((shapeSize(shape) * DTYPE_BYTES[dtype]) / 4) * 4);
  return new Tensor(new Storage(engine.pool, engine.pool.acquire(bytes, forUpload), bytes), shape, dtype);
}

/** Runs a kernel launch; if it throws (a kernel refusing its arguments), disposes `temps` first: they
 *  are untracked, so no engine.scope would free them. */
export function launchWith(temps: readonly Tensor[], launch: () => void): void {
  try {
    launch();
  } catch (e) {
    for (const t of temps) t.dispose();
    throw e;
  }
}

/** Registers a tensor made outside engine.empty (a view) with the innermost engine.scope. */
export function adopt(engine: Engine, t: Tensor): Tensor {
  return engine.track(t);
}

interface Node {
  op: string;
  out: Tensor;
  saved: Tensor[];
  backward: (dy: Tensor) => void;
}

/** Gradient slot of an intermediate tensor (output of a recorded op). */
interface Slot {
  grad: Tensor | null;
  /** The op's backward takes an f16 gradient (RecordOptions.halfGrad; the output is f16). */
  half: boolean;
}

export interface RecordOptions {
  /** The backward takes an f16 dy as well as an f32 one (only for an f16 output). Its gradient is
   *  then f16 where its one contribution can be written so (GradWrite.half), as autocast keeps the
   *  gradient of an f16 activation in f16: half the bytes, and the f16 matmuls that read it need no
   *  cast. A second contribution widens it to f32 first, so sums are always taken in f32. */
  halfGrad?: boolean;
}

/** What a gradient's writer can do (Tape.addGrad, Tape.gradOut). */
export interface GradWrite {
  /** It can add into dst (default true); otherwise a second contribution goes through a temporary. */
  accumulate?: boolean;
  /** It can write an f16 dst (default false): it is handed one where the tensor's backward takes an
   *  f16 gradient and nothing was contributed yet; it must look at dst.dtype. */
  half?: boolean;
}

export class Tape {
  readonly batch: CommandBatch;
  private nodes: Node[] = [];
  private slots = new Map<Tensor, Slot>();
  private watched = new Map<Tensor, GradLeaf>();
  private disabled = 0;

  constructor(readonly engine: Engine) {
    this.batch = engine.batch;
  }

  /** True while ops record (outside noGrad). */
  get enabled(): boolean {
    return this.disabled === 0;
  }

  /** Number of ops recorded and not yet run backward. */
  get length(): number {
    return this.nodes.length;
  }

  /** Runs `fn` without recording (EMA teacher, evaluation). Nests. */
  noGrad<T>(fn: () => T): T {
    this.disabled++;
    try {
      return fn();
    } finally {
      this.disabled--;
    }
  }

  /** Makes `t` a leaf for the next backward, which computes and keeps its gradient in leaf.grad (the
   *  caller disposes it). Parameters need no watch: they are leaves for every tape. */
  watch(t: Tensor): GradLeaf {
    const leaf: GradLeaf = { value: t, grad: null, hasGrad: false, requiresGrad: true };
    this.watched.set(t, leaf);
    return leaf;
  }

  private leaf(t: Tensor): GradLeaf | undefined {
    const l = this.watched.get(t) ?? leaves.get(t);
    return l && l.requiresGrad ? l : undefined;
  }

  /** Whether a gradient flows to `t` (a live leaf, or the output of a recorded op). */
  requiresGrad(t: Tensor | null | undefined): boolean {
    return !!t && (this.slots.has(t) || this.leaf(t) !== undefined);
  }

  /** Whether an op with these inputs must be recorded. */
  wants(...inputs: (Tensor | null | undefined)[]): boolean {
    return this.enabled && inputs.some((t) => this.requiresGrad(t));
  }

  /** A retained view of `t` for a backward: valid after the caller disposes `t`; the tape frees it. */
  save(t: Tensor): Tensor {
    return t.reshape(t.shape);
  }

  /** Records an op: `backward(dy)` adds the gradients of its inputs (via addGrad/passGrad). `saved`
   *  are views from `save`, disposed right after backward ran (or if it never runs, at clear()). dy
   *  is f32, or f16 where opts.halfGrad allows it. */
  record(op: string, out: Tensor, saved: Tensor[], backward: (dy: Tensor) => void, opts: RecordOptions = {}): void {
    if (this.slots.has(out)) throw new Error(`tape: ${op} output is already recorded`);
    if (opts.halfGrad && out.dtype !== 'f16') throw new TypeError(`tape: ${op} takes an f16 gradient, but its output is ${out.dtype}`);
    this.nodes.push({ op, out, saved, backward });
    this.slots.set(out, { grad: null, half: !!opts.halfGrad });
  }

  /**
   * Adds a gradient contribution for `t`. `write(dst, accumulate)` records kernels that set dst
   * (accumulate=false, the first contribution) or add to it (true). A kernel that cannot add says
   * so (how.accumulate false): the tape then writes into a temporary and adds that (one more pass).
   * With how.half, dst may be f16 (GradWrite).
   */
  addGrad(t: Tensor, write: (dst: Tensor, accumulate: boolean) => void, how: GradWrite = {}): void {
    const target = this.gradTarget(t, how.half ?? false);
    if (!target) return;
    const { grad, has } = target;
    if (!has) write(grad, false);
    else if (how.accumulate ?? true) write(grad, true);
    else {
      const tmp = untracked(this.engine, t.shape);
      write(tmp, false);
      accumulate(this.batch, grad.buffer, tmp.buffer, t.size);
      tmp.dispose();
    }
  }

  /**
   * For kernels that overwrite their output, or write several gradients in one dispatch: `dst` to
   * write t's gradient into, and `done()` to call once the kernel is recorded (when t already had a
   * gradient, dst is a temporary that done() adds in). Undefined when t takes no gradient.
   */
  gradOut(t: Tensor, how: Pick<GradWrite, 'half'> = {}): { dst: Tensor; done(): void } | undefined {
    const target = this.gradTarget(t, how.half ?? false);
    if (!target) return undefined;
    if (!target.has) return { dst: target.grad, done() {} };
    const tmp = untracked(this.engine, t.shape);
    return {
      dst: tmp,
      done: () => {
        accumulate(this.batch, target.grad.buffer, tmp.buffer, t.size);
        tmp.dispose();
      },
    };
  }

  /**
   * Where t's gradient goes, for kernels that can add: the buffer and whether to add (a gradient is
   * already there). Marks the gradient as present; the caller must record the write right away.
   */
  gradInto(t: Tensor): { grad: Tensor; accumulate: boolean } | undefined {
    const target = this.gradTarget(t, false);
    return target && { grad: target.grad, accumulate: target.has };
  }

  /**
   * Adds alpha·src (same number of elements) to the gradient of `t`. With move=true and no gradient
   * yet, the gradient becomes a view of src (no copy); the caller must not read src afterwards. src
   * may be f16 (an f16 dy handed on): it is moved where t's backward takes that, else widened.
   */
  passGrad(t: Tensor, src: Tensor, alpha = 1, move = false): void {
    if (src.size !== t.size) throw new RangeError(`passGrad: gradient [${src.shape}] does not fit tensor [${t.shape}]`);
    const slot = this.slots.get(t);
    if (move && alpha === 1 && slot && !slot.grad && (src.dtype === 'f32' || slot.half)) {
      slot.grad = src.reshape(t.shape);
      return;
    }
    if (!this.requiresGrad(t)) return;
    const wide = src.dtype === 'f16' ? this.widened(src) : src;
    try {
      this.addGrad(t, (dst, acc) => (acc ? accumulate(this.batch, dst.buffer, wide.buffer, t.size, alpha) : scale(this.batch, wide.buffer, dst.buffer, t.size, alpha)));
    } finally {
      if (wide !== src) wide.dispose();
    }
  }

  /** An f32 copy of the f16 t (untracked: the caller disposes it). */
  private widened(t: Tensor): Tensor {
    const f = untracked(this.engine, t.shape);
    castF16ToF32(this.batch, t.buffer, f.buffer, t.size);
    return f;
  }

  /** The buffer to write t's gradient into, allocating it at the first contribution: f16 where the
   *  writer can (`half`) and t's backward takes it; one there already is widened to f32 to add to. */
  private gradTarget(t: Tensor, half: boolean): { grad: Tensor; has: boolean } | undefined {
    const slot = this.slots.get(t);
    if (slot) {
      if (slot.grad) {
        if (slot.grad.dtype === 'f16') {
          const wide = this.widened(slot.grad);
          slot.grad.dispose();
          slot.grad = wide;
        }
        return { grad: slot.grad, has: true };
      }
      slot.grad = untracked(this.engine, t.shape, false, slot.half && half ? 'f16' : 'f32');
      return { grad: slot.grad, has: false };
    }
    const leaf = this.leaf(t);
    if (!leaf) return undefined;
    if (!leaf.grad || leaf.grad.isDisposed) {
      // a new buffer holds nothing yet: written, not added to, whatever hasGrad said
      leaf.grad = untracked(this.engine, t.shape);
      leaf.hasGrad = false;
    }
    const has = leaf.hasGrad;
    leaf.hasGrad = true;
    return { grad: leaf.grad, has };
  }

  /**
   * Backpropagates from `out`, seeded with `grad` (dL/dout; default all `scale`, e.g. 1 for a scalar
   * loss, or the loss scale under mixed precision). Ops run in reverse recording order; each saved
   * activation and each intermediate gradient is released right after its op's backward. Leaves keep
   * their gradients. The tape is empty afterwards (ops recorded but not on the path are dropped).
   */
  backward(out: Tensor, opts: { grad?: Tensor; scale?: number } = {}): void {
    const root = this.slots.get(out);
    // A refused backward empties the tape as a run one does: its ops would otherwise join the next.
    if (!root) {
      this.clear();
      throw new Error(`tape.backward: tensor [${out.shape}] is not the output of a recorded op`);
    }
    if (opts.grad) {
      if (opts.grad.size !== out.size) {
        this.clear();
        throw new RangeError(`tape.backward: seed gradient [${opts.grad.shape}] for output [${out.shape}]`);
      }
      // A copy, not a view: an op may later add into a gradient it was handed (passGrad move).
      root.grad = untracked(this.engine, out.shape);
      scale(this.batch, opts.grad.buffer, root.grad.buffer, out.size, opts.scale ?? 1);
    } else {
      root.grad = untracked(this.engine, out.shape);
      fill(this.batch, root.grad.buffer, out.size, opts.scale ?? 1);
    }
    try {
      for (let i = this.nodes.length - 1; i >= 0; i--) {
        const node = this.nodes[i];
        const slot = this.slots.get(node.out)!;
        if (slot.grad) {
          node.backward(slot.grad);
          slot.grad.dispose();
          slot.grad = null;
        }
        for (const s of node.saved) s.dispose();
      }
    } catch (e) {
      // the rest of this backward is void: its nodes and pending gradients must not run in the next one
      this.clear();
      throw e;
    }
    this.nodes = [];
    this.slots.clear();
    this.watched.clear();
  }

  /** Drops everything recorded (a forward without backward, e.g. after an error). */
  clear(): void {
    for (const n of this.nodes) for (const s of n.saved) s.dispose();
    for (const s of this.slots.values()) s.grad?.dispose();
    this.nodes = [];
    this.slots.clear();
    this.watched.clear();
  }
}

/** An op's inputs must be f32 (linear also takes f16): an f16 tensor, which matmul and layerNorm can
 *  write, is refused instead of its bits being read as floats. */
export function requireF32(op: string, inputs: Record<string, Tensor | null | undefined>): void {
  for (const [name, t] of Object.entries(inputs)) if (t && t.dtype !== 'f32') throw new TypeError(`${op}: ${name} is ${t.dtype} [${t.shape}], expected f32`);
}

/** Throws unless `t` is f32 and has `shape` (−1 matches any size); names the op and both shapes. */
export function checkShape(op: string, what: string, t: Tensor, shape: readonly number[]): void {
  const ok = t.shape.length === shape.length && shape.every((d, i) => d === -1 || d === t.shape[i]);
  if (!ok) throw new RangeError(`${op}: ${what} has shape [${t.shape}], expected [${shape.map((d) => (d === -1 ? '*' : d))}]`);
  requireF32(op, { [what]: t });
}
