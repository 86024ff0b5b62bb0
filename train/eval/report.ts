// Evaluation reports: a markdown summary (headline table, per-class table, low-shot, notes), the
// full result as JSON, and PNG plots (ROC curves per class; a confusion matrix for multi-class).
// Text and pixels are built by pure functions (both runners); writing files needs Node (pngjs).
import type { RocCurve } from './metrics.js';
import type { FinetuneResult } from './finetune.js';
import type { Metrics, ProbeResult, ProbeRun } from './probe.js';
import { PALETTE, Raster, type Rgb } from './raster.js';

/** A number for a table: fixed digits, '—' for null (never 'NaN'). */
export function fmt(v: number | null | undefined, digits = 3): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits);
}

/** A 95% CI; where resamples were dropped (one lost every positive of a class), how many counted. */
function ci(i: { lo: number; hi: number; resamples?: number; used?: number } | null | undefined, digits = 3): string {
  if (!i) return '';
  const partial = i.used !== undefined && i.resamples !== undefined && i.used < i.resamples ? ` (${i.used} of ${i.resamples} resamples)` : '';
  return ` [${fmt(i.lo, digits)}, ${fmt(i.hi, digits)}]${partial}`;
}

function sourceLine(r: ProbeResult | ProbeRun): string {
  const s = (r as ProbeRun).source;
  if (!s) return '';
  const w = s.randomInit ? `random weights (${s.preset} architecture${s.checkpoint ? ` of ${s.checkpoint}` : ''})` : `${s.checkpoint} (step ${s.step})`;
  return `- Encoder: ${w}; leads ${s.leads.join(', ')}\n- Data: ${s.dataset}\n`;
}

/** One evaluation as markdown. */
export function markdownReport(r: ProbeResult | ProbeRun, title = `Linear probe: ${r.task} on '${r.label}'`): string {
  const out: string[] = [`# ${title}`, ''];
  out.push(sourceLine(r) + `- Split: train folds [${r.split.train}] (${r.split.sizes.train}), validation [${r.split.val}] (${r.split.sizes.val}), test [${r.split.test}] (${r.split.sizes.test})`);
  const h = r.head;
  out.push(`- Head: linear ${r.dim} → ${r.classes.length} on ${h.standardize ? 'standardised' : 'raw'} features, AdamW lr ${h.lr}, wd ${h.weightDecay}, batch ${h.batch}, ${h.epochs} epochs, seed ${h.seed}; last epoch evaluated`, '');
  const t = r.test;
  if (t.kind === 'regression') {
    out.push('| Set | n | MAE (95% CI) | RMSE | Pearson r | MAE of train mean |', '|---|---|---|---|---|---|');
    out.push(`| test | ${t.n} | ${fmt(t.mae, 2)}${ci(t.maeCi, 2)} | ${fmt(t.rmse, 2)} | ${fmt(t.pearson)} | ${fmt(t.maeOfMean, 2)} |`);
    if (r.val?.kind === 'regression') out.push(`| validation | ${r.val.n} | ${fmt(r.val.mae, 2)} | ${fmt(r.val.rmse, 2)} | ${fmt(r.val.pearson)} | ${fmt(r.val.maeOfMean, 2)} |`);
    out.push('', `Target on test: mean ${fmt(t.targetMean, 2)}, std ${fmt(t.targetStd, 2)}.`);
  } else {
    const tuned = r.task === 'multilabel';
    const ovo = r.task === 'multiclass';
    out.push(`| Set | n | macro AUC${ovo ? ' one-vs-rest' : ''} (95% CI) | ${ovo ? 'macro AUC one-vs-one | ' : ''}macro AP | Brier | macro F1${tuned ? ' @0.5 | macro F1 tuned' : ''} | ${tuned ? 'exact match' : 'accuracy'} |`, `|---|---|---|---|---|---|---|${tuned || ovo ? '---|' : ''}`);
    const row = (name: string, m: Metrics) =>
      m.kind === 'classification' &&
      out.push(`| ${name} | ${m.n} | ${fmt(m.auc.macro)}${ci(m.auc.ci)} | ${ovo ? `${fmt(m.aucOvo)} | ` : ''}${fmt(m.ap.macro)} | ${fmt(m.brier)} | ${fmt(m.f1.macro)}${tuned ? ` | ${fmt(m.f1Tuned?.macro)}` : ''} | ${fmt(m.accuracy)} |`);
    row('test', t);
    if (r.val) row('validation', r.val);
    out.push('', '| Class | test positives | AUC | AP | F1' + (tuned ? ' @0.5 | threshold | F1 tuned |' : ' |'), '|---|---|---|---|---|' + (tuned ? '---|---|' : ''));
    r.classes.forEach((c, k) =>
      out.push(`| ${c} | ${t.support[k]} | ${fmt(t.auc.perClass[k])} | ${fmt(t.ap.perClass[k])} | ${fmt(t.f1.perClass[k])}` + (tuned ? ` | ${fmt(t.f1Tuned?.thresholds[k])} | ${fmt(t.f1Tuned?.perClass[k])} |` : ' |')),
    );
    if (t.excluded.length) out.push('', `Left out of some macro averages on test: ${t.excluded.join(', ')} (the notes say which).`);
  }
  if (r.lowShot.length) {
    const metric = r.task === 'regression' ? 'MAE' : r.task === 'multiclass' ? 'macro AUC one-vs-rest' : 'macro AUC';
    out.push('', `## Low-shot (mean ± std over seeds)`, '', `| Train fraction | records | ${metric} | per seed |${r.task === 'regression' ? '' : ' macro F1 |'}`, `|---|---|---|---|${r.task === 'regression' ? '' : '---|'}`);
    for (const l of r.lowShot)
      out.push(`| ${l.fraction * 100}% | ${l.trainSize} | ${fmt(l.mean)} ± ${fmt(l.std)} | ${l.values.map((v) => fmt(v)).join(', ')} |` + (l.f1 ? ` ${fmt(l.f1Mean)} ± ${fmt(l.f1Std)} |` : ''));
  }
  if (r.notes.length) out.push('', '## Notes', '', ...r.notes.map((n) => `- ${n}`));
  return out.join('\n') + '\n';
}

