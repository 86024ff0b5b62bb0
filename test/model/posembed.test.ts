import { makeConfig, withLeads } from '../../model/config.js';
import { encoderPosEmbed, predictorPosEmbed, sincos2d } from '../../model/posembed.js';
import { assert } from '../helpers.js';

const near = (a: number, b: number, tol = 1e-15) => Math.abs(a - b) <= tol;

describe('model/posembed', () => {
  it('hand-computed row: D = 8, lead 2, time 3 → [sin 3, sin .03, cos 3, cos .03, sin 2, sin .02, cos 2, cos .02]', () => {
    // d = 2 frequencies: ω = [1, 10000^(-1/2)] = [1, 0.01]; time half first, then lead half.
    const t = sincos2d(8, [0, 1, 2, 3, 4, 5, 6, 7], 50);
    const row = Array.from(t.subarray((2 * 50 + 3) * 8, (2 * 50 + 4) * 8));
    const want = [0.1411200080598672, 0.02999550020249566, -0.9899924966004454, 0.9995500337489875, 0.9092974268256817, 0.01999866669333308, -0.4161468365471424, 0.9998000066665778];
    row.forEach((v, i) => assert(near(v, want[i]), `channel ${i}: ${v} vs ${want[i]}`));
    // Lead 0, time 0: [0 0 1 1 0 0 1 1].
    assert(JSON.stringify(Array.from(t.subarray(0, 8))) === '[0,0,1,1,0,0,1,1]', 'origin row');
  });

  it('base table: [400, 768] float32, lead-major, 192 frequencies per quarter', () => {
    const cfg = makeConfig('base');
    const t = encoderPosEmbed(cfg);
    assert(t instanceof Float32Array && t.length === 400 * 768, 'shape');
    const row = (l: number, p: number) => t.subarray((l * 50 + p) * 768, (l * 50 + p + 1) * 768);
    const w = (i: number) => Math.pow(10000, -i / 192);
    const r = row(5, 17);
    assert(r[100] === Math.fround(Math.sin(17 * w(100))), 'time sin');
    assert(r[192 + 100] === Math.fround(Math.cos(17 * w(100))), 'time cos');
    assert(r[384 + 7] === Math.fround(Math.sin(5 * w(7))), 'lead sin');
    assert(r[576 + 7] === Math.fround(Math.cos(5 * w(7))), 'lead cos');
    // Channel 0 of the time half is sin(t), of the lead half sin(l).
    assert(near(row(3, 1)[0], Math.fround(Math.sin(1)), 0) && near(row(3, 1)[384], Math.fround(Math.sin(3)), 0), 'ω_0 = 1');
  });

  it('lead subsets take the full table rows of those leads', () => {
    const full = encoderPosEmbed(makeConfig('base'));
    const sub = encoderPosEmbed(withLeads(makeConfig('base'), ['II', 'V3']));
    assert(sub.length === 2 * 50 * 768, 'shape');
    for (const [k, lead] of [[0, 1], [1, 4]]) {
      const a = sub.subarray(k * 50 * 768, (k + 1) * 50 * 768);
      const b = full.subarray(lead * 50 * 768, (lead + 1) * 50 * 768);
      assert(a.every((v, i) => v === b[i]), `lead ${lead}`);
    }
  });

  it("predictor table: one lead, second half the constant [0…0, 1…1]", () => {
    const cfg = makeConfig('base');
    const t = predictorPosEmbed(cfg);
    assert(t.length === 50 * 384, 'shape');
    for (let p = 0; p < 50; p++)
      for (let i = 0; i < 96; i++) {
        assert(t[p * 384 + 192 + i] === 0 && t[p * 384 + 288 + i] === 1, `row ${p} channel ${192 + i}`);
        assert(t[p * 384 + i] === Math.fround(Math.sin(p * Math.pow(10000, -i / 96))), `row ${p} channel ${i}`);
      }
  });
});
