import { castF16ToF32, castF32ToF16 } from '../../kernels/cast.js';
import { layerNormBackward, layerNormForward, type LayerNormBackwardState } from '../../kernels/layernorm.js';
import { KernelProfiler } from '../../kernels/profiler.js';
import { subgroupRows } from '../../kernels/rows.js';
import { Rng } from '../../engine/random.js';
import type { Tensor } from '../../engine/tensor.js';
import { assert, assertClose, expectThrow, getEngine, poisoned, randomArray } from '../helpers.js';
import { dot, f64, layerNormBackwardRef, layerNormRef, numericGrad, withGridLimit, withoutSubgroups } from './norm-ref.js';

const TOL = 1e-5;

/** Rows with an offset and a spread that differ per row, so mean and variance both matter. (Large
 *  offsets over small spreads make dx ill-conditioned in fp32 itself — the stored mean loses the
 *  bits — so they stay moderate.) */
function rowsData(rng: Rng, rows: number, dim: number): Float32Array {
  const x = randomArray(rng, rows * dim);
  for (let r = 0; r < rows; r++) {
    const shift = rng.uniform(-1, 1), spread = rng.uniform(0.5, 2);
    for (let c = 0; c < dim; c++) x[r * dim + c] = shift + spread * x[r * dim + c];
  }
  return x;
}

// 1, primes, a 768 row (the model's width), 513 (one past a multiple of the workgroup), 4099 (past
// the register cache: the re-reading variant). Short rows take the one-subgroup-per-row kernel where
// there are subgroups (f32 loads; vec4 where dim % 4 == 0: 12, 96, 256), rows not a multiple of its
// rows per workgroup; past its register cap are 256, 513 and 768 at subgroup size 4 (SwiftShader),
// 513 and 768 at 8 (lavapipe), none at 32. Few distinct layouts (rows.ts rowLayout, subgroupRows),
// since each is a pipeline to compile. (dim 2–3 rows are ill-conditioned for dx even in exact fp32.)
const SHAPES: [number, number][] = [[1, 1], [1, 7], [3, 31], [5, 768], [13, 513], [2, 4099], [70, 5], [131, 12], [37, 96], [9, 256]];

async function checkForward(shapes: [number, number][], seed: number): Promise<void> {
  const engine = await getEngine();
  const rng = new Rng(seed);
  for (const [rows, dim] of shapes) {
    for (const mode of ['affine', 'plain', 'gamma-only'] as const) {
      const x = rowsData(rng, rows, dim);
      const gamma = mode !== 'plain' ? randomArray(rng, dim) : undefined;
      const beta = mode === 'affine' ? randomArray(rng, dim) : undefined;
      const eps = mode === 'gamma-only' ? 1e-3 : 1e-5;
      const tx = engine.upload(x), y = poisoned(engine, [rows * dim]), mean = poisoned(engine, [rows]), rstd = poisoned(engine, [rows]);
      const tg = gamma && engine.upload(gamma), tb = beta && engine.upload(beta);
      layerNormForward(engine.batch, { x: tx.buffer, y: y.buffer, mean: mean.buffer, rstd: rstd.buffer, gamma: tg?.buffer, beta: tb?.buffer }, { rows, dim, eps: mode === 'gamma-only' ? eps : undefined });
      const ref = layerNormRef(x, rows, dim, gamma, beta, eps);
      const what = `${mode} rows=${rows} dim=${dim}`;
      assertClose(await engine.read(y), ref.y, TOL, `y ${what}`);
      assertClose(await engine.read(mean), ref.mean, TOL, `mean ${what}`);
      assertClose(await engine.read(rstd), ref.rstd, TOL, `rstd ${what}`);
      [tx, y, mean, rstd, tg, tb].forEach((t) => t?.dispose());
    }
  }
}