/** A fine-tuning run as markdown: settings, per-epoch history, the chosen epoch's test metrics. */
export function finetuneMarkdown(r: FinetuneResult, title = `Fine-tuning: ${r.task} on '${r.label}'`): string {
  const s = r.source;
  const st = r.settings as { epochs: number; batch: number; lr: number; weightDecay: number; bandpass: [number, number] | null; augment: unknown; precision?: string };
  const ls = r.lossScale;
  const out = [`# ${title}`, '',
    `- Encoder: ${s.randomInit ? `random weights (${s.preset})` : `${s.checkpoint} (step ${s.step})`}; leads ${s.leads.join(', ')}`,
    `- Data: ${s.dataset}; split train [${r.split.train}] (${r.split.sizes.train}), validation [${r.split.val}] (${r.split.sizes.val}), test [${r.split.test}] (${r.split.sizes.test})`,
    `- ${st.epochs} epochs, batch ${st.batch}, lr ${st.lr}, wd ${st.weightDecay}, band-pass ${st.bandpass ? `${st.bandpass[0]}–${st.bandpass[1]} Hz` : 'off'}, augmentation ${st.augment ? JSON.stringify(st.augment) : 'off'}` +
      (st.precision === 'f16' ? `; mixed precision (f16 matmul inputs), ${ls.dynamic ? 'dynamic ' : ''}loss scale ${ls.scale}, ${ls.skipped} steps skipped` : ''),
    `- Reported: epoch ${r.bestEpoch} (${r.split.sizes.val ? `best validation ${r.task === 'regression' ? 'MAE' : 'macro AUC'}` : 'the last epoch: no validation folds'})`, ''];
  const metric = r.task === 'regression' ? 'MAE' : 'macro AUC';
  out.push(`| Epoch | train loss | validation ${metric} | test ${metric} |`, '|---|---|---|---|');
  for (const h of r.history) out.push(`| ${h.epoch}${h.epoch === r.bestEpoch ? ' (chosen)' : ''} | ${fmt(h.trainLoss, 4)} | ${fmt(h.val)} | ${fmt(h.test)} |`);
  const t = r.test;
  out.push('');
  if (t.kind === 'regression') out.push(`Test (epoch ${r.bestEpoch}): MAE ${fmt(t.mae, 2)}${ci(t.maeCi, 2)}, RMSE ${fmt(t.rmse, 2)}, r ${fmt(t.pearson)}; predicting the training mean: MAE ${fmt(t.maeOfMean, 2)}.`);
  else out.push(`Test (epoch ${r.bestEpoch}): macro AUC ${r.task === 'multiclass' ? `one-vs-rest ${fmt(t.auc.macro)}${ci(t.auc.ci)}, one-vs-one ${fmt(t.aucOvo)}` : `${fmt(t.auc.macro)}${ci(t.auc.ci)}`}, macro AP ${fmt(t.ap.macro)}, Brier ${fmt(t.brier)}, macro F1 ${fmt(t.f1.macro)}${t.f1Tuned ? ` (at thresholds tuned on validation: ${fmt(t.f1Tuned.macro)})` : ''}, ${r.task === 'multiclass' ? 'accuracy' : 'exact match'} ${fmt(t.accuracy)}.`);
  const bestTest = r.history.reduce<FinetuneResult['history'][number] | null>((b, h) => (h.test !== null && (b === null || (r.task === 'regression' ? h.test < b.test! : h.test > b.test!)) ? h : b), null);
  if (bestTest) out.push('', `Best test ${metric} over the epochs, as the reference logs it (picked on the test set itself, so optimistic): ${fmt(bestTest.test)} (epoch ${bestTest.epoch}).`);
  if (r.notes.length) out.push('', '## Notes', '', ...r.notes.map((n) => `- ${n}`));
  return out.join('\n') + '\n';
}

