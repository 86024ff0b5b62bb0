// Node-only helpers (file system, hashing, atomic writes). Node modules are imported lazily, so a
// module that uses these still loads in the browser bundle; only calling them needs Node.
import { RecordError } from './record.js';

export interface NodeMods {
  fs: typeof import('node:fs');
  fsp: typeof import('node:fs/promises');
  path: typeof import('node:path');
  crypto: typeof import('node:crypto');
  os: typeof import('node:os');
  url: typeof import('node:url');
}

let mods: Promise<NodeMods> | undefined;

export function nodeMods(): Promise<NodeMods> {
  return (mods ??= (async () => {
    const [fs, fsp, path, crypto, os, url] = await Promise.all([
      import('node:fs'),
      import('node:fs/promises'),
      import('node:path'),
      import('node:crypto'),
      import('node:os'),
      import('node:url'),
    ]);
    return { fs, fsp, path, crypto, os, url };
  })());
}

/** The largest file read whole (Node's own limit for one read). */
const MAX_READ_BYTES = 2 ** 31 - 1;

/** Reads a whole regular file; a missing, unreadable, special (FIFO, device) or oversized one becomes
 *  a RecordError so callers can skip it. */
export async function readBytes(file: string): Promise<Uint8Array> {
  const { fsp } = await nodeMods();
  try {
    const st = await fsp.stat(file);
    if (!st.isFile()) throw new RecordError('unreadable-file', `${file}: not a regular file`);
    if (st.size > MAX_READ_BYTES) throw new RecordError('unreadable-file', `${file}: ${st.size} bytes, more than the ${MAX_READ_BYTES} read at once`);
    const b = await fsp.readFile(file);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    if (e instanceof RecordError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new RecordError(code === 'ENOENT' ? 'missing-file' : 'unreadable-file', `${file}: ${(e as Error).message}`);
  }
}

export async function readText(file: string): Promise<string> {
  return new TextDecoder().decode(await readBytes(file));
}

/**
 * Writes to a temp file in the same folder, fsyncs it, renames it over the target and fsyncs the
 * folder, so a crash leaves either the old file or the new one, never half of one.
 */
export async function atomicWrite(file: string, data: Uint8Array | string | readonly Uint8Array[]): Promise<void> {
  const { fs, path } = await nodeMods();
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const parts = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
  const fd = fs.openSync(tmp, 'w');
  try {
    for (const p of parts) {
      let off = 0;
      while (off < p.byteLength) off += fs.writeSync(fd, p, off, p.byteLength - off);
    }
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  try {
    const dfd = fs.openSync(path.dirname(file), 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    // some file systems refuse fsync on a folder; the rename itself is still atomic
  }
}

/** SHA-256 of a file, streamed in 1 MiB pieces so shard size does not matter. */
export async function sha256File(file: string): Promise<string> {
  const { fs, crypto } = await nodeMods();
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

export async function sha256(data: Uint8Array | string): Promise<string> {
  const { crypto } = await nodeMods();
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** Every file under `dir` (recursive) accepted by `keep`, as sorted paths, so order is reproducible. */
export async function walkFiles(dir: string, keep: (name: string) => boolean): Promise<string[]> {
  const { fsp, path } = await nodeMods();
  const out: string[] = [];
  const seen = new Set<string>(); // real paths of the folders visited: a link back up is not followed twice
  const visit = async (d: string): Promise<void> => {
    const real = await fsp.realpath(d);
    if (seen.has(real)) return;
    seen.add(real);
    const entries = await fsp.readdir(d, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = path.join(d, e.name);
      // symbolic links are followed (datasets are often assembled from links); a dangling one is
      // listed, so reading it fails and the skip report names it
      const kind = e.isSymbolicLink() ? await fsp.stat(p).catch(() => null) : e;
      if (kind?.isDirectory()) await visit(p);
      else if ((kind === null || kind.isFile()) && keep(e.name)) out.push(p);
    }
  };
  await visit(dir);
  return out;
}

/**
 * Takes `<dir>/.lock` for this process (O_EXCL create) and returns its release: a second run writing
 * into the same folder (a resume started while the run still goes, two prepares of one dataset)
 * would interleave checkpoints or shards. A lock whose process is gone (a kill, a crash) is taken
 * over; one held on another host (a shared file system) is refused, naming the file to remove.
 */
export async function lockFolder(dir: string, what: string): Promise<() => void> {
  const { fs, path, os } = await nodeMods();
  const file = path.join(dir, '.lock');
  const mine = { pid: process.pid, host: os.hostname(), what, since: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(file, JSON.stringify(mine) + '\n', { flag: 'wx' });
      return () => {
        // only our own lock (another process may have taken it over had this one seemed gone)
        try {
          if (JSON.parse(fs.readFileSync(file, 'utf8')).pid === process.pid) fs.rmSync(file, { force: true });
        } catch {
          // already gone
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let held: typeof mine | null = null;
    try {
      held = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      // unreadable: a lock cut short by a crash between create and write
    }
    if (held && held.host !== mine.host)
      throw new Error(`${dir} is in use by ${held.what} on host ${held.host} (pid ${held.pid}, since ${held.since}); if nothing runs there, remove ${file}`);
    if (held && processAlive(held.pid))
      throw new Error(`${dir} is in use by ${held.what} (pid ${held.pid}${held.pid === process.pid ? ', this process' : ''}, since ${held.since}); wait for it to end, or stop it first`);
    fs.rmSync(file, { force: true }); // its process is gone
  }
  throw new Error(`${dir}: could not take ${file}`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}
