/**
 * Pooled `rgba32float` 2-D textures, used as matmul operands (Mesa llvmpipe fetches texels
 * through its SIMD texture path, several times faster than its lane-by-lane storage loads; GPUs
 * through their texture caches). Textures are rounded up to a size class and reused after `release`, so a
 * steady state creates none. A texture released while commands that read it are still being
 * recorded may be handed out again at once: every later use is recorded after them, and WebGPU
 * orders commands of one queue (textures are only ever written by recorded commands, never by
 * `queue.writeTexture`).
 * @module
 */

/** Usage flags of every pooled texture: sampled reads, storage writes and copies into it. */
export const TEXTURE_USAGE = GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.STORAGE_BINDING |
  GPUTextureUsage.COPY_DST;

/** One pooled rgba32float texture (one texel = 4 floats) and its default view. */
export class Texture2D {
  /** The view bound by `Gpu.dispatch`. */
  readonly view: GPUTextureView;
  /** Creates the wrapper; use `TexturePool.acquire`. */
  constructor(readonly texture: GPUTexture, readonly id: number) {
    this.view = texture.createView();
  }
  /** Width in texels. */
  get width(): number {
    return this.texture.width;
  }
  /** Height in rows. */
  get height(): number {
    return this.texture.height;
  }
}

/** Rounds a texture extent up to its size class: a multiple of 16 below 256, else of 64. */
export function textureSizeClass(n: number): number {
  const step = n <= 256 ? 16 : 64;
  return Math.max(step, Math.ceil(n / step) * step);
}

/** A pool of rgba32float textures keyed by size class (width × height). */
export class TexturePool {
  #free = new Map<string, Texture2D[]>();
  #nextId = 1;
  /** Textures created so far (tests use it to prove a steady state creates none). */
  created = 0;

  /** Creates a pool on `device`; `maxDim` is the device's maxTextureDimension2D. */
  constructor(readonly device: GPUDevice, readonly maxDim: number) {}

  /**
   * A texture of at least `width` × `height` texels (rounded up to size classes, capped at the
   * device limit). The caller checks the request against `maxDim` first.
   */
  acquire(width: number, height: number): Texture2D {
    const w = Math.min(this.maxDim, textureSizeClass(width));
    const h = Math.min(this.maxDim, textureSizeClass(height));
    const key = `${w}x${h}`;
    const list = this.#free.get(key);
    if (list && list.length > 0) {
      // the free texture with the smallest id: a repeated sequence of acquires and releases then
      // gets the same textures every time, whatever the order of the releases (cached bind groups
      // stay valid)
      let best = 0;
      for (let i = 1; i < list.length; i++) if (list[i].id < list[best].id) best = i;
      return list.splice(best, 1)[0];
    }
    const texture = this.device.createTexture({
      size: [w, h],
      format: "rgba32float",
      usage: TEXTURE_USAGE,
    });
    this.created++;
    return new Texture2D(texture, this.#nextId++);
  }

  /** Returns a texture to the pool. */
  release(t: Texture2D): void {
    const key = `${t.width}x${t.height}`;
    const list = this.#free.get(key);
    if (list) list.push(t);
    else this.#free.set(key, [t]);
  }

  /** Destroys every free texture. */
  trim(): void {
    for (const list of this.#free.values()) for (const t of list) t.texture.destroy();
    this.#free.clear();
  }
}