export interface ComparisonRow {
  name: string;
  result: ProbeResult;
}

/** Several evaluations side by side (e.g. pretrained vs random weights, lead subsets). */
export function comparisonTable(rows: readonly ComparisonRow[]): string {
  // macro AUC: one-vs-rest for multi-class tasks too (the reference's multi-class probe reports one-vs-one)
  const out = ['| Encoder | task | label | test n | macro AUC (one-vs-rest; 95% CI) | macro F1 | MAE (95% CI) |', '|---|---|---|---|---|---|---|'];
  for (const { name, result: r } of rows) {
    const t = r.test;
    out.push(
      t.kind === 'regression'
        ? `| ${name} | ${r.task} | ${r.label} | ${t.n} | — | — | ${fmt(t.mae, 2)}${ci(t.maeCi, 2)} |`
        : `| ${name} | ${r.task} | ${r.label} | ${t.n} | ${fmt(t.auc.macro)}${ci(t.auc.ci)} | ${fmt(t.f1.macro)} | — |`,
    );
  }
  return out.join('\n') + '\n';
}

/** A JSON-able copy (typed arrays → arrays; Infinity thresholds → null). */
export function reportJson(r: unknown): string {
  return JSON.stringify(r, (_k, v) => (ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<number>) : typeof v === 'number' && !Number.isFinite(v) ? null : v), 1) + '\n';
}

// ---------------------------------------------------------------------------------------------
// Plots

const INK: Rgb = [20, 20, 20];
const GRID: Rgb = [225, 225, 225];

/** ROC curves of every class that has one, on one chart with a legend (name and AUC). */
export function rocPlot(curves: readonly (RocCurve | null)[], classes: readonly string[], aucs: readonly (number | null)[], title = 'ROC, test'): Raster {
  const shown = curves.map((c, k) => ({ c, k })).filter((e): e is { c: RocCurve; k: number } => e.c !== null);
  const legendW = 130;
  const W = 420 + legendW, H = 440;
  const x0 = 50, y0 = 30, S = 340; // plot square
  const img = new Raster(W, H);
  const px = (f: number) => x0 + f * S;
  const py = (t: number) => y0 + (1 - t) * S;
  for (const g of [0.25, 0.5, 0.75]) {
    img.line(px(g), py(0), px(g), py(1), GRID);
    img.line(px(0), py(g), px(1), py(g), GRID);
  }
  img.line(px(0), py(0), px(1), py(1), [160, 160, 160], 1, 4);
  img.strokeRect(x0, y0, S, S, INK);
  for (const t of [0, 0.5, 1]) {
    const s = t.toFixed(1);
    img.line(px(t), py(0), px(t), py(0) + 4, INK);
    img.text(px(t) - Raster.textWidth(s) / 2, py(0) + 8, s, INK);
    img.line(px(0) - 4, py(t), px(0), py(t), INK);
    img.text(px(0) - 6 - Raster.textWidth(s), py(t) - 3, s, INK);
  }
  img.text(px(0.5) - Raster.textWidth('FALSE POSITIVE RATE') / 2, py(0) + 22, 'FALSE POSITIVE RATE', INK);
  // vertical axis name, one letter per line
  'TPR'.split('').forEach((ch, i) => img.text(8, py(0.5) - 12 + i * 10, ch, INK));
  img.text(x0 + S / 2 - Raster.textWidth(title, 2) / 2, 8, title, INK, 2);
  shown.forEach(({ c, k }, j) => {
    const col = PALETTE[k % PALETTE.length];
    for (let i = 1; i < c.fpr.length; i++) img.line(px(c.fpr[i - 1]), py(c.tpr[i - 1]), px(c.fpr[i]), py(c.tpr[i]), col, 2);
    const ly = y0 + j * 14;
    img.fillRect(x0 + S + 14, ly, 10, 7, col);
    img.text(x0 + S + 28, ly, `${classes[k]} ${fmt(aucs[k], 2)}`, INK);
  });
  if (shown.length === 0) img.text(px(0.5) - Raster.textWidth('NO CLASS HAS A CURVE') / 2, py(0.5), 'NO CLASS HAS A CURVE', [200, 0, 0]);
  return img;
}

