/**
 * Learning-rate schedule of BERT fine-tuning (Hugging Face `get_linear_schedule_with_warmup`):
 * linear warm-up from 0 to the peak over `warmupSteps`, then linear decay to 0 at `totalSteps`.
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";

/** Shape of the linear warm-up + decay schedule. */
export interface LinearSchedule {
  /** Peak learning rate. */
  lr: number;
  /** Steps of linear warm-up (0 = none). */
  warmupSteps: number;
  /** Total optimizer steps (the rate reaches 0 there). */
  totalSteps: number;
}

/**
 * Learning rate of optimizer step `step` (0-based, the value HF's LambdaLR uses for the step's
 * update): lr·step/warmup while step < warmup, then lr·max(0, (total − step)/(total − warmup)).
 */
export function scheduledLr(step: number, s: LinearSchedule): number {
  if (!(s.totalSteps >= 1) || !(s.warmupSteps >= 0) || !(s.lr >= 0)) {
    throw new InvalidArgumentError(
      `schedule needs lr ≥ 0, warmupSteps ≥ 0 and totalSteps ≥ 1, got ${JSON.stringify(s)}`,
    );
  }
  if (step < s.warmupSteps) return (s.lr * step) / Math.max(1, s.warmupSteps);
  return s.lr * Math.max(0, (s.totalSteps - step) / Math.max(1, s.totalSteps - s.warmupSteps));
}
