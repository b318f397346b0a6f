/**
 * The encoder forward and backward passes, layer by layer, with real-valued head and FFN masks
 * (METHOD.md §1). `layerForward` saves what `layerBackward` needs; the backward returns the
 * per-example mask gradients (∂loss_b/∂m, never summed over the batch) and, when asked, adds the
 * parameter gradients into a gradient map. Every function only records GPU work.
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";
import type { Tensor } from "../gpu/tensor.ts";
import {
  type AttentionDropout,
  attentionShape,
  fusedAttention,
  fusedAttentionApplies,
  fusedAttentionSaving,
  fusedAttentionSavingApplies,
} from "../ops/attention.ts";
import { attentionDelta, fusedAttentionBackward } from "../ops/attention_backward.ts";
import { ffnActivation, ffnActivationBackward } from "../ops/ffn_act.ts";
import { gelu, geluBackward, relu, reluBackward } from "../ops/activation.ts";
import { dropout, dropoutBackward } from "../ops/dropout.ts";
import { addInto } from "../ops/elementwise.ts";
import { embeddingBackward, embeddingGather, embeddingGatherSum } from "../ops/embedding.ts";
import { embeddingLayerNormInference } from "../ops/embedding_ln.ts";
import { mergeHeads, mergeHeadsBackward, splitHeads, splitHeadsBackward } from "../ops/heads.ts";
import {
  addLayerNorm,
  addLayerNormInference,
  biasLayerNormInference,
  layerNorm,
  layerNormBackward,
  layerNormBackwardDx,
} from "../ops/layernorm.ts";
import {
  scaleColsGrouped,
  scaleColsGroupedBackward,
  scaleRows,
  scaleRowsBackward,
} from "../ops/masks.ts";
import {
  linear,
  linearBackward,
  linearFromPadded,
  linearPadded,
  matmul,
  PADDED_WIDTH,
} from "../ops/matmul.ts";
import { sumRows } from "../ops/reduce.ts";
import { broadcastRows, selectRows, selectRowsBackward } from "../ops/rows.ts";
import { softmaxBackward, softmaxMasked } from "../ops/softmax.ts";
import type { BatchTensors } from "./inputs.ts";
import type { Model } from "./model.ts";

/** Gradients keyed by GPU parameter name; backward ADDS into existing entries. */
export type Grads = Map<string, Tensor>;

/** Options of a forward pass. */
export interface PassOptions {
  /** Training mode: dropout on (with `seed`). Default false (eval mode, as pruning uses). */
  train?: boolean;
  /** Dropout seed for this step. */
  seed?: number;
  /** Keep activations for `backward`. Default false. */
  save?: boolean;
  /**
   * Inference only (ignored with `save` or `train`): run attention and each residual +
   * LayerNorm through the fused kernels where they apply (CPU adapters; lib/ops/attention.ts,
   * `addLayerNormInference`); the layer state then holds the merged context and the sub-layer
   * outputs but no q, k, v, probabilities, per-head context, pre-LN sums or LN statistics.
   * `"attention"` fuses the attention and the FFN activation only (pre-LN sums and statistics are
   * kept).
   */
  fused?: boolean | "attention";
  /**
   * Classification/regression heads: the last layer computes W_o, LN₁, the FFN and LN₂ at the
   * [CLS] rows only, since only [CLS] reaches the head — exact for the outputs, gradients and mask
   * gradients, with a quarter of a 4-layer model's post-attention work left out. Its attention
   * has [CLS] as the only query where the fused kernels run (CPU adapters, d_h = 16, 32, 64;
   * every token still a key and value; elsewhere it runs over every row and keeps the [CLS]
   * rows). The final hidden states are then [B, d] and that layer's pre-LN sums and statistics
   * cover the [CLS] rows only. `"ffn"`: only the FFN and LN₂ at [CLS] (its MHA sub-layer, pre-LN₁
   * sum included, over every row). Ignored for QA heads. Default false.
   */
  clsOnlyLastLayer?: boolean | "ffn";
}

