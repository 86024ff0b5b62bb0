// Labels from a table of one's own joined into a prepared dataset's manifest: ECG features measured
// elsewhere (heart rate, QRS duration from PTB-XL+ or a delineator, keyed by ecg_id), outcomes,
// demographics. Only manifest.json changes: the shards and what fixes them (dataSha256) stay.
import { parseCsv } from './ptbxl.js';
import { lockFolder, nodeMods, readText, sha256 } from './fsutil.js';
import { readManifest, writeManifest, type Manifest, type ManifestRecord } from './dataset.js';

/** One join, kept in the manifest so a re-run of prepare carries its values over. */
export interface LabelJoin {
  /** The table's path (resolved), or `derived:<what>` for a label measured from the signals; the
   *  SHA-256 of the table, or of the measured values. */
  source: string;
  sha256: string;
  /** A table's key column, and how record ids were matched to its keys (absent for a measured label). */
  key?: string;
  match?: LabelMatch;
  /** Label fields written: the column, or its new name. */
  fields: string[];
  joined: string;
}

/** `id`: the whole record id; `basename`: its last path part (WFDB and Challenge ids are paths). */
export type LabelMatch = 'id' | 'basename';

/** More columns than this need --columns: every value is repeated in each record's manifest line. */
export const MAX_DEFAULT_COLUMNS = 32;

export interface LabelTable {
  key: string;
  /** [column in the file, label field] pairs. */
  columns: [string, string][];
  /** Canonical key → the row's values by label field (missing values absent). */
  rows: Map<string, Record<string, number | string>>;
  /** Rows without a key value. */
  emptyKeys: number;
}

export interface LabelOptions {
  /** Key column (default: the first named one). */
  key?: string;
  /** Columns to join, each `column` or `column:field` (default: every column but the key). */
  columns?: readonly string[];
  match?: LabelMatch;
  /** Replace label fields that prepare wrote (fields of an earlier join are replaced anyway). */
  replace?: boolean;
}

export interface LabelReport {
  file: string;
  key: string;
  fields: string[];
  records: number;
  /** Records that found a row. */
  matched: number;
  /** Table rows that found no record (a few examples in `unmatchedKeys`). */
  unmatchedRows: number;
  unmatchedKeys: string[];
  emptyKeys: number;
  /** Per field: numeric and text values among the matched records (the rest: missing). */
  counts: Record<string, { numbers: number; texts: number }>;
}

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
/** Cells read as missing (what pandas and R write for one); any other text is a value. */
const MISSING_CELLS = ['', 'nan', 'na'] as const;

/** A cell as a label value: a number where it reads as one, undefined where missing, else the text. */
export function cellValue(s: string): number | string | undefined {
  const t = s.trim();
  if ((MISSING_CELLS as readonly string[]).includes(t.toLowerCase())) return undefined;
  if (NUMBER.test(t)) {
    const n = Number(t);
    if (Number.isFinite(n)) return n;
  }
  return t;
}

/** Keys and ids compared as written, except that digits-only ones drop leading zeros (00042 = 42). */
export function canonicalKey(s: string): string {
  const t = s.trim();
  return /^\d+$/.test(t) ? t.replace(/^0+(?=\d)/, '') : t;
}

function recordKey(id: string, match: LabelMatch): string {
  return canonicalKey(match === 'basename' ? id.slice(Math.max(id.lastIndexOf('/'), id.lastIndexOf('\\')) + 1) : id);
}

/** Why `field` cannot name a label field (probe reads 'a.b' as a path into objects), or null. */
function badField(field: string): string | null {
  return !field ? 'a label field needs a name' : field.includes('.') ? `the label field '${field}' has a dot (probe would read it as a path)` : null;
}

/**
 * Parses a CSV table (header row first) into label rows by key. `name` appears in errors. Columns
 * without a name (pandas' index) are left out; a row whose cells do not line up with the header is
 * refused (a stray comma would shift values into the next column).
 */
