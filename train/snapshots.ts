// Encoder snapshots of a pretraining run (`pretrain --snapshot-every-epochs N`): the student alone,
// as `ecg-jepa export` writes it (model/export.ts exportEncoder + an atomic saveCheckpoint), under
// <run>/snapshots/encoder-epoch{E}.{safetensors,json}, so embed/probe/finetune can follow the
// encoder across training as the reference does (it saves the student every 5 epochs). Node only.
//
// The series and resume. A snapshot is written before the checkpoint of the same step, so every
// snapshot due at or before the checkpoint's step is on disk: the checkpoint commits it and lists it
// in its state (extra.snapshots). A resume starts after the checkpoint's step, so it never reaches
// (nor rewrites) a committed snapshot. A crash between a snapshot and the next checkpoint leaves an
// uncommitted one: the resumed run reaches that step again and finds the file. When the file was made
// by this run's config (schedules included) at that step, in the same dtype, the exact resume would rewrite the same
// bytes, so it is kept as it is and listed once; otherwise (the run was resumed with another --epochs,
// which moves the schedules) it is rewritten atomically with this run's weights. Each file is
// written to a temp file and renamed, so a crash never leaves a half snapshot, and no due epoch is
// skipped. A fresh run (not --resume) refuses a folder that holds snapshots: they belong to another
// run and would pass for this one's.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { checkpointBase, saveCheckpoint, type Checkpoint } from '../model/checkpoint.js';
import type { EcgJepaConfig } from '../model/config.js';
import { exportEncoder, type ExportDType } from '../model/export.js';

export const SNAPSHOT_DIR = 'snapshots';

/** One snapshot of the series, as the checkpoint lists it. */
export interface SnapshotRecord {
  /** The files' base name in <run>/snapshots: encoder-epoch{E}, or encoder-step{S} for a run that ends inside an epoch. */
  name: string;
  /** Epochs completed. */
  epoch: number;
  step: number;
}

/**
 * The snapshot due once `step` steps are done: after every `every`-th epoch, and at the end of
 * training (`totalSteps`; named by its step when it falls inside an epoch). null when none is due
 * (or `every` is 0: no snapshots).
 */
export function snapshotDue(step: number, itersPerEpoch: number, every: number, totalSteps: number): SnapshotRecord | null {
  if (!every || step === 0) return null;
  const epoch = Math.floor(step / itersPerEpoch);
  const epochEnd = step % itersPerEpoch === 0;
  if (epochEnd && (epoch % every === 0 || step === totalSteps)) return { name: `encoder-epoch${epoch}`, epoch, step };
  if (step === totalSteps) return { name: `encoder-step${step}`, epoch, step };
  return null;
}

/** The snapshots already in `run`'s folder (their base names). */
export function listSnapshots(run: string): string[] {
  const dir = join(run, SNAPSHOT_DIR);
  if (!existsSync(dir)) return [];
  // a stray tensor file without its sidecar (a save that never committed) counts too: it is this series' as well
  return [...new Set(readdirSync(dir).filter((f) => /^encoder-.*\.(json|safetensors)$/.test(f)).map(checkpointBase))].sort();
}

/** True when `base` holds a snapshot this run would write again identically: same step, config and dtype. */
function sameSnapshot(base: string, step: number, cfg: EcgJepaConfig, dtype: ExportDType): boolean {
  try {
    // the sidecar is written last (saveCheckpoint), so its presence commits the tensor file
    const meta = JSON.parse(readFileSync(`${base}.json`, 'utf8'));
    return meta.state?.step === step && meta.state.extra?.encoderExport?.dtype === dtype && JSON.stringify(meta.config) === JSON.stringify(cfg) && existsSync(join(dirname(base), meta.tensors));
  } catch {
    return false;
  }
}

/**
 * Writes snapshot `rec` of `ck` (a pretraining checkpoint of `run` at rec.step) unless the file
 * already holds it (see the rule above). The export records the run folder as its source and
 * state.epoch/state.step as the moment. Returns what it did, for the log.
 */
export async function writeSnapshot(run: string, ck: Checkpoint, rec: SnapshotRecord, dtype: ExportDType = 'f32'): Promise<{ base: string; written: boolean; replaced: boolean }> {
  if (ck.state.step !== rec.step) throw new Error(`snapshot ${rec.name}: the checkpoint is at step ${ck.state.step}, not ${rec.step}`);
  const base = join(run, SNAPSHOT_DIR, rec.name);
  const exists = existsSync(`${base}.json`);
  if (exists && sameSnapshot(base, rec.step, ck.config, dtype)) return { base, written: false, replaced: false };
  const { checkpoint } = exportEncoder(ck, { dtype, source: run });
  checkpoint.state.epoch = rec.epoch;
  await saveCheckpoint(base, checkpoint);
  return { base, written: true, replaced: exists };
}
