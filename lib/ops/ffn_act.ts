/**
 * The FFN activation with the per-example neuron mask, and its backward with the mask gradient,
 * for passes that keep activations (training, the Fisher pass) on CPU adapters
 * (kernels/ffn_act.wgsl): the [B·S, F] operands are read as flat textures, and the backward
 * recomputes act(h) instead of keeping it. They replace, where they apply, the chain GELU → mask
 * (forward) and mask backward → per-example column dot products → GELU backward of the generic
 * ops (lib/ops/activation.ts, lib/ops/masks.ts), which llvmpipe runs through lane-by-lane storage
 * loads: one Fisher batch of the zoo's BERT shape spent ≈ 0.45 s of 1.9 s there.
 * @module
 */
import epilogueSrc from "../../kernels/matmul_epilogue.wgsl" with { type: "text" };
import src from "../../kernels/ffn_act.wgsl" with { type: "text" };
import { ShapeError } from "../errors.ts";
import type { Gpu, KernelSpec } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { flatTexture, flatTextureFits } from "./flat_texture.ts";
import { kernelClass } from "./kernel_class.ts";
import { sumRows } from "./reduce.ts";

/**
 * Φ(x) = ½(1 + erf(x/√2)) with the matmul epilogue's erf (kernels/matmul_epilogue.wgsl: two
 * minimax pieces, |error| ≤ 6e-8, one exp), as the GELU of the products' epilogue: the erf's
 * error moves GELU by at most 3e-8·|x| and its derivative by 3e-8, beside fp32 rounding (the
 * float64-reference tests hold them to 1e-6). kernels/activation.wgsl's fdlibm erf (three
 * rationals, four divisions and two exps per value, all evaluated under llvmpipe's lane masks) took
 * 17% of a Fisher pass's dispatch time in these two kernels.
 */
const ERF = epilogueSrc.slice(
  epilogueSrc.indexOf("// erf(x) for f32"),
  epilogueSrc.indexOf("// Exact (erf) GELU"),
) + `
fn normal_cdf(x: f32) -> f32 {
  return 0.5 * (1.0 + erf_f32(x * 0.70710678118654752));
}
`;

const SOURCE = ERF + src;
const WG = 64;

/** Activations the fused FFN kernels implement. */
export type FfnActivation = "gelu" | "relu";

function spec(
  entry: "ffn_act_fwd" | "ffn_act_bwd",
  act: FfnActivation,
  masked: boolean,
  bias = false,
) {
  const s: KernelSpec = {
    name: "ffn_act.wgsl",
    source: SOURCE,
    entry,
    bindings: ["texture", "texture", "read", "rw", "rw", "rw"],
    constants: { ACT: act === "relu" ? 2 : 1, MASKED: masked ? 1 : 0, BIAS: bias ? 1 : 0 },
  };
  return s;
}

/**
 * Whether the fused FFN activation applies to a pre-activation of `size` values in rows of F
 * on `gpu`: a CPU adapter, F % 4 == 0, and a flat texture within the device limits.
 */
export function ffnActApplies(gpu: Gpu, size: number, F: number): boolean {
  return kernelClass(gpu) === "cpu" && F > 0 && F % 4 === 0 && size > 0 &&
    flatTextureFits(gpu, size);
}

function check(name: string, h: Tensor, mask: Tensor | undefined, S: number): [number, number] {
  const F = h.shape[h.shape.length - 1];
  const rows = h.size / F;
  if (!(S >= 1 && Number.isInteger(S) && rows % S === 0)) {
    throw new ShapeError(`${name}: ${rows} rows are not whole examples of S = ${S}`);
  }
  const B = rows / S;
  if (mask && mask.size !== B * F) {
    throw new ShapeError(`${name}: mask has ${mask.size} values, expected B·F = ${B * F}`);
  }
  return [B, F];
}

/**
 * zm = act(h) ∘ mask[b] (act(h) without a mask): h [B·S, F], mask [B, F] (example b = row / S).
 * Undefined, recording nothing, where `ffnActApplies` does not hold. The caller releases zm.
 */
export function ffnActivation(
  h: Tensor,
  mask: Tensor | undefined,
  S: number,
  act: FfnActivation,
): Tensor | undefined {
  const [B, F] = check("ffnActivation", h, mask, S);
  const gpu = h.gpu;
  if (!ffnActApplies(gpu, h.size, F)) return undefined;
  const n4 = h.size / 4;
  const groups = Math.ceil(n4 / WG);
  const maxWg = gpu.limits.maxComputeWorkgroupsPerDimension;
  const nx = Math.min(groups, maxWg), ny = Math.ceil(groups / nx);
  if (ny > maxWg) return undefined;
  const t = flatTexture(h);
  const zm = gpu.empty(h.shape);
  gpu.dispatchResources(
    spec("ffn_act_fwd", act, mask !== undefined),
    [n4, F / 4, S, nx, t.shift, B],
    [t.tex, t.tex, mask ?? h, zm, zm, zm],
    [nx, ny],
  );
  gpu.textures.release(t.tex);
  return zm;
}

/**
 * Backward of `ffnActivation`: from dzm = ∂loss/∂zm and h, dh = act'(h) ∘ mask[b] ∘ dzm and, with
 * a mask, the per-example mask gradient ds [B, F] = Σ_t dzm ∘ act(h) over each example's rows;
 * with `biasGrad`, also db [F] = Σ_rows dh (the gradient of the bias before the activation),
 * summed per example in the same pass and then over the B examples — instead of a column sum
 * over all B·S rows of dh. Undefined where `ffnActApplies` does not hold. The caller releases
 * dh, ds and db.
 */
export function ffnActivationBackward(
  dzm: Tensor,
  h: Tensor,
  mask: Tensor | undefined,
  S: number,
  act: FfnActivation,
  biasGrad = false,
): { dh: Tensor; ds?: Tensor; db?: Tensor } | undefined {
  const [B, F] = check("ffnActivationBackward", h, mask, S);
  if (dzm.size !== h.size) {
    throw new ShapeError(`ffnActivationBackward: dzm has ${dzm.size} values, h ${h.size}`);
  }
  const gpu = h.gpu;
  if (!ffnActApplies(gpu, h.size, F)) return undefined;
  const lanes = (B * F) / 4;
  if (Math.ceil(lanes / WG) > gpu.limits.maxComputeWorkgroupsPerDimension) return undefined;
  const th = flatTexture(h), td = flatTexture(dzm);
  const dh = gpu.empty(h.shape);
  const ds = mask ? gpu.empty([B, F]) : undefined;
  const dbp = biasGrad ? gpu.empty([B, F]) : undefined;
  gpu.dispatchResources(
    spec("ffn_act_bwd", act, mask !== undefined, biasGrad),
    [h.size / 4, F / 4, S, 0, th.shift, B],
    [th.tex, td.tex, mask ?? h, dh, ds ?? dh, dbp ?? dh],
    [Math.ceil(lanes / WG)],
  );
  gpu.textures.release(th.tex);
  gpu.textures.release(td.tex);
  if (!dbp) return { dh, ds };
  const db = sumRows(dbp);
  dbp.release();
  return { dh, ds, db };
}
