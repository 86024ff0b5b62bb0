// scripts/static.mjs, the test driver's and `npm run serve`'s file server: files under its folder
// only, none hidden, and a folder's redirect stays on this host. Node only.
import { assert, isBrowser } from '../helpers.js';

if (!isBrowser)
  describe('scripts/static', () => {
    it('serves files under its folder, redirects a folder to its URL with a slash on this host, refuses the rest', async () => {
      const fs = await import('node:fs');
      const os = await import('node:os');
      const path = await import('node:path');
      // @ts-expect-error: a plain JS module of the repository's scripts
      const { sendFile } = await import('../../scripts/static.mjs');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'static-'));
      fs.mkdirSync(path.join(dir, 'sub'));
      fs.writeFileSync(path.join(dir, 'sub', 'index.html'), '<p>hi</p>');
      const ask = async (url: string) => {
        const got: { status?: number; headers?: Record<string, string>; body?: unknown } = {};
        const res = {
          writeHead(status: number, headers: Record<string, string>) {
            Object.assign(got, { status, headers });
            return this;
          },
          end(body?: unknown) {
            got.body = body;
          },
        };
        const served = await sendFile(dir, url, res);
        return { served, ...got };
      };
      try {
        const page = await ask('/sub/');
        assert(page.served && page.status === 200 && String(page.body) === '<p>hi</p>', `page: ${JSON.stringify(page)}`);
        const folder = await ask('/sub?x=1');
        assert(folder.status === 301 && folder.headers!.location === '/sub/?x=1', `redirect: ${JSON.stringify(folder)}`);
        // '//host/…' in a Location header would send the browser to another host
        const sneaky = await ask('//evil.example/..%2fsub');
        assert(sneaky.status === 301 && sneaky.headers!.location.startsWith('/') && !sneaky.headers!.location.startsWith('//'), `same host: ${JSON.stringify(sneaky)}`);
        assert(!(await ask('/../etc/passwd')).served && !(await ask('/%2e%2e/etc/passwd')).served, 'nothing outside the folder');
        fs.mkdirSync(path.join(dir, '.git'));
        fs.writeFileSync(path.join(dir, '.git', 'config'), 'secret');
        fs.writeFileSync(path.join(dir, 'sub', '.env'), 'secret');
        assert(!(await ask('/.git/config')).served && !(await ask('/sub/.env')).served && !(await ask('/sub/%2eenv')).served, 'no hidden files');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
