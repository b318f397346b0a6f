/**
 * GLUE readers on the real files (row counts and label balances from shared/data/README.md,
 * which were counted independently), MNLI/QQP on hand-made files in the distributed layout,
 * typed errors; batching with dynamic padding; PCG32 and sampling vs the pcg-c-basic demo
 * output and a Python transcription (tests/fixtures/gen_metrics.py).
 */
import { GLUE_TASKS, type GlueSplit, parseGlue, readGlue } from "../lib/data/glue.ts";
import { encodeGlue, lengthSortedOrder, makeBatches } from "../lib/data/batch.ts";
import { loadTokenizer } from "../lib/text/wordpiece.ts";
import { Pcg32, sampleIndices, sampleWithReplacement } from "../lib/util/pcg32.ts";
import { FileFormatError, InvalidArgumentError } from "../lib/errors.ts";
import { assert, assertEquals, assertRejects, loadFixture } from "./helpers.ts";

const DATA = new URL("../../shared/data/", import.meta.url);
const dataPath = (p: string) => decodeURIComponent(new URL(p, DATA).pathname);

Deno.test("glue: real files give the README's row counts and label balances", async () => {
  const counts: [string, GlueSplit, number][] = [
    ["sst2", "train", 67349],
    ["sst2", "dev", 872],
    ["cola", "train", 8551],
    ["cola", "dev", 1043],
    ["mrpc", "train", 3668],
    ["mrpc", "dev", 408],
    ["stsb", "train", 5749],
    ["stsb", "dev", 1500],
    ["qnli", "dev", 5463],
    ["rte", "train", 2490],
    ["rte", "dev", 277],
    ["wnli", "train", 635],
    ["wnli", "dev", 71],
  ];
  for (const [task, split, n] of counts) {
    const ex = await readGlue(task, dataPath("glue/"), split);
    assertEquals(ex.length, n, `${task} ${split}`);
  }
  const count = (xs: { label?: number }[], k: number) => xs.filter((x) => x.label === k).length;
  const sst = await readGlue("sst2", dataPath("glue/SST-2"), "train");
  assertEquals([count(sst, 1), count(sst, 0)], [37569, 29780]);
  const qnli = await readGlue("qnli", dataPath("glue/QNLI/dev.tsv"));
  assertEquals([count(qnli, 0), count(qnli, 1)], [2702, 2761]); // entailment first
  const wnli = await readGlue("wnli", dataPath("glue/"), "dev");
  assertEquals([count(wnli, 0), count(wnli, 1)], [40, 31]);
});

Deno.test("glue: columns per task (CoLA no header, MRPC BOM, STS-B float score)", async () => {
  const cola = await readGlue("cola", dataPath("glue/"), "dev");
  assertEquals(cola[0], {
    line: 1,
    textA: "The sailors rode the breeze clear of the rocks.",
    textB: null,
    label: 1,
  });
  const mrpc = await readGlue("mrpc", dataPath("glue/"), "dev");
  assertEquals(mrpc[0].label, 1);
  assert(mrpc[0].textA.startsWith("He said the foodservice pie business"));
  assert(mrpc[0].textB!.startsWith('" The foodservice pie business'));
  const stsb = await readGlue("stsb", dataPath("glue/"), "dev");
  assertEquals(stsb[1].target, 4.75);
  assertEquals(stsb[1].textB, "A child is riding a horse.");
  const rte = await readGlue("rte", dataPath("glue/"), "dev");
  assertEquals(rte[0].label, 1); // not_entailment
  assertEquals(rte[0].textB, "Christopher Reeve had an accident.");
  assertEquals(GLUE_TASKS.mnli.labels, ["contradiction", "entailment", "neutral"]);
  assertEquals(GLUE_TASKS.qnli.keys, ["question", "sentence"]);
  assertEquals(GLUE_TASKS.stsb.labels, null);
});

const MNLI_HEADER = [
  "index",
  "promptID",
  "pairID",
  "genre",
  "sentence1_binary_parse",
  "sentence2_binary_parse",
  "sentence1_parse",
  "sentence2_parse",
  "sentence1",
  "sentence2",
  "label1",
  "label2",
  "label3",
  "label4",
  "label5",
  "gold_label",
].join("\t");

