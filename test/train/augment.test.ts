// Fine-tuning augmentations: each operation does what its name says, draws are seeded, and the
// warm-up + cosine schedule has its corners where expected. Pure computation: both runners.
import { Rng } from '../../engine/random.js';
import { AUGMENTATIONS, applyAugmentation, randAugment } from '../../train/eval/augment.js';
import { warmupCosine } from '../../train/eval/finetune.js';
import { assert } from '../helpers.js';

const C = 3, L = 200;
function record(): Float32Array {
  const x = new Float32Array(C * L);
  for (let c = 0; c < C; c++) for (let i = 0; i < L; i++) x[c * L + i] = Math.sin(i / 7 + c) + 0.1 * (c + 1);
  return x;
}
const sorted = (a: ArrayLike<number>) => Array.from(a).sort((p, q) => p - q);

describe('eval: fine-tuning augmentations', () => {
  it('flip negates, erase zeroes exactly one lead, shift rotates every lead alike', () => {
    const x = record();
    const f = x.slice();
    applyAugmentation('flip', f, C, L, 1, new Rng(1));
    assert(f.every((v, i) => v === -x[i]), 'flip = polarity inversion');
    const e = x.slice();
    applyAugmentation('erase', e, C, L, 1, new Rng(2));
    const zeroLeads = [0, 1, 2].filter((c) => e.subarray(c * L, (c + 1) * L).every((v) => v === 0));
    assert(zeroLeads.length === 1, `one lead erased, got ${zeroLeads}`);
    assert([0, 1, 2].filter((c) => c !== zeroLeads[0]).every((c) => e.subarray(c * L, (c + 1) * L).every((v, i) => v === x[c * L + i])), 'others untouched');
    const s = x.slice();
    applyAugmentation('shift', s, C, L, 1, new Rng(3));
    let k = -1;
    for (let d = 0; d < L && k < 0; d++) if (s.subarray(0, L).every((v, i) => v === x[((i - d) % L + L) % L])) k = d;
    assert(k > 0, 'lead 0 is a rotation of itself');
    for (let c = 1; c < C; c++) assert(s.subarray(c * L, (c + 1) * L).every((v, i) => v === x[c * L + (((i - k) % L) + L) % L]), `lead ${c} rotated by the same ${k}`);
    assert(k <= 0.1 * L || k >= 0.9 * L, `shift ${k} within ±10 %`);
  });

  it('cutout zeroes one span across leads; drop zeroes scattered samples; noise ops only add', () => {
    const x = record();
    const c = x.slice();
    applyAugmentation('cutout', c, C, L, 1, new Rng(4));
    const z = [...c.subarray(0, L)].map((v, i) => (v === 0 && x[i] !== 0 ? i : -1)).filter((i) => i >= 0);
    assert(z.length >= 1 && z.length <= 0.2 * L && z[z.length - 1] - z[0] === z.length - 1, `one contiguous span, got ${z.length}`);
    for (let l = 1; l < C; l++) assert(z.every((i) => c[l * L + i] === 0), 'same span on every lead');
    const d = x.slice();
    applyAugmentation('drop', d, C, L, 1, new Rng(5));
    const dropped = d.filter((v, i) => v === 0 && x[i] !== 0).length;
    assert(dropped > 0 && dropped < 0.25 * C * L, `about 10 % dropped, got ${dropped}`);
    for (const op of ['sine', 'partial_sine', 'partial_white_noise'] as const) {
      const y = x.slice();
      applyAugmentation(op, y, C, L, 1, new Rng(6));
      let diff = 0;
      for (let i = 0; i < y.length; i++) diff = Math.max(diff, Math.abs(y[i] - x[i]));
      assert(diff > 0 && diff < 2, `${op} adds a bounded signal (max change ${diff})`);
    }
    assert(sorted(x).length === C * L, 'sanity');
  });

  it('randAugment is seeded, draws from the list and respects p', () => {
    const a = record(), b = record();
    const oa = randAugment(a, C, L, new Rng(9), { ops: 4, p: 1 });
    const ob = randAugment(b, C, L, new Rng(9), { ops: 4, p: 1 });
    assert(oa.length === 4 && JSON.stringify(oa) === JSON.stringify(ob) && a.every((v, i) => v === b[i]), 'same seed, same result');
    assert(oa.every((o) => (AUGMENTATIONS as readonly string[]).includes(o)), `ops ${oa}`);
    const n = record();
    assert(randAugment(n, C, L, new Rng(1), { p: 0 }).length === 0 && n.every((v, i) => v === record()[i]), 'p = 0 leaves the record alone');
    const only = randAugment(record(), C, L, new Rng(2), { ops: 5, p: 1, allowed: ['flip'] });
    assert(only.every((o) => o === 'flip'), 'allowed list');
  });

  it('warm-up then half-cycle cosine to 0', () => {
    assert(warmupCosine(0, 10, 3, 1) === 0 && Math.abs(warmupCosine(1.5, 10, 3, 1) - 0.5) < 1e-12, 'linear warm-up');
    assert(Math.abs(warmupCosine(3, 10, 3, 1) - 1) < 1e-12, 'peak after warm-up');
    assert(Math.abs(warmupCosine(6.5, 10, 3, 1) - 0.5) < 1e-12 && Math.abs(warmupCosine(10, 10, 3, 1)) < 1e-12, 'cosine to 0');
  });
});
