// Downstream metrics against values worked out by hand (pair counting for AUC, counts for F1),
// the linear-probe head against closed-form gradients, and the report renderers. Pure computation:
// runs in both runners.
import {
  accuracy, aucRanked, averagePrecision, bootstrapCi, brierScore, confusionMatrix, macroAuc, macroAucCi, macroAveragePrecision, macroF1, mae, maeCi, meanStd, oneHot,
  ovoMacroAuc, pearson, rankScores, rmse, rocAuc, rocCurve, softmaxRows, tuneThresholds,
} from '../../train/eval/metrics.js';
import { applyHead, aucScores, evaluate, extractTargets, parseSplit, probeFeatures, splitRows, trainHead } from '../../train/eval/probe.js';
import { comparisonTable, confusionPlot, fmt, markdownReport, rocPlot } from '../../train/eval/report.js';
import { Raster } from '../../train/eval/raster.js';
import { Rng } from '../../engine/random.js';
import { assert } from '../helpers.js';

const near = (a: number | null | undefined, b: number, what: string, tol = 1e-12) => assert(a !== null && a !== undefined && Math.abs(a - b) <= tol, `${what}: got ${a}, want ${b}`);

describe('eval: metrics', () => {
  it('ROC-AUC without ties: the fraction of positive/negative pairs ranked right', () => {
    // positives 0.35, 0.8; negatives 0.1, 0.4: pairs (.35>.1 yes, .35>.4 no, .8>.1, .8>.4) → 3/4
    near(rocAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.75, 'auc');
    near(rocAuc([0.9, 0.1], [1, 0]), 1, 'perfect');
    near(rocAuc([0.9, 0.1], [0, 1]), 0, 'reversed');
  });

  it('ROC-AUC with ties counts a tie as half (midranks)', () => {
    // pos {0.5, 0.9}, neg {0.5, 0.2}: 0.5 vs 0.5 tie (½), the other three pairs right → 3.5/4.
    // Midranks: 0.2→1, 0.5,0.5→2.5, 0.9→4; R₊ = 6.5; (6.5 − 3)/4 = 0.875.
    near(rocAuc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]), 0.875, 'ties');
    near(rocAuc([1, 1, 1, 1], [1, 0, 1, 0]), 0.5, 'all tied');
  });

  it('ROC-AUC is null without positives or negatives, and refuses bad input', () => {
    assert(rocAuc([0.1, 0.2], [0, 0]) === null, 'no positives → null');
    assert(rocAuc([0.1, 0.2], [1, 1]) === null, 'no negatives → null');
    let msg = '';
    try {
      rocAuc([0.1, NaN], [0, 1]);
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(/finite/.test(msg), `NaN score must throw, got '${msg}'`);
    try {
      rocAuc([0.1, 0.2], [0, 2]);
      msg = '';
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(/0 or 1/.test(msg), `label 2 must throw, got '${msg}'`);
  });

  it('weighted AUC equals the AUC of the data with records repeated', () => {
    const s = [0.1, 0.4, 0.35, 0.8], y = [0, 0, 1, 1];
    // record 0 twice: pos .35 beats two copies of .1 (2 of 3), .8 beats all 3 → 5/6
    near(aucRanked(rankScores(s), y, [2, 1, 1, 1]), 5 / 6, 'weighted');
    near(rocAuc([0.1, 0.1, 0.4, 0.35, 0.8], [0, 0, 0, 1, 1]), 5 / 6, 'repeated');
  });

  it('ROC curve steps through distinct thresholds, ties diagonally', () => {
    const c = rocCurve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])!;
    assert(JSON.stringify(c.fpr) === JSON.stringify([0, 0, 0.5, 0.5, 1]), `fpr ${c.fpr}`);
    assert(JSON.stringify(c.tpr) === JSON.stringify([0, 0.5, 0.5, 1, 1]), `tpr ${c.tpr}`);
    assert(JSON.stringify(c.thresholds.slice(1)) === JSON.stringify([0.8, 0.4, 0.35, 0.1]), `thresholds ${c.thresholds}`);
    const t = rocCurve([0.5, 0.5], [1, 0])!;
    assert(JSON.stringify(t.fpr) === '[0,1]' && JSON.stringify(t.tpr) === '[0,1]', 'a tie is one diagonal step');
    assert(rocCurve([1, 2], [0, 0]) === null, 'no curve without positives');
  });

  it('macro AUC: multi-label, and a class without positives left out with a note', () => {
    // class 0 = the first example (0.75), class 1 all negative (left out), class 2 = ties (0.875)
    const s0 = [0.1, 0.4, 0.35, 0.8], s2 = [0.5, 0.5, 0.2, 0.9];
    const y0 = [0, 0, 1, 1], y2 = [1, 0, 0, 1];
    const scores: number[] = [], labels: number[] = [];
    for (let i = 0; i < 4; i++) scores.push(s0[i], 0.3, s2[i]), labels.push(y0[i], 0, y2[i]);
    const r = macroAuc(scores, labels, 3, ['A', 'B', 'C']);
    near(r.perClass[0], 0.75, 'A');
    assert(r.perClass[1] === null, 'B has no AUC');
    near(r.perClass[2], 0.875, 'C');
    near(r.macro, (0.75 + 0.875) / 2, 'macro over the defined classes');
    assert(r.excluded.length === 1 && r.excluded[0] === 'B' && /no positive examples of B\b/.test(r.notes[0]), `note: ${r.notes}`);
  });

  it('evaluate ranks multi-label logits, not sigmoid probabilities (which round large logits to a tie at 1)', () => {
    const logits = Float64Array.from([36, 37, 38, 39, 40, 41]), y = Float64Array.from([0, 0, 0, 1, 1, 1]);
    const m = evaluate('multilabel', ['A'], logits, y, 1, [], 'test', { bootstrap: 0 });
    assert(m.kind === 'classification' && m.auc.macro === 1, `AUC ${JSON.stringify(m.kind === 'classification' && m.auc)}`);
    const c = rocCurve(aucScores('multilabel', logits, 1), y)!;
    assert(c.fpr.length === 7, `one point per distinct logit: ${c.fpr}`);
  });

  it('macro AUC one-vs-rest for multi-class', () => {
    // rows (true class): [.6 .3 .1](0) [.2 .5 .3](1) [.3 .3 .4](2) [.4 .5 .1](0)
    // class 0: pos {.6,.4} vs neg {.2,.3} → 1; class 1: pos {.5} vs neg {.3,.3,.5} → (1+1+½)/3;
    // class 2: pos {.4} vs neg {.1,.3,.1} → 1.
    const p = [0.6, 0.3, 0.1, 0.2, 0.5, 0.3, 0.3, 0.3, 0.4, 0.4, 0.5, 0.1];
    const r = macroAuc(p, oneHot([0, 1, 2, 0], 3), 3);
    near(r.perClass[1], 2.5 / 3, 'class 1');
    near(r.macro, (1 + 2.5 / 3 + 1) / 3, 'macro');
    const sm = softmaxRows([0, Math.log(3)], 2);
    near(sm[0], 0.25, 'softmax', 1e-15);
  });

  it('macro AUC one-vs-one for multi-class (Hand & Till, as sklearn ovo macro)', () => {
    // The rows of the one-vs-rest case. Pair (0,1) on r0,r1,r3: score 0 ranks class 0 {.6,.4} over
    // class 1 {.2} → 1; score 1 ranks class 1 {.5} over class 0 {.3,.5} → ¾; pair ⅞. Pairs (0,2)
    // and (1,2) separate perfectly → 1. Macro (⅞ + 1 + 1) / 3.
    const p = [0.6, 0.3, 0.1, 0.2, 0.5, 0.3, 0.3, 0.3, 0.4, 0.4, 0.5, 0.1];
    near(ovoMacroAuc(p, oneHot([0, 1, 2, 0], 3), 3).macro, (0.875 + 1 + 1) / 3, 'hand-worked');
    // Against pair counting on random data with ties: for a pair (a, b), the chance that a record of a
    // outscores one of b on score a, and one of b outscores one of a on score b (ties ½), averaged.
    const rng = new Rng(7);
    const N = 60, K = 4;
    const cls = Array.from({ length: N }, (_, i) => (i < K ? i : Math.floor(rng.next() * K)));
    const sc = Array.from({ length: N * K }, () => Math.round(rng.next() * 8) / 8);
    const win = (x: number, y: number) => (x > y ? 1 : x === y ? 0.5 : 0);
    let sum = 0, pairs = 0;
    for (let a = 0; a < K; a++)
      for (let b = a + 1; b < K; b++) {
        let ab = 0, ba = 0, n = 0;
        for (let i = 0; i < N; i++)
          for (let j = 0; j < N; j++)
            if (cls[i] === a && cls[j] === b) {
              ab += win(sc[i * K + a], sc[j * K + a]);
              ba += win(sc[j * K + b], sc[i * K + b]);
              n++;
            }
        sum += (ab + ba) / (2 * n);
        pairs++;
      }
    near(ovoMacroAuc(sc, oneHot(cls, K), K).macro, sum / pairs, 'pair counting');
    // A class absent: its pairs are left out, with a note; a multi-hot row is refused.
    const r = ovoMacroAuc(p, oneHot([0, 1, 1, 0], 3), 3, ['A', 'B', 'C']);
    // Only pair (0,1): score 0 ranks {.6,.4} over {.2,.3} → 1; score 1 ranks {.5,.3} over {.3,.5} → ½.
    near(r.macro, 0.75, 'absent class');
    assert(/no examples of C/.test(r.notes.join()), `note: ${r.notes}`);
    assert(/exactly one class/.test(String((() => { try { ovoMacroAuc(p, [1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0], 3); } catch (e) { return e; } })())), 'multi-hot refused');
  });

  it('average precision as sklearn: hand-worked cases, ties entering together, and a brute-force reference on random scores', () => {
    // sklearn's documented example: thresholds .8 (P 1, R .5), .4 (P .5, R .5), .35 (P 2/3, R 1) → .5·1 + .5·2/3
    near(averagePrecision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.5 + 0.5 * (2 / 3), 'sklearn example');
    // a tie of a positive and a negative at the top: they enter together (P 1/2 at R 1/2), then the other positive
    near(averagePrecision([0.9, 0.9, 0.5, 0.1], [1, 0, 1, 0]), 0.5 * 0.5 + 0.5 * (2 / 3), 'tie at the top');
    assert(averagePrecision([0.3, 0.2], [0, 0]) === null, 'no positives: undefined');
    const rng = new Rng(5);
    for (let trial = 0; trial < 20; trial++) {
      const n = 5 + rng.int(40);
      const sc = Array.from({ length: n }, () => Math.round(rng.uniform(0, 8)) / 8); // ties
      const y: number[] = Array.from({ length: n }, () => (rng.uniform(0, 1) < 0.3 ? 1 : 0));
      const P = y.reduce((a, b) => a + b, 0);
      if (!P) continue;
      // brute force: for every distinct threshold t, high to low, recall and precision of "score ≥ t"
      const ts = [...new Set(sc)].sort((a, b) => b - a);
      let ref = 0, prevR = 0;
      for (const t of ts) {
        const called = sc.map((v) => v >= t);
        const tp = called.reduce((a, c, i) => a + (c && y[i] ? 1 : 0), 0);
        const rec = tp / P, prec = tp / called.filter(Boolean).length;
        ref += (rec - prevR) * prec;
        prevR = rec;
      }
      near(averagePrecision(sc, y), ref, `trial ${trial}`, 1e-12);
    }
    // class c: positives only (AP would be 1 whatever the scores): left out, as the AUC leaves it out
    const m = macroAveragePrecision([0.1, 0.9, 0.2, 0.4, 0.8, 0.3, 0.35, 0.2, 0.4, 0.8, 0.1, 0.5], [0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 1], 3, ['a', 'b', 'c']);
    near(m.perClass[0], 0.5 + 0.5 * (2 / 3), 'class a');
    assert(m.perClass[1] === null && m.perClass[2] === null && m.excluded.join() === 'b,c' && m.macro === m.perClass[0], `b has no positives, c no negatives: ${JSON.stringify(m)}`);
  });

  it('Brier score: mean squared error of probabilities; multi-class sums over classes per record', () => {
    near(brierScore([0.9, 0.2, 0.4, 0.6], [1, 0, 0, 1], 2, false), (0.01 + 0.04 + 0.16 + 0.16) / 4, 'multi-label');
    near(brierScore([0.7, 0.2, 0.1, 0.1, 0.1, 0.8], [1, 0, 0, 0, 0, 1], 3, true), ((0.09 + 0.04 + 0.01) + (0.01 + 0.01 + 0.04)) / 2, 'multi-class');
    let threw = false;
    try {
      brierScore([0.5, NaN], [1, 0], 1, false);
    } catch {
      threw = true;
    }
    assert(threw, 'a non-finite probability is refused');
  });

  it('macro F1 from counts; a class neither present nor predicted left out, one predicted but absent scores 0', () => {
    // class 0: TP1 FP1 FN1 → 2/4; class 1: TP1 → 1; class 2: no positives, no predictions → left out
    const pred = [1, 0, 0, 1, 1, 0, 0, 0, 0];
    const lab = [1, 0, 0, 0, 1, 0, 1, 0, 0];
    const r = macroF1(pred, lab, 3, ['a', 'b', 'c']);
    near(r.perClass[0], 0.5, 'a');
    near(r.perClass[1], 1, 'b');
    assert(r.perClass[2] === null && r.excluded[0] === 'c' && /c neither present nor predicted/.test(r.notes[0]), `c left out: ${r.notes}`);
    near(r.macro, 0.75, 'macro');
    // c predicted once though absent: F1 = 0 / (0 + 1 + 0) = 0, in the average (as sklearn's f1_score)
    const fired = macroF1([1, 0, 1, 1, 1, 0, 0, 0, 0], lab, 3, ['a', 'b', 'c']);
    assert(fired.perClass[2] === 0 && fired.excluded.length === 0, `c scores 0: ${fired.perClass}`);
    near(fired.macro, (0.5 + 1 + 0) / 3, 'macro with c');
    near(accuracy(pred, lab, 3), 1 / 3, 'exact match (row 0 only)');
    near(accuracy([1, 0, 0, 0, 1, 0], [1, 0, 0, 0, 1, 1], 3), 0.5, 'exact match');
    near(accuracy([0, 1, 2, 2], [0, 1, 1, 2]), 0.75, 'class-index accuracy');
    const cm = confusionMatrix([0, 1, 1, 2], [0, 1, 2, 2], 3);
    assert(JSON.stringify(cm) === '[[1,0,0],[0,1,1],[0,0,1]]', `confusion ${JSON.stringify(cm)}`);
  });

  it('tuned thresholds maximise validation F1 at midpoints', () => {
    // p .2 .3 .6 .7, y 0 1 0 1: cut above .6 → F1 2/3; above .3 → 1/2... calling {.3,.6,.7} → TP2 FP1: 4/5 (best),
    // at the midpoint between .2 and .3.
    const t = tuneThresholds([0.2, 0.3, 0.6, 0.7], [0, 1, 0, 1], 1);
    near(t.thresholds[0], 0.25, 'threshold', 1e-12);
    const none = tuneThresholds([0.2, 0.3], [0, 0], 1, ['X']);
    assert(none.thresholds[0] === 0.5 && /no positive examples of X/.test(none.notes[0]), 'no positives keeps 0.5 with a note');
  });

  it('regression metrics and mean ± std', () => {
    near(mae([1, 2, 3], [2, 2, 5]), 1, 'mae');
    near(rmse([1, 2, 3], [2, 2, 5]), Math.sqrt(5 / 3), 'rmse');
    near(pearson([1, 2, 3], [2, 4, 6]), 1, 'r', 1e-12);
    assert(pearson([1, 1, 1], [1, 2, 3]) === null, 'constant → null');
    const m = meanStd([1, 2, 3]);
    near(m.mean, 2, 'mean');
    near(m.std, Math.sqrt(2 / 3), 'std (ddof 0)');
  });

  it('bootstrap CIs are seeded, bracket the value and handle constant metrics', () => {
    const rng = new Rng(1);
    const n = 200;
    const y = Array.from({ length: n }, (_, i) => i % 2);
    const s = y.map((v) => v + rng.normal());
    const a = macroAucCi(s, y, 1, { resamples: 300, seed: 7 })!;
    const b = macroAucCi(s, y, 1, { resamples: 300, seed: 7 })!;
    assert(a.lo === b.lo && a.hi === b.hi, 'same seed, same interval');
    assert(a.lo < a.value && a.value < a.hi && a.hi - a.lo < 0.2 && a.used === 300, `interval ${JSON.stringify(a)}`);
    const c = bootstrapCi(10, () => 0.5, { resamples: 50 })!;
    assert(c.lo === 0.5 && c.hi === 0.5, 'constant metric');
    const e = maeCi([1, 2, 3, 4], [1, 2, 3, 4], { resamples: 20 })!;
    assert(e.value === 0 && e.hi === 0, 'perfect predictions');
    assert(macroAucCi([1, 2], [0, 0], 1) === null, 'undefined AUC → no interval');
    // defined on the full set, in no resample: no interval (a zero-width one would read as certain)
    assert(bootstrapCi(3, (w) => (w === null ? 0.7 : null), { resamples: 20 }) === null, 'no defined resample → no interval');
  });
});

