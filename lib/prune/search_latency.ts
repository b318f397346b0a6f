/**
 * Mask search under a latency constraint (METHOD.md §4.2 and §2.3): an exact multiple-choice
 * knapsack DP over the measured per-sub-layer latency lookup table (default), and the paper's
 * piecewise-linear search with the official code's bugs fixed (option `method: "piecewise"`).
 * @module
 */
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import { checkImportance, rankDescending } from "./search_flops.ts";
import { ConstraintTooSmallError, type MaskSet, type ModelDims } from "./types.ts";

/**
 * Latency lookup table of one encoder layer, in seconds: `mha[h]` is one MHA sub-layer keeping h
 * heads (h = 0…H) and `ffn[n]` one FFN sub-layer keeping n neurons (n = 0…F).
 */
export interface LatencyTable {
  /** Seconds of one MHA sub-layer for h = 0…H kept heads (length H+1). */
  mha: Float64Array;
  /** Seconds of one FFN sub-layer for n = 0…F kept neurons (length F+1). */
  ffn: Float64Array;
}

/** Options of `searchLatency`. */
export interface LatencySearchOptions {
  /** "dp" (default): exact knapsack on the raw LUT; "piecewise": the fixed §2.3 search. */
  method?: "dp" | "piecewise";
  /** Number of cost bins of the DP (default 4096); costs are rounded up onto B/bins. */
  bins?: number;
}

/** Result of a latency search: binary masks plus the raw-LUT latency of the mask and the model. */
export type LatencySearchResult = MaskSet & {
  /** Raw-LUT latency Σ_l lut_mha[h_l] + lut_ffn[n_l] of the returned mask. */
  predicted: number;
  /** Raw-LUT latency of the unpruned model. */
  full: number;
  /** Kept importance (sum of importance of the kept units). */
  score: number;
  /** The budget B = c·full that `predicted` meets. */
  budget: number;
};

/** Relative slack for comparing a raw-LUT latency with the budget (f64 rounding only). */
const BUDGET_RTOL = 1e-12;

function checkLut(lut: LatencyTable, dims: ModelDims, where: string): void {
  if (lut.mha.length !== dims.H + 1) {
    throw new ShapeError(`${where}.mha has length ${lut.mha.length}, expected H+1 = ${dims.H + 1}`);
  }
  if (lut.ffn.length !== dims.F + 1) {
    throw new ShapeError(`${where}.ffn has length ${lut.ffn.length}, expected F+1 = ${dims.F + 1}`);
  }
  for (const t of [lut.mha, lut.ffn]) {
    for (let i = 0; i < t.length; i++) {
      if (!(t[i] >= 0) || !Number.isFinite(t[i])) {
        throw new InvalidArgumentError(`${where}: latency ${t[i]} at ${i} must be finite and ≥ 0`);
      }
    }
  }
}

/** Sorted importances of one layer's units (descending, index tie-break) and their prefix sums. */
function layerRanking(I: ArrayLike<number>, l: number, u: number) {
  const slice = new Float64Array(u);
  for (let i = 0; i < u; i++) slice[i] = I[l * u + i];
  const order = rankDescending(slice);
  const prefix = new Float64Array(u + 1);
  for (let i = 0; i < u; i++) prefix[i + 1] = prefix[i] + slice[order[i]];
  return { order, prefix };
}

/**
 * Latency-constrained search (METHOD.md §4.2). Budget B = c·Σ_l (lut_mha[H] + lut_ffn[F]). Default
 * `"dp"`: each sub-layer is a group whose option u (keep the top-u units of that layer, ranked by
 * importance with index tie-break) costs lut[u] rounded UP onto `bins` bins of width B/bins and is
 * worth the sum of those u importances; an exact DP maximises the total worth with Σ h_l ≥ 1, ties
 * to the lower (quantised) total cost, then to the lower u (groups are processed FFN sub-layers
 * first, then MHA sub-layers, each in layer order; the backtrack picks the lowest u per group).
 * `"piecewise"` runs the corrected intended algorithm of §2.3 (single LUT only). c = 1 returns the
 * full model without searching (rounding up could otherwise lose up to one bin per group). `lut` may be one
 * table for all layers or one per layer (§11.2, DP only). The result always meets B under the raw
 * LUT; ConstraintTooSmallError if no mask with a head does.
 */
