/**
 * Config parsing for the four supported architectures (incl. pruned / uneven models), typed errors
 * naming the key, `configToJson` round trips and `makeConfig` defaults. References are published
 * Hugging Face config.json files and the HF config semantics (pruned_heads = removed ORIGINAL heads).
 * @module
 */
import { FileFormatError, InvalidArgumentError, UnsupportedModelError } from "../lib/errors.ts";
import { configToJson, type EncoderConfig, makeConfig, parseConfig } from "../lib/model/config.ts";
import { assert, assertEquals, assertRejects } from "./helpers.ts";

/** bert-base-uncased fine-tuned for SST-2-style classification (HF layout, transformers 4.x). */
const BERT_CLS = {
  architectures: ["BertForSequenceClassification"],
  attention_probs_dropout_prob: 0.1,
  classifier_dropout: null,
  gradient_checkpointing: false,
  hidden_act: "gelu",
  hidden_dropout_prob: 0.1,
  hidden_size: 768,
  id2label: { "0": "negative", "1": "positive" },
  initializer_range: 0.02,
  intermediate_size: 3072,
  label2id: { negative: 0, positive: 1 },
  layer_norm_eps: 1e-12,
  max_position_embeddings: 512,
  model_type: "bert",
  num_attention_heads: 12,
  num_hidden_layers: 12,
  pad_token_id: 0,
  position_embedding_type: "absolute",
  torch_dtype: "float32",
  transformers_version: "4.30.2",
  type_vocab_size: 2,
  use_cache: true,
  vocab_size: 30522,
};

/** distilbert-base-uncased-finetuned-sst-2-english config.json as published. */
const DISTIL_CLS = {
  activation: "gelu",
  architectures: ["DistilBertForSequenceClassification"],
  attention_dropout: 0.1,
  dim: 768,
  dropout: 0.1,
  finetuning_task: "sst-2",
  hidden_dim: 3072,
  id2label: { "0": "NEGATIVE", "1": "POSITIVE" },
  initializer_range: 0.02,
  label2id: { NEGATIVE: 0, POSITIVE: 1 },
  max_position_embeddings: 512,
  model_type: "distilbert",
  n_heads: 12,
  n_layers: 6,
  output_past: true,
  pad_token_id: 0,
  qa_dropout: 0.1,
  seq_classif_dropout: 0.2,
  sinusoidal_pos_embds: false,
  tie_weights_: true,
  vocab_size: 30522,
};

const all = (n: number) => [...Array(n).keys()];

Deno.test("config: BertForSequenceClassification (published layout)", () => {
  const { raw, ...c } = parseConfig(BERT_CLS);
  assertEquals(
    c,
    {
      arch: "bert",
      head: "classification",
      numLabels: 2,
      vocabSize: 30522,
      hiddenSize: 768,
      numLayers: 12,
      numHeads: 12,
      headDim: 64,
      intermediateSize: 3072,
      layerHeads: Array.from({ length: 12 }, () => all(12)),
      layerFfn: Array(12).fill(3072),
      maxPositions: 512,
      typeVocabSize: 2,
      layerNormEps: 1e-12,
      hiddenAct: "gelu",
      sinusoidalPos: false,
      padTokenId: 0,
      hiddenDropout: 0.1,
      attentionDropout: 0.1,
      classifierDropout: 0.1, // classifier_dropout null → hidden_dropout_prob
      id2label: { "0": "negative", "1": "positive" },
      label2id: { negative: 0, positive: 1 },
    } satisfies Omit<EncoderConfig, "raw">,
  );
  assertEquals(raw, BERT_CLS);
});

Deno.test("config: BertForQuestionAnswering has 2 outputs and head qa", () => {
  const c = parseConfig({
    ...BERT_CLS,
    architectures: ["BertForQuestionAnswering"],
    id2label: undefined,
    label2id: undefined,
    classifier_dropout: 0.3,
  });
  assertEquals([c.arch, c.head, c.numLabels, c.classifierDropout], ["bert", "qa", 2, 0.3]);
});

Deno.test("config: DistilBertForSequenceClassification keys (dim, n_layers, …, eps 1e-12)", () => {
  const c = parseConfig({ ...DISTIL_CLS, sinusoidal_pos_embds: true, activation: "relu" });
  assertEquals(
    [c.arch, c.head, c.numLabels, c.hiddenSize, c.numLayers, c.numHeads, c.headDim],
    ["distilbert", "classification", 2, 768, 6, 12, 64],
  );
  assertEquals([c.intermediateSize, c.typeVocabSize, c.layerNormEps], [3072, 0, 1e-12]);
  assertEquals([c.hiddenAct, c.sinusoidalPos, c.maxPositions], ["relu", true, 512]);
  assertEquals([c.hiddenDropout, c.attentionDropout, c.classifierDropout], [0.1, 0.1, 0.2]);
  assertEquals(c.id2label, { "0": "NEGATIVE", "1": "POSITIVE" });
});

