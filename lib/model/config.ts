/**
 * Model configuration: one normalized `EncoderConfig` for BERT and DistilBERT, parsed from and
 * written back to a Hugging Face `config.json` (including pruned models: HF `pruned_heads` and our
 * `intermediate_sizes`).
 * @module
 */
import { FileFormatError, InvalidArgumentError, UnsupportedModelError } from "../errors.ts";

/** Encoder family: BERT (token types, pooler) or DistilBERT (no token types, pre-classifier). */
export type Arch = "bert" | "distilbert";

/** Task head on top of the encoder: sequence classification, regression or span QA. */
export type TaskHead = "classification" | "regression" | "qa";

/**
 * Normalized encoder configuration shared by BERT and DistilBERT. Head and FFN counts describe the
 * ORIGINAL (unpruned) model; `layerHeads`/`layerFfn` say what each layer actually has.
 */
export interface EncoderConfig {
  arch: Arch;
  head: TaskHead;
  /** Output width of the head: classification ≥ 1 labels, regression 1, qa 2. */
  numLabels: number;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  /** ORIGINAL (unpruned) heads per layer. */
  numHeads: number;
  /** hiddenSize / numHeads. */
  headDim: number;
  /** ORIGINAL FFN width. */
  intermediateSize: number;
  /** Per layer: ORIGINAL indices of the heads present, ascending (all when unpruned; may be []). */
  layerHeads: number[][];
  /** Per layer: FFN width present (may be 0). */
  layerFfn: number[];
  maxPositions: number;
  /** Token type vocabulary; 0 for DistilBERT (no token types). */
  typeVocabSize: number;
  layerNormEps: number;
  hiddenAct: "gelu" | "relu";
  /** DistilBERT `sinusoidal_pos_embds` (position table is still stored as a weight). */
  sinusoidalPos: boolean;
  padTokenId: number;
  hiddenDropout: number;
  attentionDropout: number;
  classifierDropout: number;
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
  /** The original config.json (extra keys kept on save). */
  raw: Record<string, unknown>;
}

const BERT_ARCHS: Record<string, TaskHead | null> = {
  BertForSequenceClassification: "classification",
  BertForQuestionAnswering: "qa",
  BertModel: null,
  BertForMaskedLM: null,
  BertForPreTraining: null,
};
const DISTIL_ARCHS: Record<string, TaskHead | null> = {
  DistilBertForSequenceClassification: "classification",
  DistilBertForQuestionAnswering: "qa",
  DistilBertModel: null,
  DistilBertForMaskedLM: null,
};

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** Reads typed keys of a config object, raising FileFormatError that names the key and file. */
class Keys {
  constructor(readonly obj: Record<string, unknown>, readonly source: string) {}
  fail(key: string, what: string): never {
    throw new FileFormatError(`${this.source}: key "${key}" ${what}`);
  }
  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }
  int(key: string, dflt?: number, min = 1): number {
    if (!this.has(key)) {
      if (dflt === undefined) this.fail(key, "is missing (required integer)");
      return dflt;
    }
    const v = this.obj[key];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
      this.fail(key, `must be an integer ≥ ${min}, found ${JSON.stringify(v)}`);
    }
    return v;
  }
  num(key: string, dflt: number): number {
    if (!this.has(key)) return dflt;
    const v = this.obj[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      this.fail(key, `must be a non-negative number, found ${JSON.stringify(v)}`);
    }
    return v;
  }
  prob(key: string, dflt: number): number {
    const v = this.num(key, dflt);
    if (v >= 1) this.fail(key, `must be a probability in [0, 1), found ${v}`);
    return v;
  }
  str(key: string, dflt: string): string {
    if (!this.has(key)) return dflt;
    const v = this.obj[key];
    if (typeof v !== "string") this.fail(key, `must be a string, found ${JSON.stringify(v)}`);
    return v;
  }
  bool(key: string, dflt: boolean): boolean {
    if (!this.has(key)) return dflt;
    const v = this.obj[key];
    if (typeof v !== "boolean") this.fail(key, `must be true or false, found ${JSON.stringify(v)}`);
    return v;
  }
}

