/**
 * Interleaved pairs ↔ two arrays: the span-QA head's [N, 2] logits become start [N] and end [N]
 * (`splitPairs`), and their gradients are joined back (`joinPairs`, the backward of `splitPairs`).
 * @module
 */
import src from "../../kernels/pairs.wgsl" with { type: "text" };
import { ShapeError } from "../errors.ts";
import type { KernelSpec } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { grid1d } from "./grid.ts";

const WG = 256;
const spec = (entry: string): KernelSpec => ({
  name: "pairs.wgsl",
  source: src,
  entry,
  bindings: ["rw", "rw", "rw"],
  constants: { WG },
});
const SPLIT = spec("split_pairs");
const JOIN = spec("join_pairs");

/** Splits x [N, 2] into first [N] and second [N] (shaped `shape`, default [N]). */
export function splitPairs(x: Tensor, shape?: readonly number[]): [Tensor, Tensor] {
  if (x.shape[x.shape.length - 1] !== 2) {
    throw new ShapeError(`splitPairs: last dimension must be 2, got [${x.shape.join(", ")}]`);
  }
  const n = x.size / 2;
  const s = shape ?? [n];
  const a = x.gpu.empty(s);
  const b = x.gpu.empty(s);
  if (a.size !== n) throw new ShapeError(`splitPairs: shape [${s.join(", ")}] is not ${n} values`);
  const [nx, ny] = grid1d(n, WG);
  x.gpu.dispatch(SPLIT, [n, nx], [x, a, b], [nx, ny]);
  return [a, b];
}

/** Joins first [N] and second [N] into pairs [N, 2] (the backward of `splitPairs`). */
export function joinPairs(first: Tensor, second: Tensor): Tensor {
  if (first.size !== second.size) {
    throw new ShapeError(`joinPairs: sizes ${first.size} and ${second.size} differ`);
  }
  const n = first.size;
  const out = first.gpu.empty([n, 2]);
  const [nx, ny] = grid1d(n, WG);
  first.gpu.dispatch(JOIN, [n, nx], [out, first, second], [nx, ny]);
  return out;
}
