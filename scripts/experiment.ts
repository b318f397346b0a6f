/**
 * `deno task experiment <name> [--models DIR] [--tasks a,b] [--out DIR] [--samples N]
 * [--seeds 0,1,2] [--dev-limit N] [--focus model,…]` — the paper's tables and figures re-made on
 * our zoo (or any directory of checkpoints). Names: accuracy-vs-flops, ablation, latency, cost,
 * label-free, all. accuracy-vs-flops and ablation run on every model; latency, label-free and
 * cost's sample sweep on the `--focus` models (default: one per architecture, its SST-2 model
 * when there is one).
 * Each writes Markdown + CSV + SVG into --out (default results/<name>/) atomically, with the exact
 * command, the adapter and the commit in the Markdown header. Cells are cached by their inputs
 * under <out>/cells/, so reruns are incremental and an interrupted run resumes. `all` also
 * regenerates the results section of README.md (`--readme-only` does just that, from the results
 * already written).
 * @module
 */
import { parseArgs } from "node:util";
import { InvalidArgumentError } from "../lib/errors.ts";
import { evaluate, mainMetricName } from "../lib/eval/evaluate.ts";
import { getGpu } from "../lib/gpu/context.ts";
import type { MaskValues } from "../lib/model/inputs.ts";
import { collectFisher, type FisherResult } from "../lib/prune/fisher.ts";
import { TeacherTargets } from "../lib/prune/teacher.ts";
import { TASK_SEQ_LEN } from "../lib/prune/flops.ts";
import {
  KERNEL_VERSION,
  measureLatencyTable,
  measureModelLatencies,
  measureModelLatency,
} from "../lib/prune/latency.ts";
import { compactModel } from "../lib/prune/compact.ts";
import { prune, type PruneOptions } from "../lib/prune/pipeline.ts";
import { ConstraintTooSmallError, type MaskSet } from "../lib/prune/types.ts";
import { lineChart } from "../lib/report/svg.ts";
import { trainRun } from "../lib/train/run.ts";
import {
  Cells,
  csv,
  devLimitOf,
  discoverModels,
  type ExperimentSettings,
  header,
  mdTable,
  meanStd,
  modelStamp,
  prepare,
  type Prepared,
  sampleBatches,
  samplesOf,
  writeAtomic,
  type ZooModel,
} from "./experiment/common.ts";
import { runCli } from "./cli.ts";

const NAMES = ["accuracy-vs-flops", "ablation", "latency", "cost", "label-free"];

/** Part of the key of every timing cell (latency, cost): re-measured when the kernels change. */
const TIMING = { kernels: KERNEL_VERSION };
/** Part of the key of whole-model latency cells: passes under 0.1 s are timed marginally. */
const LATENCY_TIMING = { ...TIMING, passes: "marginal-below-0.1s" };
const FLOPS_GRID = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
const ABLATION_GRID = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
const LATENCY_GRID = [0.5, 0.6, 0.7, 0.8, 0.9];
/** Fine-tuning steps timed by the cost experiment (scaled to one epoch). */
const EPOCH_STEPS_MEASURED = 40;

function maskValues(m: MaskSet): MaskValues {
  return {
    head: Array.from({ length: m.L }, (_, l) => Array.from(m.head.slice(l * m.H, (l + 1) * m.H))),
    ffn: Array.from({ length: m.L }, (_, l) => Array.from(m.ffn.slice(l * m.F, (l + 1) * m.F))),
  };
}

function seqLenOf(p: Prepared): number {
  return TASK_SEQ_LEN[p.dev.task] ?? p.dev.meanLength;
}

