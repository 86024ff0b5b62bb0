// `bench pipeline-stats` pairs each pipeline with the lines the Vulkan layer wrote while creating it.
// No CI driver reports statistics (lavapipe lacks the extension), so a stand-in for the layer writes
// them here, as the layer does: during the pipeline's creation.
import { getPipeline } from '../../kernels/runtime.js';
import { assert, getEngine, isBrowser } from '../helpers.js';

if (!isBrowser) {
  describe('bench/pipeline-stats (Node)', () => {
    it("names each pipeline's statistics, and leaves the device as it found it", async () => {
      const engine = await getEngine();
      const { collectPipelineStats, formatPipelineStats } = await import('../../bench/pipeline-stats.js');
      const { appendFileSync, mkdtempSync, readFileSync, rmSync } = await import('node:fs');
      const { tmpdir } = await import('node:os');
      const { join } = await import('node:path');
      const dir = mkdtempSync(join(tmpdir(), 'ecg-jepa-stats-'));
      const file = join(dir, 'stats.txt'), irFile = join(dir, 'ir.txt');
      const device = engine.device;
      const real = device.createComputePipeline;
      // the stand-in layer: a statistic from the label's length, none for labels ending in 'quiet'
      device.createComputePipeline = (d: GPUComputePipelineDescriptor) => {
        const p = real.call(device, d);
        if (!d.label?.endsWith('quiet')) {
          appendFileSync(file, `pipeline-stats main | Register Count=${d.label?.length}\nnoise\n`);
          appendFileSync(irFile, `=== main | SASS: ${d.label?.length}\n`);
        }
        return p;
      };
      const tag = `${Date.now()}`;
      const code = '@compute @workgroup_size(1) fn main() {}';
      try {
        const stats = await collectPipelineStats(engine, file, async () => {
          getPipeline(device, `stats_a_${tag}`, () => code);
          getPipeline(device, `stats_b_${tag}_quiet`, () => code);
          getPipeline(device, `stats_c_${tag}_longer`, () => code);
        }, irFile);
        const want = [`stats_a_${tag}`, `stats_b_${tag}_quiet`, `stats_c_${tag}_longer`];
        assert(JSON.stringify(stats.map((s) => s.pipeline)) === JSON.stringify(want), `pipelines ${JSON.stringify(stats)}`);
        assert(stats[0].executables.join() === `main | Register Count=${want[0].length}`, `first: ${stats[0].executables}`);
        assert(stats[1].executables.length === 0, `the quiet one has none: ${stats[1].executables}`);
        assert(stats[2].executables.join() === `main | Register Count=${want[2].length}`, `third: ${stats[2].executables}`);
        assert(formatPipelineStats(stats).includes(`${want[1]}  (no statistics)`), formatPipelineStats(stats));
        // each pipeline's key precedes what the layer wrote of it
        const ir = readFileSync(irFile, 'utf8');
        const irWant = `##### ${want[0]}\n=== main | SASS: ${want[0].length}\n##### ${want[1]}\n##### ${want[2]}\n=== main | SASS: ${want[2].length}\n`;
        assert(ir === irWant, `representations file:\n${ir}`);
        const wrapped = device.createComputePipeline;
        await collectPipelineStats(engine, file, async () => {});
        assert(device.createComputePipeline === wrapped, 'the device keeps the function it had');
      } finally {
        device.createComputePipeline = real;
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
