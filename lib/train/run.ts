/**
 * A whole training run as the CLI and the zoo use it: load data and tokenizer, build the model
 * (random init of a given shape or an existing checkpoint), optional MLM pretraining on task text,
 * fine-tuning with evaluation and best-checkpoint keeping, then an HF checkpoint directory with
 * `metrics.json` and `curve.svg`.
 * @module
 */
import { GLUE_TASKS, type GlueTaskName, readGlue } from "../data/glue.ts";
import { byArticleSplit, readSquad } from "../data/squad.ts";
import { checkTask, DEFAULT_DATA_DIR, loadTask, type TaskData } from "../data/tasks.ts";
import { InvalidArgumentError } from "../errors.ts";
import { getGpu, type Gpu } from "../gpu/context.ts";
import { type Arch, makeConfig, type TaskHead } from "../model/config.ts";
import { type HostCheckpoint, readCheckpoint } from "../model/checkpoint.ts";
import { createRandomModel, Model, saveCheckpoint, uploadModel } from "../model/model.ts";
import { randomWeights } from "../model/random.ts";
import { isHeadParam } from "../model/weights.ts";
import { mainMetricName } from "../eval/evaluate.ts";
import { lineChart } from "../report/svg.ts";
import { loadTokenizer, type WordPieceTokenizer } from "../text/wordpiece.ts";
import { encodeMlmTexts } from "./mlm.ts";
import {
  type CurvePoint,
  fineTune,
  type FineTuneOptions,
  type MlmOptions,
  pretrainMlm,
} from "./trainer.ts";

/** Everything a training run needs. */
export interface TrainRunOptions extends FineTuneOptions {
  /** Task name (GLUE or squad). */
  task: string;
  /** Data root: GLUE root/task folder or SQuAD folder/file (default ../shared/data/…). */
  data?: string;
  /** Output checkpoint directory. */
  out: string;
  /** Start from this checkpoint instead of random weights. */
  init?: string;
  /** Random init: architecture (default bert). */
  arch?: Arch;
  /** Random init: layers (default 4). */
  layers?: number;
  /** Random init: hidden size (default 256). */
  hidden?: number;
  /** Random init: heads (default 4). */
  heads?: number;
  /** Random init: FFN width (default 4·hidden). */
  ffn?: number;
  /** Random init: vocab.txt (default ../shared/data/vocab/bert-base-uncased.txt). */
  vocab?: string;
  /** Random init: max positions (default 512). */
  maxPositions?: number;
  /** Maximum tokenized length (default per task). */
  maxLength?: number;
  /** Use only the first N training items. */
  limit?: number;
  /** Use only the first N dev items. */
  devLimit?: number;
  /** MLM pretraining steps before fine-tuning (0 = none). */
  mlmSteps?: number;
  /** MLM options (lr, batch…). */
  mlm?: Omit<MlmOptions, "steps" | "onStep">;
  /** Where MLM text comes from: "task" (this task's train text) or "all" (all GLUE train sets here and the SQuAD by-article train contexts). Default "all". */
  mlmText?: "task" | "all";
  /** MLM window length in pieces incl. [CLS]/[SEP] (default 128, at most maxPositions). */
  mlmMaxLength?: number;
  /** Pack MLM texts into full 128-piece windows (default true; see `encodeMlmTexts`). */
  mlmPack?: boolean;
  /** Shared data root for MLM text (default ../shared/data). */
  mlmDataRoot?: string;
  /** Save as F16 (default F32). */
  dtype?: "F32" | "F16";
  /** Replace an existing output directory. */
  force?: boolean;
  /** Called after every MLM step. */
  onMlmStep?: (step: number, total: number, loss: number, lr: number) => void;
  /** Log lines (default console.error). */
  log?: (line: string) => void;
}

/** Summary written to metrics.json. */
export interface TrainRunResult {
  /** Task name. */
  task: string;
  /** Dev split name used. */
  devSplit: string;
  /** Headline metric name and best value. */
  mainMetric: string;
  /** Best dev metrics. */
  best?: { step: number; main: number; metrics: Record<string, number> };
  /** All evaluations. */
  evals: { step: number; main: number; metrics: Record<string, number> }[];
  /** Trivial baseline on dev (majority class / constant prediction), headline metric. */
  baseline: { name: string; main: number };
  /** Training items used. */
  trainItems: number;
  /** Fine-tuning steps done. */
  steps: number;
  /** MLM pretraining steps done. */
  mlmSteps: number;
  /** Wall-clock seconds of MLM + fine-tuning (evaluations included). */
  seconds: number;
  /** Tokens per second of fine-tuning (real tokens, forward+backward+update). */
  tokensPerSecond: number;
  /** Model shape. */
  shape: {
    arch: string;
    layers: number;
    hidden: number;
    heads: number;
    ffn: number;
    vocab: number;
  };
  /** The options of the run (reproducibility). */
  options: Record<string, unknown>;
}

