/**
 * AdamW optimizer step, in place on GPU tensors, with the exact update of torch.optim.AdamW
 * (decoupled weight decay, bias-corrected moments, step counted from 1, amsgrad off).
 * @module
 */
import src from "../../kernels/adamw.wgsl" with { type: "text" };
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import { f32Bits, type KernelSpec } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { grid1d } from "./grid.ts";

const WG = 256;
const STEP: KernelSpec = {
  name: "adamw.wgsl",
  source: src,
  entry: "step",
  bindings: ["rw", "read", "rw", "rw"],
  constants: { WG },
};
const STEP4: KernelSpec = { ...STEP, entry: "step4" };

/** Hyperparameters of one AdamW step; `step` is the 1-based step count after this update. */
export interface AdamWOptions {
  /** Learning rate. */
  lr: number;
  /** Decay of the first moment. */
  beta1: number;
  /** Decay of the second moment. */
  beta2: number;
  /** Added to the bias-corrected √v. */
  eps: number;
  /** Decoupled weight decay (p ← p − lr·wd·p). */
  weightDecay: number;
  /** Step number, counting from 1. */
  step: number;
  /**
   * Multiplies the gradient before the update (default 1): torch's clip_grad_norm_ coefficient,
   * applied here instead of by a separate pass over every gradient (`grad` is left unchanged).
   */
  gradScale?: number;
}

/**
 * One AdamW step in place: param ← param·(1 − lr·wd), m ← β1·m + (1 − β1)·g,
 * v ← β2·v + (1 − β2)·g², param ← param − lr/(1 − β1^t)·m/(√v/√(1 − β2^t) + eps), as
 * torch.optim.AdamW. `param`, `grad`, `m`, `v` have the same size; m and v start at zero.
 */
export function adamwStep(
  param: Tensor,
  grad: Tensor,
  m: Tensor,
  v: Tensor,
  o: AdamWOptions,
): void {
  for (const [name, t] of [["grad", grad], ["m", m], ["v", v]] as const) {
    if (t.size !== param.size) {
      throw new ShapeError(
        `adamwStep: ${name} [${t.shape.join(", ")}] vs param [${param.shape.join(", ")}]`,
      );
    }
  }
  if (!Number.isInteger(o.step) || o.step < 1) {
    throw new InvalidArgumentError(`adamwStep: step must be an integer ≥ 1, got ${o.step}`);
  }
  if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1)) {
    throw new InvalidArgumentError(`adamwStep: betas must be in [0, 1)`);
  }
  const stepSize = o.lr / (1 - o.beta1 ** o.step);
  const bc2Sqrt = Math.sqrt(1 - o.beta2 ** o.step);
  // sizes that are a multiple of 4 update vec4s (a quarter of llvmpipe's lane-by-lane accesses)
  const v4 = param.size % 4 === 0;
  const n = v4 ? param.size / 4 : param.size;
  const [nx, ny] = grid1d(n, WG);
  param.gpu.dispatch(
    v4 ? STEP4 : STEP,
    [
      n,
      nx,
      f32Bits(1 - o.lr * o.weightDecay),
      f32Bits(o.beta1),
      f32Bits(o.beta2),
      f32Bits(stepSize),
      f32Bits(bc2Sqrt),
      f32Bits(o.eps),
      f32Bits(1 - o.beta1),
      f32Bits(1 - o.beta2),
      f32Bits(o.gradScale ?? 1),
    ],
    [param, grad, m, v],
    [nx, ny],
  );
}
