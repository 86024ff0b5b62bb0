// Static files for the test driver's page and scripts/serve.mjs: one path-checked file per request.
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.safetensors': 'application/octet-stream',
};

/**
 * Answers `res` with the file at URL path `urlPath` under `dir` (a folder: its index.html, after
 * a redirect to the URL with a trailing '/').
 * Resolves to false, sending nothing, when there is no such file, the path leaves `dir` or names a
 * hidden file or folder.
 */
export async function sendFile(dir, urlPath, res) {
  const [path, query] = urlPath.split(/\?(.*)/s);
  let rel;
  try {
    rel = decodeURIComponent(path);
  } catch {
    return false;
  }
  let file = normalize(join(dir, rel));
  if (file !== dir && !file.startsWith(dir + sep)) return false;
  // no hidden files or folders (.git, .devkit, …): the server is for the pages and their data
  if (file.slice(dir.length).split(sep).some((part) => part.startsWith('.'))) return false;
  try {
    if ((await stat(file)).isDirectory()) {
      // A folder's page loads its files relative to the folder: its URL must end in '/'.
      // (one leading '/': '//host/…' would send the browser to another host)
      if (!path.endsWith('/')) return res.writeHead(301, { location: `/${path.replace(/^\/+/, '')}/${query ? `?${query}` : ''}` }).end(), true;
      file = join(file, 'index.html');
    }
    const data = await readFile(file);
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' }).end(data);
    return true;
  } catch {
    return false;
  }
}
