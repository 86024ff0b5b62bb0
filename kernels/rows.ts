// What the row-wise kernels (layernorm, softmax), GELU and the axis reduction share: how a row is
// laid out over one workgroup, a workgroup-wide reduction in WGSL (subgroups where the device has
// them, workgroup memory otherwise), the frame of a kernel holding one row per subgroup (short rows,
// where there are subgroups), and per-device scratch buffers for two-pass reductions. The
// set...ForTests hook lets tests reach the fallback reduction on any adapter (runtime.ts has the one
// for the 2-D launch grid).
import { MAIN_ARGS } from './checks.js';
import { subgroupInfo, type CommandBatch } from './runtime.js';

/** Values each thread keeps in registers at most; longer rows are re-read from memory instead. */
export const MAX_PER_THREAD = 16;

export interface RowLayout {
  /** Workgroup size (a power of two, 32..256). */
  wg: number;
  /** Register slots per thread (thread t holds columns t, t + wg, ...): 4, 8 or 16. */
  k: number;
  /** True when the row fits in registers (k ≤ MAX_PER_THREAD): each input is read once. */
  cached: boolean;
}

/**
 * One workgroup per row. Rows up to 1024 get 4 slots per thread and the smallest workgroup that
 * holds them (short rows do not idle 256 threads); longer rows get 256 threads and 8 or 16 slots.
 * Slot counts are powers of two so that few pipeline variants exist (each costs a compile; about a
 * second on a CPU Vulkan driver): unused slots are guarded, they move no memory.
 */
export function rowLayout(cols: number): RowLayout {
  const pow2 = (v: number) => 2 ** Math.ceil(Math.log2(Math.max(1, v)));
  const wg = Math.min(256, Math.max(32, pow2(Math.ceil(cols / 4))));
  const k = Math.max(4, pow2(Math.ceil(cols / wg)));
  return { wg, k, cached: k <= MAX_PER_THREAD };
}

let subgroupsAllowed = true;
/** Devices whose subgroups failed checkSubgroups: their row kernels take the workgroup-memory path. */
const untrustedSubgroups = new WeakSet<GPUDevice>();

/** Makes workgroupReducer and subgroupRows ignore the 'subgroups' feature (tests cover the
 *  fallbacks with it); returns the previous setting. Not for production use. */
export function setSubgroupsForTests(allowed: boolean): boolean {
  const old = subgroupsAllowed;
  subgroupsAllowed = allowed;
  return old;
}

/** Whether the row kernels use subgroups on this device (full subgroups of consecutive invocations,
 *  checkSubgroups). */
export function rowSubgroups(device: GPUDevice): boolean {
  return subgroupsAllowed && device.features.has('subgroups') && !untrustedSubgroups.has(device);
}

/**
 * Checks, once per device, what the row kernels take for granted of subgroups and WebGPU does not
 * promise: full subgroups of consecutive invocations (the subgroup of invocation lid is lid / size,
 * its lane lid % size) with a size in the adapter's [min, max]. A probe at workgroup sizes 32 and 256
 * reads each invocation's lane, size and subgroupAdd(1). Where it fails, the row kernels use
 * workgroup memory on this device, and the fault is returned (null: fine, or no subgroups).
 * Engine.create runs it; a caller with its own GPUDevice may too.
 */
export async function checkSubgroups(device: GPUDevice): Promise<string | null> {
  if (!device.features.has('subgroups')) return null;
  const { subgroupMinSize: min, subgroupMaxSize: max } = subgroupInfo(device);
  const fault = await probeSubgroups(device, min, max).catch((e: Error) => `the probe failed: ${e.message}`);
  if (fault) untrustedSubgroups.add(device);
  return fault;
}

