/**
 * SQuAD v1.1 / v2.0: JSON reading, features as Hugging Face run_qa's `prepare_train_features` /
 * `prepare_validation_features` (question first and left-stripped, context-only truncation with
 * overflow windows of max_length 384 and stride 128), and answer extraction from start/end
 * logits as utils_qa's `postprocess_qa_predictions` (n-best 20, max answer length 30, v2 null
 * threshold 0).
 *
 * Character positions are JavaScript string (UTF-16) indices; `answer_start` from the JSON
 * (Python code-point indices) is converted when a context has characters outside the BMP.
 * @module
 */
import { FileFormatError, InvalidArgumentError } from "../errors.ts";
import type { Tokenized, WordPieceTokenizer } from "../text/wordpiece.ts";
import type { Encoded } from "./batch.ts";

/** The SQuAD JSON file as published (`{version, data: [{title, paragraphs: [...]}]}`). */
export interface SquadJson {
  /** Dataset version string ("1.1", "v2.0"). */
  version?: string;
  /** Articles in file order. */
  data: {
    title: string;
    paragraphs: {
      context: string;
      qas: {
        id: string;
        question: string;
        answers: { text: string; answer_start: number }[];
        is_impossible?: boolean;
      }[];
    }[];
  }[];
}

/** One question with its context, gold answers (UTF-16 starts) and article index (file order). */
export interface SquadExample {
  /** SQuAD question id. */
  id: string;
  /** Article title. */
  title: string;
  /** 0-based article index in file order. */
  articleIndex: number;
  /** The paragraph text. */
  context: string;
  /** The question as in the file (not stripped). */
  question: string;
  /** Gold answers; empty for unanswerable (v2) questions. */
  answers: { text: string; answerStart: number }[];
}

/** One model input window of an example: encoded ids plus what post-processing needs. */
export interface SquadFeature extends Encoded {
  /** Index of the example (in the list given to `prepareSquadFeatures`). */
  exampleIndex: number;
  /** SQuAD id of the example. */
  exampleId: string;
  /** Context char span per token; null for question, special and padding tokens. */
  offsets: ([number, number] | null)[];
  /** Token index of the first and one-past-last context token. */
  contextStart: number;
  /** One past the last context token. */
  contextEnd: number;
  /** Answer start/end token (0 = [CLS] when impossible or outside this window). */
  startPosition: number;
  /** Answer end token (0 = [CLS]). */
  endPosition: number;
}

/** Feature options (run_qa defaults). */
export interface SquadFeatureOptions {
  /** Maximum feature length (default 384). */
  maxLength?: number;
  /** Overlap in tokens between windows (default 128). */
  docStride?: number;
}

/** Reads and checks a SQuAD JSON file; FileFormatError for a missing file or a wrong layout. */
export async function readSquad(path: string): Promise<SquadJson> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new FileFormatError(`cannot read SQuAD file ${path}: ${(e as Error).message}`);
  }
  let json: SquadJson;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FileFormatError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (!json || !Array.isArray(json.data)) {
    throw new FileFormatError(`${path}: no "data" array; is this a SQuAD v1.1/v2.0 file?`);
  }
  return json;
}

/** Flattens a SQuAD JSON into examples in file order (articles → paragraphs → questions). */
export function squadExamples(json: SquadJson): SquadExample[] {
  const out: SquadExample[] = [];
  json.data.forEach((article, articleIndex) => {
    for (const p of article.paragraphs ?? []) {
      if (typeof p.context !== "string" || !Array.isArray(p.qas)) {
        throw new FileFormatError(`SQuAD article ${articleIndex}: paragraph without context/qas`);
      }
      const toUtf16 = codePointToUtf16(p.context);
      for (const qa of p.qas) {
        out.push({
          id: qa.id,
          title: article.title,
          articleIndex,
          context: p.context,
          question: qa.question,
          answers: (qa.answers ?? []).map((a) => ({
            text: a.text,
            answerStart: toUtf16(a.answer_start),
          })),
        });
      }
    }
  });
  if (out.length === 0) throw new FileFormatError("SQuAD file has no questions");
  return out;
}

function codePointToUtf16(s: string): (i: number) => number {
  if (!/[\uD800-\uDFFF]/.test(s)) return (i) => i;
  const map: number[] = [];
  for (let u = 0; u < s.length;) {
    map.push(u);
    u += s.codePointAt(u)! > 0xffff ? 2 : 1;
  }
  map.push(s.length);
  return (i) => map[i] ?? s.length;
}