function archAndHead(k: Keys, headHint?: TaskHead): { arch: Arch; head: TaskHead } {
  let arch: Arch | undefined;
  let head: TaskHead | null = null;
  const archs = k.obj.architectures;
  if (archs !== undefined && archs !== null) {
    if (!Array.isArray(archs) || archs.length === 0 || typeof archs[0] !== "string") {
      k.fail(
        "architectures",
        `must be a non-empty list of class names, found ${JSON.stringify(archs)}`,
      );
    }
    const name = archs[0] as string;
    if (name in BERT_ARCHS) [arch, head] = ["bert", BERT_ARCHS[name]];
    else if (name in DISTIL_ARCHS) [arch, head] = ["distilbert", DISTIL_ARCHS[name]];
    else {
      throw new UnsupportedModelError(
        `${k.source}: architecture "${name}" is not supported; use a BERT or DistilBERT model ` +
          `(BertForSequenceClassification, BertForQuestionAnswering, ` +
          `DistilBertForSequenceClassification, DistilBertForQuestionAnswering)`,
      );
    }
  } else {
    const mt = k.obj.model_type;
    if (mt === "bert") arch = "bert";
    else if (mt === "distilbert") arch = "distilbert";
    else if (mt === undefined) {
      k.fail("model_type", `is missing and there is no "architectures" key`);
    } else {
      throw new UnsupportedModelError(
        `${k.source}: model_type ${
          JSON.stringify(mt)
        } is not supported; use "bert" or "distilbert"`,
      );
    }
  }
  return { arch: arch!, head: head ?? headHint ?? "classification" };
}

function labels(k: Keys, head: TaskHead): {
  numLabels: number;
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
} {
  let id2label: Record<string, string> | undefined;
  let label2id: Record<string, number> | undefined;
  if (k.has("id2label")) {
    const v = k.obj.id2label;
    if (!isObject(v) || Object.values(v).some((x) => typeof x !== "string")) {
      k.fail("id2label", "must map label ids to label names");
    }
    id2label = { ...v } as Record<string, string>;
  }
  if (k.has("label2id")) {
    const v = k.obj.label2id;
    if (!isObject(v) || Object.values(v).some((x) => typeof x !== "number")) {
      k.fail("label2id", "must map label names to integer ids");
    }
    label2id = { ...v } as Record<string, number>;
  }
  if (head === "qa") return { numLabels: 2, id2label, label2id };
  const n = k.int("num_labels", id2label ? Object.keys(id2label).length : 2);
  if (head === "regression" && n !== 1) {
    k.fail("num_labels", `must be 1 for a regression head, found ${n}`);
  }
  return { numLabels: n, id2label, label2id };
}

function activation(k: Keys, key: string): "gelu" | "relu" {
  const v = k.str(key, "gelu");
  if (v !== "gelu" && v !== "relu") {
    throw new UnsupportedModelError(
      `${k.source}: ${key} "${v}" is not supported; fastprune implements "gelu" (erf) and "relu"`,
    );
  }
  return v;
}

function prunedHeads(k: Keys, numLayers: number, numHeads: number): number[][] {
  const layerHeads: number[][] = [];
  for (let l = 0; l < numLayers; l++) layerHeads.push([...Array(numHeads).keys()]);
  if (!k.has("pruned_heads")) return layerHeads;
  const v = k.obj.pruned_heads;
  if (!isObject(v)) k.fail("pruned_heads", `must map layer index to removed head indices`);
  for (const [layerKey, removed] of Object.entries(v)) {
    const l = Number(layerKey);
    if (!Number.isInteger(l) || l < 0 || l >= numLayers) {
      k.fail("pruned_heads", `has layer "${layerKey}" outside 0..${numLayers - 1}`);
    }
    if (
      !Array.isArray(removed) ||
      removed.some((h) => !Number.isInteger(h) || h < 0 || h >= numHeads)
    ) {
      k.fail("pruned_heads", `layer ${l}: head indices must be integers in 0..${numHeads - 1}`);
    }
    const gone = new Set(removed as number[]);
    layerHeads[l] = layerHeads[l].filter((h) => !gone.has(h));
  }
  return layerHeads;
}

function layerWidths(k: Keys, numLayers: number, intermediate: number): number[] {
  if (!k.has("intermediate_sizes")) return Array(numLayers).fill(intermediate);
  const v = k.obj.intermediate_sizes;
  if (
    !Array.isArray(v) || v.length !== numLayers ||
    v.some((f) => !Number.isInteger(f) || f < 0 || f > intermediate)
  ) {
    k.fail(
      "intermediate_sizes",
      `must list ${numLayers} integers in 0..${intermediate} (one FFN width per layer)`,
    );
  }
  return [...v] as number[];
}

