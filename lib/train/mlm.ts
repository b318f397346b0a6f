/**
 * Masked-language-model pretraining on task text (BERT's recipe): 15% of the non-special tokens
 * of each sequence are chosen (seeded PCG32), 80% of those become [MASK], 10% a random token and
 * 10% stay; the loss is the cross-entropy of the chosen positions only. The MLM head is BERT's
 * (dense d→d, GELU, LayerNorm, decoder tied to the word embeddings plus an output bias); it lives
 * beside the model and is discarded after pretraining.
 * @module
 */
import type { Batch, Encoded } from "../data/batch.ts";
import { InvalidArgumentError } from "../errors.ts";
import type { Gpu } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { Rng } from "../model/random.ts";
import {
  accumulate,
  embeddingsBackward,
  embeddingsForward,
  type Grads,
  layerBackward,
  layerForward,
  type LayerState,
  type PassOptions,
  releaseEmbeddingState,
} from "../model/encoder.ts";
import { uploadBatch } from "../model/inputs.ts";
import type { Model } from "../model/model.ts";
import { gelu, geluBackward } from "../ops/activation.ts";
import { layerNorm, layerNormBackward } from "../ops/layernorm.ts";
import { crossEntropy, crossEntropyBackward } from "../ops/loss.ts";
import { linear, linearBackward } from "../ops/matmul.ts";
import { sumAll, sumRows } from "../ops/reduce.ts";
import { selectRows, selectRowsBackward } from "../ops/rows.ts";
import type { WordPieceTokenizer } from "../text/wordpiece.ts";
import type { Pcg32 } from "../util/pcg32.ts";
import type { AdamW } from "./optimizer.ts";
import { finishStep, type StepOptions, type StepResult, zeroGrads } from "./step.ts";

/** Names and shapes of the MLM head parameters for hidden size d and vocabulary V. */
export function mlmHeadShapes(d: number, V: number): Map<string, number[]> {
  return new Map([
    ["mlm.dense.w", [d, d]],
    ["mlm.dense.b", [d]],
    ["mlm.ln.g", [d]],
    ["mlm.ln.b", [d]],
    ["mlm.bias", [V]],
  ]);
}

/** Creates the MLM head of `model` on its GPU: dense N(0, 0.02), LayerNorm (1, 0), bias 0. */
export function createMlmHead(model: Model, seed = 0): Map<string, Tensor> {
  const gpu: Gpu = model.gpu;
  const rng = new Rng(seed + 7919);
  const out = new Map<string, Tensor>();
  for (const [name, shape] of mlmHeadShapes(model.config.hiddenSize, model.config.vocabSize)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name === "mlm.dense.w") rng.fillNormal(data, 0.02);
    if (name === "mlm.ln.g") data.fill(1);
    out.set(name, gpu.upload(data, shape));
  }
  return out;
}

/** A batch with masked inputs and the positions/labels to predict. */
export interface MaskedBatch {
  /** The padded batch with chosen tokens replaced (no labels). */
  batch: Batch;
  /** Flat row index b·S + s of each predicted position. */
  rows: Int32Array;
  /** Original token id at each predicted position. */
  labels: Int32Array;
}

/** Token ids that are never chosen for prediction ([CLS], [SEP], [PAD], [UNK], [MASK]…). */
export function specialIds(tok: WordPieceTokenizer): Set<number> {
  const s = new Set<number>();
  for (const t of ["[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"]) {
    const id = tok.vocab.get(t);
    if (id !== undefined) s.add(id);
  }
  return s;
}

/**
 * Masks a padded batch: each real, non-special token is chosen with probability `prob` (at least
 * one per batch when any is eligible), then replaced by `maskId` (80%), a uniform random id in
 * [0, vocabSize) (10%) or kept (10%). Deterministic given `rng`.
 */
export function maskBatch(
  batch: Batch,
  o: { maskId: number; vocabSize: number; special: Set<number>; prob?: number; rng: Pcg32 },
): MaskedBatch {
  const prob = o.prob ?? 0.15;
  const ids = Int32Array.from(batch.inputIds);
  const rows: number[] = [], labels: number[] = [];
  const eligible: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (batch.attentionMask[i] !== 1 || o.special.has(ids[i])) continue;
    eligible.push(i);
    if (o.rng.bounded(1_000_000) < prob * 1_000_000) rows.push(i);
  }
  if (rows.length === 0 && eligible.length > 0) rows.push(eligible[o.rng.bounded(eligible.length)]);
  for (const i of rows) {
    labels.push(ids[i]);
    const r = o.rng.bounded(10);
    if (r < 8) ids[i] = o.maskId;
    else if (r === 8) ids[i] = o.rng.bounded(o.vocabSize);
  }
  return {
    batch: { ...batch, inputIds: ids, labels: undefined, targets: undefined },
    rows: Int32Array.from(rows),
    labels: Int32Array.from(labels),
  };
}

/**
 * Encodes raw texts for MLM. Unpacked (default): each text is tokenized and cut into windows of at
 * most `maxLength − 2` word pieces, each wrapped as [CLS] … [SEP] (single segment). Packed
 * (`pack: true`, RoBERTa's FULL-SENTENCES): the texts' pieces are concatenated in order with a
 * [SEP] after each text and cut into full windows of `maxLength − 2`, so that short sentences do
 * not waste a step on padding and per-step overhead; the last partial window is kept.
 */
