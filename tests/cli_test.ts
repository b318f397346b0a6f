// The CLIs as a user runs them: `deno task forward` against the PyTorch fixture, and one-line
// errors with a non-zero exit for bad input to forward, prune and eval.
import {
  assert,
  assertClose,
  assertEquals,
  DEMO_ARGS,
  loadFixture,
  maxAbs,
  ROOT,
  runScript,
} from "./helpers.ts";

/**
 * `deno task eval` of `model` on the first `limit` demo dev sentences: its accuracy, after
 * checking the `--predictions` file against it and against the dev TSV's labels.
 */
async function demoAccuracy(model: string, limit: number): Promise<number> {
  const dir = await Deno.makeTempDir();
  const out = `${dir}/m.json`, predictions = `${dir}/p.json`;
  const e = await runScript("eval.ts", [
    "--model",
    model,
    "--task",
    "sst2",
    "--data",
    `${ROOT}demo/data`,
    "--limit",
    String(limit),
    "--out",
    out,
    "--predictions",
    predictions,
  ]);
  assert(e.code === 0, e.stderr);
  const m = JSON.parse(await Deno.readTextFile(out));
  const p = JSON.parse(await Deno.readTextFile(predictions));
  await Deno.remove(dir, { recursive: true });
  // the references are the TSV's labels in file order, and the predictions score the accuracy
  const tsv = await Deno.readTextFile(`${ROOT}demo/data/SST-2/dev.tsv`);
  const labels = tsv.trim().split("\n").slice(1, limit + 1).map((l) => Number(l.split("\t")[1]));
  assertEquals(p.references, labels);
  assertEquals(p.predictions.length, limit);
  const right = p.predictions.filter((y: number, i: number) => y === labels[i]).length;
  assertEquals(right / limit, m.metrics.accuracy);
  return m.metrics.accuracy;
}

