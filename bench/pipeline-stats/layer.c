// A Vulkan layer that prints what the driver reports about each compute pipeline it compiles
// (VK_KHR_pipeline_executable_properties: on NVIDIA the register count per thread, among others),
// so a GPU run can see register pressure and spills that WebGPU hides. It enables the extension on
// every device that has it, asks each vkCreateComputePipelines to capture statistics, and appends one
// line per executable to the file $ECG_JEPA_PIPELINE_STATS_FILE (else stderr), right as the pipeline
// is created:
//   pipeline-stats <executable name> | <statistic>=<value> | ...
// With $ECG_JEPA_PIPELINE_IR_FILE set, it also asks for the driver's internal representations of each
// executable (its IR or disassembly, where a driver gives any) and appends them there, each after a line
//   === <executable name> | <representation name>: <description>
// (a binary one as its size and first bytes). bench/pipeline-stats.ts names each line's kernel;
// bench/gpu.sh builds and loads the layer (VK_LAYER_PATH, VK_INSTANCE_LAYERS).
// One instance and a few devices at a time, as Dawn creates them; nothing else is intercepted.
#include <vulkan/vk_layer.h>
#include <vulkan/vulkan.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
#define EXT "VK_KHR_pipeline_executable_properties"
#define MAX_DEVICES 8

static PFN_vkGetInstanceProcAddr nextGipa;
static VkInstance theInstance;

struct Device {
  VkDevice device;
  PFN_vkGetDeviceProcAddr gdpa;
  PFN_vkCreateComputePipelines createComputePipelines;
  PFN_vkGetPipelineExecutablePropertiesKHR executables;
  PFN_vkGetPipelineExecutableStatisticsKHR statistics;
  PFN_vkGetPipelineExecutableInternalRepresentationsKHR representations;
  int capture;
};
static struct Device devices[MAX_DEVICES];

static FILE *output(void) {
  static FILE *f;
  if (!f) {
    const char *path = getenv("ECG_JEPA_PIPELINE_STATS_FILE");
    f = path ? fopen(path, "a") : NULL;
    if (!f) f = stderr;
  }
  return f;
}

/** Where internal representations go; NULL: not asked for. */
static FILE *irOutput(void) {
  static FILE *f;
  static int opened;
  if (!opened) {
    const char *path = getenv("ECG_JEPA_PIPELINE_IR_FILE");
    f = path ? fopen(path, "a") : NULL;
    opened = 1;
  }
  return f;
}

static struct Device *find(VkDevice d) {
  for (int i = 0; i < MAX_DEVICES; i++)
    if (devices[i].device == d) return &devices[i];
  return NULL;
}

static VkResult VKAPI_CALL CreateInstance(const VkInstanceCreateInfo *info, const VkAllocationCallbacks *alloc, VkInstance *out) {
  VkLayerInstanceCreateInfo *link = (VkLayerInstanceCreateInfo *)info->pNext;
  while (link && !(link->sType == VK_STRUCTURE_TYPE_LOADER_INSTANCE_CREATE_INFO && link->function == VK_LAYER_LINK_INFO))
    link = (VkLayerInstanceCreateInfo *)link->pNext;
  if (!link) return VK_ERROR_INITIALIZATION_FAILED;
  nextGipa = link->u.pLayerInfo->pfnNextGetInstanceProcAddr;
  link->u.pLayerInfo = link->u.pLayerInfo->pNext;
  PFN_vkCreateInstance next = (PFN_vkCreateInstance)nextGipa(NULL, "vkCreateInstance");
  VkResult r = next(info, alloc, out);
  if (r == VK_SUCCESS) theInstance = *out;
  return r;
}

static int hasExtension(VkPhysicalDevice gpu) {
  PFN_vkEnumerateDeviceExtensionProperties list = (PFN_vkEnumerateDeviceExtensionProperties)nextGipa(theInstance, "vkEnumerateDeviceExtensionProperties");
  uint32_t n = 0;
  if (list(gpu, NULL, &n, NULL) != VK_SUCCESS) return 0;
  VkExtensionProperties *props = calloc(n, sizeof *props);
  int found = 0;
  if (list(gpu, NULL, &n, props) == VK_SUCCESS)
    for (uint32_t i = 0; i < n; i++) found |= strcmp(props[i].extensionName, EXT) == 0;
  free(props);
  return found;
}

