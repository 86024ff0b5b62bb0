// `ecg-jepa export --checkpoint IN --out OUT [--dtype f32|f16] [--encoder student|teacher]`: the
// encoder alone (model/export.ts) from a pretraining checkpoint, a fine-tuned model or an
// encoder-only one, saved atomically as a checkpoint embed/probe/finetune and browsers load. Node only.
import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { checkpointBase, checkpointFiles, loadCheckpoint, saveCheckpoint } from '../model/checkpoint.js';
import { checkOutputs } from './outputs.js';
import { f32OrF16, oneOf } from './cli-args.js';
import { exportEncoder, type EncoderExportInfo, type ExportDType, type ExportedEncoder } from '../model/export.js';

export interface ExportResult {
  tensors: string;
  meta: string;
  info: EncoderExportInfo;
  /** Bytes of the two files: the source's and the export's. */
  sourceBytes: number;
  bytes: number;
}

/** Bytes of a checkpoint's sidecar plus the tensor file it names. */
async function checkpointBytes(meta: string): Promise<number> {
  const tensors = resolve(dirname(meta), JSON.parse(await readFile(meta, 'utf8')).tensors);
  const [m, t] = await Promise.all([stat(meta), stat(tensors)]);
  return m.size + t.size;
}

/** Loads `checkpoint`, takes its encoder (see exportEncoder) and saves `<out>.{safetensors,json}` atomically. */
export async function exportCheckpoint(checkpoint: string, out: string, opts: { dtype?: ExportDType; encoder?: ExportedEncoder } = {}): Promise<ExportResult> {
  checkOutputs('export', checkpointFiles(out), [{ checkpoint }]);
  const ck = await loadCheckpoint(checkpoint);
  const { checkpoint: exported, info } = exportEncoder(ck, { ...opts, source: checkpoint });
  const sourceBytes = await checkpointBytes(`${checkpointBase(resolve(checkpoint))}.json`);
  const saved = await saveCheckpoint(out, exported);
  const bytes = await checkpointBytes(saved.meta);
  return { ...saved, info, sourceBytes, bytes };
}

/** 1234567 → '1.23 MB' (decimal units, as download sizes are given). */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) [n, i] = [n / 1000, i + 1];
  return i ? `${n.toPrecision(3)} ${units[i]}` : `${n} B`;
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('write the encoder alone (for inference, e.g. a web page) from a pretraining checkpoint, a fine-tuned model or an imported encoder')
    .requiredOption('--checkpoint <path>', 'source: pretraining checkpoint (runs/…/checkpoint-last), fine-tuned model (its head is dropped) or encoder-only checkpoint')
    .requiredOption('--out <base>', 'checkpoint to write: <base>.safetensors and <base>.json')
    .option('--dtype <f32|f16>', 'tensor type: f32 (bit-identical) or f16 (half the bytes; widened to f32 on load)', f32OrF16('--dtype'), 'f32')
    .option('--encoder <student|teacher>', "student (what the paper's downstream code uses) or the EMA teacher (pretraining checkpoints only)", oneOf('student', 'teacher')('--encoder'), 'student')
    .action(async (o: { checkpoint: string; out: string; dtype: 'f32' | 'f16'; encoder: 'student' | 'teacher' }) => {
      const r = await exportCheckpoint(o.checkpoint, o.out, { dtype: o.dtype, encoder: o.encoder });
      const i = r.info;
      console.log(`${o.checkpoint}: ${i.source.kind} checkpoint, step ${i.source.step}, preset ${i.preset}, leads ${i.leads.join(',')}: ${formatBytes(r.sourceBytes)} (${r.sourceBytes} bytes)`);
      console.log(`→ ${i.encoder} encoder, ${i.tensors} tensors, ${i.params} parameters, ${i.dtype}: ${formatBytes(r.bytes)} (${r.bytes} bytes, ${((100 * r.bytes) / r.sourceBytes).toFixed(1)}% of the source)` +
        `${i.bandpass ? `, band-pass ${i.bandpass.join('–')} Hz recorded` : ''}: ${r.tensors}, ${r.meta}`);
    });
}