Deno.test("glue: MNLI and QQP readers on hand-made files in the distributed format", async () => {
  const row = (i: number, a: string, b: string, gold: string) =>
    [
      i,
      63735,
      `${63735}n`,
      "slate",
      "( ( x ) )",
      "( y )",
      "(ROOT x)",
      "(ROOT y)",
      a,
      b,
      gold,
      gold,
      "neutral",
      gold,
      gold,
      gold,
    ].join("\t");
  const mnli = [
    MNLI_HEADER,
    row(
      0,
      "The new rights are nice enough",
      "Everyone really likes the newest benefits",
      "neutral",
    ),
    row(1, "This site includes a list", "The Government Executive articles", "contradiction"),
    row(2, "uh i don't know", "I like him", "entailment"),
  ].join("\r\n") + "\r\n";
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/MNLI`);
    await Deno.writeTextFile(`${dir}/MNLI/dev_matched.tsv`, mnli);
    await Deno.writeTextFile(
      `${dir}/MNLI/dev_mismatched.tsv`,
      mnli.split("\r\n").slice(0, 2).join("\n"),
    );
    const m = await readGlue("mnli", dir, "dev_matched");
    assertEquals(m.map((e) => e.label), [2, 0, 1]);
    assertEquals(m[0].textA, "The new rights are nice enough");
    assertEquals(m[0].textB, "Everyone really likes the newest benefits");
    assertEquals((await readGlue("mnli", dir, "dev")).length, 3);
    assertEquals((await readGlue("mnli", dir, "dev_mismatched")).length, 1);
    const qqp = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n" +
      "201359\t303345\t303346\tWhy are African-Americans so beautiful?\tWhy are hispanics so beautiful?\t0\n" +
      "263843\t69383\t380476\tI want to pursue PhD in Computer Science?\tI handle social media?\t1\n";
    await Deno.writeTextFile(`${dir}/qqp.tsv`, qqp);
    const q = await readGlue("qqp", `${dir}/qqp.tsv`);
    assertEquals(q.map((e) => [e.textA, e.textB, e.label]), [
      ["Why are African-Americans so beautiful?", "Why are hispanics so beautiful?", 0],
      ["I want to pursue PhD in Computer Science?", "I handle social media?", 1],
    ]);
    await assertRejects(() => readGlue("mnli", dir, "train"), FileFormatError, "train.tsv");
    await assertRejects(() => readGlue("qqp", dir, "dev_matched"), InvalidArgumentError, "split");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("glue: typed errors name file and line", async () => {
  await assertRejects(() => readGlue("boolq", "x"), InvalidArgumentError, "unknown GLUE task");
  assertRejectsSync(
    () => parseGlue("sst2", "sentence\tlabel\nfine movie\t2\n", "s.tsv"),
    "s.tsv:2",
  );
  assertRejectsSync(
    () => parseGlue("sst2", "sentence\tlabel\nno label here\n", "s.tsv"),
    "s.tsv:2",
  );
  assertRejectsSync(() => parseGlue("rte", "index\tsentence1\n", "r.tsv"), "r.tsv:1: header");
  assertRejectsSync(
    () => parseGlue("rte", "index\tsentence1\tsentence2\tlabel\n", "r.tsv"),
    "empty",
  );
  assertRejectsSync(
    () =>
      parseGlue("stsb", "h\th\th\th\th\th\th\th\th\th\n0\tg\tf\ty\t0\ts\ts\ta\tb\tfive\n", "b.tsv"),
    "b.tsv:2: score",
  );
  assertRejectsSync(
    () => parseGlue("cola", "gj04\t1\t\tok.\ngj04\tX\t*\tbad\n", "c.tsv"),
    "c.tsv:2",
  );
});

function assertRejectsSync(fn: () => unknown, includes: string): void {
  try {
    fn();
  } catch (e) {
    assert(e instanceof FileFormatError, `expected FileFormatError, got ${e}`);
    assert(e.message.includes(includes), `"${e.message}" lacks "${includes}"`);
    return;
  }
  throw new Error("expected FileFormatError");
}

Deno.test("batch: dynamic padding, masks, labels and order", async () => {
  const tok = await loadTokenizer(dataPath("vocab/bert-base-uncased.txt"));
  const ex = (await readGlue("rte", dataPath("glue/"), "dev")).slice(0, 5);
  const enc = encodeGlue(tok, "rte", ex, 32);
  assert(enc.every((e) => e.inputIds.length <= 32));
  const batches = makeBatches(enc, 2, { order: [4, 0, 2, 1, 3] });
  assertEquals(batches.map((b) => b.indices), [[4, 0], [2, 1], [3]]);
  for (const b of batches) {
    assertEquals(b.seqLen, Math.max(...b.indices.map((i) => enc[i].inputIds.length)));
    b.indices.forEach((item, r) => {
      const n = enc[item].inputIds.length;
      const row = (a: Int32Array) => Array.from(a.subarray(r * b.seqLen, (r + 1) * b.seqLen));
      const pad = b.seqLen - n;
      assertEquals(row(b.inputIds), [...enc[item].inputIds, ...new Array(pad).fill(0)]);
      assertEquals(row(b.tokenTypeIds), [...enc[item].tokenTypeIds, ...new Array(pad).fill(0)]);
      assertEquals(row(b.attentionMask), [...new Array(n).fill(1), ...new Array(pad).fill(0)]);
      assertEquals(b.labels![r], ex[item].label);
    });
  }
  const sts = encodeGlue(
    tok,
    "stsb",
    (await readGlue("stsb", dataPath("glue/"), "dev")).slice(0, 3),
  );
  const sb = makeBatches(sts, 8)[0];
  assertEquals(Array.from(sb.targets!), [5, 4.75, 5]);
  assertEquals(sb.labels, undefined);
  await assertRejects(() => makeBatches(enc, 0), InvalidArgumentError, "batch size");
  await assertRejects(() => makeBatches(enc, 2, { order: [9] }), InvalidArgumentError, "order");
  await assertRejects(() => makeBatches([enc[0], sts[0]], 2), InvalidArgumentError, "label");
});

interface SamplingFx {
  seed42: number[];
  seed0Bounded3e9: number[];
  sample_100_10_0: number[];
  sample_392702_2048_0: number[];
  sample_10_20_7: number[];
  replace_1000_50_3: number[];
}

Deno.test("pcg32: demo vector, bounded draws and samplers match the reference", async () => {
  const r = new Pcg32(42, 54);
  const first = Array.from({ length: 6 }, () => r.nextU32());
  // pcg-c-basic pcg32-demo, pcg32_srandom_r(&rng, 42u, 54u)
  assertEquals(first, [0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e]);
  const fx = await loadFixture<SamplingFx>("metrics_sampling.json");
  assertEquals(first, fx.seed42);
  const g = new Pcg32(0);
  assertEquals(Array.from({ length: 20 }, () => g.bounded(3_000_000_000)), fx.seed0Bounded3e9);
  const s = sampleIndices(100, 10, 0);
  assertEquals(s, { indices: fx.sample_100_10_0, tookAll: false });
  const big = sampleIndices(392702, 2048, 0);
  assertEquals(big.indices, fx.sample_392702_2048_0);
  assertEquals(new Set(big.indices).size, 2048);
  const all = sampleIndices(10, 20, 7);
  assertEquals(all, { indices: fx.sample_10_20_7, tookAll: true });
  assertEquals([...all.indices].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assertEquals(sampleWithReplacement(1000, 50, 3), fx.replace_1000_50_3);
  await assertRejects(() => sampleIndices(0, 1, 0), InvalidArgumentError, "population");
  await assertRejects(() => new Pcg32(-1), InvalidArgumentError, "seed");
});

Deno.test("lengthSortedOrder: stable by length, keeps the given subset and repeats", () => {
  const item = (n: number) => ({ inputIds: Array(n).fill(7), tokenTypeIds: Array(n).fill(0) });
  const items = [item(5), item(3), item(5), item(9), item(3)];
  // ties keep the given order (2 before 0, 4 before 1 as given), repeats stay, 3 is left out
  assertEquals(lengthSortedOrder(items, [2, 4, 0, 1, 2]), [4, 1, 2, 0, 2]);
  assertEquals(lengthSortedOrder(items, []), []);
  // batched in that order, each batch is padded to a similar length
  const b = makeBatches(items, 2, { order: lengthSortedOrder(items, [3, 1, 0, 4]) });
  assertEquals(b.map((x) => x.seqLen), [3, 9]);
});