/** The f16 output against the f32 one cast (the same bits), mean and rstd the same too; even dims. */
async function checkForwardHalf(shapes: [number, number][], seed: number): Promise<void> {
  const engine = await getEngine();
  const rng = new Rng(seed);
  const raw = async (t: Tensor) => new Uint32Array(await engine.readRaw(t));
  for (const [rows, dim] of shapes)
    for (const affine of [true, false]) {
      const n = rows * dim;
      const tx = engine.upload(rowsData(rng, rows, dim));
      const tg = affine ? engine.upload(randomArray(rng, dim)) : undefined, tb = affine ? engine.upload(randomArray(rng, dim)) : undefined;
      const y32 = poisoned(engine, [n]), y16 = engine.upload(new Uint16Array(n).fill(0x7e00), [n], 'f16'), cast = engine.empty([n], 'f16');
      const stats = [0, 1, 2, 3].map(() => poisoned(engine, [rows]));
      const run = (y: Tensor, mean: Tensor, rstd: Tensor, output: 'f32' | 'f16') =>
        layerNormForward(engine.batch, { x: tx.buffer, y: y.buffer, mean: mean.buffer, rstd: rstd.buffer, gamma: tg?.buffer, beta: tb?.buffer }, { rows, dim, output });
      run(y32, stats[0], stats[1], 'f32');
      run(y16, stats[2], stats[3], 'f16');
      castF32ToF16(engine.batch, y32.buffer, cast.buffer, n);
      const what = `rows=${rows} dim=${dim}${affine ? ' affine' : ''}`;
      const [got, want] = [await raw(y16), await raw(cast)];
      const bad = want.findIndex((w, i) => got[i] !== w);
      assert(bad < 0, `${what}: f16 y word ${bad} is ${got[bad]?.toString(16)}, the cast gives ${want[bad]?.toString(16)}`);
      for (const i of [0, 1]) assert((await raw(stats[i])).join() === (await raw(stats[i + 2])).join(), `${what}: ${['mean', 'rstd'][i]} differs with an f16 y`);
      [tx, tg, tb, y32, y16, cast, ...stats].forEach((t) => t?.dispose());
    }
}

async function checkBackward(shapes: [number, number][], seed: number, opts: { rowsPerSubgroup?: number; state?: LayerNormBackwardState } = {}): Promise<void> {
  const engine = await getEngine();
  const rng = new Rng(seed);
  for (const [rows, dim] of shapes) {
    // acc: everything added to; dx-acc: dx added to (the residual stream's gradient), dgamma and dbeta set
    for (const mode of ['affine', 'plain', 'affine-acc', 'dx-only', 'dx-acc'] as const) {
      const x = rowsData(rng, rows, dim), dy = randomArray(rng, rows * dim);
      const affine = mode !== 'plain';
      const gamma = affine ? randomArray(rng, dim) : undefined;
      const wantParams = mode !== 'dx-only';
      const acc = mode === 'affine-acc';
      const prior = acc ? [randomArray(rng, dim), randomArray(rng, dim)] : null;
      const dxPrior = acc || mode === 'dx-acc' ? randomArray(rng, rows * dim) : null;
      // mean/rstd from the forward kernel, as the op uses them
      const tx = engine.upload(x), y = engine.empty([rows * dim]), mean = engine.empty([rows]), rstd = engine.empty([rows]);
      layerNormForward(engine.batch, { x: tx.buffer, y: y.buffer, mean: mean.buffer, rstd: rstd.buffer }, { rows, dim });
      const tdy = engine.upload(dy), dx = dxPrior ? engine.upload(dxPrior) : poisoned(engine, [rows * dim]), tg = gamma && engine.upload(gamma);
      let dg: Tensor | undefined, db: Tensor | undefined;
      if (wantParams) {
        dg = prior ? engine.upload(prior[0]) : poisoned(engine, [dim]);
        db = prior ? engine.upload(prior[1]) : poisoned(engine, [dim]);
      }
      layerNormBackward(
        engine.batch,
        { dy: tdy.buffer, x: tx.buffer, mean: mean.buffer, rstd: rstd.buffer, dx: dx.buffer, gamma: tg?.buffer, dgamma: dg?.buffer, dbeta: db?.buffer },
        { rows, dim, accumulateParams: acc, accumulateDx: !!dxPrior, ...opts },
      );
      const ref = layerNormBackwardRef(dy, x, rows, dim, gamma);
      const what = `${mode} rows=${rows} dim=${dim} ${JSON.stringify(opts)}`;
      assertClose(await engine.read(dx), ref.dx.map((v, i) => v + (dxPrior ? dxPrior[i] : 0)), TOL, `dx ${what}`);
      if (dg && db) {
        const wantG = ref.dgamma.map((v, i) => v + (prior ? prior[0][i] : 0));
        const wantB = ref.dbeta.map((v, i) => v + (prior ? prior[1][i] : 0));
        assertClose(await engine.read(dg), wantG, TOL, `dgamma ${what}`);
        assertClose(await engine.read(db), wantB, TOL, `dbeta ${what}`);
      }
      [tx, y, mean, rstd, tdy, dx, tg, dg, db].forEach((t) => t?.dispose());
    }
  }
}

