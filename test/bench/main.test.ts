// The bench command line (dist/bench.mjs): options are checked before the device starts (minutes
// on a borrowed GPU's first call), and an error prints its message, not a stack. Node only.
import { assert, isBrowser } from '../helpers.js';

if (!isBrowser)
  describe('bench: command line', function () {
    this.timeout(60_000);

    async function bench(args: string[]): Promise<{ code: number | null; out: string }> {
      const [cp, path] = await Promise.all([import('node:child_process'), import('node:path')]);
      const child = cp.spawn(process.execPath, [path.resolve('dist/bench.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out })));
    }

    it('refuses bad options before opening the device, with a message and no stack', async () => {
      for (const [args, re] of [
        [['kernels', '--group', 'foo'], /^bench: unknown kernel group\(s\) foo \(have /],
        [['kernels', '--scale', 'huge'], /^bench: --scale must be ci or full, got 'huge'/],
        [['kernels', '--target-ms', '0'], /--target-ms: expected a positive number, got '0'/],
        [['sweep', '--shape', '64x64'], /^bench: --shape must be MxNxK/],
        [['sweep', '--trans', 'tx'], /^bench: --trans must be nn, nt, tn or tt, got 'tx'/],
        [['kernels', '--stream-k', 'on'], /--stream-k: expected off, auto or a positive integer, got 'on'/],
        [['sweep', '--stream-k', '0'], /--stream-k: expected a positive integer, got '0'/],
      ] as const) {
        const r = await bench([...args]);
        assert(r.code === 1 && re.test(r.out.trim()), `${args.join(' ')}: exit ${r.code}\n${r.out}`);
        assert(!/adapter:|\n\s+at /.test(r.out), `${args.join(' ')}: no device opened, no stack:\n${r.out}`);
      }
    });
  });
