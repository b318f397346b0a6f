/**
 * Checkpoint I/O (CPU side): HF name mapping vs an independent Python transcription, reading the
 * Python-written checkpoints (sharded F32 BERT, prefix-less F16 DistilBERT QA), write → read round
 * trips, atomic-write behaviour, URL loading from a local HTTP server, and random initialization.
 * @module
 */
import { FileFormatError, InvalidArgumentError } from "../lib/errors.ts";
import { readCheckpoint, writeCheckpoint } from "../lib/model/checkpoint.ts";
import { configToJson, makeConfig } from "../lib/model/config.ts";
import { randomWeights, Rng, sinusoidalPositions } from "../lib/model/random.ts";
import { parseSafetensors } from "../lib/model/safetensors.ts";
import {
  expectedShapes,
  fromHfNames,
  type HostTensor,
  toHfNames,
  type Weights,
} from "../lib/model/weights.ts";
import { assert, assertClose, assertEquals, assertRejects, loadFixture } from "./helpers.ts";

interface CkptFixture {
  weights: Record<string, { shape: number[]; bits: number[] }>;
  hf_names: Record<string, string>;
}
const fx = await loadFixture<{
  bert_sharded: CkptFixture;
  distilbert_qa: CkptFixture;
  sinusoidal: { n: number; dim: number; values: number[] };
}>("st_checkpoints.json");

const fixtureDir = (name: string) => new URL(`./fixtures/${name}`, import.meta.url).pathname;

function assertWeightsEqual(actual: Weights, expected: CkptFixture["weights"], label: string) {
  assertEquals([...actual.keys()].sort(), Object.keys(expected).sort(), `${label}: names`);
  for (const [name, e] of Object.entries(expected)) {
    const t = actual.get(name)!;
    assertEquals(t.shape, e.shape, `${label} ${name} shape`);
    const bits = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
    assertEquals([...bits], e.bits, `${label} ${name} values`);
  }
}

function assertSameWeights(a: Weights, b: Weights, label: string) {
  assertEquals([...a.keys()].sort(), [...b.keys()].sort(), `${label}: names`);
  for (const [name, t] of a) {
    assertEquals(b.get(name)!.shape, t.shape, `${label} ${name}`);
    assertEquals(b.get(name)!.data, t.data, `${label} ${name}`);
  }
}

const small = (o: Parameters<typeof makeConfig>[0]) =>
  makeConfig({
    vocabSize: 11,
    hiddenSize: 8,
    numHeads: 2,
    numLayers: 2,
    intermediateSize: 6,
    maxPositions: 7,
    ...o,
  });

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "fastprune_ckpt_test_" });
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("weights: HF names match the Python transcription for all arch/head pairs", () => {
  const bert = small({ arch: "bert", head: "classification", numLabels: 3 });
  const hfBert = toHfNames(bert, randomWeights(bert, 1));
  const bertFx = Object.fromEntries(
    Object.entries(fx.bert_sharded.hf_names).map(([c, h]) => [h, c]),
  );
  assertEquals([...hfBert.keys()].sort(), Object.keys(bertFx).sort());
  const distil = small({ arch: "distilbert", head: "qa" });
  const hfDistil = toHfNames(distil, randomWeights(distil, 1));
  assertEquals([...hfDistil.keys()].sort(), Object.values(fx.distilbert_qa.hf_names).sort());
  // the same tensor objects under the Python-assigned names
  const w = randomWeights(distil, 1);
  const hf = toHfNames(distil, w);
  for (const [canon, hfName] of Object.entries(fx.distilbert_qa.hf_names)) {
    assert(hf.get(hfName) === w.get(canon), `${canon} ↔ ${hfName}`);
  }
  const bq = toHfNames(
    small({ arch: "bert", head: "qa" }),
    randomWeights(small({ arch: "bert", head: "qa" }), 2),
  );
  assert(
    bq.has("qa_outputs.weight") && !bq.has("bert.pooler.dense.weight"),
    "BERT QA has no pooler",
  );
  const dr = small({ arch: "distilbert", head: "regression" });
  const dh = toHfNames(dr, randomWeights(dr, 3));
  assertEquals(dh.get("classifier.weight")!.shape, [1, 8]);
  assertEquals(dh.get("pre_classifier.weight")!.shape, [8, 8]);
});

