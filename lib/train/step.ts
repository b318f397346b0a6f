/**
 * One optimizer step of task fine-tuning on an already-padded batch: upload, forward in training
 * mode (dropout seeded by the step), backward of the batch-mean loss into a persistent gradient
 * map, global-norm clipping and an AdamW update. One read-back per step (the loss sum and the
 * squared gradient norms together).
 * @module
 */
import type { Batch } from "../data/batch.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { Grads } from "../model/encoder.ts";
import { uploadBatch } from "../model/inputs.ts";
import type { Model } from "../model/model.ts";
import { backward, forward } from "../model/run.ts";
import { sumAll } from "../ops/reduce.ts";
import { clipCoefficient, recordSquaredNorms } from "./clip.ts";
import type { AdamW } from "./optimizer.ts";

/** Options of one training step. */
export interface StepOptions {
  /** Learning rate of this update. */
  lr: number;
  /** Dropout seed of this step (distinct per step for fresh masks). */
  seed: number;
  /** Global gradient-norm limit (≤ 0 or Infinity = no clipping). */
  maxGradNorm: number;
  /** Dropout on (default true). */
  train?: boolean;
}

/** What a step reports. */
export interface StepResult {
  /** Mean loss of the batch (before the update). */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
}

/** Zeroes every gradient of the map (kept allocated across steps). */
export function zeroGrads(grads: Grads): void {
  for (const g of grads.values()) g.gpu.clear(g);
}

/**
 * Finishes a step whose gradients are in `grads` and whose per-example losses sum is in
 * `lossSum` [1]: reads the loss and the squared norms in one read-back, and updates with the
 * gradients clipped to `maxGradNorm` (AdamW applies the coefficient; `grads` keeps the unclipped
 * values).
 * `lossScale` turns the loss sum into the reported mean.
 */
export async function finishStep(
  grads: Grads,
  lossSum: Tensor,
  lossScale: number,
  opt: AdamW,
  o: StepOptions,
): Promise<StepResult> {
  const scalars = lossSum.gpu.empty([grads.size + 1]);
  lossSum.gpu.copy(lossSum, scalars, 0, 0, 1);
  recordSquaredNorms(grads, scalars, 1);
  const host = await scalars.read();
  scalars.release();
  let sq = 0;
  for (let i = 1; i < host.length; i++) sq += host[i];
  const gradNorm = Math.sqrt(sq);
  // clipping folded into the update: AdamW multiplies each gradient by the coefficient as it
  // reads it (no pass of its own over every gradient)
  const clip = o.maxGradNorm > 0 && Number.isFinite(o.maxGradNorm)
    ? clipCoefficient(gradNorm, o.maxGradNorm)
    : 1;
  opt.step(grads, o.lr, clip);
  return { loss: host[0] * lossScale, gradNorm };
}

/**
 * One fine-tuning step on `batch` (labels required): gradients of the batch-mean loss (mean over
 * rows whose label is not −100) are accumulated into `grads` after zeroing it, clipped to
 * `maxGradNorm`, and applied by `opt` with learning rate `lr`.
 */
export async function trainStep(
  model: Model,
  batch: Batch,
  grads: Grads,
  opt: AdamW,
  o: StepOptions,
): Promise<StepResult> {
  const bt = uploadBatch(model.gpu, model.config, batch);
  zeroGrads(grads);
  // only [CLS] reaches a classification/regression head: its last layer runs at [CLS] rows only
  const pass = { train: o.train ?? true, seed: o.seed, clsOnlyLastLayer: true };
  let valid = batch.size;
  if (batch.labels && model.config.head === "classification") {
    valid = batch.labels.reduce((n, y) => n + (y === -100 ? 0 : 1), 0);
  }
  const scale = 1 / Math.max(1, valid);
  const fwd = forward(model, bt, undefined, { ...pass, save: true, withLoss: true });
  const lossSum = sumAll(fwd.loss!);
  const mg = backward(model, fwd, bt, undefined, { ...pass, lossScale: scale, grads });
  mg.release();
  fwd.release();
  try {
    return await finishStep(grads, lossSum, scale, opt, o);
  } finally {
    lossSum.release();
    bt.release();
  }
}