/** Activations of one layer saved for its backward. */
export interface LayerState {
  /** Layer input [B·S, d] (owned by the previous layer / the embeddings). */
  x: Tensor;
  /** q, k, v [B·H_l, S, d_h]. */
  q?: Tensor;
  /** Keys. */
  k?: Tensor;
  /** Values. */
  v?: Tensor;
  /** Attention probabilities [B·H_l, S, S] before dropout. */
  probs?: Tensor;
  /** Probabilities after attention dropout (same tensor as `probs` in eval mode). */
  probsDropped?: Tensor;
  /** Per-head context before the head mask [B·H_l, S, d_h] (= P_h V_h). */
  ctx?: Tensor;
  /** Merged masked context [B·S, H_l·d_h]. */
  merged?: Tensor;
  /**
   * Saving fused attention (lib/ops/attention.ts `fusedAttentionSaving`; then q, k, v, probs and
   * ctx are unset): the packed projection [B·S, 3·H_l·d_h] it read.
   */
  qkv?: Tensor;
  /** Saving fused attention: the context before the head mask, merged [B·S, H_l·d_h]. */
  ctxMerged?: Tensor;
  /** Saving fused attention: each query row's softmax max and 1/sum [B·H_l·S, 2]. */
  attnStats?: Tensor;
  /** Saving fused attention: the dropout it applied to the probabilities (training). */
  attnDropout?: AttentionDropout;
  /** Pre-LN₁ sum X + attn [B·S, d], and LN₁ statistics. */
  sum1: Tensor;
  /** LN₁ mean. */
  mean1: Tensor;
  /** LN₁ rstd. */
  rstd1: Tensor;
  /** LN₁ output U [B·S, d]. */
  u: Tensor;
  /** FFN pre-activation [B·S, F_l]. */
  h?: Tensor;
  /**
   * FFN activation Z [B·S, F_l] (before the mask); fused inference passes of a width F_l % 64 != 0
   * on CPU adapters keep it zero-padded, [B·S, F_l rounded up to a multiple of 64]
   * (lib/ops/matmul.ts `linearPadded`). Unset after a saving pass that ran the fused activation
   * and mask (lib/ops/ffn_act.ts; its backward recomputes act(h)).
   */
  z?: Tensor;
  /** Z ∘ m_ffn. */
  zm?: Tensor;
  /** Pre-LN₂ sum U + ffn [B·S, d], and LN₂ statistics. */
  sum2: Tensor;
  /** LN₂ mean. */
  mean2: Tensor;
  /** LN₂ rstd. */
  rstd2: Tensor;
  /** Layer output Y [B·S, d]. */
  y: Tensor;
  /** Dropout seed base of this layer (training only). */
  seed: number;
  /**
   * Set when the layer runs at the [CLS] rows only (`clsOnlyLastLayer`): the batch's [CLS] row
   * indices (owned by the batch). sum1 … y are then [B, ·] (u … y with `clsFfnOnly`).
   */
  clsRows?: Tensor;
  /** `clsOnlyLastLayer: "ffn"`: only the FFN sub-layer runs at the [CLS] rows. */
  clsFfnOnly?: boolean;
  /** [CLS]-only layer: the input's [CLS] rows [B, d] (the residual of LN₁). */
  xCls?: Tensor;
  /** [CLS]-only layer: the merged masked context's [CLS] rows [B, H_l·d_h] (W_o's input). */
  mergedCls?: Tensor;
  /**
   * [CLS]-only layer whose fused attention had [CLS] as its only query (`queries: 1`,
   * lib/ops/attention.ts): merged, ctxMerged and attnStats hold the B [CLS] rows only (merged is
   * mergedCls), while qkv keeps every position (the keys and values).
   */
  clsQuery?: boolean;
}

/** Activations of the embeddings saved for backward. */
export interface EmbeddingState {
  /** Sum of word, position and type embeddings [B·S, d] (not kept by fused inference passes). */
  sum?: Tensor;
  /** LN mean (not kept by fused inference passes). */
  mean?: Tensor;
  /** LN rstd (not kept by fused inference passes). */
  rstd?: Tensor;
  /** Output after LN (and dropout) [B·S, d]. */
  out: Tensor;
  /** LN output before dropout (same as `out` in eval). */
  normed: Tensor;
}

const drop = (x: Tensor, p: number, o: PassOptions, seed: number): Tensor =>
  o.train && p > 0 ? dropout(x, p, seed) : x;
const undrop = (dy: Tensor, p: number, o: PassOptions, seed: number): Tensor =>
  o.train && p > 0 ? dropoutBackward(dy, p, seed) : dy;

/** Dropout seed of a call site: distinct per step (`o.seed`), layer and site. */
export function siteSeed(o: PassOptions, layer: number, site: number): number {
  return ((o.seed ?? 0) * 1_000_003 + (layer + 1) * 16 + site) >>> 0;
}

/** Adds `g` into grads[name] (or stores it) — `g` is consumed. */
export function accumulate(grads: Grads, name: string, g: Tensor): void {
  const cur = grads.get(name);
  if (cur) {
    addInto(cur, g);
    g.release();
  } else grads.set(name, g);
}

