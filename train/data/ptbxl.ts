// PTB-XL index: ptbxl_database.csv (one row per ECG, scp_codes as a Python dict literal, strat_fold,
// record paths) and scp_statements.csv (statement → diagnostic/form/rhythm, class, subclass).
// Label aggregation follows the PTB-XL benchmark: every scp_codes key counts, likelihood ignored.
import Papa from 'papaparse';

export interface ScpStatement {
  code: string;
  description: string;
  diagnostic: boolean;
  form: boolean;
  rhythm: boolean;
  diagnosticClass: string | null;
  diagnosticSubclass: string | null;
  category: string | null;
}

export interface PtbxlRow {
  ecgId: number;
  patientId: number | null;
  age: number | null;
  /** 0 = male, 1 = female in the file. */
  sex: 'male' | 'female' | null;
  /** Statement → likelihood (0–100; 0 means unknown, not absent). */
  scpCodes: Record<string, number>;
  fold: number;
  filenameLr: string;
  filenameHr: string;
  /** Every column as the string in the file. */
  raw: Record<string, string>;
}

export const PTBXL_LEVELS = ['all', 'diagnostic', 'subdiagnostic', 'superdiagnostic', 'form', 'rhythm'] as const;
export type PtbxlLevel = (typeof PTBXL_LEVELS)[number];
export type PtbxlLabels = Record<PtbxlLevel, string[]>;

/** CSV text → rows of strings (quoted fields with commas, quotes and newlines handled). */
export function parseCsv(text: string): string[][] {
  const res = Papa.parse<string[]>(text.replace(/^\uFEFF/, ''), { header: false, skipEmptyLines: true });
  const fatal = res.errors.find((e) => e.type === 'Quotes');
  if (fatal) throw new Error(`CSV: ${fatal.message} (row ${fatal.row})`);
  return res.data;
}

/** Rows keyed by the header row's names (the first row). */
export function csvObjects(text: string): Record<string, string>[] {
  const [head, ...rows] = parseCsv(text);
  if (!head) return [];
  return rows.map((r) => Object.fromEntries(head.map((h, i) => [h.trim(), r[i] ?? ''])));
}

function num(s: string | undefined): number | null {
  if (s === undefined || s.trim() === '' || s.trim().toLowerCase() === 'nan') return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
}

function flag(s: string | undefined): boolean {
  const n = num(s);
  return n !== null && n !== 0;
}

export function parseScpStatements(text: string): Map<string, ScpStatement> {
  const [head, ...rows] = parseCsv(text);
  if (!head) throw new Error('scp_statements.csv is empty');
  const col = (name: string) => head.findIndex((h) => h.trim() === name);
  const ix = {
    description: col('description'),
    diagnostic: col('diagnostic'),
    form: col('form'),
    rhythm: col('rhythm'),
    cls: col('diagnostic_class'),
    sub: col('diagnostic_subclass'),
    cat: col('Statement Category'),
  };
  if (ix.diagnostic < 0 || ix.form < 0 || ix.rhythm < 0) throw new Error('scp_statements.csv: missing diagnostic/form/rhythm columns');
  const out = new Map<string, ScpStatement>();
  for (const r of rows) {
    const code = (r[0] ?? '').trim(); // the first column has an empty name: it is the code
    if (!code) continue;
    const str = (i: number) => (i >= 0 && (r[i] ?? '').trim() !== '' ? r[i].trim() : null);
    out.set(code, {
      code,
      description: str(ix.description) ?? '',
      diagnostic: flag(r[ix.diagnostic]),
      form: flag(r[ix.form]),
      rhythm: flag(r[ix.rhythm]),
      diagnosticClass: str(ix.cls),
      diagnosticSubclass: str(ix.sub),
      category: str(ix.cat),
    });
  }
  return out;
}