async function probeSubgroups(device: GPUDevice, min: number | undefined, max: number | undefined): Promise<string | null> {
  const sizes = [32, 256];
  const groups = 2;
  const words = (wg: number) => groups * wg * 3;
  const out = sizes.map((wg) => device.createBuffer({ size: words(wg) * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC }));
  const read = sizes.map((wg) => device.createBuffer({ size: words(wg) * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }));
  try {
    // a probe the device cannot compile fails the check with its own message (not zeros read back)
    device.pushErrorScope('validation');
    const enc = device.createCommandEncoder();
    let cb: GPUCommandBuffer, invalid: GPUError | null;
    try {
      sizes.forEach((wg, k) => {
        const module = device.createShaderModule({
          code: `enable subgroups;
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(${wg})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) size: u32) {
  let count = subgroupAdd(1u);
  let i = (wid.x * ${wg}u + lid) * 3u;
  out[i] = lane;
  out[i + 1u] = size;
  out[i + 2u] = count;
}`,
        });
        const pipe = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
        const pass = enc.beginComputePass();
        pass.setPipeline(pipe);
        pass.setBindGroup(0, device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out[k] } }] }));
        pass.dispatchWorkgroups(groups);
        pass.end();
        enc.copyBufferToBuffer(out[k], 0, read[k], 0, words(wg) * 4);
      });
      cb = enc.finish();
    } finally {
      invalid = await device.popErrorScope(); // popped whatever happened: the scope stack stays balanced
    }
    if (invalid) return `the probe does not compile here: ${invalid.message.split('\n')[0]}`;
    device.queue.submit([cb]);
    for (let k = 0; k < sizes.length; k++) {
      await read[k].mapAsync(GPUMapMode.READ);
      const v = new Uint32Array(read[k].getMappedRange().slice(0));
      read[k].unmap();
      for (let inv = 0; inv < groups * sizes[k]; inv++) {
        const [lane, size, count] = [v[3 * inv], v[3 * inv + 1], v[3 * inv + 2]];
        const lid = inv % sizes[k];
        if ((min && size < min) || (max && size > max)) return `subgroup size ${size} outside the adapter's ${min}–${max}`;
        if (count !== Math.min(size, sizes[k])) return `a subgroup of ${count} invocations where the size is ${size} (workgroup ${sizes[k]})`;
        if (lane !== lid % size) return `invocation ${lid} is lane ${lane} of a subgroup of ${size}, not lane ${lid % size} (workgroup ${sizes[k]})`;
      }
    }
    return null;
  } finally {
    [...out, ...read].forEach((b) => b.destroy());
  }
}

/** A workgroup-wide reduction to splice into a shader (see workgroupReducer). */
export interface Reducer {
  /** 'sg' or 'wg': part of every pipeline key that uses it. */
  kind: 'sg' | 'wg';
  /** Directive that must open the module ('' or 'enable subgroups;'). */
  enable: string;
  /** Extra entry-point parameters, appended to MAIN_ARGS (each with a leading comma). */
  args: string;
  /** Module-scope declarations: workgroup arrays and the function itself. */
  decl: string;
  /** A call of the function on the WGSL expression v; every thread gets the result. */
  call(v: string): string;
}

/**
 * A reduction of one value per thread over the workgroup (wg threads, a power of two ≥ 32),
 * combining with `combine(a, b)`, which must be associative and commutative (then every thread
 * ends with the same value: bit for bit for sums, within a rounding where a driver fuses a
 * multiply-add); `identity` is its neutral element. The combination order is fixed, so results
 * are deterministic. Call in uniform control flow; it may be called again at once.
 *
 * With the 'subgroups' feature: a butterfly of subgroupShuffleXor within each subgroup, one value
 * per subgroup into workgroup memory, one barrier, then each subgroup combines those values (a few
 * per lane, then the same butterfly), so no thread walks all of them. Successive calls use
 * alternate halves of the workgroup array, so one barrier per call suffices. The subgroup of thread lid is
 * taken to be lid / subgroup_size: 1-D workgroups are split into subgroups of consecutive
 * invocations in practice (the spec does not promise it; wgpu's D3D subgroup_id and ONNX Runtime's
 * WebGPU kernels rely on the same). Few barriers also make these shaders compile ~5× faster on CPU
 * drivers (lavapipe), where barriers dominate compile time.
 * Without it: two levels through workgroup memory (G threads each combine wg/G values, strided so
 * there are no bank conflicts, then every thread combines the G partials): two barriers.
 */