/**
 * Keeps the articles of one side of fastprune's SQuAD split: article i (0-based, file order) is
 * held out when i % 5 == 4; "heldout" returns those, "train" the rest.
 */
export function byArticleSplit(dataset: SquadJson, which: "heldout" | "train"): SquadJson {
  if (which !== "heldout" && which !== "train") {
    throw new InvalidArgumentError(`split must be "heldout" or "train", got "${which}"`);
  }
  const keep = (i: number) => (i % 5 === 4) === (which === "heldout");
  return { ...dataset, data: dataset.data.filter((_, i) => keep(i)) };
}

/**
 * Builds model features for examples, combining run_qa's prepare_train_features (answer
 * positions from the first gold answer; [CLS] = 0 when there is none or it is not inside the
 * window) and prepare_validation_features (offsets null outside the context, example id).
 * One deliberate difference: the start-position walk stops at the last context token, whereas
 * HF's loop can run past [SEP] into padding when the answer starts in the window's last token.
 */
export function prepareSquadFeatures(
  tok: WordPieceTokenizer,
  examples: SquadExample[],
  o: SquadFeatureOptions = {},
): SquadFeature[] {
  const maxLength = o.maxLength ?? 384;
  const stride = o.docStride ?? 128;
  const features: SquadFeature[] = [];
  let cachedContext: string | null = null;
  let ctx: Tokenized = { tokens: [], ids: [], offsets: [] };
  examples.forEach((ex, exampleIndex) => {
    if (ex.context !== cachedContext) {
      ctx = tok.tokenize(ex.context);
      cachedContext = ex.context;
    }
    const q = tok.tokenize(ex.question.replace(/^\s+/, ""));
    const budget = maxLength - q.ids.length - 3;
    const total = ctx.ids.length;
    const windows: [number, number][] = [];
    if (total <= budget) {
      windows.push([0, total]);
    } else {
      if (budget <= stride) {
        throw new InvalidArgumentError(
          `question ${ex.id} has ${q.ids.length} tokens: only ${budget} context tokens fit in ${maxLength}, not more than the stride ${stride}`,
        );
      }
      for (let s = 0; s < total; s += budget - stride) {
        const e = Math.min(s + budget, total);
        windows.push([s, e]);
        if (e === total) break;
      }
    }
    for (const [ws, we] of windows) {
      const nq = q.ids.length;
      const inputIds = [tok.clsId, ...q.ids, tok.sepId, ...ctx.ids.slice(ws, we), tok.sepId];
      const tokenTypeIds = new Array<number>(inputIds.length).fill(0);
      const offsets: ([number, number] | null)[] = new Array(inputIds.length).fill(null);
      const contextStart = nq + 2;
      const contextEnd = contextStart + (we - ws);
      for (let t = contextStart; t < contextEnd; t++) {
        tokenTypeIds[t] = 1;
        offsets[t] = ctx.offsets[ws + t - contextStart];
      }
      tokenTypeIds[contextEnd] = 1;
      let startPosition = 0;
      let endPosition = 0;
      if (ex.answers.length > 0 && contextEnd > contextStart) {
        const startChar = ex.answers[0].answerStart;
        const endChar = startChar + ex.answers[0].text.length;
        let ts = contextStart;
        let te = contextEnd - 1;
        if (offsets[ts]![0] <= startChar && offsets[te]![1] >= endChar) {
          while (ts < contextEnd && offsets[ts]![0] <= startChar) ts++;
          startPosition = ts - 1;
          while (te >= contextStart && offsets[te]![1] >= endChar) te--;
          endPosition = te + 1;
        }
      }
      features.push({
        inputIds,
        tokenTypeIds,
        exampleIndex,
        exampleId: ex.id,
        offsets,
        contextStart,
        contextEnd,
        startPosition,
        endPosition,
      });
    }
  });
  return features;
}

/** Post-processing options (utils_qa defaults). */
export interface QaPostprocessOptions {
  /** SQuAD v2: allow the null answer (default false). */
  versionTwo?: boolean;
  /** Candidates per start/end and kept spans (default 20). */
  nBestSize?: number;
  /** Longest answer in tokens (default 30). */
  maxAnswerLength?: number;
  /** v2: predict "" when null score − best non-null score > this (default 0). */
  nullScoreDiffThreshold?: number;
}

