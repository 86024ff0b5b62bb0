// `npm run bench -- kernels [--scale ci|full] [--only SUBSTR] [--json] [--no-tfjs] [--save] [--target-ms N]`
// Our kernels against tfjs-backend-webgpu, same process, same adapter. --json prints the rows as
// JSON on stdout; --save also writes them with device, date and command to bench/results/.
import { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Engine } from '../engine/engine.js';
import { describeGpu } from '../engine/device.js';
import { formatRows, loadTfjs, runCase, type BenchRow, type Scale } from './harness.js';
import { kernelCases } from './kernels/index.js';
import { copyFractions, evaluateTargets, formatTargets } from './targets.js';

const program = new Command();
program.name('bench');
program
  .command('kernels')
  .description('each kernel vs its tfjs equivalent')
  .option('--scale <ci|full>', "'ci' = tiny shapes (CPU), 'full' = ECG-JEPA shapes (GPU)", 'ci')
  .option('--only <substr>', 'only cases whose name contains this')
  .option('--json', 'print rows as JSON on stdout')
  .option('--no-tfjs', 'skip the tfjs peer')
  .option('--save', 'write results to bench/results/')
  .option('--target-ms <n>', 'time per timed round', '300')
  .option('--backend <name>', 'Dawn backend')
  .action(async (o) => {
    const scale = o.scale as Scale;
    if (scale !== 'ci' && scale !== 'full') throw new Error(`--scale must be ci or full, got ${o.scale}`);
    const engine = await Engine.create({ backend: o.backend, subgroupMatrix: true });
    const log = o.json ? (s: string) => console.error(s) : (s: string) => console.log(s);
    try {
      log(describeGpu(engine.gpu.info));
      const tf = o.tfjs ? await loadTfjs(engine) : null;
      const cases = kernelCases(scale).filter((c) => !o.only || c.name.includes(o.only));
      const rows: BenchRow[] = [];
      for (const c of cases) {
        const row = await runCase(engine, tf, c, Number(o.targetMs));
        rows.push(row);
        log(formatRows([row]).split('\n')[2]);
      }
      for (const [name, f] of copyFractions(rows)) rows.find((r) => r.name === name)!.of_copy = f;
      const targets = evaluateTargets(rows);
      log('\n' + formatRows(rows));
      if (scale === 'full') log('\nGPU goals (ours, this run):\n' + formatTargets(targets));
      if (o.json) console.log(JSON.stringify(rows, null, 2));
      if (o.save) {
        const date = new Date().toISOString();
        const info = engine.gpu.info;
        const file = `bench/results/kernels-${scale}-${info.device.replace(/[^a-z0-9]+/gi, '-')}-${date.slice(0, 10)}.json`;
        mkdirSync('bench/results', { recursive: true });
        writeFileSync(file, JSON.stringify({ date, command: process.argv.slice(1).join(' '), device: info, rows, ...(scale === 'full' ? { targets } : {}) }, null, 2) + '\n');
        log(`saved ${file}`);
      }
    } finally {
      engine.close();
    }
  });

program
  .parseAsync()
  .then(() => process.exit(0))
  .catch((e) => {
    console.error(`bench: ${e instanceof Error ? e.stack : e}`);
    process.exit(1);
  });