static VkResult VKAPI_CALL CreateDevice(VkPhysicalDevice gpu, const VkDeviceCreateInfo *info, const VkAllocationCallbacks *alloc, VkDevice *out) {
  VkLayerDeviceCreateInfo *link = (VkLayerDeviceCreateInfo *)info->pNext;
  while (link && !(link->sType == VK_STRUCTURE_TYPE_LOADER_DEVICE_CREATE_INFO && link->function == VK_LAYER_LINK_INFO))
    link = (VkLayerDeviceCreateInfo *)link->pNext;
  if (!link) return VK_ERROR_INITIALIZATION_FAILED;
  PFN_vkGetInstanceProcAddr gipa = link->u.pLayerInfo->pfnNextGetInstanceProcAddr;
  PFN_vkGetDeviceProcAddr gdpa = link->u.pLayerInfo->pfnNextGetDeviceProcAddr;
  link->u.pLayerInfo = link->u.pLayerInfo->pNext;
  PFN_vkCreateDevice next = (PFN_vkCreateDevice)gipa(theInstance, "vkCreateDevice");

  // The extension and its feature, added to what the application asked for.
  int capture = hasExtension(gpu);
  VkDeviceCreateInfo mine = *info;
  const char **names = calloc(info->enabledExtensionCount + 1, sizeof *names);
  memcpy(names, info->ppEnabledExtensionNames, info->enabledExtensionCount * sizeof *names);
  VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR feature = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR,
      .pNext = (void *)info->pNext,
      .pipelineExecutableInfo = VK_TRUE,
  };
  if (capture) {
    int asked = 0;
    for (uint32_t i = 0; i < info->enabledExtensionCount; i++) asked |= strcmp(names[i], EXT) == 0;
    if (!asked) names[mine.enabledExtensionCount++] = EXT;
    mine.ppEnabledExtensionNames = names;
    mine.pNext = &feature;
  }
  VkResult r = next(gpu, &mine, alloc, out);
  free(names);
  if (r != VK_SUCCESS) return r;
  struct Device *d = find(VK_NULL_HANDLE);
  if (!d) return r;
  d->device = *out;
  d->gdpa = gdpa;
  d->createComputePipelines = (PFN_vkCreateComputePipelines)gdpa(*out, "vkCreateComputePipelines");
  d->executables = (PFN_vkGetPipelineExecutablePropertiesKHR)gdpa(*out, "vkGetPipelineExecutablePropertiesKHR");
  d->statistics = (PFN_vkGetPipelineExecutableStatisticsKHR)gdpa(*out, "vkGetPipelineExecutableStatisticsKHR");
  d->representations = (PFN_vkGetPipelineExecutableInternalRepresentationsKHR)gdpa(*out, "vkGetPipelineExecutableInternalRepresentationsKHR");
  d->capture = capture && d->executables && d->statistics;
  fprintf(output(), "pipeline-stats: device %p %s\n", (void *)*out, d->capture ? "captures statistics" : "lacks " EXT);
  fflush(output());
  return r;
}

