// CODE-15% (Ribeiro et al.): exams_part*.hdf5 with `tracings` (N × 4096 × 12 float32 at 400 Hz,
// zero-padded on both sides to 4096) and `exam_id` (N), plus exams.csv with six abnormality labels.
// HDF5 goes through h5wasm (Node build); a tracing is read with a slice, so a part file is never
// loaded whole.
import type { Dataset as H5Dataset, File as H5File } from 'h5wasm';
import { csvObjects } from './ptbxl.js';
import { LEADS_12, RecordError, type EcgRecord } from './record.js';

export const CODE15_FS = 400;
export const CODE15_LABELS = ['1dAVb', 'RBBB', 'LBBB', 'SB', 'ST', 'AF'] as const;

export interface Code15Exam {
  examId: number;
  patientId: number | null;
  age: number | null;
  sex: 'male' | 'female' | null;
  /** The six abnormalities plus normal_ecg, as booleans. */
  labels: Record<string, boolean>;
  traceFile: string | null;
  raw: Record<string, string>;
}

function numOrNull(s: string | undefined): number | null {
  if (s === undefined || s.trim() === '') return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
}

function bool(s: string | undefined): boolean {
  const t = (s ?? '').trim().toLowerCase();
  return t === 'true' || t === '1' || t === '1.0';
}

/** exams.csv → exams keyed by exam_id. */
export function parseCode15Exams(text: string): Map<number, Code15Exam> {
  const out = new Map<number, Code15Exam>();
  for (const raw of csvObjects(text)) {
    const examId = numOrNull(raw.exam_id);
    if (examId === null) continue;
    const labels: Record<string, boolean> = {};
    for (const l of CODE15_LABELS) labels[l] = bool(raw[l]);
    if ('normal_ecg' in raw) labels.normal_ecg = bool(raw.normal_ecg);
    const male = raw.is_male;
    out.set(examId, {
      examId,
      patientId: numOrNull(raw.patient_id),
      age: numOrNull(raw.age),
      sex: male === undefined || male.trim() === '' ? null : bool(male) ? 'male' : 'female',
      labels,
      traceFile: raw.trace_file?.trim() || null,
      raw,
    });
  }
  return out;
}

/** [start, end) of the samples where any lead is non-zero; start = end = 0 when all are zero. */
export function nonZeroRange(signals: readonly Float32Array[]): { start: number; end: number } {
  const n = signals[0]?.length ?? 0;
  const nz = (t: number) => signals.some((s) => s[t] !== 0);
  let start = 0;
  while (start < n && !nz(start)) start++;
  if (start === n) return { start: 0, end: 0 };
  let end = n;
  while (end > start && !nz(end - 1)) end--;
  return { start, end };
}

/** The classes of the grouped label `code15` (for `--label code15`): the six abnormalities, and
 *  normal_ecg for an exam the cardiologists called normal. */
export const CODE15_CLASSES = [...CODE15_LABELS, 'normal_ecg'] as const;

/** An exam's flags as the list of its classes (an exam with none is left out of a probe, noted). */
export function code15Classes(labels: Record<string, boolean>): string[] {
  return CODE15_CLASSES.filter((c) => labels[c]);
}

/** CODE-15 has no folds: patients are spread over 1–10 by id, so a split never puts one patient's
 *  exams on both sides; null without an exams.csv row or a patient id. */
export function code15Fold(exam: Code15Exam | undefined): number | null {
  return exam?.patientId == null ? null : (exam.patientId % 10) + 1;
}

/**
 * One tracing (row-major [samples, leads] as stored) → record with the zero padding trimmed.
 * `scale` converts the stored values to mV (default 1: CODE-15's unit is documented unclearly, and
 * both ECG-JEPA papers use the values as they are).
 */
export function code15ToRecord(examId: number, tracing: ArrayLike<number>, samples: number, leads: number, exam?: Code15Exam, scale = 1): EcgRecord {
  const full = Array.from({ length: leads }, () => new Float32Array(samples));
  for (let t = 0; t < samples; t++) for (let l = 0; l < leads; l++) full[l][t] = tracing[t * leads + l] * scale;
  const { start, end } = nonZeroRange(full);
  if (end === start) throw new RecordError('all-zero', `exam ${examId}: tracing is all zeros`);
  return {
    id: String(examId),
    signals: full.map((s) => s.slice(start, end)),
    fs: CODE15_FS,
    leadNames: leads === 12 ? [...LEADS_12] : Array.from({ length: leads }, (_, i) => `lead${i}`),
    labels: exam ? { ...exam.labels, code15: code15Classes(exam.labels) } : {},
    meta: {
      examId,
      padStart: start,
      padEnd: samples - end,
      ...(exam ? { patientId: exam.patientId, age: exam.age, sex: exam.sex } : { noExamRow: true }),
    },
  };
}

