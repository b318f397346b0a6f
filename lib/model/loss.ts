/**
 * Task losses with Hugging Face's conventions, per example: cross-entropy (ignore_index −100),
 * squared error for regression, and span QA (½(CE_start + CE_end), positions clamped to [0, S]
 * and S ignored; optionally excluding padding from the softmax as METHOD.md §3 asks for Fisher).
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";
import type { Tensor } from "../gpu/tensor.ts";
import {
  crossEntropy,
  crossEntropyBackward,
  mseLoss,
  mseLossBackward,
  spanLoss,
  spanLossBackward,
} from "../ops/loss.ts";
import type { HeadState } from "./heads.ts";
import type { BatchTensors } from "./inputs.ts";
import type { Model } from "./model.ts";

/** Loss options. */
export interface LossOptions {
  /** QA: exclude padding positions from the start/end softmax (METHOD.md §3). Default false (HF). */
  qaMaskPads?: boolean;
}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) {
    throw new InvalidArgumentError(`the loss needs ${what}: give labels with the batch`);
  }
  return v;
}

/** Per-example losses [B]. */
export function taskLoss(model: Model, h: HeadState, b: BatchTensors, o: LossOptions = {}): Tensor {
  const head = model.config.head;
  if (head === "qa") {
    return spanLoss(
      h.start!,
      h.end!,
      need(b.startPos, "start_positions"),
      need(b.endPos, "end_positions"),
      o.qaMaskPads ? b.keyMask : undefined,
    );
  }
  if (head === "regression") return mseLoss(h.logits!, need(b.targets, "regression targets"));
  return crossEntropy(h.logits!, need(b.labels, "labels"));
}

/** Gradient of scale·Σ_b loss_b with respect to the head outputs. */
export function taskLossBackward(
  model: Model,
  h: HeadState,
  b: BatchTensors,
  scale: number,
  o: LossOptions = {},
): { logits?: Tensor; start?: Tensor; end?: Tensor } {
  const head = model.config.head;
  if (head === "qa") {
    const r = spanLossBackward(
      h.start!,
      h.end!,
      need(b.startPos, "start_positions"),
      need(b.endPos, "end_positions"),
      scale,
      o.qaMaskPads ? b.keyMask : undefined,
    );
    return { start: r.dStart, end: r.dEnd };
  }
  if (head === "regression") {
    return { logits: mseLossBackward(h.logits!, need(b.targets, "regression targets"), scale) };
  }
  return { logits: crossEntropyBackward(h.logits!, need(b.labels, "labels"), scale) };
}
