// Brings the GPU to its full clock before a timed round. An idle NVIDIA GPU drops its SM clock to its
// floor within a second or two (an H200: 1980 -> 345 MHz) and raises it only under load. A case timed
// right after a pause (shader compiles, a check, tfjs's own set-up) then ran partly at the floor: on
// an H200 the same kernel on the same shape timed 0.76 ms in one row and 2.94 ms in the next, and a
// GELU ran at 19 % of the copy's bandwidth where an H100 had run it at 70 %.
import { isCpuAdapter } from '../kernels/runtime.js';

/** Independent FMA chains per invocation, so the loop is bound by arithmetic, not latency. */
const SPIN_WGSL = /* wgsl */ `
const ITERS = 512u;
@group(0) @binding(0) var<storage, read_write> sink: array<vec4<f32>>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  var a = vec4<f32>(f32(g.x), 1.0, 2.0, 3.0) * 1e-7;
  let m = vec4<f32>(0.999, 0.998, 0.997, 0.996);
  for (var i = 0u; i < ITERS; i++) {
    a = fma(a, m, vec4<f32>(1e-3));
  }
  sink[g.x % arrayLength(&sink)] = a;
}`;

/** How long to keep the GPU busy before a timed round: the clock rose from its floor to its top in
 *  under 0.5 s on an H200 (nvidia-smi samples 0.5 s apart). None on CPU adapters (no clock to raise,
 *  and the spin would cost the tests real seconds). */
export const defaultWarmMs = (device: GPUDevice) => (isCpuAdapter(device) ? 0 : 300);

const pipelines = new WeakMap<GPUDevice, { pipeline: GPUComputePipeline; group: GPUBindGroup }>();

/** Keeps `device` busy with arithmetic for about `ms` milliseconds of wall time: up to two submits in
 *  flight, each of `dispatches` dispatches of `workgroups` workgroups (about 1 ms of work on an H200
 *  at full clock with the defaults). */
export async function warmClocks(device: GPUDevice, ms: number, opts: { workgroups?: number; dispatches?: number } = {}): Promise<void> {
  if (!(ms > 0)) return;
  const { workgroups = 1024, dispatches = 32 } = opts;
  let p = pipelines.get(device);
  if (!p) {
    const pipeline = device.createComputePipeline({ label: 'warm-clocks', layout: 'auto', compute: { module: device.createShaderModule({ code: SPIN_WGSL }), entryPoint: 'main' } });
    const sink = device.createBuffer({ size: 256 * 16, usage: GPUBufferUsage.STORAGE });
    p = { pipeline, group: device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: sink } }] }) };
    pipelines.set(device, p);
  }
  const t0 = performance.now();
  let inFlight: Promise<void> | null = null;
  while (performance.now() - t0 < ms) {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(p.pipeline);
    pass.setBindGroup(0, p.group);
    for (let i = 0; i < dispatches; i++) pass.dispatchWorkgroups(workgroups);
    pass.end();
    device.queue.submit([enc.finish()]);
    const done = device.queue.onSubmittedWorkDone();
    if (inFlight) await inFlight;
    inFlight = done;
  }
  await inFlight;
}
