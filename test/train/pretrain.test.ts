// Pretraining as a user runs it: the CLI in a child process, killed with SIGKILL between two
// checkpoints and resumed, ends with exactly the weights of an uninterrupted run (also in mixed
// precision with the dynamic loss scale, and over two prepared folders read as one); its encoder
// snapshots hold the student of their step and stay one per epoch across stops, kills and resumes. Node only.
import { assert, getEngine, isBrowser, useTempDir } from '../helpers.js';
import { runCli } from './cli.js';

if (!isBrowser)
  describe('train: pretrain', function () {
    this.timeout(900_000);
    let tmp = '';
    const mods = async () => {
      const [fs, path, os, cp] = await Promise.all([import('node:fs'), import('node:path'), import('node:os'), import('node:child_process')]);
      return { fs, path, os, cp };
    };

    useTempDir('pretrain-', (d) => (tmp = d));
    before(async () => {
      const { path } = await mods();
      const { prepare } = await import('../../train/data/prepare.js');
      await prepare({ source: 'synth', root: '', out: path.join(tmp, 'data'), leads: 8, synth: { n: 24, seed: 3, fs: 250 }, workers: 0, log: () => {} });
      // a second folder for the union runs: other records, f16 shards
      await prepare({ source: 'synth', root: '', out: path.join(tmp, 'data2'), leads: 8, dtype: 'f16', synth: { n: 6, seed: 4, fs: 250 }, workers: 0, log: () => {} });
    });

    /** Polls every 5 ms (argv: pid, a step or a file, the run's log.jsonl, a signal): sends the signal
     *  to the pid once the log shows that step, or once that file exists. */
    const KILL_WATCHER = `const fs = require('fs');
const [pid, after, log, sig] = process.argv.slice(1);
const step = /^\\d+$/.test(after) ? Number(after) : null;
const stepOf = (line) => { try { return JSON.parse(line).step; } catch { return -1; } }; // a torn line: not yet
const due = () => step === null ? fs.existsSync(after) : fs.existsSync(log) && fs.readFileSync(log, 'utf8').split('\\n').some((l) => stepOf(l) >= step);
const t = setInterval(() => {
  try {
    if (!due()) return;
  } catch {
    return; // the log read between its writes: the next poll
  }
  clearInterval(t);
  try {
    process.kill(Number(pid), sig);
  } catch {} // the run ended first: the test says so
}, 5);`;

    /** Runs the CLI; `killAfter` sends it `sig` once the log shows that step, or once that file exists. */
    async function cli(args: string[], killAfter?: number | string, sig = 'SIGKILL'): Promise<{ code: number | null; signal: string | null; stderr: string }> {
      const { cp, path } = await mods();
      const out = args[args.indexOf('--out') + 1];
      const child = cp.spawn(process.execPath, [path.resolve('dist/cli.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.stdout.on('data', (d) => (stderr += d));
      // The watcher is a process of its own, so a busy test process (Dawn's calls on lavapipe) cannot
      // delay the kill past the two steps it has to fall between (a CI run once saw a run end unkilled).
      const watcher =
        killAfter === undefined
          ? undefined
          : cp.spawn(process.execPath, ['-e', KILL_WATCHER, String(child.pid), typeof killAfter === 'string' ? killAfter : String(killAfter), path.join(out, 'log.jsonl'), sig], { stdio: ['ignore', 'ignore', 'inherit'] });
      return new Promise((resolve) =>
        child.on('exit', (code, signal) => {
          watcher?.kill();
          resolve({ code, signal, stderr });
        }),
      );
    }

    /** An uninterrupted run and one SIGKILLed after step 4 and resumed end with the same bytes. */
    async function killAndResume(name: string, extra: string[], data?: string): Promise<Record<string, number>[]> {
      const { path, fs } = await mods();
      data ??= path.join(tmp, 'data');
      const common = ['pretrain', '--data', data, '--preset', 'tiny', '--steps', '8', '--checkpoint-every', '3', '--log-every', '1', '--seed', '5', ...extra];
      const a = path.join(tmp, `${name}-a`), b = path.join(tmp, `${name}-b`);
      const ra = await cli([...common, '--out', a]);
      assert(ra.code === 0, `uninterrupted run failed:\n${ra.stderr}`);
      const killed = await cli([...common, '--out', b], 4);
      assert(killed.signal === 'SIGKILL', `the run was to be killed, it ended with ${killed.code}:\n${killed.stderr}`);
      const mid = JSON.parse(fs.readFileSync(path.join(b, 'checkpoint-last.json'), 'utf8'));
      assert(mid.state.step === 3, `the last checkpoint before the kill is step 3, got ${mid.state.step}`);
      const rb = await cli(['pretrain', '--out', b, '--resume']);
      assert(rb.code === 0, `resume failed:\n${rb.stderr}`);
      // the tensor file each sidecar names (saves alternate between two names)
      const tensorsOf = (run: string) => fs.readFileSync(path.join(run, JSON.parse(fs.readFileSync(path.join(run, 'checkpoint-last.json'), 'utf8')).tensors));
      const fa = tensorsOf(a), fb = tensorsOf(b);
      const { decodeSafetensors } = await import('../../model/safetensors.js');
      const ta = decodeSafetensors(new Uint8Array(fa), 'a').tensors, tb = decodeSafetensors(new Uint8Array(fb), 'b').tensors;
      assert(ta.size === tb.size && ta.size > 0, `same tensor sets (${ta.size} vs ${tb.size})`);
      for (const [name, t] of ta) {
        const u = tb.get(name);
        assert(u, `resumed checkpoint lacks ${name}`);
        const x = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), y = new Uint8Array(u.data.buffer, u.data.byteOffset, u.data.byteLength);
        assert(x.length === y.length && x.every((v, i) => v === y[i]), `${name} differs after resume`);
      }
      const la = fs.readFileSync(path.join(a, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      const lb = fs.readFileSync(path.join(b, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert(la.length === 8 && lb.length === 8, `one log line per step (${la.length}, ${lb.length})`);
      assert(la.every((r, i) => r.loss === lb[i].loss && r.loss_scale === lb[i].loss_scale && r.skipped_steps === lb[i].skipped_steps), 'the losses and loss scales of both runs match step for step');
      return la;
    }

    it('resumes after SIGKILL between checkpoints to the same final weights', async () => {
      const log = await killAndResume('f32', []);
      assert(log.every((r) => r.loss_scale === 1 && r.skipped_steps === 0), 'f32: no loss scaling, logged as scale 1');
    });

    it('resumes exactly in mixed precision with the dynamic loss scale (log rows and checkpoints carry it)', async function () {
      if (!(await getEngine()).device.features.has('shader-f16')) this.skip();
      // 2^32 overflows f16 in the first steps (2^16, the default, does not on this model): the run
      // skips some steps before and after the kill
      const log = await killAndResume('f16', ['--precision', 'f16', '--loss-scale', `dynamic:${2 ** 32}`]);
      const { path, fs } = await mods();
      const ck = JSON.parse(fs.readFileSync(path.join(tmp, 'f16-b', 'checkpoint-last.json'), 'utf8'));
      const ls = ck.state.extra.lossScale;
      assert(ls.dynamic && ls.scale === log[7].loss_scale && ls.skipped === log[7].skipped_steps && ck.state.extra.adamSteps === 8 - ls.skipped, `checkpoint ${JSON.stringify(ck.state.extra)}, last log row ${JSON.stringify(log[7])}`);
      assert(log[7].skipped_steps > 0 && log.every((r) => r.loss_scale * 2 ** r.skipped_steps === 2 ** 32), `the scale halves once per skipped step from 2^32: ${log.map((r) => `${r.loss_scale}/${r.skipped_steps}`).join(' ')}`);
    });

    it('pretrains on two folders as one union: resumes after SIGKILL exactly, records the folders', async () => {
      const { path, fs } = await mods();
      const dirs = [path.join(tmp, 'data'), path.join(tmp, 'data2')];
      // 24 + 6 records, batch 4: 7 steps per epoch, so the 8 steps cross into the second epoch
      await killAndResume('union', [], dirs.join(','));
      const run = JSON.parse(fs.readFileSync(path.join(tmp, 'union-b', 'run.json'), 'utf8'));
      assert(run.data.length === 2 && run.data.every((f: { dir: string; records: number; manifest_sha256: string }, i: number) => f.dir === dirs[i] && f.records === [24, 6][i] && /^[0-9a-f]{64}$/.test(f.manifest_sha256)), `run.json data ${JSON.stringify(run.data)}`);
      const ck = JSON.parse(fs.readFileSync(path.join(tmp, 'union-b', 'checkpoint-last.json'), 'utf8'));
      const d = ck.state.extra.data;
      assert(d.records === 30 && d.epoch === 1 && d.batch === 1 && JSON.stringify(d.folders) === JSON.stringify(run.data), `checkpoint data ${JSON.stringify(d)}`);
      const r = await cli(['pretrain', '--out', path.join(tmp, 'union-b'), '--resume', '--steps', '9', '--data', [...dirs].reverse().join(',')]);
      assert(r.code === 1 && /--resume: the run in .* reads --data .*data,.*data2, not .*data2,.*data;/.test(r.stderr), `another folder list is refused:\n${r.stderr}`);
    });

    it('refuses folders that do not match, and a resume after a folder changed; resumes runs from before folders were recorded', async () => {
      const { path, fs } = await mods();
      const { prepare } = await import('../../train/data/prepare.js');
      const { readManifest, writeManifest } = await import('../../train/data/dataset.js');
      const twelve = path.join(tmp, 'data12');
      await prepare({ source: 'synth', root: '', out: twelve, leads: 12, synth: { n: 2, seed: 1, fs: 250 }, workers: 0, log: () => {} });
      let r = await cli(['pretrain', '--data', `${path.join(tmp, 'data')},${twelve}`, '--preset', 'tiny', '--steps', '1', '--out', path.join(tmp, 'mismatch')]);
      assert(r.code === 1 && new RegExp(`dataset ${twelve} does not match .*: leads `).test(r.stderr), `a clear refusal expected:\n${r.stderr}`);
      const copy = path.join(tmp, 'data2-copy');
      fs.cpSync(path.join(tmp, 'data2'), copy, { recursive: true });
      const out = path.join(tmp, 'changed');
      r = await cli(['pretrain', '--data', `${path.join(tmp, 'data')},${copy}`, '--preset', 'tiny', '--steps', '2', '--checkpoint-every', '1', '--log-every', '1', '--out', out]);
      assert(r.code === 0, `run failed:\n${r.stderr}`);
      // a run whose run.json and checkpoint carry no folders (as before they were kept) still resumes
      for (const f of ['run.json', 'checkpoint-last.json']) {
        const j = JSON.parse(fs.readFileSync(path.join(out, f), 'utf8'));
        delete (f === 'run.json' ? j : j.state.extra).data;
        fs.writeFileSync(path.join(out, f), JSON.stringify(j));
      }
      r = await cli(['pretrain', '--out', out, '--resume', '--steps', '3']);
      assert(r.code === 0 && /resumed .* at step 2/.test(r.stderr), `an old-style run resumes:\n${r.stderr}`);
      const m = await readManifest(copy);
      await writeManifest(copy, { ...m, records: [...m.records].reverse() });
      r = await cli(['pretrain', '--out', out, '--resume', '--steps', '4']);
      assert(r.code === 1 && /--resume: the run in .* was trained on .*data2-copy \(6 records, manifest [0-9a-f]{12}\); the data is now .*An exact resume needs the same prepared folders/.test(r.stderr), `a changed folder is refused:\n${r.stderr}`);
    });

    it('stops on an exploding loss and keeps the last good checkpoint', async () => {
      const { path, fs } = await mods();
      const out = path.join(tmp, 'diverge');
      const r = await cli(['pretrain', '--data', path.join(tmp, 'data'), '--preset', 'tiny', '--lr', '10', '--steps', '20', '--log-every', '1', '--checkpoint-every', '1', '--out', out]);
      assert(r.code === 1 && /training diverged at step (\d+)/.test(r.stderr), `a clear stop expected:\n${r.stderr}`);
      const bad = Number(/diverged at step (\d+)/.exec(r.stderr)![1]);
      const ck = JSON.parse(fs.readFileSync(path.join(out, 'checkpoint-last.json'), 'utf8'));
      assert(ck.state.step === bad - 1, `the kept checkpoint is the step before the divergence (${ck.state.step} vs ${bad})`);
      assert(new RegExp(`last good checkpoint .*step ${bad - 1}`).test(r.stderr), `the message names the kept checkpoint:\n${r.stderr}`);
      // a resume from there stops at the same step: the guard's reference comes back with the log
      const again = await cli(['pretrain', '--out', out, '--resume']);
      const loss = /diverged at step \d+: loss (\S+)/.exec(r.stderr)![1];
      assert(again.code === 1 && new RegExp(`diverged at step ${bad}: loss ${loss.replace(/[.+]/g, '\\$&')} `).test(again.stderr), `the same stop after a resume (first: loss ${loss}):\n${again.stderr}`);
    });

    describe('encoder snapshots (--snapshot-every-epochs)', () => {
      type Tensors = Map<string, import('../../model/safetensors.js').StTensor>;
      const bits = (t: { data: ArrayBufferView }) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      const load = async (base: string) => (await import('../../model/checkpoint.js')).loadCheckpoint(base);
      const snap = async (run: string, name: string | number) => (await mods()).path.join(run, 'snapshots', typeof name === 'number' ? `encoder-epoch${name}` : name);
      const mtime = async (base: string) => (await mods()).fs.statSync(`${base}.safetensors`).mtimeMs;
      const listed = async (run: string) => {
        const { fs, path } = await mods();
        return JSON.parse(fs.readFileSync(path.join(run, 'checkpoint-last.json'), 'utf8')).state.extra.snapshots as { name: string; epoch: number; step: number }[];
      };
      /** `a` holds the tensors of `b` (bit for bit, or each rounded to f16 with `f16`), under the same names. */
      const sameTensors = async (a: Tensors, b: Tensors, what: string, f16 = false) => {
        const { f32ToF16Bits, asFloat32 } = await import('../../model/safetensors.js');
        assert(a.size === 26 && [...a.keys()].every((k) => b.has(k)), `${what}: ${a.size} tensors, names ${[...a.keys()].filter((k) => !b.has(k))} missing in the other`);
        for (const [k, t] of a) {
          const u = b.get(k)!;
          const want = f16 ? Buffer.from(Uint16Array.from(asFloat32(u), f32ToF16Bits).buffer) : bits(u);
          assert(t.dtype === (f16 ? 'F16' : 'F32') && bits(t).equals(want), `${what}: ${k} differs`);
        }
      };
      // 24 records, batch 8: 3 steps per epoch; 3 epochs
      const common = (data: string) => ['pretrain', '--data', data, '--preset', 'tiny', '--batch', '8', '--epochs', '3', '--seed', '5', '--snapshot-every-epochs', '1'];
      /** The run of the first spec, which the others compare with. */
      let a = '';

      it('writes the student of each epoch\'s last step, once per epoch across a stop and a resume', async () => {
        const { path, fs } = await mods();
        a = path.join(tmp, 'snap-a');
        let r = await cli([...common(path.join(tmp, 'data')), '--steps', '3', '--out', a]);
        assert(r.code === 0 && /snapshot .*encoder-epoch1 \(epoch 1, step 3\)/.test(r.stderr), `run failed or said nothing:\n${r.stderr}`);
        assert(fs.readdirSync(path.join(a, 'snapshots')).sort().join() === 'encoder-epoch1.json,encoder-epoch1.safetensors', 'one snapshot, no temp files');
        const [s1, ck3] = [await load(await snap(a, 1)), await load(path.join(a, 'checkpoint-last'))];
        assert(ck3.state.step === 3, `checkpoint at step ${ck3.state.step}`);
        await sameTensors(s1.tensors, ck3.tensors, 'epoch 1 vs the student at step 3');
        const rec = s1.state.extra!.encoderExport as { dtype: string; encoder: string; source: { kind: string; step: number } };
        assert(s1.state.step === 3 && s1.state.epoch === 1 && s1.state.extra!.kind === 'encoder-export' && rec.dtype === 'f32' && rec.encoder === 'student' &&
          rec.source.kind === 'pretrain' && rec.source.step === 3, JSON.stringify(s1.state));
        assert(JSON.stringify(await listed(a)) === JSON.stringify([{ name: 'encoder-epoch1', epoch: 1, step: 3 }]), `checkpoint lists ${JSON.stringify(await listed(a))}`);
        const t1 = await mtime(await snap(a, 1));

        r = await cli(['pretrain', '--out', a, '--resume', '--steps', '9']);
        assert(r.code === 0 && !/encoder-epoch1/.test(r.stderr) && /encoder-epoch2 .*encoder-epoch3 /s.test(r.stderr), `resume:\n${r.stderr}`);
        assert((await mtime(await snap(a, 1))) === t1, 'epoch 1, committed before the stop, is not rewritten');
        await sameTensors((await load(await snap(a, 3))).tensors, (await load(path.join(a, 'checkpoint-last'))).tensors, 'epoch 3 vs the student at step 9');
        assert((await listed(a)).map((x) => `${x.name}@${x.step}`).join() === 'encoder-epoch1@3,encoder-epoch2@6,encoder-epoch3@9', JSON.stringify(await listed(a)));
      });

      it('keeps a snapshot written after the last checkpoint when a SIGKILLed run resumes, skips none, and embed takes one', async () => {
        const { path, fs } = await mods();
        const b = path.join(tmp, 'snap-b');
        const data = path.join(tmp, 'data');
        // checkpoints at steps 4, 8 and 9: killed once epoch 2 (step 6) is written, before step 8 is saved
        const killed = await cli([...common(data), '--checkpoint-every', '4', '--log-every', '1', '--out', b], `${await snap(b, 2)}.json`);
        assert(a, 'needs the first spec\'s run');
        assert(killed.signal === 'SIGKILL', `the run was to be killed, it ended with ${killed.code}:\n${killed.stderr}`);
        const mid = await listed(b);
        assert(JSON.parse(fs.readFileSync(path.join(b, 'checkpoint-last.json'), 'utf8')).state.step === 4 && mid.map((x) => x.name).join() === 'encoder-epoch1',
          `the checkpoint before the kill is step 4 and lists epoch 1 only: ${JSON.stringify(mid)}`);
        const t2 = await mtime(await snap(b, 2));
        const r = await cli(['pretrain', '--out', b, '--resume']);
        assert(r.code === 0 && /resumed .* at step 4/.test(r.stderr) && /encoder-epoch2 \(epoch 2, step 6\): already written before the restart, kept/.test(r.stderr), `resume:\n${r.stderr}`);
        assert((await mtime(await snap(b, 2))) === t2, 'epoch 2 is not rewritten');
        assert((await listed(b)).map((x) => `${x.name}@${x.step}`).join() === 'encoder-epoch1@3,encoder-epoch2@6,encoder-epoch3@9', JSON.stringify(await listed(b)));
        assert(fs.readdirSync(path.join(b, 'snapshots')).length === 6, `three snapshots, no temp files: ${fs.readdirSync(path.join(b, 'snapshots'))}`);
        // exact resume: the same encoders as the run stopped cleanly and resumed
        for (const e of [1, 2, 3]) await sameTensors((await load(await snap(b, e))).tensors, (await load(await snap(a, e))).tensors, `epoch ${e}: killed run vs stopped run`);
        const steps = fs.readFileSync(path.join(b, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
        assert(steps.join() === '1,2,3,4,5,6,7,8,9', `one log row per step: ${steps}`);

        const said = await runCli(['embed', '--checkpoint', await snap(b, 2), '--data', data, '--out', path.join(tmp, 'snap-emb'), '--batch', '8']);
        assert(/24 records × 32 features/.test(said), said);
      });

      it('writes f16 snapshots, names one ending inside an epoch by its step; a new run refuses a folder holding snapshots', async () => {
        const { path } = await mods();
        const c = path.join(tmp, 'snap-c');
        const args = [...common(path.join(tmp, 'data')), '--steps', '4', '--snapshot-dtype', 'f16', '--out', c];
        assert(a, 'needs the first spec\'s run');
        let r = await cli(args);
        assert(r.code === 0 && /encoder-step4 \(epoch 1, step 4\)/.test(r.stderr), `run:\n${r.stderr}`);
        await sameTensors((await load(await snap(c, 1))).tensors, (await load(await snap(a, 1))).tensors, 'f16 epoch 1 vs f32 epoch 1', true);
        const end = await load(await snap(c, 'encoder-step4'));
        assert(end.state.step === 4 && end.state.epoch === 1, JSON.stringify(end.state));
        await sameTensors(end.tensors, (await load(path.join(c, 'checkpoint-last'))).tensors, 'f16 end vs the student at step 4', true);
        // --restart replaces a checkpoint, not snapshots
        r = await cli([...args, '--restart']);
        assert(r.code === 1 && /snapshots holds encoder snapshots of an earlier run \(encoder-epoch1, encoder-step4\); continue that run with --resume/.test(r.stderr), `refusal:\n${r.stderr}`);
      });
    });

    it('resumes a run whose folder moved and whose log ends in a torn line; a new run in a used folder is refused, or with --restart drops the old checkpoint first', async () => {
      const { fs, path } = await mods();
      const first = path.join(tmp, 'moved-from'), run = path.join(tmp, 'moved-to');
      const base = ['pretrain', '--data', 'synthetic', '--synthetic-records', '8', '--batch', '4', '--preset', 'tiny', '--log-every', '1', '--seed', '2'];
      let r = await cli([...base, '--steps', '2', '--out', first]);
      assert(r.code === 0, `first run:\n${r.stderr}`);
      fs.renameSync(first, run);
      fs.appendFileSync(path.join(run, 'log.jsonl'), '{"step":3,"lo'); // a crash mid-append
      const temp = path.join(run, '.checkpoint-last.alt.safetensors.4242.0123abcd.tmp'); // and mid-save
      fs.writeFileSync(temp, 'partial');
      r = await cli(['pretrain', '--out', run, '--resume', '--steps', '3']);
      assert(r.code === 0 && /resumed .* at step 2/.test(r.stderr) && /dropping an unreadable line/.test(r.stderr), `resume:\n${r.stderr}`);
      assert(!fs.existsSync(temp) && /removed .*0123abcd\.tmp, left by a save that was cut short/.test(r.stderr), `the temp file is removed:\n${r.stderr}`);
      assert(!fs.existsSync(first), 'the synthetic data is read where the run is now, not regenerated where it was');
      const steps = () => fs.readFileSync(path.join(run, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
      assert(steps().join() === '1,2,3', `log steps ${steps()}`);
      // the new end is the run's now: a plain --resume has nothing to do, and says so with the last loss
      const lastLoss = JSON.parse(fs.readFileSync(path.join(run, 'log.jsonl'), 'utf8').trim().split('\n').pop()!).loss as number;
      r = await cli(['pretrain', '--out', run, '--resume']);
      assert(r.code === 0 && /already at step 3 of 3: nothing to do/.test(r.stderr) && r.stderr.includes(`done at step 3: loss ${lastLoss.toPrecision(4)}`), `finished run:\n${r.stderr}`);
      // a resume keeps the run's settings: one given unlike the run's is refused (the same value is fine)
      // (--checkpoint-every 200 is the run's too: its default, not given when it started)
      r = await cli(['pretrain', '--out', run, '--resume', '--steps', '4', '--seed', '2', '--lr', '0.5', '--preset', 'base', '--checkpoint-every', '200']);
      assert(r.code === 1 && /keeps its own settings: --preset "tiny", not "base"; --lr 0\.001, not 0\.5\./.test(r.stderr) && !/seed|checkpoint-every/.test(r.stderr), `refusal:\n${r.stderr}`);
      assert(steps().join() === '1,2,3', 'the refused resume changed nothing');
      // a new run in that folder: refused without --restart (a command repeated without --resume
      // must not cost the run its progress), and with it, killed before its first save, nothing of
      // the earlier run is left to resume
      r = await cli([...base, '--steps', '40', '--out', run]);
      assert(r.code === 1 && /holds a checkpoint of an earlier run .*continue that run with --resume, or give --restart to replace it/.test(r.stderr), `refusal:\n${r.stderr}`);
      assert(steps().join() === '1,2,3' && fs.existsSync(path.join(run, 'checkpoint-last.json')), 'the refused run changed nothing');
      fs.rmSync(path.join(run, 'log.jsonl')); // so the kill waits for this run's first step
      r = await cli([...base, '--steps', '40', '--checkpoint-every', '100', '--out', run, '--restart'], 1);
      assert(r.signal === 'SIGKILL' && /held a checkpoint of an earlier run: removed for this new run \(--restart\)/.test(r.stderr), `new run:\n${r.stderr}`);
      assert(!fs.existsSync(path.join(run, 'checkpoint-last.json')), 'the earlier checkpoint is gone');
      r = await cli(['pretrain', '--out', run, '--resume', '--steps', '2']);
      assert(r.code === 0 && /holds no checkpoint yet .*starting at step 0/.test(r.stderr) && !/resumed/.test(r.stderr) && steps().join() === '1,2', `starts over:\n${r.stderr}`);
      // tensors without their sidecar: a damaged checkpoint, which a resume must not delete by starting over
      fs.renameSync(path.join(run, 'checkpoint-last.json'), path.join(run, 'sidecar.bak'));
      r = await cli(['pretrain', '--out', run, '--resume', '--steps', '3']);
      assert(r.code === 1 && /--resume: .*checkpoint-last\.json is missing beside the checkpoint tensors .*restore it to resume, or start anew with --restart/.test(r.stderr), `orphans:\n${r.stderr}`);
      fs.renameSync(path.join(run, 'sidecar.bak'), path.join(run, 'checkpoint-last.json'));
    });

    it('SIGTERM finishes the step, saves and exits 143 (an interrupted run is not a finished one); --resume then ends it; a damaged run.json is named', async () => {
      const { fs, path } = await mods();
      const out = path.join(tmp, 'sigterm');
      const args = ['pretrain', '--data', path.join(tmp, 'data'), '--preset', 'tiny', '--steps', '40', '--log-every', '1', '--out', out];
      let r = await cli(args, 2, 'SIGTERM');
      assert(r.code === 143 && /interrupt: finishing this step and saving/.test(r.stderr) && /interrupted at step \d+/.test(r.stderr), `stopped:\n${r.stderr}`);
      r = await cli(['pretrain', '--out', out, '--resume', '--steps', '6']);
      assert(r.code === 0 && /resumed .* at step \d+/.test(r.stderr) && /done at step 6/.test(r.stderr), `resumed:\n${r.stderr}`);
      // a damaged run.json: an error that names it
      for (const [text, re] of [['{"options": ', /--resume: .*run\.json is unreadable \(/], ['{}', /--resume: .*run\.json holds no run/]] as const) {
        fs.writeFileSync(path.join(out, 'run.json'), text);
        r = await cli(['pretrain', '--out', out, '--resume']);
        assert(r.code === 1 && re.test(r.stderr), `run.json ${text}:\n${r.stderr}`);
      }
    });

    it('refuses bad numbers and choices before doing anything', async () => {
      const { fs, path } = await mods();
      const out = path.join(tmp, 'bad-args');
      for (const [args, re] of [
        [['synth', '--n', '4', '--noise', 'abc', '--out', out], /--noise: expected a number ≥ 0, got 'abc'/],
        [['prepare', '--source', 'wfdb', '--root', tmp, '--out', out, '--fs', 'abc'], /--fs: expected a positive number, got 'abc'/],
        [['prepare', '--source', 'wfdb', '--root', tmp, '--out', out, '--dtype', 'f64'], /--dtype must be f32 or f16, got 'f64'/],
        [['prepare', '--source', 'edf', '--root', tmp, '--out', out], /--source must be ptbxl, challenge, code15, wfdb or npy, got 'edf'/],
        [['synth', '--n', '4', '--leads', '9', '--out', out], /--leads must be 8 or 12, got '9'/],
        [['probe', '--task', 'ranking', '--data', out, '--label', 'hr', '--random-init'], /--task must be multilabel, multiclass or regression, got 'ranking'/],
        [['prepare', '--source', 'npy', '--root', tmp, '--out', out, '--scale', '-1'], /--scale: expected a positive number, got '-1'/],
        [['prepare', '--source', 'wfdb', '--root', tmp, '--out', out, '--reject', 'flat,wobbly'], /--reject: expected a comma list of nan, inf, flat, saturated, amplitude, or none; got 'flat,wobbly'/],
        [['pretrain', '--steps', '0', '--out', out], /--steps: expected a positive integer, got '0'/],
        [['pretrain', '--lr', '-1', '--out', out], /--lr: expected a positive number, got '-1'/],
      ] as const) {
        const r = await cli([...args]);
        assert(r.code === 1 && re.test(r.stderr), `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
      }
      assert(!fs.existsSync(out), 'nothing written');
    });

    it('prepare --reject: the quality issues that skip a record (a flat lead: skipped by default, kept with none); nothing written exits 1; verify checks the shards', async () => {
      const { fs, path } = await mods();
      const { testSignal, wfdb16Record } = await import('../data/fixtures.js');
      const root = path.join(tmp, 'reject-src');
      fs.mkdirSync(root, { recursive: true });
      const { hea, dat } = wfdb16Record('flat', 500, 1000, (k, t) => (k === 8 ? 0 : testSignal(k, t, 500)));
      fs.writeFileSync(path.join(root, 'flat.hea'), hea);
      fs.writeFileSync(path.join(root, 'flat.dat'), dat);
      const run = async (extra: string[]) => {
        const out = path.join(tmp, `reject-${extra.join('-') || 'default'}`);
        const r = await cli(['prepare', '--source', 'wfdb', '--root', root, '--out', out, '--seconds', '2', '--workers', '0', ...extra]);
        // no record written is a failure (exit 1), with the counts and reasons printed all the same
        assert(r.code === (extra.length ? 0 : 1), `prepare ${extra.join(' ')}: exit ${r.code}\n${r.stderr}`);
        return { out, text: r.stderr, manifest: JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { records: unknown[] } };
      };
      const byDefault = await run([]);
      assert(byDefault.manifest.records.length === 0 && /0 records written, 1 skipped \(flat 1/.test(byDefault.text), byDefault.text);
      const none = await run(['--reject', 'none']);
      assert(none.manifest.records.length === 1 && /1 records written, 0 skipped/.test(none.text), none.text);
      const nan = await run(['--reject', 'nan,inf']);
      assert(nan.manifest.records.length === 1, nan.text);
      // a .npy in µV (a 1.8 mV signal): out of range as mV, read with --scale 0.001
      const { writeNpy } = await import('../../train/data/npy.js');
      const uv = path.join(tmp, 'reject-uv');
      fs.mkdirSync(uv, { recursive: true });
      fs.writeFileSync(path.join(uv, 'r.npy'), writeNpy(Float32Array.from({ length: 12 * 1000 }, (_, i) => 1000 * 3 * testSignal(Math.floor(i / 1000), i % 1000, 500)), [12, 1000]));
      for (const [extra, code, written] of [[[], 1, 0], [['--scale', '0.001'], 0, 1]] as const) {
        const out = path.join(tmp, `uv-${extra.length}`);
        const r = await cli(['prepare', '--source', 'npy', '--root', uv, '--out', out, '--seconds', '2', '--workers', '0', ...extra]);
        assert(r.code === code && new RegExp(`${written} records written`).test(r.stderr) && (written || /amplitude 1/.test(r.stderr)), `µV ${extra.join(' ')}:\n${r.stderr}`);
      }
      // verify: every shard's SHA-256 against the manifest
      const dir = none.out;
      let r = await cli(['verify', '--data', dir]);
      assert(r.code === 0 && /1 records in 1 shards, every checksum matches/.test(r.stderr), `verify:\n${r.stderr}`);
      const shard = path.join(dir, 'shard-00000.bin');
      const bytes = fs.readFileSync(shard);
      bytes[7] ^= 1;
      fs.writeFileSync(shard, bytes);
      r = await cli(['verify', '--data', dir]);
      assert(r.code === 1 && /checksum mismatch in shard-00000\.bin/.test(r.stderr), `verify a flipped bit:\n${r.stderr}`);
    });

    it("logs the teacher's representation std and the targets' content share, as float64 computes them from its tokens", async () => {
      const engine = await getEngine();
      const { teacherStats } = await import('../../train/pretrain.js');
      const { EcgJepa } = await import('../../model/jepa.js');
      const { makeConfig, inputLength } = await import('../../model/config.js');
      const { Rng } = await import('../../engine/random.js');
      const cfg = makeConfig('tiny');
      const model = new EcgJepa(engine, cfg, { seed: 3 });
      try {
        const B = 6, C = cfg.leads.length, L = inputLength(cfg);
        const rng = new Rng(9);
        const data = Float32Array.from({ length: B * C * L }, () => rng.normal());
        const x = engine.upload(data, [B, C, L]);
        const got = await teacherStats(model, engine, x);
        const { out, target } = model.tape.noGrad(() => model.teacherTokens(x));
        const [h, n] = [await engine.read(out), await engine.read(target)];
        const per = n.length / B, D = cfg.encoder.dim, T = per / D;
        let total = 0, fixed = 0, std = 0;
        for (let i = 0; i < per; i++) {
          let m = 0;
          for (let b = 0; b < B; b++) m += n[b * per + i] / B;
          fixed += B * m * m;
          for (let b = 0; b < B; b++) total += n[b * per + i] ** 2;
        }
        for (let d = 0; d < D; d++) {
          const rep = Array.from({ length: B }, (_, b) => { let s = 0; for (let t = 0; t < T; t++) s += h[(b * T + t) * D + d] / T; return s; });
          const mu = rep.reduce((a, v) => a + v, 0) / B;
          std += Math.sqrt(rep.reduce((a, v) => a + (v - mu) ** 2, 0) / B) / D;
        }
        assert(Math.abs(got.content - (1 - fixed / total)) < 1e-4 && got.content > 0, `content ${got.content}, float64 ${1 - fixed / total}`);
        assert(Math.abs(got.std - std) < 1e-4 * std, `std ${got.std}, float64 ${std}`);
        // the batch in micro-batches (as --micro-batch runs): the same statistics of the whole batch
        for (const k of [2, 3]) {
          const per = (B / k) * C * L;
          const parts = Array.from({ length: k }, (_, i) => engine.upload(data.subarray(i * per, (i + 1) * per), [B / k, C, L]));
          const m = await teacherStats(model, engine, parts);
          assert(Math.abs(m.content - got.content) < 1e-6 && Math.abs(m.std - got.std) < 1e-6 * std, `${k} micro-batches: ${JSON.stringify(m)}, whole: ${JSON.stringify(got)}`);
          parts.forEach((t) => t.dispose());
        }
        // the same record B times: nothing differs between records
        const same = engine.upload(Float32Array.from({ length: B * C * L }, (_, i) => data[i % (C * L)]), [B, C, L]);
        const flat = await teacherStats(model, engine, same);
        assert(flat.content < 1e-4 && flat.std < 1e-5, `identical records: ${JSON.stringify(flat)}`);
        [x, same, out, target].forEach((t) => t.dispose());
      } finally {
        model.dispose();
      }
    });

    it('refuses a folder another live run holds (its lock), and takes over the lock of a killed one', async () => {
      const { fs, path } = await mods();
      const os = await import('node:os');
      const run = path.join(tmp, 'locked');
      fs.mkdirSync(run, { recursive: true });
      fs.writeFileSync(path.join(run, '.lock'), JSON.stringify({ pid: process.pid, host: os.hostname(), what: 'pretrain', since: 'now' }));
      let r = await cli(['pretrain', '--preset', 'tiny', '--steps', '1', '--synthetic-records', '8', '--batch', '4', '--out', run]);
      assert(r.code === 1 && new RegExp(`is in use by pretrain \\(pid ${process.pid}, since now\\)`).test(r.stderr) && !fs.existsSync(path.join(run, 'run.json')), `live holder:\n${r.stderr}`);
      // a SIGKILLed run leaves its lock: the resume takes it over, and leaves none when it ends
      fs.rmSync(path.join(run, '.lock'));
      r = await cli(['pretrain', '--preset', 'tiny', '--steps', '40', '--synthetic-records', '8', '--batch', '4', '--log-every', '1', '--checkpoint-every', '1', '--out', run], 2);
      assert(r.signal === 'SIGKILL' && fs.existsSync(path.join(run, '.lock')), `killed:\n${r.stderr}`);
      r = await cli(['pretrain', '--out', run, '--resume', '--steps', '3']);
      assert(r.code === 0 && /resumed/.test(r.stderr) && !fs.existsSync(path.join(run, '.lock')), `resume after a kill:\n${r.stderr}`);
    });

    it('a resume trains with its run\'s config (batch, LR, schedules), whatever defaults say now', async () => {
      const { fs, path } = await mods();
      const run = path.join(tmp, 'pinned');
      let r = await cli(['pretrain', '--preset', 'tiny', '--synthetic-records', '16', '--steps', '2', '--log-every', '1', '--out', run]);
      assert(r.code === 0, `first:\n${r.stderr}`);
      // as a run started when the defaults were other: its config says batch 8 and lr 5e-4, its options nothing
      const file = path.join(run, 'run.json');
      const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
      assert(saved.options.batch === undefined && saved.options.lr === undefined, 'batch and lr were defaults');
      Object.assign(saved.config.optim, { batchSize: 8, lr: 5e-4, minLr: 7e-4 });
      fs.writeFileSync(file, JSON.stringify(saved));
      r = await cli(['pretrain', '--out', run, '--resume', '--steps', '3']);
      const ck = JSON.parse(fs.readFileSync(path.join(run, 'checkpoint-last.json'), 'utf8'));
      assert(r.code === 0 && ck.config.optim.batchSize === 8 && ck.config.optim.lr === 5e-4 && ck.config.optim.minLr === 7e-4 && ck.state.extra.data.epoch === 1, `resumed at ${JSON.stringify(ck.config.optim)}, data ${JSON.stringify(ck.state.extra.data)}\n${r.stderr}`);
    });

    it('--micro-batch: the steps of the whole batch up to rounding; saved with the run (a plain resume after SIGKILL gives the same bytes), changed by a resume that gives another; one that does not divide the batch refused before anything is written', async () => {
      await killAndResume('micro-kill', ['--micro-batch', '2']);
      const { path, fs } = await mods();
      const common = ['pretrain', '--data', path.join(tmp, 'data'), '--preset', 'tiny', '--batch', '4', '--steps', '6', '--log-every', '1', '--seed', '2'];
      const [a, b, c] = ['micro-a', 'micro-b', 'micro-c'].map((n) => path.join(tmp, n));
      const ra = await cli([...common, '--out', a]);
      const rb = await cli([...common, '--micro-batch', '2', '--out', b]);
      assert(ra.code === 0 && rb.code === 0, `runs failed:\n${ra.stderr}\n${rb.stderr}`);
      assert(/micro-batches of 2: 2 forward and backward passes per step of 4/.test(rb.stderr), rb.stderr);
      const losses = (run: string) => fs.readFileSync(path.join(run, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);
      const [la, lb] = [losses(a), losses(b)];
      assert(la.length === 6 && la.every((v, i) => Math.abs(v - lb[i]) <= 1e-4 * v), `losses whole ${la}, in micro-batches ${lb}`);
      const saved = () => JSON.parse(fs.readFileSync(path.join(b, 'run.json'), 'utf8')).options.microBatch;
      assert(saved() === 2, `run.json keeps the micro-batch: ${saved()}`);
      const resumed = await cli(['pretrain', '--out', b, '--resume', '--steps', '8', '--micro-batch', '4']);
      assert(resumed.code === 0 && losses(b).length === 8 && !/micro-batches of/.test(resumed.stderr) && saved() === 4, `resume with another micro-batch:\n${resumed.stderr}`);
      const bad = await cli([...common, '--micro-batch', '3', '--out', c]);
      assert(bad.code !== 0 && /--micro-batch 3: must be a whole number that divides the batch, 4/.test(bad.stderr), bad.stderr);
      assert(!fs.existsSync(path.join(c, 'run.json')), 'nothing written for a refused run');
    });

    it('--recompute: the same losses bit for bit as holding the activations; saved with the run, and --no-recompute on a resume turns it off', async () => {
      const { path, fs } = await mods();
      const common = ['pretrain', '--data', path.join(tmp, 'data'), '--preset', 'tiny', '--batch', '4', '--steps', '4', '--log-every', '1', '--seed', '3'];
      const [a, b] = ['recompute-a', 'recompute-b'].map((n) => path.join(tmp, n));
      const ra = await cli([...common, '--out', a]);
      const rb = await cli([...common, '--recompute', '--out', b]);
      assert(ra.code === 0 && rb.code === 0, `runs failed:\n${ra.stderr}\n${rb.stderr}`);
      assert(/block activations recomputed in the backward/.test(rb.stderr) && !/recomputed/.test(ra.stderr), rb.stderr);
      const losses = (run: string) => fs.readFileSync(path.join(run, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);
      const [la, lb] = [losses(a), losses(b)];
      assert(la.length === 4 && la.every((v, i) => v === lb[i]), `losses holding ${la}, recomputing ${lb}`);
      const saved = () => JSON.parse(fs.readFileSync(path.join(b, 'run.json'), 'utf8')).options.recompute;
      assert(saved() === true, `run.json keeps --recompute: ${saved()}`);
      let r = await cli(['pretrain', '--out', b, '--resume', '--steps', '5']);
      assert(r.code === 0 && /block activations recomputed/.test(r.stderr) && saved() === true, `a plain resume keeps it:\n${r.stderr}`);
      r = await cli(['pretrain', '--out', b, '--resume', '--steps', '6', '--no-recompute']);
      assert(r.code === 0 && !/recomputed/.test(r.stderr) && saved() === false && losses(b).length === 6, `--no-recompute:\n${r.stderr}`);
    });

    it('refuses to resume a folder without a run', async () => {
      const { path } = await mods();
      const r = await cli(['pretrain', '--out', path.join(tmp, 'nothing'), '--resume']);
      assert(r.code === 1 && /nothing to resume/.test(r.stderr), `clear error expected:\n${r.stderr}`);
    });
  });