Deno.test("weights: fromHfNames ∘ toHfNames is the identity; prefixes, legacy names, extras", () => {
  for (const arch of ["bert", "distilbert"] as const) {
    for (const head of ["classification", "regression", "qa"] as const) {
      const c = small({ arch, head, layerHeads: [[1], [0, 1]], layerFfn: [0, 4] });
      const w = randomWeights(c, 7);
      const hf = toHfNames(c, w);
      assertSameWeights(fromHfNames(c, hf), w, `${arch} ${head}`);
      // without the bert./distilbert. prefix, legacy gamma/beta, plus unused keys
      const renamed = new Map<string, HostTensor>();
      for (const [n, t] of hf) {
        const bare = n.replace(/^(bert|distilbert)\./, "");
        renamed.set(
          bare.replace(/LayerNorm\.weight$/, "LayerNorm.gamma").replace(
            /LayerNorm\.bias$/,
            "LayerNorm.beta",
          ),
          t,
        );
      }
      renamed.set("embeddings.position_ids", { shape: [1, 7], data: new Float32Array(7) });
      renamed.set("cls.predictions.transform.dense.weight", {
        shape: [8, 8],
        data: new Float32Array(64),
      });
      assertSameWeights(fromHfNames(c, renamed), w, `${arch} ${head} renamed`);
    }
  }
});

Deno.test("weights: fromHfNames lists missing tensors and shape mismatches", async () => {
  const c = small({ arch: "bert", head: "classification" });
  const hf = toHfNames(c, randomWeights(c, 1));
  hf.delete("classifier.bias");
  hf.delete("bert.encoder.layer.1.output.LayerNorm.weight");
  hf.set("bert.encoder.layer.0.attention.self.key.weight", {
    shape: [4, 8],
    data: new Float32Array(32),
  });
  const e = await assertRejects(() => fromHfNames(c, hf), FileFormatError, "missing tensors:");
  for (
    const s of [
      "classifier.bias",
      "bert.encoder.layer.1.output.LayerNorm.weight",
      "bert.encoder.layer.0.attention.self.key.weight: expected [8, 8], found [4, 8]",
    ]
  ) assert(e.message.includes(s), `message lacks ${s}: ${e.message}`);
  // a pretrained MLM checkpoint has no task head: allowed on request
  const body = new Map([...hf].filter(([n]) => n.startsWith("bert.") && !n.includes("pooler")));
  body.set(
    "bert.encoder.layer.0.attention.self.key.weight",
    toHfNames(c, randomWeights(c, 1)).get("bert.encoder.layer.0.attention.self.key.weight")!,
  );
  body.set("bert.encoder.layer.1.output.LayerNorm.weight", {
    shape: [8],
    data: new Float32Array(8),
  });
  const w = fromHfNames(c, body, { allowMissingHead: true });
  assert(!w.has("cls.w") && !w.has("pool.w") && w.has("l1.ln2.g"), "head left out, body kept");
  await assertRejects(() => toHfNames(c, w), InvalidArgumentError, "cls.w is missing");
}); // deno-fmt-ignore

Deno.test("checkpoint: reads the Python-written sharded BERT checkpoint exactly", async () => {
  const ck = await readCheckpoint(fixtureDir("st_ckpt_bert_sharded"));
  const c = ck.config;
  assertEquals([c.arch, c.head, c.numLabels, c.hiddenSize, c.numHeads], ["bert", "classification", 3, 8, 2]);
  assertEquals(c.layerHeads, [[0, 1], [1]]);
  assertEquals(c.layerFfn, [16, 12]);
  assertWeightsEqual(ck.weights, fx.bert_sharded.weights, "bert");
  assertEquals(ck.vocabText?.split("\n")[7], "cat");
  assertEquals(ck.tokenizerConfig, { do_lower_case: true, model_max_length: 10 });
}); // deno-fmt-ignore