static void writeRepresentations(struct Device *d, const VkPipelineExecutableInfoKHR *exe, const char *exeName, FILE *f) {
  uint32_t n = 0;
  if (!d->representations || d->representations(d->device, exe, &n, NULL) != VK_SUCCESS) return;
  VkPipelineExecutableInternalRepresentationKHR *irs = calloc(n, sizeof *irs);
  for (uint32_t i = 0; i < n; i++) irs[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INTERNAL_REPRESENTATION_KHR;
  // names and sizes first (pData NULL), then the data into buffers of those sizes
  if (d->representations(d->device, exe, &n, irs) == VK_SUCCESS) {
    for (uint32_t i = 0; i < n; i++) irs[i].pData = calloc(1, irs[i].dataSize + 1); // + 1: text ends in a NUL
    VkResult r = d->representations(d->device, exe, &n, irs);
    for (uint32_t i = 0; i < n && (r == VK_SUCCESS || r == VK_INCOMPLETE); i++) {
      fprintf(f, "=== %s | %s: %s\n", exeName, irs[i].name, irs[i].description);
      if (irs[i].isText) {
        fprintf(f, "%s\n", (const char *)irs[i].pData);
      } else {
        fprintf(f, "(binary, %zu bytes, first:", irs[i].dataSize);
        for (size_t b = 0; b < irs[i].dataSize && b < 32; b++) fprintf(f, " %02x", ((unsigned char *)irs[i].pData)[b]);
        fprintf(f, ")\n");
      }
    }
    for (uint32_t i = 0; i < n; i++) free(irs[i].pData);
  }
  free(irs);
  fflush(f);
}

static void report(struct Device *d, VkPipeline pipeline) {
  FILE *f = output();
  VkPipelineInfoKHR which = {.sType = VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR, .pipeline = pipeline};
  uint32_t n = 0;
  if (d->executables(d->device, &which, &n, NULL) != VK_SUCCESS) return;
  VkPipelineExecutablePropertiesKHR *exes = calloc(n, sizeof *exes);
  for (uint32_t i = 0; i < n; i++) exes[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_PROPERTIES_KHR;
  if (d->executables(d->device, &which, &n, exes) == VK_SUCCESS)
    for (uint32_t e = 0; e < n; e++) {
      VkPipelineExecutableInfoKHR exe = {.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR, .pipeline = pipeline, .executableIndex = e};
      uint32_t m = 0;
      if (d->statistics(d->device, &exe, &m, NULL) != VK_SUCCESS) continue;
      VkPipelineExecutableStatisticKHR *stats = calloc(m, sizeof *stats);
      for (uint32_t i = 0; i < m; i++) stats[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR;
      if (d->statistics(d->device, &exe, &m, stats) == VK_SUCCESS) {
        fprintf(f, "pipeline-stats %s", exes[e].name);
        for (uint32_t i = 0; i < m; i++) {
          VkPipelineExecutableStatisticKHR *s = &stats[i];
          switch (s->format) {
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR: fprintf(f, " | %s=%s", s->name, s->value.b32 ? "true" : "false"); break;
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR: fprintf(f, " | %s=%lld", s->name, (long long)s->value.i64); break;
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR: fprintf(f, " | %s=%llu", s->name, (unsigned long long)s->value.u64); break;
            default: fprintf(f, " | %s=%g", s->name, s->value.f64); break;
          }
        }
        fprintf(f, "\n");
      }
      free(stats);
      if (irOutput()) writeRepresentations(d, &exe, exes[e].name, irOutput());
    }
  free(exes);
  fflush(f);
}

static VkResult VKAPI_CALL CreateComputePipelines(VkDevice device, VkPipelineCache cache, uint32_t n, const VkComputePipelineCreateInfo *infos, const VkAllocationCallbacks *alloc, VkPipeline *out) {
  struct Device *d = find(device);
  if (!d->capture) return d->createComputePipelines(device, cache, n, infos, alloc, out);
  VkComputePipelineCreateInfo *mine = calloc(n, sizeof *mine);
  for (uint32_t i = 0; i < n; i++) {
    mine[i] = infos[i];
    mine[i].flags |= VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR | (irOutput() ? VK_PIPELINE_CREATE_CAPTURE_INTERNAL_REPRESENTATIONS_BIT_KHR : 0);
  }
  VkResult r = d->createComputePipelines(device, cache, n, mine, alloc, out);
  free(mine);
  if (r == VK_SUCCESS)
    for (uint32_t i = 0; i < n; i++) report(d, out[i]);
  return r;
}

static void VKAPI_CALL DestroyDevice(VkDevice device, const VkAllocationCallbacks *alloc) {
  struct Device *d = find(device);
  PFN_vkDestroyDevice next = (PFN_vkDestroyDevice)d->gdpa(device, "vkDestroyDevice");
  memset(d, 0, sizeof *d);
  next(device, alloc);
}

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vkGetDeviceProcAddr(VkDevice device, const char *name) {
  if (!strcmp(name, "vkGetDeviceProcAddr")) return (PFN_vkVoidFunction)vkGetDeviceProcAddr;
  if (!strcmp(name, "vkCreateComputePipelines")) return (PFN_vkVoidFunction)CreateComputePipelines;
  if (!strcmp(name, "vkDestroyDevice")) return (PFN_vkVoidFunction)DestroyDevice;
  struct Device *d = find(device);
  return d ? d->gdpa(device, name) : NULL;
}

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vkGetInstanceProcAddr(VkInstance instance, const char *name) {
  if (!strcmp(name, "vkGetInstanceProcAddr")) return (PFN_vkVoidFunction)vkGetInstanceProcAddr;
  if (!strcmp(name, "vkCreateInstance")) return (PFN_vkVoidFunction)CreateInstance;
  if (!strcmp(name, "vkCreateDevice")) return (PFN_vkVoidFunction)CreateDevice;
  if (!strcmp(name, "vkGetDeviceProcAddr")) return (PFN_vkVoidFunction)vkGetDeviceProcAddr;
  if (!strcmp(name, "vkCreateComputePipelines")) return (PFN_vkVoidFunction)CreateComputePipelines;
  if (!strcmp(name, "vkDestroyDevice")) return (PFN_vkVoidFunction)DestroyDevice;
  return nextGipa(instance, name);
}
