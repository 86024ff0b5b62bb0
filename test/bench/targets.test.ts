// The GPU goals read from benchmark rows: met, missed, not run, and the copy-bandwidth fraction.
import type { BenchRow } from '../../bench/harness.js';
import { copyFractions, evaluateTargets } from '../../bench/targets.js';
import { assert } from '../helpers.js';

function row(name: string, unit: BenchRow['unit'], oursRate: number, ratio: number | null = null): BenchRow {
  return { name, unit, ours_rate: oursRate, ours_ms: 1, tfjs_ms: ratio, tfjs_rate: null, ratio, reps: 1, timing: 'gpu', warm_ms: 300 };
}

describe('bench/targets', () => {
  const rows = [
    row('copy (vec4) 19660800', 'GB/s', 3000),
    row('layerNorm fwd 25600x768', 'GB/s', 2400),
    row('softmax fwd 409600x400', 'GB/s', 1800),
    row('matmul 4096x4096x4096', 'GFLOP/s', 41_000),
    row('qkv fwd 25600x2304x768 A·Bᵀ', 'GFLOP/s', 31_000),
    row('qkv dW 2304x768x25600 Aᵀ·B', 'GFLOP/s', 29_500),
    row('attention encoder cropa B64 H16 T400 Dh48 fwd+bwd', 'GFLOP/s', 5_000, 3.2),
  ];

  it('judges each goal by its weakest row', () => {
    const results = evaluateTargets(rows);
    assert(results.length === 5, `five goals, got ${results.length}`);
    const [square, shapes, f16, attention, bandwidth] = results;
    assert(square.met === true && square.worst?.value === 41, `square: ${JSON.stringify(square)}`);
    assert(shapes.met === false && shapes.worst?.name.startsWith('qkv dW') && shapes.worst.value === 29.5, `shapes: ${JSON.stringify(shapes)}`);
    assert(f16.met === null && f16.worst === null, `f16 absent: ${JSON.stringify(f16)}`);
    assert(attention.met === true && attention.worst?.value === 3.2, `attention: ${JSON.stringify(attention)}`);
    assert(bandwidth.met === false && bandwidth.worst?.name.startsWith('softmax') && bandwidth.worst.value === 0.6, `bandwidth: ${JSON.stringify(bandwidth)}`);
  });

  it("'variant' rows (a kernel's options, explored) are not read by the goals", () => {
    const withVariant = [...rows, row('variant layerNorm fwd+bwd 25600x768, 2 rows per subgroup', 'GB/s', 300)];
    const bandwidth = evaluateTargets(withVariant)[4];
    assert(bandwidth.worst?.name.startsWith('softmax') && bandwidth.worst.value === 0.6, `bandwidth: ${JSON.stringify(bandwidth)}`);
  });

  it('copy fractions need a copy row', () => {
    assert(copyFractions(rows).get('layerNorm fwd 25600x768') === 0.8, 'layerNorm at 80% of copy');
    assert(copyFractions(rows.slice(1)).size === 0, 'no copy row, no fractions');
  });
});
