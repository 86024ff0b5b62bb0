// A tiny pretraining checkpoint for the specs that need one (both runners): student, EMA teacher,
// predictor and AdamW moments after a few training steps on random input, so teacher and student differ.
import { Rng } from '../../engine/random.js';
import type { Checkpoint } from '../../model/checkpoint.js';
import { inputLength, makeConfig } from '../../model/config.js';
import { EcgJepa } from '../../model/jepa.js';
import { getEngine, randomArray } from '../helpers.js';

export async function tinyPretrained(seed = 0, steps = 2): Promise<Checkpoint> {
  const engine = await getEngine();
  const cfg = makeConfig('tiny');
  const model = new EcgJepa(engine, cfg, { seed });
  const shape = [2, cfg.leads.length, inputLength(cfg)];
  const x = engine.upload(randomArray(new Rng(seed + 7), shape.reduce((a, b) => a * b, 1)), shape);
  try {
    for (let i = 0; i < steps; i++) model.trainStep(x).dispose();
    return await model.toCheckpoint();
  } finally {
    x.dispose();
    model.dispose();
  }
}