/**
 * Backward of a model linear layer `name` (a weight [out, in]) given dY and its input X: returns
 * dX = dY·W and, only when `grads` is given, adds dW = dYᵀ·X into grads[name]. Passes that want
 * mask gradients alone (the Fisher pass) give no `grads` and skip the dW products — a third of
 * the backward's matmul work. With `dxInto`, dX is added into that tensor (which must not be dY
 * or X) and it is returned.
 */
export function linearGrads(
  grads: Grads | undefined,
  name: string,
  dy: Tensor,
  x: Tensor,
  model: Model,
  dxInto?: Tensor,
): Tensor {
  const w = model.param(name);
  if (!grads) return dxInto ? matmul(dy, w, { out: dxInto, accumulate: true }) : matmul(dy, w);
  const r = linearBackward(dy, x, w, { dwInto: grads.get(name), dxInto });
  if (!grads.has(name)) grads.set(name, r.dw);
  return r.dx!;
}

/**
 * Backward of the model LayerNorm `ln` (`.g`, `.b`): returns dx and, only when `grads` is given,
 * adds dgamma/dbeta into it (otherwise those column sums are not computed at all).
 */
export function normGrads(
  grads: Grads | undefined,
  ln: string,
  dy: Tensor,
  x: Tensor,
  mean: Tensor,
  rstd: Tensor,
  model: Model,
): Tensor {
  const gamma = model.param(`${ln}.g`);
  if (!grads) return layerNormBackwardDx(dy, x, mean, rstd, gamma);
  const r = layerNormBackward(dy, x, mean, rstd, gamma);
  accumulate(grads, `${ln}.g`, r.dgamma);
  accumulate(grads, `${ln}.b`, r.dbeta);
  return r.dx;
}

/** Embeddings: LN(word[ids] + pos[pos] (+ type[types])), then dropout in training. */
export function embeddingsForward(
  model: Model,
  batch: BatchTensors,
  o: PassOptions = {},
): EmbeddingState {
  const c = model.config;
  if (o.fused === true && !o.save && !o.train) {
    const types = c.arch === "bert" && c.typeVocabSize > 0 ? batch.types : undefined;
    // inference: the three gathers, their sum and the LayerNorm in one kernel (CPU adapters)
    const fused = embeddingLayerNormInference(
      {
        word: model.param("emb.word"),
        ids: batch.ids,
        pos: model.param("emb.pos"),
        posIds: batch.pos,
        ...(types ? { type: model.param("emb.type"), typeIds: types } : {}),
      },
      model.param("emb.ln.g"),
      model.param("emb.ln.b"),
      c.layerNormEps,
    );
    if (fused) return { out: fused, normed: fused };
    // else word rows, then position (+ type) rows, summed and normalised in one kernel
    const pos = types
      ? embeddingGatherSum(model.param("emb.pos"), batch.pos, model.param("emb.type"), types)
      : embeddingGather(model.param("emb.pos"), batch.pos);
    const word = embeddingGather(model.param("emb.word"), batch.ids);
    const y = addLayerNormInference(
      word,
      pos,
      model.param("emb.ln.g"),
      model.param("emb.ln.b"),
      c.layerNormEps,
    );
    if (y) {
      word.release();
      pos.release();
      return { out: y, normed: y };
    }
    addInto(word, pos);
    pos.release();
    const ln = layerNorm(word, model.param("emb.ln.g"), model.param("emb.ln.b"), c.layerNormEps);
    return { sum: word, mean: ln.mean, rstd: ln.rstd, out: ln.y, normed: ln.y };
  }
  const sum = embeddingGather(model.param("emb.word"), batch.ids);
  const pos = embeddingGather(model.param("emb.pos"), batch.pos);
  addInto(sum, pos);
  pos.release();
  if (c.arch === "bert" && batch.types && c.typeVocabSize > 0) {
    const typ = embeddingGather(model.param("emb.type"), batch.types);
    addInto(sum, typ);
    typ.release();
  }
  const ln = layerNorm(sum, model.param("emb.ln.g"), model.param("emb.ln.b"), c.layerNormEps);
  const out = drop(ln.y, c.hiddenDropout, o, siteSeed(o, -1, 0));
  return { sum, mean: ln.mean, rstd: ln.rstd, out, normed: ln.y };
}

