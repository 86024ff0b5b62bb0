// One run per folder: lockFolder takes <dir>/.lock, refuses while its holder lives (this process
// included), takes over a lock whose process is gone, and refuses one held on another host. Node only.
import { assert, isBrowser } from '../helpers.js';

if (!isBrowser)
  describe('data: folder lock', () => {
    it('refuses a live holder, takes over a dead one (a zombie too, or a later process with its pid), refuses another host and a fresh unreadable lock; release removes only its own', async () => {
      const [fs, path, os, cp] = await Promise.all([import('node:fs'), import('node:path'), import('node:os'), import('node:child_process')]);
      const { lockFolder } = await import('../../train/data/fsutil.js');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lock-'));
      const file = path.join(dir, '.lock');
      const refused = async (what: string) => lockFolder(dir, what).then(() => 'taken', (e: Error) => e.message);
      try {
        const release = await lockFolder(dir, 'pretrain');
        assert(JSON.parse(fs.readFileSync(file, 'utf8')).pid === process.pid, 'the lock names this process');
        const again = await refused('prepare');
        assert(/is in use by pretrain \(pid \d+, this process, since/.test(again), `a second taker in this process: ${again}`);
        const link = `${dir}-link`;
        fs.symlinkSync(dir, link);
        const spelled = await lockFolder(link, 'prepare').then(() => 'taken', (e: Error) => e.message);
        fs.rmSync(link);
        assert(/this process/.test(spelled), `the same folder through a link: ${spelled}`);
        release();
        assert(!fs.existsSync(file), 'released');
        // a process that is gone (a child that has exited): its lock is taken over
        const dead = cp.spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
        fs.writeFileSync(file, JSON.stringify({ pid: Number(dead), host: os.hostname(), what: 'pretrain', since: 'then' }));
        const mine = await lockFolder(dir, 'prepare');
        assert(JSON.parse(fs.readFileSync(file, 'utf8')).pid === process.pid, 'a dead holder\'s lock taken over');
        // a zombie (exited, not yet reaped: here a child whose parent became `sleep`, which reaps none)
        if (fs.existsSync('/proc/self/stat')) {
          const holder = cp.spawn('sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
          const zombie = Number(await new Promise<string>((resolve) => holder.stdout.once('data', (d: Buffer) => resolve(d.toString()))));
          const state = () => (fs.existsSync(`/proc/${zombie}/stat`) ? fs.readFileSync(`/proc/${zombie}/stat`, 'utf8') : '');
          for (let i = 0; i < 100 && !/\) Z /.test(state()); i++) await new Promise((r) => setTimeout(r, 20));
          assert(/\) Z /.test(state()), `the child is a zombie: ${state()}`);
          fs.writeFileSync(file, JSON.stringify({ pid: zombie, host: os.hostname(), what: 'pretrain', since: 'then' }));
          const took = await lockFolder(dir, 'prepare').then((rel) => (rel(), 'taken'), (e: Error) => e.message);
          holder.kill();
          assert(took === 'taken', `a zombie holder's lock taken over: ${took}`);
        }
        // release leaves a lock that is not its own
        fs.writeFileSync(file, JSON.stringify({ pid: 1, host: os.hostname(), what: 'pretrain', since: 'now' }));
        mine();
        assert(fs.existsSync(file), "another process's lock stays");
        const live = await refused('prepare');
        assert(/is in use by pretrain \(pid 1, since now\)/.test(live), `a live holder (pid 1): ${live}`);
        fs.writeFileSync(file, JSON.stringify({ pid: 1, host: 'elsewhere', what: 'pretrain', since: 'now' }));
        const remote = await refused('prepare');
        assert(remote.includes(`on host elsewhere (pid 1, since now); if nothing runs there, remove ${file}`), `another host: ${remote}`);
        // a pid that runs again, but another process (a restarted container): by its start time, or for
        // this pid because this process did not take the lock
        const taken = async () => (await lockFolder(dir, 'prepare'))();
        fs.writeFileSync(file, JSON.stringify({ pid: 1, start: 'never', host: os.hostname(), what: 'pretrain', since: 'then' }));
        await taken();
        fs.writeFileSync(file, JSON.stringify({ pid: process.pid, host: os.hostname(), what: 'pretrain', since: 'then' }));
        await taken();
        assert(!fs.existsSync(file), 'taken over and released');
        // an unreadable lock: refused while fresh (not this code's), taken over once old
        fs.writeFileSync(file, '');
        assert(/is locked by an unreadable/.test(await refused('prepare')), 'a fresh unreadable lock is refused');
        fs.utimesSync(file, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
        await taken();
        assert(fs.readdirSync(dir).length === 0, `no lock or temp file left: ${fs.readdirSync(dir)}`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
