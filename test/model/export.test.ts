// Encoder export over bytes, as a web page gets it (both runners): f32 is the student (or the EMA
// teacher) bit for bit, f16 each value's round-to-nearest-even half, and the f16 encoder's
// representation of synthetic ECGs stays close to the f32 one's; clear errors for checkpoints without
// an encoder or without a teacher; pretraining refuses to resume from an export.
import type { Engine } from '../../engine/engine.js';
import { Rng } from '../../engine/random.js';
import { Tape } from '../../engine/tape.js';
import { checkpointFromBytes, checkpointToBytes, type Checkpoint } from '../../model/checkpoint.js';
import { encoderParamSpecs, inputLength, LEAD_NAMES, makeConfig } from '../../model/config.js';
import { Encoder, loadParams } from '../../model/encoder.js';
import { exportEncoder } from '../../model/export.js';
import { EcgJepa, TEACHER_PREFIX } from '../../model/jepa.js';
import { asFloat32, type StTensor } from '../../model/safetensors.js';
import { synthRecord } from '../../train/data/synth.js';
import { assert, expectThrow, getEngine, relError } from '../helpers.js';
import { tinyPretrained } from './tiny-pretrained.js';

const bits = (t: StTensor) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const sameBits = (a: StTensor, b: StTensor) => {
  const [p, q] = [bits(a), bits(b)];
  return a.dtype === b.dtype && p.length === q.length && p.every((v, i) => v === q[i]);
};

/** IEEE half rounding of a float32 value, computed independently of f32ToF16Bits: 11 significant
 *  bits (fewer below 2^-14), ties to even; beyond 65504 + half an ulp, ±Infinity. */
function halfRound(v: number): number {
  if (v === 0 || !Number.isFinite(v)) return v;
  const ulp = 2 ** (Math.max(Math.floor(Math.log2(Math.abs(v))), -14) - 10);
  const q = v / ulp;
  const f = Math.floor(q);
  const r = q - f > 0.5 || (q - f === 0.5 && f % 2 !== 0) ? f + 1 : f; // a tie goes to the even neighbour
  const out = r * ulp;
  return Math.abs(out) > 65504 ? Math.sign(v) * Infinity : out;
}

/** What a page gets: the checkpoint as the bytes of its two files, parsed back. */
function viaBytes(ck: Checkpoint): Checkpoint {
  const b = checkpointToBytes(ck);
  return checkpointFromBytes(b.tensors.slice().buffer, b.meta, { expect: makeConfig('tiny') });
}

/** And what it does with them: every tensor widened to f32 into an encoder (other seed's init overwritten). */
function encoderOf(engine: Engine, ck: Checkpoint, seed: number): Encoder {
  const enc = new Encoder(engine, ck.config, new Rng(seed));
  loadParams(enc.reg, new Map([...ck.tensors].map(([k, t]) => [k, asFloat32(t)])), { allowExtra: true });
  return enc;
}

/** Four synthetic ECGs at 250 Hz in the tiny preset's leads, [4, C, L]. */
function ecgs(): Float32Array {
  const cfg = makeConfig('tiny');
  const L = inputLength(cfg), C = cfg.leads.length;
  const x = new Float32Array(4 * C * L);
  for (let r = 0; r < 4; r++) {
    const rec = synthRecord(r, { seed: 11, fs: 250, seconds: L / 250 });
    cfg.leads.forEach((lead, c) => x.set(rec.signals[rec.leadNames.indexOf(LEAD_NAMES[lead])].subarray(0, L), (r * C + c) * L));
  }
  return x;
}

