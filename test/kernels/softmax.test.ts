import { subgroupRows } from '../../kernels/rows.js';
import { softmaxBackward, softmaxForward } from '../../kernels/softmax.js';
import { Rng } from '../../engine/random.js';
import { assert, assertClose, expectThrow, getEngine, poisoned, randomArray } from '../helpers.js';
import { dot, f64, numericGrad, softmaxBackwardRef, softmaxRef, withGridLimit, withoutSubgroups } from './norm-ref.js';

const TOL = 1e-5;

// 1, primes, the model's 400-token rows, 257 (one past a multiple of the workgroup), 5000 (past the
// register cache: online max/sum, x read twice). Short rows take the one-subgroup-per-row kernel
// where there are subgroups (f32 loads; vec4 where cols % 4 == 0: 12, 96, 256, 400), rows not a
// multiple of its rows per workgroup; past its register cap are 256, 257 and 400 at subgroup size 4
// (SwiftShader), 257 and 400 at 8 (lavapipe), none at 32. Few distinct layouts (rows.ts rowLayout,
// subgroupRows), since each is a pipeline to compile.
const SHAPES: [number, number][] = [[1, 1], [3, 7], [5, 400], [7, 257], [2, 5000], [300, 3], [4, 97], [131, 12], [37, 96], [9, 256]];
/** Shapes run again with the grid limit lowered (rows = wid.y·nwg.x + wid.x). */
const GRID_SHAPES: [number, number][] = [[50, 7], [700, 12], [13, 400], [9, 5000]];

async function checkForward(shapes: [number, number][], seed: number): Promise<void> {
  const engine = await getEngine();
  const rng = new Rng(seed);
  for (const [rows, cols] of shapes) {
    for (const scale of [1, 0.125]) {
      // per-row offsets far from 0 check the max subtraction; a spread of 4 gives peaked rows
      const x = randomArray(rng, rows * cols, 4);
      for (let r = 0; r < rows; r++) {
        const off = rng.uniform(-300, 300);
        for (let c = 0; c < cols; c++) x[r * cols + c] += off;
      }
      const tx = engine.upload(x), y = poisoned(engine, [rows * cols]);
      softmaxForward(engine.batch, tx.buffer, y.buffer, { rows, cols, scale: scale === 1 ? undefined : scale });
      assertClose(await engine.read(y), softmaxRef(x, rows, cols, scale), TOL, `softmax rows=${rows} cols=${cols} scale=${scale}`);
      tx.dispose();
      y.dispose();
    }
  }
}

async function checkBackward(shapes: [number, number][], seed: number): Promise<void> {
  const engine = await getEngine();
  const rng = new Rng(seed);
  for (const [rows, cols] of shapes) {
    for (const scale of [1, 0.125]) {
      const yv = Float32Array.from(softmaxRef(randomArray(rng, rows * cols, 2), rows, cols));
      const dy = randomArray(rng, rows * cols);
      const ty = engine.upload(yv), tdy = engine.upload(dy), dx = poisoned(engine, [rows * cols]);
      softmaxBackward(engine.batch, ty.buffer, tdy.buffer, dx.buffer, { rows, cols, scale });
      assertClose(await engine.read(dx), softmaxBackwardRef(yv, dy, rows, cols, scale), TOL, `softmax dx rows=${rows} cols=${cols} scale=${scale}`);
      [ty, tdy, dx].forEach((t) => t.dispose());
    }
  }
}

describe('kernels/softmax', () => {
  it('CPU reference backward matches finite differences', () => {
    const rng = new Rng(1);
    const rows = 3, cols = 6, scale = 0.7;
    const x = f64(randomArray(rng, rows * cols)), dy = f64(randomArray(rng, rows * cols));
    const got = softmaxBackwardRef(softmaxRef(x, rows, cols, scale), dy, rows, cols, scale);
    assertClose(got, numericGrad((p) => dot(dy, softmaxRef(p, rows, cols, scale)), x.slice()), 1e-7, 'softmax dx');
  });

  it('forward against float64, with large offsets and scales', () => checkForward(SHAPES, 2));

  it('short rows take the subgroup kernels (f32 and vec4 loads), long rows the workgroup kernels', async () => {
    const { device } = await getEngine();
    if (!device.features.has('subgroups')) return;
    const taken = new Set(SHAPES.map(([rows, cols]) => subgroupRows(device, rows, cols)?.vec ?? 'workgroup'));
    for (const path of [1, 4, 'workgroup']) assert(taken.has(path as never), `no shape takes ${path} (took ${[...taken]})`);
  });

  it('−∞ entries get 0; an all −∞ row gives NaN (as PyTorch)', async () => {
    const engine = await getEngine();
    const rng = new Rng(3);
    for (const cols of [9, 12, 5000]) {
      const rows = 3;
      const x = randomArray(rng, rows * cols);
      for (let c = 0; c < cols; c += 3) x[c] = -Infinity; // row 0: every third masked
      for (let c = 0; c < cols; c++) x[2 * cols + c] = -Infinity; // row 2: all masked
      const tx = engine.upload(x), y = poisoned(engine, [rows * cols]);
      softmaxForward(engine.batch, tx.buffer, y.buffer, { rows, cols });
      const got = await engine.read(y);
      const ref = softmaxRef(x, 2, cols);
      assertClose(got.subarray(0, 2 * cols), ref, TOL, `masked rows cols=${cols}`);
      for (let c = 0; c < cols; c += 3) assert(got[c] === 0, `masked entry ${c} is ${got[c]}`);
      assert(got.subarray(2 * cols).every((v) => Number.isNaN(v)), `all −∞ row: want NaN, got ${got[2 * cols]}`);
      tx.dispose();
      y.dispose();
    }
  });

  it('backward against float64', () => checkBackward(SHAPES, 4));

  it('forward and backward on a 2-D launch grid', () => withGridLimit(4, async () => {
    await checkForward(GRID_SHAPES, 5);
    await checkBackward(GRID_SHAPES, 6);
  }));

  it('forward and backward with the workgroup-memory reduction (no subgroups)', () => withoutSubgroups(async () => {
    await checkForward([[3, 7], [5, 97]], 7);
    await checkBackward([[3, 7], [5, 97]], 8);
  }));

  it('rejects bad sizes and aliasing, naming the kernel and sizes', async () => {
    const engine = await getEngine();
    const a = engine.empty([8]), b = engine.empty([8]);
    const cases: [() => void, RegExp][] = [
      [() => softmaxForward(engine.batch, a.buffer, a.buffer, { rows: 2, cols: 4 }), /softmaxForward: y must not share a buffer with x/],
      [() => softmaxForward(engine.batch, a.buffer, b.buffer, { rows: 2, cols: 0 }), /softmaxForward: cols must be ≥ 1 \(rows=2\)/],
      [() => softmaxBackward(engine.batch, a.buffer, b.buffer, { buffer: b.buffer, offset: 256 }, { rows: 2, cols: 4 }), /softmaxBackward: dx binding holds \d+ bytes, needs 32/],
      [() => softmaxBackward(engine.batch, a.buffer, b.buffer, b.buffer, { rows: 2, cols: 4 }), /softmaxBackward: dx must not share a buffer with dy/],
    ];
    for (const [fn, re] of cases) expectThrow(fn, re);
    a.dispose();
    b.dispose();
  });
});