export function parseLabelTable(text: string, name: string, o: Pick<LabelOptions, 'key' | 'columns'> = {}): LabelTable {
  let parsed: string[][];
  try {
    parsed = parseCsv(text);
  } catch (e) {
    throw new Error(`${name}: ${(e as Error).message}`);
  }
  const [head, ...body] = parsed;
  if (!head || !head.length) throw new Error(`${name}: empty table`);
  const header = head.map((h) => h.trim());
  const dup = header.find((h, i) => h && header.indexOf(h) !== i);
  if (dup !== undefined) throw new Error(`${name}: column '${dup}' appears twice in the header`);
  const named = header.filter(Boolean);
  const listed = `columns: ${named.slice(0, 20).join(', ')}${named.length > 20 ? `, ... (${named.length})` : ''}`;
  if (o.key === '') throw new Error('--key: give a column name');
  const key = o.key ?? named[0];
  const keyIx = key === undefined ? -1 : header.indexOf(key);
  if (keyIx < 0) throw new Error(`${name}: no key column '${key ?? ''}' (${listed})`);
  let columns: [string, string][];
  if (o.columns?.length) {
    columns = o.columns.map((c) => {
      const parts = c.split(':').map((s) => s.trim());
      if (parts.length > 2) throw new Error(`--columns: '${c}': expected column or column:field`);
      const [col, field = col] = parts;
      if (!col || !header.includes(col)) throw new Error(`${name}: no column '${col}' (${listed})`);
      if (col === key) throw new Error(`${name}: '${col}' is the key column`);
      const bad = badField(field);
      if (bad) throw new Error(`--columns: '${c}': ${bad}`);
      return [col, field];
    });
  } else {
    columns = named.filter((h) => h !== key).map((h) => [h, h]);
    if (columns.length > MAX_DEFAULT_COLUMNS)
      throw new Error(`${name} has ${columns.length} columns besides '${key}'; choose some with --columns (each is stored in every record's manifest line), e.g. ${columns.slice(0, 3).map(([c]) => c).join(',')}`);
    for (const [c] of columns) {
      const bad = badField(c);
      if (bad) throw new Error(`${name}: ${bad}; choose the columns with --columns column:field`);
    }
  }
  if (!columns.length) throw new Error(`${name}: no column besides the key '${key}'`);
  if (!body.length) throw new Error(`${name}: no rows below the header`);
  const ragged = body.map((r, i) => (r.length === header.length ? -1 : i + 1)).filter((n) => n > 0);
  if (ragged.length)
    throw new Error(`${name}: ${ragged.length} row(s) have other than the header's ${header.length} cells (row ${ragged.slice(0, 5).join(', ')}${ragged.length > 5 ? ', ...' : ''} below the header); a comma inside a value needs quotes`);
  const fields = columns.map(([, f]) => f);
  const twice = fields.find((f, i) => fields.indexOf(f) !== i);
  if (twice !== undefined) throw new Error(`--columns: label field '${twice}' named twice`);
  const ix = columns.map(([c]) => header.indexOf(c));
  const rows = new Map<string, Record<string, number | string>>();
  const duplicates: string[] = [];
  let emptyKeys = 0;
  for (const r of body) {
    const k = canonicalKey(r[keyIx]);
    if (!k) {
      emptyKeys++;
      continue;
    }
    if (rows.has(k)) {
      duplicates.push(k);
      continue;
    }
    const values: Record<string, number | string> = {};
    columns.forEach(([, field], j) => {
      const v = cellValue(r[ix[j]]);
      if (v !== undefined) values[field] = v;
    });
    rows.set(k, values);
  }
  if (duplicates.length) throw new Error(`${name}: ${duplicates.length} key(s) appear more than once in '${key}' (${duplicates.slice(0, 5).join(', ')}); which row applies would be a guess`);
  return { key, columns, rows, emptyKeys };
}

