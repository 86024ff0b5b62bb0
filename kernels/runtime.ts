// The small runtime every kernel launcher uses: a pipeline cache per device, packed uniform
// parameters, and a CommandBatch that records many dispatches into one command encoder (one compute
// pass while only dispatches follow each other) and submits them once. Uses nothing but a GPUDevice,
// so another project can drive these kernels with its own device and buffers.

import { bindingParts } from './checks.js';
import type { KernelProfiler } from './profiler.js';

const pipelineCache = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/** What the kernels read from the adapter info: subgroup sizes and subgroup-matrix configs. */
export interface SubgroupInfo {
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
  subgroupMatrixConfigs?: Iterable<Record<string, unknown>>;
}
const adapterInfos = new WeakMap<GPUDevice, SubgroupInfo>();

/** Gives the kernels the adapter info of `device` (pass adapter.info), for runtimes whose
 *  device.adapterInfo lacks subgroup fields; call it before the first kernel runs on the device.
 *  Without it they read device.adapterInfo. */
export function setAdapterInfo(device: GPUDevice, info: SubgroupInfo): void {
  adapterInfos.set(device, info);
}

/** Subgroup sizes and subgroup-matrix configs: each field from device.adapterInfo, else from setAdapterInfo. */
export function subgroupInfo(device: GPUDevice): SubgroupInfo {
  const own = (device as unknown as { adapterInfo?: SubgroupInfo }).adapterInfo, given = adapterInfos.get(device);
  const configs = (i?: SubgroupInfo) => (i?.subgroupMatrixConfigs ? Array.from(i.subgroupMatrixConfigs) : []);
  const a = configs(own), b = configs(given);
  return {
    subgroupMinSize: own?.subgroupMinSize || given?.subgroupMinSize,
    subgroupMaxSize: own?.subgroupMaxSize || given?.subgroupMaxSize,
    subgroupMatrixConfigs: a.length ? a : b,
  };
}

/** llvmpipe (lavapipe) or SwiftShader: CPU adapters, where shader JIT time matters more than speed. */
export function isCpuAdapter(device: GPUDevice): boolean {
  const info = (device as unknown as { adapterInfo?: Partial<GPUAdapterInfo> & { isFallbackAdapter?: boolean } }).adapterInfo;
  if (!info) return false;
  return !!info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(`${info.vendor} ${info.architecture} ${info.device} ${info.description}`);
}

let gpuFormOnCpu = false;
/**
 * Whether kernels compile their GPU form on `device`: loops with constant trip counts that GPU
 * compilers unroll into registers (and layouts compiled in). CPU adapters get a rolled form whose
 * loop bounds come from a uniform: LLVM would unroll them too, and lavapipe's JIT then takes up to
 * minutes per pipeline. The two forms do the same operations in the same order, but a compiler may
 * fuse a multiply and an add differently in each: on lavapipe, attention's results moved in the last
 * bits (the demo's loss after 1500 steps: 0.002781 unrolled, 0.003788 rolled).
 */
export function gpuShaderForm(device: GPUDevice): boolean {
  return gpuFormOnCpu || !isCpuAdapter(device);
}

/** Tests: make CPU adapters compile the GPU form too; returns the previous setting. */
export function setGpuShaderFormForTests(on: boolean): boolean {
  const old = gpuFormOnCpu;
  gpuFormOnCpu = on;
  return old;
}

/** A compute pipeline for `code`, compiled once per device and key. */
export function getPipeline(device: GPUDevice, key: string, code: () => string): GPUComputePipeline {
  let cache = pipelineCache.get(device);
  if (!cache) pipelineCache.set(device, (cache = new Map()));
  let p = cache.get(key);
  if (!p) {
    const module = device.createShaderModule({ label: key, code: code() });
    p = device.createComputePipeline({ label: key, layout: 'auto', compute: { module, entryPoint: 'main' } });
    cache.set(key, p);
  }
  return p;
}

/** Builds a uniform block field by field (4-byte fields, WGSL struct of u32/i32/f32 scalars). */
export class Params {
  private words: number[] = [];
  private kinds: ('u' | 'i' | 'f')[] = [];
  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`u32 parameter out of range: ${v}`);
    this.words.push(v);
    this.kinds.push('u');
    return this;
  }
  i32(v: number): this {
    this.words.push(v | 0);
    this.kinds.push('i');
    return this;
  }
  f32(v: number): this {
    this.words.push(v);
    this.kinds.push('f');
    return this;
  }
  /** Bytes, padded to 16 (uniform structs are 16-byte aligned). */
  bytes(): Uint8Array {
    const n = Math.max(4, Math.ceil(this.words.length / 4) * 4);
    const buf = new ArrayBuffer(n * 4);
    const dv = new DataView(buf);
    this.words.forEach((w, i) => {
      const k = this.kinds[i];
      if (k === 'f') dv.setFloat32(i * 4, w, true);
      else if (k === 'i') dv.setInt32(i * 4, w, true);
      else dv.setUint32(i * 4, w, true);
    });
    return new Uint8Array(buf);
  }
}

