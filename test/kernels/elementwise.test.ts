import { binary, type BinaryOp } from '../../kernels/elementwise.js';
import { Rng } from '../../engine/random.js';
import { assertClose, getEngine, poisoned, randomArray } from '../helpers.js';

describe('kernels/elementwise', () => {
  for (const op of ['add', 'sub', 'mul'] as BinaryOp[]) {
    it(`${op}: every element against a float64 reference`, async () => {
      const engine = await getEngine();
      const rng = new Rng(7);
      for (const n of [1, 7, 257, 1000, 65537]) {
        const a = randomArray(rng, n), b = randomArray(rng, n);
        const alpha = 0.75;
        const ta = engine.upload(a), tb = engine.upload(b), out = poisoned(engine, [n]);
        binary(engine.batch, op, ta.buffer, tb.buffer, out.buffer, n, alpha);
        const got = await engine.read(out);
        const ref = new Float64Array(n);
        for (let i = 0; i < n; i++) ref[i] = op === 'add' ? a[i] + alpha * b[i] : op === 'sub' ? a[i] - alpha * b[i] : a[i] * alpha * b[i];
        assertClose(got, ref, 1e-6, `${op} n=${n}`);
        [ta, tb, out].forEach((t) => t.dispose());
      }
    });
  }
});
