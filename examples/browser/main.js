// ECG-JEPA in a web page: WebGPU engine from navigator.gpu, an encoder (random weights of a preset,
// or a checkpoint fetched from ?checkpoint=URL), a synthetic ECG, its representation and timings.
// Plain ES modules, no build step: index.html's import map points 'ecg-jepa/*' at dist/browser/.
// window.ecgJepaExample is the run's promise (the test suite loads this page and checks it).
import { Engine, Rng, Tape, describeGpu } from 'ecg-jepa/engine';
import { Encoder, LEAD_NAMES, asFloat32, checkpointFromBytes, inputLength, loadParams, makeConfig } from 'ecg-jepa/model';

const FS = 250; // the model's sampling rate (Hz)
const q = new URLSearchParams(location.search);
const out = document.getElementById('out');
const log = (line) => (out.textContent += line + '\n');

/** Fetches `<base>.json` and the tensor file its sidecar names (relative to it), and checks both. */
async function fetchCheckpoint(url) {
  const metaUrl = new URL(url.replace(/\.(json|safetensors)$/, '') + '.json', location.href);
  const get = async (u) => {
    const r = await fetch(u);
    if (!r.ok) throw new Error(`${u}: HTTP ${r.status}`);
    return r;
  };
  const meta = await (await get(metaUrl)).text();
  const tensorsUrl = new URL(JSON.parse(meta).tensors, metaUrl);
  const bytes = await (await get(tensorsUrl)).arrayBuffer();
  return checkpointFromBytes(bytes, meta, { source: { meta: metaUrl.href, tensors: tensorsUrl.href } });
}

// Per lead (I, II, V1–V6): amplitudes (mV) of the P, Q, R, S and T waves of a normal-looking beat.
const WAVES = {
  P: { at: -0.18, width: 0.025, amp: [0.08, 0.12, 0.05, 0.06, 0.06, 0.07, 0.08, 0.08] },
  Q: { at: -0.03, width: 0.01, amp: [-0.05, -0.08, 0, 0, -0.02, -0.05, -0.08, -0.06] },
  R: { at: 0, width: 0.012, amp: [0.7, 1.1, 0.2, 0.5, 0.9, 1.3, 1.2, 1.0] },
  S: { at: 0.035, width: 0.012, amp: [-0.1, -0.2, -0.9, -1.0, -0.6, -0.3, -0.15, -0.1] },
  T: { at: 0.28, width: 0.05, amp: [0.2, 0.3, -0.05, 0.25, 0.35, 0.35, 0.3, 0.25] },
};

/** A synthetic ECG [leads, samples] at 250 Hz in mV: Gaussian P-QRS-T beats, baseline wander, noise. */
function syntheticEcg(leads, samples, rng) {
  const x = new Float32Array(leads.length * samples);
  const rr = 60 / (60 + 30 * rng.next());
  const beats = [];
  for (let t = 0.3 * rng.next(); t < samples / FS + 1; t += rr * (1 + 0.03 * rng.normal())) beats.push(t);
  const phase = 2 * Math.PI * rng.next();
  leads.forEach((lead, c) => {
    for (let i = 0; i < samples; i++) {
      const t = i / FS;
      let v = 0.05 * Math.sin(2 * Math.PI * 0.3 * t + phase) + 0.01 * rng.normal();
      for (const b of beats)
        for (const w of Object.values(WAVES)) {
          const d = t - b - w.at;
          if (Math.abs(d) < 5 * w.width) v += w.amp[lead] * Math.exp((-0.5 * d * d) / (w.width * w.width));
        }
      x[c * samples + i] = v;
    }
  });
  return x;
}

function plot(x, leads, samples) {
  const canvas = document.getElementById('ecg');
  const g = canvas.getContext('2d');
  const band = canvas.height / leads.length;
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.font = '12px sans-serif';
  leads.forEach((lead, c) => {
    const mid = band * (c + 0.6);
    g.fillText(LEAD_NAMES[lead], 4, band * c + 14);
    g.beginPath();
    for (let i = 0; i < samples; i++) g.lineTo((i / samples) * canvas.width, mid - x[c * samples + i] * band * 0.35);
    g.stroke();
  });
}

async function run() {
  const seed = Number(q.get('seed') ?? 0);
  const runs = Number(q.get('runs') ?? 5);
  const ckUrl = q.get('checkpoint');
  const ck = ckUrl ? await fetchCheckpoint(ckUrl) : null;
  const cfg = ck ? ck.config : makeConfig(q.get('preset') ?? 'tiny');
  const engine = await Engine.create(); // navigator.gpu in a browser
  log(describeGpu(engine.gpu.info) + '\n');

  const encoder = new Encoder(engine, cfg, new Rng(seed)); // random weights…
  if (ck) loadParams(encoder.reg, new Map([...ck.tensors].map(([k, t]) => [k, asFloat32(t)])), { allowExtra: true, what: ckUrl }); // …or the checkpoint's student
  const exported = ck?.state.extra?.encoderExport; // `ecg-jepa export`: the encoder alone, f32 or f16 (widened above)
  log(ck ? `checkpoint ${ckUrl}: preset ${cfg.preset}, step ${ck.state.step}${exported ? `, ${exported.encoder} encoder exported as ${exported.dtype}` : ''}` : `preset ${cfg.preset}, random weights (seed ${seed})`);

  const C = cfg.leads.length;
  const L = inputLength(cfg);
  const ecg = syntheticEcg(cfg.leads, L, new Rng(seed + 1));
  plot(ecg, cfg.leads, L);
  log(`ECG: ${C} leads [${cfg.leads.map((l) => LEAD_NAMES[l]).join(', ')}] × ${L} samples (${L / FS} s at ${FS} Hz)`);

  const x = engine.upload(ecg, [1, C, L]);
  const tape = new Tape(engine);
  const embed = async () => {
    const t0 = performance.now();
    const r = tape.noGrad(() => engine.scope(() => encoder.representation(tape, x)));
    const v = await engine.read(r); // submits, waits, reads back
    r.dispose();
    return { v, ms: performance.now() - t0 };
  };
  const first = await embed(); // includes compiling the kernels' pipelines
  const rep = first.v;
  log(`\nrepresentation (${rep.length} values, ‖r‖ = ${Math.hypot(...rep).toFixed(4)}):`);
  log(Array.from(rep, (v) => v.toFixed(4)).join(' '));
  log(`\ntime: first call ${first.ms.toFixed(1)} ms (compiles pipelines; upload excluded, readback included)`);
  const warm = [];
  for (let i = 0; i < runs; i++) warm.push((await embed()).ms);
  warm.sort((a, b) => a - b);
  const median = warm.length ? warm[warm.length >> 1] : NaN;
  if (runs) log(`      then median ${median.toFixed(1)} ms over ${runs} calls`);

  x.dispose();
  encoder.dispose();
  engine.close();
  return { preset: cfg.preset, seed, checkpoint: ckUrl, input: ecg, representation: rep, firstMs: first.ms, warmMs: median };
}

window.ecgJepaExample = run();
window.ecgJepaExample.catch((e) => log(`error: ${e.message}`));
