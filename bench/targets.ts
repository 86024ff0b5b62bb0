// The GPU goals of the kernel library as checks over the rows of one `bench kernels --scale full`
// run, so a GPU session prints met / missed next to the numbers instead of comparing by hand.
// A goal whose rows are all absent (other scale, --only) reads "not run"; one with some of them
// absent or failed reads "incomplete", never met or missed on the rest.
import type { BenchRow } from './harness.js';
import { COPY_CASE } from './kernels/elementwise.js';

export interface TargetResult {
  goal: string;
  /** The weakest matching row and its value, or null when no row matched. */
  worst: { name: string; value: number } | null;
  min: number;
  /** Its rows that were timed, and how many it needs. */
  found: number;
  needs: number;
  met: boolean | null;
}

type Measure = 'tflops' | 'ratio' | 'ofCopy';
interface Goal {
  goal: string;
  match: (name: string) => boolean;
  measure: Measure;
  min: number;
  /** Rows it needs: a goal on some of them is no verdict. */
  needs: number;
}

const GOALS: Goal[] = [
  { goal: 'fp32 matmul 4096³ ≥ 40 TFLOP/s', match: (n) => n === 'matmul 4096x4096x4096', measure: 'tflops', min: 40, needs: 1 },
  // proj, qkv, fc1, fc2 × fwd, dX, dW
  { goal: 'fp32 matmul on every ECG-JEPA layer shape ≥ 30 TFLOP/s', match: (n) => /^(proj|qkv|fc1|fc2) (fwd|dX|dW) /.test(n), measure: 'tflops', min: 30, needs: 12 },
  { goal: 'f16-input matmul 4096³ ≥ 150 TFLOP/s', match: (n) => n === 'matmul f16 4096x4096x4096', measure: 'tflops', min: 150, needs: 1 },
  { goal: 'CroPA attention fwd+bwd (B64 H16 T400 Dh48) ≥ 3× tfjs', match: (n) => /^attention encoder cropa B64 H16 T400 Dh48 fwd\+bwd/.test(n), measure: 'ratio', min: 3, needs: 1 },
  // layerNorm fwd, fwd+bwd; softmax fwd, fwd+bwd; adamw
  { goal: 'layernorm, softmax, AdamW ≥ 70% of copy bandwidth', match: (n) => /^(layerNorm|softmax|adamw) /.test(n), measure: 'ofCopy', min: 0.7, needs: 5 },
];

/** Our GB/s over the fastest copy case's GB/s, for every bandwidth row (none without a copy row):
 *  the bandwidth the device showed it has, whichever copy size showed it. */
export function copyFractions(rows: BenchRow[]): Map<string, number> {
  const copies = rows.filter((r) => r.name.startsWith(COPY_CASE) && r.ours_rate);
  const best = Math.max(...copies.map((r) => r.ours_rate!));
  const out = new Map<string, number>();
  if (copies.length) for (const r of rows) if (r.unit === 'GB/s' && r.ours_rate) out.set(r.name, r.ours_rate / best);
  return out;
}

export function evaluateTargets(rows: BenchRow[]): TargetResult[] {
  const ofCopy = copyFractions(rows);
  const value = (r: BenchRow, m: Measure): number | null =>
    m === 'tflops' ? (r.unit === 'GFLOP/s' && r.ours_rate !== null ? r.ours_rate / 1000 : null) : m === 'ratio' ? r.ratio : ofCopy.get(r.name) ?? null;
  return GOALS.map(({ goal, match, measure, min, needs }) => {
    let worst: TargetResult['worst'] = null;
    let found = 0;
    for (const r of rows.filter((r) => match(r.name))) {
      const v = value(r, measure);
      if (v === null) continue;
      found++;
      if (worst === null || v < worst.value) worst = { name: r.name, value: v };
    }
    return { goal, worst, min, found, needs, met: worst === null || found < needs ? null : worst.value >= min };
  });
}

export function formatTargets(results: TargetResult[]): string {
  return results
    .map((t) => {
      const state = t.found === 0 ? 'not run' : t.found < t.needs ? `incomplete (${t.found} of ${t.needs} rows)` : t.met ? 'met   ' : 'missed';
      const got = t.worst ? `  (weakest: ${t.worst.name} = ${t.worst.value.toFixed(t.worst.value < 10 ? 2 : 1)})` : '';
      return `${state}  ${t.goal}${got}`;
    })
    .join('\n');
}
