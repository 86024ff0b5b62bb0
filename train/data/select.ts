// The model's input from a prepared dataset: the config's leads (by name) and its first L samples.
import { inputLength, LEAD_NAMES, type EcgJepaConfig } from '../../model/config.js';
import type { Manifest } from './dataset.js';

/** Dataset rows of the config's leads (matched by name), first L samples: [B, leads, samples] → [B, C, L]. */
export function leadSelector(ds: { readonly dir: string; readonly manifest: Pick<Manifest, 'leads' | 'fs' | 'samples'> }, cfg: EcgJepaConfig): (x: Float32Array, B: number) => Float32Array {
  const m = ds.manifest;
  const L = inputLength(cfg);
  if (m.fs !== 250) throw new Error(`dataset ${ds.dir}: sampled at ${m.fs} Hz; ECG-JEPA needs 250 Hz (prepare with --fs 250)`);
  if (m.samples < L) throw new Error(`dataset ${ds.dir}: ${m.samples} samples per lead, the ${cfg.preset} preset needs ${L}`);
  const names = m.leads.map((n) => n.toUpperCase());
  const rows = cfg.leads.map((i) => {
    const k = names.indexOf(LEAD_NAMES[i].toUpperCase());
    if (k < 0) throw new Error(`dataset ${ds.dir}: has no lead ${LEAD_NAMES[i]} (it has ${m.leads.join(', ')})`);
    return k;
  });
  const C = rows.length;
  const Ld = m.leads.length;
  return (x, B) => {
    const out = new Float32Array(B * C * L);
    for (let b = 0; b < B; b++)
      for (let c = 0; c < C; c++) {
        const s = (b * Ld + rows[c]) * m.samples;
        out.set(x.subarray(s, s + L), (b * C + c) * L);
      }
    return out;
  };
}

