import { encoderParamSpecs, makeConfig, predictorParamSpecs, withLeads, type ParamSpec } from '../../model/config.js';
import { encoderForwardRef, erf, jepaLossRef, predictorForwardRef, smoothL1Ref } from '../../model/reference.js';
import { sincos2d } from '../../model/posembed.js';
import { FIXTURE } from './fixtures/reference-tiny.js';
import { assert, relError } from '../helpers.js';

// The same deterministic values as fixtures/make_reference_fixture.py (same double operations).
function det(k: number, n: number, scale: number, offset = 0): Float64Array {
  return Float64Array.from({ length: n }, (_, i) => offset + scale * Math.sin(0.731 * i + 0.0137 * i * i + 1.37 * (k + 1)));
}
function detWeights(specs: readonly ParamSpec[], kbase: number): Map<string, Float64Array> {
  const w = new Map<string, Float64Array>();
  specs.forEach(([name, shape], k) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const kk = k + kbase;
    const v =
      name === 'mask_token' ? det(kk, n, 0.5)
      : name.endsWith('.bias') ? det(kk, n, 0.1)
      : shape.length === 1 ? det(kk, n, 0.2, 1)
      : det(kk, n, 1 / Math.sqrt(shape[shape.length - 1]));
    w.set(name, v);
  });
  return w;
}

const TOL = 1e-10;

