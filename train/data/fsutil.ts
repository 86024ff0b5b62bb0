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
  await atomicRename(tmp, file);
}

/** Renames `from` to `to` (one atomic step) and fsyncs the folder, so the rename survives a crash. */
export async function atomicRename(from: string, to: string): Promise<void> {
  const { fs, path } = await nodeMods();
  fs.renameSync(from, to);
  try {
    const dfd = fs.openSync(path.dirname(to), 'r');
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

/** The locks this process holds (a lock naming this pid but not here is a former process's). */
const heldLocks = new Set<string>();

/**
 * Takes `<dir>/.lock` for this process and returns its release: a second run writing into the same
 * folder (a resume started while the run still goes, two prepares of one dataset) would interleave
 * checkpoints or shards. The lock is written whole, then linked into place (atomic: a reader never
 * sees a half-written one). A lock whose process is gone (a kill, a crash, a restarted container
 * whose new process has its pid) is taken over; one held on another host (a shared file system) is
 * refused. Each refusal names the file to remove if nothing runs.
 */
export async function lockFolder(dir: string, what: string): Promise<() => void> {
  const { fs, path, os } = await nodeMods();
  const file = path.join(fs.realpathSync(dir), '.lock'); // one key for every spelling of the folder
  const me: FolderLock = { pid: process.pid, start: processStat(fs, process.pid)?.start, host: os.hostname(), what, since: new Date().toISOString() };
  const body = JSON.stringify(me) + '\n';
  const hint = `; if nothing runs there, remove ${file}`;
  sweepLockTemps(fs, path, path.dirname(file));
  for (let attempt = 0; attempt < 5; attempt++) {
    const tmp = `${file}.new-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    try {
      fs.writeFileSync(tmp, body);
      try {
        fs.linkSync(tmp, file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw e;
        // no hard links here (FAT, some network mounts): an exclusive create, written just after
        fs.writeFileSync(file, body, { flag: 'wx' });
      }
      heldLocks.add(file);
      return () => {
        heldLocks.delete(file);
        try {
          const lock = JSON.parse(fs.readFileSync(file, 'utf8')) as FolderLock;
          if (lock.pid === me.pid && lock.since === me.since) fs.rmSync(file, { force: true }); // only our own
        } catch {
          // already gone
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue; // gone meanwhile: try again
    }
    let lock: FolderLock | null = null;
    try {
      lock = JSON.parse(text) as FolderLock;
    } catch {
      // not this code's (its locks are written whole) unless old: an exclusive create cut short
      if (Date.now() - fs.statSync(file).mtimeMs < 10_000) throw new Error(`${dir} is locked by an unreadable ${file}${hint}`);
    }
    if (lock && lock.host !== me.host) throw new Error(`${dir} is in use by ${lock.what} on host ${lock.host} (pid ${lock.pid}, since ${lock.since})${hint}`);
    if (lock && lockAlive(fs, lock, file))
      throw new Error(`${dir} is in use by ${lock.what} (pid ${lock.pid}${lock.pid === process.pid ? ', this process' : ''}, since ${lock.since}); wait for it to end or stop it${hint}`);
    breakStaleLock(fs, file, text);
  }
  throw new Error(`${dir}: could not take ${file}, others kept taking it`);
}

/**
 * Removes a lock judged stale (its content `text`), one taker at a time: under `<lock>.break`
 * (exclusive create, itself stale after 10 s) the lock is removed only if it is still the one
 * judged, so a fresh lock another taker put there meanwhile stays.
 */
function breakStaleLock(fs: NodeMods['fs'], file: string, text: string): void {
  const brk = `${file}.break`;
  try {
    fs.writeFileSync(brk, String(process.pid), { flag: 'wx' });
  } catch {
    try {
      if (Date.now() - fs.statSync(brk).mtimeMs > 10_000) fs.rmSync(brk, { force: true }); // its taker died
    } catch {
      // gone meanwhile
    }
    return; // another taker is at it: look again
  }
  try {
    if (fs.readFileSync(file, 'utf8') === text) fs.rmSync(file, { force: true });
  } catch {
    // gone meanwhile
  } finally {
    fs.rmSync(brk, { force: true });
  }
}

/** Temp files of lock takers killed in the act (older than a minute). */
function sweepLockTemps(fs: NodeMods['fs'], path: NodeMods['path'], dir: string): void {
  for (const n of fs.readdirSync(dir)) {
    if (!n.startsWith('.lock.new-')) continue;
    try {
      if (Date.now() - fs.statSync(path.join(dir, n)).mtimeMs > 60_000) fs.rmSync(path.join(dir, n), { force: true });
    } catch {
      // gone meanwhile
    }
  }
}

interface FolderLock {
  pid: number;
  /** The process's start time (Linux: clock ticks since boot), telling it from a later one with its pid. */
  start?: string;
  host: string;
  what: string;
  since: string;
}

/** Whether the process a lock names still runs: this process only if it took the lock itself. */
function lockAlive(fs: NodeMods['fs'], lock: FolderLock, file: string): boolean {
  if (lock.pid === process.pid) return heldLocks.has(file);
  try {
    process.kill(lock.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false; // EPERM: alive, another user's
  }
  const stat = processStat(fs, lock.pid);
  // a zombie (Z) or dead (X) process holds nothing: a killed holder stays a zombie until reaped,
  // forever in a container whose first process reaps none
  if (stat && (stat.state === 'Z' || stat.state === 'X')) return false;
  return lock.start === undefined || stat === undefined || stat.start === lock.start;
}

/** A process's state and start time from /proc (Linux), or undefined where there is none. */
function processStat(fs: NodeMods['fs'], pid: number): { state: string; start: string } | undefined {
  try {
    // fields after the command name, which may hold spaces and parentheses: state is field 3, start time field 22
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: f[0], start: f[19] };
  } catch {
    return undefined;
  }
}
