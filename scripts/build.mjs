// Builds with esbuild: the CLI and library entry points into dist/, and the test suite into one
// bundle per runner (.build/test-node.mjs for Node/Dawn, .build/test-browser.js for Chromium).
import { build } from 'esbuild';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
const nodeBanner = "import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);";
const common = { bundle: true, sourcemap: 'linked', logLevel: 'warning', target: 'es2022' };

const entries = {
  'dist/cli': 'train/cli.ts',
  'dist/bench': 'bench/main.ts',
  'dist/kernels': 'kernels/index.ts',
  'dist/engine': 'engine/index.ts',
  'dist/model': 'model/index.ts',
  'dist/train': 'train/index.ts',
};
const nodeEntries = Object.fromEntries(Object.entries(entries).filter(([, src]) => existsSync(src)));

await Promise.all([
  build({
    ...common,
    entryPoints: nodeEntries,
    outdir: '.',
    outExtension: { '.js': '.mjs' },
    platform: 'node',
    format: 'esm',
    packages: 'external',
    banner: { js: nodeBanner },
  }),
  build({
    ...common,
    entryPoints: { '.build/test-node': 'test/index.ts' },
    outdir: '.',
    outExtension: { '.js': '.mjs' },
    platform: 'node',
    format: 'esm',
    external: ['webgpu', 'mocha', '@tensorflow/*', 'puppeteer-core'],
    banner: { js: nodeBanner },
  }),
  build({
    ...common,
    entryPoints: { '.build/test-browser': 'test/index.ts' },
    outdir: '.',
    platform: 'browser',
    format: 'iife',
    external: ['webgpu', 'node:*'],
    define: { 'process.env.NODE_ENV': '"test"' },
  }),
]);