Deno.test("config: DistilBertForQuestionAnswering uses qa_dropout", () => {
  const c = parseConfig({
    ...DISTIL_CLS,
    architectures: ["DistilBertForQuestionAnswering"],
    qa_dropout: 0.15,
  });
  assertEquals([c.arch, c.head, c.numLabels, c.classifierDropout], ["distilbert", "qa", 2, 0.15]);
});

Deno.test("config: regression from problem_type or num_labels 1", () => {
  const a = parseConfig({ ...BERT_CLS, problem_type: "regression", id2label: { "0": "LABEL_0" } });
  assertEquals([a.head, a.numLabels], ["regression", 1]);
  const b = parseConfig({ ...DISTIL_CLS, id2label: undefined, label2id: undefined, num_labels: 1 });
  assertEquals([b.head, b.numLabels], ["regression", 1]);
  const three = parseConfig({
    ...BERT_CLS,
    id2label: { 0: "a", 1: "b", 2: "c" },
    label2id: undefined,
  });
  assertEquals([three.head, three.numLabels], ["classification", 3]);
});

Deno.test("config: model_type + head hint, and base/MLM architectures", () => {
  const { architectures: _, ...noArch } = BERT_CLS;
  assertEquals(parseConfig(noArch, "x", "qa").head, "qa");
  assertEquals(parseConfig(noArch).head, "classification");
  assertEquals(
    parseConfig({ ...BERT_CLS, architectures: ["BertForMaskedLM"] }, "x", "qa").head,
    "qa",
  );
  const d = parseConfig({ ...DISTIL_CLS, architectures: ["DistilBertForMaskedLM"] });
  assertEquals([d.arch, d.head], ["distilbert", "classification"]);
  // an explicit architecture wins over the hint
  assertEquals(parseConfig(BERT_CLS, "x", "qa").head, "classification");
});

Deno.test("config: pruned_heads (string keys, ORIGINAL indices) and uneven intermediate_sizes", () => {
  const c = parseConfig({
    ...BERT_CLS,
    num_hidden_layers: 3,
    pruned_heads: { "0": [0, 5, 11], "2": all(12) },
    intermediate_sizes: [3072, 100, 0],
  });
  assertEquals(c.numHeads, 12);
  assertEquals(c.layerHeads, [[1, 2, 3, 4, 6, 7, 8, 9, 10], all(12), []]);
  assertEquals(c.layerFfn, [3072, 100, 0]);
  assertEquals(c.intermediateSize, 3072);
  const d = parseConfig({ ...DISTIL_CLS, n_layers: 2, pruned_heads: { 1: [3] } });
  assertEquals(d.layerHeads[1], all(12).filter((h) => h !== 3));
});

Deno.test("config: errors name the key and the file", async () => {
  const cases: [Record<string, unknown>, new (m: string) => Error, string][] = [
    [{ ...BERT_CLS, hidden_size: undefined }, FileFormatError, '"hidden_size" is missing'],
    [{ ...DISTIL_CLS, dim: "768" }, FileFormatError, '"dim" must be an integer'],
    [{ ...BERT_CLS, hidden_size: 100 }, FileFormatError, '"hidden_size" (100) must be divisible'],
    [{ ...BERT_CLS, hidden_act: "gelu_new" }, UnsupportedModelError, 'hidden_act "gelu_new"'],
    [{ ...DISTIL_CLS, activation: "silu" }, UnsupportedModelError, 'activation "silu"'],
    [
      { ...BERT_CLS, architectures: ["RobertaForSequenceClassification"] },
      UnsupportedModelError,
      "RobertaForSequenceClassification",
    ],
    [{ ...BERT_CLS, architectures: undefined, model_type: "gpt2" }, UnsupportedModelError, "gpt2"],
    [
      { ...BERT_CLS, architectures: undefined, model_type: undefined },
      FileFormatError,
      '"model_type" is missing',
    ],
    [
      { ...BERT_CLS, position_embedding_type: "relative_key" },
      UnsupportedModelError,
      "relative_key",
    ],
    [
      { ...BERT_CLS, pruned_heads: { "12": [0] } },
      FileFormatError,
      '"pruned_heads" has layer "12"',
    ],
    [{ ...BERT_CLS, pruned_heads: { "0": [12] } }, FileFormatError, '"pruned_heads" layer 0'],
    [
      { ...BERT_CLS, intermediate_sizes: [10, 10] },
      FileFormatError,
      '"intermediate_sizes" must list 12',
    ],
    [{ ...BERT_CLS, problem_type: "regression" }, FileFormatError, '"num_labels" must be 1'],
    [{ ...BERT_CLS, hidden_dropout_prob: 1.5 }, FileFormatError, '"hidden_dropout_prob"'],
    [{ ...BERT_CLS, pad_token_id: 30522 }, FileFormatError, '"pad_token_id"'],
    [{ ...BERT_CLS, id2label: ["a", "b"] }, FileFormatError, '"id2label"'],
    [
      { ...BERT_CLS, problem_type: "multi_label_classification" },
      UnsupportedModelError,
      "multi_label",
    ],
  ]; // deno-fmt-ignore
  for (const [json, cls, text] of cases) {
    const e = await assertRejects(() => parseConfig(json, "some/config.json"), cls, text);
    assert(e.message.startsWith("some/config.json: "), e.message);
  }
  await assertRejects(() => parseConfig([1, 2]), FileFormatError, "JSON object");
});

