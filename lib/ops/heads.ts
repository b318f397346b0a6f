/**
 * Attention head layout ops: `splitHeads` copies a column block of a packed activation
 * x [B·S, W] (e.g. the K third of a fused Q/K/V projection) into the per-head layout [B·H, S, dh];
 * `mergeHeads` does the reverse for the attention context. Backward functions are the adjoint
 * copies.
 * @module
 */
import src from "../../kernels/heads.wgsl" with { type: "text" };
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import type { KernelSpec } from "../gpu/context.ts";
import { expectShape, type Tensor } from "../gpu/tensor.ts";
import { grid1d } from "./grid.ts";

const WG = 256;
const SPLIT: KernelSpec = {
  name: "heads.wgsl",
  source: src,
  entry: "split",
  bindings: ["read", "rw"],
  constants: { WG },
};
const MERGE: KernelSpec = { ...SPLIT, entry: "merge" };
/** The vec4 twin of each entry (a quarter of llvmpipe's lane-by-lane storage accesses). */
const VEC4 = new Map<KernelSpec, KernelSpec>([
  [SPLIT, { ...SPLIT, entry: "split4" }],
  [MERGE, { ...SPLIT, entry: "merge4" }],
]);

function checkDims(op: string, dims: Record<string, number>): void {
  for (const [k, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v < 0) {
      throw new InvalidArgumentError(`${op}: ${k} = ${v} must be an integer ≥ 0`);
    }
  }
}

/** Validates packed [B·S, W] against the head block and returns W. */
function packedWidth(
  op: string,
  packed: Tensor,
  B: number,
  S: number,
  H: number,
  dh: number,
  colOffset: number,
): number {
  checkDims(op, { B, S, H, dh, colOffset });
  if (packed.shape.length !== 2 || packed.shape[0] !== B * S) {
    throw new ShapeError(
      `${op}: packed tensor must be [B·S = ${B * S}, W], got [${packed.shape.join(", ")}]`,
    );
  }
  const W = packed.shape[1];
  if (colOffset + H * dh > W) {
    throw new ShapeError(
      `${op}: head block columns ${colOffset}…${
        colOffset + H * dh - 1
      } (H = ${H}, dh = ${dh}) do not fit in [${packed.shape.join(", ")}]`,
    );
  }
  return W;
}

function record(
  spec: KernelSpec,
  srcT: Tensor,
  dst: Tensor,
  B: number,
  S: number,
  H: number,
  dh: number,
  W: number,
  colOffset: number,
): void {
  // whole vec4s when every column block starts and ends on one (Params then count vec4s)
  const q = B * H * S * dh > 0 && dh % 4 === 0 && W % 4 === 0 && colOffset % 4 === 0 ? 4 : 1;
  const n = (B * H * S * dh) / q;
  const [nx, ny] = grid1d(n, WG);
  srcT.gpu.dispatch(
    q === 4 ? VEC4.get(spec)! : spec,
    [n, nx, S, H, dh / q, W / q, colOffset / q],
    [srcT, dst],
    [nx, ny],
  );
}

/**
 * Splits heads out of x [B·S, W]: head h uses columns colOffset + h·dh … colOffset + h·dh + dh − 1
 * and the result is [B·H, S, dh] with element (b·H + h)·S·dh + s·dh + k. Backward:
 * `splitHeadsBackward`.
 */
export function splitHeads(
  x: Tensor,
  B: number,
  S: number,
  H: number,
  dh: number,
  colOffset = 0,
): Tensor {
  const W = packedWidth("splitHeads", x, B, S, H, dh, colOffset);
  const out = x.gpu.empty([B * H, S, dh]);
  record(SPLIT, x, out, B, S, H, dh, W, colOffset);
  return out;
}

/**
 * Backward of `splitHeads`: writes dHeads [B·H, S, dh] into the head block of the already
 * allocated dx [B·S, W] (columns colOffset … colOffset + H·dh − 1); other columns are untouched,
 * so the Q, K and V gradients of a fused projection can be written into one dx by three calls.
 */
export function splitHeadsBackward(
  dHeads: Tensor,
  dx: Tensor,
  B: number,
  S: number,
  H: number,
  dh: number,
  colOffset = 0,
): void {
  const W = packedWidth("splitHeadsBackward", dx, B, S, H, dh, colOffset);
  expectShape("splitHeadsBackward dHeads", dHeads, [B * H, S, dh]);
  if (dHeads.buffer === dx.buffer) {
    throw new InvalidArgumentError("splitHeadsBackward: dHeads and dx must not share storage");
  }
  record(MERGE, dHeads, dx, B, S, H, dh, W, colOffset);
}

/**
 * Merges per-head context ctx [B·H, S, dh] back to [B·S, H·dh] (row b·S + s holds heads 0…H−1
 * side by side). Backward: `mergeHeadsBackward`.
 */
export function mergeHeads(ctx: Tensor, B: number, S: number, H: number): Tensor {
  checkDims("mergeHeads", { B, S, H });
  if (ctx.shape.length !== 3 || ctx.shape[0] !== B * H || ctx.shape[1] !== S) {
    throw new ShapeError(
      `mergeHeads: ctx must be [B·H = ${B * H}, S = ${S}, dh], got [${ctx.shape.join(", ")}]`,
    );
  }
  const dh = ctx.shape[2];
  const out = ctx.gpu.empty([B * S, H * dh]);
  record(MERGE, ctx, out, B, S, H, dh, H * dh, 0);
  return out;
}

/** Backward of `mergeHeads`: dOut [B·S, H·dh] → dctx [B·H, S, dh] (the same split as splitHeads). */
export function mergeHeadsBackward(dOut: Tensor, B: number, S: number, H: number): Tensor {
  checkDims("mergeHeadsBackward", { B, S, H });
  if (dOut.shape.length !== 2 || dOut.shape[0] !== B * S || H === 0 || dOut.shape[1] % H !== 0) {
    throw new ShapeError(
      `mergeHeadsBackward: dOut must be [B·S = ${B * S}, H·dh] with H = ${H}, got [${
        dOut.shape.join(", ")
      }]`,
    );
  }
  const dh = dOut.shape[1] / H;
  const out = dOut.gpu.empty([B * H, S, dh]);
  record(SPLIT, dOut, out, B, S, H, dh, H * dh, 0);
  return out;
}