export function workgroupReducer(
  device: GPUDevice,
  name: string,
  type: string,
  wg: number,
  combine: (a: string, b: string) => string,
  identity: string,
): Reducer {
  if (rowSubgroups(device)) {
    // WebGPU subgroups have at least 4 invocations
    return {
      kind: 'sg',
      enable: 'enable subgroups;',
      args: ', @builtin(subgroup_size) sg_size: u32, @builtin(subgroup_invocation_id) sg_lane: u32',
      call: (v) => `${name}(${v}, lid, sg_size, sg_lane)`,
      decl: /* wgsl */ `
var<workgroup> ${name}_s: array<${type}, ${wg / 2}>;
var<private> ${name}_half: u32;
fn ${name}(v: ${type}, lid: u32, sgs: u32, lane: u32) -> ${type} {
  // a subgroup larger than the workgroup holds only wg invocations
  let width = min(sgs, ${wg}u);
  // Calls alternate between two halves of ${name}_s: a thread can write a half again only after the
  // barrier of the call in between, which all threads reach after their reads, so one barrier per call.
  let at = ${name}_half * ${wg / 4}u;
  ${name}_half ^= 1u;
  var r = v;
  for (var m = 1u; m < width; m <<= 1u) { r = ${combine('r', 'subgroupShuffleXor(r, m)')}; }
  if (lane == 0u) { ${name}_s[at + lid / sgs] = r; }
  workgroupBarrier();
  var t = ${identity};
  for (var i = lane; i < ${wg}u / width; i += width) { t = ${combine('t', `${name}_s[at + i]`)}; }
  for (var m = 1u; m < width; m <<= 1u) { t = ${combine('t', 'subgroupShuffleXor(t, m)')}; }
  return t;
}`,
    };
  }
  const g = 2 ** Math.ceil(Math.log2(wg) / 2);
  const per = wg / g;
  return {
    kind: 'wg',
    enable: '',
    args: '',
    call: (v) => `${name}(${v}, lid)`,
    // the next call's first barrier orders its writes after this call's reads
    decl: /* wgsl */ `
var<workgroup> ${name}_a: array<${type}, ${wg}>;
var<workgroup> ${name}_b: array<${type}, ${g}>;
fn ${name}(v: ${type}, lid: u32) -> ${type} {
  ${name}_a[lid] = v;
  workgroupBarrier();
  if (lid < ${g}u) {
    var r = ${name}_a[lid];
    for (var i = 1u; i < ${per}u; i++) { r = ${combine('r', `${name}_a[lid + i * ${g}u]`)}; }
    ${name}_b[lid] = r;
  }
  workgroupBarrier();
  var r = ${name}_b[0];
  for (var i = 1u; i < ${g}u; i++) { r = ${combine('r', `${name}_b[i]`)}; }
  return r;
}`,
  };
}

/** Values (floats) each lane keeps in registers at most in a one-subgroup-per-row kernel: a row of
 *  up to 32·subgroup size floats (1024 on NVIDIA) takes it, longer rows the workgroup kernels. */
const MAX_PER_LANE = 32;

/** Workgroup size of the one-subgroup-per-row kernels: a multiple of every subgroup size up to it. */
export const SG_ROWS_WG = 128;

/** A row-wise kernel with one subgroup per row (see subgroupRows). */
export interface SubgroupRows {
  /** Floats per load: 4 where cols % 4 == 0 (every row then starts 16-byte aligned), else 1. */
  vec: 1 | 4;
  /** Register slots per lane (a power of two or three times one): lane l holds units l, l + subgroup size, ... */
  k: number;
  /** Units a row may have in this layout: k × the smallest subgroup size. */
  units: number;
  /** Rows per workgroup: SG_ROWS_WG / the largest subgroup size. */
  perGroup: number;
  /** Workgroups to launch (runtime.grid's argument). */
  groups: number;
  /** Pipeline-key part naming the variant. */
  key: string;
}

/** Slots per lane for `need` units: the next power of two, or three quarters of it where that is
 *  enough (a 768 row of vec4 at subgroup size 32 needs 6: a power of two held 8, and every kernel
 *  keeps each of its per-row arrays that long, the LayerNorm backward five of them), so rows of
 *  other widths share few pipelines. */
function laneSlots(need: number): number {
  const p2 = 2 ** Math.ceil(Math.log2(need));
  return p2 >= 4 && (3 * p2) / 4 >= need ? (3 * p2) / 4 : p2;
}

/**
 * One subgroup per row, several rows per workgroup, the row in registers: reductions are a
 * subgroupAdd/subgroupMax each, with no workgroup memory and no barrier, so a row costs little more
 * than its loads (LayerNorm 25600×768 on an H100, by GPU timestamps: 0.120 → 0.066 ms, 51% → 94% of
 * a copy's GB/s, against one workgroup per row with two barrier-bound reductions). Null where the
 * device has no subgroups or the row does not fit in MAX_PER_LANE registers per lane at the
 * smallest subgroup size; the caller then takes its workgroup kernel.
 * Correct for any subgroup size in the adapter's [min, max], even one that varies between
 * workgroups: slots per lane are sized for the smallest, and a workgroup takes as many rows as it
 * has subgroups of the largest size (perGroup); with smaller subgroups the extra ones idle (none do
 * where the size is fixed, as on NVIDIA, lavapipe and SwiftShader). As workgroupReducer, the
 * subgroup of invocation lid is taken to be lid / subgroup_size.
 */
