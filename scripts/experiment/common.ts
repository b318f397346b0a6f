/**
 * Shared plumbing of the reproducibility experiments: model discovery in a zoo directory, sample
 * sets and dev data per model, a content-addressed cell cache (so reruns are incremental and an
 * interrupted run resumes), atomic output writing, and Markdown/CSV helpers.
 * @module
 */
import { lengthSortedOrder, makeBatches } from "../../lib/data/batch.ts";
import { loadTask, TASK_NAMES, type TaskData } from "../../lib/data/tasks.ts";
import { InvalidArgumentError } from "../../lib/errors.ts";
import type { ModelInput } from "../../lib/model/inputs.ts";
import { loadCheckpoint, type Model } from "../../lib/model/model.ts";
import { parseConfig } from "../../lib/model/config.ts";
import { loadTokenizer, type WordPieceTokenizer } from "../../lib/text/wordpiece.ts";
import { sampleIndices, sampleWithReplacement } from "../../lib/util/pcg32.ts";

/** A model of the zoo (or a user checkpoint) and its task. */
export interface ZooModel {
  /** Short name, e.g. "bert-sst2". */
  name: string;
  /** Checkpoint directory. */
  dir: string;
  /** Task name. */
  task: string;
  /** "bert" or "distilbert". */
  arch: string;
  /** Dev metric recorded at training time (if any). */
  trained?: number;
  /** Trivial baseline recorded at training time (if any). */
  baseline?: number;
}

/** Experiment-wide settings (defaults chosen so `experiment all` fits ~3 h on a 2-core CPU). */
export interface ExperimentSettings {
  /** Models directories (comma-separated). */
  models: string;
  /** Output directory. */
  out: string;
  /** Tasks to include (empty = all found). */
  tasks: string[];
  /** Model directory names to include (empty = all found). */
  names?: string[];
  /** Ablation: models that also get the METHOD.md-deviation presets (empty = all). */
  presetModels?: string[];
  /** Sample-set size. */
  samples: number;
  /**
   * Sample-set size for SQuAD models (0 or absent = `samples`): a SQuAD sample is one 384-piece
   * window, ~15× the pieces of an SST-2 sentence, so by default the experiments draw 64 of them
   * (24,576 pieces, still 6× the pieces of 128 SST-2 sentences).
   */
  squadSamples?: number;
  /** Seeds of the sample set. */
  seeds: number[];
  /** Dev examples evaluated per cell (0 = all). */
  devLimit: number;
  /**
   * Held-out questions per cell for SQuAD models when `devLimit` is 0 (0 = all): a SQuAD
   * evaluation costs ~10× a GLUE one (384-piece windows), so by default the first 500 of the
   * by-article held-out split, the same 500 the zoo's training run evaluated.
   */
  squadDevLimit?: number;
  /** Data directory (default ../shared/data). */
  data?: string;
  /** Minimum margin over the trivial baseline for a zoo model to count. */
  margin: number;
  /** Sample counts of the cost experiment. */
  costSizes: number[];
  /** Models of latency, label-free and cost's sample sweep (empty = one per architecture). */
  focus?: string[];
}

/**
 * The margin a model must clear over its trivial baseline, in its headline metric's units: `margin`
 * for accuracies (fractions), at least 0.05 for correlations (CoLA, STS-B), `margin`·100 for SQuAD F1
 * (reported in percent).
 */
export function marginOf(task: string, margin: number): number {
  if (task === "cola" || task === "stsb") return Math.max(margin, 0.05);
  if (task.startsWith("squad")) return margin * 100;
  return margin;
}

/**
 * The task a checkpoint directory's name names, for checkpoints without our metrics.json (e.g.
 * `textattack-bert-base-uncased-SST-2`, `distilbert-base-uncased-finetuned-sst-2-english`,
 * `deepset-bert-base-cased-squad2`): the last of its parts, split at `-`, `_` and `.`, that is a
 * task of `TASK_NAMES` once GLUE's dashed spellings (SST-2, STS-B) and SQuAD's versions (squad_v2,
 * squad2, squad-v1.1) are normalised. Undefined when none is.
 */
export function taskFromName(name: string): string | undefined {
  const parts = name.toLowerCase().replace(/sst-2/g, "sst2").replace(/sts-b/g, "stsb")
    .replace(/squad[-_.]?v?2/g, "squadv2").replace(/squad[-_.]?v1(\.1)?/g, "squad")
    .split(/[-_.]/).map((p) => (p === "squadv2" ? "squad_v2" : p));
  return parts.filter((p) => TASK_NAMES.includes(p)).pop();
}

