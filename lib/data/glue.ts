/**
 * GLUE readers for the nine tasks in their distributed TSV layouts (the GLUE download as read by
 * Hugging Face's `glue_processors`): tab-separated, no quoting, UTF-8 with an optional BOM.
 * Column choice, header handling and label lists follow transformers/data/processors/glue.py;
 * sentence keys and metric names follow run_glue.py / evaluate's "glue" metric.
 *
 * Label order is the processors' `get_labels()`: note MNLI is [contradiction, entailment,
 * neutral], which differs from the `datasets` hub order; checkpoints carry their own
 * `label2id`, which callers should prefer when present.
 * @module
 */
import { FileFormatError, InvalidArgumentError } from "../errors.ts";

/** A GLUE task name as used by run_glue. */
export type GlueTaskName =
  | "cola"
  | "sst2"
  | "mrpc"
  | "stsb"
  | "qqp"
  | "mnli"
  | "qnli"
  | "rte"
  | "wnli";

/** Split names: train, dev (dev_matched for mnli), and MNLI's dev_matched/dev_mismatched. */
export type GlueSplit = "train" | "dev" | "dev_matched" | "dev_mismatched";

/** Static description of one GLUE task. */
export interface GlueTaskInfo {
  /** Folder name in the GLUE download (e.g. "SST-2"). */
  dir: string;
  /** run_glue's `task_to_keys`: names of the first and second sentence (null for single). */
  keys: [string, string | null];
  /** Label strings in class-index order (HF processor order); null for regression (STS-B). */
  labels: string[] | null;
  /** evaluate "glue" metric keys reported for the task. */
  metric: ("accuracy" | "f1" | "matthews_correlation" | "pearson" | "spearmanr")[];
  /** TSV file name per split. */
  files: Partial<Record<GlueSplit, string>>;
  /** Whether the TSV's first line is a header. */
  header: boolean;
  /** Column index of sentence 1, sentence 2 (or -1) and label (negative = from the end). */
  columns: [number, number, number];
  /** Minimum number of columns in a header / data row. */
  minColumns: number;
}

const PAIR_FILES = { train: "train.tsv", dev: "dev.tsv" };

/** Metadata of every GLUE task (see `GlueTaskInfo`). */
export const GLUE_TASKS: Record<GlueTaskName, GlueTaskInfo> = {
  cola: {
    dir: "CoLA",
    keys: ["sentence", null],
    labels: ["0", "1"],
    metric: ["matthews_correlation"],
    files: PAIR_FILES,
    header: false,
    columns: [3, -1, 1],
    minColumns: 4,
  },
  sst2: {
    dir: "SST-2",
    keys: ["sentence", null],
    labels: ["0", "1"],
    metric: ["accuracy"],
    files: PAIR_FILES,
    header: true,
    columns: [0, -1, 1],
    minColumns: 2,
  },
  mrpc: {
    dir: "MRPC",
    keys: ["sentence1", "sentence2"],
    labels: ["0", "1"],
    metric: ["f1", "accuracy"],
    files: PAIR_FILES,
    header: true,
    columns: [3, 4, 0],
    minColumns: 5,
  },
  stsb: {
    dir: "STS-B",
    keys: ["sentence1", "sentence2"],
    labels: null,
    metric: ["pearson", "spearmanr"],
    files: PAIR_FILES,
    header: true,
    columns: [7, 8, -1],
    minColumns: 10,
  },
  qqp: {
    dir: "QQP",
    keys: ["question1", "question2"],
    labels: ["0", "1"],
    metric: ["f1", "accuracy"],
    files: PAIR_FILES,
    header: true,
    columns: [3, 4, 5],
    minColumns: 6,
  },
  mnli: {
    dir: "MNLI",
    keys: ["premise", "hypothesis"],
    labels: ["contradiction", "entailment", "neutral"],
    metric: ["accuracy"],
    files: {
      train: "train.tsv",
      dev: "dev_matched.tsv",
      dev_matched: "dev_matched.tsv",
      dev_mismatched: "dev_mismatched.tsv",
    },
    header: true,
    columns: [8, 9, -1],
    minColumns: 12,
  },
  qnli: {
    dir: "QNLI",
    keys: ["question", "sentence"],
    labels: ["entailment", "not_entailment"],
    metric: ["accuracy"],
    files: PAIR_FILES,
    header: true,
    columns: [1, 2, -1],
    minColumns: 4,
  },
  rte: {
    dir: "RTE",
    keys: ["sentence1", "sentence2"],
    labels: ["entailment", "not_entailment"],
    metric: ["accuracy"],
    files: PAIR_FILES,
    header: true,
    columns: [1, 2, -1],
    minColumns: 4,
  },
  wnli: {
    dir: "WNLI",
    keys: ["sentence1", "sentence2"],
    labels: ["0", "1"],
    metric: ["accuracy"],
    files: PAIR_FILES,
    header: true,
    columns: [1, 2, -1],
    minColumns: 4,
  },
};

