// The one in-memory shape every reader produces and preprocessing consumes: one Float32Array per
// lead in millivolts, plus the sampling rate, lead names, labels and free-form metadata.

export interface EcgRecord {
  id: string;
  /** One array per lead, physical units converted to mV; NaN marks a missing sample. */
  signals: Float32Array[];
  /** Sampling rate in Hz. */
  fs: number;
  /** Canonical names where recognised (see canonicalLeadName), else as found in the file. */
  leadNames: string[];
  /** e.g. { scp: {...}, superdiagnostic: [...] } or { snomed: [...] }. */
  labels: Record<string, unknown>;
  meta: Record<string, unknown>;
}

/** Standard 12-lead order, shared by PTB-XL, the Challenge data and CODE-15. */
export const LEADS_12 = ['I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'] as const;
/** The 8 independent leads (the other 4 are linear combinations of I and II). */
export const LEADS_8 = ['I', 'II', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'] as const;

const CANONICAL = new Map<string, string>(LEADS_12.map((n) => [n.toUpperCase(), n]));

/** PTB-XL writes AVR, the Challenge aVR: match case-insensitively and return the standard spelling. */
export function canonicalLeadName(name: string): string {
  const t = name.trim();
  return CANONICAL.get(t.toUpperCase()) ?? t;
}

/** A record that cannot be used; `reason` is a short stable code for counting, message the detail. */
export class RecordError extends Error {
  constructor(
    readonly reason: string,
    message?: string,
  ) {
    super(message ? `${reason}: ${message}` : reason);
    this.name = 'RecordError';
  }
}

/** The reason code of any thrown value: RecordError's code, else 'error'. */
export function reasonOf(e: unknown): { reason: string; message: string } {
  if (e instanceof RecordError) return { reason: e.reason, message: e.message };
  return { reason: 'error', message: e instanceof Error ? e.message : String(e) };
}