function headOf(task: string): { head: TaskHead; numLabels: number } {
  if (task === "squad" || task === "squad_v2") return { head: "qa", numLabels: 2 };
  const info = GLUE_TASKS[task as GlueTaskName];
  if (!info.labels) return { head: "regression", numLabels: 1 };
  return { head: "classification", numLabels: info.labels.length };
}

/** The default dev split of a task (SQuAD: the held-out by-article half of dev-v1.1). */
export function devSplitOf(task: string): string {
  if (task === "squad" || task === "squad_v2") return "heldout";
  return task === "mnli" ? "dev_matched" : "dev";
}

/**
 * The trivial baseline of a dev split, in the task's headline metric: majority class of the
 * training labels (dev accuracy; CoLA's Matthews correlation of a constant prediction is 0),
 * constant prediction for STS-B (Spearman 0), and for SQuAD an empty answer (F1 0).
 */
export function trivialBaseline(
  task: string,
  train: TaskData,
  dev: TaskData,
): { name: string; main: number } {
  if (dev.kind === "squad") return { name: "no answer", main: 0 };
  if (task === "stsb") return { name: "constant prediction", main: 0 };
  const counts = new Map<number, number>();
  for (const e of train.items) counts.set(e.label!, (counts.get(e.label!) ?? 0) + 1);
  const major = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0][0];
  const n = dev.items.length;
  const correct = dev.items.filter((e) => e.label === major).length;
  if (task === "cola") return { name: `majority class ${major}`, main: 0 };
  return { name: `majority class ${major}`, main: correct / n };
}

/** Text for MLM pretraining: GLUE train sentences (never dev) and SQuAD by-article train contexts. */
export async function mlmTexts(
  which: "task" | "all",
  task: string,
  o: { data?: string; root?: string },
): Promise<string[]> {
  const root = o.root ?? DEFAULT_DATA_DIR;
  const texts: string[] = [];
  const glue = which === "task"
    ? (task.startsWith("squad") ? [] : [task])
    : Object.keys(GLUE_TASKS);
  for (const t of glue) {
    const dir = which === "task" && o.data ? o.data : `${root}/glue`;
    let ex;
    try {
      ex = await readGlue(t, dir, "train");
    } catch {
      continue; // train file not available here (MNLI, QQP, QNLI)
    }
    for (const e of ex) {
      texts.push(e.textA);
      if (e.textB) texts.push(e.textB);
    }
  }
  if (which === "all" || task.startsWith("squad")) {
    const file = which === "task" && o.data?.endsWith(".json")
      ? o.data
      : `${root}/squad/dev-v1.1.json`;
    try {
      const json = byArticleSplit(await readSquad(file), "train");
      for (const a of json.data) for (const p of a.paragraphs) texts.push(p.context);
    } catch { /* no SQuAD here */ }
  }
  return texts;
}

