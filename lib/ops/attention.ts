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
  unrolledEntryName,
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

/** How a fused forward runs: its kernel, query rows per invocation, invocations per workgroup. */
interface Plan {
  spec: KernelSpec;
  rows: number;
  wg: number;
  /** The single-query entry (lanes over sequences, grid x = ⌈B / wg⌉). */
  q1?: boolean;
}

/**
 * The entry point for Sq query rows per sequence and head width 4·dh4, and the query rows per
 * invocation and invocations per workgroup it runs with: the unrolled entry
 * (lib/ops/attention_unrolled.ts) for the common head widths — the single-query one for Sq = 1 —,
 * else the generic one. `save`: the saving entries of `fusedAttentionSaving`.
 */
function plan(Sq: number, dh4: number, save = false): Plan {
  const bindings = ["texture", "read", "read", "rw"] as const;
  if (UNROLLED_DH4.includes(dh4)) {
    const q1 = Sq === 1;
    const R = q1 ? 1 : unrolledRows(Sq, dh4);
    const entry = unrolledEntryName(R, dh4, save, q1);
    return {
      spec: {
        name: `attention.wgsl+${entry.slice("attention_".length)}`,
        source: unrolledAttentionSource(R, dh4, save, q1),
        entry,
        bindings: save ? [...bindings, "rw", "rw"] : bindings,
      },
      rows: R,
      wg: UNROLLED_WG,
      q1,
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
  /**
   * Query rows per sequence: the first `queries` positions attend (to all S keys), default S.
   * The query-side tensors (context, statistics, their gradients) then hold B·queries rows, row
   * b·queries + i for query i of sequence b. A classifier's last layer needs only [CLS] (1).
   * Fewer than S runs only on the unrolled entries (head widths 16, 32 and 64).
   */
  queries?: number;
}

/**
 * The fused-attention shape of one layer: `H` heads of width `dh`, scale 1/√dh, queries at the
 * first `queries` positions of each sequence (default all S).
 */
export function attentionShape(
  B: number,
  S: number,
  H: number,
  dh: number,
  mode: "bert" | "distilbert",
  queries?: number,
): FusedAttentionShape {
  const s: FusedAttentionShape = { B, S, H, dh, scale: 1 / Math.sqrt(dh), mode };
  if (queries !== undefined) s.queries = queries;
  return s;
}

/** Query rows per sequence of `s` (`s.queries`, default S). */
export function queryRows(s: FusedAttentionShape): number {
  return s.queries ?? s.S;
}

/** Whether `fusedAttention` can run this shape on `gpu` (else it returns undefined). */
export function fusedAttentionApplies(gpu: Gpu, s: FusedAttentionShape): boolean {
  return kernelClass(gpu) === "cpu" && s.dh % 4 === 0 && s.dh / 4 <= MAX_DH4 && s.H >= 1 &&
    s.B >= 1 && s.S >= 1 && s.B <= gpu.limits.maxComputeWorkgroupsPerDimension &&
    (queryRows(s) === s.S || UNROLLED_DH4.includes(s.dh / 4)) &&
    flatTextureFits(gpu, s.B * s.S * 3 * s.H * s.dh);
}

/**
 * Merged attention context [B·Sq, H·dh] (Sq = `s.queries`, default S) from the packed projection
 * `qkv` [B·S, 3·H·dh] (Q, K, V blocks), the key mask [B, S] (1 = real token) and an optional head
 * mask [B·H] multiplying each head's context. Returns undefined, recording nothing, where the fused kernel
 * does not apply (GPU adapters, head widths that are not a multiple of 4 or exceed 64, shapes
 * whose texture would exceed the device limit): the caller then runs the unfused ops.
 */
export function fusedAttention(
  qkv: Tensor,
  keyMask: Tensor,
  headMask: Tensor | undefined,
  s: FusedAttentionShape,
): Tensor | undefined {
  checkFused("fusedAttention", qkv, keyMask, headMask, s);
  if (!fusedAttentionApplies(qkv.gpu, s)) return undefined;
  const out = qkv.gpu.empty([s.B * queryRows(s), s.H * s.dh]);
  runFused(qkv, keyMask, headMask, s, plan(queryRows(s), s.dh / 4), [out]);
  return out;
}

/**
 * Whether `fusedAttentionSaving` (and lib/ops/attention_backward.ts) can run this shape: a CPU
 * adapter, a head width with unrolled entries (16, 32 or 64) and textures within the limits.
 */
export function fusedAttentionSavingApplies(gpu: Gpu, s: FusedAttentionShape): boolean {
  return fusedAttentionApplies(gpu, s) && UNROLLED_DH4.includes(s.dh / 4) &&
    flatTextureFits(gpu, s.B * s.S * s.H * s.dh);
}

/**
 * The fused attention of a pass that will run its backward (lib/ops/attention_backward.ts):
 * besides the merged masked context `merged` it keeps the context before the head mask `ctx`
 * [B·Sq, H·dh] and each query row's softmax statistics `stats` [B·H·Sq, 2] (max, 1 / sum; Sq =
 * `s.queries`, default S), from which the backward recomputes the probabilities. With `dropout` (training) the probabilities
 * are dropped as lib/ops/dropout.ts drops that [B·H, S, S] tensor (the context, `ctx` included, is
 * the dropped one; the statistics are not), and the backward must get the same `dropout`.
 * Undefined where `fusedAttentionSavingApplies` does not hold. The caller releases the three
 * tensors.
 */
export function fusedAttentionSaving(
  qkv: Tensor,
  keyMask: Tensor,
  headMask: Tensor | undefined,
  s: FusedAttentionShape,
  dropout?: AttentionDropout,
): { merged: Tensor; ctx: Tensor; stats: Tensor } | undefined {
  checkFused("fusedAttentionSaving", qkv, keyMask, headMask, s);
  const drop = dropoutParams(dropout);
  const gpu = qkv.gpu;
  if (!fusedAttentionSavingApplies(gpu, s)) return undefined;
  const { B, H, dh } = s;
  const Sq = queryRows(s);
  const merged = gpu.empty([B * Sq, H * dh]);
  const ctx = gpu.empty([B * Sq, H * dh]);
  const stats = gpu.empty([B * H * Sq, 2]);
  const pl = plan(Sq, dh / 4, true);
  pl.spec = { ...pl.spec, constants: { DROPOUT: drop.on ? 1 : 0 } };
  runFused(qkv, keyMask, headMask, s, pl, [merged, ctx, stats], drop.params);
  return { merged, ctx, stats };
}

/**
 * Dropout on the attention probabilities [B·H, S, S] (training): rate `p` and the call site's
 * seed; the fused kernels draw lib/ops/dropout.ts's mask for that tensor (kernels/
 * dropout_hash.wgsl), so the result equals the unfused path's.
 */
export interface AttentionDropout {
  /** Dropout probability in [0, 1). */
  p: number;
  /** The call site's seed (an unsigned 32-bit integer). */
  seed: number;
}

/** Whether `d` drops anything, and its kernel parameters [seed, threshold, 1/(1 − p) bits]. */
export function dropoutParams(d: AttentionDropout | undefined): { on: boolean; params: number[] } {
  if (!d || d.p === 0) return { on: false, params: [0, 0, f32Bits(1)] };
  if (!(d.p > 0 && d.p < 1) || !Number.isInteger(d.seed)) {
    throw new InvalidArgumentError(
      `attention dropout: p must be in [0, 1) and the seed an integer (p ${d.p}, seed ${d.seed})`,
    );
  }
  const threshold = Math.min(2 ** 24, Math.round(d.p * 2 ** 24));
  return { on: true, params: [d.seed >>> 0, threshold, f32Bits(1 / (1 - d.p))] };
}

function checkFused(
  name: string,
  qkv: Tensor,
  keyMask: Tensor,
  headMask: Tensor | undefined,
  s: FusedAttentionShape,
): void {
  const { B, S, H, dh } = s;
  if (![B, S, H, dh].every((v) => Number.isInteger(v) && v >= 1)) {
    throw new InvalidArgumentError(`${name}: B, S, H, dh must be positive integers`);
  }
  const Sq = queryRows(s);
  if (!Number.isInteger(Sq) || Sq < 1 || Sq > S) {
    throw new InvalidArgumentError(
      `${name}: queries must be an integer in [1, S = ${S}], got ${Sq}`,
    );
  }
  if (qkv.shape.length !== 2 || qkv.shape[0] !== B * S || qkv.shape[1] !== 3 * H * dh) {
    throw new ShapeError(
      `${name}: qkv [${qkv.shape.join(", ")}] is not [B·S = ${B * S}, 3·H·dh = ${3 * H * dh}]`,
    );
  }
  if (keyMask.shape.length !== 2 || keyMask.shape[0] !== B || keyMask.shape[1] !== S) {
    throw new ShapeError(`${name}: keyMask [${keyMask.shape.join(", ")}] is not [${B}, ${S}]`);
  }
  if (headMask && headMask.size !== B * H) {
    throw new ShapeError(`${name}: headMask has ${headMask.size} values, expected B·H = ${B * H}`);
  }
}

/** Records one fused forward of `pl`'s entry writing `outs` (bindings 4…). */
function runFused(
  qkv: Tensor,
  keyMask: Tensor,
  headMask: Tensor | undefined,
  s: FusedAttentionShape,
  pl: Plan,
  outs: Tensor[],
  drop = dropoutParams(undefined).params,
): void {
  const { S, H, dh } = s;
  const gpu = qkv.gpu;
  const { tex, shift } = flatTexture(qkv);
  const params = [
    S,
    H,
    (3 * H * dh) / 4,
    shift,
    s.mode === "bert" ? 0 : 1,
    f32Bits(s.scale),
    headMask ? 1 : 0,
    ...drop,
    queryRows(s),
    s.B,
  ];
  const grid: [number, number, number] = pl.q1
    ? [Math.ceil(s.B / pl.wg), H, 1]
    : [Math.ceil(queryRows(s) / (pl.wg * pl.rows)), H, s.B];
  gpu.dispatchResources(pl.spec, params, [tex, keyMask, headMask ?? keyMask, ...outs], grid);
  gpu.textures.release(tex);
}
