// `deno task experiment` as a user runs it, on the embedded demo model with tiny sample sets:
// the files each experiment writes (Markdown header, CSV, SVG), the numbers in them against an
// independent evaluation of the unpruned model, the cell cache (a rerun recomputes nothing), and
// one-line errors for bad input.
import { evaluate } from "../lib/eval/evaluate.ts";
import { loadTask } from "../lib/data/tasks.ts";
import { loadCheckpoint } from "../lib/model/model.ts";
import { loadTokenizer } from "../lib/text/wordpiece.ts";
import { assert, assertEquals, ROOT, runScript } from "./helpers.ts";
import { discoverModels, taskFromName } from "../scripts/experiment/common.ts";

const DEV = 48;
const experiment = (args: string[]) => runScript("experiment.ts", args);

async function cellFiles(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const e of Deno.readDir(dir)) {
    out.set(e.name, (await Deno.stat(`${dir}/${e.name}`)).mtime!.getTime());
  }
  return out;
}

Deno.test("deno task experiment: accuracy-vs-flops and ablation on the demo model, cached reruns, bad input", async () => {
  const tmp = await Deno.makeTempDir();
  const models = `${tmp}/models`, out = `${tmp}/results`;
  await Deno.mkdir(`${models}/demo-sst2`, { recursive: true });
  for await (const e of Deno.readDir(`${ROOT}demo/model`)) {
    await Deno.copyFile(`${ROOT}demo/model/${e.name}`, `${models}/demo-sst2/${e.name}`);
  }
  const common = [
    "--models",
    models,
    "--data",
    `${ROOT}demo/data`,
    "--samples",
    "32",
    "--dev-limit",
    String(DEV),
    "--out",
    out,
  ];
  const r1 = await experiment(["accuracy-vs-flops", ...common, "--seeds", "0"]);
  assert(r1.code === 0, r1.stderr);

  // the unpruned metric, evaluated here independently of the experiment's code path
  const model = await loadCheckpoint(`${ROOT}demo/model`);
  const tok = await loadTokenizer(`${ROOT}demo/model`);
  const dev = await loadTask(tok, "sst2", "dev", { data: `${ROOT}demo/data`, limit: DEV });
  const unpruned = (await evaluate(model, dev)).main;
  model.release();

  const md = await Deno.readTextFile(`${out}/accuracy-vs-flops/README.md`);
  assert(md.includes("- command: `deno task experiment accuracy-vs-flops"), md);
  assert(/- adapter: \S/.test(md) && /- commit: \S/.test(md), md);
  assert(md.includes(`| unpruned | ${unpruned.toFixed(4)} |`), md);
  const csv = (await Deno.readTextFile(`${out}/accuracy-vs-flops/accuracy-vs-flops.csv`))
    .trim().split("\n");
  assertEquals(
    csv[0],
    "task,arch,model,importance,flops_kept,seed,macs_ratio,metric",
  );
  assertEquals(csv.length - 1, 10, "one row per FLOPs fraction");
  for (const line of csv.slice(1)) {
    const [task, , name, , c, , macs, metric] = line.split(",");
    assertEquals([task, name], ["sst2", "demo-sst2"]);
    // the search meets the budget; accuracy on 48 examples is a multiple of 1/48
    assert(Number(macs) <= Number(c) + 1e-9, `MACs ratio ${macs} over budget ${c}`);
    assert(Math.abs(Number(metric) * DEV - Math.round(Number(metric) * DEV)) < 1e-6, line);
    // nothing to remove at 100%: tuning the full mask reproduces the unpruned model
    if (Number(c) === 1) assert(Math.abs(Number(metric) - unpruned) < 1e-9, line);
  }
  const svg = await Deno.readTextFile(`${out}/accuracy-vs-flops/sst2.svg`);
  assert(svg.startsWith("<svg") && svg.includes("FLOPs kept (%)") && svg.includes("unpruned"));

  // a rerun finds every cell cached: no cell file is rewritten, the tables are identical
  const before = await cellFiles(`${out}/cells`);
  const r2 = await experiment(["accuracy-vs-flops", ...common, "--seeds", "0"]);
  assert(r2.code === 0, r2.stderr);
  assertEquals(await cellFiles(`${out}/cells`), before);
  const md2 = await Deno.readTextFile(`${out}/accuracy-vs-flops/README.md`);
  assertEquals(md2.replace(/- commit: .*/, ""), md.replace(/- commit: .*/, ""));

  // ablation: the three stages at each FLOPs fraction, and the knee sentence or its absence
  const r3 = await experiment([
    "ablation",
    ...common,
    "--seeds",
    "0",
    "--preset-models",
    "none",
  ]);
  assert(r3.code === 0, r3.stderr);
  const abl = await Deno.readTextFile(`${out}/ablation/README.md`);
  assert(abl.includes("| FLOPs kept | search | + rearrange | + tune |"), abl);
  assert(abl.includes("Knee (") || abl.includes("Search alone never loses 2 points"), abl);
  const rows = (await Deno.readTextFile(`${out}/ablation/ablation.csv`)).trim().split("\n");
  assertEquals(rows.filter((l) => l.includes(",stages,")).length, 6);
  // "+ tune" is the whole pipeline at that budget: the accuracy-vs-flops value of the same seed
  for (const l of rows.filter((l) => l.includes(",stages,"))) {
    const f = l.split(",");
    const same = csv.find((x) => x.split(",")[4] === f[3]);
    assert(same, `no accuracy-vs-flops row at ${f[3]}`);
    assertEquals(Number(f[6]), Number(same.split(",")[7]), l);
  }

  // bad input: a one-line error naming the problem, non-zero exit, nothing written
  const bad = await experiment(["accuracy-vs-flop", ...common]);
  assert(bad.code !== 0 && bad.stderr.includes("usage: deno task experiment"), bad.stderr);
  const badFocus = await experiment(["latency", ...common, "--focus", "no-such-model"]);
  assert(badFocus.code !== 0 && badFocus.stderr.includes("--focus"), badFocus.stderr);
  await assertNoDir(`${out}/latency`);
  const badCount = await experiment(["latency", ...common, "--samples", "0"]);
  assert(badCount.code !== 0 && badCount.stderr.includes("--samples needs"), badCount.stderr);
  await assertNoDir(`${out}/latency`);
  // several --models directories: the same model name twice is refused
  const twice = await experiment(["ablation", ...common, "--models", `${models},${models}`]);
  assert(twice.code !== 0 && twice.stderr.includes("two models named demo-sst2"), twice.stderr);
  const noModels = await experiment(["ablation", ...common, "--models", `${tmp}/nothing`]);
  assert(noModels.code !== 0 && noModels.stderr.includes("no models directory"), noModels.stderr);
  await Deno.remove(tmp, { recursive: true });
});

