// A tiny static file server (no dependencies) for the browser example:
// `node scripts/serve.mjs [--port 8080] [--host 127.0.0.1]` serves the repository root and prints
// the example's address (examples/browser/, which imports dist/browser/: run the build first, or
// `npm run serve`). WebGPU needs a secure context: http://localhost or 127.0.0.1 is one; another
// host needs https.
import { createServer } from 'node:http';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sendFile } from './static.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const host = arg('--host', '127.0.0.1');
const port = Number(arg('--port', '8080'));
// Requests must name this server: a page elsewhere whose name was rebound to this address (DNS
// rebinding) gets nothing from the repository.
const names = new Set([host, 'localhost', '127.0.0.1', '[::1]']);
const server = createServer(async (req, res) => {
  const asked = (req.headers.host ?? '').replace(/:\d+$/, '');
  if (!names.has(asked)) return res.writeHead(421, { 'content-type': 'text/plain' }).end(`this server answers to ${[...names].join(', ')}\n`);
  if (req.url === '/') return res.writeHead(302, { location: '/examples/browser/' }).end();
  if (!(await sendFile(root, req.url, res))) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
});
server.listen(port, host, () => {
  const { port: p } = server.address();
  console.log(`serving ${root} at http://${host}:${p}/  (example: http://${host}:${p}/examples/browser/; Ctrl-C stops)`);
});