Deno.test("checkpoint: reads the F16, prefix-less DistilBERT QA checkpoint (zero-width FFN)", async () => {
  const ck = await readCheckpoint(fixtureDir("st_ckpt_distilbert_qa"));
  assertEquals([ck.config.arch, ck.config.head, ck.config.sinusoidalPos], ["distilbert", "qa", true]);
  assertEquals(ck.config.layerHeads, [[0], [0, 1]]);
  assertEquals(ck.weights.get("l0.ffn1.w")!.shape, [0, 8]);
  assertWeightsEqual(ck.weights, fx.distilbert_qa.weights, "distilbert");
  assertEquals(ck.vocabText, undefined);
});

Deno.test("checkpoint: write → read round trip (F32 exact, F16 of f16-exact values exact)", async () => {
  const root = await tempDir();
  try {
    const ck = await readCheckpoint(fixtureDir("st_ckpt_bert_sharded"));
    await writeCheckpoint(`${root}/out`, ck);
    assertEquals(await listDir(`${root}/out`), [
      "config.json",
      "model.safetensors",
      "tokenizer_config.json",
      "vocab.txt",
    ]);
    const back = await readCheckpoint(`${root}/out`);
    assertSameWeights(back.weights, ck.weights, "bert F32");
    assertEquals(configToJson(back.config), configToJson(ck.config));
    assertEquals(back.config.raw.custom_key, 42);
    assertEquals([back.vocabText, back.tokenizerConfig], [ck.vocabText, ck.tokenizerConfig]);
    const st = parseSafetensors(await Deno.readFile(`${root}/out/model.safetensors`));
    assertEquals(st.metadata, { format: "pt" });
    assert(st.tensors.has("bert.encoder.layer.1.attention.self.query.weight"), "HF names on disk");

    const d = await readCheckpoint(fixtureDir("st_ckpt_distilbert_qa"));
    await writeCheckpoint(`${root}/d16`, d, { dtype: "F16" });
    const d16 = parseSafetensors(await Deno.readFile(`${root}/d16/model.safetensors`));
    assert([...d16.tensors.values()].every((t) => t.dtype === "F16"), "stored as F16");
    assertWeightsEqual(
      (await readCheckpoint(`${root}/d16`)).weights,
      fx.distilbert_qa.weights,
      "F16",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}); // deno-fmt-ignore

Deno.test("checkpoint: atomic write — refuses existing dir, force replaces, errors leave nothing", async () => {
  const root = await tempDir();
  try {
    const c = small({ arch: "distilbert", head: "classification" });
    const ck = { config: c, weights: randomWeights(c, 3) };
    await Deno.mkdir(`${root}/out`);
    await Deno.writeTextFile(`${root}/out/keep.txt`, "mine");
    await assertRejects(() => writeCheckpoint(`${root}/out`, ck), InvalidArgumentError, "already exists");
    assertEquals(await listDir(`${root}/out`), ["keep.txt"]);
    assertEquals(await listDir(root), ["out"]);

    await writeCheckpoint(`${root}/out/`, ck, { force: true });
    assertEquals(await listDir(`${root}/out`), ["config.json", "model.safetensors"]);
    assertEquals(await listDir(root), ["out"], "no temp or old siblings left");
    assertSameWeights((await readCheckpoint(`${root}/out`)).weights, ck.weights, "forced");
    await writeCheckpoint(`${root}/a/b/ck`, ck); // missing parents are created
    assertEquals(await listDir(`${root}/a/b`), ["ck"]);
    await Deno.remove(`${root}/a`, { recursive: true });

    // an error while files are being written (tokenizer_config cannot be serialized)
    const bad = { ...ck, tokenizerConfig: { n: 1n } as unknown as Record<string, unknown> };
    await assertRejects(() => writeCheckpoint(`${root}/new`, bad), TypeError);
    assertEquals(await listDir(root), ["out"], "no partial dir on error");
    await assertRejects(() => writeCheckpoint(`${root}/out`, bad, { force: true }), TypeError);
    assertEquals(await listDir(root), ["out"]);
    assertEquals(await listDir(`${root}/out`), ["config.json", "model.safetensors"], "old dir intact");
    // invalid weights are refused before anything is created
    const wrong = { config: c, weights: new Map(ck.weights) };
    wrong.weights.delete("l1.q.b");
    await assertRejects(() => writeCheckpoint(`${root}/x`, wrong), InvalidArgumentError, "l1.q.b is missing");
    assertEquals(await listDir(root), ["out"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}); // deno-fmt-ignore

Deno.test("checkpoint: a damaged pytorch_model.bin, missing files and bad shards raise FileFormatError", async () => {
  const root = await tempDir();
  try {
    await Deno.mkdir(`${root}/pt`);
    await Deno.copyFile(`${fixtureDir("st_ckpt_distilbert_qa")}/config.json`, `${root}/pt/config.json`);
    await Deno.writeFile(`${root}/pt/pytorch_model.bin`, new Uint8Array(16));
    await assertRejects(() => readCheckpoint(`${root}/pt`), FileFormatError, "not a torch.save file");
    await Deno.remove(`${root}/pt/pytorch_model.bin`);
    await assertRejects(() => readCheckpoint(`${root}/pt`), FileFormatError, "no model.safetensors");
    await assertRejects(() => readCheckpoint(`${root}/nothing`), FileFormatError, "no config.json");
    // sharded index naming a missing shard
    await Deno.mkdir(`${root}/sh`);
    await Deno.copyFile(`${fixtureDir("st_ckpt_distilbert_qa")}/config.json`, `${root}/sh/config.json`);
    await Deno.writeTextFile(`${root}/sh/model.safetensors.index.json`, JSON.stringify({ weight_map: { a: "gone.safetensors" } }));
    await assertRejects(() => readCheckpoint(`${root}/sh`), FileFormatError, "gone.safetensors");
    // config of the wrong size for the weights
    await Deno.mkdir(`${root}/mix`);
    await Deno.copyFile(`${fixtureDir("st_ckpt_distilbert_qa")}/model.safetensors`, `${root}/mix/model.safetensors`);
    const cfg = JSON.parse(await Deno.readTextFile(`${fixtureDir("st_ckpt_distilbert_qa")}/config.json`));
    await Deno.writeTextFile(`${root}/mix/config.json`, JSON.stringify({ ...cfg, vocab_size: 13 }));
    await assertRejects(() => readCheckpoint(`${root}/mix`), FileFormatError, "embeddings.word_embeddings.weight: expected [13, 8], found [12, 8]");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}); // deno-fmt-ignore

Deno.test("checkpoint: loads over HTTP from a local server (sharded and single file)", async () => {
  const root = await tempDir();
  const served: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    served.push(`${req.method} ${path}`);
    if (path.includes("..")) return new Response("no", { status: 400 });
    try {
      const body = await Deno.readFile(`${root}${path}`);
      return new Response(req.method === "HEAD" ? null : body);
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  try {
    for (const name of ["st_ckpt_bert_sharded", "st_ckpt_distilbert_qa"]) {
      await Deno.mkdir(`${root}/${name}`);
      for await (const e of Deno.readDir(fixtureDir(name))) {
        await Deno.copyFile(`${fixtureDir(name)}/${e.name}`, `${root}/${name}/${e.name}`);
      }
    }
    const base = `http://127.0.0.1:${server.addr.port}`;
    const bert = await readCheckpoint(`${base}/st_ckpt_bert_sharded`);
    assertWeightsEqual(bert.weights, fx.bert_sharded.weights, "bert over http");
    assertEquals(bert.tokenizerConfig, { do_lower_case: true, model_max_length: 10 });
    assert(served.includes("GET /st_ckpt_bert_sharded/model-00002-of-00002.safetensors"), "fetched shards");
    const distil = await readCheckpoint(`${base}/st_ckpt_distilbert_qa/`);
    assertWeightsEqual(distil.weights, fx.distilbert_qa.weights, "distilbert over http");
    await assertRejects(() => readCheckpoint(`${base}/missing`), FileFormatError, "no config.json");
  } finally {
    await server.shutdown();
    await Deno.remove(root, { recursive: true });
  }
}); // deno-fmt-ignore

Deno.test("random: deterministic HF init (std 0.02, zero biases, LN 1/0, pad row 0)", () => {
  const c = makeConfig({ arch: "bert", head: "classification", vocabSize: 300, hiddenSize: 64, numHeads: 4, numLayers: 2, intermediateSize: 128, maxPositions: 32, padTokenId: 5 }); // deno-fmt-ignore
  const a = randomWeights(c, 42);
  const b = randomWeights(c, 42);
  const other = randomWeights(c, 43);
  assertSameWeights(a, b, "same seed");
  assert(a.get("emb.word")!.data[0] !== other.get("emb.word")!.data[0], "different seeds differ");
  for (const [name, shape] of expectedShapes(c)) {
    const t = a.get(name)!;
    assertEquals(t.shape, shape, name);
    assertEquals(t.data.length, shape.reduce((x, y) => x * y, 1), name);
  }
  for (const [name, t] of a) {
    if (name.endsWith(".g")) assert(t.data.every((v) => v === 1), `${name} = 1`);
    else if (name.endsWith(".b")) assert(t.data.every((v) => v === 0), `${name} = 0`);
  }
  const word = a.get("emb.word")!.data;
  assert(word.subarray(5 * 64, 6 * 64).every((v) => v === 0), "pad row is zero");
  // moments of all normal-initialized values (n ≈ 60k): mean ≈ 0 (±5σ/√n), std ≈ 0.02 (±2%)
  const values: number[] = [];
  for (const [name, t] of a) if (name.endsWith(".w") || name === "emb.pos") values.push(...t.data);
  const n = values.length;
  const mean = values.reduce((s, v) => s + v, 0) / n;
  const std = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / n);
  assert(Math.abs(mean) < 5 * 0.02 / Math.sqrt(n), `mean ${mean}`);
  assert(Math.abs(std - 0.02) < 0.0004, `std ${std}`);
  const kurt = values.reduce((s, v) => s + ((v - mean) / std) ** 4, 0) / n;
  assert(Math.abs(kurt - 3) < 0.15, `kurtosis ${kurt} (normal: 3)`);
});

Deno.test("random: fillNormal continues the same stream as normal() (odd lengths)", () => {
  const a = new Rng(9);
  const b = new Rng(9);
  for (const len of [7, 4, 1, 0, 10]) {
    const x = new Float32Array(len);
    a.fillNormal(x, 0.5);
    const y = Float32Array.from({ length: len }, () => 0.5 * b.normal());
    assertEquals(x, y, `length ${len}`);
  }
});

Deno.test("random: DistilBERT sinusoidal positions match HF create_sinusoidal_embeddings", () => {
  const { n, dim, values } = fx.sinusoidal;
  assertClose(sinusoidalPositions(n, dim), values, 1e-6, 0, "sinusoidal");
  const c = small({
    arch: "distilbert",
    head: "qa",
    maxPositions: n,
    hiddenSize: dim,
    sinusoidalPos: true,
  });
  assertClose(randomWeights(c, 1).get("emb.pos")!.data, values, 1e-6, 0, "emb.pos");
}); // deno-fmt-ignore

Deno.test("checkpoint: tokenizer.json only — its vocabulary and case travel into a written checkpoint", async () => {
  const root = await tempDir();
  try {
    const c = small({ arch: "bert", head: "classification" });
    await writeCheckpoint(`${root}/src`, { config: c, weights: randomWeights(c, 5) });
    const vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "Hello", "##s", "world"];
    await Deno.writeTextFile(
      `${root}/src/tokenizer.json`,
      JSON.stringify({
        normalizer: { type: "BertNormalizer", lowercase: false, strip_accents: null },
        model: {
          type: "WordPiece",
          continuing_subword_prefix: "##",
          vocab: Object.fromEntries(vocab.map((t, i) => [t, i]).reverse()),
        },
      }),
    );
    const ck = await readCheckpoint(`${root}/src`);
    assertEquals(ck.vocabText, vocab.join("\n") + "\n");
    assertEquals(ck.tokenizerConfig, { do_lower_case: false });
    await writeCheckpoint(`${root}/out`, ck);
    assertEquals(await Deno.readTextFile(`${root}/out/vocab.txt`), vocab.join("\n") + "\n");
    const back = await readCheckpoint(`${root}/out`);
    assertEquals(back.tokenizerConfig, { do_lower_case: false });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