/**
 * Parses a Hugging Face `config.json` object into an `EncoderConfig`. The architecture and head come
 * from `architectures` (Bert/DistilBert ForSequenceClassification or ForQuestionAnswering; base and
 * MLM classes take `headHint`, else classification), or from `model_type` plus `headHint`;
 * `problem_type: "regression"` or `num_labels: 1` makes a classification head a regression head
 * (other problem types, e.g. multi-label, raise UnsupportedModelError).
 * Pruned models are read from `pruned_heads` (layer → ORIGINAL head indices removed) and
 * `intermediate_sizes` (FFN width per layer). Malformed keys raise FileFormatError naming the key and
 * `source`; unsupported architectures or activations raise UnsupportedModelError.
 */
export function parseConfig(
  json: unknown,
  source = "config.json",
  headHint?: TaskHead,
): EncoderConfig {
  if (!isObject(json)) throw new FileFormatError(`${source}: must be a JSON object`);
  const k = new Keys(json, source);
  let { arch, head } = archAndHead(k, headHint);
  if (head === "classification") {
    const pt = k.obj.problem_type;
    if (pt === "regression") head = "regression";
    else if (pt !== undefined && pt !== null && pt !== "single_label_classification") {
      throw new UnsupportedModelError(
        `${source}: problem_type ${JSON.stringify(pt)} is not supported ` +
          `(use "single_label_classification" or "regression")`,
      );
    }
  }
  const lab = labels(k, head);
  if (head === "classification" && lab.numLabels === 1) head = "regression";
  const posType = k.str("position_embedding_type", "absolute");
  if (posType !== "absolute") {
    throw new UnsupportedModelError(
      `${source}: position_embedding_type "${posType}" is not supported (only "absolute")`,
    );
  }
  const d = arch === "bert"
    ? {
      hiddenSize: k.int("hidden_size"),
      numLayers: k.int("num_hidden_layers"),
      numHeads: k.int("num_attention_heads"),
      intermediateSize: k.int("intermediate_size"),
      typeVocabSize: k.int("type_vocab_size", 2),
      layerNormEps: k.num("layer_norm_eps", 1e-12),
      hiddenAct: activation(k, "hidden_act"),
      sinusoidalPos: false,
      hiddenDropout: k.prob("hidden_dropout_prob", 0.1),
      attentionDropout: k.prob("attention_probs_dropout_prob", 0.1),
      classifierDropout: k.prob("classifier_dropout", k.prob("hidden_dropout_prob", 0.1)),
    }
    : {
      hiddenSize: k.int("dim"),
      numLayers: k.int("n_layers"),
      numHeads: k.int("n_heads"),
      intermediateSize: k.int("hidden_dim"),
      typeVocabSize: 0,
      layerNormEps: 1e-12,
      hiddenAct: activation(k, "activation"),
      sinusoidalPos: k.bool("sinusoidal_pos_embds", false),
      hiddenDropout: k.prob("dropout", 0.1),
      attentionDropout: k.prob("attention_dropout", 0.1),
      classifierDropout: head === "qa"
        ? k.prob("qa_dropout", 0.1)
        : k.prob("seq_classif_dropout", 0.2),
    };
  const hiddenKey = arch === "bert" ? "hidden_size" : "dim";
  if (d.hiddenSize % d.numHeads !== 0) {
    k.fail(hiddenKey, `(${d.hiddenSize}) must be divisible by the number of heads (${d.numHeads})`);
  }
  const vocabSize = k.int("vocab_size");
  const padTokenId = k.int("pad_token_id", 0, 0);
  if (padTokenId >= vocabSize) k.fail("pad_token_id", `must be < vocab_size (${vocabSize})`);
  return {
    arch,
    head,
    ...lab,
    vocabSize,
    ...d,
    headDim: d.hiddenSize / d.numHeads,
    layerHeads: prunedHeads(k, d.numLayers, d.numHeads),
    layerFfn: layerWidths(k, d.numLayers, d.intermediateSize),
    maxPositions: k.int("max_position_embeddings", 512),
    padTokenId,
    raw: structuredClone(json),
  };
}

const ARCH_CLASS: Record<Arch, Record<TaskHead, string>> = {
  bert: {
    classification: "BertForSequenceClassification",
    regression: "BertForSequenceClassification",
    qa: "BertForQuestionAnswering",
  },
  distilbert: {
    classification: "DistilBertForSequenceClassification",
    regression: "DistilBertForSequenceClassification",
    qa: "DistilBertForQuestionAnswering",
  },
};

