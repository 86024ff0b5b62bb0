// Labels measured from a prepared dataset's own signals (`ecg-jepa labels --derive`), for feature
// regression where no table of measurements exists: heart rate, QRS duration.
import { detectRPeaks } from './dsp.js';
import { openDataset } from './dataset.js';
import { measureQrs, QRS_MIN_FS, QRS_RANGE } from './delineate.js';
import { sha256 } from './fsutil.js';
import { setLabelFields, updateLabels, type LabelJoin } from './labels.js';

/** Rates outside this range (bpm) are detector failures, not hearts. */
export const HR_RANGE = [20, 300] as const;

/**
 * Heart rate (bpm) of one record laid out [lead][sample]: per lead, 60 / the mean R–R interval of
 * the beats `detectRPeaks` finds; the median over the leads with at least 3 beats, so a lead whose
 * small QRS or noise misleads the detector is outvoted. Undefined when no lead has 3 beats or the
 * median is outside 20–300 bpm.
 */
export function heartRate(x: Float32Array, leads: number, fs: number): number | undefined {
  const samples = x.length / leads;
  const rates: number[] = [];
  for (let l = 0; l < leads; l++) {
    const peaks = detectRPeaks(x.subarray(l * samples, (l + 1) * samples), fs);
    if (peaks.length >= 3) rates.push((60 * fs * (peaks.length - 1)) / (peaks[peaks.length - 1] - peaks[0]));
  }
  if (!rates.length) return undefined;
  rates.sort((a, b) => a - b);
  const m = rates.length >> 1;
  const hr = rates.length % 2 ? rates[m] : (rates[m - 1] + rates[m]) / 2;
  return hr >= HR_RANGE[0] && hr <= HR_RANGE[1] ? hr : undefined;
}

/** What `--derive` measures: the field it stores by default, the measure of one record laid out
 *  [lead][sample] (undefined: none), and why a record can have none. */
interface Measure {
  /** What it is, for the command line's help. */
  help: string;
  field: string;
  measure: (x: Float32Array, leads: number, fs: number) => number | undefined;
  none: string;
}
export const DERIVABLE: Readonly<Record<string, Measure>> = {
  hr: {
    help: 'heart rate, bpm: the median over leads of 60 / mean R–R',
    field: 'hr',
    measure: heartRate,
    none: `no lead with 3 beats, or a rate outside ${HR_RANGE[0]}–${HR_RANGE[1]} bpm`,
  },
  qrs: {
    help: `QRS duration of the median beat, ms (${QRS_MIN_FS} Hz or more)`,
    field: 'qrs_ms',
    measure: (x, leads, fs) => measureQrs(x, leads, fs)?.durationMs,
    none: `fewer than 3 whole beats, or no QRS of ${QRS_RANGE[0]}–${QRS_RANGE[1]} ms`,
  },
};

export interface DeriveReport {
  field: string;
  records: number;
  /** Records that got a value (DERIVABLE[what].none says why the rest did not). */
  measured: number;
}

/**
 * Measures `what` (a key of DERIVABLE) on every record of the prepared dataset in `dir` and stores
 * it in each record's labels as `field` (default: DERIVABLE[what].field), listed in the manifest as
 * a join from `derived:<what>`.
 */
export async function deriveLabels(dir: string, what: string, o: { field?: string; replace?: boolean; onProgress?: (done: number, total: number) => void } = {}): Promise<DeriveReport> {
  if (!Object.hasOwn(DERIVABLE, what)) throw new Error(`--derive: can measure ${Object.keys(DERIVABLE).join(', ')}, not '${what}'`);
  const { measure, none } = DERIVABLE[what];
  const field = o.field ?? DERIVABLE[what].field;
  if (!field || field.includes('.')) throw new Error(`--derive: a label field name needs no dots and cannot be empty, got '${field}'`);
  return updateLabels(dir, async (manifest, earlier) => {
    const ds = await openDataset(dir);
    const values: (Record<string, number> | undefined)[] = [];
    try {
      const buf = new Float32Array(ds.recordLength);
      for (let i = 0; i < ds.size; i++) {
        ds.readInto(i, buf);
        let v: number | undefined;
        try {
          v = measure(buf, manifest.leads.length, manifest.fs);
        } catch (e) {
          throw new Error(`--derive ${what}: ${(e as Error).message}`);
        }
        values.push(v === undefined ? undefined : { [field]: v });
        if (i % 256 === 255 || i === ds.size - 1) o.onProgress?.(i + 1, ds.size);
      }
    } finally {
      ds.close();
    }
    if (!values.some(Boolean)) throw new Error(`--derive ${what}: measured in none of the ${values.length} records (${none}); nothing written`);
    const { matched } = setLabelFields(manifest.records, [field], values, earlier, o.replace);
    const join: LabelJoin = { source: `derived:${what}`, sha256: await sha256(JSON.stringify(values)), fields: [field], joined: new Date().toISOString() };
    return { fields: join.fields, join, result: { field, records: manifest.records.length, measured: matched } };
  });
}
