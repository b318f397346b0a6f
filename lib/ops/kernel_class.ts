/**
 * Which kernel variants the row-wise ops use. "gpu" kernels reduce a row with a whole workgroup
 * (strided lanes, then a tree in workgroup memory with barriers); "cpu" kernels give each
 * invocation whole rows (serial loops, no barriers), which suits CPU adapters such as Mesa
 * llvmpipe, where a workgroup's invocations run as SIMD fibers and every barrier is a costly
 * switch. By default ("auto") the class follows the adapter (`gpu.adapter.kind`); tests and
 * benchmarks may force either class. Both variants sum in a fixed order, so each is deterministic.
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";
import type { Gpu } from "../gpu/context.ts";

/** A kernel variant family: workgroup reductions ("gpu") or one invocation per row ("cpu"). */
export type KernelClass = "cpu" | "gpu";

let forced: KernelClass | "auto" = "auto";

/**
 * Forces the kernel class of all row-wise ops recorded from now on ("cpu" or "gpu"), or returns
 * to choosing it from the adapter ("auto", the default). Meant for tests and benchmarks that
 * compare both variants on one adapter.
 */
export function setKernelClass(c: KernelClass | "auto"): void {
  if (c !== "cpu" && c !== "gpu" && c !== "auto") {
    throw new InvalidArgumentError(`setKernelClass: expected "cpu", "gpu" or "auto", got ${c}`);
  }
  forced = c;
}

/** The kernel class ops use on `gpu`: the forced one, or the adapter's kind under "auto". */
export function kernelClass(gpu: Gpu): KernelClass {
  return forced === "auto" ? gpu.adapter.kind : forced;
}