export function encodeMlmTexts(
  tok: WordPieceTokenizer,
  texts: string[],
  maxLength = 128,
  o: { pack?: boolean } = {},
): Encoded[] {
  if (maxLength < 3) throw new InvalidArgumentError(`MLM maxLength must be ≥ 3, got ${maxLength}`);
  const out: Encoded[] = [];
  const w = maxLength - 2;
  const emit = (ids: number[]) => {
    const piece = [tok.clsId, ...ids, tok.sepId];
    out.push({ inputIds: piece, tokenTypeIds: new Array(piece.length).fill(0) });
  };
  if (o.pack) {
    let cur: number[] = [];
    for (const t of texts) {
      const ids = tok.tokenize(t).ids;
      if (ids.length === 0) continue;
      cur.push(...ids, tok.sepId);
      while (cur.length >= w) {
        emit(cur.slice(0, w));
        cur = cur.slice(w);
      }
    }
    if (cur.length > 0) emit(cur[cur.length - 1] === tok.sepId ? cur.slice(0, -1) : cur);
    return out;
  }
  for (const t of texts) {
    const ids = tok.tokenize(t).ids;
    for (let i = 0; i < ids.length; i += w) emit(ids.slice(i, i + w));
  }
  return out;
}

/**
 * Records the MLM loss and its gradients for a masked batch: encoder forward (training mode per
 * `o`), head on the chosen rows, mean cross-entropy over them; parameter gradients are ADDED into
 * `grads` (model names and `mlm.*`). Returns the loss sum [1] (caller releases) and M.
 */
export function mlmForwardBackward(
  model: Model,
  head: Map<string, Tensor>,
  mb: MaskedBatch,
  grads: Grads,
  o: PassOptions = {},
): { lossSum: Tensor; count: number } {
  const c = model.config, gpu = model.gpu;
  const M = mb.rows.length;
  if (M === 0) throw new InvalidArgumentError("MLM batch has no position to predict");
  const pass: PassOptions = { ...o, save: true };
  const bt = uploadBatch(gpu, c, mb.batch);
  const emb = embeddingsForward(model, bt, pass);
  const layers: LayerState[] = [];
  let x = emb.out;
  for (let l = 0; l < c.numLayers; l++) {
    const st = layerForward(model, l, x, bt, undefined, undefined, pass);
    layers.push(st);
    x = st.y;
  }
  const rowsT = gpu.uploadU32(mb.rows, [M]);
  const labelsT = gpu.uploadU32(mb.labels, [M]);
  const p = (n: string) => head.get(n)!;
  const sel = selectRows(x, rowsT);
  const h = linear(sel, p("mlm.dense.w"), p("mlm.dense.b"));
  const a = gelu(h);
  const ln = layerNorm(a, p("mlm.ln.g"), p("mlm.ln.b"), c.layerNormEps);
  const word = model.param("emb.word");
  const logits = linear(ln.y, word, p("mlm.bias"));
  const loss = crossEntropy(logits, labelsT);
  const lossSum = sumAll(loss);
  loss.release();
  // backward
  const dLogits = crossEntropyBackward(logits, labelsT, 1 / M);
  logits.release();
  accumulate(grads, "mlm.bias", sumRows(dLogits));
  const dec = linearBackward(dLogits, ln.y, word, { dwInto: grads.get("emb.word") });
  if (!grads.has("emb.word")) grads.set("emb.word", dec.dw);
  dLogits.release();
  const dln = layerNormBackward(dec.dx!, a, ln.mean, ln.rstd, p("mlm.ln.g"));
  dec.dx!.release();
  for (const t of [ln.y, ln.mean, ln.rstd, a]) t.release();
  accumulate(grads, "mlm.ln.g", dln.dgamma);
  accumulate(grads, "mlm.ln.b", dln.dbeta);
  const dh = geluBackward(dln.dx, h);
  dln.dx.release();
  h.release();
  accumulate(grads, "mlm.dense.b", sumRows(dh));
  const dense = linearBackward(dh, sel, p("mlm.dense.w"), { dwInto: grads.get("mlm.dense.w") });
  if (!grads.has("mlm.dense.w")) grads.set("mlm.dense.w", dense.dw);
  dh.release();
  sel.release();
  let dy = selectRowsBackward(dense.dx!, rowsT, bt.B * bt.S);
  dense.dx!.release();
  for (let l = c.numLayers - 1; l >= 0; l--) {
    const r = layerBackward(model, l, layers[l], dy, bt, undefined, undefined, grads, pass);
    r.masks.head?.release();
    r.masks.ffn?.release();
    dy.release();
    dy = r.dx!;
  }
  embeddingsBackward(model, bt, emb, dy, grads, pass);
  dy.release();
  for (const st of layers) if (!st.y.released) st.y.release();
  releaseEmbeddingState(emb);
  rowsT.release();
  labelsT.release();
  bt.release();
  return { lossSum, count: M };
}

/** One MLM optimizer step (zero, forward/backward, clip, AdamW over model + head). */
export async function mlmStep(
  model: Model,
  head: Map<string, Tensor>,
  mb: MaskedBatch,
  grads: Grads,
  opt: AdamW,
  o: StepOptions,
): Promise<StepResult> {
  zeroGrads(grads);
  const r = mlmForwardBackward(model, head, mb, grads, { train: o.train ?? true, seed: o.seed });
  try {
    return await finishStep(grads, r.lossSum, 1 / r.count, opt, o);
  } finally {
    r.lossSum.release();
  }
}
