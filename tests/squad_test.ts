/**
 * SQuAD features vs the Python transcription of run_qa's prepare_*_features (gen_text.py), on
 * every dev question with both vocabs; answer extraction vs a transcription of HF
 * postprocess_qa_predictions (gen_metrics.py); article split and reader errors.
 */
import { loadTokenizer } from "../lib/text/wordpiece.ts";
import {
  byArticleSplit,
  postprocessQaPredictions,
  prepareSquadFeatures,
  readSquad,
  squadExamples,
} from "../lib/data/squad.ts";
import { makeBatches } from "../lib/data/batch.ts";
import { FileFormatError } from "../lib/errors.ts";
import { assert, assertEquals, assertRejects, loadFixture } from "./helpers.ts";

const DATA = new URL("../../shared/data/", import.meta.url);
const dataPath = (p: string) => decodeURIComponent(new URL(p, DATA).pathname);

/** FNV-1a 32 over the little-endian bytes of each value (as gen_text.py's fnv). */
function fnv(values: number[]): number {
  let h = 0x811c9dc5;
  for (const v0 of values) {
    const v = v0 >>> 0;
    for (let k = 0; k < 4; k++) {
      h ^= (v >>> (8 * k)) & 0xff;
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  }
  return h >>> 0;
}

for (const name of ["uncased", "cased"]) {
  Deno.test(`squad: features of every dev question match run_qa's (${name})`, async () => {
    const fx = await loadFixture<{ examples: number; features: number[][] }>(
      `text_squad_${name}.json`,
    );
    const tok = await loadTokenizer(dataPath(`vocab/bert-base-${name}.txt`));
    const examples = squadExamples(await readSquad(dataPath("squad/dev-v1.1.json")));
    assertEquals(examples.length, fx.examples);
    const feats = prepareSquadFeatures(tok, examples);
    assertEquals(feats.length, fx.features.length, "feature count (overflow windows)");
    let windows = 0;
    feats.forEach((f, i) => {
      const [ex, c0, len, sp, ep, idHash, offHash] = fx.features[i];
      const got = [
        f.exampleIndex,
        f.contextStart,
        f.inputIds.length,
        f.startPosition,
        f.endPosition,
      ];
      assertEquals(got, [ex, c0, len, sp, ep], `feature ${i}`);
      assertEquals(fnv(f.inputIds), idHash, `feature ${i} ids`);
      const flat = f.offsets.filter((o) => o !== null).flat() as number[];
      assertEquals(fnv(flat), offHash, `feature ${i} offsets`);
      assert(f.inputIds.length <= 384);
      assertEquals(f.tokenTypeIds.slice(0, c0), new Array(c0).fill(0));
      assertEquals(f.exampleId, examples[ex].id);
      if (i > 0 && feats[i - 1].exampleIndex === ex) windows++;
    });
    assert(windows > 0, "some questions need more than one window");
    const batches = makeBatches(feats.slice(0, 5), 4);
    assertEquals(batches[0].startPositions!.length, 4);
  });
}

Deno.test("squad: post-processing matches HF postprocess_qa_predictions (v1 and v2)", async () => {
  const fx = await loadFixture<{
    articles: number;
    features: number;
    v1: Record<string, string>;
    v2: Record<string, string>;
    v2ScoreDiffs: Record<string, number>;
  }>("metrics_qa_postprocess.json");
  const tok = await loadTokenizer(dataPath("vocab/bert-base-uncased.txt"));
  const squad = await readSquad(dataPath("squad/dev-v1.1.json"));
  const examples = squadExamples({ data: squad.data.slice(0, fx.articles) });
  const feats = prepareSquadFeatures(tok, examples);
  assertEquals(feats.length, fx.features);
  // the same deterministic logits as gen_metrics.py, padded to 384 as run_qa
  const logit = (f: number, t: number, k: number) => fnv([f, t, k]) / 1e7 - 200.0;
  const starts = feats.map((_, f) => Array.from({ length: 384 }, (_, t) => logit(f, t, 0)));
  const ends = feats.map((_, f) => Array.from({ length: 384 }, (_, t) => logit(f, t, 1)));
  feats.forEach((f, i) => {
    if (i % 2 === 0 && f.startPosition > 0) {
      starts[i][f.startPosition] += 300;
      ends[i][f.endPosition] += 300;
    }
  });
  const v1 = postprocessQaPredictions(examples, feats, starts, ends);
  assertEquals(v1.predictions, fx.v1);
  const v2 = postprocessQaPredictions(examples, feats, starts, ends, { versionTwo: true });
  assertEquals(v2.predictions, fx.v2);
  for (const [id, d] of Object.entries(fx.v2ScoreDiffs)) {
    assert(Math.abs(v2.scoreDiffs[id] - d) <= 1e-9, `${id}: ${v2.scoreDiffs[id]} vs ${d}`);
  }
  assert(Object.values(fx.v2).some((t) => t === "") && Object.values(fx.v2).some((t) => t !== ""));
});

Deno.test("squad: byArticleSplit holds out article i when i % 5 == 4", async () => {
  const squad = await readSquad(dataPath("squad/dev-v1.1.json"));
  assertEquals(squad.data.length, 48);
  const held = byArticleSplit(squad, "heldout");
  const train = byArticleSplit(squad, "train");
  assertEquals(
    held.data.map((a) => a.title),
    [4, 9, 14, 19, 24, 29, 34, 39, 44].map((i) => squad.data[i].title),
  );
  assertEquals(train.data.length, 39);
  assertEquals(train.data[4].title, squad.data[5].title);
});

Deno.test("squad: reader errors name the file", async () => {
  await assertRejects(
    () => readSquad("/nonexistent/dev.json"),
    FileFormatError,
    "/nonexistent/dev.json",
  );
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/x.json`, '{"version": "1.1"}');
    await assertRejects(() => readSquad(`${dir}/x.json`), FileFormatError, "data");
    await Deno.writeTextFile(`${dir}/y.json`, "{not json");
    await assertRejects(() => readSquad(`${dir}/y.json`), FileFormatError, "JSON");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
