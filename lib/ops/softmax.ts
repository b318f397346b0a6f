/**
 * Attention softmax with scale and key padding mask fused, and its backward. Scores are
 * [B·H, Sq, Sk] (row = query, column = key); the key mask is [B, Sk] with 1 for real tokens and 0
 * for padding. Rows are reduced in a fixed order (deterministic).
 * @module
 */
import src from "../../kernels/softmax.wgsl" with { type: "text" };
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import { f32Bits, type KernelSpec } from "../gpu/context.ts";
import { shapeStr, type Tensor } from "../gpu/tensor.ts";
import { grid1d } from "./grid.ts";
import { kernelClass } from "./kernel_class.ts";

const spec = (
  entry: string,
  WG: number,
  bindings: KernelSpec["bindings"] = ["read", "read", "rw"],
): KernelSpec => ({
  name: "softmax.wgsl",
  source: src,
  entry,
  bindings,
  constants: { WG },
});
/** Rows per workgroup of the CPU-class kernels (one invocation per row). */
const CPU_ROWS_WG = 64;
const rowWg = (cols: number) => (cols <= 32 ? 32 : cols <= 64 ? 64 : cols <= 128 ? 128 : 256);

/**
 * P = softmax(scale·scores + mask) over the last dimension. `scores` is [B·H, Sq, Sk] (any shape
 * whose last two dimensions are Sq, Sk), `keyMask` is [B, Sk] f32. Mode "bert" (default) adds
 * (1 − mask)·torch.finfo(float32).min as Hugging Face BERT does; mode "distilbert" replaces
 * masked scaled scores by that minimum (masked_fill). A row whose keys are all masked comes out
 * uniform, as in Hugging Face.
 */
export function softmaxMasked(
  scores: Tensor,
  keyMask: Tensor,
  heads: number,
  scale: number,
  mode: "bert" | "distilbert" = "bert",
  out?: Tensor,
): Tensor {
  const rank = scores.shape.length;
  if (rank < 2) {
    throw new ShapeError(`softmaxMasked: scores ${shapeStr(scores)} must be [B·H, Sq, Sk]`);
  }
  if (!Number.isInteger(heads) || heads < 1) {
    throw new InvalidArgumentError(`softmaxMasked: heads must be a positive integer, got ${heads}`);
  }
  if (mode !== "bert" && mode !== "distilbert") {
    throw new InvalidArgumentError(`softmaxMasked: mode must be "bert" or "distilbert"`);
  }
  const sk = scores.shape[rank - 1];
  const sq = scores.shape[rank - 2];
  const rows = sk === 0 ? 0 : scores.size / sk;
  const batchHeads = sq === 0 ? 0 : rows / sq;
  const batch = batchHeads / heads;
  if (
    keyMask.shape.length !== 2 || keyMask.shape[1] !== sk || keyMask.shape[0] * heads !== batchHeads
  ) {
    throw new ShapeError(
      `softmaxMasked: keyMask ${shapeStr(keyMask)} does not fit scores ${
        shapeStr(scores)
      } with ${heads} heads (expected [${batch}, ${sk}])`,
    );
  }
  const o = out ?? scores.gpu.empty(scores.shape);
  if (o.size !== scores.size) {
    throw new ShapeError(`softmaxMasked: out ${shapeStr(o)} vs scores ${shapeStr(scores)}`);
  }
  const cpu = kernelClass(scores.gpu) === "cpu";
  const [nx, ny] = grid1d(rows, cpu ? CPU_ROWS_WG : 1);
  scores.gpu.dispatch(
    cpu ? spec("masked_forward_rows", CPU_ROWS_WG) : spec("masked_forward", rowWg(sk)),
    [rows, sk, nx, sq, heads, mode === "bert" ? 0 : 1, f32Bits(scale)],
    [scores, keyMask, o],
    [nx, ny],
  );
  return o;
}

/** The mask a `softmaxMasked` call used, for an exact backward in "distilbert" mode. */
export interface SoftmaxMaskInfo {
  /** Key mask [B, Sk] (1 real, 0 padding). */
  keyMask: Tensor;
  /** Number of heads H. */
  heads: number;
  /** The forward's mode. */
  mode: "bert" | "distilbert";
}

/**
 * Backward of `softmaxMasked` with respect to the raw scores: dScores = scale·P∘(dP − rowsum(dP∘P))
 * over the last dimension (masked keys have P = 0 and get 0). Only in a row whose keys are all
 * masked does the mode matter: "bert" (additive mask) passes the gradient through, "distilbert"
 * (masked_fill) cuts it; pass `masked` with mode "distilbert" to get that exactly.
 */
export function softmaxBackward(
  dP: Tensor,
  P: Tensor,
  scale: number,
  masked?: SoftmaxMaskInfo,
  out?: Tensor,
): Tensor {
  if (dP.size !== P.size || P.shape.length < 2) {
    throw new ShapeError(`softmaxBackward: dP ${shapeStr(dP)} and P ${shapeStr(P)} differ`);
  }
  const cols = P.shape[P.shape.length - 1];
  const sq = P.shape[P.shape.length - 2];
  const rows = cols === 0 ? 0 : P.size / cols;
  const heads = masked?.heads ?? 1;
  const cut = masked?.mode === "distilbert";
  if (cut && masked && masked.keyMask.size * heads * sq !== P.size) {
    throw new ShapeError(
      `softmaxBackward: keyMask ${shapeStr(masked.keyMask)} does not fit P ${
        shapeStr(P)
      } with ${heads} heads`,
    );
  }
  const o = out ?? P.gpu.empty(P.shape);
  if (o.size !== P.size) {
    throw new ShapeError(`softmaxBackward: out ${shapeStr(o)} vs P ${shapeStr(P)}`);
  }
  const cpu = kernelClass(P.gpu) === "cpu";
  const [nx, ny] = grid1d(rows, cpu ? CPU_ROWS_WG : 1);
  P.gpu.dispatch(
    spec(cpu ? "backward_rows" : "backward", cpu ? CPU_ROWS_WG : rowWg(cols), [
      "read",
      "read",
      "read",
      "rw",
    ]),
    [rows, cols, nx, sq, heads, cut ? 1 : 0, f32Bits(scale)],
    [dP, P, cut && masked ? masked.keyMask : P, o],
    [nx, ny],
  );
  return o;
}
