// Initial parameter values as the official code sets them: Linear weights truncated normal
// (std initStd), biases 0, LayerNorm weight 1 / bias 0, mask token truncated normal, and each
// block's attn.proj and mlp.fc2 weights divided by √(2·layer_id) (layer_id = block index + 1).
import { Rng } from '../engine/random.js';
import { encoderParamSpecs, predictorParamSpecs, type EcgJepaConfig, type ParamSpec } from './config.js';

export type ParamValues = Map<string, Float32Array>;

/** Fresh values for `specs`, drawn in spec order from `rng` (reproducible per seed). */
export function initParams(specs: readonly ParamSpec[], rng: Rng, std: number): ParamValues {
  const out: ParamValues = new Map();
  for (const [name, shape] of specs) {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    const isBias = name.endsWith('.bias');
    const isNormWeight = name.endsWith('.weight') && shape.length === 1; // only LayerNorms have 1-D weights
    if (isNormWeight) v.fill(1);
    else if (!isBias) {
      const block = /blocks\.(\d+)\.(attn\.proj|mlp\.fc2)\.weight$/.exec(name);
      const scale = block ? 1 / Math.sqrt(2 * (Number(block[1]) + 1)) : 1;
      for (let i = 0; i < n; i++) v[i] = rng.truncNormal(std) * scale;
    }
    out.set(name, v);
  }
  return out;
}

export function initEncoderParams(cfg: EcgJepaConfig, rng: Rng): ParamValues {
  return initParams(encoderParamSpecs(cfg), rng, cfg.initStd);
}

export function initPredictorParams(cfg: EcgJepaConfig, rng: Rng): ParamValues {
  return initParams(predictorParamSpecs(cfg), rng, cfg.initStd);
}
