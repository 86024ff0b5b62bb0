// One way to get a GPUDevice: Dawn (the `webgpu` npm package) under Node, navigator.gpu in a browser.
// Requests the optional features the kernels can use and the adapter's real limits, and turns
// "no adapter" and device loss into errors that say what happened and how to fix it.

import { checkSubgroups } from '../kernels/rows.js';
import { setAdapterInfo, subgroupInfo, type SubgroupInfo } from '../kernels/runtime.js';

export interface DeviceOptions {
  /** Dawn backend under Node (e.g. 'vulkan'); a backend that does not exist gives the no-adapter error. */
  backend?: string;
  powerPreference?: GPUPowerPreference;
  /** Enable Dawn's allow_unsafe_apis (needed for subgroup matrices). Node only. */
  unsafeApis?: boolean;
  /** Request chromium-experimental-subgroup-matrix when the adapter has it (implies unsafeApis). */
  subgroupMatrix?: boolean;
  /** Use this GPU object instead of Dawn / navigator.gpu (embedding, tests). */
  gpu?: GPU;
  /**
   * More Dawn toggles to enable (Node only), for measuring what Dawn's safety costs. Dawn clamps the
   * index of every workgroup-memory access it cannot prove in bounds (a UMin per access in the SPIR-V
   * it gives lavapipe), in the matmul's inner loop too; 'disable_robustness' drops the clamps, which our
   * kernels do not need (their indices stay in bounds, and the tests check them on any shape). Dawn
   * ignores names it does not know.
   */
  dawnToggles?: string[];
}

export interface GpuInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: 'dawn-node' | 'browser';
  /** Under Node, the Dawn toggles enabled (ours and those asked for; Dawn ignores unknown names). */
  dawnToggles?: string[];
  features: string[];
  limits: Record<string, number>;
  /** Subgroup sizes and subgroup-matrix configs ("f16→f32 16×16×16"), where the runtime reports them. */
  subgroups?: { minSize?: number; maxSize?: number; matrixConfigs: string[] };
}

export interface Gpu {
  /** The GPU object (Dawn instance); held so it is not garbage-collected while the device lives. */
  gpu: GPU;
  device: GPUDevice;
  adapter: GPUAdapter;
  info: GpuInfo;
  /** The loss error once the device is lost (not when closed on purpose), else undefined. */
  lostError(): DeviceLostError | undefined;
  /** Destroys the device and lets the process exit (Dawn keeps Node alive otherwise). */
  close(): void;
}

export class NoAdapterError extends Error {
  constructor(detail: string) {
    const isNode = typeof process !== 'undefined' && !!process.versions?.node;
    const fix = isNode
      ? process.platform === 'linux'
        ? 'On Linux without a GPU run `bash scripts/setup.sh` (installs Mesa lavapipe >= 24 and the Vulkan loader). ' +
          'With an NVIDIA GPU in a container, install libvulkan1 and point VK_DRIVER_FILES at nvidia_icd.json.'
        : 'Install a GPU driver with Vulkan, Metal or D3D12 support.'
      : 'Use a browser with WebGPU enabled (Chrome/Edge 113+, or --enable-unsafe-webgpu for headless Chromium).';
    super(`No WebGPU adapter found (${detail}). ${fix}`);
    this.name = 'NoAdapterError';
  }
}

export class DeviceLostError extends Error {
  constructor(reason: string, message: string) {
    super(`The GPU device was lost (${reason}): ${message}`);
    this.name = 'DeviceLostError';
  }
}

const OPTIONAL_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;
const SUBGROUP_MATRIX = 'chromium-experimental-subgroup-matrix';
const LIMITS_TO_RAISE = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
] as const;

function isNode(): boolean {
  return typeof process !== 'undefined' && !!process.versions?.node && typeof window === 'undefined';
}

/** The Dawn toggles to enable: ours, then those asked for. */
function dawnToggleList(opts: DeviceOptions): string[] {
  const enable = ['vulkan_enable_f16_on_nvidia'];
  if (opts.unsafeApis || opts.subgroupMatrix) enable.push('allow_unsafe_apis');
  for (const t of opts.dawnToggles ?? []) {
    if (!/^[a-z0-9_]+$/.test(t)) throw new RangeError(`dawnToggles: '${t}' is not a Dawn toggle name (lower case, digits and _)`);
    if (!enable.includes(t)) enable.push(t);
  }
  return enable;
}

/** The flags of Dawn's Node instance: the features (toggles) to enable and disable, and the backend. */
export function dawnFlags(opts: DeviceOptions): string[] {
  const flags = [`enable-dawn-features=${dawnToggleList(opts).join(',')}`, 'disable-dawn-features=timestamp_quantization'];
  if (opts.backend) flags.push(`backend=${opts.backend}`);
  return flags;
}

/** One Dawn instance per set of flags: each new one holds memory of its own (a process that makes
 *  and closes many engines reuses it; a device is what each engine owns and destroys). */
const dawnInstances = new Map<string, Promise<GPU>>();

