/**
 * `deno task train --task sst2 [--data DIR] [--layers 4 --hidden 256 --heads 4 --ffn 1024]
 * [--arch bert|distilbert] [--vocab FILE] [--init DIR] [--epochs 3] [--max-steps N] [--lr 1e-4]
 * [--batch 32] [--seed 42] [--eval-every N] [--mlm-steps N --mlm-lr 5e-4 --mlm-text all|task
 * --mlm-length 128 --no-mlm-pack]
 * [--limit N] [--dev-limit N] [--max-length N] [--f16] [--force] --out DIR`: trains a model from
 * random init or a checkpoint and writes an HF checkpoint + metrics.json + curve.svg.
 * @module
 */
import { parseArgs } from "node:util";
import { InvalidArgumentError } from "../lib/errors.ts";
import { getGpu } from "../lib/gpu/context.ts";
import type { Arch } from "../lib/model/config.ts";
import { trainRun } from "../lib/train/run.ts";
import { Progress } from "../lib/util/progress.ts";
import { runCli } from "./cli.ts";

const USAGE = "usage: deno task train --task NAME --out DIR [--data DIR] [--init DIR] " +
  "[--arch bert|distilbert --layers 4 --hidden 256 --heads 4 --ffn 1024 --max-positions 512 --vocab FILE] " +
  "[--epochs 3 --max-steps N --lr 1e-4 --batch 32 --seed 42 --eval-every N --warmup 0.06 " +
  "--weight-decay 0.01 --clip 1] [--mlm-steps N --mlm-lr 5e-4 --mlm-batch 32 --mlm-length 128 --no-mlm-pack " +
  "--mlm-text all|task] " +
  "[--limit N --dev-limit N --max-length N] [--f16] [--force]";

/** Parses a numeric option (undefined when absent); raises on garbage. */
function num(values: Record<string, unknown>, key: string, integer = false): number | undefined {
  const v = values[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new InvalidArgumentError(
      `--${key} must be a ${integer ? "whole " : ""}number, got "${v}"`,
    );
  }
  return n;
}

if (import.meta.main) {
  await runCli(async () => {
    const s = { type: "string" } as const;
    const { values } = parseArgs({
      args: Deno.args,
      options: {
        task: s,
        data: s,
        out: s,
        init: s,
        arch: s,
        vocab: s,
        layers: s,
        hidden: s,
        heads: s,
        ffn: s,
        "max-positions": s,
        epochs: s,
        "max-steps": s,
        lr: s,
        batch: s,
        seed: s,
        "eval-every": s,
        warmup: s,
        "weight-decay": s,
        clip: s,
        "mlm-steps": s,
        "mlm-lr": s,
        "mlm-batch": s,
        "mlm-length": s,
        "no-mlm-pack": { type: "boolean" },
        "mlm-text": s,
        limit: s,
        "dev-limit": s,
        "max-length": s,
        f16: { type: "boolean" },
        force: { type: "boolean" },
        help: { type: "boolean" },
      },
    });
    if (values.help || !values.task || !values.out) throw new InvalidArgumentError(USAGE);
    const arch = (values.arch ?? "bert") as Arch;
    if (arch !== "bert" && arch !== "distilbert") {
      throw new InvalidArgumentError(`--arch must be bert or distilbert, got "${values.arch}"`);
    }
    const mlmText = values["mlm-text"] ?? "all";
    if (mlmText !== "all" && mlmText !== "task") {
      throw new InvalidArgumentError(`--mlm-text must be all or task`);
    }
    const gpu = await getGpu();
    console.error(`adapter: ${gpu.adapter.summary}`);
    let bar: Progress | undefined, mlmBar: Progress | undefined;
    let avg = NaN;
    const r = await trainRun({
      task: values.task,
      data: values.data,
      out: values.out,
      init: values.init,
      arch,
      vocab: values.vocab,
      layers: num(values, "layers", true),
      hidden: num(values, "hidden", true),
      heads: num(values, "heads", true),
      ffn: num(values, "ffn", true),
      maxPositions: num(values, "max-positions", true),
      epochs: num(values, "epochs"),
      maxSteps: num(values, "max-steps", true),
      lr: num(values, "lr"),
      batchSize: num(values, "batch", true),
      seed: num(values, "seed", true),
      evalEvery: num(values, "eval-every", true),
      warmupFraction: num(values, "warmup"),
      weightDecay: num(values, "weight-decay"),
      maxGradNorm: num(values, "clip"),
      mlmSteps: num(values, "mlm-steps", true),
      mlm: { lr: num(values, "mlm-lr"), batchSize: num(values, "mlm-batch", true) },
      mlmText,
      mlmMaxLength: num(values, "mlm-length", true),
      mlmPack: !values["no-mlm-pack"],
      limit: num(values, "limit", true),
      devLimit: num(values, "dev-limit", true),
      maxLength: num(values, "max-length", true),
      dtype: values.f16 ? "F16" : "F32",
      force: values.force,
      onMlmStep: (step, total, loss) => {
        mlmBar ??= new Progress("mlm", total, "step");
        avg = Number.isNaN(avg) ? loss : 0.98 * avg + 0.02 * loss;
        mlmBar.set(step, `loss ${avg.toFixed(3)}`);
        if (step === total) (mlmBar.done(`loss ${avg.toFixed(3)}`), avg = NaN);
      },
      onStep: (step, total, loss) => {
        bar ??= new Progress("train", total, "step");
        avg = Number.isNaN(avg) ? loss : 0.98 * avg + 0.02 * loss;
        bar.set(step, `loss ${avg.toFixed(4)}`);
        if (step === total) bar.done(`loss ${avg.toFixed(4)}`);
      },
      onEval: (step, e, best) =>
        console.error(
          `step ${step}: dev ${e.mainMetric} ${e.main.toFixed(4)}${best ? " (best)" : ""}`,
        ),
    }, gpu);
    const b = r.best;
    console.log(
      `${r.task}: best dev ${r.mainMetric} ${b ? b.main.toFixed(4) : "n/a"} at step ${b?.step} ` +
        `(trivial baseline ${r.baseline.name}: ${r.baseline.main.toFixed(4)}); ` +
        `${r.steps} steps in ${r.seconds.toFixed(0)} s, ${
          r.tokensPerSecond.toFixed(0)
        } tokens/s; ` +
        `wrote ${values.out}`,
    );
  }, USAGE);
}
