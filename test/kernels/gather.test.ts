import { gatherRows, scatterRows } from '../../kernels/gather.js';
import { Rng } from '../../engine/random.js';
import { assert, assertClose, getEngine, poisoned, randomArray } from '../helpers.js';

// [rows, dim, tableRows]: dim of every residue mod 4, 1 and primes.
const CASES: [number, number, number][] = [[1, 1, 1], [5, 3, 7], [13, 8, 17], [37, 12, 40], [101, 5, 257], [64, 768, 70], [3, 2, 3]];

function gatherRef(src: ArrayLike<number>, idx: ArrayLike<number>, dim: number, srcRows: number): Float64Array {
  const out = new Float64Array(idx.length * dim);
  for (let i = 0; i < idx.length; i++)
    for (let c = 0; c < dim; c++) out[i * dim + c] = idx[i] < srcRows ? src[idx[i] * dim + c] : NaN;
  return out;
}

/** dst (+)= src scattered; rows with an out-of-range index are skipped. */
function scatterRef(src: ArrayLike<number>, idx: ArrayLike<number>, dst0: ArrayLike<number>, dim: number, dstRows: number, acc: boolean): Float64Array {
  const out = Float64Array.from(dst0);
  for (let i = 0; i < idx.length; i++) {
    if (idx[i] >= dstRows) continue;
    for (let c = 0; c < dim; c++) out[idx[i] * dim + c] = (acc ? out[idx[i] * dim + c] : 0) + src[i * dim + c];
  }
  return out;
}

/** `rows` distinct indices in [0, tableRows) (rows ≤ tableRows). */
function distinct(rng: Rng, rows: number, tableRows: number): Uint32Array {
  const all = Array.from({ length: tableRows }, (_, i) => i);
  for (let i = tableRows - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [all[i], all[j]] = [all[j], all[i]];
  }
  return Uint32Array.from(all.slice(0, rows));
}

describe('kernels/gather', () => {
  it('gatherRows: dst[i] = src[idx[i]], repeated indices allowed', async () => {
    const engine = await getEngine();
    const rng = new Rng(21);
    for (const [rows, dim, srcRows] of CASES) {
      const src = randomArray(rng, srcRows * dim);
      const idx = Uint32Array.from({ length: rows }, () => rng.int(srcRows));
      const ts = engine.upload(src), ti = engine.upload(idx, [rows], 'u32'), td = poisoned(engine, [rows * dim]);
      gatherRows(engine.batch, ts.buffer, ti.buffer, td.buffer, { rows, dim, srcRows });
      assertClose(await engine.read(td), gatherRef(src, idx, dim, srcRows), 1e-7, `gatherRows ${rows}x${dim} from ${srcRows}`);
      [ts, ti, td].forEach((t) => t.dispose());
    }
  });

  it('gatherRows: an out-of-range index gives a NaN row, the others are right', async () => {
    const engine = await getEngine();
    const dim = 6, srcRows = 4;
    const src = Float32Array.from({ length: srcRows * dim }, (_, i) => i);
    const idx = Uint32Array.from([3, 4, 0, 0xffffffff]);
    const ts = engine.upload(src), ti = engine.upload(idx, [4], 'u32'), td = engine.zeros([4 * dim]);
    gatherRows(engine.batch, ts.buffer, ti.buffer, td.buffer, { rows: 4, dim, srcRows });
    const got = await engine.read(td), ref = gatherRef(src, idx, dim, srcRows);
    for (let i = 0; i < got.length; i++) assert(Object.is(got[i], ref[i]) || (Number.isNaN(got[i]) && Number.isNaN(ref[i])), `element ${i}: got ${got[i]}, want ${ref[i]}`);
    [ts, ti, td].forEach((t) => t.dispose());
  });

  for (const acc of [false, true])
    it(`scatterRows${acc ? ' accumulate' : ''}: dst[idx[i]] ${acc ? '+' : ''}= src[i], other rows untouched`, async () => {
      const engine = await getEngine();
      const rng = new Rng(22 + Number(acc));
      for (const [rows, dim, dstRows] of CASES) {
        const src = randomArray(rng, rows * dim), dst0 = randomArray(rng, dstRows * dim);
        const idx = distinct(rng, rows, dstRows);
        if (rows > 2) idx[1] = dstRows + 5; // skipped
        const ts = engine.upload(src), ti = engine.upload(idx, [rows], 'u32'), td = engine.upload(dst0);
        scatterRows(engine.batch, ts.buffer, ti.buffer, td.buffer, { rows, dim, dstRows, accumulate: acc });
        assertClose(await engine.read(td), scatterRef(src, idx, dst0, dim, dstRows, acc), 1e-6, `scatterRows acc=${acc} ${rows}x${dim} into ${dstRows}`);
        [ts, ti, td].forEach((t) => t.dispose());
      }
    });

  it('the gradient of gather is scatter-accumulate (reference checked by finite differences)', async () => {
    // L(x) = Σ w ⊙ gather(x); dL/dx = scatterAccumulate(w) into zeros.
    const rng = new Rng(24);
    const rows = 9, dim = 3, srcRows = 11;
    const x = Array.from(randomArray(rng, srcRows * dim)), w = Array.from(randomArray(rng, rows * dim));
    const idx = distinct(rng, rows, srcRows);
    const L = (v: number[]) => gatherRef(v, idx, dim, srcRows).reduce((s, g, i) => s + g * w[i], 0);
    const grad = scatterRef(w, idx, new Float64Array(srcRows * dim), dim, srcRows, true);
    const h = 1e-4;
    for (let k = 0; k < x.length; k++) {
      const xp = x.slice(), xm = x.slice();
      xp[k] += h;
      xm[k] -= h;
      const fd = (L(xp) - L(xm)) / (2 * h);
      assert(Math.abs(fd - grad[k]) < 1e-9, `finite difference at ${k}: ${fd} vs ${grad[k]}`);
    }
    // and the GPU pair satisfies it: <gather(x), w> = <x, scatter(w)>
    const engine = await getEngine();
    const tx = engine.upload(x), ti = engine.upload(idx, [rows], 'u32'), tw = engine.upload(w), tg = poisoned(engine, [rows * dim]), ts = engine.zeros([srcRows * dim]);
    gatherRows(engine.batch, tx.buffer, ti.buffer, tg.buffer, { rows, dim, srcRows });
    scatterRows(engine.batch, tw.buffer, ti.buffer, ts.buffer, { rows, dim, dstRows: srcRows, accumulate: true });
    assertClose(await engine.read(ts), grad, 1e-7, 'scatter of the upstream gradient');
    [tx, ti, tw, tg, ts].forEach((t) => t.dispose());
  });

  it('rejects bindings too small for the sizes', async () => {
    const engine = await getEngine();
    const t = engine.zeros([8]), i = engine.zeros([2], 'u32');
    let msg = '';
    try {
      gatherRows(engine.batch, t.buffer, i.buffer, t.buffer, { rows: 2, dim: 100, srcRows: 1 });
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(msg.startsWith('gatherRows: src binding holds') && msg.includes('rows=2, dim=100, srcRows=1'), `got: ${msg}`);
    [t, i].forEach((x) => x.dispose());
  });
});
