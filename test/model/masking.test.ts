import { Rng } from '../../engine/random.js';
import { makeConfig, type MaskConfig } from '../../model/config.js';
import { buildBatchMask, drawMask, equaliseMask, multiblockColumns, randomColumns } from '../../model/masking.js';
import { assert } from '../helpers.js';

const RANDOM: MaskConfig = { type: 'random', ratio: [0.6, 0.7], blocks: 4, perSample: false, lastPatchMaskable: true };
const BLOCK_REF: MaskConfig = { type: 'multiblock', ratio: [0.175, 0.225], blocks: 4, perSample: false, lastPatchMaskable: false };
const BLOCK_OURS: MaskConfig = { ...BLOCK_REF, lastPatchMaskable: true };

function checkPartition(m: ReturnType<typeof drawMask>): void {
  for (const s of m.samples) {
    const all = [...s.visible, ...s.masked].sort((a, b) => a - b);
    assert(all.length === m.patches && all.every((v, i) => v === i), 'visible ∪ masked = all columns, disjoint');
    assert(s.visible.every((v, i) => i === 0 || v > s.visible[i - 1]) && s.masked.every((v, i) => i === 0 || v > s.masked[i - 1]), 'sorted');
    assert(s.visible.length === m.numVisible && s.masked.length === m.numMasked, 'counts');
  }
}