export function searchLatency(
  headI: ArrayLike<number>,
  ffnI: ArrayLike<number>,
  dims: ModelDims,
  lut: LatencyTable | LatencyTable[],
  c: number,
  o: LatencySearchOptions = {},
): LatencySearchResult {
  checkImportance(headI, ffnI, dims);
  if (!(c > 0 && c <= 1)) throw new InvalidArgumentError(`constraint c = ${c} must be in (0, 1]`);
  const luts = Array.isArray(lut) ? lut : Array.from({ length: dims.L }, () => lut);
  if (luts.length !== dims.L) {
    throw new ShapeError(`got ${luts.length} latency tables, expected one or L = ${dims.L}`);
  }
  luts.forEach((t, l) => checkLut(t, dims, `lut[${l}]`));
  let full = 0;
  for (const t of luts) full += t.mha[dims.H] + t.ffn[dims.F];
  const budget = c * full;
  const method = o.method ?? "dp";
  if (method !== "dp" && method !== "piecewise") {
    throw new InvalidArgumentError(`unknown latency search method "${method}" (dp | piecewise)`);
  }
  let kept: { heads: Int32Array; neurons: Int32Array };
  if (c === 1) {
    // No pruning: the full model meets B = full exactly, which rounding costs up could lose.
    kept = {
      heads: new Int32Array(dims.L).fill(dims.H),
      neurons: new Int32Array(dims.L).fill(dims.F),
    };
  } else if (method === "dp") {
    const bins = o.bins ?? 4096;
    if (!Number.isInteger(bins) || bins < 1) {
      throw new InvalidArgumentError(`bins = ${bins} must be a positive integer`);
    }
    kept = dpSearch(headI, ffnI, dims, luts, budget, bins);
  } else {
    if (Array.isArray(lut)) {
      throw new InvalidArgumentError(`method "piecewise" takes one latency table, not per-layer`);
    }
    kept = piecewiseSearch(headI, ffnI, dims, lut, budget);
  }
  return buildResult(headI, ffnI, dims, luts, kept, full, budget);
}

/** Turns per-layer kept counts into top-unit masks and reports score and raw-LUT latency. */
function buildResult(
  headI: ArrayLike<number>,
  ffnI: ArrayLike<number>,
  dims: ModelDims,
  luts: LatencyTable[],
  kept: { heads: Int32Array; neurons: Int32Array },
  full: number,
  budget: number,
): LatencySearchResult {
  const { L, H, F } = dims;
  const head = new Float64Array(L * H);
  const ffn = new Float64Array(L * F);
  let score = 0;
  let predicted = 0;
  for (let l = 0; l < L; l++) {
    const rh = layerRanking(headI, l, H);
    for (let i = 0; i < kept.heads[l]; i++) head[l * H + rh.order[i]] = 1;
    const rf = layerRanking(ffnI, l, F);
    for (let i = 0; i < kept.neurons[l]; i++) ffn[l * F + rf.order[i]] = 1;
    score += rh.prefix[kept.heads[l]] + rf.prefix[kept.neurons[l]];
    predicted += luts[l].mha[kept.heads[l]] + luts[l].ffn[kept.neurons[l]];
  }
  return { head, ffn, L, H, F, score, predicted, full, budget };
}

function tooSmall(budget: number, why: string): ConstraintTooSmallError {
  return new ConstraintTooSmallError(
    `latency budget ${budget.toPrecision(4)} s ${why}; raise the constraint`,
  );
}

