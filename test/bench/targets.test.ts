// The GPU goals read from benchmark rows: met, missed, not run, incomplete (some of a goal's rows
// absent), and the copy-bandwidth fraction (against the fastest copy).
import type { BenchRow } from '../../bench/harness.js';
import { copyFractions, evaluateTargets, formatTargets } from '../../bench/targets.js';
import { assert } from '../helpers.js';

function row(name: string, unit: BenchRow['unit'], oursRate: number, ratio: number | null = null): BenchRow {
  return { name, unit, ours_rate: oursRate, ours_ms: 1, tfjs_ms: ratio, tfjs_rate: null, ratio, reps: 1, timing: 'gpu', warm_ms: 300 };
}

describe('bench/targets', () => {
  // every layer shape at 31 TFLOP/s but qkv dW at 29.5
  const layers = ['proj', 'qkv', 'fc1', 'fc2'].flatMap((l) =>
    ['fwd', 'dX', 'dW'].map((p) => row(`${l} ${p} 25600x768x768 A·B`, 'GFLOP/s', l === 'qkv' && p === 'dW' ? 29_500 : 31_000)),
  );
  const rows = [
    row('copy (vec4) 19660800', 'GB/s', 2500),
    row('copy (vec4) 134217728', 'GB/s', 3000),
    row('layerNorm fwd 25600x768', 'GB/s', 2400),
    row('layerNorm fwd+bwd 25600x768', 'GB/s', 2700),
    row('softmax fwd 409600x400', 'GB/s', 1800),
    row('softmax fwd+bwd 409600x400', 'GB/s', 2200),
    row('adamw 96.300M params / 5 tensors', 'GB/s', 2500),
    row('matmul 4096x4096x4096', 'GFLOP/s', 41_000),
    ...layers,
    row('attention encoder cropa B64 H16 T400 Dh48 fwd+bwd', 'GFLOP/s', 5_000, 3.2),
  ];

  it('judges each goal by its weakest row, once all its rows are there', () => {
    const results = evaluateTargets(rows);
    assert(results.length === 5, `five goals, got ${results.length}`);
    const [square, shapes, f16, attention, bandwidth] = results;
    assert(square.met === true && square.worst?.value === 41, `square: ${JSON.stringify(square)}`);
    assert(shapes.met === false && shapes.found === 12 && shapes.worst?.name.startsWith('qkv dW') && shapes.worst.value === 29.5, `shapes: ${JSON.stringify(shapes)}`);
    assert(f16.met === null && f16.worst === null && f16.found === 0, `f16 absent: ${JSON.stringify(f16)}`);
    assert(attention.met === true && attention.worst?.value === 3.2, `attention: ${JSON.stringify(attention)}`);
    assert(bandwidth.met === false && bandwidth.worst?.name === 'softmax fwd 409600x400' && bandwidth.worst.value === 0.6, `bandwidth: ${JSON.stringify(bandwidth)}`);
    const text = formatTargets(results);
    assert(/^missed {2}fp32 matmul on every/m.test(text) && /^not run {2}f16/m.test(text), text);
  });

  it('a goal with some of its rows absent (failed, or left out by --only) is incomplete, neither met nor missed', () => {
    // without the weak dW row and the weak softmax row the rest would pass
    const partial = rows.filter((r) => !r.name.startsWith('qkv dW') && !r.name.startsWith('softmax fwd '));
    const [, shapes, , , bandwidth] = evaluateTargets(partial);
    assert(shapes.met === null && shapes.found === 11 && shapes.needs === 12, `shapes: ${JSON.stringify(shapes)}`);
    assert(bandwidth.met === null && bandwidth.found === 4, `bandwidth: ${JSON.stringify(bandwidth)}`);
    assert(/^incomplete \(11 of 12 rows\) {2}fp32 matmul on every/m.test(formatTargets(evaluateTargets(partial))), formatTargets(evaluateTargets(partial)));
  });

  it("'variant' rows (a kernel's options, explored) are not read by the goals", () => {
    const withVariant = [...rows, row('variant layerNorm fwd+bwd 25600x768, 2 rows per subgroup', 'GB/s', 300)];
    const bandwidth = evaluateTargets(withVariant)[4];
    assert(bandwidth.worst?.name === 'softmax fwd 409600x400' && bandwidth.found === 5, `bandwidth: ${JSON.stringify(bandwidth)}`);
  });

  it('copy fractions are against the fastest copy row, and need one', () => {
    assert(copyFractions(rows).get('layerNorm fwd 25600x768') === 0.8, 'layerNorm at 80% of the faster copy');
    assert(copyFractions(rows.slice(2)).size === 0, 'no copy row, no fractions');
  });
});