/**
 * Finds checkpoints in the `--models` directories (comma-separated; any subfolder with
 * config.json), with their task. Models whose metrics.json shows they do not beat their trivial
 * baseline are skipped. Without `--names`, one model per task and architecture is kept (the
 * paper's tables, and one curve per architecture in each task's plot): the one with the best
 * recorded dev metric, so that e.g. a random-init STS-B BERT that beats the MLM-initialised one
 * replaces it. `--names` keeps every named model.
 */
export async function discoverModels(s: ExperimentSettings): Promise<ZooModel[]> {
  const out: ZooModel[] = [];
  const entries: { root: string; e: Deno.DirEntry }[] = [];
  for (const root of s.models.split(",").filter((r) => r !== "")) {
    try {
      for (const e of Deno.readDirSync(root)) entries.push({ root, e });
    } catch {
      throw new InvalidArgumentError(
        `no models directory ${root}: train the zoo first (deno task zoo) or pass --models`,
      );
    }
  }
  entries.sort((a, b) => a.e.name.localeCompare(b.e.name));
  for (const { root, e } of entries) {
    if (!e.isDirectory) continue;
    if (s.names?.length && !s.names.includes(e.name)) continue;
    if (out.some((m) => m.name === e.name)) {
      throw new InvalidArgumentError(
        `two models named ${e.name} in --models ${s.models}: names must be unique`,
      );
    }
    const dir = `${root}/${e.name}`;
    let config;
    try {
      config = parseConfig(
        JSON.parse(await Deno.readTextFile(`${dir}/config.json`)),
        `${dir}/config.json`,
      );
    } catch {
      continue;
    }
    let task: string | undefined, trained: number | undefined, baseline: number | undefined;
    try {
      const m = JSON.parse(await Deno.readTextFile(`${dir}/metrics.json`));
      task = m.task;
      trained = m.best?.main;
      baseline = m.baseline?.main;
    } catch {
      task = taskFromName(e.name);
    }
    if (!task) {
      console.error(
        `skipping ${e.name}: no metrics.json says its task and its name names none ` +
          `(e.g. call the directory bert-base-uncased-sst2)`,
      );
      continue;
    }
    if (s.tasks.length && !s.tasks.includes(task)) continue;
    if (trained === undefined && baseline !== undefined) {
      console.error(`skipping ${e.name}: not fine-tuned (no dev evaluation in metrics.json)`);
      continue;
    }
    const margin = marginOf(task, s.margin);
    if (trained !== undefined && baseline !== undefined && !(trained >= baseline + margin)) {
      console.error(
        `skipping ${e.name}: dev ${trained.toFixed(4)} does not beat its trivial baseline ${
          baseline.toFixed(4)
        } by ${margin}`,
      );
      continue;
    }
    out.push({ name: e.name, dir, task, arch: config.arch, trained, baseline });
  }
  if (!s.names?.length) {
    for (const m of [...out]) {
      const rival = out.find((x) =>
        x !== m && x.task === m.task && x.arch === m.arch &&
        (x.trained ?? -Infinity) > (m.trained ?? -Infinity)
      );
      if (rival) {
        console.error(
          `skipping ${m.name}: ${rival.name} is the better ${m.task} ${m.arch} model (dev ${
            rival.trained?.toFixed(4)
          } vs ${m.trained?.toFixed(4) ?? "unknown"})`,
        );
        out.splice(out.indexOf(m), 1);
      }
    }
  }
  if (out.length === 0) throw new InvalidArgumentError(`no usable models found in ${s.models}`);
  return out;
}

/** The dev/held-out examples evaluated per cell for model `m` (0 = all). */
export function devLimitOf(m: { task: string }, s: ExperimentSettings): number {
  return s.devLimit || (m.task.startsWith("squad") ? s.squadDevLimit ?? 0 : 0);
}

/** The sample-set size for model `m`: `squadSamples` for SQuAD models when set, else `samples`. */
export function samplesOf(m: { task: string }, s: ExperimentSettings): number {
  return (m.task.startsWith("squad") && s.squadSamples) || s.samples;
}

/** Loaded model with its data. */
export interface Prepared {
  /** The model on the GPU. */
  model: Model;
  /** Its tokenizer. */
  tok: WordPieceTokenizer;
  /** Encoded train split. */
  train: TaskData;
  /** Encoded dev split (possibly limited). */
  dev: TaskData;
}

/** Loads a model and its train/dev data. */
export async function prepare(m: ZooModel, s: ExperimentSettings): Promise<Prepared> {
  const model = await loadCheckpoint(m.dir);
  const tok = await loadTokenizer(m.dir);
  const squad = m.task.startsWith("squad");
  const train = await loadTask(tok, m.task, "train", { data: s.data });
  const dev = await loadTask(
    tok,
    m.task,
    squad ? "heldout" : m.task === "mnli" ? "dev_matched" : "dev",
    {
      data: s.data,
      limit: devLimitOf(m, s) || undefined,
    },
  );
  return { model, tok, train, dev };
}