/** Predicted answer text per example id, and for v2 the null-score difference per id. */
export interface QaPredictions {
  /** Answer text per example id. */
  predictions: Record<string, string>;
  /** v2: null score − best non-null score per id (empty for v1). */
  scoreDiffs: Record<string, number>;
}

/**
 * Turns per-feature start/end logits (row f = feature f, as long as the model's padded row:
 * ranking runs over the whole row and positions without a context offset, padding included,
 * are then skipped, as in HF) into answer texts exactly as HF `postprocess_qa_predictions`:
 * top-n_best starts × ends per feature, spans inside the context with end ≥ start and length ≤
 * max, best score over all the example's features; v2 adds the minimum null score over features
 * and predicts "" when null − best > threshold.
 */
export function postprocessQaPredictions(
  examples: SquadExample[],
  features: SquadFeature[],
  startLogits: ArrayLike<number>[],
  endLogits: ArrayLike<number>[],
  o: QaPostprocessOptions = {},
): QaPredictions {
  const v2 = o.versionTwo ?? false;
  const nBest = o.nBestSize ?? 20;
  const maxLen = o.maxAnswerLength ?? 30;
  const threshold = o.nullScoreDiffThreshold ?? 0;
  if (startLogits.length !== features.length || endLogits.length !== features.length) {
    throw new InvalidArgumentError(
      `got ${startLogits.length} start and ${endLogits.length} end logit rows for ${features.length} features`,
    );
  }
  const perExample: number[][] = examples.map(() => []);
  features.forEach((f, i) => perExample[f.exampleIndex]?.push(i));
  const predictions: Record<string, string> = {};
  const scoreDiffs: Record<string, number> = {};
  interface Pred {
    offsets: [number, number];
    score: number;
    startLogit: number;
    endLogit: number;
  }
  examples.forEach((ex, exampleIndex) => {
    let minNull: Pred | null = null;
    const prelim: Pred[] = [];
    for (const fi of perExample[exampleIndex]) {
      const f = features[fi];
      const sl = startLogits[fi];
      const el = endLogits[fi];
      const nullScore = sl[0] + el[0];
      if (minNull === null || minNull.score > nullScore) {
        minNull = { offsets: [0, 0], score: nullScore, startLogit: sl[0], endLogit: el[0] };
      }
      const starts = topIndices(sl, nBest);
      const ends = topIndices(el, nBest);
      for (const s of starts) {
        for (const e of ends) {
          const os = f.offsets[s];
          const oe = f.offsets[e];
          if (!os || !oe) continue;
          if (e < s || e - s + 1 > maxLen) continue;
          prelim.push({
            offsets: [os[0], oe[1]],
            score: sl[s] + el[e],
            startLogit: sl[s],
            endLogit: el[e],
          });
        }
      }
    }
    let nullScore = 0;
    if (v2 && minNull !== null) {
      prelim.push(minNull);
      nullScore = minNull.score;
    }
    const sorted = stableSortDesc(prelim).slice(0, nBest);
    if (
      v2 && minNull !== null && !sorted.some((p) => p.offsets[0] === 0 && p.offsets[1] === 0)
    ) {
      sorted.push(minNull);
    }
    const withText = sorted.map((p) => ({
      ...p,
      text: ex.context.slice(p.offsets[0], p.offsets[1]),
    }));
    if (withText.length === 0 || (withText.length === 1 && withText[0].text === "")) {
      withText.unshift({ text: "empty", startLogit: 0, endLogit: 0, score: 0, offsets: [0, 0] });
    }
    if (!v2) {
      predictions[ex.id] = withText[0].text;
    } else {
      let i = 0;
      while (i < withText.length - 1 && withText[i].text === "") i++;
      const best = withText[i];
      const diff = nullScore - best.startLogit - best.endLogit;
      scoreDiffs[ex.id] = diff;
      predictions[ex.id] = diff > threshold ? "" : best.text;
    }
  });
  return { predictions, scoreDiffs };
}

/** Indices of the k largest of x, largest first, ties by larger index first (reversed stable argsort). */
function topIndices(x: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: x.length }, (_, i) => i);
  idx.sort((a, b) => (x[b] - x[a]) || (b - a));
  return idx.slice(0, k);
}

function stableSortDesc<T extends { score: number }>(a: T[]): T[] {
  return a.map((p, i) => ({ p, i })).sort((x, y) => (y.p.score - x.p.score) || (x.i - y.i))
    .map((x) => x.p);
}