/** Backward of the embeddings: adds the table and LayerNorm gradients into `grads`. */
export function embeddingsBackward(
  model: Model,
  batch: BatchTensors,
  st: EmbeddingState,
  dOut: Tensor,
  grads: Grads,
  o: PassOptions = {},
): void {
  const c = model.config;
  const dNormed = undrop(dOut, c.hiddenDropout, o, siteSeed(o, -1, 0));
  const ln = layerNormBackward(dNormed, st.sum!, st.mean!, st.rstd!, model.param("emb.ln.g"));
  if (dNormed !== dOut) dNormed.release();
  accumulate(grads, "emb.ln.g", ln.dgamma);
  accumulate(grads, "emb.ln.b", ln.dbeta);
  const into = (name: string, ids: Int32Array, rows: number) => {
    const cur = grads.get(name);
    const g = embeddingBackward(ln.dx, ids, rows, cur);
    if (!cur) grads.set(name, g);
  };
  into("emb.word", batch.idsHost, c.vocabSize);
  into("emb.pos", batch.posHost, c.maxPositions);
  if (c.arch === "bert" && batch.typesHost && c.typeVocabSize > 0) {
    into("emb.type", batch.typesHost, c.typeVocabSize);
  }
  ln.dx.release();
}

/** Releases the embedding activations. */
export function releaseEmbeddingState(st: EmbeddingState): void {
  for (const t of new Set([st.sum, st.mean, st.rstd, st.out, st.normed])) {
    if (t && !t.released) t.release();
  }
}

/**
 * One encoder layer: Y = LN₂(U + (Z∘m_ffn)W₂ᵀ + b₂), U = LN₁(X + concat_h(m_h·P_hV_h)W_oᵀ + b_o).
 * `headMask` [B·H_l], `ffnMask` [B, F_l]. Returns the saved state; `state.y` is the output.
 */
export function layerForward(
  model: Model,
  l: number,
  x: Tensor,
  batch: BatchTensors,
  headMask: Tensor | undefined,
  ffnMask: Tensor | undefined,
  o: PassOptions = {},
): LayerState {
  const st: Partial<LayerState> = { x, seed: 0 };
  const c = model.config;
  if (o.clsOnlyLastLayer && l === c.numLayers - 1 && c.head !== "qa") {
    st.clsRows = batch.clsRows;
    st.clsFfnOnly = o.clsOnlyLastLayer === "ffn";
  }
  attentionForward(model, l, x, batch, headMask, st, o);
  if (st.clsFfnOnly) {
    const u = st.u!;
    st.u = selectRows(u, st.clsRows!);
    u.release();
  }
  ffnForward(model, l, st.u!, batch, ffnMask, st, o);
  return st as LayerState;
}

/**
 * The MHA sub-layer of layer l: fills q, k, v, probs, ctx, merged, sum1, mean1, rstd1 and u
 * (= LN₁ output) of `st`. With 0 heads, U = LN₁(X + b_o).
 */
export function attentionForward(
  model: Model,
  l: number,
  x: Tensor,
  batch: BatchTensors,
  headMask: Tensor | undefined,
  st: Partial<LayerState>,
  o: PassOptions = {},
): void {
  const c = model.config;
  const H = model.heads(l), dh = c.headDim;
  // a [CLS]-only layer needs the attention of its [CLS] rows alone: where the fused kernels run
  // it, [CLS] (position 0) is their only query
  const full = attentionShape(batch.B, batch.S, H, dh, c.arch);
  const clsShape = { ...full, queries: 1 };
  const clsQuery = st.clsRows !== undefined && !st.clsFfnOnly;
  // a pass that keeps activations: the saving fused attention (its backward recomputes the
  // probabilities and their dropout mask) where it applies (CPU adapters, d_h = 16, 32, 64)
  if (o.save && H > 0) {
    const shape = clsQuery && fusedAttentionSavingApplies(model.gpu, clsShape) ? clsShape : full;
    if (fusedAttentionSavingApplies(model.gpu, shape)) {
      st.clsQuery = shape === clsShape;
      st.qkv = linear(x, model.param(`l${l}.qkv.w`), model.param(`l${l}.qkv.b`));
      st.attnDropout = o.train && c.attentionDropout > 0
        ? { p: c.attentionDropout, seed: siteSeed(o, l, 1) } // the unfused path's site and mask
        : undefined;
      const r = fusedAttentionSaving(st.qkv, batch.keyMask, headMask, shape, st.attnDropout)!;
      st.merged = r.merged;
      st.ctxMerged = r.ctx;
      st.attnStats = r.stats;
      attentionProjection(model, l, x, st, o);
      return;
    }
  }
  if (o.fused && !o.save && !o.train && H > 0) {
    const shape = clsQuery && fusedAttentionApplies(model.gpu, clsShape) ? clsShape : full;
    if (fusedAttentionApplies(model.gpu, shape)) {
      st.clsQuery = shape === clsShape;
      const qkv = linear(x, model.param(`l${l}.qkv.w`), model.param(`l${l}.qkv.b`));
      st.merged = fusedAttention(qkv, batch.keyMask, headMask, shape)!;
      qkv.release();
      attentionProjection(model, l, x, st, o);
      return;
    }
  }
  attentionContext(model, l, x, batch, st, o);
  attentionOutput(model, l, x, batch, headMask, st, o);
}

