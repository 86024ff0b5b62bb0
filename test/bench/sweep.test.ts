// bench sweep: every candidate is checked before it is timed, one that does not fit is reported
// (not fatal), and the layer pass times the fastest candidates beside matmul's own choice.
import { formatLayers, formatSweep, kernelDistance, nearestFirst, sweepCandidates, sweepLayers, sweepMatmul, type Candidate } from '../../bench/sweep.js';
import { matmulConfigs, matmulKernelKey } from '../../kernels/matmul.js';
import { assert, getEngine } from '../helpers.js';

describe('bench/sweep', function () {
  this.timeout(300_000);

  it('candidates: the named configs first, then only specs this device fits, none twice', async () => {
    const { device } = await getEngine();
    const cands = sweepCandidates(device, 'f32');
    const named = matmulConfigs(device, 'f32');
    assert(cands.slice(0, named.length).every((c, i) => c.config === named[i]), `named first: ${cands.slice(0, named.length).map((c) => c.label)}`);
    const specs = cands.slice(named.length);
    assert(specs.length > 0 && specs.every((c) => typeof c.config === 'object'), `${specs.length} specs`);
    // distinct kernels: none twice, none a named config's
    const keys = specs.map((c) => matmulKernelKey(c.config!));
    assert(new Set(keys).size === keys.length, 'no kernel twice');
    assert(!named.some((c) => keys.includes(matmulKernelKey(c))), 'no named config repeated as a spec');
    const room = device.limits.maxComputeWorkgroupStorageSize;
    for (const c of specs) {
      const t = c.config as { BM: number; BN: number; BK: number };
      assert(2 * t.BK * (t.BM + t.BN) * 4 <= room, `${c.label} fits ${room} B of workgroup memory`);
    }
  });

  it('kernel distance: |log2| of each parameter ratio (defaults filled in), 1 for other panel buffering; nearest first, ties in order', () => {
    const near = (a: number, b: number) => Math.abs(a - b) < 1e-12;
    // xlarge16 is 128×256, K step 16, 8×8 per invocation, 32-wide thread rows
    assert(kernelDistance('xlarge16', { BM: 128, BN: 256, BK: 16, TM: 8, TN: 8 }) === 0, 'a name and its parameters');
    assert(near(kernelDistance('xlarge16', { BM: 128, BN: 256, BK: 16, TM: 8, TN: 8, LX: 8 }), 2), 'LX 32 → 8');
    assert(near(kernelDistance('xlarge16', { BM: 256, BN: 128, BK: 32, TM: 8, TN: 8 }), 4), '256×128: 1 + 1, K step 1, LX 32 → 16 (the default there)');
    const sg = { BM: 128, BN: 128, BK: 32, subgroups: 4, FM: 4, FN: 4, buffers: 1 } as const;
    assert(kernelDistance('subgroup-matrix-128-4sg', sg) === 0 && kernelDistance('subgroup-matrix-128-4sg-db', sg) === 1, 'buffers: 1 apart');
    assert(near(kernelDistance('subgroup-matrix-128-4sg', { ...sg, BK: 64, buffers: 0 }), 2), 'K step 1, buffers 1');
    const c = (label: string, config?: Candidate['config']): Candidate => ({ label, config });
    const order = nearestFirst([c('auto'), c('far', { ...sg, BM: 64, subgroups: 2 }), c('k64', { ...sg, BK: 64 }), c('db', { ...sg, buffers: 2 }), c('k16', { ...sg, BK: 16 })], sg);
    assert(order.map((x) => x.label).join() === 'k64,db,k16,far,auto', `nearest first, ties in order, no config last: ${order.map((x) => x.label)}`);
  });

  it('checks, times and ranks, the specs nearest the fastest named config first; a spec that does not fit is reported; the layer pass', async () => {
    const engine = await getEngine();
    const candidates: Candidate[] = [
      { label: 'mid', config: 'mid' },
      { label: 'too big', config: { BM: 256, BN: 256, BK: 32, TM: 4, TN: 4 } },
      { label: 'blocks of 8x4', config: { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, LX: 8 } },
    ];
    const lines: string[] = [];
    const dims = { M: 72, N: 100, K: 36, transB: true };
    const rows = await sweepMatmul(engine, { precision: 'f32', dims, targetMs: 5, candidates }, (l) => lines.push(l));
    // mid's neighbour (LX 8 for its 16) before the far one
    assert(rows.map((r) => `${r.label}:${r.status}`).join() === 'mid:ok,blocks of 8x4:ok,too big:unfit', `rows ${JSON.stringify(rows)}`);
    for (const r of rows.slice(0, 2)) {
      assert(r.checkError! < 1e-5 && r.ms! > 0, `${r.label}: checked and timed ${JSON.stringify(r)}`);
      assert(Math.abs(r.rate! - (2 * 72 * 100 * 36) / (r.ms! * 1e6)) < 1e-9 * r.rate!, `${r.label}: GFLOP/s from ms`);
    }
    assert(lines.length === 4 && lines[1].includes('nearest mid first') && lines[3].includes('too big: unfit'), `a line per candidate: ${lines}`);
    const table = formatSweep(rows);
    assert(table.includes('blocks of 8x4') && table.includes('1 skipped: too big (unfit)'), table);

    const shapes = [{ name: 'a fwd', dims: { M: 40, N: 24, K: 16, transB: true } }, { name: 'a dW', dims: { M: 24, N: 16, K: 40, transA: true } }];
    const layers = await sweepLayers(engine, rows, 1, 'f32', 5, () => {}, shapes);
    // the fastest timed candidate and matmul's own choice, on each shape
    assert(layers.length === 4 && layers.every((r) => r.status === 'ok' && r.rate! > 0), JSON.stringify(layers));
    assert(layers.filter((r) => r.label === 'autotuned').every((r) => r.picked && r.checkError! < 1e-5), `autotuned rows name their pick ${JSON.stringify(layers)}`);
    const failed = formatLayers([
      { label: 'k', shape: 'a fwd', status: 'ok', rate: 10 },
      { label: 'k', shape: 'a dW', status: 'error', error: 'x' },
    ]);
    assert(/^k +10\.00 +- +-$/m.test(failed), `a failed shape: no min over the rest\n${failed}`);
    const lt = formatLayers(layers);
    assert(lt.includes('autotuned') && lt.includes('a fwd') && lt.includes('a dW'), lt);
  });

  it('stream-K: every tile checked and timed with it (--stream-k)', async () => {
    const engine = await getEngine();
    const rows = await sweepMatmul(engine, { precision: 'f32', dims: { M: 72, N: 100, K: 36 }, targetMs: 5, candidates: [{ label: 'mid', config: 'mid' }], streamK: 5 });
    assert(rows.length === 1 && rows[0].status === 'ok' && rows[0].streamK === 5 && rows[0].checkError! < 1e-5 && rows[0].ms! > 0, JSON.stringify(rows));
  });
});