describe('eval: linear probe head', () => {
  it('one full-batch step moves the weights by the AdamW rule along the BCE gradient', () => {
    // First AdamW step without decay: every parameter moves by lr·g/(|g| + eps), g from the BCE gradient.
    const X = [1, 2, -1, 0.5];
    const Y = [1, 0];
    const h0 = trainHead(X, 2, [0, 1], Y, 1, 'multilabel', { epochs: 0, standardize: false, seed: 3 });
    const h1 = trainHead(X, 2, [0, 1], Y, 1, 'multilabel', { epochs: 1, batch: 2, lr: 0.01, warmupSteps: 0, minLr: 0.01, weightDecay: 0, standardize: false, seed: 3 });
    // dL/dz = (σ(z) − y)/2 per row (mean over 2 elements); dL/dw = Σ dz·x
    const z = [0, 1].map((i) => h0.bias[0] + h0.weight[0] * X[2 * i] + h0.weight[1] * X[2 * i + 1]);
    const dz = z.map((v, i) => (1 / (1 + Math.exp(-v)) - Y[i]) / 2);
    const g = [dz[0] * X[0] + dz[1] * X[2], dz[0] * X[1] + dz[1] * X[3], dz[0] + dz[1]];
    const before = [h0.weight[0], h0.weight[1], h0.bias[0]];
    const after = [h1.weight[0], h1.weight[1], h1.bias[0]];
    // Adam's first step: m̂ = g, v̂ = g², so the move is lr·g/(|g| + eps)
    for (let i = 0; i < 3; i++) near(after[i], before[i] - (0.01 * g[i]) / (Math.abs(g[i]) + 1e-8), `param ${i}`, 1e-12);
    // BCE of the initial head, averaged: the loss history's first entry is measured before the update.
    const bce = z.reduce((a, v, i) => a + Math.log1p(Math.exp(-v)) + (1 - Y[i]) * v, 0) / 2;
    near(h1.losses[0], bce, 'loss', 1e-12);
  });

  it('learns separable multi-class and regression problems on standardised features', () => {
    const rng = new Rng(5);
    const n = 300, D = 4;
    const X = new Float64Array(n * D), cls: number[] = [], reg: number[] = [];
    for (let i = 0; i < n; i++) {
      const c = i % 3;
      cls.push(c);
      // informative features are tiny next to a large offset, as mean-pooled LayerNorm outputs are
      for (let d = 0; d < D; d++) X[i * D + d] = 0.8 + 0.01 * ((d === c ? 2 : 0) + 0.3 * rng.normal());
      reg.push(70 + 1000 * (X[i * D + 3] - 0.8) + rng.normal());
    }
    const rows = Array.from({ length: n }, (_, i) => i);
    const h = trainHead(X, D, rows, oneHot(cls, 3), 3, 'multiclass');
    const logits = applyHead(h, X);
    const acc = cls.filter((c, i) => [0, 1, 2].reduce((b, k) => (logits[i * 3 + k] > logits[i * 3 + b] ? k : b), 0) === c).length / n;
    assert(acc > 0.95, `multi-class accuracy ${acc}`);
    assert(h.losses[h.losses.length - 1] < h.losses[0], `loss falls: ${h.losses}`);
    const r = trainHead(X, D, rows, reg, 1, 'regression');
    const pr = applyHead(r, X);
    const err = mae(pr, reg);
    assert(err < 2.5, `regression MAE ${err} (target std ≈ 6)`);
  });
});

