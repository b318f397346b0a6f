/**
 * `deno task eval --model DIR|URL --task NAME [--data DIR|FILE] [--split dev] [--batch N]
 * [--limit N] [--out metrics.json]`: tokenizes a split, runs the model on the GPU, prints a metrics
 * table and writes metrics.json (next to the model unless --out says otherwise; a training record
 * there is kept and eval-metrics.json written instead).
 * @module
 */
import { parseArgs } from "node:util";
import { checkTask, DEFAULT_DATA_DIR, loadTask } from "../lib/data/tasks.ts";
import { InvalidArgumentError } from "../lib/errors.ts";
import { evaluate } from "../lib/eval/evaluate.ts";
import { getGpu } from "../lib/gpu/context.ts";
import { loadCheckpoint } from "../lib/model/model.ts";
import { loadTokenizer } from "../lib/text/wordpiece.ts";
import { Progress } from "../lib/util/progress.ts";
import { runCli } from "./cli.ts";

const USAGE =
  "usage: deno task eval --model DIR|URL --task NAME [--data DIR|FILE] [--split dev] [--batch 32] [--limit N] [--out FILE] [--predictions FILE]";

/**
 * Where results go without --out: `metrics.json` next to the model (the working directory for a
 * URL), unless that file is a training record (`deno task train` writes one with `evals`), which
 * is never overwritten: then `eval-metrics.json` beside it.
 */
async function defaultOut(model: string): Promise<string> {
  const dir = model.includes("://") ? "." : model;
  try {
    const old = JSON.parse(await Deno.readTextFile(`${dir}/metrics.json`));
    if (old && typeof old === "object" && "evals" in old) return `${dir}/eval-metrics.json`;
  } catch { /* absent or not JSON: ours to write */ }
  return `${dir}/metrics.json`;
}

/** Refuses, before any work, an output file whose folder does not exist. */
async function checkWritableDir(file: string): Promise<void> {
  const slash = file.lastIndexOf("/");
  const dir = slash > 0 ? file.slice(0, slash) : slash === 0 ? "/" : ".";
  let isDir = false;
  try {
    isDir = (await Deno.stat(dir)).isDirectory;
  } catch { /* absent */ }
  if (!isDir) throw new InvalidArgumentError(`${file}: folder ${dir} does not exist`);
}

if (import.meta.main) {
  await runCli(async () => {
    const { values } = parseArgs({
      args: Deno.args,
      options: {
        model: { type: "string" },
        task: { type: "string" },
        data: { type: "string" },
        split: { type: "string" },
        batch: { type: "string", default: "32" },
        limit: { type: "string" },
        out: { type: "string" },
        "max-length": { type: "string" },
        predictions: { type: "string" },
      },
    });
    if (!values.model || !values.task) throw new InvalidArgumentError(USAGE);
    checkTask(values.task);
    for (const f of [values.out, values.predictions]) if (f) await checkWritableDir(f);
    const batch = Number(values.batch);
    if (!Number.isInteger(batch) || batch < 1) {
      throw new InvalidArgumentError(`--batch must be a positive integer`);
    }
    const squad = values.task.startsWith("squad");
    const split = values.split ??
      (squad && !values.data ? "heldout" : values.task === "mnli" ? "dev_matched" : "dev");
    if (!values.data) console.error(`no --data given: reading ${DEFAULT_DATA_DIR}`);
    const gpu = await getGpu();
    console.error(`adapter: ${gpu.adapter.summary}`);
    const model = await loadCheckpoint(values.model, gpu);
    const tok = await loadTokenizer(values.model);
    const data = await loadTask(tok, values.task, split, {
      data: values.data,
      limit: values.limit ? Number(values.limit) : undefined,
      maxLength: values["max-length"] ? Number(values["max-length"]) : undefined,
    });
    const bar = new Progress(`eval ${values.task}/${split}`, data.items.length, "ex");
    const r = await evaluate(model, data, { batchSize: batch, onProgress: (d) => bar.set(d) });
    bar.done();
    console.log(`| metric | ${values.task} ${split} |\n|---|---|`);
    for (const [k, v] of Object.entries(r.metrics)) console.log(`| ${k} | ${v.toFixed(4)} |`);
    const out = values.out ?? await defaultOut(values.model);
    const tmp = `${out}.tmp-${Deno.pid}`;
    await Deno.writeTextFile(
      tmp,
      JSON.stringify(
        {
          task: values.task,
          split,
          source: data.source,
          examples: r.examples,
          adapter: gpu.adapter.summary,
          metrics: r.metrics,
        },
        null,
        1,
      ),
    );
    await Deno.rename(tmp, out);
    console.error(`wrote ${out}`);
    if (values.predictions) {
      // per example, in the split's order: GLUE the predicted class index or regression value
      // beside the reference; SQuAD the answer text by question id
      const glue = Array.isArray(r.predictions);
      const refs = glue ? data.items.map((e) => e.label ?? e.target ?? null) : undefined;
      const ptmp = `${values.predictions}.tmp-${Deno.pid}`;
      await Deno.writeTextFile(
        ptmp,
        JSON.stringify({
          task: values.task,
          split,
          source: data.source,
          model: values.model,
          predictions: r.predictions,
          ...(refs ? { references: refs } : {}),
        }) + "\n",
      );
      await Deno.rename(ptmp, values.predictions);
      console.error(`wrote ${values.predictions}`);
    }
  }, USAGE);
}
