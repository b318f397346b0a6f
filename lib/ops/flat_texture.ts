/**
 * Flat texture views of storage tensors for CPU-adapter inference kernels: a tensor of `size`
 * floats (size % 4 == 0) copied into a pooled rgba32float texture in row-major texel order, texel
 * t at (t mod 2^shift, t >> shift), the last row possibly partial. Mesa llvmpipe fetches texels
 * through its SIMD path, several times faster than its lane-by-lane storage loads, and the copy
 * itself is a buffer-to-texture copy command (no shader pass).
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";
import type { Gpu } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { Texture2D } from "../gpu/textures.ts";

/**
 * The texture width (texels, a power of two ≥ 16) whose rows hold `total` floats within the
 * device limit `maxDim` (the last row may be partial), or 0 when none does.
 */
export function flatTextureWidth(total: number, maxDim: number): number {
  for (let w = 16; w <= maxDim; w *= 2) if (Math.ceil(total / (4 * w)) <= maxDim) return w;
  return 0;
}

/** Whether `flatTexture` can hold a tensor of `size` floats on `gpu`. */
export function flatTextureFits(gpu: Gpu, size: number): boolean {
  return size % 4 === 0 && size > 0 && flatTextureWidth(size, gpu.textures.maxDim) > 0;
}

/**
 * Records the copy of `src` into a pooled texture and returns it with its `shift` (log2 of the
 * width in texels). The caller releases the texture to `gpu.textures` once its reads are
 * recorded. Raises `InvalidArgumentError` when the tensor does not fit (`flatTextureFits`).
 */
export function flatTexture(src: Tensor): { tex: Texture2D; shift: number } {
  const gpu = src.gpu;
  if (!flatTextureFits(gpu, src.size)) {
    throw new InvalidArgumentError(
      `flatTexture: ${src.size} floats (need a positive multiple of 4 within the texture limit)`,
    );
  }
  const w = flatTextureWidth(src.size, gpu.textures.maxDim);
  const rows = Math.floor(src.size / (4 * w)), rest = (src.size - rows * 4 * w) / 4;
  const tex = gpu.textures.acquire(w, rows + (rest > 0 ? 1 : 0));
  gpu.copyToTexture(src, tex, w, rows);
  if (rest > 0) gpu.copyToTexture(src, tex, rest, 1, rows * 4 * w, rows);
  return { tex, shift: Math.log2(tex.width) };
}

/**
 * `flatTexture` for a tensor that many passes read unchanged (a parameter): the copy is recorded
 * once and kept with the tensor (`Gpu.holdTexture`) until a write to its buffer is recorded or it
 * is released, then made again on the next call. The caller must not release the texture.
 */
export function heldFlatTexture(src: Tensor): { tex: Texture2D; shift: number } {
  const h = src.gpu.heldTexture(src);
  if (h) return h;
  const f = flatTexture(src);
  return src.gpu.holdTexture(src, f.tex, f.shift);
}
