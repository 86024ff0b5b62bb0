// Progress bars for long CLI work (cli-progress), quiet when stdout is not a terminal except for
// a line every few seconds, so logs of unattended runs still show progress.
import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, total: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

export function progressBar(label: string, format = '{bar} {percentage}% | {value}/{total} | ETA {eta_formatted}'): Progress {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar({ format: `${label} ${format}`, hideCursor: true, etaBuffer: 50 }, cliProgress.Presets.shades_classic);
    let started = false;
    return {
      update(done, total, fields) {
        if (!started) {
          bar.start(total, done, fields);
          started = true;
        } else {
          bar.setTotal(total);
          bar.update(done, fields);
        }
      },
      stop: () => started && bar.stop(),
    };
  }
  let last = 0;
  return {
    update(done, total, fields) {
      const now = Date.now();
      if (now - last < 5000 && done < total) return;
      last = now;
      const extra = fields ? ' ' + Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(' ') : '';
      console.error(`${label} ${done}/${total}${extra}`);
    },
    stop() {},
  };
}
