import { emaUpdate } from '../../kernels/ema.js';
import { Rng } from '../../engine/random.js';
import { getEngine, randomArray } from '../helpers.js';
import { bind, checkPadded, expectThrow, MODES, padded, SIZES } from './map-helpers.js';

describe('kernels/ema', () => {
  it('teacher = m·teacher + (1 − m)·student, 3 updates, against float64', async () => {
    const engine = await getEngine();
    const rng = new Rng(61);
    for (const mode of MODES)
      for (const n of SIZES)
        for (const m of [0.996, 0.5]) {
          const t0 = randomArray(rng, n);
          const ref = Float64Array.from(t0);
          const tt = padded(engine, t0, n);
          for (let k = 0; k < 3; k++) {
            const s = randomArray(rng, n);
            const ts = engine.upload(s);
            emaUpdate(engine.batch, bind(tt, n, mode), bind(ts, n, mode), n, m);
            ts.dispose();
            for (let i = 0; i < n; i++) ref[i] = m * ref[i] + (1 - m) * s[i];
          }
          checkPadded(await engine.read(tt), ref, n, 1e-6, `emaUpdate ${mode} n=${n} m=${m}`);
          tt.dispose();
        }
  });

  it('momentum 1 keeps the teacher, 0 copies the student', async () => {
    const engine = await getEngine();
    const rng = new Rng(62);
    const n = 37, t0 = randomArray(rng, n), s = randomArray(rng, n);
    const a = padded(engine, t0, n), b = padded(engine, t0, n), ts = engine.upload(s);
    emaUpdate(engine.batch, a.buffer, ts.buffer, n, 1);
    emaUpdate(engine.batch, b.buffer, ts.buffer, n, 0);
    checkPadded(await engine.read(a), t0, n, 1e-30, 'momentum 1');
    checkPadded(await engine.read(b), s, n, 1e-30, 'momentum 0');
    expectThrow(() => emaUpdate(engine.batch, a.buffer, a.buffer, n, 0.9), 'emaUpdate: teacher must not share memory with student');
    expectThrow(() => emaUpdate(engine.batch, a.buffer, ts.buffer, n, 1.5), 'emaUpdate: momentum must be in [0, 1]');
    [a, b, ts].forEach((t) => t.dispose());
  });
});
