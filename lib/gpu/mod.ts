/**
 * The GPU runtime: re-exports of device, context, tensor and pool.
 * @module
 */
export { type AdapterDescription, describeAdapter, INSTALL_HINT, requestDevice } from "./device.ts";
export {
  type Access,
  type BindingKind,
  f32Bits,
  getGpu,
  Gpu,
  type KernelSpec,
  PARAM_SLOT_BYTES,
  type Resource,
} from "./context.ts";
export { Texture2D, TEXTURE_USAGE, TexturePool, textureSizeClass } from "./textures.ts";
export { expectShape, shapeSize, Tensor, TensorView } from "./tensor.ts";
export { BufferPool, type GpuCounters, sizeClass } from "./pool.ts";
