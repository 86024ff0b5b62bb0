// `npm run bench -- kernels [--scale ci|full] [--group G,..] [--only SUBSTR] [--json] [--no-tfjs] [--save] [--target-ms N]`
// Our kernels against tfjs-backend-webgpu, same process, same adapter. --json prints the rows as
// JSON on stdout; --save also writes them with device, date and command to bench/results/.
import { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import { writeFileAtomic } from '../model/checkpoint.js';
import { Engine } from '../engine/engine.js';
import { describeGpu } from '../engine/device.js';
import { formatRows, loadTfjs, runCase, type BenchRow, type Scale } from './harness.js';
import { KERNEL_GROUPS, kernelCases } from './kernels/index.js';
import { copyFractions, evaluateTargets, formatTargets } from './targets.js';

const program = new Command();
program.name('bench');
program
  .command('kernels')
  .description('each kernel vs its tfjs equivalent')
  .option('--scale <ci|full>', "'ci' = tiny shapes (CPU), 'full' = ECG-JEPA shapes (GPU)", 'ci')
  .option('--group <names>', `only these kernel groups, comma-separated (${KERNEL_GROUPS.join(', ')})`)
  .option('--only <substr>', 'only cases whose name contains this')
  .option('--json', 'print rows as JSON on stdout')
  .option('--no-tfjs', 'skip the tfjs peer')
  .option('--save', 'write results to bench/results/')
  .option('--target-ms <n>', 'time per timed round', '300')
  .option('--backend <name>', 'Dawn backend')
  .option('--dawn-toggles <list>', 'more Dawn toggles, comma-separated (e.g. disable_robustness: no index clamps on workgroup memory)')
  .action(async (o) => {
    const scale = o.scale as Scale;
    if (scale !== 'ci' && scale !== 'full') throw new Error(`--scale must be ci or full, got ${o.scale}`);
    const engine = await Engine.create({ backend: o.backend, subgroupMatrix: true, dawnToggles: o.dawnToggles?.split(',') });
    const log = o.json ? (s: string) => console.error(s) : (s: string) => console.log(s);
    try {
      log(describeGpu(engine.gpu.info));
      const tf = o.tfjs ? await loadTfjs(engine) : null;
      const groups: string[] | undefined = o.group?.split(',').map((g: string) => g.trim());
      const cases = kernelCases(scale, groups).filter((c) => !o.only || c.name.includes(o.only));
      const rows: BenchRow[] = [];
      const failed: { name: string; error: string }[] = [];
      const date = new Date().toISOString();
      const info = engine.gpu.info;
      const file = `bench/results/kernels-${scale}${groups ? `-${groups.join('_')}` : ''}-${info.device.replace(/[^a-z0-9]+/gi, '-')}-${date.slice(0, 10)}.json`;
      // Saved after every case, so a run cut short (a time limit on a borrowed GPU) keeps what it measured.
      const save = async () => {
        for (const [name, f] of copyFractions(rows)) rows.find((r) => r.name === name)!.of_copy = f;
        if (!o.save) return;
        mkdirSync('bench/results', { recursive: true });
        const targets = scale === 'full' ? { targets: evaluateTargets(rows) } : {};
        await writeFileAtomic(file, JSON.stringify({ date, command: process.argv.slice(1).join(' '), device: info, rows, ...targets, ...(failed.length ? { failed } : {}) }, null, 2) + '\n');
      };
      for (const c of cases) {
        try {
          const row = await runCase(engine, tf, c, Number(o.targetMs));
          rows.push(row);
          log(formatRows([row]).split('\n')[2]);
        } catch (e) {
          // one case that does not fit this device (memory, limits) must not cost the others
          failed.push({ name: c.name, error: (e as Error).message });
          log(`${c.name}: FAILED: ${(e as Error).message}`);
        }
        await save();
      }
      log('\n' + formatRows(rows));
      if (scale === 'full') log('\nGPU goals (ours, this run):\n' + formatTargets(evaluateTargets(rows)));
      if (failed.length) log(`\n${failed.length} case(s) failed: ${failed.map((f) => f.name).join('; ')}`);
      if (o.json) console.log(JSON.stringify(rows, null, 2));
      if (o.save) log(`saved ${file}`);
      if (failed.length) process.exitCode = 1;
    } finally {
      engine.close();
    }
  });

program
  .parseAsync()
  .then(() => process.exit(process.exitCode ?? 0))
  .catch((e) => {
    console.error(`bench: ${e instanceof Error ? e.stack : e}`);
    process.exit(1);
  });