export type Binding = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number };

const UNIFORM_CHUNK = 65536;
/** WebGPU's default per-dimension workgroup count limit. */
const MAX_WORKGROUPS = 65535;
/** Bind groups a batch keeps for reuse; past this it forgets them all (a training step makes ~1300). */
const MAX_BIND_GROUPS = 8192;

const objectIds = new WeakMap<object, number>();
let lastObjectId = 0;
/** A number per GPU object, for cache keys (weakly held: the object can still be collected). */
function idOf(o: object): number {
  let id = objectIds.get(o);
  if (id === undefined) objectIds.set(o, (id = ++lastObjectId));
  return id;
}

export { grid } from './grid.js';

interface UniformChunk {
  buffer: GPUBuffer;
  cpu: Uint8Array;
  used: number;
}

/**
 * Waits until Dawn has given the memory of buffers destroyed so far back to the driver. Dawn frees
 * a destroyed buffer's memory once the GPU has passed the serial of the *next* submit
 * (vulkan/FencedDeleter.cpp queues it at the pending serial), so without a submit after the destroy
 * the memory stays taken however long one waits: one small submit, then its completion (twice, in
 * case the freeing runs only at a later device tick). On an H100 this took our pool's 65 GB back
 * to 0.9 GB by nvidia-smi.
 */
export async function releaseDestroyed(device: GPUDevice): Promise<void> {
  const scratch = device.createBuffer({ size: 4, usage: GPUBufferUsage.COPY_DST });
  for (let i = 0; i < 2; i++) {
    const enc = device.createCommandEncoder();
    enc.clearBuffer(scratch);
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
  }
  scratch.destroy();
}

/**
 * Records dispatches, copies and clears into one command encoder; `submit()` uploads the packed
 * uniforms and submits everything at once. Reusable: after submit it starts a new encoder.
 */
export class CommandBatch {
  readonly device: GPUDevice;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private chunks: UniformChunk[] = [];
  private chunkIndex = 0;
  private readonly align: number;
  /** The device's binding limits, read once (each read is a call into native code). */
  private readonly bindingCap: number;
  private readonly bindingAlign: number;
  /** Dispatches recorded since the last submit. */
  dispatches = 0;
  /** Dispatches recorded by this batch in its life (benchmarks count kernels per step with it). */
  dispatchesRecorded = 0;
  /** Submits done by this batch in its life (tests count these). */
  submits = 0;
  /** Bind groups created by this batch in its life (the rest were reused; tests count these). */
  bindGroupsCreated = 0;
  /** Bind groups by pipeline and bound ranges: a loop that repeats its dispatches on the same
   *  buffers (a training step on pooled tensors) creates each once, and createBindGroup is most of a
   *  dispatch's CPU cost (~30 µs on lavapipe; more in a browser, where it crosses processes). */
  private bindGroups = new Map<string, GPUBindGroup>();
  private afterSubmit: (() => void)[] = [];
  /** While set, each dispatch gets its own timestamped pass (kernels/profiler.ts). */
  profiler: KernelProfiler | null = null;

  constructor(device: GPUDevice) {
    this.device = device;
    this.align = device.limits.minUniformBufferOffsetAlignment;
    this.bindingCap = device.limits.maxStorageBufferBindingSize;
    this.bindingAlign = device.limits.minStorageBufferOffsetAlignment;
  }

