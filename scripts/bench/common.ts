/**
 * Shared pieces of `deno task bench` sections: the section interface, timing helpers (record N
 * dispatches, `await gpu.sync()`, wall time; medians over repeats after a warm-up) and table
 * printing.
 * @module
 */
import process from "node:process";
import type { Gpu } from "../../lib/gpu/context.ts";

/** Options every section receives. */
export interface BenchContext {
  /** The GPU context. */
  gpu: Gpu;
  /** Fewer repeats (`--quick`). */
  quick: boolean;
  /** Extra flags of the command line (e.g. `--sweep`). */
  flags: Record<string, string | boolean | undefined>;
}

/** One bench section: a name for `--only` and a runner returning JSON-serialisable results. */
export interface BenchSection {
  /** Name used by `--only` and as the key in the results JSON. */
  name: string;
  /** Runs the section, printing its table, and returns its results. */
  run(ctx: BenchContext): Promise<unknown>;
}

/**
 * The Python interpreter that runs the PyTorch baselines: `$FASTPRUNE_PYTHON` when set (a machine
 * whose PyTorch lives in a virtual environment), else Debian's `/usr/bin/python3`.
 */
export function pythonPath(): string {
  try {
    return Deno.env.get("FASTPRUNE_PYTHON") || "/usr/bin/python3";
  } catch {
    return "/usr/bin/python3";
  }
}

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/**
 * Groups shorter than this are timed marginally: a sync has a fixed cost (Deno 2.9's `mapAsync`
 * polls the device and then sleeps 10 ms before it resolves; ≈ 12 ms per sync was measured on an
 * H100, where it hid every kernel's time) that a group of calls must not be charged for.
 */
export const MARGINAL_BELOW_MS = 100;

/** Wall and process-CPU milliseconds of one timed repeat. */
export interface Timing {
  /** Wall-clock milliseconds per call. */
  ms: number;
  /** Process CPU milliseconds per call (all threads: the adapter's workers run in-process). */
  cpuMs: number;
}

/**
 * Per-call timings of `record` (which must only record GPU work), one per repeat. One warm-up
 * group of `perRepeat` calls + sync, then per repeat either { `perRepeat` calls, sync } divided by
 * `perRepeat` when such a group lasts ≥ `targetMs` (default `MARGINAL_BELOW_MS`), or else
 * marginally: (t(2n) − t(n)) / n with n calls per group (n ≥ perRepeat, sized so that t(n) ≈
 * `targetMs`), which removes the per-sync cost and leaves the GPU time plus the cost of recording.
 */
async function timeGroups(
  gpu: Gpu,
  record: () => void,
  repeats: number,
  perRepeat: number,
  targetMs = MARGINAL_BELOW_MS,
): Promise<Timing[]> {
  const group = async (n: number) => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) record();
    await gpu.sync();
    const c = process.cpuUsage(c0);
    return { ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000 };
  };
  await group(perRepeat);
  const probe = await group(perRepeat);
  const out: Timing[] = [];
  if (probe.ms >= targetMs) {
    out.push({ ms: probe.ms / perRepeat, cpuMs: probe.cpuMs / perRepeat });
    for (let r = 1; r < repeats; r++) {
      const g = await group(perRepeat);
      out.push({ ms: g.ms / perRepeat, cpuMs: g.cpuMs / perRepeat });
    }
    return out;
  }
  const perCall = probe.ms / perRepeat;
  const n = Math.min(
    4096,
    Math.max(perRepeat, Math.ceil(targetMs / Math.max(perCall, 1e-3))),
  );
  for (let r = 0; r < repeats; r++) {
    const one = await group(n);
    const two = await group(2 * n);
    out.push({
      ms: Math.max(0, two.ms - one.ms) / n,
      cpuMs: Math.max(0, two.cpuMs - one.cpuMs) / n,
    });
  }
  return out;
}

/**
 * Per-call wall milliseconds of every repeat of `record` (see `timeGroups` for the method and
 * `targetMs`).
 */
export async function timeGpu(
  gpu: Gpu,
  record: () => void,
  repeats: number,
  perRepeat = 1,
  targetMs = MARGINAL_BELOW_MS,
): Promise<number[]> {
  return (await timeGroups(gpu, record, repeats, perRepeat, targetMs)).map((t) => t.ms);
}

/**
 * Like `timeGpu` but also records process CPU time, whose rate (flops per CPU-second times the
 * number of hardware threads) estimates the uncontended throughput when other processes share
 * the machine. Returns the medians.
 */
export async function timeGpuCpu(
  gpu: Gpu,
  record: () => void,
  repeats: number,
  perRepeat = 1,
): Promise<Timing> {
  const t = await timeGroups(gpu, record, repeats, perRepeat);
  return { ms: median(t.map((x) => x.ms)), cpuMs: median(t.map((x) => x.cpuMs)) };
}

/** Prints rows as an aligned text table (first row is the header). */
export function printTable(rows: readonly (readonly string[])[]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const [i, r] of rows.entries()) {
    console.log(
      r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
        .join("  "),
    );
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
}

/** Deterministic pseudo-random f32 values in [-1, 1). */
export function randomF32(n: number, seed = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}