/** First half of the MHA sub-layer: q, k, v, probabilities and the unmasked context P_hV_h. */
export function attentionContext(
  model: Model,
  l: number,
  x: Tensor,
  batch: BatchTensors,
  st: Partial<LayerState>,
  o: PassOptions = {},
): void {
  const c = model.config;
  const { B, S } = batch;
  const H = model.heads(l), dh = c.headDim;
  if (H === 0) return;
  const qkv = linear(x, model.param(`l${l}.qkv.w`), model.param(`l${l}.qkv.b`));
  st.q = splitHeads(qkv, B, S, H, dh, 0);
  st.k = splitHeads(qkv, B, S, H, dh, H * dh);
  st.v = splitHeads(qkv, B, S, H, dh, 2 * H * dh);
  qkv.release();
  const scores = matmul(st.q, st.k, { transB: true });
  st.probs = softmaxMasked(scores, batch.keyMask, H, 1 / Math.sqrt(dh), c.arch);
  scores.release();
  st.probsDropped = drop(st.probs, c.attentionDropout, o, siteSeed(o, l, 1));
  st.ctx = matmul(st.probsDropped, st.v);
}

/**
 * Second half of the MHA sub-layer, from `st.ctx`: head mask, merge, W_o, residual and LN₁
 * (fills merged, sum1, mean1, rstd1, u). With 0 heads, U = LN₁(X + b_o).
 */
export function attentionOutput(
  model: Model,
  l: number,
  x: Tensor,
  batch: BatchTensors,
  headMask: Tensor | undefined,
  st: Partial<LayerState>,
  o: PassOptions = {},
): void {
  const c = model.config;
  const { B, S } = batch;
  const H = model.heads(l), dh = c.headDim;
  if (H > 0) {
    const ctxRows = st.ctx!.view([B * H, S * dh]);
    const masked = headMask ? scaleRows(ctxRows, headMask) : ctxRows;
    st.merged = mergeHeads(masked.view([B * H, S, dh]), B, S, H);
    if (masked !== ctxRows) masked.release();
  }
  attentionProjection(model, l, x, st, o);
}

/**
 * W_o, residual and LN₁ from the merged masked context `st.merged` (or, with 0 heads, from b_o
 * alone): fills sum1, mean1, rstd1 and u. With `st.clsRows`, at those rows only (xCls, mergedCls).
 */
export function attentionProjection(
  model: Model,
  l: number,
  x: Tensor,
  st: Partial<LayerState>,
  o: PassOptions,
): void {
  let merged = st.merged, residual = x;
  if (st.clsRows && !st.clsFfnOnly) {
    if (merged) merged = st.mergedCls = st.clsQuery ? merged : selectRows(merged, st.clsRows);
    residual = st.xCls = selectRows(x, st.clsRows);
  }
  const r = model.heads(l) > 0
    ? residualNorm(
      model,
      `l${l}.ln1`,
      linear(merged!, model.param(`l${l}.o.w`), model.param(`l${l}.o.b`)),
      residual,
      siteSeed(o, l, 2),
      o,
    )
    : biasNorm(model, `l${l}.ln1`, model.param(`l${l}.o.b`), residual, siteSeed(o, l, 2), o);
  st.sum1 = r.sum;
  st.mean1 = r.mean;
  st.rstd1 = r.rstd;
  st.u = r.y;
}

/**
 * The FFN sub-layer of layer l on U: fills h, z, zm, sum2, mean2, rstd2 and y of `st`. With 0
 * neurons, Y = LN₂(U + b₂).
 */
