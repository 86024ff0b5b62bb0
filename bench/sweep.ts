// `npm run bench -- sweep`: times many matmul kernels given by their parameters (kernels/matmul.ts
// TileSpec, SubgroupSpec) on one shape, so one borrowed-GPU call explores what the autotune's few
// named configs cannot: tile sizes, K steps, thread blocks, subgroup counts, panel buffers. Each
// candidate is checked before it is timed (tiles against a float64 product on a shape with partial
// tiles, subgroup kernels by their device check against the tiled f16 kernel); one that fails, does
// not compile or does not fit is reported and skipped. The named configs run first, so even a run cut
// short compares the others with them; the grid then runs nearest the fastest of them first, so a
// budget-cut run explores around the incumbent. `--layers` then times the fastest few on the
// ECG-JEPA layer shapes.
import type { Engine } from '../engine/engine.js';
import {
  checkSubgroupMatrix, MATMUL_TILES, matmul, matmulConfigs, matmulKernelKey, matmulKernelParams, matmulPlan, matmulSpecFits, SUBGROUP_CONFIGS, tuneMatmul,
  type MatmulConfigName, type MatmulDims, type MatmulKernelSpec, type MatmulPrecision, type SubgroupConfigName, type SubgroupSpec, type TileSpec,
} from '../kernels/matmul.js';
import { runCase, type KernelCase } from './harness.js';
import { layerSpecs, operand, values } from './kernels/matmul.js';

export interface SweepOptions {
  precision: MatmulPrecision;
  dims: MatmulDims;
  /** Time per timed round (ms), as `bench kernels --target-ms`. */
  targetMs: number;
  /** At most this many candidates (the named configs count). */
  limit?: number;
  /** Stop starting candidates after this many seconds. */
  budgetS?: number;
  /** Only these candidates (tests); default: sweepCandidates. Either way the specs after the leading
   *  named configs run nearest the fastest of those first (nearestFirst). */
  candidates?: Candidate[];
  /** Run every tiled candidate stream-K on this many workgroups (MatmulOptions.streamK), checked so too. */
  streamK?: number;
}

export interface Candidate {
  label: string;
  /** A config name or spec; absent: what matmul picks (the autotune's named config). */
  config?: MatmulConfigName | MatmulKernelSpec;
}

export interface SweepRow {
  label: string;
  config?: MatmulConfigName | MatmulKernelSpec;
  /** The layer shape (sweepLayers rows). */
  shape?: string;
  /** 'ok' (checked and timed), or why it was skipped. */
  status: 'ok' | 'unfit' | 'check failed' | 'error';
  error?: string;
  ms?: number;
  /** GFLOP/s */
  rate?: number;
  splits?: number;
  /** Stream-K's workgroups, where the candidate ran so. */
  streamK?: number;
  /** Relative L2 error of the check (tiles). */
  checkError?: number;
  /** For the autotuned row: the config matmul picked. */
  picked?: MatmulConfigName;
}

const TILE_SIDES = [64, 128, 256];

/** The tile grid: BM, BN in 64…256 (the named 'small' has 32), BK 8…32, TM, TN 4, 8 or 16 (at most
 *  128 accumulators per invocation), row-major threads or 4-, 8- and 16-wide blocks of 32; 64 to 512
 *  threads. The 16-wide blocks: 128 accumulators in a 256-invocation tile, whose invocations may hold
 *  255 registers where a 512-invocation one holds 128 (xlarge16 takes all 128 on an H200). */
function tileGrid(): TileSpec[] {
  const out: TileSpec[] = [];
  for (const BM of TILE_SIDES)
    for (const BN of TILE_SIDES)
      for (const BK of [8, 16, 32])
        for (const TM of [4, 8, 16])
          for (const TN of [4, 8, 16]) {
            const TX = BN / TN, threads = (BM / TM) * TX;
            if (threads < 64 || threads > 512 || TM * TN > 128) continue;
            for (const LX of [undefined, 4, 8, 16]) {
              if (LX !== undefined && (LX === Math.min(TX, 32) || TX % LX !== 0 || (BM / TM) % (32 / LX) !== 0)) continue;
              out.push({ BM, BN, BK, TM, TN, ...(LX ? { LX } : {}) });
            }
          }
  return out;
}

/** The subgroup-matrix grid: tiles 64…256, 1–8 subgroups of 1–4 × 1–4 fragments; staged with K steps
 *  16…64 and one or two panel buffers, or direct (no panels) with K steps 16 or 32. */
