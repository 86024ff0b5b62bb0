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
const server = createServer(async (req, res) => {
  if (req.url === '/') return res.writeHead(302, { location: '/examples/browser/' }).end();
  if (!(await sendFile(root, req.url, res))) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
});
server.listen(port, host, () => {
  const { port: p } = server.address();
  console.log(`serving ${root} at http://${host}:${p}/  (example: http://${host}:${p}/examples/browser/; Ctrl-C stops)`);
});
