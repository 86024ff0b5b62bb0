// Runs the one mocha suite twice: under Node (Dawn on the local Vulkan adapter, lavapipe on CI)
// and inside headless Chromium (WebGPU on SwiftShader) via puppeteer-core. Ends with one line
// `N passed, N failed` counting both runners. Options: --node-only, --browser-only, --grep PATTERN.
// The two runners run at the same time. Their CPU-bound phases are mostly one shader compile at a
// time, so on a 2-core machine the second core was idle for much of a run. The browser's lines are
// printed after the Node runner's.
// The page's server also serves dist/browser/ and examples/browser/ (test/model/browser-build.test.ts).
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, extname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { sendFile } from './static.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = process.env.ECG_BUILD_DIR || '.build';
const args = process.argv.slice(2);
const grepAt = args.indexOf('--grep');
const grep = grepAt >= 0 ? args[grepAt + 1] : undefined;
const runNode = !args.includes('--browser-only');
const runBrowser = !args.includes('--node-only');

async function nodeRun() {
  const { default: Mocha } = await import('mocha');
  const mocha = new Mocha({ timeout: 600_000, reporter: 'spec', grep });
  mocha.suite.emit('pre-require', globalThis, null, mocha);
  await import(pathToFileURL(join(root, out, 'test-node.mjs')).href);
  return new Promise((resolve) => {
    const runner = mocha.run(() => resolve({ passed: runner.stats.passes, failed: runner.stats.failures }));
  });
}

function findChromium() {
  for (const p of [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'])
    if (p && existsSync(p)) return p;
  return null;
}

/** log: where the page's lines go (held back while the Node runner prints). */
async function browserRun(log) {
  const executablePath = findChromium();
  if (!executablePath) {
    log('browser tests: no Chromium found (run bash scripts/setup.sh); counted as 1 failure');
    return { passed: 0, failed: 1 };
  }
  const types = { '.js': 'text/javascript', '.html': 'text/html', '.map': 'application/json' };
  const files = {
    '/mocha.js': join(root, 'node_modules/mocha/mocha.js'),
    '/test.js': join(root, out, 'test-browser.js'),
    '/test.js.map': join(root, out, 'test-browser.js.map'),
  };
  const page = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head><body><div id="mocha"></div>
<script src="/mocha.js"></script>
<script>
  mocha.setup({ ui: 'bdd', timeout: 600000, reporter: function (runner) {
    const indent = () => '  '.repeat(depth); let depth = 0;
    runner.on('suite', (s) => { if (s.title) { console.log(indent() + s.title); depth++; } });
    runner.on('suite end', (s) => { if (s.title) depth--; });
    runner.on('pass', (t) => console.log(indent() + '✓ ' + t.title + ' (' + t.duration + 'ms)'));
    runner.on('fail', (t, err) => console.log(indent() + '✗ ' + t.title + '\\n' + (err && (err.stack || err.message))));
    runner.on('end', () => { window.__result = { passed: runner.stats.passes, failed: runner.stats.failures }; });
  }${grep ? `, grep: ${JSON.stringify(grep)}` : ''} });
</script>
<script src="/test.js"></script>
<script>mocha.run();</script></body></html>`;
  const server = createServer(async (req, res) => {
    const url = req.url.split('?')[0];
    if (url === '/' || url === '/index.html') return res.writeHead(200, { 'content-type': 'text/html' }).end(page);
    const f = files[url];
    if (f) return res.writeHead(200, { 'content-type': types[extname(url)] ?? 'application/octet-stream' }).end(await readFile(f));
    // The browser build and its example, for the tests that import them as a page would.
    if (/^\/(dist\/browser|examples\/browser)\//.test(url) && (await sendFile(root, url, res))) return;
    res.writeHead(404).end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  const { default: puppeteer } = await import('puppeteer-core');
  const userDataDir = mkdtempSync(join(tmpdir(), 'ecg-jepa-chromium-'));
  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    userDataDir,
    // The suite runs for minutes inside one page; puppeteer's per-call default (180 s) would cut it.
    protocolTimeout: 0,
    args: [
      '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-angle=swiftshader',
      '--use-webgpu-adapter=swiftshader', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic', '--disable-dev-shm-usage',
    ],
  });
  try {
    const tab = await browser.newPage();
    tab.on('console', (m) => log('[browser] ' + m.text()));
    tab.on('pageerror', (e) => log('[browser] page error: ' + e.message));
    await tab.goto(`http://127.0.0.1:${port}/`);
    await tab.waitForFunction('window.__result !== undefined', { timeout: 0, polling: 500 });
    return await tab.evaluate('window.__result');
  } finally {
    await browser.close();
    server.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

let passed = 0, failed = 0;
const t0 = Date.now();
const held = [];
let browserLog = runNode ? (line) => held.push(line) : (line) => console.log(line);
const browserResult = runBrowser
  ? browserRun((line) => browserLog(line)).catch((e) => {
      browserLog('browser run failed: ' + (e.stack || e));
      return { passed: 0, failed: 1 };
    })
  : null;
if (runNode) {
  console.log('== Node (Dawn)');
  const r = await nodeRun();
  console.log(`node: ${r.passed} passed, ${r.failed} failed`);
  passed += r.passed; failed += r.failed;
  if (r.passed + r.failed === 0) { console.log('node: no test ran'); failed++; }
}
if (browserResult) {
  console.log('== Chromium (WebGPU on SwiftShader)');
  held.splice(0).forEach((line) => console.log(line));
  browserLog = (line) => console.log(line);
  const r = await browserResult;
  console.log(`browser: ${r.passed} passed, ${r.failed} failed`);
  passed += r.passed; failed += r.failed;
  if (r.passed + r.failed === 0) { console.log('browser: no test ran'); failed++; }
}
console.log(`(${((Date.now() - t0) / 1000).toFixed(1)} s)`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