/** Fields that each join of `joins` wrote (those a new join may replace without --replace). */
function joinedFields(joins: readonly LabelJoin[]): Set<string> {
  return new Set(joins.flatMap((j) => j.fields));
}

/**
 * Sets `fields` of each record's labels from `values[i]` (in place; a record without values, or
 * without one of the fields, keeps none of them: no stale value stays). Fields written by earlier
 * joins are replaced; other existing fields (the source's) only with `replace`.
 */
export function setLabelFields(records: ManifestRecord[], fields: readonly string[], values: readonly (Record<string, number | string> | undefined)[], earlier: readonly LabelJoin[], replace = false): Pick<LabelReport, 'matched' | 'counts'> {
  const mayReplace = joinedFields(earlier);
  if (!replace) {
    const clash = fields.filter((f) => !mayReplace.has(f) && records.some((r) => r.labels && f in r.labels));
    if (clash.length) throw new Error(`label field(s) ${clash.join(', ')} already hold the source's labels; choose another name (column:field), or give --replace`);
  }
  const counts: LabelReport['counts'] = Object.fromEntries(fields.map((f) => [f, { numbers: 0, texts: 0 }]));
  let matched = 0;
  records.forEach((r, i) => {
    const labels = (r.labels ??= {});
    for (const f of fields) delete labels[f];
    const row = values[i];
    if (!row) return;
    matched++;
    for (const [f, v] of Object.entries(row)) {
      labels[f] = v;
      counts[f][typeof v === 'number' ? 'numbers' : 'texts']++;
    }
  });
  return { matched, counts };
}

/** Writes `table`'s rows into the labels of the records whose ids match their keys (in place). */
export function joinLabels(records: ManifestRecord[], table: LabelTable, earlier: readonly LabelJoin[], o: Pick<LabelOptions, 'match' | 'replace'> = {}): Omit<LabelReport, 'file'> {
  const keys = records.map((r) => recordKey(r.id, o.match ?? 'id'));
  // two records read as one key would both take its row: refuse where it happens
  const first = new Map<string, string>();
  const shared: string[] = [];
  keys.forEach((k, i) => {
    if (!table.rows.has(k)) return;
    const other = first.get(k);
    if (other === undefined) first.set(k, records[i].id);
    else if (shared.length < 3) shared.push(`${other} and ${records[i].id} (key ${k})`);
  });
  if (shared.length) throw new Error(`more than one record matches a row: ${shared.join('; ')}; their ids differ only in ${o.match === 'basename' ? 'folders (try --match id)' : 'leading zeros'}`);
  const fields = table.columns.map(([, f]) => f);
  const { matched, counts } = setLabelFields(records, fields, keys.map((k) => table.rows.get(k)), earlier, o.replace);
  const seen = new Set(keys);
  const unmatched = [...table.rows.keys()].filter((k) => !seen.has(k));
  return { key: table.key, fields, records: records.length, matched, unmatchedRows: unmatched.length, unmatchedKeys: unmatched.slice(0, 5), emptyKeys: table.emptyKeys, counts };
}

/**
 * Changes the labels of the prepared dataset in `dir` by `change`, holding the folder's lock, and
 * rewrites manifest.json atomically. `change` returns the fields it took over or removed (an earlier
 * join keeps only its other fields) and the join it made, if any (listed last).
 */
export async function updateLabels<R>(dir: string, change: (m: Manifest, earlier: LabelJoin[]) => Promise<{ fields: readonly string[]; join: LabelJoin | null; result: R }>): Promise<R> {
  const release = await lockFolder(dir, 'labels');
  try {
    const manifest = await readManifest(dir);
    const earlier = manifest.labelJoins ?? [];
    const { fields, join, result } = await change(manifest, earlier);
    const kept = earlier.map((j) => ({ ...j, fields: j.fields.filter((f) => !fields.includes(f)) })).filter((j) => j.fields.length);
    manifest.labelJoins = join ? [...kept, join] : kept;
    await writeManifest(dir, manifest);
    return result;
  } finally {
    release();
  }
}