Deno.test("config: configToJson writes HF keys and round-trips through parseConfig", () => {
  const pruned = parseConfig({
    ...BERT_CLS,
    num_hidden_layers: 3,
    pruned_heads: { "2": [11, 0] },
    intermediate_sizes: [3072, 7, 3072],
    custom_key: [1, 2],
  });
  const j = configToJson(pruned);
  assertEquals(j.architectures, ["BertForSequenceClassification"]);
  assertEquals([j.model_type, j.hidden_size, j.num_attention_heads], ["bert", 768, 12]);
  assertEquals([j.intermediate_size, j.num_hidden_layers, j.type_vocab_size], [3072, 3, 2]);
  assertEquals(j.pruned_heads, { "2": [0, 11] });
  assertEquals(j.intermediate_sizes, [3072, 7, 3072]);
  assertEquals([j.custom_key, j.transformers_version], [[1, 2], "4.30.2"]);
  assertEquals(j.id2label, { "0": "negative", "1": "positive" });
  assert(!("dim" in j) && !("n_heads" in j), "no DistilBERT keys in a BERT config");
  const back = parseConfig(JSON.parse(JSON.stringify(j)));
  assertEquals({ ...back, raw: null }, { ...pruned, raw: null });

  const unpruned = configToJson(parseConfig(DISTIL_CLS));
  assertEquals([unpruned.model_type, unpruned.dim, unpruned.n_heads, unpruned.hidden_dim], [
    "distilbert",
    768,
    12,
    3072,
  ]);
  assertEquals(unpruned.pruned_heads, {});
  assert(!("intermediate_sizes" in unpruned), "even FFN widths write no intermediate_sizes");
  assert(!("hidden_size" in unpruned), "no BERT keys in a DistilBERT config");
  assertEquals([unpruned.seq_classif_dropout, unpruned.qa_dropout], [0.2, 0.1]);

  for (const arch of ["bert", "distilbert"] as const) {
    for (const head of ["classification", "regression", "qa"] as const) {
      const c = makeConfig({
        arch,
        head,
        hiddenSize: 16,
        numHeads: 4,
        numLayers: 2,
        intermediateSize: 32,
        layerHeads: [[1, 3], []],
        layerFfn: [5, 32],
      });
      const r = parseConfig(JSON.parse(JSON.stringify(configToJson(c))));
      assertEquals({ ...r, raw: null, id2label: undefined, label2id: undefined }, {
        ...c,
        raw: null,
        id2label: undefined,
        label2id: undefined,
      }, `${arch} ${head}`);
    }
  }
});

Deno.test("config: makeConfig defaults and validation", async () => {
  const c = makeConfig({
    arch: "distilbert",
    head: "qa",
    hiddenSize: 8,
    numHeads: 2,
    numLayers: 2,
  });
  assertEquals([c.headDim, c.numLabels, c.typeVocabSize, c.intermediateSize], [4, 2, 0, 3072]);
  assertEquals(c.layerHeads, [[0, 1], [0, 1]]);
  assertEquals(c.layerFfn, [3072, 3072]);
  const b = makeConfig({ arch: "bert", head: "regression" });
  assertEquals([b.numLabels, b.numLayers, b.hiddenSize, b.typeVocabSize], [1, 12, 768, 2]);
  await assertRejects(
    () => makeConfig({ arch: "bert", head: "regression", numLabels: 3 }),
    InvalidArgumentError,
    "numLabels 1",
  );
  await assertRejects(
    () => makeConfig({ arch: "bert", head: "qa", numLayers: 2, layerHeads: [[1, 0], [0]] }),
    InvalidArgumentError,
    "layerHeads[0]",
  );
  await assertRejects(
    () => makeConfig({ arch: "bert", head: "classification", hiddenSize: 10, numHeads: 3 }),
    InvalidArgumentError,
    "headDim",
  );
});
