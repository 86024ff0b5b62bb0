// Output paths of the commands that write files next to their inputs (embed, predict, explain,
// probe, finetune, export): checked before any work, so a typo in --out cannot overwrite a checkpoint, a dataset's
// manifest or a model, and a folder given where a file is meant fails at once. Node only.
import { existsSync, statSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import { checkpointFiles } from '../model/checkpoint.js';

/** What a command reads: a checkpoint (any of its files) or a prepared dataset (its manifest). */
export type Input = { checkpoint: string } | { data: string };

const filesOf = (i: Input) => ('checkpoint' in i ? checkpointFiles(i.checkpoint) : [`${i.data}${sep}manifest.json`]).map((f) => resolve(f));

/** Throws unless each of `outputs` (file paths) names a file, not a folder, and none of the inputs' files. */
export function checkOutputs(command: string, outputs: string[], inputs: Input[]): void {
  const taken = new Map<string, Input>();
  for (const i of inputs) for (const f of filesOf(i)) taken.set(f, i);
  for (const out of outputs) {
    if (/[\\/]$/.test(out) || (existsSync(out) && statSync(out).isDirectory()))
      throw new Error(`${command}: --out ${out} is a folder; give a file path (its name without extension for the files written)`);
    const hit = taken.get(resolve(out));
    if (hit) throw new Error(`${command}: writing ${out} would overwrite the ${'checkpoint' in hit ? `checkpoint ${hit.checkpoint}` : `dataset ${hit.data}`} it reads; write elsewhere`);
  }
}
