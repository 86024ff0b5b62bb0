#!/usr/bin/env node
// The ecg-jepa command line: a thin layer over library functions.
import { Command } from 'commander';
import { describeGpu } from '../engine/device.js';
import { Engine } from '../engine/engine.js';
import { smokeDemo } from './smoke.js';

const program = new Command();
program.name('ecg-jepa').description('ECG-JEPA on a hand-written WebGPU engine').version('0.1.0');
program.option('--backend <name>', 'Dawn backend (vulkan, metal, d3d12, ...)');

/** Runs `fn` with an engine and always releases the device so the process can exit. */
async function withEngine<T>(fn: (engine: Engine) => Promise<T>): Promise<T> {
  const engine = await Engine.create({ backend: program.opts().backend });
  try {
    return await fn(engine);
  } finally {
    engine.close();
  }
}

program
  .command('info')
  .description('print the adapter, backend, features and limits in use')
  .option('--json', 'print JSON')
  .action(async (o) =>
    withEngine(async (engine) => {
      console.log(o.json ? JSON.stringify(engine.gpu.info, null, 2) : describeGpu(engine.gpu.info));
    }),
  );

program
  .command('smoke')
  .description('run a kernel on the device and check every element against the CPU')
  .option('-n, --size <n>', 'elements', '1000000')
  .action(async (o) =>
    withEngine(async (engine) => {
      const r = await smokeDemo(engine, Number(o.size));
      console.log(`smoke: ${r.n} elements, max abs error ${r.maxError.toExponential(2)}, ${r.ms.toFixed(1)} ms -> ${r.ok ? 'OK' : 'FAILED'}`);
      if (!r.ok) process.exitCode = 1;
    }),
  );

program
  .parseAsync()
  .then(() => process.exit(process.exitCode ?? 0))
  .catch((e) => {
    console.error(`ecg-jepa: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  });
