/**
 * Mask rearrangement (METHOD.md §5): for one layer and unit type, swap which units are pruned so
 * that the block-diagonal Fisher estimate of the loss increase, Q(S) = 1_Sᵀ M 1_S with M the Gram
 * matrix Σ_x g(x)g(x)ᵀ of the layer's units, gets smaller while the number of pruned units (and so
 * the cost) stays the same.
 * @module
 */
import { InvalidArgumentError, ShapeError } from "../errors.ts";

/** Options of `rearrangeLayer`. */
export interface RearrangeOptions {
  /** Greedy passes (default 1, the code's behaviour); `Infinity` repeats until no change. */
  passes?: number;
}

/** Result of a rearrangement: the new binary mask and Q of the pruned set before and after. */
export interface RearrangeResult {
  /** New binary mask (1 = kept, 0 = pruned) with the same number of zeros as the input. */
  mask: Float64Array;
  /** Q(S) of the input's pruned set. */
  before: number;
  /** Q(S) of the returned pruned set (never above `before`). */
  after: number;
}

function checkGram(M: ArrayLike<number>, u: number): void {
  if (!Number.isInteger(u) || u < 1) throw new InvalidArgumentError(`u = ${u} must be ≥ 1`);
  if (M.length !== u * u) {
    throw new ShapeError(`Gram matrix has ${M.length} entries, expected ${u}×${u}`);
  }
  for (let i = 0; i < u; i++) {
    for (let j = 0; j <= i; j++) {
      const a = M[i * u + j];
      const b = M[j * u + i];
      if (!Number.isFinite(a) || !Number.isFinite(b)) {
        throw new InvalidArgumentError(`Gram matrix entry (${i}, ${j}) is not finite`);
      }
      if (Math.abs(a - b) > 1e-9 * (Math.abs(a) + Math.abs(b))) {
        throw new InvalidArgumentError(
          `Gram matrix is not symmetric at (${i}, ${j}): ${a} vs ${b}`,
        );
      }
    }
  }
}

/** Q(S) = Σ_{a,b∈S} M_ab of a set of unit indices. */
function quadForm(M: ArrayLike<number>, u: number, S: ArrayLike<number>): number {
  let q = 0;
  for (let a = 0; a < S.length; a++) {
    const o = S[a] * u;
    for (let b = 0; b < S.length; b++) q += M[o + S[b]];
  }
  return q;
}

/** Units sorted by (M_ii ascending, index ascending). */
function ascendingByDiag(M: ArrayLike<number>, u: number, units: number[]): number[] {
  return units.slice().sort((x, y) => (M[x * u + x] - M[y * u + y]) || (x - y));
}

/**
 * Greedy rearrangement of one layer's units (METHOD.md §5). S starts as the input mask's pruned
 * units, ordered by importance I_i = M_ii ascending (index tie-break); one pass visits the kept
 * units in the same ascending order, appends each unit j to S and removes the first i in list
 * order minimising Q(S∖{i}) = Q(S) − 2·d_i + M_ii, where d_i = (M·1_S)_i is updated incrementally
 * (this may remove j itself). `passes` > 1 repeats the pass from the new S; `Infinity` stops when a
 * pass changes nothing. A mask with no pruned or no kept unit is returned unchanged. The input's
 * pruned set (not "the k least important units") seeds S, which is the same set for a search mask.
 */
export function rearrangeLayer(
  M: ArrayLike<number>,
  u: number,
  mask01: ArrayLike<number>,
  o: RearrangeOptions = {},
): RearrangeResult {
  checkGram(M, u);
  if (mask01.length !== u) throw new ShapeError(`mask has length ${mask01.length}, expected ${u}`);
  const passes = o.passes ?? 1;
  if (!(passes >= 1) || (!Number.isInteger(passes) && passes !== Infinity)) {
    throw new InvalidArgumentError(`passes = ${passes} must be a positive integer or Infinity`);
  }
  const pruned: number[] = [];
  for (let i = 0; i < u; i++) {
    if (mask01[i] !== 0 && mask01[i] !== 1) {
      throw new InvalidArgumentError(`mask01[${i}] = ${mask01[i]} is not 0 or 1`);
    }
    if (mask01[i] === 0) pruned.push(i);
  }
  const before = quadForm(M, u, pruned);
  const mask = Float64Array.from(mask01);
  if (pruned.length === 0 || pruned.length === u) return { mask, before, after: before };
  let S = pruned;
  for (let pass = 0; pass < passes; pass++) {
    const next = greedyPass(M, u, S);
    const changed = next.slice().sort((a, b) => a - b).join() !== S.slice().sort((a, b) => a - b)
      .join();
    S = next;
    if (!changed) break;
  }
  mask.fill(1);
  for (const i of S) mask[i] = 0;
  return { mask, before, after: quadForm(M, u, S) };
}

/** One greedy pass from pruned set S; returns the new pruned set. */
function greedyPass(M: ArrayLike<number>, u: number, start: number[]): number[] {
  const inS = new Uint8Array(u);
  for (const i of start) inS[i] = 1;
  const all = Array.from({ length: u }, (_, i) => i);
  const S = ascendingByDiag(M, u, start);
  const rest = ascendingByDiag(M, u, all.filter((i) => !inS[i]));
  // d_i = Σ_{r∈S} M_ir for every unit i (M is symmetric: read row r, contiguous).
  const d = new Float64Array(u);
  for (const r of S) for (let i = 0, o = r * u; i < u; i++) d[i] += M[o + i];
  for (const j of rest) {
    S.push(j);
    for (let i = 0, o = j * u; i < u; i++) d[i] += M[o + i];
    // Q(S∖{i}) − Q(S) = −2·d_i + M_ii; Q(S) is common to all candidates.
    let bestPos = 0;
    let bestVal = Infinity;
    for (let p = 0; p < S.length; p++) {
      const i = S[p];
      const v = M[i * u + i] - 2 * d[i];
      if (v < bestVal) {
        bestVal = v;
        bestPos = p;
      }
    }
    const r = S[bestPos];
    S.splice(bestPos, 1);
    for (let i = 0, o = r * u; i < u; i++) d[i] -= M[o + i];
  }
  return S;
}

/**
 * Exact rearrangement (option `exactHeads`, METHOD.md §5/§11.5): among all C(u, k) sets S of k
 * pruned units, the one minimising Q(S) = 1_Sᵀ M 1_S (first in lexicographic order on ties).
 * Returns its mask (1 = kept, 0 = pruned) and Q. Only for u ≤ 16.
 */
export function exactHeadRearrange(
  M: ArrayLike<number>,
  u: number,
  k: number,
): { mask: Float64Array; q: number } {
  checkGram(M, u);
  if (u > 16) {
    throw new InvalidArgumentError(`exact rearrangement enumerates C(u,k): u = ${u} > 16`);
  }
  if (!Number.isInteger(k) || k < 0 || k > u) {
    throw new InvalidArgumentError(`k = ${k} must be an integer in 0..${u}`);
  }
  const comb = Array.from({ length: k }, (_, i) => i);
  let best = Infinity;
  let bestSet = comb.slice();
  while (true) {
    const q = quadForm(M, u, comb);
    if (q < best) {
      best = q;
      bestSet = comb.slice();
    }
    let i = k - 1;
    while (i >= 0 && comb[i] === u - k + i) i--;
    if (i < 0) break;
    comb[i]++;
    for (let j = i + 1; j < k; j++) comb[j] = comb[j - 1] + 1;
  }
  const mask = new Float64Array(u).fill(1);
  for (const i of bestSet) mask[i] = 0;
  return { mask, q: k === 0 ? 0 : best };
}
