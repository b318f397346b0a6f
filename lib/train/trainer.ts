/**
 * The training loops: `fineTune` (task loss; AdamW with linear warm-up/decay, global-norm
 * clipping, dropout, per-epoch seeded shuffling, dynamic padding per batch, evaluation every N
 * steps with the task metric and best-checkpoint keeping) and `pretrainMlm` (masked-LM steps on
 * task text before fine-tuning). Both are deterministic given the seed.
 * @module
 */
import { type Encoded, makeBatches } from "../data/batch.ts";
import type { TaskData } from "../data/tasks.ts";
import { InvalidArgumentError } from "../errors.ts";
import { type EvalResult, evaluate } from "../eval/evaluate.ts";
import type { Grads } from "../model/encoder.ts";
import type { Model } from "../model/model.ts";
import type { WordPieceTokenizer } from "../text/wordpiece.ts";
import { Pcg32, sampleIndices } from "../util/pcg32.ts";
import { createMlmHead, maskBatch, mlmStep, specialIds } from "./mlm.ts";
import { AdamW } from "./optimizer.ts";
import { scheduledLr } from "./schedule.ts";
import { ParamSnapshot } from "./snapshot.ts";
import { trainStep } from "./step.ts";

/** Options of `fineTune`. */
export interface FineTuneOptions {
  /** Epochs over the training items (default 3). */
  epochs?: number;
  /** Stop after this many steps (default: epochs · ⌈n/batch⌉). */
  maxSteps?: number;
  /** Rows per batch (default 32). */
  batchSize?: number;
  /** Peak learning rate (default 1e-4). */
  lr?: number;
  /** Warm-up as a fraction of all steps (default 0.06). */
  warmupFraction?: number;
  /** Weight decay on non-bias, non-LayerNorm parameters (default 0.01). */
  weightDecay?: number;
  /** Global gradient-norm limit (default 1; ≤ 0 disables). */
  maxGradNorm?: number;
  /** Seed of shuffling and dropout (default 42). */
  seed?: number;
  /** Evaluate on `dev` every this many steps (default: once per epoch) and at the end. */
  evalEvery?: number;
  /** Group rows of similar length into batches (less padding; default true). */
  groupByLength?: boolean;
  /** Called after every step. */
  onStep?: (step: number, total: number, loss: number, lr: number) => void;
  /** Called after every evaluation. */
  onEval?: (step: number, r: EvalResult, best: boolean) => void;
}

/** One point of the training curve. */
export interface CurvePoint {
  /** Optimizer step (1-based). */
  step: number;
  /** Mean training loss of that step. */
  loss: number;
  /** Learning rate used. */
  lr: number;
}

/** What `fineTune` returns. */
export interface FineTuneResult {
  /** Per-step training loss. */
  curve: CurvePoint[];
  /** Every evaluation (step, headline metric, all metrics). */
  evals: { step: number; main: number; metrics: Record<string, number> }[];
  /** The best evaluation (whose parameters the model holds on return), when `dev` was given. */
  best?: { step: number; main: number; metrics: Record<string, number> };
  /** Steps done. */
  steps: number;
  /** Wall-clock seconds. */
  seconds: number;
}

/** The order of the items of one epoch: a seeded shuffle (PCG32, seed·1000 + epoch). */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  return sampleIndices(n, n, seed * 1000 + epoch).indices;
}

/**
 * Batches of one epoch with little padding (HF `group_by_length` in spirit): the seeded shuffle is
 * cut into chunks of 50 batches, each chunk is sorted by length (stable) and cut into batches,
 * and the batch order is shuffled again with the same seed. Returns lists of item indices.
 */
export function lengthGroupedOrder(
  items: Encoded[],
  batchSize: number,
  seed: number,
  epoch: number,
): number[][] {
  const order = epochOrder(items.length, seed, epoch);
  const chunk = 50 * batchSize;
  const batches: number[][] = [];
  for (let i = 0; i < order.length; i += chunk) {
    const part = order.slice(i, i + chunk);
    part.sort((a, b) => items[a].inputIds.length - items[b].inputIds.length);
    for (let j = 0; j < part.length; j += batchSize) batches.push(part.slice(j, j + batchSize));
  }
  const perm = epochOrder(batches.length, seed + 7, epoch);
  return perm.map((k) => batches[k]);
}

/**
 * Fine-tunes `model` in place on `train` (encoded items with labels/targets/positions). With
 * `dev`, evaluates every `evalEvery` steps and at the end, and leaves the model holding the
 * parameters of the best evaluation (higher headline metric is better).
 */