/** Keys this module writes; other keys of `raw` are kept as they were. */
const MANAGED = [
  "architectures",
  "model_type",
  "num_labels",
  "problem_type",
  "id2label",
  "label2id",
  "vocab_size",
  "hidden_size",
  "num_hidden_layers",
  "num_attention_heads",
  "intermediate_size",
  "max_position_embeddings",
  "type_vocab_size",
  "layer_norm_eps",
  "hidden_act",
  "hidden_dropout_prob",
  "attention_probs_dropout_prob",
  "classifier_dropout",
  "dim",
  "n_layers",
  "n_heads",
  "hidden_dim",
  "activation",
  "sinusoidal_pos_embds",
  "dropout",
  "attention_dropout",
  "seq_classif_dropout",
  "qa_dropout",
  "pad_token_id",
  "pruned_heads",
  "intermediate_sizes",
]; // deno-fmt-ignore

/**
 * Writes an `EncoderConfig` as a Hugging Face `config.json` object with the BERT or DistilBERT key
 * names, `architectures` and `model_type`; pruning is written as `pruned_heads` ({"layer": [ORIGINAL
 * head indices removed]}, only layers that lost heads) and, when any layer's FFN width differs from
 * `intermediateSize`, `intermediate_sizes` (one width per layer). Keys of `raw` that this function
 * does not manage are kept.
 */
export function configToJson(c: EncoderConfig): Record<string, unknown> {
  validate(c);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(c.raw)) if (!MANAGED.includes(key)) out[key] = v;
  out.architectures = [ARCH_CLASS[c.arch][c.head]];
  out.model_type = c.arch;
  if (c.head === "regression") out.problem_type = "regression";
  else if (c.raw.problem_type === "single_label_classification") {
    out.problem_type = c.raw.problem_type;
  }
  const numLabels = c.head === "qa" ? 2 : c.numLabels;
  out.num_labels = numLabels;
  const defaultLabels = () => Object.fromEntries([...Array(numLabels).keys()].map((i) => [i, `LABEL_${i}`]));
  const id2label = c.id2label && Object.keys(c.id2label).length === numLabels
    ? c.id2label
    : defaultLabels();
  out.id2label = id2label;
  out.label2id = c.label2id && Object.keys(c.label2id).length === numLabels
    ? c.label2id
    : Object.fromEntries(Object.entries(id2label).map(([i, n]) => [n, Number(i)]));
  out.vocab_size = c.vocabSize;
  out.max_position_embeddings = c.maxPositions;
  out.pad_token_id = c.padTokenId;
  if (c.arch === "bert") {
    Object.assign(out, {
      hidden_size: c.hiddenSize,
      num_hidden_layers: c.numLayers,
      num_attention_heads: c.numHeads,
      intermediate_size: c.intermediateSize,
      type_vocab_size: c.typeVocabSize,
      layer_norm_eps: c.layerNormEps,
      hidden_act: c.hiddenAct,
      hidden_dropout_prob: c.hiddenDropout,
      attention_probs_dropout_prob: c.attentionDropout,
      classifier_dropout: c.classifierDropout,
    });
  } else {
    Object.assign(out, {
      dim: c.hiddenSize,
      n_layers: c.numLayers,
      n_heads: c.numHeads,
      hidden_dim: c.intermediateSize,
      activation: c.hiddenAct,
      sinusoidal_pos_embds: c.sinusoidalPos,
      dropout: c.hiddenDropout,
      attention_dropout: c.attentionDropout,
      seq_classif_dropout: c.head === "qa" ? (c.raw.seq_classif_dropout ?? 0.2) : c.classifierDropout,
      qa_dropout: c.head === "qa" ? c.classifierDropout : (c.raw.qa_dropout ?? 0.1),
    });
  }
  const pruned: Record<string, number[]> = {};
  c.layerHeads.forEach((present, l) => {
    const keep = new Set(present);
    const removed = [...Array(c.numHeads).keys()].filter((h) => !keep.has(h));
    if (removed.length > 0) pruned[String(l)] = removed;
  });
  out.pruned_heads = pruned;
  if (c.layerFfn.some((f) => f !== c.intermediateSize)) out.intermediate_sizes = [...c.layerFfn];
  return out;
}

