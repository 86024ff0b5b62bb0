import { configDifferences, encoderParamSpecs, LEAD_NAMES, makeConfig, maskRecipe, paramCount, predictorParamSpecs, PRESETS, validateConfig, withLeads } from '../../model/config.js';
import { assert } from '../helpers.js';

function throwsWith(fn: () => unknown, re: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert(re.test((e as Error).message), `error "${(e as Error).message}" does not match ${re}`);
    return;
  }
  throw new Error(`expected an error matching ${re}`);
}

describe('model/config', () => {
  it('base parameter counts match the paper: encoder 85,067,520, predictor 11,232,000', () => {
    const c = paramCount(makeConfig('base'));
    assert(c.encoder === 85_067_520, `encoder ${c.encoder}`);
    assert(c.encoderFixed === 307_200, `encoder fixed ${c.encoderFixed}`);
    assert(c.encoder + c.encoderFixed === 85_374_720, 'stored encoder parameters');
    assert(c.predictor === 11_232_000, `predictor ${c.predictor}`);
    assert(c.predictorFixed === 19_200, `predictor fixed ${c.predictorFixed}`);
    assert(c.learnable === 96_299_520, `learnable ${c.learnable}`);
  });

  it('per-block counts (7,085,568 encoder, 1,773,312 predictor) and official names', () => {
    const base = makeConfig('base');
    const shallow = makeConfig('base', { encoder: { depth: 11 }, predictor: { depth: 5 } });
    assert(paramCount(base).encoder - paramCount(shallow).encoder === 7_085_568, 'encoder block');
    assert(paramCount(base).predictor - paramCount(shallow).predictor === 1_773_312, 'predictor block');
    const enc = new Map(encoderParamSpecs(base));
    assert(JSON.stringify(enc.get('W_P.weight')) === '[768,50]', 'W_P [out, in]');
    assert(JSON.stringify(enc.get('encoder_blocks.blocks.11.attn.qkv.weight')) === '[2304,768]', 'qkv');
    assert(!enc.has('encoder_blocks.blocks.0.attn.qkv.bias'), 'qkv has no bias');
    assert(JSON.stringify(enc.get('encoder_blocks.blocks.0.mlp.fc1.weight')) === '[3072,768]', 'fc1');
    const pred = new Map(predictorParamSpecs(base));
    assert(JSON.stringify(pred.get('predictor_embed.weight')) === '[384,768]', 'predictor_embed');
    assert(JSON.stringify(pred.get('mask_token')) === '[1,1,384]', 'mask_token');
    assert(JSON.stringify(pred.get('predictor_proj.weight')) === '[768,384]', 'predictor_proj');
  });

  it('presets are valid; base holds the paper hyper-parameters', () => {
    for (const name of Object.keys(PRESETS)) makeConfig(name);
    const b = makeConfig('base');
    assert(b.encoder.dim === 768 && b.encoder.depth === 12 && b.encoder.heads === 16 && b.encoder.mlpRatio === 4, 'encoder dims');
    assert(b.predictor.dim === 384 && b.predictor.depth === 6 && b.predictor.heads === 12, 'predictor dims');
    assert(b.patchSize * b.patches === 2500 && b.leads.length === 8, 'input');
    assert(b.dropPath === 0.1 && b.optim.lr === 5e-5 && b.optim.minLr === 1e-6 && b.optim.warmupEpochs === 5, 'schedule');
    assert(b.optim.weightDecay === 0.05 && b.optim.eps === 1e-8 && b.optim.betas[0] === 0.9 && b.optim.betas[1] === 0.999, 'adamw');
    assert(b.optim.momentum[0] === 0.996 && b.optim.momentum[1] === 1, 'ema');
    const t = makeConfig('tiny');
    assert(t.patchSize === 50 && paramCount(t).encoder < 50_000, 'tiny is tiny');
    assert(makeConfig('tiny', { patches: 50 }).patches * t.patchSize === 2500, 'tiny can take 2500 samples');
  });

  it("pretraining recipes: random masking on base takes the reference's batch 128 and LR 2.5e-5", () => {
    const r = makeConfig('base', maskRecipe('base', 'random'));
    assert(r.mask.type === 'random' && r.mask.ratio.join() === '0.6,0.7' && r.mask.blocks === 1 && r.optim.batchSize === 128 && r.optim.lr === 2.5e-5, JSON.stringify(r.mask) + JSON.stringify(r.optim));
    const m = makeConfig('base', maskRecipe('base', 'multiblock'));
    assert(m.mask.type === 'multiblock' && m.mask.blocks === 4 && m.optim.batchSize === 64 && m.optim.lr === 5e-5, 'multi-block keeps the preset');
    const t = makeConfig('tiny', maskRecipe('tiny', 'random'));
    assert(t.mask.type === 'random' && t.optim.batchSize === PRESETS.tiny.optim.batchSize && t.optim.lr === PRESETS.tiny.optim.lr, 'tiny keeps its own batch and LR');
  });

  it('overrides merge, and bad values are refused naming the field', () => {
    const c = makeConfig('base', { mask: { type: 'random', ratio: [0.6, 0.7] }, optim: { lr: 2.5e-5, batchSize: 128 } });
    assert(c.mask.type === 'random' && c.mask.blocks === 4 && c.optim.lr === 2.5e-5 && c.optim.eps === 1e-8, 'merge');
    assert(PRESETS.base.optim.lr === 5e-5, 'presets are not mutated');
    throwsWith(() => makeConfig('huge'), /unknown preset 'huge'/);
    throwsWith(() => makeConfig('base', { encoder: { heads: 5 } }), /encoder\.dim 768 is not divisible by encoder\.heads 5/);
    throwsWith(() => makeConfig('base', { leads: [0, 8] }), /leads\[1\] = 8/);
    throwsWith(() => makeConfig('base', { leads: [2, 1] }), /ascending/);
    throwsWith(() => makeConfig('base', { optim: { lr: -1 } }), /optim\.lr/);
    throwsWith(() => makeConfig('base', { mask: { ratio: [0.7, 0.6] } }), /mask\.ratio/);
    throwsWith(() => makeConfig('base', { nope: 1 } as never), /unknown field 'nope'/);
    throwsWith(() => makeConfig('tiny', { mask: { ratio: [0.3, 0.3] } }), /can cover all 10 patches/);
    throwsWith(() => validateConfig({ ...makeConfig('base'), patches: 0 }), /patches must be a positive integer/);
  });

  it('lead subsets by name or index; checkpoint compatibility names what differs', () => {
    const base = makeConfig('base');
    const two = withLeads(base, ['II', 'V1']);
    assert(JSON.stringify(two.leads) === '[1,2]' && LEAD_NAMES[two.leads[0]] === 'II', 'II+V1');
    assert(JSON.stringify(withLeads(base, [1]).leads) === '[1]', 'index');
    throwsWith(() => withLeads(base, ['aVR']), /unknown lead 'aVR'/);
    // any order and case: the model's own order; a lead twice is an error naming it
    assert(JSON.stringify(withLeads(base, ['v1', 'ii']).leads) === '[1,2]', 'V1, II in the model order');
    throwsWith(() => withLeads(base, ['II', 'ii']), /lead II given twice \(leads: II, ii\)/);
    assert(configDifferences(base, makeConfig('base')).length === 0, 'same config');
    const d = configDifferences(base, two);
    assert(d.length === 1 && /leads: checkpoint \[I, II, V1, V2, V3, V4, V5, V6\], wanted \[II, V1\]/.test(d[0]) && /allowLeadSubset/.test(d[0]), d.join('; '));
    assert(configDifferences(base, two, { allowLeadSubset: true }).length === 0, 'subset allowed');
    assert(configDifferences(two, base, { allowLeadSubset: true }).length === 1, 'superset never allowed');
    const t = configDifferences(base, makeConfig('tiny'));
    assert(t.some((l) => /^preset: checkpoint 'base', wanted 'tiny'/.test(l)) && t.some((l) => /^encoder:/.test(l)) && t.some((l) => /^patches:/.test(l)), t.join('; '));
  });
});
