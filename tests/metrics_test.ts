/**
 * GLUE metrics vs scikit-learn/SciPy and SQuAD metrics vs transcriptions of the official v1.1
 * and v2.0 evaluation scripts (fixtures from tests/fixtures/gen_metrics.py), to 1e-12.
 */
import {
  accuracy,
  f1Binary,
  glueMetric,
  matthewsCorrelation,
  pearson,
  spearman,
} from "../lib/metrics/glue.ts";
import { answerF1, exactMatch, normalizeAnswer, squadV1, squadV2 } from "../lib/metrics/squad.ts";
import { readGlue } from "../lib/data/glue.ts";
import { readSquad, type SquadJson } from "../lib/data/squad.ts";
import { InvalidArgumentError } from "../lib/errors.ts";
import { assert, assertEquals, assertRejects, loadFixture } from "./helpers.ts";

const DATA = new URL("../../shared/data/", import.meta.url);
const dataPath = (p: string) => decodeURIComponent(new URL(p, DATA).pathname);
const TOL = 1e-12;

function close(a: number, b: number, what: string, tol = TOL): void {
  assert(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);
}

function closeRecord(got: Record<string, number>, want: Record<string, number>, what: string) {
  assertEquals(Object.keys(got).sort(), Object.keys(want).sort(), `${what} keys`);
  for (const k of Object.keys(want)) close(got[k], want[k], `${what}.${k}`);
}

interface GlueFx {
  [task: string]: unknown;
}

Deno.test("metrics: GLUE per-task metrics on real dev labels match sklearn/scipy", async () => {
  const fx = await loadFixture<GlueFx>("metrics_glue.json");
  for (const task of Object.keys(fx).filter((k) => !k.startsWith("_"))) {
    const t = fx[task] as { labels: number[]; preds: number[]; result: Record<string, number> };
    const dev = await readGlue(task, dataPath("glue/"), "dev");
    const labels = dev.map((e) => (task === "stsb" ? e.target! : e.label!));
    assertEquals(labels, t.labels, `${task}: reader labels vs Python csv`);
    closeRecord(glueMetric(task, t.preds, labels), t.result, task);
  }
});

Deno.test("metrics: multiclass MCC, degenerate cases and Spearman ties", async () => {
  const fx = await loadFixture<GlueFx>("metrics_glue.json");
  const cases = fx._cases as { preds: number[]; labels: number[]; [k: string]: unknown }[];
  close(
    matthewsCorrelation(cases[0].preds, cases[0].labels),
    cases[0].mcc as number,
    "mcc 3-class",
  );
  close(accuracy(cases[0].preds, cases[0].labels), cases[0].accuracy as number, "acc 3-class");
  close(matthewsCorrelation(cases[1].preds, cases[1].labels), cases[1].mcc as number, "mcc const");
  close(f1Binary(cases[1].preds, cases[1].labels), cases[1].f1 as number, "f1 all-positive");
  assertEquals(matthewsCorrelation(cases[2].preds, cases[2].labels), 0);
  assertEquals(f1Binary(cases[2].preds, cases[2].labels), cases[2].f1);
  const ties = fx._ties as { x: number[]; y: number[]; pearson: number; spearmanr: number };
  close(pearson(ties.x, ties.y), ties.pearson, "pearson");
  close(spearman(ties.x, ties.y), ties.spearmanr, "spearman ties");
  await assertRejects(() => accuracy([1, 0], [1]), InvalidArgumentError, "2 predictions");
  await assertRejects(() => glueMetric("mnli-x", [1], [1]), InvalidArgumentError, "unknown");
});

Deno.test("metrics: SQuAD normalisation follows the official script", () => {
  assertEquals(normalizeAnswer("The  Cat, a dog & AN apple!"), "cat dog apple");
  assertEquals(normalizeAnswer("theater another"), "theater another");
  assertEquals(normalizeAnswer("Ålandthe the-end"), "ålandthe theend");
  assertEquals(normalizeAnswer("éthe the"), "éthe");
  assert(exactMatch("the Eiffel tower.", "Eiffel Tower"));
  assertEquals(answerF1("", "x"), 0);
  assertEquals(answerF1("", "", true), 1);
  close(answerF1("x b c d", "b c e"), (2 * (2 / 4) * (2 / 3)) / (2 / 4 + 2 / 3), "f1");
});

interface SquadFx {
  predictions: Record<string, string>;
  v1: { exact_match: number; f1: number };
  v2: {
    articles: number;
    impossible: string[];
    predictions: Record<string, string>;
    naProbs: Record<string, number>;
    result: Record<string, number>;
    resultThresh05: Record<string, number>;
    resultNoProbs: Record<string, number>;
  };
}

Deno.test("metrics: SQuAD v1.1 EM/F1 on the dev set match the official script", async () => {
  const fx = await loadFixture<SquadFx>("metrics_squad.json");
  const squad = await readSquad(dataPath("squad/dev-v1.1.json"));
  closeRecord(squadV1(squad, fx.predictions), fx.v1, "v1");
});

Deno.test("metrics: SQuAD v2.0 (synthetic unanswerables) match the official script", async () => {
  const fx = await loadFixture<SquadFx>("metrics_squad.json");
  const squad = await readSquad(dataPath("squad/dev-v1.1.json"));
  const impossible = new Set(fx.v2.impossible);
  const v2: SquadJson = {
    data: squad.data.slice(0, fx.v2.articles).map((a) => ({
      ...a,
      paragraphs: a.paragraphs.map((p) => ({
        ...p,
        qas: p.qas.map((qa) => impossible.has(qa.id) ? { ...qa, answers: [] } : qa),
      })),
    })),
  };
  closeRecord(squadV2(v2, fx.v2.predictions, fx.v2.naProbs), fx.v2.result, "v2");
  closeRecord(squadV2(v2, fx.v2.predictions, fx.v2.naProbs, 0.5), fx.v2.resultThresh05, "v2@0.5");
  closeRecord(squadV2(v2, fx.v2.predictions), fx.v2.resultNoProbs, "v2 no probs");
});