function validate(c: EncoderConfig): void {
  const bad = (what: string): never => {
    throw new InvalidArgumentError(`EncoderConfig: ${what}`);
  };
  for (
    const key of [
      "vocabSize",
      "hiddenSize",
      "numLayers",
      "numHeads",
      "intermediateSize",
      "maxPositions",
      "numLabels",
    ] as const // deno-fmt-ignore
  ) {
    if (!Number.isSafeInteger(c[key]) || c[key] < 1) bad(`${key} must be a positive integer, got ${c[key]}`);
  }
  if (c.arch !== "bert" && c.arch !== "distilbert") bad(`unknown arch "${c.arch}"`);
  if (!["classification", "regression", "qa"].includes(c.head)) bad(`unknown head "${c.head}"`);
  if (c.head === "regression" && c.numLabels !== 1) {
    bad(`regression needs numLabels 1, got ${c.numLabels}`);
  }
  if (c.head === "qa" && c.numLabels !== 2) bad(`qa needs numLabels 2, got ${c.numLabels}`);
  if (c.head === "classification" && c.numLabels < 2) {
    bad(`classification needs numLabels ≥ 2 (use head "regression" for one output)`);
  }
  if (c.hiddenSize % c.numHeads !== 0 || c.headDim !== c.hiddenSize / c.numHeads) {
    bad(`headDim ${c.headDim} must equal hiddenSize ${c.hiddenSize} / numHeads ${c.numHeads}`);
  }
  if (c.arch === "distilbert" && c.typeVocabSize !== 0) bad(`distilbert has typeVocabSize 0`);
  if (c.arch === "bert" && (!Number.isSafeInteger(c.typeVocabSize) || c.typeVocabSize < 1)) {
    bad(`bert needs typeVocabSize ≥ 1, got ${c.typeVocabSize}`);
  }
  if (c.hiddenAct !== "gelu" && c.hiddenAct !== "relu") bad(`hiddenAct must be gelu or relu`);
  if (c.layerHeads.length !== c.numLayers || c.layerFfn.length !== c.numLayers) {
    bad(`layerHeads and layerFfn need ${c.numLayers} entries`);
  }
  c.layerHeads.forEach((hs, l) => {
    for (let i = 0; i < hs.length; i++) {
      if (
        !Number.isInteger(hs[i]) || hs[i] < 0 || hs[i] >= c.numHeads ||
        (i > 0 && hs[i] <= hs[i - 1])
      ) {
        bad(`layerHeads[${l}] must be ascending original head indices in 0..${c.numHeads - 1}`);
      }
    }
  });
  c.layerFfn.forEach((f, l) => {
    if (!Number.isInteger(f) || f < 0 || f > c.intermediateSize) {
      bad(`layerFfn[${l}] must be an integer in 0..${c.intermediateSize}, got ${f}`);
    }
  });
  if (!Number.isInteger(c.padTokenId) || c.padTokenId < 0 || c.padTokenId >= c.vocabSize) {
    bad(`padTokenId must be in 0..${c.vocabSize - 1}`);
  }
}

/**
 * Builds an `EncoderConfig` from the given fields, filling the rest with bert-base defaults
 * (vocab 30522, hidden 768, 12 layers × 12 heads, FFN 3072, 512 positions, GELU, eps 1e-12,
 * dropouts 0.1; DistilBERT: 6 layers, no token types, classifier dropout 0.2 / qa 0.1), numLabels
 * from the head (classification 2, regression 1, qa 2), `headDim` from hidden/heads, and unpruned
 * `layerHeads`/`layerFfn` unless given. Raises InvalidArgumentError on inconsistent fields.
 */
export function makeConfig(
  o: Partial<EncoderConfig> & { arch: Arch; head: TaskHead },
): EncoderConfig {
  const distil = o.arch === "distilbert";
  const hiddenSize = o.hiddenSize ?? 768;
  const numHeads = o.numHeads ?? 12;
  const numLayers = o.numLayers ?? (distil ? 6 : 12);
  const intermediateSize = o.intermediateSize ?? 3072;
  const c: EncoderConfig = {
    numLabels: o.head === "classification" ? 2 : o.head === "regression" ? 1 : 2,
    vocabSize: 30522,
    maxPositions: 512,
    typeVocabSize: distil ? 0 : 2,
    layerNormEps: 1e-12,
    hiddenAct: "gelu",
    sinusoidalPos: false,
    padTokenId: 0,
    hiddenDropout: 0.1,
    attentionDropout: 0.1,
    classifierDropout: distil && o.head !== "qa" ? 0.2 : 0.1,
    raw: {},
    ...o,
    hiddenSize,
    numHeads,
    numLayers,
    intermediateSize,
    headDim: o.headDim ?? hiddenSize / numHeads,
    layerHeads: o.layerHeads?.map((h) => [...h]) ??
      Array.from({ length: numLayers }, () => [...Array(numHeads).keys()]),
    layerFfn: o.layerFfn ? [...o.layerFfn] : Array(numLayers).fill(intermediateSize),
  };
  validate(c);
  return c;
}
