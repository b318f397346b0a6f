/**
 * Model inputs: a padded batch on the host (`ModelInput`, structurally the same as the data
 * layer's `Batch`) and its upload to the GPU (`BatchTensors`), with validation that names the bad
 * value. Masks (`MaskValues`) are per layer, shared by the batch or given per example.
 * @module
 */
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import type { Gpu } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { EncoderConfig } from "./config.ts";

/** A padded batch on the host, row-major [B·S]. */
export interface ModelInput {
  /** Batch size B. */
  size: number;
  /** Padded sequence length S. */
  seqLen: number;
  /** Token ids [B·S]. */
  inputIds: Int32Array;
  /** Token type ids [B·S] (ignored by DistilBERT). */
  tokenTypeIds?: Int32Array;
  /** 1 for real tokens, 0 for padding [B·S]. */
  attentionMask: Int32Array;
  /** Class labels [B] (−100 = ignore). */
  labels?: Int32Array;
  /** Regression targets [B]. */
  targets?: Float32Array;
  /** QA start positions [B]. */
  startPositions?: Int32Array;
  /** QA end positions [B]. */
  endPositions?: Int32Array;
}

/** The batch uploaded to the GPU, plus host copies the backward pass needs. */
export interface BatchTensors {
  /** Batch size. */
  B: number;
  /** Sequence length. */
  S: number;
  /** Token ids (i32) [B·S] and their host copy. */
  ids: Tensor;
  /** Host copy of the token ids. */
  idsHost: Int32Array;
  /** Position ids (i32) [B·S] and host copy. */
  pos: Tensor;
  /** Host copy of the position ids. */
  posHost: Int32Array;
  /** Token type ids (BERT only). */
  types?: Tensor;
  /** Host copy of the token types. */
  typesHost?: Int32Array;
  /** Key mask f32 [B, S] (1 real, 0 pad). */
  keyMask: Tensor;
  /** Row index of each example's [CLS] token (i32) [B]. */
  clsRows: Tensor;
  /** Labels (i32) [B], when given. */
  labels?: Tensor;
  /** Regression targets [B], when given. */
  targets?: Tensor;
  /** QA start positions (i32) [B]. */
  startPos?: Tensor;
  /** QA end positions (i32) [B]. */
  endPos?: Tensor;
  /** Releases every tensor of the batch. */
  release(): void;
}

/** Checks a host batch against the config and uploads it. */
export function uploadBatch(gpu: Gpu, c: EncoderConfig, x: ModelInput): BatchTensors {
  const B = x.size, S = x.seqLen;
  if (!(B > 0 && S > 0)) throw new ShapeError(`batch must have B > 0 and S > 0, got ${B}×${S}`);
  if (S > c.maxPositions) {
    throw new InvalidArgumentError(
      `sequence length ${S} is past the model's max_position_embeddings ${c.maxPositions}`,
    );
  }
  const n = B * S;
  const check = (name: string, a: ArrayLike<number> | undefined, len: number) => {
    if (a && a.length !== len) {
      throw new ShapeError(`${name} has ${a.length} values, expected ${len}`);
    }
  };
  check("input_ids", x.inputIds, n);
  check("attention_mask", x.attentionMask, n);
  check("token_type_ids", x.tokenTypeIds, n);
  check("labels", x.labels, B);
  check("targets", x.targets, B);
  check("start_positions", x.startPositions, B);
  check("end_positions", x.endPositions, B);
  for (let i = 0; i < n; i++) {
    const id = x.inputIds[i];
    if (!(id >= 0 && id < c.vocabSize)) {
      throw new InvalidArgumentError(
        `input_ids[${Math.floor(i / S)}][${
          i % S
        }] = ${id} is outside the vocabulary (size ${c.vocabSize})`,
      );
    }
    const m = x.attentionMask[i];
    if (m !== 0 && m !== 1) {
      throw new InvalidArgumentError(`attention_mask values must be 0 or 1, got ${m}`);
    }
    if (c.arch === "bert" && x.tokenTypeIds) {
      const t = x.tokenTypeIds[i];
      if (!(t >= 0 && t < Math.max(1, c.typeVocabSize))) {
        throw new InvalidArgumentError(
          `token_type_ids value ${t} is outside 0…${c.typeVocabSize - 1}`,
        );
      }
    }
  }
  if (x.labels && c.head === "classification") {
    for (const y of x.labels) {
      if (y !== -100 && !(y >= 0 && y < c.numLabels)) {
        throw new InvalidArgumentError(
          `label ${y} is outside 0…${c.numLabels - 1} (−100 = ignore)`,
        );
      }
    }
  }
  const posHost = new Int32Array(n);
  for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) posHost[b * S + s] = s;
  const keyMask = new Float32Array(n);
  for (let i = 0; i < n; i++) keyMask[i] = x.attentionMask[i];
  const cls = Int32Array.from({ length: B }, (_, b) => b * S);
  const typesHost = c.arch === "bert" ? (x.tokenTypeIds ?? new Int32Array(n)) : undefined;
  const owned: Tensor[] = [];
  const up = (t: Tensor) => (owned.push(t), t);
  const bt: BatchTensors = {
    B,
    S,
    ids: up(gpu.uploadU32(x.inputIds, [n])),
    idsHost: x.inputIds,
    pos: up(gpu.uploadU32(posHost, [n])),
    posHost,
    types: typesHost ? up(gpu.uploadU32(typesHost, [n])) : undefined,
    typesHost,
    keyMask: up(gpu.upload(keyMask, [B, S])),
    clsRows: up(gpu.uploadU32(cls, [B])),
    labels: x.labels ? up(gpu.uploadU32(x.labels, [B])) : undefined,
    targets: x.targets ? up(gpu.upload(x.targets, [B])) : undefined,
    startPos: x.startPositions ? up(gpu.uploadU32(x.startPositions, [B])) : undefined,
    endPos: x.endPositions ? up(gpu.uploadU32(x.endPositions, [B])) : undefined,
    release: () => {
      for (const t of owned) if (!t.released) t.release();
    },
  };
  return bt;
}