function curveSvg(curve: CurvePoint[], mlm: CurvePoint[], task: string): string {
  const smooth = (c: CurvePoint[]) => {
    const k = Math.max(1, Math.floor(c.length / 200));
    const pts: { x: number; y: number }[] = [];
    for (let i = 0; i < c.length; i += k) {
      const part = c.slice(i, i + k);
      pts.push({
        x: part[part.length - 1].step,
        y: part.reduce((s, p) => s + p.loss, 0) / part.length,
      });
    }
    return pts;
  };
  const series = curve.length ? [{ label: `${task} fine-tuning loss`, points: smooth(curve) }] : [];
  if (mlm.length) series.unshift({ label: "MLM loss", points: smooth(mlm) });
  const title = curve.length ? `training curve (${task})` : "MLM pretraining curve";
  return lineChart(series, { title, xLabel: "step", yLabel: "loss" });
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/**
 * A checkpoint with the task head `head`/`numLabels`: unchanged when it already has it, otherwise
 * the embeddings and encoder are kept and the head (pooler/pre-classifier, classifier or QA
 * outputs) is freshly initialised with `seed` — how a pretrained (e.g. MLM) encoder starts a new task.
 */
export function reHead(
  host: HostCheckpoint,
  head: TaskHead,
  numLabels: number,
  seed: number,
): HostCheckpoint {
  const c = host.config;
  if (c.head === head && c.numLabels === numLabels) return host;
  const raw = { ...c.raw };
  for (const k of ["id2label", "label2id", "num_labels", "problem_type", "architectures"]) {
    delete raw[k];
  }
  const config = { ...c, head, numLabels, id2label: undefined, label2id: undefined, raw };
  const fresh = randomWeights(config, seed);
  const weights = new Map(host.weights);
  for (const name of [...weights.keys()]) if (isHeadParam(name)) weights.delete(name);
  for (const [name, t] of fresh) if (isHeadParam(name)) weights.set(name, t);
  return { ...host, config, weights };
}

/** Runs a whole training (see the module doc) and returns the summary written to metrics.json. */
export async function trainRun(o: TrainRunOptions, gpu?: Gpu): Promise<TrainRunResult> {
  checkTask(o.task);
  const log = o.log ?? ((s: string) => console.error(s));
  const g = gpu ?? (await getGpu());
  const { head, numLabels } = headOf(o.task);
  let model: Model;
  let tok: WordPieceTokenizer;
  if (o.init) {
    const host = await readCheckpoint(o.init);
    tok = await loadTokenizer(o.init);
    model = await uploadModel(reHead(host, head, numLabels, o.seed ?? 42), g);
    if (host.config.head !== head || host.config.numLabels !== numLabels) {
      log(
        `--init has a ${host.config.head} head (${host.config.numLabels} outputs); ${o.task} ` +
          `needs ${head} (${numLabels}): encoder and embeddings kept, a new head initialised`,
      );
    }
  } else {
    const vocabPath = o.vocab ?? `${DEFAULT_DATA_DIR}/vocab/bert-base-uncased.txt`;
    tok = await loadTokenizer(vocabPath);
    const vocabText = await Deno.readTextFile(vocabPath);
    const hidden = o.hidden ?? 256;
    const config = makeConfig({
      arch: o.arch ?? "bert",
      head,
      numLabels,
      vocabSize: tok.idToToken.length,
      hiddenSize: hidden,
      numLayers: o.layers ?? 4,
      numHeads: o.heads ?? 4,
      intermediateSize: o.ffn ?? 4 * hidden,
      maxPositions: o.maxPositions ?? 512,
      padTokenId: tok.padId,
    });
    const random = await createRandomModel(config, o.seed ?? 42, g);
    model = new Model(
      g,
      config,
      random.params,
      vocabText,
      { do_lower_case: tok.doLowerCase, model_max_length: config.maxPositions },
    );
  }
  const c = model.config;
  const split = devSplitOf(o.task);
  const trainData = await loadTask(tok, o.task, "train", {
    data: o.data,
    maxLength: o.maxLength,
    limit: o.limit,
  });
  const dev = await loadTask(tok, o.task, split, {
    data: o.data,
    maxLength: o.maxLength,
    limit: o.devLimit,
  });
  log(
    `${o.task}: ${trainData.items.length} train items (mean ${
      trainData.meanLength.toFixed(1)
    } tokens), ` +
      `${dev.items.length} ${split} items; model ${c.arch} L${c.numLayers} H${c.hiddenSize} ` +
      `A${c.numHeads} F${c.intermediateSize} V${c.vocabSize}`,
  );
  const mlmOnly = o.maxSteps === 0;
  if (mlmOnly && !(o.mlmSteps! > 0)) {
    throw new InvalidArgumentError("--max-steps 0 (MLM only) needs --mlm-steps > 0");
  }
  let mlmCurve: CurvePoint[] = [];
  const t0 = performance.now();
  if ((o.mlmSteps ?? 0) > 0) {
    const texts = await mlmTexts(o.mlmText ?? "all", o.task, { data: o.data, root: o.mlmDataRoot });
    const items = encodeMlmTexts(tok, texts, Math.min(o.mlmMaxLength ?? 128, c.maxPositions), {
      pack: o.mlmPack ?? true,
    });
    const pieces = items.reduce((a, e) => a + e.inputIds.length, 0);
    log(
      `MLM: ${texts.length} texts → ${items.length} sequences (${pieces} pieces), ` +
        `${o.mlmSteps} steps of ${o.mlm?.batchSize ?? 32}`,
    );
    mlmCurve = await pretrainMlm(model, tok, items, {
      ...o.mlm,
      steps: o.mlmSteps!,
      seed: o.seed,
      onStep: o.onMlmStep,
    });
  }
  const ft = mlmOnly
    ? { curve: [], evals: [], best: undefined, steps: 0, seconds: 0 }
    : await fineTune(model, trainData.items, dev, o);
  const seconds = (performance.now() - t0) / 1000;
  await saveCheckpoint(model, o.out, { dtype: o.dtype ?? "F32", force: o.force });
  const B = o.batchSize ?? 32;
  const tokensPerStep = trainData.meanLength * B;
  const result: TrainRunResult = {
    task: o.task,
    devSplit: split,
    mainMetric: dev.kind === "squad" ? "f1" : Object.keys(ft.evals[0]?.metrics ?? {})[0] ?? "",
    best: ft.best,
    evals: ft.evals,
    baseline: trivialBaseline(o.task, trainData, dev),
    trainItems: trainData.items.length,
    steps: ft.steps,
    mlmSteps: mlmCurve.length,
    seconds,
    tokensPerSecond: ft.steps ? (tokensPerStep * ft.steps) / ft.seconds : 0,
    shape: {
      arch: c.arch,
      layers: c.numLayers,
      hidden: c.hiddenSize,
      heads: c.numHeads,
      ffn: c.intermediateSize,
      vocab: c.vocabSize,
    },
    options: Object.fromEntries(
      Object.entries(o).filter(([, v]) => typeof v !== "function"),
    ),
  };
  result.mainMetric = mainMetricName(o.task);
  await writeAtomic(`${o.out}/metrics.json`, JSON.stringify(result, null, 2) + "\n");
  await writeAtomic(`${o.out}/curve.svg`, curveSvg(ft.curve, mlmCurve, o.task));
  model.release();
  return result;
}
