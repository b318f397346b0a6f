/**
 * Dropout with a counter-based RNG: element i is kept when a hash of (seed, i) clears a threshold,
 * so the backward regenerates exactly the forward's mask from the same seed (no mask buffer).
 * Kept elements are scaled by 1/(1 − p).
 * @module
 */
import hash from "../../kernels/dropout_hash.wgsl" with { type: "text" };
import src from "../../kernels/dropout.wgsl" with { type: "text" };
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import { f32Bits, type KernelSpec } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { flatTexture, flatTextureFits } from "./flat_texture.ts";
import { grid1d } from "./grid.ts";
import { kernelClass } from "./kernel_class.ts";

const WG = 256;
const APPLY: KernelSpec = {
  name: "dropout.wgsl",
  source: hash + src,
  entry: "apply",
  bindings: ["read", "rw"],
  constants: { WG },
};
/** Four elements per invocation from a flat texture (CPU adapters, size % 4 == 0). */
const APPLY4: KernelSpec = { ...APPLY, entry: "apply4", bindings: ["texture", "rw"] };

function apply(op: string, x: Tensor, p: number, seed: number, out?: Tensor): Tensor {
  if (!(p >= 0 && p <= 1)) throw new InvalidArgumentError(`${op}: p must be in [0, 1], got ${p}`);
  if (!Number.isInteger(seed)) {
    throw new InvalidArgumentError(`${op}: seed must be an integer, got ${seed}`);
  }
  const o = out ?? x.gpu.empty(x.shape);
  if (o.size !== x.size) {
    throw new ShapeError(`${op}: out [${o.shape.join(", ")}] vs x [${x.shape.join(", ")}]`);
  }
  if (p === 0) {
    if (o !== x) x.gpu.copy(x, o);
    return o;
  }
  const threshold = Math.min(2 ** 24, Math.round(p * 2 ** 24));
  const keepScale = p === 1 ? 0 : 1 / (1 - p);
  const gpu = x.gpu;
  if (kernelClass(gpu) === "cpu" && flatTextureFits(gpu, x.size)) {
    // llvmpipe: texel fetches and vec4 stores instead of lane-by-lane storage loads and stores
    // (the texture is a copy, so out may be x)
    const t = flatTexture(x);
    const [nx, ny] = grid1d(x.size / 4, WG);
    const params = [x.size, nx, seed >>> 0, threshold, f32Bits(keepScale), t.shift];
    gpu.dispatchResources(APPLY4, params, [t.tex, o], [nx, ny]);
    gpu.textures.release(t.tex);
    return o;
  }
  const [nx, ny] = grid1d(x.size, WG);
  gpu.dispatch(APPLY, [x.size, nx, seed >>> 0, threshold, f32Bits(keepScale), 0], [x, o], [nx, ny]);
  return o;
}

/**
 * Dropout forward: y = x·keep/(1 − p) with keep a Bernoulli(1 − p) mask drawn from a hash of
 * (seed, element index); the same seed always gives the same mask. p = 0 copies x; p = 1 gives 0.
 * Use a fresh seed per call site and step.
 */
export function dropout(x: Tensor, p: number, seed: number, out?: Tensor): Tensor {
  return apply("dropout", x, p, seed, out);
}

/** Dropout backward: dx = dy·keep/(1 − p) with the mask the forward drew for the same seed. */
export function dropoutBackward(dy: Tensor, p: number, seed: number, out?: Tensor): Tensor {
  return apply("dropoutBackward", dy, p, seed, out);
}