function nodeGpu(opts: DeviceOptions): Promise<GPU> {
  const flags = dawnFlags(opts);
  const key = flags.join(' ');
  let gpu = dawnInstances.get(key);
  if (!gpu) {
    gpu = (async () => {
      // Hidden from bundlers: the browser build never loads Dawn.
      const modName = 'webgpu';
      const { create, globals } = await import(/* @vite-ignore */ modName);
      Object.assign(globalThis, globals);
      return create(flags) as GPU;
    })();
    dawnInstances.set(key, gpu);
    gpu.catch(() => dawnInstances.delete(key)); // a failed load is tried again next time
  }
  return gpu;
}

export async function requestGpu(opts: DeviceOptions = {}): Promise<Gpu> {
  const node = isNode();
  const gpu: GPU | undefined = opts.gpu ?? (node ? await nodeGpu(opts) : (globalThis as any).navigator?.gpu);
  if (!gpu) throw new NoAdapterError('navigator.gpu is undefined');
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  } catch (e) {
    throw new NoAdapterError(`requestAdapter failed: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!adapter) throw new NoAdapterError(opts.backend ? `backend=${opts.backend}` : 'requestAdapter returned null');

  const wanted: string[] = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
  if (opts.subgroupMatrix && adapter.features.has(SUBGROUP_MATRIX as GPUFeatureName)) wanted.push(SUBGROUP_MATRIX);
  const requiredLimits: Record<string, number> = {};
  for (const k of LIMITS_TO_RAISE) {
    const v = (adapter.limits as any)[k];
    if (typeof v === 'number') requiredLimits[k] = v;
  }
  const device = await adapter.requestDevice({
    requiredFeatures: wanted as GPUFeatureName[],
    requiredLimits,
  });
  let closed = false;
  let lostError: DeviceLostError | undefined;
  device.lost.then((info) => {
    if (closed) return;
    lostError = new DeviceLostError(info.reason, info.message);
    console.error(lostError.message);
  });
  setAdapterInfo(device, adapter.info as SubgroupInfo);
  // What the row kernels assume of subgroups, checked before any kernel runs (their fallback otherwise).
  const subgroupFault = await checkSubgroups(device);
  if (subgroupFault) console.error(`subgroups: ${subgroupFault}; the row kernels use workgroup memory on this device`);
  // Removed on close: while a listener is attached the device is never collected (Dawn keeps it, and
  // every cache keyed by it, alive; many create/close cycles in one process then crashed Dawn).
  const onError = (ev: Event) => console.error('WebGPU error:', (ev as GPUUncapturedErrorEvent).error.message);
  device.addEventListener('uncapturederror', onError);

  const ai = adapter.info;
  const limits: Record<string, number> = {};
  for (const k in device.limits) {
    const v = (device.limits as any)[k];
    if (typeof v === 'number') limits[k] = v;
  }
  const info: GpuInfo = {
    vendor: ai.vendor,
    architecture: ai.architecture,
    device: ai.device,
    description: ai.description,
    backend: node ? 'dawn-node' : 'browser',
    ...(node && !opts.gpu ? { dawnToggles: dawnToggleList(opts) } : {}),
    features: [...device.features].sort(),
    limits,
    subgroups: subgroupSummary(device),
  };
  return {
    gpu,
    device,
    adapter,
    info,
    lostError: () => lostError,
    close() {
      closed = true;
      device.removeEventListener('uncapturederror', onError);
      device.destroy();
    },
  };
}

/** The subgroup part of GpuInfo, read the way the kernels read it. */
function subgroupSummary(device: GPUDevice): GpuInfo['subgroups'] {
  const i = subgroupInfo(device);
  const matrixConfigs = [...(i.subgroupMatrixConfigs ?? [])].map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`);
  return i.subgroupMinSize || matrixConfigs.length ? { minSize: i.subgroupMinSize, maxSize: i.subgroupMaxSize, matrixConfigs } : undefined;
}

/** A one-paragraph human description of the device, for logs and `ecg-jepa info`. */
export function describeGpu(info: GpuInfo): string {
  const mib = (b: number) => `${Math.round(b / 2 ** 20)} MiB`;
  return [
    `adapter: ${info.vendor} / ${info.architecture} / ${info.device}`,
    `description: ${info.description}`,
    `runtime: ${info.backend}`,
    ...(info.dawnToggles ? [`dawn toggles: ${info.dawnToggles.join(', ')}`] : []),
    `features: ${info.features.join(', ')}`,
    `limits: maxStorageBufferBindingSize ${mib(info.limits.maxStorageBufferBindingSize)}, maxBufferSize ${mib(info.limits.maxBufferSize)}, ` +
      `workgroup storage ${info.limits.maxComputeWorkgroupStorageSize} B, invocations ${info.limits.maxComputeInvocationsPerWorkgroup}, ` +
      `storage buffers/stage ${info.limits.maxStorageBuffersPerShaderStage}`,
    ...(info.subgroups
      ? [`subgroups: size ${info.subgroups.minSize ?? '?'}–${info.subgroups.maxSize ?? '?'}; matrix configs: ${info.subgroups.matrixConfigs.join(', ') || 'none'}`]
      : []),
  ].join('\n');
}
