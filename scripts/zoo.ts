/**
 * `deno run -A scripts/zoo.ts [--out zoo] [--only sst2-bert,…] [--mlm-steps N] [--max-steps N]
 * [--limit N] [--dev-limit N] [--dry-run]`: trains the experiment models (SST-2, MRPC, STS-B, RTE,
 * CoLA classifiers and a SQuAD v1.1 QA model on the by-article split of dev-v1.1, each in a BERT and
 * a DistilBERT shape) into `<out>/<task>-<arch>/`, skipping entries whose metrics.json exists, then
 * writes `<out>/zoo.md` + `<out>/zoo.json`: best dev metric vs the trivial baseline (majority class;
 * constant prediction for STS-B; empty answer for SQuAD) and whether the model clearly beats it
 * (margin: +2 points accuracy/F1, +0.05 correlation). Only those that do belong in experiments.
 * @module
 */
import { parseArgs } from "node:util";
import { InvalidArgumentError } from "../lib/errors.ts";
import { getGpu } from "../lib/gpu/context.ts";
import { trainRun, type TrainRunOptions, type TrainRunResult } from "../lib/train/run.ts";
import { Progress } from "../lib/util/progress.ts";
import { runCli } from "./cli.ts";

/** One zoo entry: name, task and the training options that differ from the defaults. */
export interface ZooEntry {
  /** Directory name under the zoo root. */
  name: string;
  /** Task. */
  task: string;
  /** Options of `trainRun` (without out/task). */
  options: Partial<TrainRunOptions>;
}

const BERT = { arch: "bert", layers: 4, hidden: 256, heads: 4, ffn: 1024 } as const;
const DISTIL = { arch: "distilbert", layers: 3, hidden: 256, heads: 4, ffn: 1024 } as const;

/** The zoo: every task in a BERT (L4/H256) and a DistilBERT (L3/H256) shape. */
export function zooEntries(): ZooEntry[] {
  const tasks: [string, Partial<TrainRunOptions>][] = [
    ["sst2", { epochs: 2, lr: 5e-4, batchSize: 32, mlmSteps: 0 }],
    ["mrpc", { epochs: 5, lr: 2e-4, batchSize: 32, mlmSteps: 2000 }],
    ["stsb", { epochs: 5, lr: 2e-4, batchSize: 32, mlmSteps: 2000 }],
    ["rte", { epochs: 5, lr: 2e-4, batchSize: 32, mlmSteps: 2000 }],
    ["cola", { epochs: 5, lr: 2e-4, batchSize: 32, mlmSteps: 2000 }],
    ["squad", { epochs: 3, lr: 3e-4, batchSize: 16, mlmSteps: 2000, maxLength: 384 }],
  ];
  const out: ZooEntry[] = [];
  for (const [task, o] of tasks) {
    for (const shape of [BERT, DISTIL]) {
      out.push({
        name: `${task}-${shape.arch}`,
        task,
        options: { ...shape, ...o, maxPositions: 512, seed: 42 },
      });
    }
  }
  return out;
}

/** Whether a result clearly beats its trivial baseline (+2 points, or +0.05 for correlations). */
export function beatsBaseline(r: TrainRunResult): boolean {
  if (!r.best) return false;
  const corr = ["matthews_correlation", "spearmanr", "pearson"].includes(r.mainMetric);
  const margin = corr ? 0.05 : r.mainMetric === "f1" && r.task.startsWith("squad") ? 2 : 0.02;
  return r.best.main >= r.baseline.main + margin;
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

if (import.meta.main) {
  await runCli(async () => {
    const s = { type: "string" } as const;
    const { values } = parseArgs({
      args: Deno.args,
      options: {
        out: { type: "string", default: "zoo" },
        only: s,
        "mlm-steps": s,
        "max-steps": s,
        limit: s,
        "dev-limit": s,
        "dry-run": { type: "boolean" },
      },
    });
    const only = values.only?.split(",");
    const entries = zooEntries().filter((e) => !only || only.includes(e.name));
    if (entries.length === 0) {
      throw new InvalidArgumentError(
        `--only matches no entry; entries: ${zooEntries().map((e) => e.name).join(", ")}`,
      );
    }
    const n = (k: string) =>
      (values[k as keyof typeof values] as string | undefined) === undefined
        ? undefined
        : Number(values[k as keyof typeof values]);
    const gpu = await getGpu();
    await Deno.mkdir(values.out, { recursive: true });
    const results: (TrainRunResult & { name: string })[] = [];
    for (const e of entries) {
      const dir = `${values.out}/${e.name}`;
      if (await exists(`${dir}/metrics.json`)) {
        console.error(`${e.name}: already trained, skipping`);
        results.push({
          name: e.name,
          ...JSON.parse(await Deno.readTextFile(`${dir}/metrics.json`)),
        });
        continue;
      }
      const o: TrainRunOptions = {
        ...e.options,
        task: e.task,
        out: dir,
        force: true,
        mlmSteps: n("mlm-steps") ?? e.options.mlmSteps,
        maxSteps: n("max-steps") ?? e.options.maxSteps,
        limit: n("limit"),
        devLimit: n("dev-limit"),
      };
      console.error(`${e.name}: ${JSON.stringify(o)}`);
      if (values["dry-run"]) continue;
      let bar: Progress | undefined, mbar: Progress | undefined;
      const r = await trainRun({
        ...o,
        onMlmStep: (i, total) => (mbar ??= new Progress(`${e.name} mlm`, total, "step")).set(i),
        onStep: (i, total, loss) =>
          (bar ??= new Progress(`${e.name}`, total, "step")).set(i, `loss ${loss.toFixed(3)}`),
      }, gpu);
      results.push({ name: e.name, ...r });
    }
    const rows = results.map((r) => ({
      name: r.name,
      task: r.task,
      metric: r.mainMetric,
      best: r.best?.main ?? NaN,
      baseline: r.baseline.main,
      baselineName: r.baseline.name,
      beats: beatsBaseline(r),
      mlmSteps: r.mlmSteps,
      steps: r.steps,
      seconds: Math.round(r.seconds),
    }));
    const md = [
      "| model | task | metric | best dev | trivial baseline | beats baseline | MLM steps | steps | seconds |",
      "|---|---|---|---|---|---|---|---|---|",
      ...rows.map((r) =>
        `| ${r.name} | ${r.task} | ${r.metric} | ${r.best.toFixed(4)} | ${
          r.baseline.toFixed(4)
        } (${r.baselineName}) | ${
          r.beats ? "yes" : "no"
        } | ${r.mlmSteps} | ${r.steps} | ${r.seconds} |`
      ),
    ].join("\n");
    if (!values["dry-run"]) {
      await Deno.writeTextFile(`${values.out}/zoo.md`, md + "\n");
      await Deno.writeTextFile(`${values.out}/zoo.json`, JSON.stringify(rows, null, 2) + "\n");
    }
    console.log(md);
  });
}
