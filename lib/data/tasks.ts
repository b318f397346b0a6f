/**
 * Task-level data loading: one call turns a task name and a data location into encoded examples
 * (GLUE) or features (SQuAD) ready for batching, for a split. Task names are the paper's and Hugging
 * Face's: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli, squad, squad_v2. When no data path
 * is given, `../shared/data` (relative to the working directory) is used.
 * @module
 */
import { FileFormatError, InvalidArgumentError } from "../errors.ts";
import type { WordPieceTokenizer } from "../text/wordpiece.ts";
import { type Encoded, encodeGlue } from "./batch.ts";
import { GLUE_TASKS, type GlueSplit, readGlue } from "./glue.ts";
import {
  byArticleSplit,
  prepareSquadFeatures,
  readSquad,
  type SquadExample,
  squadExamples,
  type SquadFeature,
  type SquadJson,
} from "./squad.ts";

/** Every task name fastprune knows. */
export const TASK_NAMES: string[] = [...Object.keys(GLUE_TASKS), "squad", "squad_v2"];

/** A split of a task, encoded. */
export interface TaskData {
  /** Task name. */
  task: string;
  /** "glue" or "squad". */
  kind: "glue" | "squad";
  /** Split name as asked. */
  split: string;
  /** Encoded examples (GLUE) or features (SQuAD). */
  items: Encoded[];
  /** SQuAD: the JSON (the split's articles), examples and features. */
  squad?: { json: SquadJson; examples: SquadExample[]; features: SquadFeature[] };
  /** Mean tokenized length (special tokens included) over `items`. */
  meanLength: number;
  /** Where the data was read from. */
  source: string;
}

/** Default maximum length per task (METHOD §3: 64 for SST-2 and CoLA, 128 other GLUE, 384 SQuAD). */
export function defaultMaxLength(task: string): number {
  if (task === "sst2" || task === "cola") return 64;
  if (task === "squad" || task === "squad_v2") return 384;
  return 128;
}

/** Throws unless `task` is known. */
export function checkTask(task: string): void {
  if (!TASK_NAMES.includes(task)) {
    throw new InvalidArgumentError(`unknown task "${task}"; use one of ${TASK_NAMES.join(", ")}`);
  }
}

/** Where the shared data lives when no `--data` is given. */
export const DEFAULT_DATA_DIR = "../shared/data";

/**
 * Loads a split. GLUE: `data` is a GLUE root, task folder or .tsv file; splits train/dev (MNLI:
 * dev_matched, dev_mismatched). SQuAD: `data` is a JSON file or a folder holding dev-v1.1.json /
 * train-v1.1.json / dev-v2.0.json; splits train, dev, and `heldout`/`train` by-article halves of
 * a single file when only the dev file exists (article i is held out when i % 5 == 4).
 */
export async function loadTask(
  tok: WordPieceTokenizer,
  task: string,
  split: string,
  o: { data?: string; maxLength?: number; limit?: number } = {},
): Promise<TaskData> {
  checkTask(task);
  const maxLength = o.maxLength ?? defaultMaxLength(task);
  if (task === "squad" || task === "squad_v2") {
    const v2 = task === "squad_v2";
    const base = o.data ?? `${DEFAULT_DATA_DIR}/squad`;
    let file = base;
    let json: SquadJson;
    let bySplit = false;
    if (!base.endsWith(".json")) {
      const wanted = split === "train" ? [`train-v${v2 ? "2.0" : "1.1"}.json`] : [];
      wanted.push(`dev-v${v2 ? "2.0" : "1.1"}.json`);
      file = "";
      for (const w of wanted) {
        try {
          if ((await Deno.stat(`${base}/${w}`)).isFile) {
            file = `${base}/${w}`;
            break;
          }
        } catch { /* next */ }
      }
      if (!file) {
        throw new FileFormatError(
          `no ${wanted.join(" or ")} in ${base}: pass --data with a SQuAD JSON file`,
        );
      }
      bySplit = !file.includes("train-") && (split === "train" || split === "heldout");
    } else bySplit = split === "train" || split === "heldout";
    json = await readSquad(file);
    if (bySplit) json = byArticleSplit(json, split === "train" ? "train" : "heldout");
    let examples = squadExamples(json);
    if (o.limit) examples = examples.slice(0, o.limit);
    const features = prepareSquadFeatures(tok, examples, { maxLength });
    if (features.length === 0) {
      throw new InvalidArgumentError(`SQuAD ${split} split of ${file} is empty`);
    }
    return {
      task,
      kind: "squad",
      split,
      items: features,
      squad: { json, examples, features },
      meanLength: mean(features.map((f) => f.inputIds.length)),
      source: file + (bySplit ? ` (by-article ${split} half)` : ""),
    };
  }
  const data = o.data ?? `${DEFAULT_DATA_DIR}/glue`;
  let examples = await readGlue(task, data, split as GlueSplit);
  if (o.limit) examples = examples.slice(0, o.limit);
  const items = encodeGlue(tok, task, examples, maxLength);
  return {
    task,
    kind: "glue",
    split,
    items,
    meanLength: mean(items.map((e) => e.inputIds.length)),
    source: data,
  };
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}
