// `ecg-jepa import-torch FILE.pth --out BASE`: the authors' released PyTorch weights as our
// checkpoint, without Python (model/torch-import.ts does the work over bytes). Node only.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { saveCheckpoint } from '../model/checkpoint.js';
import { importTorchEncoder, type TorchImportInfo } from '../model/torch-import.js';

/** SHA-256 of the released files whose hash is published (ecg-jepa-reference.md §8, third-party
 *  note), so a corrupt or different download is caught before weeks of downstream work. */
export const KNOWN_RELEASES: Record<string, string> = {
  'multiblock_epoch100.pth': '61334869f905a7d6de32bc573c60024eaf6efba7c35c0e45fc2ea7d52b6ff66e',
};

/** Node's single-read limit (fs.readFile refuses larger files). */
const MAX_BYTES = 2 ** 31 - 1;

export interface ImportTorchResult {
  tensors: string;
  meta: string;
  info: TorchImportInfo;
  warnings: string[];
}

/** Reads `file`, checks it against `preset` and saves `<out>.{safetensors,json}` atomically. */
export async function importTorchFile(file: string, out: string, opts: { preset?: string } = {}): Promise<ImportTorchResult> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (e) {
    throw new Error(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (e as Error).message}`);
  }
  if (size > MAX_BYTES) throw new Error(`${file}: ${size} bytes; files over 2 GiB are not read (the released ECG-JEPA checkpoints are 341 MB)`);
  const bytes = await readFile(file);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const r = importTorchEncoder(bytes, { preset: opts.preset, source: basename(file), sha256 });
  const published = KNOWN_RELEASES[basename(file)];
  if (published && published !== sha256)
    r.warnings.push(`${basename(file)} has SHA-256 ${sha256}, not the published ${published}: a corrupt or different download?`);
  const saved = await saveCheckpoint(out, r.checkpoint);
  return { ...saved, info: r.info, warnings: r.warnings };
}

export function registerImportTorch(program: Command): void {
  program
    .command('import-torch')
    .description("convert the authors' released PyTorch weights (multiblock_epoch100.pth, random_epoch100.pth) into an encoder-only checkpoint for embed/probe/finetune")
    .argument('<file.pth>', "torch.save file: {'encoder': state_dict, 'epoch': n} or a bare encoder state_dict")
    .requiredOption('--out <base>', 'checkpoint to write: <base>.safetensors and <base>.json')
    .option('--preset <name>', 'architecture of the weights (base = the paper)', 'base')
    .action(async (file: string, o: { out: string; preset: string }) => {
      const r = await importTorchFile(file, o.out, { preset: o.preset });
      for (const w of r.warnings) console.error(`warning: ${w}`);
      const i = r.info;
      console.log(`${i.source} (sha256 ${i.sha256}${i.epoch === null ? '' : `, epoch ${i.epoch}`}): ${i.tensors} encoder tensors, preset ${i.preset}` +
        `${i.posEmbedMaxAbsDiff === null ? '' : `, pos_embed within ${i.posEmbedMaxAbsDiff.toExponential(1)} of ours`} → ${r.tensors}, ${r.meta}`);
    });
}
