/**
 * Mask search under a FLOPs (MAC) constraint (METHOD.md §4.1): keep the globally most important
 * heads and neurons, sweeping the number of heads k and filling the rest of the budget with
 * neurons. Exact for "maximise kept diagonal Fisher within the MAC budget".
 * @module
 */
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import { macPerHead, macPerNeuron } from "./flops.ts";
import { ConstraintTooSmallError, type MaskSet, type ModelDims } from "./types.ts";

/**
 * Indices of `importance` sorted by (importance descending, index ascending): a stable,
 * deterministic ranking. Throws InvalidArgumentError on a non-finite importance.
 */
export function rankDescending(importance: ArrayLike<number>): Int32Array {
  const n = importance.length;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(importance[i])) {
      throw new InvalidArgumentError(`importance[${i}] = ${importance[i]} is not finite`);
    }
  }
  const idx = Array.from({ length: n }, (_, i) => i);
  idx.sort((x, y) => (importance[y] - importance[x]) || (x - y));
  return Int32Array.from(idx);
}

/** Checks that flat head/FFN importances have lengths L·H and L·F (ShapeError otherwise). */
export function checkImportance(
  headI: ArrayLike<number>,
  ffnI: ArrayLike<number>,
  dims: ModelDims,
) {
  const { L, H, F } = dims;
  for (const [k, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v <= 0) {
      throw new InvalidArgumentError(`dims.${k} = ${v} must be a positive integer`);
    }
  }
  if (headI.length !== L * H) {
    throw new ShapeError(`head importance has length ${headI.length}, expected L·H = ${L * H}`);
  }
  if (ffnI.length !== L * F) {
    throw new ShapeError(`FFN importance has length ${ffnI.length}, expected L·F = ${L * F}`);
  }
}

/**
 * floor(num/den) for a unit count, with a 1e-9-unit slack so that rounding in f64 (e.g. c = 1)
 * does not lose a whole unit; the slack costs at most 1e-9 of one unit.
 */
function floorCount(num: number, den: number): number {
  return Math.floor(num / den + 1e-9);
}

/**
 * FLOPs-constrained search (METHOD.md §4.1). With a = macPerHead(s), b = macPerNeuron(s) and
 * budget C = c·L·(H·a + F·b): for k = 1 … min(L·H, ⌊C/a⌋) heads, n(k) = min(L·F, ⌊(C − k·a)/b⌋)
 * neurons and score(k) = top-k head importance + top-n(k) neuron importance (prefix sums in f64,
 * ranks by importance descending, flat index ascending); k* is the first maximum. Returns the
 * binary masks, the kept importance `score` and the kept `macs`. Throws ConstraintTooSmallError if
 * not even one head fits.
 */
export function searchFlops(
  headI: ArrayLike<number>,
  ffnI: ArrayLike<number>,
  dims: ModelDims,
  s: number,
  c: number,
): MaskSet & { score: number; macs: number } {
  checkImportance(headI, ffnI, dims);
  if (!(c > 0 && c <= 1)) throw new InvalidArgumentError(`constraint c = ${c} must be in (0, 1]`);
  if (!(s > 0) || !Number.isFinite(s)) {
    throw new InvalidArgumentError(`sequence length s = ${s} must be a positive number`);
  }
  const { L, H, F, d, dh } = dims;
  const a = macPerHead(s, d, dh);
  const b = macPerNeuron(s, d);
  const budget = c * L * (H * a + F * b);
  const headOrder = rankDescending(headI);
  const ffnOrder = rankDescending(ffnI);
  const prefH = new Float64Array(L * H + 1);
  for (let i = 0; i < L * H; i++) prefH[i + 1] = prefH[i] + headI[headOrder[i]];
  const prefN = new Float64Array(L * F + 1);
  for (let i = 0; i < L * F; i++) prefN[i + 1] = prefN[i] + ffnI[ffnOrder[i]];
  const kMax = Math.min(L * H, floorCount(budget, a));
  if (kMax < 1) {
    throw new ConstraintTooSmallError(
      `c = ${c} allows ${budget.toPrecision(4)} MACs, less than one head (${a.toPrecision(4)}); ` +
        `raise the constraint`,
    );
  }
  let best = -Infinity;
  let bestK = 0;
  let bestN = 0;
  for (let k = 1; k <= kMax; k++) {
    const n = Math.max(0, Math.min(L * F, floorCount(budget - k * a, b)));
    const score = prefH[k] + prefN[n];
    if (score > best) {
      best = score;
      bestK = k;
      bestN = n;
    }
  }
  const head = new Float64Array(L * H);
  for (let i = 0; i < bestK; i++) head[headOrder[i]] = 1;
  const ffn = new Float64Array(L * F);
  for (let i = 0; i < bestN; i++) ffn[ffnOrder[i]] = 1;
  return { head, ffn, L, H, F, score: best, macs: bestK * a + bestN * b };
}