Deno.test("deno task forward reproduces the PyTorch reference, including Fisher", async () => {
  const f = await loadFixture<{
    model: string;
    input_ids: number[][];
    token_type_ids: number[][];
    attention_mask: number[][];
    labels: number[];
    head_mask: number[][];
    ffn_mask: number[][];
    logits: number[][];
    loss: number;
    head_mask_grad: number[][][];
  }>("model_bert_classification_masked.json");
  const dir = await Deno.makeTempDir();
  const input = {
    input_ids: f.input_ids,
    token_type_ids: f.token_type_ids,
    attention_mask: f.attention_mask,
    labels: f.labels,
    head_mask: f.head_mask,
    ffn_mask: f.ffn_mask,
  };
  await Deno.writeTextFile(`${dir}/in.json`, JSON.stringify(input));
  const r = await runScript("forward.ts", [
    "--model",
    `${ROOT}tests/fixtures/${f.model}`,
    "--input",
    `${dir}/in.json`,
    "--out",
    `${dir}/out.json`,
  ]);
  assert(r.code === 0, r.stderr);
  const out = JSON.parse(await Deno.readTextFile(`${dir}/out.json`));
  assertClose(
    out.logits.flat(),
    f.logits.flat(),
    1e-4 * Math.max(1, maxAbs(f.logits.flat())),
    0,
    "logits",
  );
  assert(
    Math.abs(out.loss - f.loss) <= 1e-4 * Math.max(1, Math.abs(f.loss)),
    `loss ${out.loss} vs ${f.loss}`,
  );
  const fisher = f.head_mask_grad[0].map((layer, l) =>
    layer.map((_, h) => f.head_mask_grad.reduce((s, ex) => s + ex[l][h] ** 2, 0))
  );
  assertClose(
    out.head_fisher.flat(),
    fisher.flat(),
    2e-3 * maxAbs(fisher.flat()),
    0,
    "head fisher",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bad input gives a one-line error and a non-zero exit", async () => {
  const f = await loadFixture<{ model: string }>("model_bert_classification.json");
  const dir = await Deno.makeTempDir();
  const model = `${ROOT}tests/fixtures/${f.model}`;
  const cases: [string, unknown, string][] = [
    ["ragged", { input_ids: [[1, 2, 3], [1, 2]] }, "ragged"],
    ["out of vocab", { input_ids: [[1, 2, 999]] }, "outside the vocabulary"],
    ["too long", { input_ids: [Array(40).fill(1)] }, "max_position_embeddings"],
    ["bad label", { input_ids: [[1, 2, 3]], labels: [7] }, "label 7"],
    ["mask size", { input_ids: [[1, 2, 3]], head_mask: [[1, 1], [1, 1]] }, "head_mask of layer 0"],
  ];
  for (const [name, json, message] of cases) {
    await Deno.writeTextFile(`${dir}/in.json`, JSON.stringify(json));
    const r = await runScript("forward.ts", ["--model", model, "--input", `${dir}/in.json`]);
    assert(r.code !== 0, `${name}: exit code ${r.code}`);
    const lines = r.stderr.trim().split("\n");
    assert(
      lines.length === 1 && lines[0].startsWith("error:") && lines[0].includes(message),
      `${name}: ${r.stderr}`,
    );
  }
  await Deno.mkdir(`${dir}/exists`);
  const fixture = ["--model", model, "--task"];
  const refused: [string, string[], string][] = [
    ["prune.ts", [...fixture, "sst2", "--flops", "1.5", "--out", `${dir}/x`], "(0, 1]"],
    ["prune.ts", [...fixture, "sst2", "--flops", "0.5", "--out", `${dir}/exists`], "--force"],
    ["prune.ts", [...fixture, "nope", "--flops", "0.5", "--out", `${dir}/y`], "unknown task"],
    [
      "prune.ts",
      [...DEMO_ARGS, "--flops", "0.5", "--teacher-cache-mb=-1", "--out", `${dir}/z`],
      "--teacher-cache-mb",
    ],
    // an output folder that does not exist: refused before evaluating, nothing written
    [
      "eval.ts",
      [...DEMO_ARGS, "--out", `${dir}/m.json`, "--predictions", `${dir}/none/p.json`],
      "does not exist",
    ],
  ];
  let last = { code: 0, stderr: "" }; // the eval case, checked further below
  for (const [script, args, message] of refused) {
    last = await runScript(script, args);
    assert(
      last.code === 1 && last.stderr.includes(message),
      `${script} ${message}: ${last.stderr}`,
    );
  }
  assert(!last.stderr.includes("eval sst2"), `evaluated before refusing: ${last.stderr}`);
  const written = await Deno.stat(`${dir}/m.json`).then(() => true, () => false);
  assert(!written, "metrics written before refusing");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("deno task prune --teacher-cache-mb 0 --hf-compatible: a teacher pass, a uniform checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const r = await runScript("prune.ts", [
    ...DEMO_ARGS,
    "--flops",
    "0.5",
    "--samples",
    "32",
    "--dev-limit",
    "48",
    "--latency-batch",
    "4",
    "--latency-seq",
    "16",
    "--latency-runs",
    "1",
    "--teacher-cache-mb",
    "0",
    "--hf-compatible",
    "--out",
    `${dir}/p`,
  ]);
  assert(r.code === 0, r.stderr.slice(-3000));
  const report = JSON.parse(await Deno.readTextFile(`${dir}/p/report.json`));
  assertEquals(report.tuneTeacher, "teacher pass");
  // the uniform layout: nothing a loader has to apply, every layer as wide as the widest kept FFN
  const config = JSON.parse(await Deno.readTextFile(`${dir}/p/config.json`));
  const kept = report.kept.neurons as number[];
  assert(kept.some((n) => n !== kept[0]), `uneven kept widths expected, got ${kept}`);
  assertEquals(config.pruned_heads, {});
  assert(!("intermediate_sizes" in config), "no intermediate_sizes in the uniform layout");
  assertEquals(config.intermediate_size, Math.max(...kept));
  assertEquals(report.checkpoint.layout, "hf-compatible");
  assert(report.checkpoint.params > report.params.pruned, "zero padding adds parameters");
  assert(report.checkpoint.params < report.params.full, "but fewer than the unpruned model's");
  assert((await Deno.readTextFile(`${dir}/p/report.md`)).includes("hf-compatible"));
  // and it evaluates like the compact model did
  assertEquals(await demoAccuracy(`${dir}/p`, 48), report.metrics.compact.accuracy);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("deno task prune end to end on the demo model writes a complete, loadable output", async () => {
  const dir = await Deno.makeTempDir();
  const out = `${dir}/pruned`;
  const r = await runScript("prune.ts", [
    ...DEMO_ARGS,
    "--flops",
    "0.5",
    "--samples",
    "64",
    "--dev-limit",
    "64",
    "--latency-batch",
    "4",
    "--latency-seq",
    "16",
    "--latency-runs",
    "1",
    "--out",
    out,
  ]);
  assert(r.code === 0, r.stderr.slice(-3000));
  for (
    const f of [
      "config.json",
      "model.safetensors",
      "vocab.txt",
      "tokenizer_config.json",
      "masks.json",
      "report.md",
      "report.json",
      "layers.svg",
    ]
  ) {
    assert((await Deno.stat(`${out}/${f}`)).isFile, `${f} missing`);
  }
  const report = JSON.parse(await Deno.readTextFile(`${out}/report.json`));
  assert(report.flops.ratio <= 0.5 + 1e-9, `FLOPs ratio ${report.flops.ratio}`);
  for (const stage of ["unpruned", "search", "rearrange", "tune", "compact"]) {
    assert(typeof report.metrics[stage]?.accuracy === "number", `no ${stage} metric`);
  }
  // tuning took the unpruned teacher's targets from the Fisher pass
  assert(report.tuneTeacher === "fisher pass", `tuneTeacher ${report.tuneTeacher}`);
  // the compact model is the tuned masked model
  assert(Math.abs(report.metrics.compact.accuracy - report.metrics.tune.accuracy) < 1e-12);
  const masks = JSON.parse(await Deno.readTextFile(`${out}/masks.json`));
  assert(masks.sample_indices.length === 64 && masks.head_fisher.length === 4);
  const config = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
  const kept = report.kept.neurons as number[];
  if (kept.some((n) => n !== 512)) assert(Array.isArray(config.intermediate_sizes));
  // the output loads and evaluates
  const accuracy = await demoAccuracy(out, 64);
  assert(
    Math.abs(accuracy - report.metrics.compact.accuracy) < 1e-12,
    `${accuracy} vs ${report.metrics.compact.accuracy}`,
  );
  await Deno.remove(dir, { recursive: true });
});
