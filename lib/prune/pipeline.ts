/**
 * The pruning pipeline (METHOD.md §1): Fisher → mask search (FLOPs or latency budget) →
 * rearrangement → least-squares tuning → compaction, with stage toggles, the `kwonCode` preset
 * and per-stage timings. Each stage is also exported on its own.
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";
import type { ModelInput } from "../model/inputs.ts";
import type { Model } from "../model/model.ts";
import { matmul } from "../ops/matmul.ts";
import { compactModel, parameterCount } from "./compact.ts";
import { collectFisher, type FisherResult, requireUniform } from "./fisher.ts";
import { countMacs } from "./flops.ts";
import { type LatencyOptions, type MeasuredLatencyTable, measureLatencyTable } from "./latency.ts";
import { rearrangeLayer } from "./rearrange.ts";
import { searchFlops } from "./search_flops.ts";
import { type LatencyTable, searchLatency } from "./search_latency.ts";
import { TEACHER_TARGETS_MAX_BYTES, TeacherTargets } from "./teacher.ts";
import { type SubLayerTuning, tuneMasks } from "./tune.ts";
import type { MaskSet, ModelDims } from "./types.ts";

/** The budget: fraction of FLOPs (MACs) or of measured latency kept, in (0, 1]. */
export type Budget = { flops: number } | { latency: number };

