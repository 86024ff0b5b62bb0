import { cropaMask, subMatrix } from '../../model/cropa.js';
import { assert } from '../helpers.js';

// The reference's worked example: 3 leads × 4 patches, tokens L0t0..L0t3, L1t0..L1t3, L2t0..L2t3.
const EXAMPLE = `
1 1 1 1 1 0 0 0 1 0 0 0
1 1 1 1 0 1 0 0 0 1 0 0
1 1 1 1 0 0 1 0 0 0 1 0
1 1 1 1 0 0 0 1 0 0 0 1
1 0 0 0 1 1 1 1 1 0 0 0
0 1 0 0 1 1 1 1 0 1 0 0
0 0 1 0 1 1 1 1 0 0 1 0
0 0 0 1 1 1 1 1 0 0 0 1
1 0 0 0 1 0 0 0 1 1 1 1
0 1 0 0 0 1 0 0 1 1 1 1
0 0 1 0 0 0 1 0 1 1 1 1
0 0 0 1 0 0 0 1 1 1 1 1`;

describe('model/cropa', () => {
  it('3 leads × 4 patches equals the worked example (6 ones per row)', () => {
    const want = EXAMPLE.trim().split(/\s+/).map(Number);
    const m = cropaMask(3, 4);
    assert(m.length === 144 && want.length === 144, 'size');
    m.forEach((v, i) => assert(v === want[i], `entry (${Math.floor(i / 12)}, ${i % 12}) is ${v}, want ${want[i]}`));
    for (let r = 0; r < 12; r++) assert(m.subarray(r * 12, r * 12 + 12).reduce((a, b) => a + b, 0) === 6, `row ${r}`);
  });

  it('t1, t2 masked: the 6 × 6 sub-matrix is CroPA over 2 columns; L0t0 sees L0t0, L0t3, L1t0, L2t0', () => {
    const keep = [0, 3, 4, 7, 8, 11]; // L0t0 L0t3 L1t0 L1t3 L2t0 L2t3
    const sub = subMatrix(cropaMask(3, 4), 12, keep);
    const direct = cropaMask(3, 2);
    sub.forEach((v, i) => assert(v === direct[i], `entry ${i}`));
    assert(JSON.stringify(Array.from(sub.subarray(0, 6))) === '[1,1,1,0,1,0]', 'row L0t0');
  });

  it('base: each of 400 queries sees 57 keys (14.25 %), symmetric', () => {
    const m = cropaMask(8, 50);
    let total = 0;
    for (let q = 0; q < 400; q++) {
      let s = 0;
      for (let k = 0; k < 400; k++) {
        s += m[q * 400 + k];
        assert(m[q * 400 + k] === m[k * 400 + q], `asymmetric at ${q},${k}`);
      }
      assert(s === 57, `query ${q} sees ${s}`);
      total += s;
    }
    assert(total / 160000 === 0.1425, 'fraction');
  });
});
