/** The zoo's definition: tasks × shapes, shared encoders first, and the baseline rule. */
import { assert, assertEquals } from "./helpers.ts";
import { beatsBaseline, zooEntries } from "../scripts/zoo.ts";
import { discoverModels, marginOf } from "../scripts/experiment/common.ts";
import { configToJson, makeConfig } from "../lib/model/config.ts";
import type { TrainRunResult } from "../lib/train/run.ts";

Deno.test("zoo: every issue task in a BERT and a DistilBERT shape, each after its MLM encoder", () => {
  const entries = zooEntries();
  const names = entries.map((e) => e.name);
  assertEquals(new Set(names).size, names.length, "unique names");
  for (const task of ["sst2", "mrpc", "stsb", "rte", "cola", "squad"]) {
    for (const arch of ["bert", "distilbert"]) {
      const i = names.indexOf(`${task}-${arch}`);
      assert(i >= 0, `${task}-${arch} present`);
      const init = entries[i].options.init!;
      assertEquals(init, `_base/mlm-${arch}`);
      assert(names.indexOf(init) >= 0 && names.indexOf(init) < i, "encoder trained first");
    }
  }
  // DistilBERT at 1e-3 stayed at the majority class on SST-2; its shape trains at ≤ 5e-4
  for (const e of entries.filter((e) => /^[a-z0-9]+-distilbert$/.test(e.name))) {
    assert(e.options.lr! <= 5e-4, `${e.name} lr ${e.options.lr}`);
  }
  assertEquals(entries.find((e) => e.name === "sst2-bert")!.options.lr, 1e-3);
  // the MLM ablation: every task but SQuAD from random init with its MLM twin's recipe
  for (const task of ["sst2", "mrpc", "stsb", "rte", "cola"]) {
    for (const arch of ["bert", "distilbert"]) {
      const a = entries.find((e) => e.name === `_ablation/${task}-${arch}-nomlm`);
      assert(a, `_ablation/${task}-${arch}-nomlm present`);
      const twin = entries.find((e) => e.name === `${task}-${arch}`)!;
      assertEquals(a.options.init, undefined, "random init");
      assertEquals(a.options.arch, arch, "the twin's architecture");
      assertEquals(a.options.lr, twin.options.lr);
      assertEquals(a.options.maxSteps, twin.options.maxSteps);
      assertEquals(a.options.epochs, twin.options.epochs);
    }
  }
  assert(!names.some((n) => n.startsWith("_ablation/squad")), "no random-init SQuAD");
  for (const e of entries.filter((e) => e.name.startsWith("_base/"))) {
    assertEquals(e.options.maxSteps, 0, "encoders are MLM only");
    assert(e.options.mlmSteps! > 0);
  }
});

Deno.test("zoo: 'clearly beats' margins (+2 points, +0.05 correlation) agree with experiment discovery", () => {
  const r = (task: string, mainMetric: string, best: number, base: number) =>
    ({ task, mainMetric, best: { main: best }, baseline: { main: base } }) as TrainRunResult;
  assert(beatsBaseline(r("sst2", "accuracy", 0.53, 0.509)));
  assert(!beatsBaseline(r("sst2", "accuracy", 0.52, 0.509)));
  assert(beatsBaseline(r("stsb", "spearmanr", 0.06, 0)));
  assert(!beatsBaseline(r("stsb", "spearmanr", 0.04, 0)));
  assert(!beatsBaseline(r("cola", "matthews_correlation", 0.049, 0)));
  assert(beatsBaseline(r("squad", "f1", 2.5, 0)));
  assert(!beatsBaseline(r("squad", "f1", 1.5, 0)));
  assertEquals(marginOf("sst2", 0.02), 0.02);
  assertEquals(marginOf("stsb", 0.02), 0.05);
  assertEquals(marginOf("squad", 0.02), 2);
});

Deno.test("experiments: one model per task and architecture (best dev), all with --names, none below baseline", async () => {
  const root = await Deno.makeTempDir();
  const model = (arch: "bert" | "distilbert") =>
    configToJson(makeConfig({
      arch,
      head: "regression",
      vocabSize: 30,
      hiddenSize: 8,
      numLayers: 1,
      numHeads: 2,
      intermediateSize: 8,
      maxPositions: 16,
    }));
  const put = async (name: string, arch: "bert" | "distilbert", task: string, best: number) => {
    await Deno.mkdir(`${root}/${name}`);
    await Deno.writeTextFile(`${root}/${name}/config.json`, JSON.stringify(model(arch)));
    await Deno.writeTextFile(
      `${root}/${name}/metrics.json`,
      JSON.stringify({ task, best: { main: best }, baseline: { main: 0 } }),
    );
  };
  try {
    await put("stsb-bert", "bert", "stsb", 0.125);
    await put("stsb-bert-nomlm", "bert", "stsb", 0.208);
    await put("stsb-distilbert", "distilbert", "stsb", 0.1);
    await put("stsb-bert-weak", "bert", "stsb", 0.03); // below the +0.05 correlation margin
    const s = {
      models: root,
      out: root,
      tasks: [],
      samples: 8,
      seeds: [0],
      devLimit: 0,
      margin: 0.02,
      costSizes: [8],
    };
    const names = async (o: Partial<typeof s> & { names?: string[] } = {}) =>
      (await discoverModels({ ...s, ...o })).map((m) => m.name).sort();
    assertEquals(await names(), ["stsb-bert-nomlm", "stsb-distilbert"]);
    assertEquals(await names({ names: ["stsb-bert", "stsb-bert-nomlm"] }), [
      "stsb-bert",
      "stsb-bert-nomlm",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