export function ffnForward(
  model: Model,
  l: number,
  u: Tensor,
  batch: BatchTensors,
  ffnMask: Tensor | undefined,
  st: Partial<LayerState>,
  o: PassOptions = {},
): void {
  const c = model.config;
  const F = model.ffn(l);
  const S = st.clsRows ? 1 : batch.S; // rows per example of U
  let f: Tensor | undefined = undefined;
  const padded = F % PADDED_WIDTH !== 0 && !ffnMask && o.fused === true && !o.save && !o.train &&
      u.shape.length === 2
    ? linearPadded(u, model.param(`l${l}.ffn1.w`), model.param(`l${l}.ffn1.b`), c.hiddenAct)
    : undefined;
  if (padded) {
    // inference with a pruned width F % 64 != 0: rows zero-padded to a multiple of 64 values
    // between the two products (st.z is [B·S, F₆₄]; its columns past F are zeros, not neurons)
    st.z = padded;
    st.zm = padded;
    f = linearFromPadded(padded, model.param(`l${l}.ffn2.w`), model.param(`l${l}.ffn2.b`));
  } else if (F > 0) {
    if (o.fused && !o.save && !o.train) {
      // inference: the activation runs in the matmul epilogue (no pre-activation kept)
      st.z = linear(u, model.param(`l${l}.ffn1.w`), model.param(`l${l}.ffn1.b`), c.hiddenAct);
    } else {
      st.h = linear(u, model.param(`l${l}.ffn1.w`), model.param(`l${l}.ffn1.b`));
      // a pass that keeps activations: activation and mask in one kernel where it applies (the
      // backward then recomputes act(h) and needs no z)
      const zm = o.save ? ffnActivation(st.h, ffnMask, S, c.hiddenAct) : undefined;
      if (zm) st.zm = zm;
      else st.z = c.hiddenAct === "relu" ? relu(st.h) : gelu(st.h);
    }
    if (!st.zm) st.zm = ffnMask ? scaleColsGrouped(st.z!, ffnMask, S) : st.z;
    f = linear(st.zm!, model.param(`l${l}.ffn2.w`), model.param(`l${l}.ffn2.b`));
  }
  // with 0 neurons the sub-layer's output is b₂ on every row
  const r = f
    ? residualNorm(model, `l${l}.ln2`, f, u, siteSeed(o, l, 3), o)
    : biasNorm(model, `l${l}.ln2`, model.param(`l${l}.ffn2.b`), u, siteSeed(o, l, 3), o);
  st.sum2 = r.sum;
  st.mean2 = r.mean;
  st.rstd2 = r.rstd;
  st.y = r.y;
}

/**
 * The tail every sub-layer shares: LN(residual + dropout(out)) with the LayerNorm `ln` (`.g`,
 * `.b`). Consumes `out`; returns the pre-LN sum and the LayerNorm's output and statistics.
 */
export function residualNorm(
  model: Model,
  ln: string,
  out: Tensor,
  residual: Tensor,
  seed: number,
  o: PassOptions,
): { sum?: Tensor; mean?: Tensor; rstd?: Tensor; y: Tensor } {
  if (o.fused === true && !o.save && !o.train) {
    const y = addLayerNormInference(out, residual, ...lnParams(model, ln));
    if (y) {
      out.release();
      return { y };
    }
  }
  const dropped = drop(out, model.config.hiddenDropout, o, seed);
  const r = addLayerNorm(dropped, residual, ...lnParams(model, ln));
  if (dropped !== out) dropped.release();
  out.release();
  return { sum: r.sum, mean: r.mean, rstd: r.rstd, y: r.y };
}

/** The LayerNorm `ln`'s gamma, beta and the model's epsilon, as the LayerNorm ops take them. */
function lnParams(model: Model, ln: string): [Tensor, Tensor, number] {
  return [model.param(`${ln}.g`), model.param(`${ln}.b`), model.config.layerNormEps];
}

/**
 * `residualNorm` of a zero-width sub-layer, whose output is its bias on every row: fused
 * inference adds the bias row inside the LayerNorm kernel (`biasLayerNormInference`), other passes
 * broadcast it to a tensor shaped like the residual first.
 */
function biasNorm(
  model: Model,
  ln: string,
  bias: Tensor,
  residual: Tensor,
  seed: number,
  o: PassOptions,
): ReturnType<typeof residualNorm> {
  if (o.fused === true && !o.save && !o.train) {
    const y = biasLayerNormInference(bias, residual, ...lnParams(model, ln));
    if (y) return { y };
  }
  return residualNorm(model, ln, broadcastRows(bias, residual.shape), residual, seed, o);
}

/** Per-example mask gradients of one layer: head [B·H_l] and ffn [B, F_l]. */
export interface LayerMaskGrads {
  /** ∂loss_b/∂m_head[l, h] at row b·H_l + h (undefined for a 0-head layer). */
  head?: Tensor;
  /** ∂loss_b/∂m_ffn[l, j] at [b, j] (undefined for a 0-neuron layer). */
  ffn?: Tensor;
}

/**
 * Backward of one layer given dY. Returns dX and the per-example mask gradients; when `grads` is
 * given, adds the layer's parameter gradients into it. `needDx: false` (the first layer of a pass
 * that wants mask gradients only) stops once the head-mask gradient is known — no attention
 * backward below it, no dX (returned as undefined). Releases the layer's saved activations
 * except `x`.
 */
