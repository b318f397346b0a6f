/**
 * Adapter and device acquisition. Prefers a real GPU and falls back to a CPU adapter (Mesa
 * llvmpipe/lavapipe); raises `NoAdapterError` with an install hint when there is none.
 * @module
 */
import { NoAdapterError } from "../errors.ts";

/** What fastprune knows about the adapter it runs on. */
export interface AdapterDescription {
  /** Vendor string reported by the adapter (may be empty). */
  vendor: string;
  /** Architecture string reported by the adapter (may be empty). */
  architecture: string;
  /** Device string reported by the adapter (may be empty). */
  device: string;
  /** Free-form description reported by the adapter (may be empty). */
  description: string;
  /** True for software adapters (llvmpipe, lavapipe, SwiftShader, WARP) or a fallback adapter. */
  isCpu: boolean;
  /** Adapter class used to pick kernel presets: `"cpu"` or `"gpu"`. */
  kind: "cpu" | "gpu";
  /** One-line human-readable summary, used in benchmark and report headers. */
  summary: string;
}

/** The one-line hint printed when no adapter exists. */
export const INSTALL_HINT =
  "no WebGPU adapter found: install a Vulkan driver (Debian/Ubuntu: apt-get install -y mesa-vulkan-drivers libvulkan1) or run on a machine with a GPU";

const CPU_NAMES = /llvmpipe|lavapipe|swiftshader|warp|software|cpu/i;

/** Describes an adapter from its `info` fields. */
export function describeAdapter(adapter: GPUAdapter): AdapterDescription {
  const info = adapter.info ?? ({} as GPUAdapterInfo);
  const vendor = info.vendor ?? "";
  const architecture = info.architecture ?? "";
  const device = info.device ?? "";
  const description = info.description ?? "";
  const fallback = (info as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
    (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false;
  const text = [vendor, architecture, device, description].join(" ");
  // Deno reports empty info strings for Mesa's software rasterisers; an adapter with no
  // information at all on a machine without a GPU is treated as CPU (checked by probing /dev/dri
  // would be fragile), unless FASTPRUNE_ADAPTER_KIND says otherwise.
  const override = Deno.env.get("FASTPRUNE_ADAPTER_KIND");
  let isCpu = fallback || CPU_NAMES.test(text) || text.trim() === "";
  if (override === "gpu") isCpu = false;
  if (override === "cpu") isCpu = true;
  const parts = [vendor, architecture, device, description].filter((s) => s !== "");
  const name = parts.length > 0 ? parts.join(" / ") : "unnamed adapter";
  return {
    vendor,
    architecture,
    device,
    description,
    isCpu,
    kind: isCpu ? "cpu" : "gpu",
    summary: `${name} (${isCpu ? "CPU" : "GPU"} class)`,
  };
}

/** Requests the best adapter and a device with the adapter's maximum compute limits. */
export async function requestDevice(): Promise<
  { adapter: GPUAdapter; device: GPUDevice; description: AdapterDescription }
> {
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) {
    throw new NoAdapterError(INSTALL_HINT);
  }
  quietRuntimeDirWarning();
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch {
    adapter = null;
  }
  if (!adapter) throw new NoAdapterError(INSTALL_HINT);
  const l = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    maxDynamicUniformBuffersPerPipelineLayout: l.maxDynamicUniformBuffersPerPipelineLayout,
    maxTextureDimension2D: l.maxTextureDimension2D,
  };
  const device = await adapter.requestDevice({ requiredLimits });
  return { adapter, device, description: describeAdapter(adapter) };
}

/**
 * Mesa's window-system code prints "XDG_RUNTIME_DIR is invalid or not set" when the variable is
 * missing, though compute never needs it; point it at the temp directory before the adapter
 * request (only when unset, and only if env access is allowed).
 */
function quietRuntimeDirWarning(): void {
  try {
    if (!Deno.env.get("XDG_RUNTIME_DIR")) Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
  } catch {
    // no --allow-env: leave it
  }
}