describe('model/masking', () => {
  it('random: 30..34 of 50 columns masked, every count occurs, shared by the batch', () => {
    const rng = new Rng(1);
    const seen = new Set<number>();
    for (let i = 0; i < 400; i++) {
      const m = drawMask(rng, RANDOM, 3, 8, 50);
      checkPartition(m);
      assert(m.numMasked >= 30 && m.numMasked <= 34, `masked ${m.numMasked}`);
      assert(m.shared && m.samples.every((s) => s === m.samples[0]), 'one mask per batch');
      seen.add(m.numMasked);
    }
    assert(seen.size === 5, `counts seen: ${[...seen]}`);
  });

  it('deterministic per seed, different across seeds', () => {
    const a = drawMask(new Rng(42), BLOCK_OURS, 4, 8, 50);
    const b = drawMask(new Rng(42), BLOCK_OURS, 4, 8, 50);
    const c = drawMask(new Rng(43), BLOCK_OURS, 4, 8, 50);
    assert(JSON.stringify(a.samples) === JSON.stringify(b.samples) && a.visibleRows.every((v, i) => v === b.visibleRows[i]), 'same seed');
    let differ = false;
    for (let s = 43; s < 48 && !differ; s++) differ = JSON.stringify(drawMask(new Rng(s), BLOCK_OURS, 4, 8, 50).samples[0]) !== JSON.stringify(a.samples[0]);
    assert(differ && c.batch === 4, 'other seeds give other masks');
  });

  it('multiblock is the union of 4 blocks drawn as the reference draws them', () => {
    for (const last of [false, true]) {
      for (let seed = 0; seed < 50; seed++) {
        const got = multiblockColumns(new Rng(seed), 50, [0.175, 0.225], 4, last);
        const r = new Rng(seed);
        const want = new Array<boolean>(50).fill(false);
        for (let b = 0; b < 4; b++) {
          const len = Math.floor(50 * (0.175 + (0.225 - 0.175) * r.next()));
          assert(len >= 8 && len <= 11, `block length ${len}`);
          const start = r.int(last ? 50 - len + 1 : 50 - len);
          for (let i = start; i < start + len; i++) want[i] = true;
        }
        assert(JSON.stringify(got) === JSON.stringify(want), `seed ${seed}`);
      }
    }
  });

  it('multiblock, reference quirk: column 49 never masked, mean ≈ 54.8 %; ours can mask it', () => {
    const rng = new Rng(7);
    let sum = 0;
    const n = 3000;
    for (let i = 0; i < n; i++) {
      const m = multiblockColumns(rng, 50, [0.175, 0.225], 4, false);
      assert(!m[49], 'last patch masked under the reference rule');
      sum += m.filter(Boolean).length / 50;
    }
    assert(Math.abs(sum / n - 0.548) < 0.01, `mean masked ${sum / n}`);
    let lastMasked = 0;
    for (let i = 0; i < n; i++) if (multiblockColumns(rng, 50, [0.175, 0.225], 4, true)[49]) lastMasked++;
    assert(lastMasked > 0, 'last patch never masked with lastPatchMaskable');
  });

  it('per-sample random: one count per batch, columns differ between samples', () => {
    const rng = new Rng(3);
    const m = drawMask(rng, { ...RANDOM, perSample: true }, 6, 2, 50);
    checkPartition(m);
    assert(!m.shared && new Set(m.samples.map((s) => s.masked.join())).size > 1, 'samples differ');
  });

  it('per-sample multiblock: one count per batch, runs kept, reference rule never masks the last patch', () => {
    const rng = new Rng(5);
    for (let i = 0; i < 100; i++) {
      const m = drawMask(rng, { ...BLOCK_REF, perSample: true }, 5, 2, 50);
      checkPartition(m);
      assert(m.numMasked >= 8 && m.numMasked <= 44, `masked ${m.numMasked}`);
      for (const s of m.samples) assert(!s.masked.includes(49), 'last patch masked');
    }
    // Trimming and growing keep the column count exact and work from run edges.
    const base = [false, true, true, true, false, false, false, true, true, false];
    const grown = equaliseMask(new Rng(1), base, 7, false);
    assert(grown.filter(Boolean).length === 7 && !grown[9], 'grown');
    const shrunk = equaliseMask(new Rng(1), base, 2, false);
    assert(shrunk.filter(Boolean).length === 2, 'shrunk');
  });

  it('index arrays: hand-worked 3 leads × 4 patches, t1 and t2 masked, batch 2', () => {
    const m = buildBatchMask([[2, 1]], 2, 3, 4);
    assert(m.numVisible === 2 && m.numMasked === 2, 'counts');
    assert(JSON.stringify(Array.from(m.visibleTokens)) === '[0,3,4,7,8,11,0,3,4,7,8,11]', `visible ${m.visibleTokens}`);
    assert(JSON.stringify(Array.from(m.maskedTokens)) === '[1,2,5,6,9,10,1,2,5,6,9,10]', `masked ${m.maskedTokens}`);
    assert(JSON.stringify(Array.from(m.visibleRows)) === '[0,3,4,7,8,11,12,15,16,19,20,23]', `visible rows ${m.visibleRows}`);
    assert(JSON.stringify(Array.from(m.maskedRows)) === '[1,2,5,6,9,10,13,14,17,18,21,22]', `masked rows ${m.maskedRows}`);
    assert(JSON.stringify(Array.from(m.predictorOrder)) === '[0,3,1,2,0,3,1,2]', `order ${m.predictorOrder}`);
    const ps = buildBatchMask([[0], [3]], 2, 2, 4);
    assert(JSON.stringify(Array.from(ps.visibleRows)) === '[1,2,3,5,6,7,8,9,10,12,13,14]', `per-sample rows ${ps.visibleRows}`);
    assert(JSON.stringify(Array.from(ps.predictorOrder)) === '[1,2,3,0,0,1,2,3]', `per-sample order ${ps.predictorOrder}`);
  });

  it('refuses unequal counts, duplicates, out-of-range and empty masks', () => {
    const bad: [() => unknown, RegExp][] = [
      [() => buildBatchMask([[1], [1, 2]], 2, 3, 4), /sample 1 masks 2 columns, sample 0 masks 1/],
      [() => buildBatchMask([[1, 1]], 1, 3, 4), /column 1 masked twice/],
      [() => buildBatchMask([[4]], 1, 3, 4), /column 4 not in 0\.\.3/],
      [() => buildBatchMask([[]], 1, 3, 4), /need at least one visible and one masked/],
      [() => buildBatchMask([[0], [1], [2]], 2, 3, 4), /3 masks for a batch of 2/],
      [() => drawMask(new Rng(0), { ...RANDOM, ratio: [0.99, 1] }, 1, 1, 50), /random mask ratio/],
    ];
    for (const [fn, re] of bad) {
      let msg = '';
      try {
        fn();
      } catch (e) {
        msg = (e as Error).message;
      }
      assert(re.test(msg), `"${msg}" does not match ${re}`);
    }
  });

  it('tiny preset masks are drawable', () => {
    const cfg = makeConfig('tiny');
    const m = drawMask(new Rng(0), cfg.mask, cfg.optim.batchSize, cfg.leads.length, cfg.patches);
    checkPartition(m);
    assert(m.visibleTokens.length === cfg.optim.batchSize * cfg.leads.length * m.numVisible, 'sizes');
    assert(randomColumns(new Rng(0), 10, 6).filter(Boolean).length === 6, 'random count');
  });
});
