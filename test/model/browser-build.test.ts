// The browser build (dist/browser/, made by scripts/build.mjs before the tests run). Under Node:
// its modules exist, reach no Node module (no static node: import, no literal import('node:…'),
// no require) and their relative imports resolve; package.json's "browser" conditions point at
// them. In Chromium, where scripts/test.mjs also serves dist/browser/ and examples/browser/: the
// modules import as a web page imports them and compute what the source computes, and the example
// page runs to the end.
import { Engine } from '../../engine/engine.js';
import { Rng } from '../../engine/random.js';
import { Tape } from '../../engine/tape.js';
import { checkpointToBytes } from '../../model/checkpoint.js';
import { inputLength, makeConfig, type EcgJepaConfig } from '../../model/config.js';
import { Encoder, readParams } from '../../model/encoder.js';
import { assert, getEngine, isBrowser, randomArray } from '../helpers.js';

const ENTRIES = ['kernels', 'engine', 'model'];

/** The mean-pooled representation of `x` [B, C, L] by the source encoder with `new Rng(seed)` weights. */
async function sourceRepresentation(engine: Engine, cfg: EcgJepaConfig, seed: number, x: Float32Array): Promise<Float32Array> {
  const enc = new Encoder(engine, cfg, new Rng(seed));
  const tape = new Tape(engine);
  const t = engine.upload(x, [x.length / (cfg.leads.length * inputLength(cfg)), cfg.leads.length, inputLength(cfg)]);
  const r = tape.noGrad(() => engine.scope(() => enc.representation(tape, t)));
  const v = await engine.read(r);
  r.dispose();
  t.dispose();
  enc.dispose();
  return v;
}

/** Node's fs and path, the repository root (the tests run there) and its package.json. */
async function repository() {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const root = process.cwd();
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  assert(pkg.name === 'ecg-jepa', `run the tests from the repository root (cwd ${root})`);
  return { fs, path, root, pkg };
}