/** The exact multiple-choice knapsack of §4.2 on quantised costs; returns kept counts per layer. */
function dpSearch(
  headI: ArrayLike<number>,
  ffnI: ArrayLike<number>,
  dims: ModelDims,
  luts: LatencyTable[],
  budget: number,
  bins: number,
): { heads: Int32Array; neurons: Int32Array } {
  const { L, H, F } = dims;
  const width = budget / bins;
  const quantise = (t: Float64Array): Int32Array => {
    const q = new Int32Array(t.length);
    for (let u = 0; u < t.length; u++) {
      const v = Math.ceil(t[u] / width);
      q[u] = v > bins ? bins + 1 : v; // bins+1 = never affordable
    }
    return q;
  };
  const S = bins + 1;
  // Phase 1: FFN groups (no head flag needed). dp[b] = best worth at quantised cost exactly b.
  let dp = new Float64Array(S).fill(-Infinity);
  dp[0] = 0;
  const ffnChoice: Int32Array[] = [];
  for (let l = 0; l < L; l++) {
    const cost = quantise(luts[l].ffn);
    const worth = layerRanking(ffnI, l, F).prefix;
    const next = new Float64Array(S).fill(-Infinity);
    const choice = new Int32Array(S).fill(-1);
    for (let u = 0; u <= F; u++) {
      const q = cost[u];
      const w = worth[u];
      for (let b = q; b < S; b++) {
        const cand = dp[b - q] + w;
        if (cand > next[b]) {
          next[b] = cand;
          choice[b] = u;
        }
      }
    }
    ffnChoice.push(choice);
    dp = next;
  }
  // Phase 2: MHA groups with a flag "some head kept" (dp0: none yet, dp1: at least one).
  let dp0 = dp;
  let dp1 = new Float64Array(S).fill(-Infinity);
  const mhaChoice: { u: Int32Array[]; from: Uint8Array[] }[] = [];
  for (let l = 0; l < L; l++) {
    const cost = quantise(luts[l].mha);
    const worth = layerRanking(headI, l, H).prefix;
    const n0 = new Float64Array(S).fill(-Infinity);
    const n1 = new Float64Array(S).fill(-Infinity);
    const c0 = new Int32Array(S).fill(-1);
    const c1 = new Int32Array(S).fill(-1);
    const from1 = new Uint8Array(S);
    for (let u = 0; u <= H; u++) {
      const q = cost[u];
      const w = worth[u];
      for (let b = q; b < S; b++) {
        if (u === 0) {
          const cand0 = dp0[b - q] + w;
          if (cand0 > n0[b]) {
            n0[b] = cand0;
            c0[b] = 0;
          }
        }
        const a1 = dp1[b - q] + w;
        if (a1 > n1[b]) {
          n1[b] = a1;
          c1[b] = u;
          from1[b] = 1;
        }
        if (u > 0) {
          const a0 = dp0[b - q] + w;
          if (a0 > n1[b]) {
            n1[b] = a0;
            c1[b] = u;
            from1[b] = 0;
          }
        }
      }
    }
    mhaChoice.push({ u: [c0, c1], from: [new Uint8Array(S), from1] });
    dp0 = n0;
    dp1 = n1;
  }
  let bestB = -1;
  let best = -Infinity;
  for (let b = 0; b < S; b++) {
    if (dp1[b] > best) {
      best = dp1[b];
      bestB = b;
    }
  }
  if (bestB < 0) throw tooSmall(budget, "fits no mask with at least one head");
  const heads = new Int32Array(L);
  const neurons = new Int32Array(L);
  let b = bestB;
  let flag = 1;
  for (let l = L - 1; l >= 0; l--) {
    const u = mhaChoice[l].u[flag][b];
    const src = mhaChoice[l].from[flag][b];
    heads[l] = u;
    b -= quantise(luts[l].mha)[u];
    flag = flag === 1 ? src : 0;
  }
  for (let l = L - 1; l >= 0; l--) {
    const u = ffnChoice[l][b];
    neurons[l] = u;
    b -= quantise(luts[l].ffn)[u];
  }
  return { heads, neurons };
}

