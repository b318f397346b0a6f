/**
 * The masked residual target of mask tuning (METHOD.md §6): R = (T − X − 1·bᵀ) ∘ m, with m a
 * per-row 0/1 mask (padding or non-[CLS] rows out), in one kernel reading T and X as flat textures
 * (kernels/residual_rows.wgsl) — it replaces a subtraction, a bias broadcast and a row scaling
 * that llvmpipe runs through lane-by-lane storage loads. Falls back to those ops where the
 * texture path does not apply (C % 4 != 0, tensors past the texture limits).
 * @module
 */
import src from "../../kernels/residual_rows.wgsl" with { type: "text" };
import { ShapeError } from "../errors.ts";
import type { KernelSpec } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { axpby, scale } from "./elementwise.ts";
import { flatTexture, flatTextureFits } from "./flat_texture.ts";
import { scaleRows } from "./masks.ts";
import { addRowVector } from "./rows.ts";

const SPEC: KernelSpec = {
  name: "residual_rows.wgsl",
  source: src,
  entry: "residual_rows",
  bindings: ["texture", "texture", "read", "read", "rw"],
};

/**
 * out[r, c] = (t[r, c] − x[r, c] − bias[c]) · rowMask[r] for t, x [R, C], bias [C] and rowMask
 * [R]. The caller releases the result.
 */
export function residualRows(t: Tensor, x: Tensor, bias: Tensor, rowMask: Tensor): Tensor {
  const [R, C] = t.shape;
  if (
    t.shape.length !== 2 || x.shape.length !== 2 || x.shape[0] !== R || x.shape[1] !== C ||
    bias.size !== C || rowMask.size !== R
  ) {
    throw new ShapeError(
      `residualRows: t [${t.shape}], x [${x.shape}], bias [${bias.shape}] and rowMask ` +
        `[${rowMask.shape}] do not match`,
    );
  }
  const gpu = t.gpu;
  const n4 = t.size / 4;
  const groups = Math.ceil(n4 / 64);
  const maxWg = gpu.limits.maxComputeWorkgroupsPerDimension;
  const nx = Math.min(groups, maxWg), ny = Math.ceil(groups / Math.max(1, nx));
  if (C % 4 !== 0 || t.size === 0 || !flatTextureFits(gpu, t.size) || ny > maxWg) {
    const r0 = axpby(t, x, 1, -1);
    const negB = scale(bias, -1);
    const r1 = addRowVector(r0, negB);
    const out = scaleRows(r1, rowMask);
    for (const v of [r0, negB, r1]) v.release();
    return out;
  }
  const tt = flatTexture(t), tx = flatTexture(x);
  const out = gpu.empty(t.shape);
  gpu.dispatchResources(SPEC, [n4, C / 4, nx, tt.shift], [tt.tex, tx.tex, bias, rowMask, out], [
    nx,
    ny,
  ]);
  gpu.textures.release(tt.tex);
  gpu.textures.release(tx.tex);
  return out;
}