export function layerBackward(
  model: Model,
  l: number,
  st: LayerState,
  dy: Tensor,
  batch: BatchTensors,
  headMask: Tensor | undefined,
  ffnMask: Tensor | undefined,
  grads: Grads | undefined,
  o: PassOptions = {},
  needDx = true,
): { dx?: Tensor; masks: LayerMaskGrads } {
  if (!needDx && grads) {
    throw new InvalidArgumentError("layerBackward: parameter gradients need the full backward");
  }
  const c = model.config;
  const S = st.clsRows ? 1 : batch.S; // rows per example of the FFN
  const H = model.heads(l), F = model.ffn(l);
  const rowsOut = batch.B * batch.S;
  const masks: LayerMaskGrads = {};
  // LN₂
  const dsum2 = normGrads(grads, `l${l}.ln2`, dy, st.sum2, st.mean2, st.rstd2, model); // = dU
  // (residual) and d(ffn output after dropout)
  const df = undrop(dsum2, c.hiddenDropout, o, siteSeed(o, l, 3));
  if (grads) accumulate(grads, `l${l}.ffn2.b`, sumRows(df));
  let du = dsum2;
  if (F > 0) {
    let dz = linearGrads(grads, `l${l}.ffn2.w`, df, st.zm!, model);
    let dh1: Tensor;
    let db1: Tensor | undefined; // W₁'s bias gradient, where the fused backward sums it
    if (!st.z) {
      // the forward's fused activation and mask (`ffnActivation`)
      const r = ffnActivationBackward(dz, st.h!, ffnMask, S, c.hiddenAct, grads !== undefined)!;
      dh1 = r.dh;
      db1 = r.db;
      if (r.ds) masks.ffn = r.ds;
    } else {
      if (ffnMask) {
        const r = scaleColsGroupedBackward(dz, st.z, ffnMask, S);
        dz.release();
        dz = r.dx;
        masks.ffn = r.ds;
      }
      dh1 = c.hiddenAct === "relu" ? reluBackward(dz, st.h!) : geluBackward(dz, st.h!);
    }
    dz.release();
    if (grads) accumulate(grads, `l${l}.ffn1.b`, db1 ?? sumRows(dh1));
    // dU = dsum2 + dh1·W₁, accumulated in place (dsum2's readers are recorded above)
    du = linearGrads(grads, `l${l}.ffn1.w`, dh1, st.u, model, dsum2);
    dh1.release();
  }
  if (df !== dsum2 && !df.released) df.release();
  if (st.clsFfnOnly) {
    // the FFN ran at the [CLS] rows only, the MHA sub-layer at every row
    const t = selectRowsBackward(du, st.clsRows!, rowsOut);
    du.release();
    du = t;
  }
  // LN₁
  const dsum1 = normGrads(grads, `l${l}.ln1`, du, st.sum1, st.mean1, st.rstd1, model);
  du.release();
  const dattn = undrop(dsum1, c.hiddenDropout, o, siteSeed(o, l, 2));
  if (grads) accumulate(grads, `l${l}.o.b`, sumRows(dattn));
  // a [CLS]-only layer goes back to every row (zeros but [CLS]) for the attention and dX
  const clsMha = st.clsRows !== undefined && !st.clsFfnOnly;
  let dx = clsMha ? selectRowsBackward(dsum1, st.clsRows!, rowsOut) : dsum1;
  if (H > 0 && (needDx || headMask)) {
    let dMerged = linearGrads(grads, `l${l}.o.w`, dattn, st.mergedCls ?? st.merged!, model);
    if (clsMha && !st.clsQuery) {
      const t = selectRowsBackward(dMerged, st.clsRows!, rowsOut);
      dMerged.release();
      dMerged = t;
    }
    const dqkv = st.qkv
      ? fusedAttentionGrads(model, l, st, dMerged, batch, headMask, masks, needDx)
      : unfusedAttentionGrads(model, l, st, dMerged, batch, headMask, masks, o, needDx);
    if (!dqkv) {
      if (dx !== dsum1) dx.release();
      dsum1.release();
      if (dattn !== dsum1 && !dattn.released) dattn.release();
      releaseLayerState(st);
      return { masks };
    }
    if (grads) accumulate(grads, `l${l}.qkv.b`, sumRows(dqkv));
    // dX = dsum1 + dqkv·W_qkv, accumulated in place
    dx = linearGrads(grads, `l${l}.qkv.w`, dqkv, st.x, model, dx);
    dqkv.release();
  }
  if (dattn !== dsum1 && !dattn.released) dattn.release();
  if (dx !== dsum1) dsum1.release();
  releaseLayerState(st);
  if (!needDx) {
    dx.release();
    return { masks };
  }
  return { dx, masks };
}

