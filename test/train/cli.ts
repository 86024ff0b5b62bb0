// For the Node-only specs of train/: ecg-jepa commands run in-process (import-torch, export and the
// eval commands on the suite's shared engine), and Node's modules, imported only when such a spec
// runs (the browser bundle holds every spec).
import { getEngine } from '../helpers.js';

export async function nodeMods() {
  const [fs, path, os, crypto] = await Promise.all([import('node:fs'), import('node:path'), import('node:os'), import('node:crypto')]);
  return { fs, path, os, crypto };
}

/** Runs one command line; returns what it printed on stdout and stderr. */
export async function runCli(args: string[]): Promise<string> {
  const [{ Command }, { registerImportTorch }, { registerExport }, { registerEvalCommands }] = await Promise.all([
    import('commander'), import('../../train/import-torch.js'), import('../../train/export.js'), import('../../train/cli-eval.js'),
  ]);
  const engine = await getEngine();
  const program = new Command().exitOverride();
  registerImportTorch(program);
  registerExport(program);
  registerEvalCommands(program, (fn) => fn(engine));
  const [log, err] = [console.log, console.error];
  const lines: string[] = [];
  console.log = console.error = (...a: unknown[]) => void lines.push(a.join(' '));
  try {
    await program.parseAsync(args, { from: 'user' });
  } finally {
    [console.log, console.error] = [log, err];
  }
  return lines.join('\n');
}