/**
 * The sample set of a seed: batches of the train split, by length as `deno task prune` batches
 * them (`byLength`, default), or in the seeded order (a batch-mean Fisher's groups).
 */
export function sampleBatches(
  p: Prepared,
  samples: number,
  seed: number,
  withReplacement = false,
  byLength = true,
): ModelInput[] {
  const n = p.train.items.length;
  const order = withReplacement
    ? Array.from(sampleWithReplacement(n, samples, seed) as ArrayLike<number>)
    : Array.from(sampleIndices(n, samples, seed).indices);
  return makeBatches(p.train.items, p.dev.kind === "squad" ? 12 : 32, {
    order: byLength ? lengthSortedOrder(p.train.items, order) : order,
    padId: p.tok.padId,
  });
}

/** FNV-1a hash of a string (cell keys). */
export function hashKey(s: string): string {
  let h1 = 0x811c9dc5, h2 = 0x01000193;
  for (let i = 0; i < s.length; i++) {
    h1 = Math.imul(h1 ^ s.charCodeAt(i), 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ s.charCodeAt(i), 0x5bd1e995) >>> 0;
  }
  return h1.toString(16).padStart(8, "0") + h2.toString(16).padStart(8, "0");
}

/** Identity of a checkpoint's content (size + mtime of its files), part of cell keys. */
export async function modelStamp(dir: string): Promise<string> {
  const parts: string[] = [];
  for (const f of ["config.json", "model.safetensors"]) {
    try {
      const st = await Deno.stat(`${dir}/${f}`);
      parts.push(`${f}:${st.size}:${st.mtime?.getTime() ?? 0}`);
    } catch { /* absent */ }
  }
  return parts.join(",");
}

/** A cache of finished cells under `<out>/cells/`. */
export class Cells {
  /** Creates the cache in `dir`. */
  constructor(readonly dir: string) {}

  /** Returns the cached value of `key`, or computes, stores and returns it. */
  async get<T>(keyObj: unknown, compute: () => Promise<T>): Promise<T> {
    const key = hashKey(JSON.stringify(keyObj));
    const file = `${this.dir}/${key}.json`;
    try {
      return JSON.parse(await Deno.readTextFile(file)).value as T;
    } catch { /* not cached */ }
    const value = await compute();
    await Deno.mkdir(this.dir, { recursive: true });
    const tmp = `${file}.tmp-${Deno.pid}`;
    await Deno.writeTextFile(tmp, JSON.stringify({ key: keyObj, value }));
    await Deno.rename(tmp, file);
    return value;
  }
}

/** Writes a file atomically (temp + rename). */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/** Mean and (sample) standard deviation. */
export function meanStd(xs: number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const v = xs.length > 1 ? xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1) : 0;
  return { mean, std: Math.sqrt(v) };
}

/** A Markdown table. */
export function mdTable(header: string[], rows: (string | number)[][]): string {
  const f = (
    x: string | number,
  ) => (typeof x === "number" ? (Number.isInteger(x) ? `${x}` : x.toFixed(4)) : x);
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.map(f).join(" | ")} |`),
  ].join("\n");
}

/** CSV text (values quoted when needed). */
export function csv(header: string[], rows: (string | number)[][]): string {
  const q = (x: string | number) => {
    const s = String(x);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [header.join(","), ...rows.map((r) => r.map(q).join(","))].join("\n") + "\n";
}

/** The Markdown header every experiment writes: command, adapter, commit, settings. */
export async function header(
  name: string,
  adapter: string,
  s: ExperimentSettings,
  extra = "",
): Promise<string> {
  let commit = "unknown";
  try {
    const r = await new Deno.Command("git", {
      args: ["rev-parse", "--short", "HEAD"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (r.code === 0) commit = new TextDecoder().decode(r.stdout).trim();
  } catch { /* no git */ }
  return [
    `# Experiment: ${name}`,
    "",
    `- command: \`deno task experiment ${Deno.args.join(" ")}\``,
    `- adapter: ${adapter}`,
    `- commit: ${commit}`,
    `- models: ${s.models}; samples: ${s.samples} per seed${
      s.squadSamples ? ` (SQuAD: ${s.squadSamples} windows)` : ""
    }, seeds ${s.seeds.join(", ")}; dev examples per cell: ${s.devLimit || "all"}${
      !s.devLimit && s.squadDevLimit
        ? ` (SQuAD: the first ${s.squadDevLimit} held-out questions)`
        : ""
    }`,
    extra,
    "",
  ].join("\n");
}