async function assertNoDir(p: string): Promise<void> {
  try {
    await Deno.stat(p);
  } catch {
    return;
  }
  throw new Error(`${p} exists`);
}

Deno.test("experiment models: checkpoints without metrics.json get their task from their name", async () => {
  const names: [string, string | undefined][] = [
    ["textattack-bert-base-uncased-SST-2", "sst2"],
    ["distilbert-base-uncased-finetuned-sst-2-english", "sst2"],
    ["bert-base-uncased-MRPC", "mrpc"],
    ["gchhablani-bert-base-cased-finetuned-stsb", "stsb"],
    ["bert-large-uncased-whole-word-masking-finetuned-squad", "squad"],
    ["csarron-bert-base-uncased-squad-v1", "squad"],
    ["deepset-bert-base-cased-squad2", "squad_v2"],
    ["bert-base-cased-squad_v2", "squad_v2"],
    ["my-model", undefined],
    ["bert-base-uncased", undefined],
  ];
  for (const [n, task] of names) assertEquals(taskFromName(n), task, n);
  // discovery: a Hugging Face-style directory (no metrics.json) is taken with the task its name
  // gives; one whose name gives none is skipped, not guessed
  const tmp = await Deno.makeTempDir();
  try {
    for (const d of ["textattack-bert-base-uncased-SST-2", "my-model"]) {
      await Deno.mkdir(`${tmp}/${d}`);
      await Deno.copyFile(`${ROOT}demo/model/config.json`, `${tmp}/${d}/config.json`);
    }
    const found = await discoverModels({
      models: tmp,
      out: `${tmp}/out`,
      tasks: [],
      samples: 32,
      seeds: [0],
      devLimit: 0,
      margin: 0.02,
      costSizes: [],
    });
    assertEquals(found.map((m) => [m.name, m.task, m.arch]), [
      ["textattack-bert-base-uncased-SST-2", "sst2", "bert"],
    ]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