/** Options of `prune`. Defaults are METHOD.md's ("ours"); `preset: "kwonCode"` sets the code's. */
export interface PruneOptions {
  /** The budget. */
  budget: Budget;
  /** Sequence length s̄ of the FLOPs cost model (task constant or mean sample length). */
  seqLen: number;
  /** Run rearrangement (default true). */
  rearrange?: boolean;
  /** Run mask tuning (default true). */
  tune?: boolean;
  /** Official-code behaviour for every METHOD.md deviation. */
  preset?: "ours" | "kwonCode";
  /** Label-free (expected) Fisher. */
  labelFree?: boolean;
  /** Batch-mean Fisher group size (kwonCode: 32, or 12 for QA). */
  fisherGroupSize?: number;
  /** Tuning teacher (kwonCode: "ta"). */
  teacher?: "full" | "ta";
  /** Mask the TA teacher's current-layer FFN. */
  taMaskCurrentFfn?: boolean;
  /** Tune layer 0's MHA. */
  tuneFirstMha?: boolean;
  /** CLS-only LS for the last MHA (classification). */
  clsOnlyLastMha?: boolean;
  /** On a rejected tuning solve (kwonCode: "break"). */
  onTuneFailure?: "skip" | "break";
  /** Rearrangement passes (default 1). */
  rearrangePasses?: number;
  /** Latency search method (kwonCode: "piecewise"). */
  latencySearch?: "dp" | "piecewise";
  /** A latency table to use instead of measuring one. */
  latencyTable?: LatencyTable;
  /** How to measure the latency table. */
  latencyOptions?: LatencyOptions;
  /** Reuse a Fisher result (e.g. across budgets). */
  fisher?: FisherResult;
  /**
   * With `fisher`: the full teacher's targets its pass recorded on these samples
   * (`collectFisher`'s `teacherTargets`), for tuning; the caller keeps and releases them. Without
   * `fisher`, the pass here records its own (and releases them).
   */
  teacherTargets?: TeacherTargets;
  /**
   * GPU memory (bytes) the Fisher pass may keep for tuning's teacher targets (default
   * `TEACHER_TARGETS_MAX_BYTES`, 1 GiB; 0: keep none, tuning runs its teacher pass).
   */
  teacherCacheBytes?: number;
  /** Skip compaction (returns masks only). */
  compact?: boolean;
  /** Progress: stage name, done, total. */
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** Options set by the kwonCode preset. */
export function kwonCodeOptions(head: string): Partial<PruneOptions> {
  return {
    fisherGroupSize: head === "qa" ? 12 : 32,
    teacher: "ta",
    onTuneFailure: "break",
    tuneFirstMha: false,
    clsOnlyLastMha: false,
    latencySearch: "piecewise",
  };
}

/** Everything `prune` produced. */
export interface PruneResult {
  /** Masks after each stage (flat l·H+h, l·F+j). */
  masks: { search: MaskSet; rearranged: MaskSet; tuned: MaskSet; teacher?: MaskSet };
  /** The Fisher information (with gradient rows). */
  fisher: FisherResult;
  /** The compact model (unless `compact: false`). */
  compact?: Model;
  /** Summary numbers. */
  report: PruneReport;
}

/** The report object of a pruning run. */
export interface PruneReport {
  /** Budget as given. */
  budget: Budget;
  /** s̄ used by the FLOPs model. */
  seqLen: number;
  /** Options in force after the preset. */
  options: Record<string, unknown>;
  /** Seconds per stage, and their total ("pruning time" = fisher … tune). */
  seconds: {
    fisher: number;
    search: number;
    rearrange: number;
    tune: number;
    compact: number;
    pruning: number;
  };
  /** MACs of the prunable parts at s̄: full, pruned, ratio. */
  macs: { full: number; pruned: number; ratio: number };
  /** Parameters: full and pruned (whole model). */
  params: { full: number; pruned: number };
  /** Kept heads and neurons per layer. */
  kept: { heads: number[]; neurons: number[] };
  /** Rearrangement objective per sub-layer. */
  rearrange: {
    layer: number;
    kind: "head" | "ffn";
    before: number;
    after: number;
    changed: number;
  }[];
  /** Tuning outcome per sub-layer. */
  tuning: SubLayerTuning[];
  /** Where tuning took the teacher's targets from (when it ran). */
  tuneTeacher?: "fisher pass" | "teacher pass";
  /** Latency-search details (latency budgets only). */
  latency?: {
    predicted: number;
    full: number;
    ratio: number;
    table: Omit<MeasuredLatencyTable, "mha" | "ffn"> | null;
  };
  /** Samples used. */
  samples: number;
}

function keptCounts(m: MaskSet): { heads: number[]; neurons: number[] } {
  const heads: number[] = [], neurons: number[] = [];
  for (let l = 0; l < m.L; l++) {
    let h = 0, n = 0;
    for (let i = 0; i < m.H; i++) h += m.head[l * m.H + i] !== 0 ? 1 : 0;
    for (let i = 0; i < m.F; i++) n += m.ffn[l * m.F + i] !== 0 ? 1 : 0;
    heads.push(h);
    neurons.push(n);
  }
  return { heads, neurons };
}

/** Model dimensions for the cost models. */
export function modelDims(model: Model): ModelDims {
  const { L, H, F } = requireUniform(model);
  return { L, H, F, d: model.config.hiddenSize, dh: model.config.headDim };
}

/** Gram matrix Σ_x g(x)g(x)ᵀ of gradient rows [n × u], computed on the GPU, returned in f64. */
export async function gramMatrix(
  model: Model,
  rows: Float32Array,
  u: number,
): Promise<Float64Array> {
  const n = rows.length / u;
  const t = model.gpu.upload(rows, [n, u]);
  const M = matmul(t, t, { transA: true });
  const host = Float64Array.from(await M.read());
  t.release();
  M.release();
  return host;
}

/** Rearranges every layer's head and FFN masks (METHOD §5); returns the new mask and a log. */
export async function rearrangeMasks(
  model: Model,
  fisher: FisherResult,
  mask: MaskSet,
  passes = 1,
): Promise<{ mask: MaskSet; log: PruneReport["rearrange"] }> {
  if (!fisher.headRows || !fisher.ffnRows) {
    throw new InvalidArgumentError("rearrangement needs the Fisher gradient rows (keepRows)");
  }
  const out: MaskSet = {
    ...mask,
    head: Float64Array.from(mask.head),
    ffn: Float64Array.from(mask.ffn),
  };
  const log: PruneReport["rearrange"] = [];
  for (let l = 0; l < mask.L; l++) {
    for (const kind of ["head", "ffn"] as const) {
      const u = kind === "head" ? mask.H : mask.F;
      const cur = (kind === "head" ? mask.head : mask.ffn).subarray(l * u, (l + 1) * u);
      let zeros = 0;
      for (const v of cur) zeros += v === 0 ? 1 : 0;
      if (zeros === 0 || zeros === u) continue;
      const rows = kind === "head" ? fisher.headRows[l] : fisher.ffnRows[l];
      const M = await gramMatrix(model, rows, u);
      const r = rearrangeLayer(M, u, cur, { passes });
      let changed = 0;
      for (let i = 0; i < u; i++) changed += r.mask[i] !== cur[i] ? 1 : 0;
      (kind === "head" ? out.head : out.ffn).set(r.mask, l * u);
      log.push({ layer: l, kind, before: r.before, after: r.after, changed: changed / 2 });
    }
  }
  return { mask: out, log };
}

/** Runs the whole pipeline on `samples` (batched, with labels unless label-free). */
export async function prune(
  model: Model,
  samples: ModelInput[],
  opts: PruneOptions,
): Promise<PruneResult> {
  const o: PruneOptions = opts.preset === "kwonCode"
    ? { ...kwonCodeOptions(model.config.head), ...opts }
    : opts;
  modelDims(model); // an unpruned model (raises otherwise)
  const budgetValue = "flops" in o.budget ? o.budget.flops : o.budget.latency;
  if (!(budgetValue > 0 && budgetValue <= 1)) {
    throw new InvalidArgumentError(
      `budget ${budgetValue} must be in (0, 1]: it is the fraction kept`,
    );
  }
  if (samples.length === 0) throw new InvalidArgumentError("the sample set is empty");
  // the Fisher pass runs the unpruned model forward on the very samples tuning fits: it keeps
  // the full teacher's targets for tuning (up to a memory cap), which then needs no teacher pass
  const cap = o.teacherCacheBytes ?? TEACHER_TARGETS_MAX_BYTES;
  if (!(cap >= 0)) {
    throw new InvalidArgumentError(`teacherCacheBytes must be ≥ 0, got ${cap}`);
  }
  const ownTargets = !o.fisher && (o.tune ?? true) && (o.teacher ?? "full") === "full" && cap > 0
    ? new TeacherTargets(cap)
    : undefined;
  try {
    return await pruneWith(model, samples, o, ownTargets);
  } finally {
    ownTargets?.release();
  }
}

async function pruneWith(
  model: Model,
  samples: ModelInput[],
  o: PruneOptions,
  ownTargets: TeacherTargets | undefined,
): Promise<PruneResult> {
  const dims = modelDims(model);
  const budgetValue = "flops" in o.budget ? o.budget.flops : o.budget.latency;
  const progress = (stage: string) => (d: number, t: number) => o.onProgress?.(stage, d, t);
  const t0 = performance.now();
  const fisher = o.fisher ?? await collectFisher(model, samples, {
    labelFree: o.labelFree,
    groupSize: o.fisherGroupSize,
    onProgress: progress("fisher"),
    teacherTargets: ownTargets,
  });
  const t1 = performance.now();
  let table: MeasuredLatencyTable | LatencyTable | undefined;
  let latency: PruneReport["latency"];
  const search = async (c: number): Promise<MaskSet> => {
    if ("flops" in o.budget) return searchFlops(fisher.head, fisher.ffn, dims, o.seqLen, c);
    table ??= o.latencyTable ??
      await measureLatencyTable(model, {
        ...o.latencyOptions,
        onProgress: progress("latency table"),
      });
    const r = searchLatency(fisher.head, fisher.ffn, dims, table, c, { method: o.latencySearch });
    return r;
  };
  const tSearch0 = performance.now();
  const searched = await search(budgetValue);
  if ("latency" in o.budget) {
    const r = searched as MaskSet & { predicted: number; full: number };
    const meta = "adapter" in table!
      ? (({ mha: _m, ffn: _f, ...rest }) => rest)(table as MeasuredLatencyTable)
      : null;
    latency = { predicted: r.predicted, full: r.full, ratio: r.predicted / r.full, table: meta };
  }
  const teacherMask = (o.teacher ?? "full") === "ta" && (o.tune ?? true)
    ? await search(Math.sqrt(budgetValue))
    : undefined;
  const t2 = performance.now();
  const searchSeconds = (t2 - tSearch0) / 1000;
  let rearranged = searched;
  let rlog: PruneReport["rearrange"] = [];
  if (o.rearrange ?? true) {
    const r = await rearrangeMasks(model, fisher, searched, o.rearrangePasses ?? 1);
    rearranged = r.mask;
    rlog = r.log;
  }
  const t3 = performance.now();
  let tuned = rearranged;
  let tuning: SubLayerTuning[] = [];
  let tuneTeacher: PruneReport["tuneTeacher"];
  if (o.tune ?? true) {
    const r = await tuneMasks(model, samples, rearranged, {
      teacher: o.teacher,
      taMask: teacherMask,
      taMaskCurrentFfn: o.taMaskCurrentFfn,
      tuneFirstMha: o.tuneFirstMha,
      clsOnlyLastMha: o.clsOnlyLastMha,
      onTuneFailure: o.onTuneFailure,
      onProgress: progress("tune"),
      teacherTargets: ownTargets ?? (o.fisher ? o.teacherTargets : undefined),
    });
    tuned = r.mask;
    tuning = r.layers;
    tuneTeacher = r.teacherTargets;
  }
  const t4 = performance.now();
  const compact = (o.compact ?? true)
    ? await compactModel(model, { keep: rearranged, values: tuned })
    : undefined;
  const t5 = performance.now();
  const kept = keptCounts(rearranged);
  const full = countMacs(dims, o.seqLen, Array(dims.L).fill(dims.H), Array(dims.L).fill(dims.F));
  const pruned = countMacs(dims, o.seqLen, kept.heads, kept.neurons);
  const { onProgress: _p, fisher: _f, latencyTable: _t, ...shown } = o;
  return {
    masks: { search: searched, rearranged, tuned, teacher: teacherMask },
    fisher,
    compact,
    report: {
      budget: o.budget,
      seqLen: o.seqLen,
      options: shown as Record<string, unknown>,
      seconds: {
        fisher: (t1 - t0) / 1000,
        search: searchSeconds,
        rearrange: (t3 - t2) / 1000,
        tune: (t4 - t3) / 1000,
        compact: (t5 - t4) / 1000,
        pruning: (t4 - t0) / 1000,
      },
      macs: { full, pruned, ratio: pruned / full },
      params: {
        full: parameterCount(model.config),
        pruned: compact ? parameterCount(compact.config) : NaN,
      },
      kept,
      rearrange: rlog,
      tuning,
      tuneTeacher,
      latency,
      samples: fisher.examples,
    },
  };
}
