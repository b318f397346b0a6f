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

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/**
 * Times `record` (which must only record GPU work): one warm-up call + sync, then `repeats`
 * times { record `perRepeat` calls, sync }. Returns per-call milliseconds of every repeat.
 */
export async function timeGpu(
  gpu: Gpu,
  record: () => void,
  repeats: number,
  perRepeat = 1,
): Promise<number[]> {
  record();
  await gpu.sync();
  const ms: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    for (let i = 0; i < perRepeat; i++) record();
    await gpu.sync();
    ms.push((performance.now() - t0) / perRepeat);
  }
  return ms;
}

/** Wall and process-CPU milliseconds of one timed repeat. */
export interface Timing {
  /** Wall-clock milliseconds per call. */
  ms: number;
  /** Process CPU milliseconds per call (all threads: the adapter's workers run in-process). */
  cpuMs: number;
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
  record();
  await gpu.sync();
  const ms: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < perRepeat; i++) record();
    await gpu.sync();
    ms.push((performance.now() - t0) / perRepeat);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000 / perRepeat);
  }
  return { ms: median(ms), cpuMs: median(cpu) };
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