describe('eval: probe pipeline and report', () => {
  function fakeRecords(n: number, seed: number) {
    const rng = new Rng(seed);
    const classes = ['NORM', 'AFIB', 'STACH'];
    const D = 6;
    const X = new Float32Array(n * D);
    const labels: Record<string, unknown>[] = [];
    const folds: number[] = [];
    for (let i = 0; i < n; i++) {
      const c = rng.int(3);
      const second = rng.next() < 0.2 ? [classes[(c + 1) % 3]] : [];
      const hr = 60 + 40 * rng.next();
      for (let d = 0; d < D; d++) X[i * D + d] = (d === c ? 1 : 0) + (d === 5 ? (hr - 80) / 20 : 0) + 0.5 * rng.normal();
      labels.push({ conditions: [classes[c], ...second], hr, note: 'x' });
      folds.push((i % 10) + 1);
    }
    return { X, D, labels, folds };
  }

  it('targets: multi-hot over the known class list, single-label rows for multi-class, numeric regression', () => {
    const labels = [{ conditions: ['NORM'] }, { conditions: ['AFIB', 'PVC'] }, { conditions: [] }, { hr: 70 }];
    const ml = extractTargets(labels, 'multilabel', 'conditions');
    assert(ml.classes.length === 12 && ml.classes[0] === 'NORM', 'synthetic class list');
    assert(JSON.stringify(ml.rows) === '[0,1]' && ml.y[12 + 3] === 1 && ml.y[12 + 11] === 1, `rows ${ml.rows}`);
    assert(ml.notes.some((n) => /1 record\(s\) without 'conditions'/.test(n)) && ml.notes.some((n) => /no conditions class/.test(n)), `notes ${ml.notes}`);
    const mc = extractTargets(labels, 'multiclass', 'conditions');
    assert(JSON.stringify(mc.rows) === '[0]' && mc.notes.some((n) => /more than one class/.test(n)), `multi-class rows ${mc.rows}`);
    const rg = extractTargets(labels, 'regression', 'hr');
    assert(JSON.stringify(rg.rows) === '[3]' && rg.y[0] === 70, 'regression');
    const code15 = extractTargets([{ d: { AF: true, RBBB: false } }, { d: { AF: false, RBBB: true } }], 'multilabel', 'd');
    assert(JSON.stringify(code15.classes) === '["AF","RBBB"]', 'boolean maps');
    // PTB-XL's scp_codes map codes to likelihoods (0: unknown, not absent): every listed code applies
    const scp = extractTargets([{ scp: { NORM: 100, SR: 0 } }, { scp: { IMI: 15, SR: 0 } }, { scp: { AFIB: 1 } }], 'multilabel', 'scp');
    assert(JSON.stringify(scp.classes) === '["AFIB","IMI","NORM","SR"]' && scp.rows.length === 3 && scp.y[3] === 1 && scp.y[4 + 3] === 1 && scp.y[8] === 1, `likelihood maps: ${scp.classes} ${scp.y}`);
    assert(scp.notes.some((n) => /maps classes to likelihoods/.test(n)), `noted: ${scp.notes}`);
    const bad = (f: () => unknown, re: RegExp) => {
      let m = '';
      try {
        f();
      } catch (e) {
        m = (e as Error).message;
      }
      assert(re.test(m), `expected ${re}, got '${m}'`);
    };
    bad(() => extractTargets([{}, {}], 'multilabel', 'conditions'), /no labels/);
    bad(() => extractTargets([{ hr: 1 }], 'multilabel', 'superdiagnostic'), /labels present: hr/);
    bad(() => extractTargets([{ c: ['A'] }], 'regression', 'c'), /not numeric/);
    bad(() => extractTargets([{ hr: 1 }], 'multiclass', 'hr'), /task regression/);
    bad(() => extractTargets([{ c: 'A' }], 'bogus' as never, 'c'), /task must be/);
  });

  it('splits: parse, fold membership, clear errors', () => {
    const s = parseSplit('1-3,5/4/g7');
    assert(JSON.stringify(s) === '{"train":[1,2,3,5],"val":[4],"test":["g7"]}', JSON.stringify(s));
    assert(parseSplit('1-9//10').val.length === 0, 'empty validation');
    const sp = splitRows([1, 2, 4, 'g7', 9], [0, 1, 2, 3, 4], s);
    assert(JSON.stringify(sp) === '{"train":[0,1],"val":[2],"test":[3]}', JSON.stringify(sp));
    let m = '';
    try {
      parseSplit('1-8/9');
    } catch (e) {
      m = (e as Error).message;
    }
    assert(/TRAIN\/VAL\/TEST/.test(m), m);
    try {
      splitRows([null, null], [0, 1], s);
      m = '';
    } catch (e) {
      m = (e as Error).message;
    }
    assert(/no folds/.test(m), m);
  });

  it('probes features end to end: metrics, tuned F1, low-shot mean ± std, notes, no NaN in the report', () => {
    const { X, D, labels, folds } = fakeRecords(400, 2);
    const ml = probeFeatures(X, D, { labels, folds }, { task: 'multilabel', label: 'conditions', fractions: [0.1], bootstrap: 200 });
    assert(ml.test.kind === 'classification', 'classification');
    const t = ml.test;
    assert(ml.split.sizes.train === 320 && ml.split.sizes.val === 40 && ml.split.sizes.test === 40, JSON.stringify(ml.split.sizes));
    // 12 synthetic classes, 3 present: the other 9 are left out with notes, the macro is over 3
    assert(t.excluded.length === 9 && ml.notes.some((n) => /train: no positive examples of SBRAD, AFLT/.test(n)), `excluded ${t.excluded}`);
    assert(t.auc.macro! > 0.85, `macro AUC ${t.auc.macro}`);
    assert(t.auc.ci && t.auc.ci.lo <= t.auc.macro! && t.auc.macro! <= t.auc.ci.hi, 'CI brackets the value');
    assert(t.f1Tuned && t.f1Tuned.thresholds.length === 12, 'tuned thresholds');
    assert(ml.lowShot.length === 1 && ml.lowShot[0].trainSize === 32 && ml.lowShot[0].values.length === 3 && ml.lowShot[0].std! >= 0, JSON.stringify(ml.lowShot));
    const md = markdownReport(ml);
    const tables = md.split('\n').filter((l) => l.startsWith('|')).join('\n');
    assert(!/NaN|undefined|null/.test(tables), `no NaN in the tables:\n${md}`);
    assert(/\| SBRAD \| 0 \| — \|/.test(md) && /Low-shot/.test(md), md);

    const mc = probeFeatures(X, D, { labels, folds }, { task: 'multiclass', label: 'conditions', classes: ['NORM', 'AFIB', 'STACH'], bootstrap: 0 });
    assert(mc.test.kind === 'classification' && mc.test.confusion!.flat().reduce((a, b) => a + b, 0) === mc.test.n, 'confusion counts all test rows');
    assert(mc.test.accuracy > 0.7, `accuracy ${mc.test.accuracy}`);
    assert(mc.test.aucOvo! > 0.85 && ml.test.kind === 'classification' && ml.test.aucOvo === undefined, `one-vs-one AUC for multi-class only: ${mc.test.aucOvo}`);
    const mcMd = markdownReport(mc);
    assert(mcMd.includes(`| test | ${mc.test.n} | ${fmt(mc.test.auc.macro)} | ${fmt(mc.test.aucOvo)} |`) && /one-vs-one/.test(mcMd), mcMd);

    const rg = probeFeatures(X, D, { labels, folds }, { task: 'regression', label: 'hr', bootstrap: 100 });
    assert(rg.test.kind === 'regression' && rg.test.mae < rg.test.maeOfMean, `hr MAE ${JSON.stringify(rg.test)}`);
    const cmp = comparisonTable([{ name: 'a', result: ml }, { name: 'b', result: rg }]);
    assert(cmp.split('\n').length === 5 && !/NaN/.test(cmp) && cmp.includes('macro AUC (one-vs-rest; 95% CI)'), cmp);
    assert(markdownReport({ ...mc, lowShot: [{ fraction: 0.1, trainSize: 32, seeds: [0], values: [0.9], mean: 0.9, std: 0 }] }).includes('| Train fraction | records | macro AUC one-vs-rest |'), 'multi-class low-shot: one-vs-rest');

    // low-shot subsets that miss a class the training set has: said per seed
    const rare = labels.map((l, i) => ({ ...l, conditions: i === 0 ? ['PVC'] : l.conditions }));
    const ls = probeFeatures(X, D, { labels: rare, folds }, { task: 'multilabel', label: 'conditions', fractions: [0.05], bootstrap: 0 });
    assert(ls.notes.some((n) => /^low-shot 0\.05, seed \d: no positive training examples of PVC; the head never saw it/.test(n)), `notes ${ls.notes.join('; ')}`);
    assert(!ls.notes.some((n) => /^low-shot.*SBRAD/.test(n)), 'a class the whole training set lacks is noted once, not per seed');
    // a CI over fewer resamples than drawn says how many
    const t2 = { ...t, auc: { ...t.auc, ci: { ...t.auc.ci!, resamples: 200, used: 150 } } };
    assert(markdownReport({ ...ml, test: t2 }).includes('(150 of 200 resamples)'), 'resamples used');
    assert(fmt(NaN) === '—' && fmt(null) === '—' && fmt(0.12345) === '0.123', 'fmt');
  });

  it('plots: ROC curves and a confusion matrix with ink where expected', () => {
    const c = rocCurve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]);
    const img = rocPlot([c, null], ['A', 'B'], [0.75, null]);
    assert(img.width > 300 && img.height > 300, 'size');
    // The plot square's top-left corner is ink; the curve's colour appears; the background stays white.
    const colours = new Set<string>();
    for (let y = 0; y < img.height; y++) for (let x = 0; x < img.width; x++) colours.add(img.get(x, y).join(','));
    assert(colours.has('31,119,180') && colours.has('255,255,255') && colours.has('20,20,20'), `colours ${[...colours].slice(0, 8)}`);
    const cm = confusionPlot([[5, 1], [0, 4]], ['NORM', 'AFIB']);
    assert(cm.width > 100 && cm.height > 100, 'confusion size');
    const r = new Raster(20, 10);
    r.text(0, 0, '1', [0, 0, 0]);
    assert(r.get(2, 0).join() === '0,0,0' && r.get(0, 0).join() === '255,255,255', 'glyph 1 top row is ..#..');
  });
});
