/**
 * Evaluation of a (possibly masked) model on an encoded task split: batched GPU forward passes,
 * then the task's official metric (GLUE metric per task; SQuAD v1.1 EM/F1 or v2.0 after HF's
 * post-processing).
 * @module
 */
import { makeBatches } from "../data/batch.ts";
import { postprocessQaPredictions } from "../data/squad.ts";
import type { TaskData } from "../data/tasks.ts";
import { InvalidArgumentError } from "../errors.ts";
import { glueMetric } from "../metrics/glue.ts";
import { squadV1, squadV2 } from "../metrics/squad.ts";
import { type MaskValues, uploadBatch, uploadMasks } from "../model/inputs.ts";
import type { Model } from "../model/model.ts";
import { forward } from "../model/run.ts";
import type { OnProgress } from "../util/progress.ts";

/** Metrics of an evaluation, plus the headline value used for plots and tables. */
export interface EvalResult {
  /** All metric values (evaluate's key names; SQuAD in percent). */
  metrics: Record<string, number>;
  /** The headline metric's name. */
  mainMetric: string;
  /** Its value. */
  main: number;
  /** Number of examples scored. */
  examples: number;
  /**
   * Per-example predictions, in the data's order: GLUE, the predicted class index (the logits'
   * argmax, first on ties) or the regression value; SQuAD, the answer text by question id.
   */
  predictions: number[] | Record<string, string>;
}

/** The headline metric of a task (as the paper reports it). */
export function mainMetricName(task: string): string {
  if (task === "cola") return "matthews_correlation";
  if (task === "stsb") return "spearmanr";
  if (task === "squad" || task === "squad_v2") return "f1";
  return "accuracy";
}

/** Evaluates `model` (with optional masks) on `data`. */
export async function evaluate(
  model: Model,
  data: TaskData,
  o: { batchSize?: number; masks?: MaskValues; onProgress?: OnProgress } = {},
): Promise<EvalResult> {
  const c = model.config;
  if ((data.kind === "squad") !== (c.head === "qa")) {
    throw new InvalidArgumentError(`task ${data.task} does not match the model's ${c.head} head`);
  }
  // batches of similar length (stable sort by length) waste little on padding; results are put
  // back in the original order
  const order = data.items.map((_, i) => i).sort((a, b) =>
    data.items[a].inputIds.length - data.items[b].inputIds.length || a - b
  );
  const batches = makeBatches(data.items, o.batchSize ?? 32, { order });
  const gpu = model.gpu;
  const preds: number[] = new Array(data.items.length);
  const starts: Float32Array[] = new Array(data.items.length);
  const ends: Float32Array[] = new Array(data.items.length);
  let done = 0;
  for (const b of batches) {
    const bt = uploadBatch(gpu, c, {
      ...b,
      labels: undefined,
      targets: undefined,
      startPositions: undefined,
      endPositions: undefined,
    });
    const masks = o.masks ? uploadMasks(gpu, c, b.size, o.masks) : undefined;
    // a classifier's last layer at the [CLS] rows only: the same logits, less work
    const fwd = forward(model, bt, masks, { clsOnlyLastLayer: true });
    if (fwd.logits) {
      const lg = await fwd.logits.read();
      for (let i = 0; i < b.size; i++) {
        if (c.head === "regression") preds[b.indices[i]] = lg[i];
        else {
          let best = 0;
          for (let k = 1; k < c.numLabels; k++) {
            if (lg[i * c.numLabels + k] > lg[i * c.numLabels + best]) best = k;
          }
          preds[b.indices[i]] = best;
        }
      }
    } else {
      const s = await fwd.start!.read(), e = await fwd.end!.read();
      for (let i = 0; i < b.size; i++) {
        starts[b.indices[i]] = s.slice(i * b.seqLen, (i + 1) * b.seqLen);
        ends[b.indices[i]] = e.slice(i * b.seqLen, (i + 1) * b.seqLen);
      }
    }
    fwd.release();
    masks?.release();
    bt.release();
    done += b.size;
    o.onProgress?.(done, data.items.length);
  }
  const main = mainMetricName(data.task);
  if (data.kind === "glue") {
    const refs = data.items.map((e) => (c.head === "regression" ? e.target! : e.label!));
    const metrics = glueMetric(data.task, preds, refs);
    return {
      metrics,
      mainMetric: main,
      main: metrics[main],
      examples: refs.length,
      predictions: preds,
    };
  }
  const sq = data.squad!;
  const v2 = data.task === "squad_v2";
  const p = postprocessQaPredictions(sq.examples, sq.features, starts, ends, { versionTwo: v2 });
  const metrics: Record<string, number> = v2
    ? squadV2(sq.json, p.predictions)
    : { ...squadV1(sq.json, p.predictions) };
  return {
    metrics,
    mainMetric: main,
    main: metrics[main],
    examples: sq.examples.length,
    predictions: p.predictions,
  };
}
