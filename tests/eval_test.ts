// Evaluation against an independent path: the embedded demo model on the first dev examples,
// evaluate() (length-sorted batches) vs one-example-at-a-time forward passes scored by hand; and
// `deno task eval` writing metrics.json.
import { assert, DEMO_ARGS, ROOT, runScript } from "./helpers.ts";
import { loadTask } from "../lib/data/tasks.ts";
import { evaluate } from "../lib/eval/evaluate.ts";
import { loadCheckpoint } from "../lib/model/model.ts";
import { runModel } from "../lib/model/run.ts";
import { loadTokenizer } from "../lib/text/wordpiece.ts";

const runEval = (args: string[]) => runScript("eval.ts", args);

Deno.test("evaluate() equals per-example predictions scored by hand (demo model, SST-2 dev)", async () => {
  const model = await loadCheckpoint(`${ROOT}demo/model`);
  const tok = await loadTokenizer(`${ROOT}demo/model`);
  const dev = await loadTask(tok, "sst2", "dev", { data: `${ROOT}demo/data`, limit: 48 });
  const r = await evaluate(model, dev, { batchSize: 16 });
  let correct = 0;
  for (const item of dev.items) {
    const n = item.inputIds.length;
    const out = await runModel(model, {
      size: 1,
      seqLen: n,
      inputIds: Int32Array.from(item.inputIds),
      tokenTypeIds: Int32Array.from(item.tokenTypeIds),
      attentionMask: new Int32Array(n).fill(1),
    }, { maskGrads: false });
    const pred = out.logits![0][1] > out.logits![0][0] ? 1 : 0;
    if (pred === item.label) correct++;
  }
  assert(r.examples === 48);
  assert(
    Math.abs(r.metrics.accuracy - correct / 48) < 1e-12,
    `${r.metrics.accuracy} vs ${correct / 48}`,
  );
  assert(r.metrics.accuracy > 0.6, "the demo model should beat chance on its dev set");
  model.release();
});

Deno.test("deno task eval writes metrics.json", async () => {
  const dir = await Deno.makeTempDir();
  const res = await runEval([
    ...DEMO_ARGS,
    "--limit",
    "32",
    "--out",
    `${dir}/m.json`,
  ]);
  assert(res.code === 0, res.stderr);
  const m = JSON.parse(await Deno.readTextFile(`${dir}/m.json`));
  assert(
    m.task === "sst2" && m.examples === 32 && m.metrics.accuracy >= 0 && m.metrics.accuracy <= 1,
  );
  assert(res.stdout.includes("| accuracy |"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("deno task eval without --out keeps a training record: eval-metrics.json beside it", async () => {
  const dir = await Deno.makeTempDir();
  for (const f of ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"]) {
    await Deno.copyFile(`${ROOT}demo/model/${f}`, `${dir}/${f}`);
  }
  const record = JSON.stringify({ task: "sst2", evals: [{ step: 1, main: 0.5 }] });
  await Deno.writeTextFile(`${dir}/metrics.json`, record);
  const data = `${ROOT}demo/data`;
  const res = await runEval(["--model", dir, "--task", "sst2", "--data", data, "--limit", "16"]);
  assert(res.code === 0, res.stderr);
  assert((await Deno.readTextFile(`${dir}/metrics.json`)) === record, "training record unchanged");
  const m = JSON.parse(await Deno.readTextFile(`${dir}/eval-metrics.json`));
  assert(m.examples === 16 && typeof m.metrics.accuracy === "number");
  await Deno.remove(dir, { recursive: true });
});
