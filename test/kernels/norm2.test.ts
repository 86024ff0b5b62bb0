import { sumSquares } from '../../kernels/norm2.js';
import { Rng } from '../../engine/random.js';
import { assertClose, getEngine, poisoned, randomArray } from '../helpers.js';
import { bind, MODES, SIZES, type Mode } from './map-helpers.js';

function ref(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s;
}

describe('kernels/norm2', () => {
  it('sumSquares: Σx² against float64, set and accumulate, grid-stride sizes', async () => {
    const engine = await getEngine();
    const rng = new Rng(41);
    // 1,100,003 floats on the scalar path need more than 1024 workgroups of 256: the grid-stride loop runs
    const cases: [Mode, number, boolean][] = [];
    for (const mode of MODES) for (const n of SIZES) for (const acc of [false, true]) cases.push([mode, n, acc]);
    cases.push(['scalar', 1_100_003, false]);
    for (const [mode, n, acc] of cases) {
      const x = randomArray(rng, n, 0.3);
      const tx = engine.upload(x), to = acc ? engine.upload([2.5]) : poisoned(engine, [1]);
      sumSquares(engine.batch, bind(tx, n, mode), to.buffer, n, acc);
      assertClose(await engine.read(to), [ref(x) + (acc ? 2.5 : 0)], 1e-5, `sumSquares ${mode} n=${n} acc=${acc}`);
      [tx, to].forEach((t) => t.dispose());
    }
  });

  it('sumSquares over several tensors into one total (grad-norm use), n = 0 included', async () => {
    const engine = await getEngine();
    const rng = new Rng(42);
    const xs = [7, 0, 4096, 31].map((n) => randomArray(rng, n));
    const ts = xs.map((x) => engine.upload(x.length ? x : [123]));
    const out = poisoned(engine, [1]);
    xs.forEach((x, k) => sumSquares(engine.batch, ts[k].buffer, out.buffer, x.length, k > 0));
    assertClose(await engine.read(out), [xs.reduce((s, x) => s + ref(x), 0)], 1e-5, 'sum over tensors');
    sumSquares(engine.batch, ts[1].buffer, out.buffer, 0);
    assertClose(await engine.read(out), [0], 1e-30, 'n = 0 gives 0');
    [...ts, out].forEach((t) => t.dispose());
  });
});