/**
 * Attention backward of the saving fused forward (`st.qkv` set): dqkv [B·S, 3·H·dh] from dMerged
 * (released here), the head-mask gradient into `masks.head` when there is a head mask; undefined
 * without `needDx`.
 */
function fusedAttentionGrads(
  model: Model,
  l: number,
  st: LayerState,
  dMerged: Tensor,
  batch: BatchTensors,
  headMask: Tensor | undefined,
  masks: LayerMaskGrads,
  needDx: boolean,
): Tensor | undefined {
  const c = model.config;
  const queries = st.clsQuery ? 1 : undefined;
  const shape = attentionShape(batch.B, batch.S, model.heads(l), c.headDim, c.arch, queries);
  const { delta, headGrad } = attentionDelta(dMerged, st.ctxMerged!, headMask, shape);
  if (headMask) masks.head = headGrad;
  else headGrad.release();
  const dqkv = needDx
    ? fusedAttentionBackward(
      { qkv: st.qkv!, ctx: st.ctxMerged!, stats: st.attnStats! },
      dMerged,
      delta,
      batch.keyMask,
      headMask,
      shape,
      st.attnDropout,
    )
    : undefined;
  delta.release();
  dMerged.release();
  return dqkv;
}

/**
 * Attention backward through the saved q, k, v and probabilities: dqkv [B·S, 3·H·dh] from dMerged
 * (released here), the head-mask gradient into `masks.head` when there is a head mask; undefined
 * without `needDx`.
 */
function unfusedAttentionGrads(
  model: Model,
  l: number,
  st: LayerState,
  dMerged: Tensor,
  batch: BatchTensors,
  headMask: Tensor | undefined,
  masks: LayerMaskGrads,
  o: PassOptions,
  needDx: boolean,
): Tensor | undefined {
  const c = model.config;
  const { B, S } = batch;
  const H = model.heads(l), dh = c.headDim;
  let dctxBase = mergeHeadsBackward(dMerged, B, S, H);
  dMerged.release();
  if (headMask) {
    const flat = [B * H, S * dh];
    const r = scaleRowsBackward(dctxBase.view(flat), st.ctx!.view(flat), headMask);
    dctxBase.release();
    dctxBase = r.dx;
    masks.head = r.ds;
  }
  if (!needDx) {
    dctxBase.release();
    return undefined;
  }
  const dctx = dctxBase.shape.length === 3 ? dctxBase : dctxBase.view([B * H, S, dh]);
  const dProbsD = matmul(dctx, st.v!, { transB: true });
  const dv = matmul(st.probsDropped!, dctx, { transA: true });
  dctxBase.release();
  const dProbs = undrop(dProbsD, c.attentionDropout, o, siteSeed(o, l, 1));
  if (dProbs !== dProbsD) dProbsD.release();
  const dScores = softmaxBackward(dProbs, st.probs!, 1 / Math.sqrt(dh));
  dProbs.release();
  const dq = matmul(dScores, st.k!);
  const dk = matmul(dScores, st.q!, { transA: true });
  dScores.release();
  const dqkv = model.gpu.empty([B * S, 3 * H * dh]);
  splitHeadsBackward(dq, dqkv, B, S, H, dh, 0);
  splitHeadsBackward(dk, dqkv, B, S, H, dh, H * dh);
  splitHeadsBackward(dv, dqkv, B, S, H, dh, 2 * H * dh);
  dq.release();
  dk.release();
  dv.release();
  return dqkv;
}

/**
 * Releases a layer's saved activations: never its input `x`, `y` only when `withOutput`, and none
 * of the tensors in `keep`.
 */
export function releaseLayerState(st: LayerState, withOutput = false, keep?: Set<Tensor>): void {
  const ts = [
    st.q,
    st.k,
    st.v,
    st.probsDropped !== st.probs ? st.probsDropped : undefined,
    st.probs,
    st.ctx,
    st.merged,
    st.mergedCls,
    st.xCls,
    st.qkv,
    st.ctxMerged,
    st.attnStats,
    st.sum1,
    st.mean1,
    st.rstd1,
    st.u,
    st.h,
    st.zm !== st.z ? st.zm : undefined,
    st.z,
    st.sum2,
    st.mean2,
    st.rstd2,
  ];
  if (withOutput) ts.push(st.y);
  for (const t of ts) if (t && !t.released && !keep?.has(t)) t.release();
}