export async function fineTune(
  model: Model,
  train: Encoded[],
  dev: TaskData | undefined,
  o: FineTuneOptions = {},
): Promise<FineTuneResult> {
  const t0 = performance.now();
  const B = o.batchSize ?? 32, seed = o.seed ?? 42, epochs = o.epochs ?? 3;
  if (train.length === 0) throw new InvalidArgumentError("no training examples");
  const perEpoch = Math.ceil(train.length / B);
  const total = Math.min(o.maxSteps ?? Infinity, epochs * perEpoch);
  if (!(total >= 1)) throw new InvalidArgumentError(`nothing to train: ${total} steps`);
  const schedule = {
    lr: o.lr ?? 1e-4,
    warmupSteps: Math.round((o.warmupFraction ?? 0.06) * total),
    totalSteps: total,
  };
  const evalEvery = o.evalEvery ?? perEpoch;
  const opt = new AdamW(model.params, { weightDecay: o.weightDecay ?? 0.01 });
  const grads: Grads = new Map();
  const snap = dev ? new ParamSnapshot(model) : undefined;
  const res: FineTuneResult = { curve: [], evals: [], steps: 0, seconds: 0 };
  const padId = model.config.padTokenId;
  const doEval = async (step: number) => {
    const r = await evaluate(model, dev!, { batchSize: 64 });
    const e = { step, main: r.main, metrics: r.metrics };
    res.evals.push(e);
    const better = !res.best || r.main > res.best.main ||
      (Number.isNaN(res.best.main) && !Number.isNaN(r.main));
    if (better) {
      res.best = e;
      snap!.take();
    }
    o.onEval?.(step, r, better);
  };
  try {
    let step = 0;
    for (let epoch = 0; step < total; epoch++) {
      const groups = o.groupByLength === false
        ? [epochOrder(train.length, seed, epoch)]
        : lengthGroupedOrder(train, B, seed, epoch);
      const batches = groups.flatMap((order) => makeBatches(train, B, { padId, order }));
      for (const batch of batches) {
        if (step >= total) break;
        const lr = scheduledLr(step, schedule);
        const r = await trainStep(model, batch, grads, opt, {
          lr,
          seed: seed * 100_003 + step,
          maxGradNorm: o.maxGradNorm ?? 1,
        });
        step++;
        res.curve.push({ step, loss: r.loss, lr });
        o.onStep?.(step, total, r.loss, lr);
        if (dev && step % evalEvery === 0 && step < total) await doEval(step);
      }
    }
    res.steps = step;
    if (dev) {
      await doEval(step);
      snap!.restore();
      await model.gpu.sync();
    }
  } finally {
    for (const g of grads.values()) g.release();
    opt.release();
    snap?.release();
  }
  res.seconds = (performance.now() - t0) / 1000;
  return res;
}

/** Options of `pretrainMlm`. */
export interface MlmOptions {
  /** Optimizer steps. */
  steps: number;
  /** Rows per batch (default 32). */
  batchSize?: number;
  /** Peak learning rate (default 5e-4). */
  lr?: number;
  /** Warm-up fraction (default 0.06). */
  warmupFraction?: number;
  /** Weight decay (default 0.01). */
  weightDecay?: number;
  /** Gradient-norm limit (default 1). */
  maxGradNorm?: number;
  /** Masking probability (default 0.15). */
  maskProb?: number;
  /** Seed (default 42). */
  seed?: number;
  /** Called after every step. */
  onStep?: (step: number, total: number, loss: number, lr: number) => void;
}

/**
 * Masked-LM pretraining of the encoder (and embeddings) of `model` on `items` (from
 * `encodeMlmTexts`) with a fresh MLM head that is discarded at the end. Returns the loss curve.
 */
export async function pretrainMlm(
  model: Model,
  tok: WordPieceTokenizer,
  items: Encoded[],
  o: MlmOptions,
): Promise<CurvePoint[]> {
  if (items.length === 0) throw new InvalidArgumentError("no MLM text");
  const maskId = tok.vocab.get("[MASK]");
  if (maskId === undefined) throw new InvalidArgumentError("the vocabulary has no [MASK] token");
  const B = o.batchSize ?? 32, seed = o.seed ?? 42;
  const head = createMlmHead(model, seed);
  const all = new Map([...model.params, ...head]);
  const opt = new AdamW(all, { weightDecay: o.weightDecay ?? 0.01 });
  const grads: Grads = new Map();
  const rng = new Pcg32(seed + 17);
  const special = specialIds(tok);
  const schedule = {
    lr: o.lr ?? 5e-4,
    warmupSteps: Math.round((o.warmupFraction ?? 0.06) * o.steps),
    totalSteps: o.steps,
  };
  const curve: CurvePoint[] = [];
  try {
    let step = 0;
    for (let epoch = 0; step < o.steps; epoch++) {
      const order = epochOrder(items.length, seed + 1, epoch);
      for (const batch of makeBatches(items, B, { padId: tok.padId, order })) {
        if (step >= o.steps) break;
        const mb = maskBatch(batch, {
          maskId,
          vocabSize: model.config.vocabSize,
          special,
          prob: o.maskProb,
          rng,
        });
        if (mb.rows.length === 0) continue;
        const lr = scheduledLr(step, schedule);
        const r = await mlmStep(model, head, mb, grads, opt, {
          lr,
          seed: seed * 100_003 + 50_000_000 + step,
          maxGradNorm: o.maxGradNorm ?? 1,
        });
        step++;
        curve.push({ step, loss: r.loss, lr });
        o.onStep?.(step, o.steps, r.loss, lr);
      }
    }
  } finally {
    for (const g of grads.values()) g.release();
    opt.release();
    for (const t of head.values()) t.release();
  }
  return curve;
}