describe('model/reference', () => {
  const cfg = makeConfig('tiny'); // 3 leads × 10 patches, D 32, depth 2, 2 heads; predictor 16, depth 1
  const student = detWeights(encoderParamSpecs(cfg), 0);
  const teacher = detWeights(encoderParamSpecs(cfg), 100);
  const predictor = detWeights(predictorParamSpecs(cfg), 200);
  const B = 2;
  const x = det(999, B * 3 * 10 * 50, 1);
  const visible = [0, 3, 4, 6, 8, 9];

  it('erf to ~1e-15 on both sides of the series/continued-fraction switch', () => {
    const cases: [number, number][] = [[0.5, 0.5204998778130465], [1, 0.8427007929497149], [2, 0.9953222650189527], [3, 0.9999779095030014], [-3.5, -0.9999992569016276], [2.9999, 0.9999778955735178], [1.9, 0.9927904292352575], [2.5, 0.999593047982555], [0, 0]];
    for (const [v, want] of cases) assert(Math.abs(erf(v) - want) < 2e-15, `erf(${v}) = ${erf(v)}, want ${want}`);
    assert(Math.abs(1 - erf(4) - 1.541725790028002e-8) < 1e-20 + 1e-15, 'erfc(4)');
  });

  it('encoder equals an independent numpy re-statement of the official forward (all tokens, mean-pool)', () => {
    const r = encoderForwardRef(cfg, student, x, B);
    assert(relError(r.tokens, FIXTURE.fullTokens) < TOL, `tokens ${relError(r.tokens, FIXTURE.fullTokens)}`);
    assert(relError(r.representation, FIXTURE.representation) < TOL, `representation ${relError(r.representation, FIXTURE.representation)}`);
  });

  it('encoder on visible columns only (CroPA sliced to the visible tokens)', () => {
    const r = encoderForwardRef(cfg, student, x, B, visible);
    assert(r.tokensPerSample === 18 && relError(r.tokens, FIXTURE.context) < TOL, `context ${relError(r.tokens, FIXTURE.context)}`);
    // Per-sample column lists that happen to be equal give the same result.
    const per = encoderForwardRef(cfg, student, x, B, [visible, visible]);
    assert(per.tokens.every((v, i) => v === r.tokens[i]), 'per-sample lists');
  });

  it('reduced leads (II, V3): positional rows of those leads, CroPA restricted', () => {
    const sub = withLeads(cfg, FIXTURE.subLeads);
    const x2 = det(998, B * 2 * 10 * 50, 1);
    const r = encoderForwardRef(sub, student, x2, B);
    assert(relError(r.representation, FIXTURE.subRepresentation) < TOL, `sub ${relError(r.representation, FIXTURE.subRepresentation)}`);
  });

  it('predictor and JEPA loss equal the numpy re-statement', () => {
    const ctx = encoderForwardRef(cfg, student, x, B, visible).tokens;
    const pred = predictorForwardRef(cfg, predictor, ctx, B, FIXTURE.masked);
    assert(relError(pred, FIXTURE.pred) < TOL, `pred ${relError(pred, FIXTURE.pred)}`);
    const j = jepaLossRef(cfg, { student, teacher, predictor }, x, B, FIXTURE.masked);
    assert(relError(j.target, FIXTURE.target) < TOL, `target ${relError(j.target, FIXTURE.target)}`);
    assert(Math.abs(j.loss - FIXTURE.loss) < TOL * FIXTURE.loss, `loss ${j.loss} vs ${FIXTURE.loss}`);
  });

  it('position is re-added before every block and stays in the residual stream', () => {
    // Zero attention and MLP outputs: then x_final = W_P·patch + b + depth·pos before the final LN.
    const w = new Map(student);
    for (const [name, v] of w) if (/attn\.proj|mlp\.fc2/.test(name)) w.set(name, new Float64Array(v.length));
    const r = encoderForwardRef(cfg, w, x.subarray(0, 1500), 1);
    const pos = Float64Array.from(Float32Array.from(sincos2d(32, cfg.leads, 10)));
    const Wp = w.get('W_P.weight')!, bp = w.get('W_P.bias')!, g = w.get('norm.weight')!, bb = w.get('norm.bias')!;
    const want = new Float64Array(30 * 32);
    for (let t = 0; t < 30; t++) {
      const row = new Float64Array(32);
      const l = Math.floor(t / 10), c = t % 10;
      for (let o = 0; o < 32; o++) {
        let s = bp[o];
        for (let i = 0; i < 50; i++) s += Wp[o * 50 + i] * x[l * 500 + c * 50 + i];
        row[o] = s + 2 * pos[t * 32 + o];
      }
      const mean = row.reduce((a, b) => a + b, 0) / 32;
      const varr = row.reduce((a, b) => a + (b - mean) ** 2, 0) / 32;
      for (let o = 0; o < 32; o++) want[t * 32 + o] = ((row[o] - mean) / Math.sqrt(varr + 1e-5)) * g[o] + bb[o];
    }
    assert(relError(r.tokens, want) < 1e-12, `pos residual ${relError(r.tokens, want)}`);
  });

  it('CroPA locality: after one block a token changes only where the rule lets it be seen', () => {
    const one = makeConfig('tiny', { encoder: { depth: 1 } });
    const w = detWeights(encoderParamSpecs(one), 0);
    const x1 = det(5, 3 * 10 * 50, 1);
    const a = encoderForwardRef(one, w, x1, 1).tokens;
    const x2 = x1.slice();
    const lead = 1, col = 4;
    for (let i = 0; i < 50; i++) x2[lead * 500 + col * 50 + i] += 0.5;
    const b = encoderForwardRef(one, w, x2, 1).tokens;
    for (let t = 0; t < 30; t++) {
      let d = 0;
      for (let o = 0; o < 32; o++) d = Math.max(d, Math.abs(a[t * 32 + o] - b[t * 32 + o]));
      const sees = Math.floor(t / 10) === lead || t % 10 === col;
      assert(sees ? d > 1e-6 : d === 0, `token ${t} (lead ${Math.floor(t / 10)}, col ${t % 10}) changed by ${d}`);
    }
  });

  it('smooth-L1 (β = 1): quadratic below 1, linear above, mean', () => {
    assert(smoothL1Ref([0.5, 3, -2], [0, 0, 0]) === (0.125 + 2.5 + 1.5) / 3, 'values');
  });

  it('clear errors for missing or mis-sized weights', () => {
    const w = new Map(student);
    w.delete('norm.bias');
    let msg = '';
    try {
      encoderForwardRef(cfg, w, x, B);
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(/encoder weight 'norm.bias' missing/.test(msg), msg);
    w.set('norm.bias', new Float64Array(3));
    try {
      encoderForwardRef(cfg, w, x, B);
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(/'norm.bias' has 3 values, needs 32/.test(msg), msg);
  });
});