/** Default maximum sequence length of run_glue. */
export const GLUE_MAX_LENGTH = 128;

/** One GLUE example: its sentences and its class index (classification) or score (STS-B). */
export interface GlueExample {
  /** 1-based line number in the TSV (for messages). */
  line: number;
  /** First sentence. */
  textA: string;
  /** Second sentence (null for single-sentence tasks). */
  textB: string | null;
  /** Class index into `GLUE_TASKS[task].labels`. */
  label?: number;
  /** Regression target (STS-B score). */
  target?: number;
}

/** Returns the task's metadata or throws InvalidArgumentError listing the valid names. */
export function glueTask(task: string): GlueTaskInfo {
  const info = (GLUE_TASKS as Record<string, GlueTaskInfo>)[task];
  if (!info) {
    throw new InvalidArgumentError(
      `unknown GLUE task "${task}"; use one of ${Object.keys(GLUE_TASKS).join(", ")}`,
    );
  }
  return info;
}

/** Resolves the TSV path of a split: `dirOrFile` may be the file itself, the task folder or the GLUE root. */
export async function glueFile(task: string, dirOrFile: string, split: GlueSplit): Promise<string> {
  const info = glueTask(task);
  const name = info.files[split];
  if (!name) {
    throw new InvalidArgumentError(
      `task ${task} has no split "${split}"; use one of ${Object.keys(info.files).join(", ")}`,
    );
  }
  if (dirOrFile.endsWith(".tsv")) return dirOrFile;
  const base = dirOrFile.replace(/\/$/, "");
  for (const candidate of [`${base}/${name}`, `${base}/${info.dir}/${name}`]) {
    try {
      if ((await Deno.stat(candidate)).isFile) return candidate;
    } catch { /* try next */ }
  }
  throw new FileFormatError(
    `GLUE ${task} ${split}: no ${name} in ${base} or ${base}/${info.dir}; pass the GLUE data folder`,
  );
}

/**
 * Reads one split of a GLUE task. `dirOrFile` is the .tsv file, the task folder or the GLUE root.
 * Throws FileFormatError naming file and line for a missing file, a header with too few columns,
 * a row with too few columns, a label outside the task's set (or a non-numeric STS-B score), or
 * an empty split.
 */
export async function readGlue(
  task: string,
  dirOrFile: string,
  split: GlueSplit = "dev",
): Promise<GlueExample[]> {
  const path = await glueFile(task, dirOrFile, split);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new FileFormatError(`cannot read GLUE file ${path}: ${(e as Error).message}`);
  }
  return parseGlue(task, text, path);
}

/** Parses the text of a GLUE TSV (see `readGlue`); `name` is used in error messages. */
export function parseGlue(task: string, text: string, name = "<text>"): GlueExample[] {
  const info = glueTask(task);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split(/\r\n|\r|\n/);
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const [ca, cb, cl] = info.columns;
  const examples: GlueExample[] = [];
  for (let i = 0; i < lines.length; i++) {
    const cols = lines[i].split("\t");
    const where = `${name}:${i + 1}`;
    if (cols.length < info.minColumns) {
      const what = info.header && i === 0 ? "header" : "row";
      throw new FileFormatError(
        `${where}: ${what} has ${cols.length} tab-separated columns, GLUE ${task} needs at least ${info.minColumns}; is this the ${info.dir} TSV?`,
      );
    }
    if (info.header && i === 0) continue;
    const raw = cols[cl < 0 ? cols.length + cl : cl];
    const ex: GlueExample = { line: i + 1, textA: cols[ca], textB: cb < 0 ? null : cols[cb] };
    if (info.labels === null) {
      const v = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(v)) {
        throw new FileFormatError(`${where}: score "${raw}" is not a number`);
      }
      ex.target = v;
    } else {
      const k = info.labels.indexOf(raw);
      if (k < 0) {
        throw new FileFormatError(
          `${where}: label "${raw}" is not one of ${info.labels.join(", ")} for GLUE ${task}`,
        );
      }
      ex.label = k;
    }
    examples.push(ex);
  }
  if (examples.length === 0) throw new FileFormatError(`${name}: no examples (empty split)`);
  return examples;
}