/** The backward on an f16 dy against the f32 backward on its values: dx, dgamma and dbeta the same
 *  bits (widening is exact); odd sizes read their last half from a word's low bits. */
async function checkBackwardHalf(shapes: [number, number][], seed: number, state?: LayerNormBackwardState): Promise<void> {
  const engine = await getEngine();
  const rng = new Rng(seed);
  const raw = async (t: Tensor) => new Uint32Array(await engine.readRaw(t));
  for (const [rows, dim] of shapes) {
    const n = rows * dim;
    const tx = engine.upload(rowsData(rng, rows, dim)), tg = engine.upload(randomArray(rng, dim));
    const y = engine.empty([n]), mean = engine.empty([rows]), rstd = engine.empty([rows]);
    layerNormForward(engine.batch, { x: tx.buffer, y: y.buffer, mean: mean.buffer, rstd: rstd.buffer, gamma: tg.buffer }, { rows, dim });
    const dy32 = engine.upload(randomArray(rng, n)), dy16 = engine.empty([n], 'f16');
    castF32ToF16(engine.batch, dy32.buffer, dy16.buffer, n);
    castF16ToF32(engine.batch, dy16.buffer, dy32.buffer, n);
    const outs = [0, 1].map(() => ({ dx: poisoned(engine, [n]), dg: poisoned(engine, [dim]), db: poisoned(engine, [dim]) }));
    [dy32, dy16].forEach((dy, i) =>
      layerNormBackward(
        engine.batch,
        { dy: dy.buffer, x: tx.buffer, mean: mean.buffer, rstd: rstd.buffer, dx: outs[i].dx.buffer, gamma: tg.buffer, dgamma: outs[i].dg.buffer, dbeta: outs[i].db.buffer },
        { rows, dim, dy: i ? 'f16' : 'f32', ...(state ? { state } : {}) },
      ),
    );
    for (const k of ['dx', 'dg', 'db'] as const) {
      const [want, got] = [await raw(outs[0][k]), await raw(outs[1][k])];
      const bad = want.findIndex((w, i) => got[i] !== w);
      assert(bad < 0, `rows=${rows} dim=${dim}: ${k}[${bad}] from the f16 dy is ${got[bad]?.toString(16)}, from its f32 values ${want[bad]?.toString(16)}`);
    }
    assert((await engine.read(outs[0].dx)).every(Number.isFinite), `rows=${rows} dim=${dim}: dx written`);
    [tx, tg, y, mean, rstd, dy32, dy16, ...outs.flatMap((o) => [o.dx, o.dg, o.db])].forEach((t) => t.dispose());
  }
}

