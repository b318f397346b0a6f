/**
 * Shared types of the CPU pruning stages: model dimensions, binary/real mask sets and the error a
 * budget too small for any model raises.
 * @module
 */
import { FastpruneError } from "../errors.ts";

/**
 * The prunable dimensions of an encoder: L layers, H heads of width dh, hidden size d and FFN
 * width F (BERT-base: 12, 12, 3072, 768, 64).
 */
export interface ModelDims {
  /** Number of encoder layers. */
  L: number;
  /** Attention heads per layer. */
  H: number;
  /** FFN width (neurons per layer). */
  F: number;
  /** Hidden size. */
  d: number;
  /** Head width d/H. */
  dh: number;
}

/**
 * Head and FFN masks of a whole model in flat layouts: `head[l*H + h]` and `ffn[l*F + j]`. Values
 * are 1/0 after search and rearrangement and real after tuning.
 */
export interface MaskSet {
  /** Head mask, length L·H, indexed l·H + h. */
  head: Float64Array;
  /** FFN neuron mask, length L·F, indexed l·F + j. */
  ffn: Float64Array;
  /** Number of layers. */
  L: number;
  /** Heads per layer. */
  H: number;
  /** Neurons per layer. */
  F: number;
}

/**
 * The budget (FLOPs or latency) is too small for any mask that keeps at least one attention head:
 * raise the constraint `c`.
 */
export class ConstraintTooSmallError extends FastpruneError {}