function subgroupGrid(): SubgroupSpec[] {
  const out: SubgroupSpec[] = [];
  for (const BM of [64, 128, 256])
    for (const BN of [64, 128, 256])
      for (const FM of [1, 2, 4])
        for (const FN of [1, 2, 4]) {
          if (BM % (16 * FM) || BN % (16 * FN)) continue;
          const subgroups = (BM / (16 * FM)) * (BN / (16 * FN));
          if (subgroups > 8 || FM * FN < 4) continue;
          for (const BK of [16, 32, 64]) for (const buffers of [1, 2] as const) out.push({ BM, BN, BK, subgroups, FM, FN, buffers });
          for (const BK of [16, 32]) out.push({ BM, BN, BK, subgroups, FM, FN, buffers: 0 });
        }
  return out;
}

const isSubgroup = (c: MatmulConfigName | MatmulKernelSpec) => (typeof c === 'object' ? 'subgroups' in c : (SUBGROUP_CONFIGS as readonly string[]).includes(c));

const specLabel = (s: MatmulKernelSpec) =>
  'subgroups' in s
    ? `sg ${s.BM}x${s.BN} k${s.BK} ${s.subgroups}sg ${s.FM}x${s.FN}${[' direct', '', ' db'][s.buffers]}`
    : `tile ${s.BM}x${s.BN} k${s.BK} ${s.TM}x${s.TN}${s.LX ? ` lx${s.LX}` : ''}`;

/** The named configs this device runs for `precision` (f16: the subgroup-matrix ones, the tiled
 *  kernels ran ~3× slower there on an H100), then every grid spec that fits it, larger tiles first
 *  (sweepMatmul then reorders the specs nearest the fastest named config; ties keep this order). */
export function sweepCandidates(device: GPUDevice, precision: MatmulPrecision): Candidate[] {
  const named: Candidate[] = matmulConfigs(device, precision)
    .filter((c) => precision === 'f32' || isSubgroup(c))
    .map((c) => ({ label: c, config: c }));
  const grid: MatmulKernelSpec[] = (precision === 'f16' ? subgroupGrid() : tileGrid()).sort((a, b) => b.BM * b.BN - a.BM * a.BN);
  // the named configs' own parameters are not timed twice
  const names: MatmulConfigName[] = [...(Object.keys(MATMUL_TILES) as MatmulConfigName[]), ...SUBGROUP_CONFIGS];
  const namedKernels = new Set(names.map(matmulKernelKey));
  const valid = (s: MatmulKernelSpec) => {
    try {
      return matmulSpecFits(device, s);
    } catch {
      return false; // a combination the kernel cannot build (e.g. its epilogue staging does not fit)
    }
  };
  return [...named, ...grid.filter((s) => valid(s) && !namedKernels.has(matmulKernelKey(s))).map((s) => ({ label: specLabel(s), config: s }))];
}

function makeOperands(engine: Engine, d: MatmulDims, precision: MatmulPrecision, seed: number) {
  const batch = d.batch ?? 1;
  const na = d.M * d.K * batch, nb = d.K * d.N * batch;
  const f16 = precision === 'f16';
  return { a: operand(engine, na, seed, f16), b: operand(engine, nb, seed + 1, f16), c: engine.empty([d.M * d.N * batch]) };
}

/** Relative L2 error of the f32 product of `config` against float64 on M×N×K with the sweep's
 *  transposes: sizes past a whole tile, all multiples of 4 (the vec4 path the timed shape takes). */
async function checkTile(engine: Engine, config: MatmulConfigName | MatmulKernelSpec, d: MatmulDims, streamK?: number): Promise<number> {
  const M = 132, N = 260, K = 68;
  const dims: MatmulDims = { M, N, K, transA: d.transA, transB: d.transB };
  const a = values(M * K, 7), b = values(K * N, 8);
  const ta = engine.upload(a), tb = engine.upload(b), tc = engine.upload(new Float32Array(M * N).fill(NaN));
  try {
    matmul(engine.batch, { a: ta.buffer, b: tb.buffer, c: tc.buffer }, dims, { config, streamK });
    const got = await engine.read(tc);
    let num = 0, den = 0;
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[d.transA ? k * M + m : m * K + k] * b[d.transB ? n * K + k : k * N + n];
        const g = got[m * N + n];
        if (!Number.isFinite(g)) return Infinity;
        num += (g - s) ** 2;
        den += s * s;
      }
    return Math.sqrt(num / den);
  } finally {
    [ta, tb, tc].forEach((t) => t.dispose());
  }
}

async function timeConfig(engine: Engine, label: string, config: MatmulConfigName | MatmulKernelSpec, d: MatmulDims, precision: MatmulPrecision, targetMs: number, streamK?: number): Promise<{ ms: number; rate: number; splits: number; streamK?: number }> {
  const plan = matmulPlan(engine.device, d, { precision, config, streamK });
  const kc: KernelCase = {
    name: label,
    flops: 2 * d.M * d.N * d.K * (d.batch ?? 1),
    ours(e) {
      const o = makeOperands(e, d, precision, 1);
      return {
        run: () => matmul(e.batch, { a: o.a.buffer, b: o.b.buffer, c: o.c.buffer }, d, { precision, config, streamK }),
        dispose: () => [o.a, o.b, o.c].forEach((t) => t.dispose()),
      };
    },
    tfjs() {
      throw new Error('sweep: no peer');
    },
  };
  const row = await runCase(engine, null, kc, targetMs);
  return { ms: row.ours_ms, rate: row.ours_rate!, splits: plan.splits, ...(plan.streamK ? { streamK: plan.streamK } : {}) };
}