type H5 = typeof import('h5wasm').default;

/** The 8 bytes an HDF5 file starts with (without a user block, as CODE-15's parts are written). */
const HDF5_SIGNATURE = Uint8Array.of(0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a);
let h5: Promise<H5> | undefined;

/** Loads h5wasm's Node build; the specifier is hidden so the browser bundle never includes it. */
export function loadH5wasm(): Promise<H5> {
  return (h5 ??= (async () => {
    const spec = 'h5wasm/node';
    const mod = (await import(/* @vite-ignore */ spec)) as { default: H5 };
    await mod.default.ready;
    return mod.default;
  })());
}

/** The fewest bytes a stored tracing (4096 × 12 samples, compressed or not) can take. */
const MIN_ROW_BYTES = 64;

/** An open exams_part*.hdf5 file: exam ids up front, tracings read one slice at a time. */
export class Code15File {
  private constructor(
    private file: H5File,
    private tracings: H5Dataset,
    readonly examIds: number[],
    readonly samples: number,
    readonly leads: number,
  ) {}

  static async open(path: string): Promise<Code15File> {
    const lib = await loadH5wasm();
    const { fs } = await (await import('./fsutil.js')).nodeMods();
    if (!fs.existsSync(path)) throw new RecordError('missing-file', path);
    // HDF5's signature first: the library prints its own error stack for a file that is not one
    const head = new Uint8Array(HDF5_SIGNATURE.length);
    const fd = fs.openSync(path, 'r');
    try {
      fs.readSync(fd, head, 0, head.length, 0);
    } finally {
      fs.closeSync(fd);
    }
    if (head.some((b, i) => b !== HDF5_SIGNATURE[i])) throw new RecordError('bad-hdf5', `${path}: not an HDF5 file (no HDF5 signature at its start)`);
    const file = new lib.File(path, 'r');
    try {
      const tr = file.get('tracings');
      if (!(tr instanceof lib.Dataset) || tr.shape?.length !== 3) throw new RecordError('bad-hdf5', `${path}: no 3-D 'tracings' dataset`);
      const [n, samples, leads] = tr.shape;
      // A row the file cannot hold (a resized dataset reads its missing chunks as zeros) is no tracing:
      // a bound, so a header cannot turn a small file into millions of records.
      const size = fs.statSync(path).size;
      if (n * MIN_ROW_BYTES > size) throw new RecordError('bad-hdf5', `${path}: 'tracings' claims ${n} rows, more than its ${size} bytes can hold`);
      const ids = file.get('exam_id');
      let examIds: number[];
      if (ids instanceof lib.Dataset) {
        const v = ids.value as ArrayLike<number | bigint>;
        examIds = Array.from(v, (x) => Number(x));
        if (examIds.length !== n) throw new RecordError('bad-hdf5', `${path}: ${examIds.length} exam ids for ${n} tracings`);
      } else examIds = Array.from({ length: n }, (_, i) => i);
      return new Code15File(file, tr, examIds, samples, leads);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  get size(): number {
    return this.examIds.length;
  }

  /** Tracing i as stored: row-major [samples, leads]. */
  readRaw(i: number): Float32Array {
    if (!(i >= 0 && i < this.size)) throw new RangeError(`tracing ${i} of ${this.size}`);
    const v = this.tracings.slice([[i, i + 1]]);
    if (v instanceof Float32Array) return v;
    if (ArrayBuffer.isView(v) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array)) return Float32Array.from(v as ArrayLike<number>);
    throw new RecordError('bad-hdf5', `tracings: unexpected element type`);
  }

  read(i: number, exams?: Map<number, Code15Exam>, scale = 1): EcgRecord {
    const id = this.examIds[i];
    return code15ToRecord(id, this.readRaw(i), this.samples, this.leads, exams?.get(id), scale);
  }

  close(): void {
    this.file.close();
  }
}