/**
 * Mask values per layer: `head[l]` has H_l values (heads present, in order) and `ffn[l]` has F_l.
 * Either shared by every example (`number[][]`) or per example (`perExample: true`, then
 * `head[b][l]`…). Missing means all ones.
 */
export interface MaskValues {
  /** Head mask per layer (or per example and layer when `perExample`). */
  head?: ArrayLike<number>[] | ArrayLike<number>[][];
  /** FFN mask per layer (or per example and layer when `perExample`). */
  ffn?: ArrayLike<number>[] | ArrayLike<number>[][];
  /** True when the arrays are indexed [b][l][unit]. */
  perExample?: boolean;
}

/** Mask tensors per layer: head [B·H_l] (row b·H_l+h) and ffn [B, F_l]. */
export interface MaskTensors {
  /** Per-layer head mask tensors [B·H_l]. */
  head: Tensor[];
  /** Per-layer FFN mask tensors [B, F_l]. */
  ffn: Tensor[];
  /** Releases them. */
  release(): void;
}

/** Validates masks against the config and uploads them broadcast to the batch. */
export function uploadMasks(
  gpu: Gpu,
  c: EncoderConfig,
  B: number,
  m: MaskValues = {},
): MaskTensors {
  const L = c.numLayers;
  const build = (kind: "head" | "ffn", width: (l: number) => number) => {
    const src = m[kind];
    const out: Tensor[] = [];
    for (let l = 0; l < L; l++) {
      const w = width(l);
      const data = new Float32Array(B * w);
      for (let b = 0; b < B; b++) {
        let row: ArrayLike<number> | undefined;
        if (src) {
          if (m.perExample) {
            const ex = (src as ArrayLike<number>[][])[b];
            if (!ex) throw new ShapeError(`${kind}_mask has no entry for example ${b}`);
            row = ex[l];
          } else row = (src as ArrayLike<number>[])[l];
          if (!row) throw new ShapeError(`${kind}_mask has no entry for layer ${l}`);
          if (row.length !== w) {
            throw new ShapeError(
              `${kind}_mask of layer ${l} has ${row.length} values; the layer has ${w} ${
                kind === "head" ? "heads" : "neurons"
              }`,
            );
          }
        }
        for (let j = 0; j < w; j++) {
          const v = row ? row[j] : 1;
          if (!Number.isFinite(v)) {
            throw new InvalidArgumentError(`${kind}_mask values must be finite`);
          }
          data[b * w + j] = v;
        }
      }
      out.push(gpu.upload(data, kind === "head" ? [B * w] : [B, w]));
    }
    return out;
  };
  const head = build("head", (l) => c.layerHeads[l].length);
  const ffn = build("ffn", (l) => c.layerFfn[l]);
  return {
    head,
    ffn,
    release: () => {
      for (const t of [...head, ...ffn]) if (!t.released) t.release();
    },
  };
}
