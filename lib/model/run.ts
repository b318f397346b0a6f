/**
 * Whole-model passes: `forward` (embeddings → layers → head → optional per-example loss) and
 * `backward` (loss → head → layers → embeddings) returning per-example mask gradients and adding
 * parameter gradients into a map. Everything is recorded into one submit; nothing is awaited.
 * `runModel` is the host-level convenience used by the CLI and tests.
 * @module
 */
import type { Tensor } from "../gpu/tensor.ts";
import {
  embeddingsBackward,
  embeddingsForward,
  type EmbeddingState,
  type Grads,
  layerBackward,
  layerForward,
  type LayerMaskGrads,
  type LayerState,
  type PassOptions,
  releaseEmbeddingState,
  releaseLayerState,
} from "./encoder.ts";
import { headBackward, headForward, type HeadState, releaseHeadState } from "./heads.ts";
import {
  type BatchTensors,
  type MaskTensors,
  type MaskValues,
  type ModelInput,
  uploadBatch,
  uploadMasks,
} from "./inputs.ts";
import { type LossOptions, taskLoss, taskLossBackward } from "./loss.ts";
import type { Model } from "./model.ts";

/** Options of a whole-model forward pass. */
export interface ForwardOptions extends PassOptions, LossOptions {
  /** Compute the per-example loss (needs labels in the batch). */
  withLoss?: boolean;
}

/** The result of `forward`; `release()` frees everything it holds. */
export interface ForwardResult {
  /** Classification/regression logits [B, numLabels]. */
  logits?: Tensor;
  /** QA start logits [B, S]. */
  start?: Tensor;
  /** QA end logits [B, S]. */
  end?: Tensor;
  /** Per-example losses [B] (when `withLoss`). */
  loss?: Tensor;
  /** Final hidden states [B·S, d] ([B, d], the [CLS] rows, with `clsOnlyLastLayer`). */
  hidden: Tensor;
  /** Saved state for `backward` (when `save`). */
  saved?: { emb: EmbeddingState; layers: LayerState[]; head: HeadState };
  /** Releases all tensors of the result (outputs included). */
  release(): void;
}

/** Runs the model on an uploaded batch. */
export function forward(
  model: Model,
  batch: BatchTensors,
  masks: MaskTensors | undefined,
  o: ForwardOptions = {},
): ForwardResult {
  const L = model.config.numLayers;
  // inference passes take the fused attention kernel where it applies (CPU adapters)
  const pass = { ...o, fused: o.fused ?? (!o.save && !o.train) };
  const emb = embeddingsForward(model, batch, pass);
  const layers: LayerState[] = [];
  let x = emb.out;
  for (let l = 0; l < L; l++) {
    const st = layerForward(model, l, x, batch, masks?.head[l], masks?.ffn[l], pass);
    if (!o.save) {
      releaseLayerState(st);
      if (l === 0) releaseEmbeddingState({ ...emb, out: emb.out === x ? emb.out : x });
      else if (x !== st.y) x.release();
    } else layers.push(st);
    x = st.y;
  }
  if (!o.save && L === 0) {
    for (const t of new Set([emb.sum, emb.mean, emb.rstd])) t?.release();
    if (emb.normed !== emb.out) emb.normed.release();
  }
  const hidden = x;
  const head = headForward(model, hidden, batch, o);
  const loss = o.withLoss ? taskLoss(model, head, batch, o) : undefined;
  const result: ForwardResult = {
    logits: head.logits,
    start: head.start,
    end: head.end,
    loss,
    hidden,
    saved: o.save ? { emb, layers, head } : undefined,
    release: () => {
      releaseHeadState(head, hidden);
      if (loss && !loss.released) loss.release();
      if (o.save) {
        for (const st of layers) releaseLayerState(st);
        releaseEmbeddingState(emb);
        for (const st of layers) if (!st.y.released) st.y.release();
      } else if (!hidden.released) hidden.release();
    },
  };
  return result;
}

/** Per-example mask gradients of every layer. */
export interface MaskGrads {
  /** Per layer: [B·H_l] (row b·H_l + h), or undefined for 0-head layers / no masks. */
  head: (Tensor | undefined)[];
  /** Per layer: [B, F_l], or undefined. */
  ffn: (Tensor | undefined)[];
  /** Releases them. */
  release(): void;
}

/** Options of `backward`. */
export interface BackwardOptions extends PassOptions, LossOptions {
  /** Multiplies the per-example losses before differentiation (1 = per-example, 1/B = mean). */
  lossScale: number;
  /** When given, parameter gradients are ADDED into this map. */
  grads?: Grads;
}

/**
 * Backward from scale·Σ_b loss_b. Consumes the saved state of `fwd` (released as it goes; call
 * `fwd.release()` afterwards for the outputs). Mask gradients need `masks` (all ones for Fisher).
 */
