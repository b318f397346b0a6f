/**
 * Physical compaction (METHOD.md §7): remove pruned heads and neurons from the weights and fold
 * the tuned mask values into W_o's and W₂'s columns, giving a smaller model whose outputs equal the
 * masked model's. Kept sets come from the binary keep masks, never from "value ≠ 0"; zero-width
 * sub-layers are representable (the encoder then adds only the output bias).
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";
import type { EncoderConfig } from "../model/config.ts";
import { downloadWeights, type Model, uploadModel } from "../model/model.ts";
import type { HostTensor, Weights } from "../model/weights.ts";
import type { MaskSet } from "./types.ts";

/** Kept units (binary) and the values folded into the weights, per present unit of each layer. */
export interface CompactionPlan {
  /** Binary keep masks (1 = keep) over the model's present units, flat l·H + h / l·F + j. */
  keep: MaskSet;
  /** Mask values (tuned or binary) over the same layout; only kept entries are used. */
  values: MaskSet;
}

function rowsOf(t: HostTensor, rows: number[], rowLen: number): HostTensor {
  const out = new Float32Array(rows.length * rowLen);
  rows.forEach((r, i) => out.set(t.data.subarray(r * rowLen, (r + 1) * rowLen), i * rowLen));
  return { shape: t.shape.length === 1 ? [rows.length] : [rows.length, rowLen], data: out };
}

function colsOf(t: HostTensor, cols: number[], scale: number[]): HostTensor {
  const [n, m] = t.shape;
  const out = new Float32Array(n * cols.length);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < cols.length; k++) {
      out[i * cols.length + k] = t.data[i * m + cols[k]] * scale[k];
    }
  }
  return { shape: [n, cols.length], data: out };
}

/** Compacts host weights; returns the new config and weights (inputs are not modified). */
export function compactWeights(
  c: EncoderConfig,
  w: Weights,
  plan: CompactionPlan,
): { config: EncoderConfig; weights: Weights } {
  const { keep, values } = plan;
  if (keep.L !== c.numLayers) {
    throw new InvalidArgumentError(`masks have ${keep.L} layers, the model ${c.numLayers}`);
  }
  const dh = c.headDim;
  const out: Weights = new Map(w);
  const layerHeads: number[][] = [];
  const layerFfn: number[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const present = c.layerHeads[l];
    if (present.length > keep.H || c.layerFfn[l] > keep.F) {
      throw new InvalidArgumentError(`layer ${l}: masks are narrower than the model`);
    }
    const heads: number[] = [], headScale: number[] = [];
    present.forEach((_, h) => {
      if (keep.head[l * keep.H + h] === 1) {
        heads.push(h);
        headScale.push(values.head[l * values.H + h]);
      }
    });
    const rows: number[] = heads.flatMap((h) => Array.from({ length: dh }, (_, k) => h * dh + k));
    const colScale = heads.flatMap((_, i) => Array(dh).fill(headScale[i]));
    for (const x of ["q", "k", "v"]) {
      out.set(`l${l}.${x}.w`, rowsOf(w.get(`l${l}.${x}.w`)!, rows, c.hiddenSize));
      out.set(`l${l}.${x}.b`, rowsOf(w.get(`l${l}.${x}.b`)!, rows, 1));
    }
    out.set(`l${l}.o.w`, colsOf(w.get(`l${l}.o.w`)!, rows, colScale));
    layerHeads.push(heads.map((h) => present[h]));
    const neurons: number[] = [], neuronScale: number[] = [];
    for (let j = 0; j < c.layerFfn[l]; j++) {
      if (keep.ffn[l * keep.F + j] === 1) {
        neurons.push(j);
        neuronScale.push(values.ffn[l * values.F + j]);
      }
    }
    out.set(`l${l}.ffn1.w`, rowsOf(w.get(`l${l}.ffn1.w`)!, neurons, c.hiddenSize));
    out.set(`l${l}.ffn1.b`, rowsOf(w.get(`l${l}.ffn1.b`)!, neurons, 1));
    out.set(`l${l}.ffn2.w`, colsOf(w.get(`l${l}.ffn2.w`)!, neurons, neuronScale));
    layerFfn.push(neurons.length);
  }
  return { config: { ...c, layerHeads, layerFfn }, weights: out };
}

/** Compacts a GPU model into a new, physically smaller GPU model. */
export async function compactModel(model: Model, plan: CompactionPlan): Promise<Model> {
  const w = await downloadWeights(model);
  const { config, weights } = compactWeights(model.config, w, plan);
  return uploadModel({
    config,
    weights,
    vocabText: model.vocabText,
    tokenizerConfig: model.tokenizerConfig,
  }, model.gpu);
}

/** The parameter count of a config (all tensors, embeddings included). */
export function parameterCount(c: EncoderConfig): number {
  const d = c.hiddenSize, dh = c.headDim;
  let n = c.vocabSize * d + c.maxPositions * d + (c.arch === "bert" ? c.typeVocabSize * d : 0) +
    2 * d;
  for (let l = 0; l < c.numLayers; l++) {
    const hd = c.layerHeads[l].length * dh, f = c.layerFfn[l];
    n += 3 * (hd * d + hd) + d * hd + d + 2 * d + f * d + f + d * f + d + 2 * d;
  }
  if (c.head === "qa") n += 2 * d + 2;
  else n += d * d + d + c.numLabels * d + c.numLabels;
  return n;
}