/** `{'NORM': 100.0, 'SR': 0.0}` → object. No code contains a quote, so swapping quotes is enough. */
export function parseScpCodes(s: string): Record<string, number> {
  const t = s.trim();
  if (t === '' || t === '{}') return {};
  const obj = JSON.parse(t.replace(/'/g, '"')) as Record<string, unknown>;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(obj)) out[k] = Number(v);
  return out;
}

/** The rows of ptbxl_database.csv. A row without ecg_id, fold or readable scp_codes throws, or with
 *  `onBad` is handed to it and left out (prepare reports it and reads the others). */
export function parsePtbxlDatabase(text: string, onBad?: (message: string) => void): PtbxlRow[] {
  const rows = csvObjects(text);
  const out: PtbxlRow[] = [];
  rows.forEach((raw, i) => {
    try {
      out.push(ptbxlRow(raw, i + 2));
    } catch (e) {
      if (!onBad) throw e;
      onBad((e as Error).message);
    }
  });
  return out;
}

function ptbxlRow(raw: Record<string, string>, line: number): PtbxlRow {
  const ecgId = num(raw.ecg_id);
  if (ecgId === null) throw new Error(`ptbxl_database.csv row ${line}: no ecg_id`);
  const fold = num(raw.strat_fold);
  if (fold === null) throw new Error(`ptbxl_database.csv row ${line}: no strat_fold`);
  const sex = num(raw.sex);
  let scpCodes: Record<string, number>;
  try {
    scpCodes = parseScpCodes(raw.scp_codes ?? '');
  } catch (e) {
    throw new Error(`ptbxl_database.csv ecg_id ${ecgId}: bad scp_codes '${raw.scp_codes}': ${(e as Error).message}`);
  }
  return {
    ecgId,
    patientId: num(raw.patient_id),
    age: num(raw.age),
    sex: sex === 0 ? 'male' : sex === 1 ? 'female' : null,
    scpCodes,
    fold,
    filenameLr: raw.filename_lr ?? '',
    filenameHr: raw.filename_hr ?? '',
    raw,
  };
}

/** Labels at every level; each list sorted and de-duplicated. Codes not in the statements table count only for 'all'. */
export function ptbxlLabels(scpCodes: Record<string, number>, statements: Map<string, ScpStatement>): PtbxlLabels {
  const sets: Record<PtbxlLevel, Set<string>> = {
    all: new Set(),
    diagnostic: new Set(),
    subdiagnostic: new Set(),
    superdiagnostic: new Set(),
    form: new Set(),
    rhythm: new Set(),
  };
  for (const code of Object.keys(scpCodes)) {
    sets.all.add(code);
    const st = statements.get(code);
    if (!st) continue;
    if (st.diagnostic) {
      sets.diagnostic.add(code);
      if (st.diagnosticSubclass) sets.subdiagnostic.add(st.diagnosticSubclass);
      if (st.diagnosticClass) sets.superdiagnostic.add(st.diagnosticClass);
    }
    if (st.form) sets.form.add(code);
    if (st.rhythm) sets.rhythm.add(code);
  }
  return Object.fromEntries(PTBXL_LEVELS.map((l) => [l, [...sets[l]].sort()])) as PtbxlLabels;
}

/** The sorted class list of a level (multi-hot column order): superdiagnostic ⇒ CD, HYP, MI, NORM, STTC. */
export function ptbxlClasses(statements: Map<string, ScpStatement>, level: PtbxlLevel): string[] {
  const s = new Set<string>();
  for (const st of statements.values()) {
    if (level === 'all') s.add(st.code);
    else if (level === 'form' ? st.form : level === 'rhythm' ? st.rhythm : st.diagnostic) {
      const v = level === 'subdiagnostic' ? st.diagnosticSubclass : level === 'superdiagnostic' ? st.diagnosticClass : st.code;
      if (v) s.add(v);
    }
  }
  return [...s].sort();
}

export function multiHot(labels: readonly string[], classes: readonly string[]): Float32Array {
  const out = new Float32Array(classes.length);
  for (const l of labels) {
    const i = classes.indexOf(l);
    if (i >= 0) out[i] = 1;
  }
  return out;
}

/**
 * Split by strat_fold. 'standard' (recommended by PTB-XL): train 1–8, val 9, test 10.
 * 'kim' (ECG-JEPA, Kim 2024): train 1–9, test 10, no validation fold.
 */
export function ptbxlSplit(fold: number, scheme: 'standard' | 'kim' = 'standard'): 'train' | 'val' | 'test' {
  if (fold === 10) return 'test';
  if (fold === 9 && scheme === 'standard') return 'val';
  return 'train';
}

/** Record path without extension, relative to the PTB-XL root: records500/… or records100/…. */
export function ptbxlRecordPath(row: PtbxlRow, rate: 100 | 500 = 500): string {
  const p = rate === 500 ? row.filenameHr : row.filenameLr;
  if (p) return p;
  // Older copies may lack the column; the layout is fixed: folder = floor(id/1000)*1000.
  const folder = String(Math.floor(row.ecgId / 1000) * 1000).padStart(5, '0');
  const file = String(row.ecgId).padStart(5, '0');
  return rate === 500 ? `records500/${folder}/${file}_hr` : `records100/${folder}/${file}_lr`;
}

/** Node: the index of a PTB-XL root from both CSVs; `bad` holds what is wrong with each row left out. */
export async function loadPtbxlIndex(root: string): Promise<{ rows: PtbxlRow[]; statements: Map<string, ScpStatement>; bad: string[] }> {
  const { nodeMods, readText } = await import('./fsutil.js');
  const { path } = await nodeMods();
  const statements = parseScpStatements(await readText(path.join(root, 'scp_statements.csv')));
  const bad: string[] = [];
  const rows = parsePtbxlDatabase(await readText(path.join(root, 'ptbxl_database.csv')), (m) => bad.push(m));
  return { rows, statements, bad };
}
