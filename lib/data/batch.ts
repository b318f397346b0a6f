/**
 * Encoded examples and the batch format the model consumes: rows padded to the longest row of
 * the batch (dynamic padding), row-major [B·S] Int32 arrays, plus labels/targets/QA positions.
 * @module
 */
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import type { WordPieceTokenizer } from "../text/wordpiece.ts";
import { GLUE_MAX_LENGTH, type GlueExample, glueTask } from "./glue.ts";

/** A batch of B rows of length S (S = the longest row in the batch). */
export interface Batch {
  /** B. */
  size: number;
  /** S. */
  seqLen: number;
  /** [B·S] token ids, padded with `padId`. */
  inputIds: Int32Array;
  /** [B·S] segment ids (0 for padding). */
  tokenTypeIds: Int32Array;
  /** [B·S] 1 for real tokens, 0 for padding. */
  attentionMask: Int32Array;
  /** Class labels [B] (classification). */
  labels?: Int32Array;
  /** Regression targets [B]. */
  targets?: Float32Array;
  /** QA start positions [B]. */
  startPositions?: Int32Array;
  /** QA end positions [B]. */
  endPositions?: Int32Array;
  /** Index (into the items given to `makeBatches`) of each row. */
  indices: number[];
}

/** One encoded example or feature, unpadded. */
export interface Encoded {
  /** Token ids including special tokens. */
  inputIds: number[];
  /** Segment ids. */
  tokenTypeIds: number[];
  /** Class index (classification). */
  label?: number;
  /** Regression target. */
  target?: number;
  /** QA answer start token. */
  startPosition?: number;
  /** QA answer end token. */
  endPosition?: number;
}

/**
 * `order` (indices into `items`) stably sorted by tokenized length: batched in this order, rows of
 * similar length share a batch, so little goes to padding (a random batch of 32 SST-2 sentences is
 * padded to about twice their mean length). For passes whose per-example results do not depend on
 * the batch they ran in (the Fisher pass, tuning's sums, evaluation).
 */
export function lengthSortedOrder(items: readonly Encoded[], order: ArrayLike<number>): number[] {
  return Array.from(order).map((index, at) => ({ index, at })).sort((a, b) =>
    items[a.index].inputIds.length - items[b.index].inputIds.length || a.at - b.at
  ).map((e) => e.index);
}

/**
 * Groups items into batches of `batchSize` rows (the last may be smaller) in `order` (default
 * 0…n−1; may be any subset, repeats allowed), padding each batch to its longest row with `padId`
 * (default 0). Labels/targets/positions are included when the first row has them and must then
 * be present on every row (else InvalidArgumentError).
 */
export function makeBatches(
  items: Encoded[],
  batchSize: number,
  o: { padId?: number; order?: number[] } = {},
): Batch[] {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new InvalidArgumentError(`batch size ${batchSize} must be a positive integer`);
  }
  const order = o.order ?? items.map((_, i) => i);
  const padId = o.padId ?? 0;
  const batches: Batch[] = [];
  for (let b0 = 0; b0 < order.length; b0 += batchSize) {
    const indices = order.slice(b0, b0 + batchSize);
    const rows = indices.map((i) => {
      const item = items[i];
      if (item === undefined) {
        throw new InvalidArgumentError(`order index ${i} is outside the ${items.length} items`);
      }
      if (item.inputIds.length !== item.tokenTypeIds.length || item.inputIds.length === 0) {
        throw new ShapeError(
          `item ${i}: inputIds [${item.inputIds.length}] and tokenTypeIds [${item.tokenTypeIds.length}] must be equal and non-empty`,
        );
      }
      return item;
    });
    const B = rows.length;
    const S = Math.max(...rows.map((r) => r.inputIds.length));
    const inputIds = new Int32Array(B * S).fill(padId);
    const tokenTypeIds = new Int32Array(B * S);
    const attentionMask = new Int32Array(B * S);
    rows.forEach((r, b) => {
      inputIds.set(r.inputIds, b * S);
      tokenTypeIds.set(r.tokenTypeIds, b * S);
      attentionMask.fill(1, b * S, b * S + r.inputIds.length);
    });
    const batch: Batch = { size: B, seqLen: S, inputIds, tokenTypeIds, attentionMask, indices };
    const field = (key: "label" | "target" | "startPosition" | "endPosition"): number[] | null => {
      if (rows[0][key] === undefined) return null;
      return rows.map((r, b) => {
        const v = r[key];
        if (v === undefined) {
          throw new InvalidArgumentError(
            `item ${indices[b]} has no ${key} but item ${indices[0]} does`,
          );
        }
        return v;
      });
    };
    const labels = field("label");
    if (labels) batch.labels = Int32Array.from(labels);
    const targets = field("target");
    if (targets) batch.targets = Float32Array.from(targets);
    const starts = field("startPosition");
    if (starts) batch.startPositions = Int32Array.from(starts);
    const ends = field("endPosition");
    if (ends) batch.endPositions = Int32Array.from(ends);
    batches.push(batch);
  }
  return batches;
}

/**
 * Encodes GLUE examples as run_glue does (`tokenizer(a, b, truncation=True, max_length)`:
 * longest_first truncation, no padding — padding happens per batch), carrying label or target.
 */
export function encodeGlue(
  tok: WordPieceTokenizer,
  task: string,
  examples: GlueExample[],
  maxLength = GLUE_MAX_LENGTH,
): Encoded[] {
  glueTask(task);
  return examples.map((ex) => {
    const e = tok.encode(ex.textA, ex.textB ?? undefined, {
      maxLength,
      truncation: "longest_first",
    });
    const out: Encoded = { inputIds: e.inputIds, tokenTypeIds: e.tokenTypeIds };
    if (ex.label !== undefined) out.label = ex.label;
    if (ex.target !== undefined) out.target = ex.target;
    return out;
  });
}