/** Confusion matrix counts[true][predicted]; cells shaded by the row fraction, counts written in. */
export function confusionPlot(counts: readonly (readonly number[])[], classes: readonly string[], title = 'CONFUSION, TEST'): Raster {
  const K = classes.length;
  const cell = Math.max(28, Math.min(60, Math.floor(420 / K)));
  const label = Math.max(...classes.map((c) => Raster.textWidth(c))) + 12;
  const x0 = label + 20, y0 = 60;
  const img = new Raster(x0 + K * cell + 20, y0 + K * cell + 40);
  img.text(x0, 8, title, INK, 2);
  img.text(x0 + (K * cell) / 2 - Raster.textWidth('PREDICTED') / 2, 30, 'PREDICTED', INK);
  'TRUE'.split('').forEach((ch, i) => img.text(4, y0 + (K * cell) / 2 - 20 + i * 10, ch, INK));
  for (let i = 0; i < K; i++) {
    const rowSum = counts[i].reduce((a, b) => a + b, 0);
    img.text(x0 - 6 - Raster.textWidth(classes[i]), y0 + i * cell + cell / 2 - 3, classes[i], INK);
    const short = classes[i].slice(0, Math.max(1, Math.floor(cell / 6)));
    img.text(x0 + i * cell + cell / 2 - Raster.textWidth(short) / 2, y0 - 12, short, INK);
    for (let j = 0; j < K; j++) {
      const f = rowSum ? counts[i][j] / rowSum : 0;
      const shade: Rgb = [Math.round(255 - 205 * f), Math.round(255 - 150 * f), 255];
      img.fillRect(x0 + j * cell, y0 + i * cell, cell, cell, shade);
      img.strokeRect(x0 + j * cell, y0 + i * cell, cell, cell, [180, 180, 180]);
      const s = String(counts[i][j]);
      img.text(x0 + j * cell + cell / 2 - Raster.textWidth(s) / 2, y0 + i * cell + cell / 2 - 3, s, f > 0.6 ? [255, 255, 255] : INK);
    }
  }
  return img;
}

// ---------------------------------------------------------------------------------------------
// Node: files

/** PNG bytes of a raster (pngjs). Node only. */
export async function encodePng(img: Raster): Promise<Uint8Array> {
  // A computed specifier keeps bundlers from pulling pngjs (Node streams, zlib) into the browser build.
  const pkg = 'pngjs';
  const m = (await import(pkg)) as typeof import('pngjs') & { default?: typeof import('pngjs') };
  const PNG = m.PNG ?? m.default!.PNG;
  const png = new PNG({ width: img.width, height: img.height });
  png.data.set(img.data);
  return PNG.sync.write(png);
}

/**
 * Writes `<dir>/<name>.json`, `<name>.md`, `<name>-roc.png` (classification) and
 * `<name>-confusion.png` (multi-class). Returns the paths written.
 */
export async function writeReport(dir: string, name: string, r: ProbeResult | ProbeRun, title?: string): Promise<string[]> {
  const { writeFileAtomic } = await import('../../model/checkpoint.js');
  const path = await import('node:path');
  const files: string[] = [];
  const put = async (file: string, data: string | Uint8Array) => {
    const p = path.join(dir, file);
    await writeFileAtomic(p, data);
    files.push(p);
  };
  await put(`${name}.json`, reportJson(r));
  await put(`${name}.md`, markdownReport(r, title));
  if (r.test.kind === 'classification' && r.curves) await put(`${name}-roc.png`, await encodePng(rocPlot(r.curves, r.classes, r.test.auc.perClass)));
  if (r.test.kind === 'classification' && r.test.confusion) await put(`${name}-confusion.png`, await encodePng(confusionPlot(r.test.confusion, r.classes)));
  return files;
}