/** Per-model context shared by experiments: data, unpruned metric, lazily computed Fisher. */
class ModelRun {
  #prepared?: Prepared;
  #fisher = new Map<string, FisherResult>();
  // the unpruned teacher's tuning targets each Fisher pass recorded on its samples
  #targets = new Map<string, TeacherTargets>();
  constructor(readonly m: ZooModel, readonly s: ExperimentSettings, readonly stamp: string) {}
  async p(): Promise<Prepared> {
    return this.#prepared ??= await prepare(this.m, this.s);
  }
  async fisher(
    seed: number,
    o: { labelFree?: boolean; groupSize?: number; withReplacement?: boolean; samples?: number } =
      {},
  ): Promise<FisherResult> {
    const key = JSON.stringify({ seed, ...o });
    let f = this.#fisher.get(key);
    if (!f) {
      const p = await this.p();
      const targets = new TeacherTargets();
      this.#targets.set(key, targets);
      f = await collectFisher(
        p.model,
        sampleBatches(
          p,
          o.samples ?? samplesOf(this.m, this.s),
          seed,
          o.withReplacement,
          !o.groupSize,
        ),
        {
          labelFree: o.labelFree,
          groupSize: o.groupSize,
          teacherTargets: targets,
        },
      );
      this.#fisher.set(key, f);
    }
    return f;
  }
  /** The teacher targets recorded by `fisher(seed, o)` (call that first). */
  teacherTargets(seed: number, o: Parameters<ModelRun["fisher"]>[1] = {}): TeacherTargets {
    return this.#targets.get(JSON.stringify({ seed, ...o }))!;
  }
  release(): void {
    this.#prepared?.model.release();
    this.#fisher.clear();
    for (const t of this.#targets.values()) t.release();
    this.#targets.clear();
  }
}

/** Runs one pruning cell and evaluates the requested stages. */
async function pruneCell(
  run: ModelRun,
  seed: number,
  opts: Partial<PruneOptions> & { budget: PruneOptions["budget"] },
  stages: ("search" | "rearrange" | "tune")[],
  fisherOpts: Parameters<ModelRun["fisher"]>[1] = {},
): Promise<
  {
    macsRatio: number;
    metrics: Record<string, number>;
    seconds: Record<string, number>;
    kept: { heads: number[]; neurons: number[] };
  }
> {
  const p = await run.p();
  const batches = sampleBatches(
    p,
    fisherOpts.samples ?? samplesOf(run.m, run.s),
    seed,
    fisherOpts.withReplacement,
    !fisherOpts.groupSize,
  );
  const fisher = await run.fisher(seed, fisherOpts);
  const r = await prune(p.model, batches, {
    seqLen: seqLenOf(p),
    fisher,
    teacherTargets: run.teacherTargets(seed, fisherOpts),
    compact: stages.includes("tune"),
    ...opts,
  });
  const metrics: Record<string, number> = {};
  for (const st of stages) {
    if (st === "tune") {
      metrics.tune = (await evaluate(r.compact!, p.dev)).main;
    } else {
      const m = st === "search" ? r.masks.search : r.masks.rearranged;
      metrics[st] = (await evaluate(p.model, p.dev, { masks: maskValues(m) })).main;
    }
  }
  r.compact?.release();
  return {
    macsRatio: r.report.macs.ratio,
    metrics,
    seconds: r.report.seconds,
    kept: r.report.kept,
  };
}

async function unprunedMetric(run: ModelRun, cells: Cells): Promise<number> {
  return await cells.get({
    kind: "unpruned",
    model: run.m.dir,
    stamp: run.stamp,
    dev: devLimitOf(run.m, run.s),
  }, async () => {
    const p = await run.p();
    return (await evaluate(p.model, p.dev)).main;
  });
}

/** One model's curve in an accuracy-vs-FLOPs plot (`flopsChart`). */
export interface FlopsCurve {
  /** Legend name: "arch (model)". */
  arch: string;
  /** Mean (± std over seeds) at each FLOPs fraction c. */
  points: { c: number; mean: number; std: number }[];
  /** The unpruned model's metric (the dashed baseline). */
  base: number;
  /** label-free plots: the labelled Fisher's curve beside it. */
  labelled?: { c: number; mean: number }[];
}

/** The SVG of one task's accuracy-vs-FLOPs (or label-free vs labelled) plot. */
export function flopsChart(task: string, list: FlopsCurve[], labelFree: boolean): string {
  const series = list.flatMap((x) => [
    {
      label: labelFree ? `${x.arch} label-free` : x.arch,
      points: x.points.map((p) => ({ x: p.c * 100, y: p.mean, err: p.std })),
    },
    ...(labelFree
      ? [{
        label: `${x.arch} labelled`,
        dashed: true,
        points: x.labelled!.map((p) => ({ x: p.c * 100, y: p.mean })),
      }]
      : []),
  ]);
  return lineChart(series, {
    title: `${task}: dev metric vs FLOPs kept${labelFree ? " (label-free vs labelled)" : ""}`,
    xLabel: "FLOPs kept (%)",
    yLabel: `dev ${mainMetricName(task)}`,
    baselines: list.map((x) => ({ label: `unpruned ${x.arch}`, y: x.base })),
    legend: "bottom-right",
  });
}

/**
 * The full pipeline (search, rearrangement, tuning, compaction) at FLOPs fraction `c` on the
 * sample set of `seed`, and the compact model's dev metric: the cell accuracy-vs-flops,
 * label-free and the ablation's "+ tune" column share.
 */
function flopsCell(run: ModelRun, cells: Cells, c: number, seed: number, labelFree = false) {
  const s = run.s;
  return cells.get(
    {
      kind: "flops",
      model: run.m.dir,
      stamp: run.stamp,
      c,
      seed,
      samples: samplesOf(run.m, s),
      dev: devLimitOf(run.m, s),
      labelFree,
    },
    () => pruneCell(run, seed, { budget: { flops: c }, labelFree }, ["tune"], { labelFree }),
  );
}

// ---------------------------------------------------------------- experiments

async function accuracyVsFlops(
  runs: ModelRun[],
  s: ExperimentSettings,
  cells: Cells,
  adapter: string,
  labelFree = false,
): Promise<string> {
  const name = labelFree ? "label-free" : "accuracy-vs-flops";
  const out = `${s.out}/${name}`;
  const rows: (string | number)[][] = [];
  const byTask = new Map<
    string,
    {
      arch: string;
      points: { c: number; mean: number; std: number; macs: number }[];
      base: number;
      labelled?: { c: number; mean: number }[];
    }[]
  >();
  for (const run of runs) {
    const base = await unprunedMetric(run, cells);
    const points: { c: number; mean: number; std: number; macs: number }[] = [];
    const labelled: { c: number; mean: number }[] = [];
    for (const c of FLOPS_GRID) {
      const values: number[] = [];
      let macs = 0;
      const variants = labelFree ? [true, false] : [false];
      for (const lf of variants) {
        const vals: number[] = [];
        for (const seed of labelFree ? [s.seeds[0]] : s.seeds) {
          const cell = await flopsCell(run, cells, c, seed, lf);
          vals.push(cell.metrics.tune);
          macs = cell.macsRatio;
          rows.push([
            run.m.task,
            run.m.arch,
            run.m.name,
            lf ? "label-free" : "labelled",
            c,
            seed,
            cell.macsRatio,
            cell.metrics.tune,
          ]);
          console.error(
            `${name} ${run.m.name} c=${c} seed=${seed}${lf ? " label-free" : ""}: ${
              cell.metrics.tune.toFixed(4)
            }`,
          );
        }
        if (lf || !labelFree) values.push(...vals);
        else labelled.push({ c, mean: meanStd(vals).mean });
      }
      const ms = meanStd(values);
      points.push({ c, mean: ms.mean, std: ms.std, macs });
    }
    const list = byTask.get(run.m.task) ?? [];
    list.push({
      arch: `${run.m.arch} (${run.m.name})`,
      points,
      base,
      labelled: labelFree ? labelled : undefined,
    });
    byTask.set(run.m.task, list);
  }
  await Deno.mkdir(out, { recursive: true });
  await writeAtomic(
    `${out}/${name}.csv`,
    csv(
      ["task", "arch", "model", "importance", "flops_kept", "seed", "macs_ratio", "metric"],
      rows,
    ),
  );
  const md: string[] = [
    await header(
      name,
      adapter,
      s,
      labelFree
        ? "- label-free (expected) Fisher vs the labelled Fisher, seed " + s.seeds[0]
        : "- dev metric after search + rearrangement + tuning (compact model), mean ± std over the seeds",
    ),
  ];
  for (const [task, list] of byTask) {
    md.push(`## ${task}`, "");
    const hdr = [
      "FLOPs kept",
      ...list.flatMap((x) => labelFree ? [`${x.arch} label-free`, `${x.arch} labelled`] : [x.arch]),
    ];
    const tableRows = FLOPS_GRID.map((c, i) => [
      `${Math.round(c * 100)}%`,
      ...list.flatMap((x) =>
        labelFree
          ? [x.points[i].mean.toFixed(4), x.labelled![i].mean.toFixed(4)]
          : [`${x.points[i].mean.toFixed(4)} ± ${x.points[i].std.toFixed(4)}`]
      ),
    ]);
    tableRows.push([
      "unpruned",
      ...list.flatMap((x) =>
        labelFree ? [x.base.toFixed(4), x.base.toFixed(4)] : [x.base.toFixed(4)]
      ),
    ]);
    md.push(mdTable(hdr, tableRows), "", `![${task}](${task}.svg)`, "");
    await writeAtomic(`${out}/${task}.svg`, flopsChart(task, list, labelFree));
  }
  if (!labelFree) {
    // the check: the final drop at 60% FLOPs is ≤ 1 point on every model
    const at = FLOPS_GRID.indexOf(0.6);
    const drops: (string | number)[][] = [];
    for (const [task, list] of byTask) {
      const pts = task.startsWith("squad") ? 1 : 100;
      for (const x of list) {
        const drop = (x.base - x.points[at].mean) * pts;
        drops.push([
          x.arch,
          task,
          x.base.toFixed(4),
          x.points[at].mean.toFixed(4),
          drop.toFixed(2),
          drop <= 1 ? "yes" : "no",
        ]);
      }
    }
    md.push(
      "## Drop at 60% FLOPs",
      "",
      mdTable(
        ["model", "task", "unpruned", "60% FLOPs (mean)", "drop (points)", "≤ 1 point"],
        drops,
      ),
      "",
    );
  }
  await writeAtomic(`${out}/README.md`, md.join("\n"));
  return md.join("\n");
}

async function ablation(
  runs: ModelRun[],
  s: ExperimentSettings,
  cells: Cells,
  adapter: string,
): Promise<string> {
  const out = `${s.out}/ablation`;
  const rows: (string | number)[][] = [];
  const md: string[] = [
    await header(
      "ablation",
      adapter,
      s,
      `- stages at FLOPs kept ${ABLATION_GRID.join(", ")}: mean over seeds ${
        s.seeds.join(", ")
      } (each seed's sample set pruned separately); presets at 0.4, seed ${s.seeds[0]}`,
    ),
  ];
  const seed = s.seeds[0];
  const knees: (string | number)[][] = [];
  for (const run of runs) {
    const base = await unprunedMetric(run, cells);
    const t: (string | number)[][] = [], stds: (string | number)[][] = [];
    for (const c of ABLATION_GRID) {
      // every seed's sample set, as accuracy-vs-flops: a single seed's stage order is noisy
      const per: Record<"search" | "rearrange" | "tune", number[]> = {
        search: [],
        rearrange: [],
        tune: [],
      };
      for (const sd of s.seeds) {
        // search and rearrangement need no tuning: their masks are evaluated on the unpruned
        // model; "+ tune" is the accuracy-vs-flops cell of the same seed (computed once)
        const stages = await cells.get(
          {
            kind: "ablation-masks",
            model: run.m.dir,
            stamp: run.stamp,
            c,
            seed: sd,
            samples: samplesOf(run.m, s),
            dev: devLimitOf(run.m, s),
          },
          () => pruneCell(run, sd, { budget: { flops: c }, tune: false }, ["search", "rearrange"]),
        );
        const tuned = await flopsCell(run, cells, c, sd);
        const m: Record<string, number> = { ...stages.metrics, tune: tuned.metrics.tune };
        per.search.push(m.search);
        per.rearrange.push(m.rearrange);
        per.tune.push(m.tune);
        rows.push([run.m.name, run.m.task, "stages", c, m.search, m.rearrange, m.tune, sd]);
        console.error(`ablation ${run.m.name} c=${c} seed=${sd}: ${JSON.stringify(m)}`);
      }
      const [a, r, tu] = [per.search, per.rearrange, per.tune].map((v) => meanStd(v));
      t.push([`${Math.round(c * 100)}%`, a.mean, r.mean, tu.mean]);
      if (s.seeds.length > 1) {
        stds.push([`${Math.round(c * 100)}%`, a.std, r.std, tu.std]);
      }
    }
    md.push(
      `## ${run.m.name} (${run.m.task}, unpruned ${base.toFixed(4)})`,
      "",
      mdTable(["FLOPs kept", "search", "+ rearrange", "+ tune"], t),
      "",
      ...(stds.length
        ? [
          `Standard deviation over the ${s.seeds.length} seeds:`,
          "",
          mdTable(["FLOPs kept", "search", "+ rearrange", "+ tune"], stds),
          "",
        ]
        : []),
    );
    // the knee: the largest FLOPs fraction where search alone loses ≥ 2 points
    const pts = run.m.task.startsWith("squad") ? 1 : 100;
    const kneeRow = [...t].reverse().find((r) => (base - (r[1] as number)) * pts >= 2);
    if (!kneeRow) {
      md.push(
        `Search alone never loses 2 points on this grid (down to ${ABLATION_GRID[0] * 100}%).`,
        "",
      );
      knees.push([run.m.name, run.m.task, "none on the grid", "", "", "", "–"]);
    } else {
      const [label, a, b, c] = kneeRow as [string, number, number, number];
      const holds = a <= b && b <= c;
      md.push(
        `Knee (largest FLOPs kept where search alone loses ≥ 2 points): ${label}; search ${
          a.toFixed(4)
        }, + rearrange ${b.toFixed(4)}, + tune ${
          c.toFixed(4)
        }: the order search ≤ + rearrange ≤ + tune ${holds ? "holds" : "does not hold"}.`,
        "",
      );
      knees.push([run.m.name, run.m.task, label, a, b, c, holds ? "yes" : "no"]);
    }
    if (s.presetModels?.length && !s.presetModels.includes(run.m.name)) continue;
    // METHOD.md deviations, one at a time, and the whole kwonCode preset, at c = 0.4
    const variants: [string, Partial<PruneOptions>, Parameters<ModelRun["fisher"]>[1]][] = [
      ["ours (defaults)", {}, {}],
      ["batch-mean Fisher (groups of 32/12)", {
        fisherGroupSize: run.m.task.startsWith("squad") ? 12 : 32,
      }, { groupSize: run.m.task.startsWith("squad") ? 12 : 32 }],
      ["teacher = TA mask at √c", { teacher: "ta" }, {}],
      ["sampling with replacement", {}, { withReplacement: true }],
      ["stop tuning on failure", { onTuneFailure: "break" }, {}],
      ["kwonCode preset (all of the above)", {
        preset: "kwonCode",
        fisherGroupSize: run.m.task.startsWith("squad") ? 12 : 32,
      }, { groupSize: run.m.task.startsWith("squad") ? 12 : 32, withReplacement: true }],
    ];
    const vt: (string | number)[][] = [];
    for (const [label, opts, fo] of variants) {
      const cell = label === "ours (defaults)"
        ? await flopsCell(run, cells, 0.4, seed)
        : await cells.get(
          {
            kind: "preset",
            model: run.m.dir,
            stamp: run.stamp,
            c: 0.4,
            seed,
            samples: samplesOf(run.m, s),
            dev: devLimitOf(run.m, s),
            label,
          },
          () => pruneCell(run, seed, { budget: { flops: 0.4 }, ...opts }, ["tune"], fo),
        );
      vt.push([label, cell.metrics.tune]);
      rows.push([run.m.name, run.m.task, label, 0.4, "", "", cell.metrics.tune, seed]);
    }
    md.push(`METHOD.md deviations at 40% FLOPs:`, "", mdTable(["variant", "dev metric"], vt), "");
  }
  const held = knees.filter((k) => k[6] === "yes");
  md.push(
    "## Ablation order at each model's knee",
    "",
    mdTable(["model", "task", "knee", "search", "+ rearrange", "+ tune", "order holds"], knees),
    "",
    `The order search ≤ + rearrange ≤ + tune holds at the knee for ${held.length} of ${knees.length} models (${
      new Set(held.map((k) => k[1])).size
    } distinct tasks).`,
    "",
  );
  await Deno.mkdir(out, { recursive: true });
  await writeAtomic(
    `${out}/ablation.csv`,
    csv(["model", "task", "variant", "flops_kept", "search", "rearrange", "tune", "seed"], rows),
  );
  await writeAtomic(`${out}/README.md`, md.join("\n"));
  return md.join("\n");
}

async function latency(
  runs: ModelRun[],
  s: ExperimentSettings,
  cells: Cells,
  adapter: string,
): Promise<string> {
  const out = `${s.out}/latency`;
  const rows: (string | number)[][] = [];
  const md: string[] = [
    await header(
      "latency",
      adapter,
      s,
      `- latency-constrained pruning (DP search on a LUT measured with our kernels), seed ${
        s.seeds[0]
      }\n- latencies: median time per forward pass over 10 runs after 2 warm-ups; a pass under 0.1 s ` +
        "is timed marginally ((t(2n) − t(n)) / n, n passes queued before one sync), so a sync's " +
        "fixed cost (≥ 10 ms in Deno 2.9) is not counted; the LUT's entries likewise",
    ),
  ];
  const seed = s.seeds[0];
  for (const run of runs) {
    const p = await run.p();
    const base = await unprunedMetric(run, cells);
    for (const [B, S] of [[32, 128], [1, 128]]) {
      const t: (string | number)[][] = [];
      const full = await cells.get({
        kind: "latency-full",
        ...LATENCY_TIMING,
        model: run.m.dir,
        stamp: run.stamp,
        B,
        S,
        adapter,
      }, () => measureModelLatency(p.model, { batch: B, seqLen: S }));
      for (const c of LATENCY_GRID) {
        const cell = await cells.get(
          {
            kind: "latency",
            ...LATENCY_TIMING,
            // the pruned model timed in alternation with the unpruned one (speed-up from that pair)
            paired: true,
            model: run.m.dir,
            stamp: run.stamp,
            c,
            seed,
            B,
            S,
            samples: samplesOf(run.m, s),
            dev: devLimitOf(run.m, s),
            adapter,
          },
          async () => {
            const table = await measureLatencyTable(p.model, { batch: B, seqLen: S });
            const fisher = await run.fisher(seed);
            const L = p.model.config.numLayers;
            const fullLut = L * (table.mha[table.mha.length - 1] + table.ffn[table.ffn.length - 1]);
            let r;
            try {
              r = await prune(p.model, sampleBatches(p, samplesOf(run.m, s), seed), {
                budget: { latency: c },
                seqLen: seqLenOf(p),
                fisher,
                teacherTargets: run.teacherTargets(seed),
                latencyTable: table,
              });
            } catch (e) {
              if (!(e instanceof ConstraintTooSmallError)) throw e;
              // the sub-layers' fixed costs (LN, biases, residuals: lut[0]) exceed the budget
              const empty = L * (table.mha[0] + table.ffn[0]);
              return {
                infeasible: true,
                emptyRatio: empty / fullLut,
                predicted: NaN,
                predictedFull: fullLut,
                measured: NaN,
                fullPaired: NaN,
                metric: NaN,
                macs: NaN,
              };
            }
            const [fullPaired, measured] = await measureModelLatencies([p.model, r.compact!], {
              batch: B,
              seqLen: S,
            });
            const metric = (await evaluate(r.compact!, p.dev)).main;
            const predictedFull = r.report.latency!.full;
            r.compact!.release();
            return {
              infeasible: false,
              emptyRatio: NaN,
              predicted: r.report.latency!.predicted,
              predictedFull,
              measured,
              fullPaired,
              metric,
              macs: r.report.macs.ratio,
            };
          },
        );
        if (cell.infeasible) {
          t.push([
            `${Math.round(c * 100)}%`,
            `infeasible: a model with no units costs ${
              (cell.emptyRatio * 100).toFixed(0)
            }% of the full LUT latency`,
            "",
            "",
            "",
            "",
            "",
          ]);
          rows.push([
            run.m.name,
            run.m.task,
            B,
            S,
            c,
            "",
            cell.predictedFull,
            full,
            "",
            "",
            "",
            "",
          ]);
          console.error(`latency ${run.m.name} ${B}x${S} c=${c}: infeasible`);
          continue;
        }
        t.push([
          `${Math.round(c * 100)}%`,
          cell.predicted * 1000,
          cell.measured * 1000,
          cell.fullPaired * 1000,
          cell.fullPaired / cell.measured,
          cell.macs,
          cell.metric,
        ]);
        rows.push([
          run.m.name,
          run.m.task,
          B,
          S,
          c,
          cell.predicted,
          cell.predictedFull,
          cell.fullPaired,
          cell.measured,
          cell.fullPaired / cell.measured,
          cell.macs,
          cell.metric,
        ]);
        console.error(
          `latency ${run.m.name} ${B}x${S} c=${c}: ×${
            (cell.fullPaired / cell.measured).toFixed(2)
          } ${cell.metric.toFixed(4)}`,
        );
      }
      md.push(
        `## ${run.m.name}, batch ${B} × ${S} (unpruned: ${(full * 1000).toFixed(1)} ms, metric ${
          base.toFixed(4)
        })`,
        "",
      );
      md.push(
        mdTable([
          "target (of the LUT's encoder latency)",
          "LUT-predicted encoder (ms)",
          "measured model (ms)",
          "unpruned, same loop (ms)",
          "speedup",
          "MACs kept",
          "dev metric",
        ], t),
        "",
      );
      if (B === 32) md.push(...(await flopsLatency(run, p, s, cells, adapter, B, S)), "");
    }
  }
  await Deno.mkdir(out, { recursive: true });
  await writeAtomic(
    `${out}/latency.csv`,
    csv([
      "model",
      "task",
      "batch",
      "seq",
      "target",
      "lut_predicted_s",
      "lut_full_s",
      "measured_full_s",
      "measured_s",
      "speedup",
      "macs_ratio",
      "metric",
    ], rows),
  );
  await writeAtomic(`${out}/README.md`, md.join("\n"));
  return md.join("\n");
}

/**
 * The latency criterion at one shape: the compact model of a 50%-FLOPs pruning (all
 * stages), its measured speedup against its FLOPs (MACs) reduction, and the measured latency of a
 * model with every head and neuron removed (what no pruning of heads/neurons can remove:
 * embeddings, LayerNorms, residuals, biases, the classifier and per-dispatch overhead).
 */
async function flopsLatency(
  run: ModelRun,
  p: Prepared,
  s: ExperimentSettings,
  cells: Cells,
  adapter: string,
  B: number,
  S: number,
): Promise<string[]> {
  const seed = s.seeds[0];
  const cell = await cells.get({
    kind: "latency-flops50",
    ...LATENCY_TIMING,
    paired: true,
    // FLOPs counted at the measured sequence length S (not the task's mean length): the
    // latency and the FLOPs reduction it is compared with then describe the same inputs
    flopsSeqLen: S,
    model: run.m.dir,
    stamp: run.stamp,
    seed,
    B,
    S,
    samples: samplesOf(run.m, s),
    dev: devLimitOf(run.m, s),
    adapter,
  }, async () => {
    const fisher = await run.fisher(seed);
    const r = await prune(p.model, sampleBatches(p, samplesOf(run.m, s), seed), {
      budget: { flops: 0.5 },
      seqLen: S,
      fisher,
      teacherTargets: run.teacherTargets(seed),
    });
    const c = p.model.config;
    const zero = {
      L: c.numLayers,
      H: c.numHeads,
      F: c.intermediateSize,
      head: new Float64Array(c.numLayers * c.numHeads),
      ffn: new Float64Array(c.numLayers * c.intermediateSize),
    };
    const empty = await compactModel(p.model, { keep: zero, values: zero });
    // the unpruned, the compact and the empty model timed in alternation
    const [fullPaired, measured, emptyMeasured] = await measureModelLatencies(
      [p.model, r.compact!, empty],
      { batch: B, seqLen: S },
    );
    r.compact!.release();
    empty.release();
    return {
      measured,
      fullPaired,
      macs: r.report.macs.ratio,
      emptyMeasured,
      kept: r.report.kept,
    };
  });
  const speedup = cell.fullPaired / cell.measured, reduction = 1 / cell.macs;
  console.error(
    `latency ${run.m.name} ${B}x${S} flops 0.5: ×${speedup.toFixed(2)} vs FLOPs ×${
      reduction.toFixed(2)
    }`,
  );
  return [
    `FLOPs-constrained pruning to 50% (all stages; FLOPs counted at sequence length ${S}, the ` +
    `measured one; kept heads ${cell.kept.heads.join("/")}, neurons ${
      cell.kept.neurons.join("/")
    } per layer), batch ${B} × ${S}: measured ${(cell.measured * 1000).toFixed(1)} ms against ${
      (cell.fullPaired * 1000).toFixed(1)
    } ms for the unpruned model timed in the same loop, speedup ×${
      speedup.toFixed(2)
    } for a FLOPs (MACs) reduction of ×${reduction.toFixed(2)} — ratio ${
      (speedup / reduction).toFixed(2)
    } (the issue asks ≥ 0.9). A model with every ` +
    `head and neuron removed still takes ${(cell.emptyMeasured * 1000).toFixed(1)} ms (${
      (100 * cell.emptyMeasured / cell.fullPaired).toFixed(0)
    }% of the unpruned model): the part of the latency that no head/neuron pruning can remove ` +
    `on this adapter, which bounds the speedup at 50% FLOPs to ×${
      (cell.fullPaired / (cell.emptyMeasured + 0.5 * (cell.fullPaired - cell.emptyMeasured)))
        .toFixed(2)
    } if the rest scaled exactly with FLOPs.`,
  ];
}

async function cost(
  runs: ModelRun[],
  first: ModelRun,
  s: ExperimentSettings,
  cells: Cells,
  adapter: string,
): Promise<string> {
  const out = `${s.out}/cost`;
  const rows: (string | number)[][] = [];
  const md: string[] = [
    await header(
      "cost",
      adapter,
      s,
      `- pruning time per stage (seconds) at 50% FLOPs; retraining alternative = one epoch of fine-tuning the same model (batch 32) with our trainer: the measured time of min(epoch, ${EPOCH_STEPS_MEASURED}) steps scaled to the epoch's step count`,
    ),
  ];
  const seed = s.seeds[0];
  const sizes = s.costSizes;
  const t: (string | number)[][] = [];
  for (const n of sizes) {
    const cell = await cells.get({
      kind: "cost",
      ...TIMING,
      model: first.m.dir,
      stamp: first.stamp,
      n,
      seed,
      adapter,
    }, async () => {
      const p = await first.p();
      const r = await prune(p.model, sampleBatches(p, n, seed), {
        budget: { flops: 0.5 },
        seqLen: seqLenOf(p),
      });
      r.compact?.release();
      return { ...r.report.seconds, samples: r.report.samples };
    });
    t.push([cell.samples, cell.fisher, cell.search, cell.rearrange, cell.tune, cell.pruning]);
    rows.push([
      first.m.name,
      cell.samples,
      cell.fisher,
      cell.search,
      cell.rearrange,
      cell.tune,
      cell.pruning,
    ]);
  }
  md.push(
    `## Stage times vs sample count (${first.m.name})`,
    "",
    mdTable(["samples", "Fisher", "search", "rearrange", "tune", "total"], t),
    "",
  );
  const mt: (string | number)[][] = [];
  for (const run of runs) {
    const cell = await cells.get({
      kind: "cost-model",
      ...TIMING,
      model: run.m.dir,
      stamp: run.stamp,
      samples: samplesOf(run.m, s),
      seed,
      adapter,
    }, async () => {
      const p = await run.p();
      const r = await prune(p.model, sampleBatches(p, samplesOf(run.m, s), seed), {
        budget: { flops: 0.5 },
        seqLen: seqLenOf(p),
      });
      r.compact?.release();
      const perEpoch = Math.ceil(p.train.items.length / 32);
      const tmp = await Deno.makeTempDir();
      const tr = await trainRun({
        task: run.m.task,
        data: s.data,
        out: `${tmp}/m`,
        init: run.m.dir,
        epochs: 1,
        maxSteps: Math.min(perEpoch, EPOCH_STEPS_MEASURED),
        batchSize: 32,
        evalEvery: 1e9,
        devLimit: 1,
        mlmSteps: 0,
        force: true,
        log: () => {},
      });
      await Deno.remove(tmp, { recursive: true });
      return {
        pruning: r.report.seconds.pruning,
        epoch: (tr.seconds / tr.steps) * perEpoch,
        measuredSteps: tr.steps,
        trainItems: tr.trainItems,
        params: r.report.params.full,
      };
    });
    mt.push([run.m.name, cell.params, cell.pruning, cell.epoch, cell.epoch / cell.pruning]);
    rows.push([run.m.name, samplesOf(run.m, s), "", "", "", "", cell.pruning, cell.epoch]);
  }
  md.push(
    "## Pruning vs one epoch of retraining",
    "",
    mdTable([
      "model",
      "parameters",
      `pruning (s, ${s.samples} samples)`,
      "one fine-tuning epoch (s)",
      "ratio",
    ], mt),
    "",
  );
  md.push(
    "Retraining-based pruning methods fine-tune for several epochs; the ratio above is a lower bound of their cost over ours.",
    "",
  );
  await Deno.mkdir(out, { recursive: true });
  await writeAtomic(
    `${out}/cost.csv`,
    csv([
      "model",
      "samples",
      "fisher_s",
      "search_s",
      "rearrange_s",
      "tune_s",
      "pruning_s",
      "epoch_s",
    ], rows),
  );
  await writeAtomic(`${out}/README.md`, md.join("\n"));
  return md.join("\n");
}

const EXPERIMENT_USAGE =
  `usage: deno task experiment <${
    [...NAMES, "all"].join("|")
  }> [--models DIR] [--tasks a,b] [--names model,…] [--preset-models model,…] [--out DIR] [--samples N] [--seeds 0,1,2] ` +
  "[--dev-limit N] [--squad-dev-limit 500] [--squad-samples 64] [--data DIR] [--margin 0.02] [--cost-sizes 256,…] [--focus model,…] [--readme-only]";

if (import.meta.main) {
  await runCli(async () => {
    const { values, positionals } = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        models: { type: "string", default: "zoo" },
        tasks: { type: "string" },
        names: { type: "string" },
        "preset-models": { type: "string" },
        out: { type: "string", default: "results" },
        samples: { type: "string", default: "128" },
        seeds: { type: "string", default: "0,1,2" },
        "dev-limit": { type: "string", default: "0" },
        "squad-dev-limit": { type: "string", default: "500" },
        "squad-samples": { type: "string", default: "64" },
        data: { type: "string" },
        margin: { type: "string", default: "0.02" },
        "readme-only": { type: "boolean", default: false },
        "cost-sizes": { type: "string", default: "256,512,1024,2048,4096" },
        focus: { type: "string" },
      },
    });
    const name = positionals[0];
    if (!name || (name !== "all" && !NAMES.includes(name))) {
      throw new InvalidArgumentError(EXPERIMENT_USAGE);
    }
    const s: ExperimentSettings = {
      models: values.models!,
      out: values.out!,
      tasks: values.tasks ? values.tasks.split(",") : [],
      names: values.names ? values.names.split(",") : [],
      presetModels: values["preset-models"] ? values["preset-models"].split(",") : [],
      samples: Number(values.samples),
      seeds: values.seeds!.split(",").map(Number),
      devLimit: Number(values["dev-limit"]),
      squadDevLimit: Number(values["squad-dev-limit"]),
      squadSamples: Number(values["squad-samples"]),
      data: values.data,
      margin: Number(values.margin),
      costSizes: values["cost-sizes"]!.split(",").map(Number),
      focus: values.focus ? values.focus.split(",") : [],
    };
    const counts: [string, number[], number][] = [
      ["--samples", [s.samples], 1],
      ["--seeds", s.seeds, 0],
      ["--dev-limit", [s.devLimit], 0],
      ["--squad-dev-limit", [s.squadDevLimit!], 0],
      ["--squad-samples", [s.squadSamples!], 0],
      ["--cost-sizes", s.costSizes, 1],
    ];
    for (const [flag, vs, min] of counts) {
      if (!vs.every((v) => Number.isInteger(v) && v >= min)) {
        throw new InvalidArgumentError(
          `${flag} needs ${min ? "positive" : "non-negative"} integers, got ${
            values[flag.slice(2) as keyof typeof values]
          }`,
        );
      }
    }
    if (!(s.margin >= 0)) throw new InvalidArgumentError(`--margin needs a number ≥ 0`);
    if (values["readme-only"]) {
      // regenerate README.md's results section from the experiments already written
      await updateReadme(s, name === "all" ? NAMES : [name]);
      console.log("README.md results section regenerated");
      return;
    }
    const gpu = await getGpu();
    const adapter = gpu.adapter.summary;
    const models = await discoverModels(s);
    const runs = await Promise.all(
      models.map(async (m) => new ModelRun(m, s, await modelStamp(m.dir))),
    );
    const cells = new Cells(`${s.out}/cells`);
    const focus = focusRuns(runs, s.focus ?? []);
    const todo = name === "all" ? NAMES : [name];
    const sections: string[] = [];
    for (const n of todo) {
      console.error(`experiment ${n}: ${runs.map((r) => r.m.name).join(", ")}`);
      if (n === "accuracy-vs-flops") sections.push(await accuracyVsFlops(runs, s, cells, adapter));
      if (n === "label-free") {
        sections.push(await accuracyVsFlops(focus, s, cells, adapter, true));
      }
      if (n === "ablation") sections.push(await ablation(runs, s, cells, adapter));
      if (n === "latency") sections.push(await latency(focus, s, cells, adapter));
      if (n === "cost") sections.push(await cost(runs, focus[0], s, cells, adapter));
    }
    for (const r of runs) r.release();
    if (name === "all") await updateReadme(s, todo);
    console.log(`results in ${s.out}/`);
  }, EXPERIMENT_USAGE);
}