/**
 * Fits a latency table `lut[u]` (u = 0…U) with the piecewise-linear model of METHOD.md §2.3:
 * 0 → 0; 1…τ units → κ; u > τ → κ + α(u − τ). For each τ = 1…U, κ and α ≥ 0 are the least-squares
 * fit over u = 1…U (α clamped to 0 with κ = mean when the unconstrained slope is negative or no
 * point lies above τ); τ minimises the squared error, the first (smallest) τ on ties, with the
 * running minimum starting at +∞ (the code's 10,000 start is bug 4).
 */
export function fitPiecewise(
  lut: ArrayLike<number>,
): { tau: number; kappa: number; alpha: number } {
  const U = lut.length - 1;
  if (U < 1) throw new InvalidArgumentError(`latency table needs at least 2 entries, got ${U + 1}`);
  let sy = 0;
  for (let u = 1; u <= U; u++) sy += lut[u];
  const mean = sy / U;
  let bestErr = Infinity;
  let best = { tau: U, kappa: mean, alpha: 0 };
  for (let tau = 1; tau <= U; tau++) {
    let sx = 0, sxx = 0, sxy = 0;
    for (let u = tau + 1; u <= U; u++) {
      const x = u - tau;
      sx += x;
      sxx += x * x;
      sxy += x * lut[u];
    }
    let kappa = mean;
    let alpha = 0;
    const det = U * sxx - sx * sx;
    if (det > 0) {
      const a = (U * sxy - sx * sy) / det;
      if (a > 0) {
        alpha = a;
        kappa = (sy - a * sx) / U;
      }
    }
    let err = 0;
    for (let u = 1; u <= U; u++) {
      const e = lut[u] - kappa - alpha * Math.max(0, u - tau);
      err += e * e;
    }
    if (err < bestErr) {
      bestErr = err;
      best = { tau, kappa, alpha };
    }
  }
  return best;
}

/**
 * The intended piecewise latency search of §2.3, fixed: per (MHA drops, FFN drops) configuration
 * the budget is recomputed from scratch, the score counts the kept base importance plus the extras,
 * extras start at k = 0, a zero slope makes extras free, dropped sub-layers offer no extras, at
 * least one MHA sub-layer is kept; if the raw-LUT latency overshoots B the working budget shrinks
 * by the overshoot and the search reruns (at most 5 times).
 */