/**
 * Removes label fields an earlier join wrote from every record of the dataset in `dir` (a field the
 * source wrote comes back with a re-run of prepare, once no join holds it). Returns how many
 * records held each.
 */
export async function removeLabels(dir: string, fields: readonly string[]): Promise<Record<string, number>> {
  return updateLabels(dir, async (manifest, earlier) => {
    const joined = joinedFields(earlier);
    const not = fields.filter((f) => !joined.has(f));
    if (not.length) throw new Error(`${not.join(', ')}: not written by a join (joined: ${[...joined].join(', ') || 'none'}); the source's labels change with prepare`);
    const held: Record<string, number> = Object.fromEntries(fields.map((f) => [f, 0]));
    for (const r of manifest.records)
      for (const f of fields)
        if (r.labels && f in r.labels) {
          delete r.labels[f];
          held[f]++;
        }
    return { fields, join: null, result: held };
  });
}

/**
 * Joins the CSV `file` into the prepared dataset in `dir`. Refuses a join that matches no record,
 * naming ids and keys of both sides.
 */
export async function addLabels(dir: string, file: string, o: LabelOptions = {}): Promise<LabelReport> {
  const { path } = await nodeMods();
  return updateLabels(dir, async (manifest, earlier) => {
    const text = await readText(file);
    const table = parseLabelTable(text, file, o);
    const report = joinLabels(manifest.records, table, earlier, o);
    if (report.matched === 0) {
      const ids = manifest.records.slice(0, 3).map((r) => r.id);
      const keys = [...table.rows.keys()].slice(0, 3);
      throw new Error(`${file}: no key in '${table.key}' matches a record id (ids: ${ids.join(', ')}; keys: ${keys.join(', ')})` +
        (o.match !== 'basename' && ids.some((id) => /[/\\]/.test(id)) ? '; for ids that are paths, try --match basename' : ''));
    }
    const join: LabelJoin = { source: path.resolve(file), sha256: await sha256(text), key: table.key, match: o.match ?? 'id', fields: report.fields, joined: new Date().toISOString() };
    return { fields: join.fields, join, result: { file, ...report } };
  });
}

/**
 * For prepare writing over a dataset with joined labels: copies the fields of each table join from
 * the old manifest's records to the new ones of the same id (in place); new records get none of
 * them. A join is dropped, with the reason, when the dataset's source (kind, root) changed, where
 * the same id may name another ECG, and when it was measured from the old signals (`derived:`).
 */
export function carryJoinedLabels(old: Pick<Manifest, 'records' | 'labelJoins' | 'source'>, fresh: Pick<Manifest, 'records' | 'source'>): { joins: LabelJoin[]; dropped: { join: LabelJoin; why: string }[]; carried: number; missing: number } {
  const dropped: { join: LabelJoin; why: string }[] = [];
  const sameSource = old.source?.kind === fresh.source.kind && old.source?.root === fresh.source.root;
  const joins = (old.labelJoins ?? []).filter((j) => {
    const why = j.source.startsWith('derived:') ? 'measured from the signals as they were; run labels --derive again' : sameSource ? null : `the dataset's source changed (${old.source?.kind} ${old.source?.root} → ${fresh.source.kind} ${fresh.source.root}); join the table again`;
    if (why) dropped.push({ join: j, why });
    return !why;
  });
  if (!joins.length) return { joins, dropped, carried: 0, missing: 0 };
  const fields = [...joinedFields(joins)];
  const byId = new Map(old.records.map((r) => [r.id, r.labels ?? {}]));
  let carried = 0;
  for (const r of fresh.records) {
    const labels = (r.labels ??= {});
    for (const f of fields) delete labels[f];
    const from = byId.get(r.id);
    if (!from) continue;
    carried++;
    for (const f of fields) if (f in from) labels[f] = from[f];
  }
  return { joins, dropped, carried, missing: fresh.records.length - carried };
}