/**
 * The models of the per-model-expensive experiments (latency, cost's sample sweep, label-free):
 * those named by `--focus`, else one per architecture — its SST-2 model when there is one, else
 * its first model — so that `experiment all` stays within its time budget on a large zoo.
 */
function focusRuns(runs: ModelRun[], names: string[]): ModelRun[] {
  if (names.length) {
    const picked = runs.filter((r) => names.includes(r.m.name));
    const missing = names.filter((n) => !runs.some((r) => r.m.name === n));
    if (missing.length) {
      throw new InvalidArgumentError(
        `--focus names models not found or not usable: ${missing.join(", ")} (found: ${
          runs.map((r) => r.m.name).join(", ")
        })`,
      );
    }
    return picked;
  }
  const out: ModelRun[] = [];
  for (const arch of [...new Set(runs.map((r) => r.m.arch))]) {
    const mine = runs.filter((r) => r.m.arch === arch);
    out.push(mine.find((r) => r.m.task === "sst2") ?? mine[0]);
  }
  return out;
}

/** Replaces the README's results section with links and the headline tables. */
async function updateReadme(s: ExperimentSettings, names: string[]): Promise<void> {
  const start = "<!-- results:start -->", end = "<!-- results:end -->";
  let readme: string;
  try {
    readme = await Deno.readTextFile("README.md");
  } catch {
    return;
  }
  const body: string[] = [
    start,
    "",
    `Regenerated by \`deno task experiment all\` (files under \`${s.out}/\`).`,
    "",
  ];
  for (const n of names) {
    try {
      const md = await Deno.readTextFile(`${s.out}/${n}/README.md`);
      body.push(
        md.replace(/^## /gm, "#### ").replace(/^# Experiment: /m, "### ").replace(
          /\]\(([\w.-]+\.svg)\)/g,
          `](${s.out}/${n}/$1)`,
        ),
        "",
      );
    } catch { /* not run */ }
  }
  body.push(end);
  const i = readme.indexOf(start), j = readme.indexOf(end);
  const next = i >= 0 && j > i
    ? readme.slice(0, i) + body.join("\n") + readme.slice(j + end.length)
    : readme + "\n## Results\n\n" + body.join("\n") + "\n";
  await writeAtomic("README.md", next);
}