if (!isBrowser) {
  describe('browser build: dist/browser (Node)', () => {
    it('every module exists, imports no Node module or Dawn, and its relative imports resolve; package.json points at it', async () => {
      const { fs, path, root, pkg } = await repository();
      const dir = path.join(root, 'dist/browser');
      const files = (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith('.js')).map((f) => path.join(dir, f));
      for (const e of ENTRIES) {
        assert(files.includes(path.join(dir, `${e}.js`)), `dist/browser/${e}.js missing (the test command builds it first)`);
        assert(pkg.exports[`./${e}`].browser === `./dist/browser/${e}.js`, `package.json exports ./${e} has no browser condition for it`);
        assert(Object.keys(pkg.exports[`./${e}`])[0] === 'types', `exports ./${e}: "types" must come first`);
      }
      const bad: [RegExp, string][] = [
        [/\b(import|export)\b[^;'"`]*?\bfrom\s*["']node:/, 'static import of a node: module'],
        [/\bimport\s*["']node:/, 'side-effect import of a node: module'],
        [/\bimport\(\s*(\/\*[^]*?\*\/\s*)*["'](node:|webgpu["'])/, 'import() of a literal node: module or webgpu (a web bundler would try to resolve it)'],
        [/\brequire\s*\(/, 'require('],
        [/\bfrom\s*["']webgpu["']/, 'static import of webgpu (Dawn)'],
      ];
      for (const f of files) {
        const text = fs.readFileSync(f, 'utf8');
        for (const [re, what] of bad) assert(!re.test(text), `${path.relative(root, f)}: ${what}: ${text.match(re)?.[0]}`);
        for (const m of text.matchAll(/\b(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g))
          assert(fs.existsSync(path.join(path.dirname(f), m[1])), `${path.relative(root, f)} imports ${m[1]}, which is not there`);
      }
    });
  });
}

if (!isBrowser) {
  describe('package build: dist (Node)', () => {
    it('the Node entry points share one copy of each module, and every export has its type declarations', async () => {
      const { fs, path, root, pkg } = await repository();
      // a literal of kernels/matmul.ts: in one file only, or ecg-jepa/kernels and ecg-jepa/engine would
      // each hold their own matmul state (tuning, pipeline caches)
      const files = [...fs.readdirSync(path.join(root, 'dist')).map((f) => path.join('dist', f)), ...fs.readdirSync(path.join(root, 'dist/chunks')).map((f) => path.join('dist/chunks', f))].filter((f) => f.endsWith('.mjs'));
      const holding = files.filter((f) => fs.readFileSync(path.join(root, f), 'utf8').includes('matmul dummy (read)'));
      assert(holding.length === 1 && holding[0].startsWith(path.join('dist', 'chunks')), `matmul's code is in ${holding.join(', ')}`);
      for (const e of [...ENTRIES, 'train']) {
        const types = pkg.exports[`./${e}`].types;
        assert(/^\.\/dist\/types\/.+\.d\.ts$/.test(types) && fs.existsSync(path.join(root, types)), `exports ./${e}: types ${types} (built declarations, not sources)`);
      }
    });
  });
}

if (isBrowser) {
  describe('browser build: dist/browser in the page', () => {
    // Hidden from esbuild, so the page itself fetches the module, as a web page would.
    const load = (url: string): Promise<any> => import(/* @vite-ignore */ url);

    it('dist/browser/model.js imports and gives the source representation, from random weights and from checkpoint bytes', async () => {
      const engine = await getEngine();
      const [E, M] = await Promise.all([load('/dist/browser/engine.js'), load('/dist/browser/model.js')]);
      const cfg = makeConfig('tiny');
      const x = randomArray(new Rng(8), 2 * 3 * inputLength(cfg));
      const ref = await sourceRepresentation(engine, cfg, 4, x);
      // The built modules on the suite's device: their own Engine, Encoder and kernels.
      const e2 = new E.Engine(engine.gpu);
      const run = async (enc: any) => {
        const tape = new E.Tape(e2);
        const t = e2.upload(x, [2, 3, inputLength(cfg)]);
        const r = tape.noGrad(() => e2.scope(() => enc.representation(tape, t)));
        const v: Float32Array = await e2.read(r);
        r.dispose();
        t.dispose();
        return v;
      };
      const a = new M.Encoder(e2, M.makeConfig('tiny'), new E.Rng(4));
      const va = await run(a);
      assert(va.length === 2 * cfg.encoder.dim && va.every((v, i) => v === ref[i]), `random weights: built ${va.slice(0, 4)}, source ${ref.slice(0, 4)}`);
      // Weights of seed 4 as checkpoint bytes (the source writes them), parsed by the built module
      // into an encoder initialised from another seed.
      const src = new Encoder(engine, cfg, new Rng(4));
      const weights = await readParams(src.reg);
      const tensors = new Map([...weights].map(([k, v]) => [k, { dtype: 'F32' as const, shape: [...src.reg.get(k).shape], data: v }]));
      src.dispose();
      const bytes = checkpointToBytes({ config: cfg, state: { step: 5 }, tensors });
      const ck = M.checkpointFromBytes(bytes.tensors.slice().buffer, bytes.meta, { expect: M.makeConfig('tiny') });
      const b = new M.Encoder(e2, ck.config, new E.Rng(99));
      M.loadParams(b.reg, new Map([...ck.tensors].map(([k, t]: [string, any]) => [k, M.asFloat32(t)])));
      const vb = await run(b);
      assert(ck.state.step === 5 && vb.every((v, i) => v === ref[i]), `checkpoint weights: built ${vb.slice(0, 4)}, source ${ref.slice(0, 4)}`);
      a.dispose();
      b.dispose();
    });

    it('examples/browser runs to the end: the representation of its ECG is the source encoder’s', async () => {
      const frame = document.createElement('iframe');
      frame.src = '/examples/browser/index.html?seed=5&runs=1';
      document.body.appendChild(frame);
      try {
        const w = frame.contentWindow as any;
        const t0 = Date.now();
        while (!w.ecgJepaExample) {
          assert(Date.now() - t0 < 60_000, 'the example never started (module script not loaded?)');
          await new Promise((r) => setTimeout(r, 50));
        }
        const r = await w.ecgJepaExample;
        const cfg = makeConfig('tiny');
        assert(r.preset === 'tiny' && r.input.length === 3 * inputLength(cfg), `example ran preset ${r.preset} on ${r.input.length} samples`);
        const text = frame.contentDocument!.getElementById('out')!.textContent!;
        assert(/representation \(32 values/.test(text) && /time: first call [\d.]+ ms/.test(text), `page text:\n${text}`);
        const ref = await sourceRepresentation(await getEngine(), cfg, 5, Float32Array.from(r.input));
        assert(r.representation.length === 32 && Array.from(r.representation as Float32Array).every((v, i) => Math.abs(v - ref[i]) <= 1e-5 * (1 + Math.abs(ref[i]))), `example ${r.representation.slice(0, 4)}, source ${ref.slice(0, 4)}`);
      } finally {
        frame.remove();
      }
    });
  });
}