describe('model/export: the encoder alone, f32 or f16', function () {
  this.timeout(300_000);
  let ck: Checkpoint;
  before(async () => {
    ck = await tinyPretrained(3);
  });

  it('f32: the student bit for bit under the official keys, nothing else; the JSON records the source', () => {
    const { checkpoint: ex, info } = exportEncoder(ck, { source: 'runs/x/checkpoint-last' });
    const specs = encoderParamSpecs(ck.config);
    assert(JSON.stringify([...ex.tensors.keys()]) === JSON.stringify(specs.map(([n]) => n)), `keys ${[...ex.tensors.keys()]}`);
    const back = viaBytes(ex);
    for (const [name] of specs) assert(sameBits(back.tensors.get(name)!, ck.tensors.get(name)!), `${name}: not the student's bits`);
    const rec = back.state.extra?.encoderExport as typeof info;
    assert(back.state.extra?.kind === 'encoder-export' && back.state.step === ck.state.step && rec.dtype === 'f32' && rec.encoder === 'student' &&
      rec.source.checkpoint === 'runs/x/checkpoint-last' && rec.source.kind === 'pretrain' && rec.source.step === ck.state.step &&
      rec.preset === 'tiny' && rec.leads.join() === 'I,II,V1' && rec.tensors === specs.length && rec.bandpass === null, JSON.stringify(back.state));
    assert(JSON.stringify(back.config) === JSON.stringify(ck.config), 'config');
  });

  it('teacher: the EMA copy stored under teacher.', () => {
    const { checkpoint: ex } = exportEncoder(ck, { encoder: 'teacher' });
    let differs = false;
    for (const [name, t] of ex.tensors) {
      assert(sameBits(t, ck.tensors.get(TEACHER_PREFIX + name)!), `${name}: not the teacher's bits`);
      differs ||= !sameBits(t, ck.tensors.get(name)!);
    }
    assert(differs, 'the teacher differs from the student after training steps');
  });

  it("f16: each value is the f32 value's half rounding, half the bytes; the representation stays close to f32's", async () => {
    const engine = await getEngine();
    const f32 = exportEncoder(ck).checkpoint;
    const f16 = exportEncoder(ck, { dtype: 'f16' }).checkpoint;
    const back = viaBytes(f16);
    let n = 0;
    for (const [name, t] of back.tensors) {
      const want = f32.tensors.get(name)!.data as Float32Array;
      const got = asFloat32(t);
      assert(t.dtype === 'F16' && got.length === want.length, `${name}: ${t.dtype}`);
      for (let i = 0; i < want.length; i++) assert(Object.is(got[i], halfRound(want[i])), `${name}[${i}]: ${got[i]}, half rounding of ${want[i]} is ${halfRound(want[i])}`);
      n += want.length;
    }
    const size = (c: Checkpoint) => checkpointToBytes(c).tensors.length;
    const ratio = size(f16) / size(f32);
    assert(ratio > 0.5 && ratio < 0.53, `f16 file ${size(f16)} bytes, f32 ${size(f32)}: ratio ${ratio}`);
    // Representations of synthetic ECGs: the export's f32 encoder is the pretraining checkpoint's, the f16 one close.
    const cfg = ck.config;
    const x = engine.upload(ecgs(), [4, cfg.leads.length, inputLength(cfg)]);
    const tape = new Tape(engine);
    const rep = async (enc: Encoder) => {
      const r = tape.noGrad(() => engine.scope(() => enc.representation(tape, x)));
      const v = await engine.read(r);
      r.dispose();
      enc.dispose();
      return v;
    };
    const [ref, a, b] = [await rep(encoderOf(engine, viaBytes(ck), 1)), await rep(encoderOf(engine, viaBytes(f32), 2)), await rep(encoderOf(engine, back, 3))];
    x.dispose();
    assert(a.every((v, i) => v === ref[i]), 'f32 export: the same representation as the pretraining checkpoint');
    let maxAbs = 0, scale = 0;
    for (let i = 0; i < a.length; i++) [maxAbs, scale] = [Math.max(maxAbs, Math.abs(b[i] - a[i])), Math.max(scale, Math.abs(a[i]))];
    const rel = relError(b, a);
    console.log(`      f16 vs f32 export, ${n} weights, 4 synthetic ECGs × ${cfg.encoder.dim}: max |Δ| / max |r| = ${(maxAbs / scale).toExponential(2)}, ‖Δ‖/‖r‖ = ${rel.toExponential(2)}`);
    assert(maxAbs / scale < 1e-2 && rel < 1e-2 && maxAbs > 0, `f16 representation: max |Δ| ${maxAbs} (max |r| ${scale}), relative ${rel}`);
  });

  it('clear errors: no encoder, no teacher, a partial encoder, values beyond f16; pretraining does not resume from an export', async () => {
    const config = makeConfig('tiny');
    const other: Checkpoint = { config, state: { step: 1 }, tensors: new Map([['w', { dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) }]]) };
    expectThrow(() => exportEncoder(other, { source: 'some.ckpt' }), /some\.ckpt holds no encoder \(none of the 26 encoder tensors of the 'tiny' preset, e\.g\. W_P\.weight; it has 1 tensor\(s\): w\)/);
    const ex = exportEncoder(ck).checkpoint;
    expectThrow(() => exportEncoder(ex, { encoder: 'teacher', source: 'enc' }), /enc has no EMA teacher \(no 'teacher\.' tensors\): it is an exported encoder \(export\); only pretraining checkpoints carry one/);
    const partial = { ...ck, tensors: new Map(ck.tensors) };
    partial.tensors.delete('teacher.norm.bias');
    expectThrow(() => exportEncoder(partial, { encoder: 'teacher', source: 'p' }), /p: teacher encoder: 1 tensor problem\(s\):\n {2}missing teacher\.norm\.bias/);
    const big = { ...ex, tensors: new Map(ex.tensors) };
    big.tensors.set('norm.weight', { dtype: 'F32', shape: [32], data: new Float32Array(32).fill(1e5) });
    expectThrow(() => exportEncoder(big, { dtype: 'f16', source: 'b' }), /b: norm\.weight\[0\] = 100000 is beyond f16's range/);
    const model = new EcgJepa(await getEngine(), config, { seed: 0 });
    try {
      expectThrow(() => model.fromCheckpoint(ex), /the checkpoint is an exported encoder \(export\): .* pretraining cannot resume from it/);
    } finally {
      model.dispose();
    }
  });
});
