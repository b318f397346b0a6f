/**
 * Fused attention for inference on CPU adapters (`kernels/attention.wgsl`): from the packed Q/K/V
 * projection straight to the merged, head-masked context, without the per-head copies, the
 * [B·H, S, S] scores and the separate softmax of the unfused path (lib/model/encoder.ts). It has
 * no backward: passes that keep activations for a backward, or train with dropout, use the
 * unfused ops. Same results as the unfused path up to fp32 rounding (online softmax).
 * @module
 */
import src from "../../kernels/attention.wgsl" with { type: "text" };
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import { f32Bits, type Gpu, type KernelSpec } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { flatTexture, flatTextureFits } from "./flat_texture.ts";
import { kernelClass } from "./kernel_class.ts";
import {
  UNROLLED_DH4,
  UNROLLED_WG,
  unrolledAttentionSource,
  unrolledRows,
} from "./attention_unrolled.ts";

const WG = 32;
const MAX_DH4 = 16;

/**
 * Query rows per invocation for a head of dh4 = dh/4 texels: 32 / dh4 (2, 4 or 8), so every
 * invocation keeps about 2·32 query and accumulator texels live (kernels/attention.wgsl).
 */
function rowsPerInvocation(dh4: number): 2 | 4 | 8 {
  return dh4 > 8 ? 2 : dh4 > 4 ? 4 : 8;
}

/**
 * The entry point for sequence length S and head width 4·dh4, and the query rows per invocation
 * and invocations per workgroup it runs with: the unrolled entry (lib/ops/attention_unrolled.ts)
 * for the common head widths, else the generic one.
 */
function plan(S: number, dh4: number): { spec: KernelSpec; rows: number; wg: number } {
  const bindings = ["texture", "read", "read", "rw"] as const;
  if (UNROLLED_DH4.includes(dh4)) {
    const R = unrolledRows(S, dh4);
    return {
      spec: {
        name: `attention.wgsl+r${R}_d${dh4}`,
        source: unrolledAttentionSource(R, dh4),
        entry: `attention_r${R}_d${dh4}`,
        bindings,
      },
      rows: R,
      wg: UNROLLED_WG,
    };
  }
  const R = rowsPerInvocation(dh4);
  return {
    spec: {
      name: "attention.wgsl",
      source: src,
      entry: `attention_r${R}`,
      bindings,
      constants: { WG, DH4: dh4 },
    },
    rows: R,
    wg: WG,
  };
}

/** Shape of a fused attention call. */
export interface FusedAttentionShape {
  /** Batch size. */
  B: number;
  /** Sequence length. */
  S: number;
  /** Heads in this layer (≥ 1). */
  H: number;
  /** Head width (a multiple of 4, at most 64). */
  dh: number;
  /** Score scale, 1/√dh. */
  scale: number;
  /** Mask convention: "bert" (additive f32 min) or "distilbert" (masked_fill). */
  mode: "bert" | "distilbert";
}

/** The fused-attention shape of one layer: `H` heads of width `dh`, scale 1/√dh. */
export function attentionShape(
  B: number,
  S: number,
  H: number,
  dh: number,
  mode: "bert" | "distilbert",
): FusedAttentionShape {
  return { B, S, H, dh, scale: 1 / Math.sqrt(dh), mode };
}

/** Whether `fusedAttention` can run this shape on `gpu` (else it returns undefined). */
export function fusedAttentionApplies(gpu: Gpu, s: FusedAttentionShape): boolean {
  return kernelClass(gpu) === "cpu" && s.dh % 4 === 0 && s.dh / 4 <= MAX_DH4 && s.H >= 1 &&
    s.B >= 1 && s.S >= 1 && s.B <= gpu.limits.maxComputeWorkgroupsPerDimension &&
    flatTextureFits(gpu, s.B * s.S * 3 * s.H * s.dh);
}

/**
 * Merged attention context [B·S, H·dh] from the packed projection `qkv` [B·S, 3·H·dh]
 * (Q, K, V blocks), the key mask [B, S] (1 = real token) and an optional head mask [B·H]
 * multiplying each head's context. Returns undefined, recording nothing, where the fused kernel
 * does not apply (GPU adapters, head widths that are not a multiple of 4 or exceed 64, shapes
 * whose texture would exceed the device limit): the caller then runs the unfused ops.
 */
export function fusedAttention(
  qkv: Tensor,
  keyMask: Tensor,
  headMask: Tensor | undefined,
  s: FusedAttentionShape,
): Tensor | undefined {
  const { B, S, H, dh } = s;
  if (![B, S, H, dh].every((v) => Number.isInteger(v) && v >= 1)) {
    throw new InvalidArgumentError(`fusedAttention: B, S, H, dh must be positive integers`);
  }
  if (qkv.shape.length !== 2 || qkv.shape[0] !== B * S || qkv.shape[1] !== 3 * H * dh) {
    throw new ShapeError(
      `fusedAttention: qkv [${qkv.shape.join(", ")}] is not [B·S = ${B * S}, 3·H·dh = ${
        3 * H * dh
      }]`,
    );
  }
  if (keyMask.shape.length !== 2 || keyMask.shape[0] !== B || keyMask.shape[1] !== S) {
    throw new ShapeError(
      `fusedAttention: keyMask [${keyMask.shape.join(", ")}] is not [${B}, ${S}]`,
    );
  }
  if (headMask && headMask.size !== B * H) {
    throw new ShapeError(
      `fusedAttention: headMask has ${headMask.size} values, expected B·H = ${B * H}`,
    );
  }
  const gpu = qkv.gpu;
  if (!fusedAttentionApplies(gpu, s)) return undefined;
  const { tex, shift } = flatTexture(qkv);
  const out = gpu.empty([B * S, H * dh]);
  const params = [
    S,
    H,
    (3 * H * dh) / 4,
    shift,
    s.mode === "bert" ? 0 : 1,
    f32Bits(s.scale),
    headMask ? 1 : 0,
  ];
  const { spec, rows, wg } = plan(S, dh / 4);
  gpu.dispatchResources(spec, params, [tex, keyMask, headMask ?? keyMask, out], [
    Math.ceil(S / (wg * rows)),
    H,
    B,
  ]);
  gpu.textures.release(tex);
  return out;
}