/** Checks c's kernel (once per kernel and transposes: `checked` remembers) and times it on d into a
 *  row, with the K splits matmul plans for d (they follow the shape); the autotuned candidate is the
 *  config matmul picks for d once its tune has run. */
async function measure(engine: Engine, c: Candidate, d: MatmulDims, precision: MatmulPrecision, targetMs: number, checked: Map<string, SweepRow>, streamK?: number): Promise<SweepRow> {
  const row: SweepRow = { label: c.label, config: c.config, status: 'ok' };
  try {
    let cfg = c.config;
    if (cfg === undefined) {
      await tuneMatmul(engine.device, d, { precision });
      cfg = row.picked = matmulPlan(engine.device, d, { precision }).config as MatmulConfigName;
    }
    const key = `${JSON.stringify(cfg)}|${+!!d.transA}${+!!d.transB}`;
    const prior = checked.get(key);
    if (prior) Object.assign(row, { status: prior.status, checkError: prior.checkError, error: prior.error });
    else {
      if (typeof cfg === 'object' && !matmulSpecFits(engine.device, cfg)) row.status = 'unfit';
      else if (isSubgroup(cfg)) {
        if (!(await checkSubgroupMatrix(engine.device, cfg as SubgroupConfigName | SubgroupSpec))) row.status = 'check failed';
      } else if (precision === 'f32') {
        row.checkError = await checkTile(engine, cfg, d, streamK);
        if (!(row.checkError < 1e-5)) row.status = 'check failed';
      }
      checked.set(key, { ...row });
    }
    if (row.status === 'ok') Object.assign(row, await timeConfig(engine, c.label, cfg, d, precision, targetMs, streamK));
  } catch (e) {
    row.status = 'error';
    row.error = (e as Error).message.split('\n')[0];
  }
  return row;
}

const describe = (r: SweepRow) =>
  r.status === 'ok'
    ? `${r.ms!.toFixed(3)} ms, ${r.rate!.toPrecision(4)} GFLOP/s${r.splits! > 1 ? `, split K ×${r.splits}` : ''}${r.streamK ? `, stream-K ×${r.streamK}` : ''}${r.picked ? ` (${r.picked})` : ''}`
    : `${r.status}${r.error ? `: ${r.error}` : ''}`;

/**
 * How far apart two kernels' parameters are: the sum over their parameters of |log2| of each ratio
 * (tile sides, K step, thread block, subgroups, fragments), and 1 for another panel buffering
 * (0, 1 or 2 buffers: not a scale).
 */
export function kernelDistance(a: MatmulConfigName | MatmulKernelSpec, b: MatmulConfigName | MatmulKernelSpec): number {
  const pa = matmulKernelParams(a), pb = matmulKernelParams(b);
  let d = 0;
  for (const k of new Set([...Object.keys(pa), ...Object.keys(pb)])) {
    if (!(k in pa) || !(k in pb)) d += 1;
    else if (k === 'buffers') d += +(pa[k] !== pb[k]);
    else d += Math.abs(Math.log2(pa[k] / pb[k]));
  }
  return d;
}

/** `queue` ordered nearest `incumbent` first (a stable sort: ties keep their order; no config last). */
export function nearestFirst(queue: Candidate[], incumbent: MatmulConfigName | MatmulKernelSpec): Candidate[] {
  return queue
    .map((c, i) => ({ c, i, d: c.config === undefined ? Infinity : kernelDistance(c.config, incumbent) }))
    .sort((x, y) => x.d - y.d || x.i - y.i)
    .map((x) => x.c);
}