function piecewiseSearch(
  headI: ArrayLike<number>,
  ffnI: ArrayLike<number>,
  dims: ModelDims,
  lut: LatencyTable,
  budget: number,
): { heads: Int32Array; neurons: Int32Array } {
  const { L, H, F } = dims;
  const fh = fitPiecewise(lut.mha);
  const ff = fitPiecewise(lut.ffn);
  const rh = Array.from({ length: L }, (_, l) => layerRanking(headI, l, H));
  const rf = Array.from({ length: L }, (_, l) => layerRanking(ffnI, l, F));
  // Sub-layer drop orders: lowest base importance first (layer index tie-break).
  const dropOrder = (base: number[]) =>
    Array.from({ length: L }, (_, l) => l).sort((x, y) => (base[x] - base[y]) || (x - y));
  const baseH = rh.map((r) => r.prefix[fh.tau]);
  const baseF = rf.map((r) => r.prefix[ff.tau]);
  const dropH = dropOrder(baseH);
  const dropF = dropOrder(baseF);
  // Extra units (beyond the base) of every layer, in global order (importance desc, flat index).
  const extras = (I: ArrayLike<number>, u: number, tau: number, r: typeof rh) => {
    const list: { l: number; imp: number; flat: number }[] = [];
    for (let l = 0; l < L; l++) {
      for (let i = tau; i < u; i++) {
        const unit = r[l].order[i];
        list.push({ l, imp: I[l * u + unit], flat: l * u + unit });
      }
    }
    list.sort((x, y) => (y.imp - x.imp) || (x.flat - y.flat));
    return list;
  };
  const extraH = extras(headI, H, fh.tau, rh);
  const extraF = extras(ffnI, F, ff.tau, rf);
  let work = budget;
  for (let attempt = 0; attempt <= 5; attempt++) {
    const res = piecewiseOnce(work);
    if (!res) throw tooSmall(budget, "fits no configuration of the piecewise model");
    let raw = 0;
    for (let l = 0; l < L; l++) raw += lut.mha[res.heads[l]] + lut.ffn[res.neurons[l]];
    if (raw <= budget * (1 + BUDGET_RTOL)) return res;
    work -= raw - budget;
  }
  throw tooSmall(budget, `is not met by the piecewise search after 5 reruns (use method "dp")`);

  function piecewiseOnce(B: number): { heads: Int32Array; neurons: Int32Array } | null {
    let best = -Infinity;
    let bestRes: { heads: Int32Array; neurons: Int32Array } | null = null;
    // Extra neurons of the kept FFN sub-layers and their prefix sums, per FFN drop count.
    const ffnExtras = Array.from({ length: L + 1 }, (_, df) => {
      const keptF = new Uint8Array(L).fill(1);
      for (let i = 0; i < df; i++) keptF[dropF[i]] = 0;
      const ef = extraF.filter((e) => keptF[e.l]);
      const pf = new Float64Array(ef.length + 1);
      for (let i = 0; i < ef.length; i++) pf[i + 1] = pf[i] + ef[i].imp;
      return { keptF, ef, pf };
    });
    for (let dh = 0; dh < L; dh++) {
      const keptH = new Uint8Array(L).fill(1);
      for (let i = 0; i < dh; i++) keptH[dropH[i]] = 0;
      const eh = extraH.filter((e) => keptH[e.l]);
      const ph = new Float64Array(eh.length + 1);
      for (let i = 0; i < eh.length; i++) ph[i + 1] = ph[i] + eh[i].imp;
      for (let df = 0; df <= L; df++) {
        const { keptF, ef, pf } = ffnExtras[df];
        let rem = B;
        let baseScore = 0;
        for (let l = 0; l < L; l++) {
          if (keptH[l]) {
            rem -= fh.kappa;
            baseScore += baseH[l];
          }
          if (keptF[l]) {
            rem -= ff.kappa;
            baseScore += baseF[l];
          }
        }
        if (rem < 0) continue;
        const kMax = fh.alpha > 0 ? Math.min(eh.length, Math.floor(rem / fh.alpha)) : eh.length;
        let bestK = -1, bestN = 0, cfgBest = -Infinity;
        for (let k = 0; k <= kMax; k++) {
          const left = rem - k * fh.alpha;
          const n = ff.alpha > 0
            ? Math.max(0, Math.min(ef.length, Math.floor(left / ff.alpha)))
            : ef.length;
          const sc = ph[k] + pf[n];
          if (sc > cfgBest) {
            cfgBest = sc;
            bestK = k;
            bestN = n;
          }
        }
        const total = baseScore + cfgBest;
        if (bestK >= 0 && total > best) {
          best = total;
          const heads = new Int32Array(L);
          const neurons = new Int32Array(L);
          for (let l = 0; l < L; l++) {
            heads[l] = keptH[l] ? fh.tau : 0;
            neurons[l] = keptF[l] ? ff.tau : 0;
          }
          for (let i = 0; i < bestK; i++) heads[eh[i].l]++;
          for (let i = 0; i < bestN; i++) neurons[ef[i].l]++;
          bestRes = { heads, neurons };
        }
      }
    }
    return bestRes;
  }
}