export function subgroupRows(device: GPUDevice, rows: number, cols: number): SubgroupRows | null {
  if (!rowSubgroups(device)) return null;
  const { subgroupMinSize: min, subgroupMaxSize: max } = subgroupInfo(device);
  if (!min || !max || max > SG_ROWS_WG) return null;
  const vec = cols % 4 === 0 ? 4 : 1;
  const k = laneSlots(Math.ceil(cols / vec / min));
  if (k * vec > MAX_PER_LANE) return null;
  const perGroup = SG_ROWS_WG / max;
  return { vec, k, units: k * min, perGroup, groups: Math.ceil(rows / perGroup), key: `sgrow_r${perGroup}_v${vec}_k${k}` };
}

/**
 * The module of a one-subgroup-per-row kernel: `decls` (bindings; arrays of row data hold V, which
 * is f32 or vec4<f32> as s.vec says; the uniform struct P must start with rows and the row length
 * in floats, as cols), then main with row (ok is false for a row past the end or a spare
 * subgroup), base (the row's first unit, clamped to a real row so loads stay in bounds), n (units
 * per row) and lane/sgs (the lane and the subgroup size) set, then `body`. Control flow stays
 * uniform up to the stores: the body reads clamped rows and guards only its stores with ok (the
 * subgroup operations must be reached by the whole subgroup). V helpers: vsum, vmax, vdot.
 */
export function subgroupRowKernel(s: SubgroupRows, decls: string, body: string): string {
  const v4 = s.vec === 4;
  return /* wgsl */ `enable subgroups;
alias V = ${v4 ? 'vec4<f32>' : 'f32'};
fn vdot(a: V, b: V) -> f32 { return ${v4 ? 'dot(a, b)' : 'a * b'}; }
fn vsum(v: V) -> f32 { return vdot(v, V(1.0)); }
fn vmax(v: V) -> f32 { return ${v4 ? 'max(max(v.x, v.y), max(v.z, v.w))' : 'v'}; }
${decls}
@compute @workgroup_size(${SG_ROWS_WG})
fn main(${MAIN_ARGS}, @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let sub = lid / sgs;
  let row = (wid.y * nwg.x + wid.x) * ${s.perGroup}u + sub;
  let ok = sub < ${s.perGroup}u && row < p.rows;
  let n = p.cols / ${s.vec}u;
  let base = min(row, p.rows - 1u) * n;
${body}
}`;
}

/** `for` over this lane's k slots j, with c its unit in the row (c < n: inside the row). */
export function eachLaneSlot(s: SubgroupRows, body: string): string {
  return `for (var j = 0u; j < ${s.k}u; j++) {
    let c = lane + j * sgs;
${body}
  }`;
}

const scratchByDevice = new WeakMap<GPUDevice, Map<string, GPUBuffer>>();

/**
 * A storage buffer of at least `bytes` bytes owned by this module, one per device and `key`
 * (callers whose passes are bound together in one dispatch need different keys). Reusing it across
 * calls is safe: WebGPU orders dispatches, so a later call sees an earlier call's writes and reads
 * finished. When it must grow, the old buffer is only let go, not destroyed: another CommandBatch
 * may have recorded work on it and not yet submitted it (destroying it would drop that batch); its
 * memory goes once the last reference to it does. Growth is geometric, so that happens rarely.
 */
export function scratchBuffer(batch: CommandBatch, key: string, bytes: number): GPUBuffer {
  let byKey = scratchByDevice.get(batch.device);
  if (!byKey) scratchByDevice.set(batch.device, (byKey = new Map()));
  const old = byKey.get(key);
  if (old && old.size >= bytes) return old;
  const cap = batch.device.limits.maxStorageBufferBindingSize;
  if (bytes > cap) throw new RangeError(`scratch ${key}: ${bytes} bytes exceed maxStorageBufferBindingSize ${cap}`);
  // grow geometrically (within the binding limit) so growing shapes reallocate only a few times
  const size = Math.min(Math.floor(cap / 4) * 4, Math.ceil(Math.max(256, bytes, (old?.size ?? 0) * 2) / 4) * 4);
  const b = batch.device.createBuffer({ label: `scratch ${key}`, size, usage: GPUBufferUsage.STORAGE });
  byKey.set(key, b);
  return b;
}
