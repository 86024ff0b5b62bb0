import { emaUpdate } from '../../kernels/ema.js';
import { Rng } from '../../engine/random.js';
import { assert, getEngine, randomArray } from '../helpers.js';
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
            emaUpdate(engine.batch, [{ teacher: bind(tt, n, mode), student: bind(ts, n, mode), n }], m);
            ts.dispose();
            for (let i = 0; i < n; i++) ref[i] = m * ref[i] + (1 - m) * s[i];
          }
          checkPadded(await engine.read(tt), ref, n, 1e-6, `emaUpdate ${mode} n=${n} m=${m}`);
          tt.dispose();
        }
  });

  it('many pairs in one call: every size, both paths in one list, more pairs than one dispatch takes', async () => {
    const engine = await getEngine();
    const rng = new Rng(63);
    const m = 0.9;
    // 2 × the sizes (20 pairs): more than a dispatch's 8 (or the device's storage-buffer limit / 2),
    // the vec4 and the scalar bindings mixed (a dispatch with one scalar binding runs scalar), n = 0 skipped.
    const cases = [...SIZES, 0, ...SIZES].map((n, k) => ({ n, mode: MODES[k % 2], t0: randomArray(rng, n), s: randomArray(rng, n) }));
    const ts = cases.map((c) => ({ t: padded(engine, c.t0, c.n), s: engine.upload(c.s.length ? c.s : new Float32Array(1)) }));
    const before = engine.batch.dispatches;
    emaUpdate(engine.batch, cases.map((c, k) => ({ teacher: bind(ts[k].t, c.n, c.mode), student: bind(ts[k].s, c.n, c.mode), n: c.n })), m);
    const perDispatch = Math.min(8, Math.floor(engine.device.limits.maxStorageBuffersPerShaderStage / 2));
    const want = Math.ceil((cases.length - 1) / perDispatch);
    assert(engine.batch.dispatches - before === want, `${engine.batch.dispatches - before} dispatches for ${cases.length - 1} pairs, want ${want}`);
    for (const [k, c] of cases.entries()) checkPadded(await engine.read(ts[k].t), Array.from(c.t0, (v, i) => m * v + (1 - m) * c.s[i]), c.n, 1e-6, `pair ${k} (${c.mode}, n=${c.n})`);
    ts.forEach((x) => [x.t, x.s].forEach((t) => t.dispose()));
  });

  it('momentum 1 keeps the teacher, 0 copies the student; overlapping bindings are refused', async () => {
    const engine = await getEngine();
    const rng = new Rng(62);
    const n = 37, t0 = randomArray(rng, n), s = randomArray(rng, n);
    const a = padded(engine, t0, n), b = padded(engine, t0, n), ts = engine.upload(s);
    emaUpdate(engine.batch, [{ teacher: a.buffer, student: ts.buffer, n }], 1);
    emaUpdate(engine.batch, [{ teacher: b.buffer, student: ts.buffer, n }], 0);
    checkPadded(await engine.read(a), t0, n, 1e-30, 'momentum 1');
    checkPadded(await engine.read(b), s, n, 1e-30, 'momentum 0');
    expectThrow(() => emaUpdate(engine.batch, [{ teacher: a.buffer, student: a.buffer, n }], 0.9), 'emaUpdate: pair 0 teacher must not share a buffer with pair 0 student');
    // across pairs of one dispatch: a teacher read as another pair's student, or written twice
    expectThrow(() => emaUpdate(engine.batch, [{ teacher: a.buffer, student: ts.buffer, n }, { teacher: b.buffer, student: a.buffer, n }], 0.9), 'emaUpdate: pair 0 teacher must not share a buffer with pair 1 student');
    expectThrow(() => emaUpdate(engine.batch, [{ teacher: a.buffer, student: ts.buffer, n }, { teacher: a.buffer, student: ts.buffer, n }], 0.9), 'emaUpdate: pair 0 teacher and pair 1 teacher share memory');
    expectThrow(() => emaUpdate(engine.batch, [{ teacher: a.buffer, student: ts.buffer, n }], 1.5), 'emaUpdate: momentum must be in [0, 1]');
    [a, b, ts].forEach((t) => t.dispose());
  });
});