/** Checks and times each candidate on opts.dims; `progress` gets a line per candidate. */
export async function sweepMatmul(engine: Engine, opts: SweepOptions, progress: (line: string) => void = () => {}, onRow?: (rows: SweepRow[]) => void): Promise<SweepRow[]> {
  const checked = new Map<string, SweepRow>();
  let queue = opts.candidates ?? sweepCandidates(engine.device, opts.precision);
  const total = Math.min(queue.length, opts.limit ?? queue.length);
  if (total === 0)
    progress(`no ${opts.precision} candidates on this device${opts.precision === 'f16' ? ' (the f16 sweep explores subgroup-matrix kernels: they need chromium-experimental-subgroup-matrix and shader-f16)' : ''}`);
  const named = (c: Candidate | undefined) => typeof c?.config === 'string';
  const t0 = performance.now();
  const rows: SweepRow[] = [];
  for (let i = 0; i < total; i++) {
    if (opts.budgetS !== undefined && (performance.now() - t0) / 1000 > opts.budgetS) {
      progress(`time budget of ${opts.budgetS} s spent: ${total - i} candidates not run`);
      break;
    }
    const c = queue[i];
    const row = await measure(engine, c, opts.dims, opts.precision, opts.targetMs, checked, opts.streamK);
    rows.push(row);
    progress(`[${i + 1}/${total}] ${c.label}: ${describe(row)}`);
    onRow?.(rows);
    // the last named config timed: the grid goes nearest the fastest of them first
    const fastest = rows.filter((r) => r.status === 'ok' && typeof r.config === 'string').sort((x, y) => y.rate! - x.rate!)[0];
    if (named(c) && !named(queue[i + 1]) && fastest) {
      queue = [...queue.slice(0, i + 1), ...nearestFirst(queue.slice(i + 1), fastest.config!)];
      progress(`the grid next, nearest ${fastest.label} first`);
    }
  }
  return rows;
}

/** The `top` fastest timed candidates of a sweep and what matmul picks by itself (its autotuned named
 *  config), each on every ECG-JEPA layer shape. */
export async function sweepLayers(
  engine: Engine,
  swept: SweepRow[],
  top: number,
  precision: MatmulPrecision,
  targetMs: number,
  progress: (line: string) => void = () => {},
  shapes = layerSpecs(),
  streamK?: number,
): Promise<SweepRow[]> {
  const best = swept.filter((r) => r.status === 'ok' && r.config !== undefined).sort((a, b) => b.rate! - a.rate!).slice(0, top);
  const cands: Candidate[] = [{ label: 'autotuned' }, ...best.map((r) => ({ label: r.label, config: r.config }))];
  const rows: SweepRow[] = [];
  const checked = new Map<string, SweepRow>();
  for (const { name, dims } of shapes)
    for (const c of cands) {
      const row = { ...(await measure(engine, c, dims, precision, targetMs, checked, streamK)), shape: name };
      rows.push(row);
      progress(`${name} · ${c.label}: ${describe(row)}`);
    }
  return rows;
}

/** The timed rows, fastest first, with each one's speed over the fastest named config. */
export function formatSweep(rows: SweepRow[]): string {
  const ok = rows.filter((r) => r.status === 'ok').sort((a, b) => b.rate! - a.rate!);
  const named = ok.filter((r) => typeof r.config === 'string');
  const best = named[0];
  const lines = ok.map((r) => `${r.label.padEnd(32)} ${r.ms!.toFixed(3).padStart(9)} ms ${r.rate!.toPrecision(4).padStart(8)} GFLOP/s${best ? `  ${(r.rate! / best.rate!).toFixed(2)}× ${best.label}` : ''}`);
  const skipped = rows.length - ok.length;
  const top = ok[0];
  const verdict = top ? [`best: ${top.label} ${top.rate!.toPrecision(4)} GFLOP/s${best ? `, ${(top.rate! / best.rate!).toFixed(2)}× the best named config (${best.label} ${best.rate!.toPrecision(4)} GFLOP/s)` : ''}`] : [];
  return [...lines, ...verdict, ...(skipped ? [`${skipped} skipped: ${rows.filter((r) => r.status !== 'ok').map((r) => `${r.label} (${r.status})`).join(', ')}`] : [])].join('\n');
}

/** sweepLayers' rows as a table: a candidate per line, TFLOP/s per layer shape, and the least of them
 *  (the goal is a floor on every shape). */
export function formatLayers(rows: SweepRow[]): string {
  const shapes = [...new Set(rows.map((r) => r.shape!))];
  const labels = [...new Set(rows.map((r) => r.label))];
  const short = (s: string) => s.split(' ').slice(0, 2).join(' ');
  const cell = (label: string, shape: string) => {
    const r = rows.find((x) => x.label === label && x.shape === shape);
    return r?.status === 'ok' ? r.rate! : NaN;
  };
  const w = Math.max(...labels.map((l) => l.length));
  const head = ['candidate'.padEnd(w), ...shapes.map((s) => short(s).padStart(9)), '      min'].join(' ');
  const body = labels.map((l) => {
    const v = shapes.map((s) => cell(l, s));
    // a failed shape leaves its cell '-' and the row no min: the floor is over every shape or none
    const min = v.some(Number.isNaN) ? '-' : Math.min(...v).toPrecision(4);
    return [l.padEnd(w), ...v.map((x) => (Number.isNaN(x) ? '-' : x.toPrecision(4)).padStart(9)), min.padStart(9)].join(' ');
  });
  return [`GFLOP/s per layer shape`, head, ...body].join('\n');
}