  private getEncoder(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder());
  }

  private getPass(): GPUComputePassEncoder {
    return (this.pass ??= this.getEncoder().beginComputePass());
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  private uniform(data: Uint8Array): { buffer: GPUBuffer; offset: number; size: number } {
    let chunk = this.chunks[this.chunkIndex];
    const at = chunk ? Math.ceil(chunk.used / this.align) * this.align : 0;
    if (!chunk || at + data.byteLength > UNIFORM_CHUNK) {
      if (chunk) this.chunkIndex++;
      chunk = this.chunks[this.chunkIndex];
      if (!chunk) {
        chunk = {
          buffer: this.device.createBuffer({ size: UNIFORM_CHUNK, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST }),
          cpu: new Uint8Array(UNIFORM_CHUNK),
          used: 0,
        };
        this.chunks.push(chunk);
      }
      chunk.used = 0;
    }
    const offset = Math.ceil(chunk.used / this.align) * this.align;
    chunk.cpu.set(data, offset);
    chunk.used = offset + data.byteLength;
    return { buffer: chunk.buffer, offset, size: data.byteLength };
  }

  /**
   * One dispatch. `bindings[i]` goes to @binding(i) of @group(0); `params`, when given, goes to the
   * next binding as a uniform.
   */
  dispatch(pipeline: GPUComputePipeline, bindings: Binding[], params: Params | null, workgroups: [number, number?, number?]): void {
    // WebGPU would only log an uncaptured validation error and skip the work (the whole batch): refuse it here instead.
    const cap = this.bindingCap, align = this.bindingAlign;
    bindings.forEach((b, i) => {
      const { offset, size: bytes } = bindingParts(b);
      const what = () => `${pipeline.label || 'kernel'}: binding ${i}`;
      if (bytes > cap)
        throw new RangeError(`${what()} spans ${bytes} bytes, over this device's maxStorageBufferBindingSize (${cap}); split the work or use a device with a larger limit`);
      if (bytes === 0 || bytes % 4 !== 0) throw new RangeError(`${what()} spans ${bytes} bytes; a storage binding must hold a positive multiple of 4`);
      if (offset % align !== 0) throw new RangeError(`${what()} starts at byte ${offset}, not a multiple of this device's minStorageBufferOffsetAlignment (${align})`);
    });
    const ranges: GPUBufferBinding[] = bindings.map((b) => ('buffer' in b ? b : { buffer: b }));
    if (params) ranges.push(this.uniform(params.bytes()));
    const bindGroup = this.bindGroup(pipeline, ranges);
    const [x, y = 1, z = 1] = workgroups;
    if (x > MAX_WORKGROUPS || y > MAX_WORKGROUPS || z > MAX_WORKGROUPS)
      throw new RangeError(`${pipeline.label}: workgroup count ${x}x${y}x${z} exceeds ${MAX_WORKGROUPS} per dimension`);
    if (this.profiler) this.endPass();
    const pass = this.profiler ? this.getEncoder().beginComputePass({ timestampWrites: this.profiler.passTimestamps(pipeline.label || 'unlabelled') }) : this.getPass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    if (x * y * z > 0) pass.dispatchWorkgroups(x, y, z);
    if (this.profiler) pass.end();
    this.dispatches++;
    this.dispatchesRecorded++;
  }

  /** The bind group of `ranges` (binding i = ranges[i]) for `pipeline`, made once. Correct whatever
   *  the buffers hold: a bind group names buffer ranges, not contents. */
  private bindGroup(pipeline: GPUComputePipeline, ranges: GPUBufferBinding[]): GPUBindGroup {
    let key = `${idOf(pipeline)}`;
    for (const r of ranges) key += `|${idOf(r.buffer)}:${r.offset ?? 0}:${r.size ?? -1}`;
    let group = this.bindGroups.get(key);
    if (!group) {
      if (this.bindGroups.size >= MAX_BIND_GROUPS) this.bindGroups.clear();
      group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: ranges.map((resource, binding) => ({ binding, resource })) });
      this.bindGroups.set(key, group);
      this.bindGroupsCreated++;
    }
    return group;
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.endPass();
    this.getEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
  }

  clear(buffer: GPUBuffer, offset = 0, size?: number): void {
    this.endPass();
    this.getEncoder().clearBuffer(buffer, offset, size);
  }

  /** Runs `fn` right after the next submit (e.g. to return buffers to a pool). */
  onSubmit(fn: () => void): void {
    this.afterSubmit.push(fn);
  }

  /** True when something is recorded and not yet submitted. */
  get pending(): boolean {
    return this.encoder !== null;
  }

  submit(): void {
    if (this.encoder) {
      this.endPass();
      for (let i = 0; i <= this.chunkIndex && i < this.chunks.length; i++) {
        const c = this.chunks[i];
        if (c.used > 0) this.device.queue.writeBuffer(c.buffer, 0, c.cpu, 0, Math.ceil(c.used / 4) * 4);
        c.used = 0;
      }
      this.chunkIndex = 0;
      this.profiler?.resolve(this.encoder);
      this.device.queue.submit([this.encoder.finish()]);
      this.profiler?.submitted();
      this.encoder = null;
      this.dispatches = 0;
      this.submits++;
    }
    const fns = this.afterSubmit;
    this.afterSubmit = [];
    for (const f of fns) f();
  }
}