export function backward(
  model: Model,
  fwd: ForwardResult,
  batch: BatchTensors,
  masks: MaskTensors | undefined,
  o: BackwardOptions,
): MaskGrads {
  if (!fwd.saved) throw new Error("backward needs forward(..., { save: true })");
  const { emb, layers, head } = fwd.saved;
  const dHead = taskLossBackward(model, head, batch, o.lossScale, o);
  let dy = headBackward(model, head, fwd.hidden, batch, dHead, o.grads, o);
  for (const t of Object.values(dHead)) if (t) t.release();
  const L = model.config.numLayers;
  const headGrads: (Tensor | undefined)[] = Array(L).fill(undefined);
  const ffnGrads: (Tensor | undefined)[] = Array(L).fill(undefined);
  for (let l = L - 1; l >= 0; l--) {
    // without parameter gradients nothing below layer 0 needs dX
    const r: { dx?: Tensor; masks: LayerMaskGrads } = layerBackward(
      model,
      l,
      layers[l],
      dy,
      batch,
      masks?.head[l],
      masks?.ffn[l],
      o.grads,
      o,
      o.grads !== undefined || l > 0,
    );
    dy.release();
    headGrads[l] = r.masks.head;
    ffnGrads[l] = r.masks.ffn;
    if (!r.dx) break; // layer 0 of a mask-gradient-only pass
    dy = r.dx;
  }
  if (o.grads) embeddingsBackward(model, batch, emb, dy, o.grads, o);
  if (!dy.released) dy.release();
  return {
    head: headGrads,
    ffn: ffnGrads,
    release: () => {
      for (const t of [...headGrads, ...ffnGrads]) if (t && !t.released) t.release();
    },
  };
}

/** Host-level results of `runModel`. */
export interface RunResult {
  /** Logits [B][numLabels] (classification/regression). */
  logits?: number[][];
  /** QA start logits [B][S]. */
  startLogits?: number[][];
  /** QA end logits [B][S]. */
  endLogits?: number[][];
  /** Per-example losses [B]. */
  perExampleLoss?: number[];
  /** Per-example head mask gradients [B][L][H_l]. */
  headMaskGrad?: number[][][];
  /** Per-example FFN mask gradients [B][L][F_l]. */
  ffnMaskGrad?: number[][][];
}

const rows = (a: Float32Array, r: number, c: number): number[][] =>
  Array.from({ length: r }, (_, i) => Array.from(a.subarray(i * c, (i + 1) * c)));

/** Uploads a batch, runs forward (and backward for mask gradients when labels are present). */
export async function runModel(
  model: Model,
  input: ModelInput,
  o: {
    masks?: MaskValues;
    maskGrads?: boolean;
    loss?: LossOptions;
    clsOnlyLastLayer?: PassOptions["clsOnlyLastLayer"];
  } = {},
): Promise<RunResult> {
  const c = model.config;
  const batch = uploadBatch(model.gpu, c, input);
  const masks = uploadMasks(model.gpu, c, batch.B, o.masks);
  const hasLabels =
    !!(input.labels || input.targets || (input.startPositions && input.endPositions));
  const wantGrads = hasLabels && (o.maskGrads ?? true);
  const pass = { clsOnlyLastLayer: o.clsOnlyLastLayer, ...o.loss };
  const fwd = forward(model, batch, masks, { withLoss: hasLabels, save: wantGrads, ...pass });
  const out: RunResult = {};
  const B = batch.B, S = batch.S;
  try {
    let mg: MaskGrads | undefined;
    if (wantGrads) mg = backward(model, fwd, batch, masks, { lossScale: 1, ...pass });
    if (fwd.logits) out.logits = rows(await fwd.logits.read(), B, c.numLabels);
    if (fwd.start) out.startLogits = rows(await fwd.start.read(), B, S);
    if (fwd.end) out.endLogits = rows(await fwd.end.read(), B, S);
    if (fwd.loss) out.perExampleLoss = Array.from(await fwd.loss.read());
    if (mg) {
      const L = c.numLayers;
      const hg: number[][][] = Array.from({ length: B }, () => []);
      const fg: number[][][] = Array.from({ length: B }, () => []);
      for (let l = 0; l < L; l++) {
        const H = c.layerHeads[l].length, F = c.layerFfn[l];
        const h = mg.head[l] ? await mg.head[l]!.read() : new Float32Array(B * H);
        const f = mg.ffn[l] ? await mg.ffn[l]!.read() : new Float32Array(B * F);
        for (let b = 0; b < B; b++) {
          hg[b].push(Array.from(h.subarray(b * H, (b + 1) * H)));
          fg[b].push(Array.from(f.subarray(b * F, (b + 1) * F)));
        }
      }
      out.headMaskGrad = hg;
      out.ffnMaskGrad = fg;
      mg.release();
    }
  } finally {
    fwd.release();
    masks.release();
    batch.release();
  }
  return out;
}