describe('kernels/layernorm', () => {
  it('CPU reference backward matches finite differences', () => {
    const rng = new Rng(1);
    const rows = 3, dim = 7;
    const x = f64(rowsData(rng, rows, dim)), g = f64(randomArray(rng, dim)), b = f64(randomArray(rng, dim)), dy = f64(randomArray(rng, rows * dim));
    for (const affine of [true, false]) {
      const ref = layerNormBackwardRef(dy, x, rows, dim, affine ? g : undefined);
      const loss = (xv: Float64Array, gv: Float64Array, bv: Float64Array) => dot(dy, layerNormRef(xv, rows, dim, affine ? gv : undefined, affine ? bv : undefined).y);
      assertClose(ref.dx, numericGrad((p) => loss(p, g, b), x.slice()), 1e-7, `dx (affine=${affine})`);
      if (!affine) continue; // the parameter gradients are only defined for the affine form
      assertClose(ref.dgamma, numericGrad((p) => loss(x, p, b), g.slice()), 1e-7, 'dgamma');
      assertClose(ref.dbeta, numericGrad((p) => loss(x, g, p), b.slice()), 1e-7, 'dbeta');
    }
  });

  it('forward: y, mean and rstd against float64, affine and not', () => checkForward(SHAPES, 2));

  // every forward kernel: vec4 and scalar subgroup rows, workgroup rows cached and read again (4100)
  const HALF_SHAPES: [number, number][] = [[37, 96], [70, 10], [5, 768], [13, 514], [2, 4100]];
  it('forward with an f16 output: the bits of the f32 output cast, on every kernel; an odd dim refused', async () => {
    const { device } = await getEngine();
    if (device.features.has('subgroups')) {
      const taken = new Set(HALF_SHAPES.map(([rows, dim]) => subgroupRows(device, rows, dim)?.vec ?? 'workgroup'));
      for (const path of [1, 4, 'workgroup']) assert(taken.has(path as never), `no shape takes ${path} (took ${[...taken]})`);
    }
    await checkForwardHalf(HALF_SHAPES, 31);
    await withoutSubgroups(() => checkForwardHalf([[3, 30], [13, 46]], 32));
    const engine = await getEngine();
    const t = engine.empty([64]), h = engine.empty([64], 'f16');
    let msg = '';
    try {
      layerNormForward(engine.batch, { x: t.buffer, y: h.buffer, mean: t.buffer, rstd: t.buffer }, { rows: 3, dim: 5, output: 'f16' });
    } catch (e) {
      msg = (e as Error).message;
    }
    [t, h].forEach((x) => x.dispose());
    assert(/layerNormForward: an f16 output needs dim even \(rows=3, dim=5\)/.test(msg), `expected a clear error, got '${msg}'`);
  });

  it('backward with an f16 dy (the gradient of an f16 y): dx, dgamma and dbeta the bits of the f32 backward on its values, on every kernel and state, odd sizes too; a dy too small for its halves refused', async () => {
    const { device } = await getEngine();
    const shapes: [number, number][] = [[3, 31], [131, 12], [37, 96], [5, 768], [13, 513], [2, 4099]];
    if (device.features.has('subgroups')) {
      const taken = new Set(shapes.map(([rows, dim]) => subgroupRows(device, Math.ceil(rows / 8), dim)?.vec ?? 'workgroup'));
      for (const path of [1, 4, 'workgroup']) assert(taken.has(path as never), `no shape takes ${path} (took ${[...taken]})`);
    }
    await checkBackwardHalf(shapes, 41);
    // the subgroup kernel's other states (reload reads dy a second time)
    for (const state of ['reread', 'reload'] as const) await checkBackwardHalf([[131, 12], [37, 96], [3, 31]], 43, state);
    await withoutSubgroups(() => checkBackwardHalf([[3, 31], [13, 46]], 42));
    const engine = await getEngine();
    const [t, dx] = [engine.empty([64]), engine.empty([64])];
    expectThrow(
      () => layerNormBackward(engine.batch, { dy: { buffer: t.buffer, size: 28 }, x: t.buffer, mean: t.buffer, rstd: t.buffer, dx: dx.buffer }, { rows: 3, dim: 10, dy: 'f16' }),
      /layerNormBackward: dy binding holds 28 bytes, needs 60 \(rows=3, dim=10 f16\)/,
    );
    [t, dx].forEach((x) => x.dispose());
  });

  it('forward and backward: short rows take the subgroup kernels (f32 and vec4 loads), long rows the workgroup kernels', async () => {
    const engine = await getEngine();
    const { device } = engine;
    if (!device.features.has('subgroups')) return;
    const taken = new Set(SHAPES.map(([rows, dim]) => subgroupRows(device, rows, dim)?.vec ?? 'workgroup'));
    for (const path of [1, 4, 'workgroup']) assert(taken.has(path as never), `no shape takes ${path} (took ${[...taken]})`);
    if (!device.features.has('timestamp-query')) return;
    // the dispatched pipelines, by the profiler's labels: the backward with dgamma/dbeta on short rows
    // is the subgroup kernel too, in the state asked for (the states give the same numbers, so only
    // the label tells which ran)
    const cases = [
      [131, 12, undefined, /^layernorm\.bwd_sgrow.*_registers$/],
      [131, 12, 'reread', /^layernorm\.bwd_sgrow.*_reread$/],
      [131, 12, 'reload', /^layernorm\.bwd_sgrow.*_reload$/],
      [13, 4099, undefined, /^layernorm\.bwd_wg/],
    ] as const;
    for (const [rows, dim, state, want] of cases) {
      const t = (n: number) => engine.empty([n]);
      const [x, dy, dx, mean, rstd, dg] = [t(rows * dim), t(rows * dim), t(rows * dim), t(rows), t(rows), t(dim)];
      const prof = (engine.batch.profiler = new KernelProfiler(device));
      layerNormBackward(engine.batch, { dy: dy.buffer, x: x.buffer, mean: mean.buffer, rstd: rstd.buffer, dx: dx.buffer, dgamma: dg.buffer }, { rows, dim, ...(state ? { state } : {}) });
      engine.batch.submit();
      engine.batch.profiler = null;
      const labels = (await prof.results()).map((k) => k.kernel);
      assert(labels.some((l) => want.test(l)), `rows=${rows} dim=${dim} state=${state}: ${want} among ${labels}`);
      prof.destroy();
      [x, dy, dx, mean, rstd, dg].forEach((z) => z.dispose());
    }
  });

  // 1031 rows: blocks of several rows, and a split reduction of the partials
  it('backward: dx, dgamma, dbeta against float64 (set and accumulate)', () => checkBackward([...SHAPES, [1031, 33]], 3));

  it('backward with other rows per subgroup (1, 3, 64): the same dx, dgamma, dbeta', async () => {
    const { device } = await getEngine();
    const shapes: [number, number][] = [[131, 12], [70, 100]];
    for (const k of [1, 3, 64]) {
      // where there are subgroups, the subgroup kernel (the one the option steers) runs
      if (device.features.has('subgroups')) assert(shapes.some(([rows, dim]) => subgroupRows(device, Math.ceil(rows / k), dim)), `no shape takes the subgroup kernel at ${k}`);
      await checkBackward(shapes, 11 + k, { rowsPerSubgroup: k });
    }
  });

  it("backward with states 'reread' (gamma read for every row) and 'reload' (x, dy and gamma read again for dx): the same dx, dgamma, dbeta", async () => {
    const { device } = await getEngine();
    const shapes: [number, number][] = [[131, 12], [70, 100], [1031, 33], [5, 768]];
    if (device.features.has('subgroups')) assert(shapes.some(([rows, dim]) => subgroupRows(device, Math.ceil(rows / 8), dim)), 'no shape takes the subgroup kernel');
    for (const state of ['reread', 'reload'] as const) for (const k of [8, 3]) await checkBackward(shapes, 21 + k, { rowsPerSubgroup: k, state });
  });

  it('forward and backward on a 2-D launch grid', () => withGridLimit(5, async () => {
    await checkForward([[50, 33], [700, 12], [7, 4099]], 5);
    await checkBackward([[50, 33], [1031, 9]], 6);
  }));

  // Devices without subgroups (browsers among them) run these. Their reduction code is shared with
  // softmax; here two calls in a row (mean, then the centred squares), and the backward's own
  // kernels (its pipelines cost a few seconds to compile on lavapipe).
  it('forward and backward with the workgroup-memory reduction (no subgroups)', () => withoutSubgroups(async () => {
    await checkForward([[3, 31], [13, 45]], 7);
    await checkBackward([[3, 31], [37, 45], [5, 768]], 9);
  }));

  it('checkSubgroups: subgroups unlike the adapter says are found, and the row kernels then use workgroup memory, correct', async () => {
    const { Engine } = await import('../../engine/engine.js');
    const { checkSubgroups } = await import('../../kernels/rows.js');
    const engine = await Engine.create();
    try {
      const { device } = engine;
      if (!device.features.has('subgroups')) return;
      assert((await checkSubgroups(device)) === null, 'the real subgroups pass');
      // the host believes a size the device does not run: kernels sized for it would leave rows unwritten
      const size = (engine.gpu.info.subgroups?.maxSize ?? 8) * 2;
      Object.defineProperty(device, 'adapterInfo', { value: { subgroupMinSize: size, subgroupMaxSize: size } });
      const fault = await checkSubgroups(device);
      assert(fault !== null && fault.includes(`outside the adapter's ${size}–${size}`), `fault: ${fault}`);
      const rng = new Rng(31);
      const rows = 37, dim = 50;
      const x = rowsData(rng, rows, dim);
      const tx = engine.upload(x), y = poisoned(engine, [rows * dim]), mean = poisoned(engine, [rows]), rstd = poisoned(engine, [rows]);
      layerNormForward(engine.batch, { x: tx.buffer, y: y.buffer, mean: mean.buffer, rstd: rstd.buffer }, { rows, dim });
      const ref = layerNormRef(x, rows, dim);
      assertClose(await engine.read(y), ref.y, TOL, 'layerNorm after a failed subgroup check');
      assertClose(await engine.read(mean), ref.mean, TOL, 'mean after a failed subgroup check');
    } finally {
      engine.close();
    }
  });

  it('backward: only one parameter gradient, and the parameter grads alone', async () => {
    const engine = await getEngine();
    const rng = new Rng(4);
    const rows = 600, dim = 45;
    const x = rowsData(rng, rows, dim), dy = randomArray(rng, rows * dim), gamma = randomArray(rng, dim);
    const ref = layerNormBackwardRef(dy, x, rows, dim, gamma);
    const tx = engine.upload(x), mean = engine.empty([rows]), rstd = engine.empty([rows]), y = engine.empty([rows * dim]);
    layerNormForward(engine.batch, { x: tx.buffer, y: y.buffer, mean: mean.buffer, rstd: rstd.buffer }, { rows, dim });
    const tdy = engine.upload(dy), tg = engine.upload(gamma);
    for (const which of ['dgamma', 'dbeta'] as const) {
      const dx = poisoned(engine, [rows * dim]), out = poisoned(engine, [dim]);
      layerNormBackward(engine.batch, { dy: tdy.buffer, x: tx.buffer, mean: mean.buffer, rstd: rstd.buffer, dx: dx.buffer, gamma: tg.buffer, [which]: out.buffer }, { rows, dim });
      assertClose(await engine.read(dx), ref.dx, TOL, `dx with ${which} only`);
      assertClose(await engine.read(out), which === 'dgamma' ? ref.dgamma : ref.dbeta, TOL, `${which} alone`);
      dx.dispose();
      out.dispose();
    }
    [tx, mean, rstd, y, tdy, tg].forEach((t) => t.dispose());
  });

  it('rejects bad sizes and aliasing, naming the kernel and sizes', async () => {
    const engine = await getEngine();
    const a = engine.empty([12]), b = engine.empty([12]), m = engine.empty([3]), r = engine.empty([3]);
    const threw = (fn: () => void, re: RegExp) => {
      try {
        fn();
      } catch (e) {
        assert(re.test((e as Error).message), `unexpected message: ${(e as Error).message}`);
        return;
      }
      throw new Error(`no error for ${re}`);
    };
    threw(() => layerNormForward(engine.batch, { x: a.buffer, y: b.buffer, mean: m.buffer, rstd: r.buffer }, { rows: 3, dim: 0 }), /layerNormForward: dim must be/);
    threw(() => layerNormForward(engine.batch, { x: a.buffer, y: a.buffer, mean: m.buffer, rstd: r.buffer }, { rows: 3, dim: 4 }), /layerNormForward: y must not share a buffer with x/);
    threw(() => layerNormForward(engine.batch, { x: { buffer: a.buffer, size: 40 }, y: b.buffer, mean: m.buffer, rstd: r.buffer }, { rows: 3, dim: 4 }), /layerNormForward: x binding holds 40 bytes, needs 48 \(rows=3, dim=4\)/);
    threw(
      () => layerNormBackward(engine.batch, { dy: a.buffer, x: b.buffer, mean: m.buffer, rstd: r.buffer, dx: b.buffer }, { rows: 3, dim: 4 }),
      /layerNormBackward: dx must not share a buffer with x/,
    );
    const d = engine.empty([12]);
    for (const k of [0, 2.5, 65])
      threw(
        () => layerNormBackward(engine.batch, { dy: a.buffer, x: b.buffer, mean: m.buffer, rstd: r.buffer, dx: d.buffer }, { rows: 3, dim: 4, rowsPerSubgroup: k }),
        /layerNormBackward: rowsPerSubgroup must be an integer in \[1, 64\], got/,
      );
    threw(
      () => layerNormBackward(engine.batch, { dy: a.buffer, x: b.buffer, mean: m.buffer, rstd: r.buffer, dx: d.buffer }, { rows: 3, dim: 4, state: 'cache' as LayerNormBackwardState }),
      /layerNormBackward: state must be one of 'registers', 'reread', 'reload', got cache/,
    );
    [a, b, m, r, d].forEach((t) => t.dispose());
  });
});
