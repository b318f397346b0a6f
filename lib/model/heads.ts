/**
 * Task heads on top of the encoder, forward and backward: sequence classification/regression
 * (BERT: [CLS] → pooler dense + tanh → dropout → classifier; DistilBERT: [CLS] → pre_classifier +
 * ReLU → dropout → classifier) and span QA (hidden states → qa_outputs → start/end logits).
 * @module
 */
import type { Tensor } from "../gpu/tensor.ts";
import { relu, reluBackward, tanh, tanhBackward } from "../ops/activation.ts";
import { dropout, dropoutBackward } from "../ops/dropout.ts";
import { linear } from "../ops/matmul.ts";
import { joinPairs, splitPairs } from "../ops/pairs.ts";
import { sumRows } from "../ops/reduce.ts";
import { selectRows, selectRowsBackward } from "../ops/rows.ts";
import { accumulate, type Grads, linearGrads, type PassOptions, siteSeed } from "./encoder.ts";
import type { BatchTensors } from "./inputs.ts";
import type { Model } from "./model.ts";

/** Saved activations of a task head. */
export interface HeadState {
  /** [CLS] rows [B, d] (classification). */
  cls?: Tensor;
  /** Pooler / pre_classifier pre-activation [B, d]. */
  pre?: Tensor;
  /** After tanh / ReLU. */
  act?: Tensor;
  /** After dropout (same tensor in eval). */
  actDropped?: Tensor;
  /** QA input after dropout (same as the hidden states in eval). */
  qaIn?: Tensor;
  /** Classification/regression logits [B, numLabels]. */
  logits?: Tensor;
  /** QA start logits [B, S]. */
  start?: Tensor;
  /** QA end logits [B, S]. */
  end?: Tensor;
}

/** Whether the encoder's output holds the [CLS] rows only (see `PassOptions.clsOnlyLastLayer`). */
function clsOnly(model: Model, o: PassOptions): boolean {
  return !!o.clsOnlyLastLayer && model.config.numLayers > 0;
}

function classifierDropout(model: Model): number {
  return model.config.classifierDropout;
}

/**
 * Runs the task head on the final hidden states `y` [B·S, d] ([B, d], the [CLS] rows, after a
 * `clsOnlyLastLayer` pass).
 */
export function headForward(
  model: Model,
  y: Tensor,
  batch: BatchTensors,
  o: PassOptions = {},
): HeadState {
  const c = model.config;
  const p = o.train ? classifierDropout(model) : 0;
  if (c.head === "qa") {
    const pq = c.arch === "distilbert" ? p : 0;
    const qaIn = pq > 0 ? dropout(y, pq, siteSeed(o, 1000, 0)) : y;
    const pairs = linear(qaIn, model.param("qa.w"), model.param("qa.b"));
    const [start, end] = splitPairs(pairs, [batch.B, batch.S]);
    pairs.release();
    return { qaIn, start, end };
  }
  // a [CLS]-only last layer (`clsOnlyLastLayer`) already gave the [CLS] rows
  const cls = clsOnly(model, o) ? y : selectRows(y, batch.clsRows);
  const bert = c.arch === "bert";
  const pre = linear(
    cls,
    model.param(bert ? "pool.w" : "pre.w"),
    model.param(bert ? "pool.b" : "pre.b"),
  );
  const act = bert ? tanh(pre) : relu(pre);
  const actDropped = p > 0 ? dropout(act, p, siteSeed(o, 1000, 1)) : act;
  const logits = linear(actDropped, model.param("cls.w"), model.param("cls.b"));
  return { cls, pre, act, actDropped, logits };
}

/**
 * Backward of the head: given dLogits (or dStart/dEnd), returns dY [B·S, d] ([B, d] after a
 * `clsOnlyLastLayer` pass) and adds parameter gradients into `grads` when given.
 */
export function headBackward(
  model: Model,
  st: HeadState,
  _y: Tensor,
  batch: BatchTensors,
  d: { logits?: Tensor; start?: Tensor; end?: Tensor },
  grads: Grads | undefined,
  o: PassOptions = {},
): Tensor {
  const c = model.config;
  const p = o.train ? classifierDropout(model) : 0;
  const keep = (name: string, g: Tensor) => (grads ? accumulate(grads, name, g) : g.release());
  if (c.head === "qa") {
    const pairs = joinPairs(d.start!, d.end!);
    const pr = pairs.view([batch.B * batch.S, 2]);
    keep("qa.b", sumRows(pr));
    const dIn = linearGrads(grads, "qa.w", pr, st.qaIn!, model);
    pairs.release();
    const pq = c.arch === "distilbert" ? p : 0;
    if (pq > 0) {
      const dy = dropoutBackward(dIn, pq, siteSeed(o, 1000, 0));
      dIn.release();
      return dy;
    }
    return dIn;
  }
  const bert = c.arch === "bert";
  keep("cls.b", sumRows(d.logits!));
  let dAct = linearGrads(grads, "cls.w", d.logits!, st.actDropped!, model);
  if (p > 0) {
    const t = dropoutBackward(dAct, p, siteSeed(o, 1000, 1));
    dAct.release();
    dAct = t;
  }
  const dPre = bert ? tanhBackward(dAct, st.act!) : reluBackward(dAct, st.pre!);
  dAct.release();
  const pw = bert ? "pool" : "pre";
  keep(`${pw}.b`, sumRows(dPre));
  const dCls = linearGrads(grads, `${pw}.w`, dPre, st.cls!, model);
  dPre.release();
  if (clsOnly(model, o)) return dCls;
  const dy = selectRowsBackward(dCls, batch.clsRows, batch.B * batch.S);
  dCls.release();
  return dy;
}

/** Releases a head's saved activations (outputs included). */
export function releaseHeadState(st: HeadState, y: Tensor): void {
  const ts = new Set([st.cls, st.pre, st.act, st.actDropped, st.qaIn, st.logits, st.start, st.end]);
  for (const t of ts) if (t && t !== y && !t.released) t.release();
}
