/**
 * Tests of the mask searches (lib/prune/search_flops.ts, lib/prune/search_latency.ts) against
 * brute-force optima written here from the problem definitions of METHOD.md §4: enumeration of all
 * (k, n) pairs, of all unit subsets on tiny problems, and of all per-layer (h_l, n_l) combinations.
 */
import { assert, assertClose, assertEquals, assertRejects } from "./helpers.ts";
import { searchFlops } from "../lib/prune/search_flops.ts";
import { fitPiecewise, type LatencyTable, searchLatency } from "../lib/prune/search_latency.ts";
import { macPerHead, macPerNeuron } from "../lib/prune/flops.ts";
import { ConstraintTooSmallError, type ModelDims } from "../lib/prune/types.ts";

/** mulberry32 PRNG. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const randInt = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
/** Random importances; `ints` gives small integers (many ties). */
function importances(r: () => number, n: number, ints: boolean): Float64Array {
  return Float64Array.from({ length: n }, () => ints ? randInt(r, 0, 3) : r() * r());
}
const sum = (a: ArrayLike<number>) => Array.from(a).reduce((x, y) => x + y, 0);
/** Sum of the top-k values (plain sort, descending). */
const topSum = (v: ArrayLike<number>, k: number) =>
  Array.from(v).sort((x, y) => y - x).slice(0, k).reduce((x, y) => x + y, 0);
const keptScore = (mask: ArrayLike<number>, I: ArrayLike<number>) =>
  Array.from(mask).reduce((acc, m, i) => acc + m * I[i], 0);
const TOL = 1e-9; // f64 rounding of the budget comparison, in units of one neuron

function randomDims(r: () => number, maxLH: number, maxLF: number): ModelDims {
  while (true) {
    const L = randInt(r, 1, 3);
    const H = randInt(r, 1, 4);
    const F = randInt(r, 1, 6);
    if (L * H <= maxLH && L * F <= maxLF) {
      return { L, H, F, d: randInt(r, 2, 16), dh: randInt(r, 1, 8) };
    }
  }
}

Deno.test("searchFlops equals the brute-force optimum over all (k, n) pairs", () => {
  const r = rng(1);
  for (let trial = 0; trial < 400; trial++) {
    const dims = randomDims(r, 12, 18);
    const { L, H, F, d, dh } = dims;
    const ints = trial % 2 === 0;
    const hI = importances(r, L * H, ints);
    const fI = importances(r, L * F, ints);
    const s = 1 + r() * 60;
    const a = macPerHead(s, d, dh);
    const b = macPerNeuron(s, d);
    const C0 = L * (H * a + F * b);
    if (C0 * 0.999 < a) continue;
    const c = Math.max(a / C0 * 1.0001, r());
    const C = c * C0;
    let best = -Infinity;
    let bestK = -1;
    for (let k = 1; k <= L * H; k++) {
      for (let n = 0; n <= L * F; n++) {
        if (k * a + n * b > C + TOL * b) continue;
        const sc = topSum(hI, k) + topSum(fI, n);
        // first (smallest) k reaching the maximum; exact with integer importances.
        if (sc > best + (ints ? 0 : 1e-12)) {
          best = sc;
          bestK = k;
        }
      }
    }
    const res = searchFlops(hI, fI, dims, s, c);
    const k = sum(res.head);
    const n = sum(res.ffn);
    assertClose([res.score], [best], 1e-12 * (1 + best), 0, `trial ${trial} score`);
    assertClose([keptScore(res.head, hI) + keptScore(res.ffn, fI)], [best], 1e-12 * (1 + best));
    assert(res.macs <= C + TOL * b, `trial ${trial}: over budget ${res.macs} > ${C}`);
    assertClose([res.macs], [k * a + n * b], 1e-9 * res.macs, 0, "macs");
    assert(k >= 1);
    if (ints) assertEquals(k, bestK, `trial ${trial}: not the first maximum`);
  }
});

Deno.test("searchFlops equals the optimum over all unit subsets (L·H ≤ 8, L·F ≤ 10)", () => {
  const r = rng(2);
  for (let trial = 0; trial < 25; trial++) {
    const dims = randomDims(r, 8, 10);
    const { L, H, F, d, dh } = dims;
    const hI = importances(r, L * H, false);
    const fI = importances(r, L * F, false);
    const s = 1 + r() * 40;
    const a = macPerHead(s, d, dh);
    const b = macPerNeuron(s, d);
    const C0 = L * (H * a + F * b);
    const c = Math.max(a / C0 * 1.0001, r());
    let best = -Infinity;
    for (let hs = 1; hs < 1 << (L * H); hs++) {
      let hc = 0, hv = 0;
      for (let i = 0; i < L * H; i++) if (hs & (1 << i)) (hc++, hv += hI[i]);
      for (let fs = 0; fs < 1 << (L * F); fs++) {
        let fc = 0, fv = 0;
        for (let i = 0; i < L * F; i++) if (fs & (1 << i)) (fc++, fv += fI[i]);
        if (hc * a + fc * b <= c * C0 + TOL * b && hv + fv > best) best = hv + fv;
      }
    }
    const res = searchFlops(hI, fI, dims, s, c);
    assertClose([res.score], [best], 1e-12 * (1 + best), 0, `trial ${trial}`);
  }
});

Deno.test("searchFlops ties: first maximum k and lower flat index; c = 1 and too small c", async () => {
  const dims = { L: 2, H: 2, F: 3, d: 4, dh: 2 };
  const s = 2;
  // Only head 0 matters; every k ≥ 1 gives the same score → k* = 1 (the first maximum).
  const r1 = searchFlops(Float64Array.of(5, 0, 0, 0), new Float64Array(6), dims, s, 1);
  assertEquals(Array.from(r1.head), [1, 0, 0, 0]);
  assertEquals(Array.from(r1.ffn), [1, 1, 1, 1, 1, 1]); // n(1) fills the rest of the budget
  // Equal importances: the lower flat indices win.
  const a = macPerHead(s, 4, 2);
  const b = macPerNeuron(s, 4);
  const C0 = 2 * (2 * a + 3 * b);
  const r2 = searchFlops(
    Float64Array.of(1, 1, 1, 1),
    Float64Array.of(0, 0, 0, 0, 0, 0),
    dims,
    s,
    (a + 0.5 * b) / C0,
  );
  assertEquals(Array.from(r2.head), [1, 0, 0, 0]);
  // a = 5b here: k = 2, n = 2 scores 4.2 against k = 1, n = 6 at 2.6.
  const r3 = searchFlops(
    Float64Array.of(2, 2, 2, 2),
    Float64Array.of(0.1, 0.1, 0.1, 0.1, 0.1, 0.1),
    dims,
    s,
    (2 * a + 2 * b) / C0,
  );
  assertEquals(Array.from(r3.head), [1, 1, 0, 0]);
  assertEquals(Array.from(r3.ffn), [1, 1, 0, 0, 0, 0]);
  // c = 1 keeps everything (also for fractional s where f64 rounding could lose a unit).
  const big = { L: 12, H: 12, F: 3072, d: 768, dh: 64 };
  const r = rng(3);
  for (const sl of [39.05, 30.55, 50.97, 25.16, 31.47, 53.24, 64.59, 11.67, 170]) {
    const full = searchFlops(
      importances(r, 144, false),
      importances(r, 12 * 3072, false),
      big,
      sl,
      1,
    );
    assertEquals(sum(full.head), 144);
    assertEquals(sum(full.ffn), 12 * 3072);
  }
  await assertRejects(
    () => searchFlops(Float64Array.of(1, 1, 1, 1), new Float64Array(6), dims, s, 0.99 * a / C0),
    ConstraintTooSmallError,
  );
});

/** Random non-negative LUT of length u+1 (roughly increasing, like measured latencies). */
function randomLut(r: () => number, u: number): Float64Array {
  const t = new Float64Array(u + 1);
  t[0] = r() < 0.3 ? 0 : r();
  for (let i = 1; i <= u; i++) {
    t[i] = t[i - 1] + (r() < 0.2 ? 0 : r()) - (r() < 0.1 ? 0.3 * r() : 0);
  }
  return t.map((v) => Math.max(0, v));
}

/** Brute force over all per-layer (h_l, n_l): best worth with Σ cost ≤ cap (≥ 1 head). */
function bruteLatency(
  hI: Float64Array,
  fI: Float64Array,
  dims: ModelDims,
  luts: LatencyTable[],
  cost: (t: Float64Array, u: number) => number,
  cap: number,
) {
  const { L, H, F } = dims;
  const layerTop = (I: Float64Array, l: number, u: number, k: number) =>
    topSum(I.slice(l * u, l * u + u), k);
  let best = -Infinity;
  let bestCost = Infinity;
  const rec = (l: number, acc: number, c: number, heads: number) => {
    if (l === L) {
      if (heads < 1 || c > cap) return;
      if (acc > best + 1e-12 || (Math.abs(acc - best) <= 1e-12 && c < bestCost)) {
        best = acc;
        bestCost = c;
      }
      return;
    }
    for (let h = 0; h <= H; h++) {
      for (let n = 0; n <= F; n++) {
        rec(
          l + 1,
          acc + layerTop(hI, l, H, h) + layerTop(fI, l, F, n),
          c + cost(luts[l].mha, h) + cost(luts[l].ffn, n),
          heads + h,
        );
      }
    }
  };
  rec(0, 0, 0, 0);
  return { best, bestCost };
}

Deno.test("searchLatency dp equals brute force on quantised costs; feasible on the raw LUT", () => {
  const r = rng(4);
  let solved = 0;
  for (let trial = 0; trial < 150; trial++) {
    const L = randInt(r, 1, 3);
    const H = randInt(r, 1, 3);
    const F = randInt(r, 1, L === 3 ? 2 : 4);
    const dims = { L, H, F, d: 8, dh: 2 };
    const ints = trial % 2 === 0;
    const hI = importances(r, L * H, ints);
    const fI = importances(r, L * F, ints);
    const perLayer = trial % 3 === 0;
    const luts = Array.from(
      { length: L },
      (_, l) => perLayer || l === 0 ? { mha: randomLut(r, H), ffn: randomLut(r, F) } : null,
    );
    for (let l = 1; l < L; l++) luts[l] ??= luts[0];
    const tables = luts as LatencyTable[];
    const c = 0.05 + 0.95 * r();
    const bins = [8, 32, 4096][trial % 3];
    const full = sum(tables.map((t) => t.mha[H] + t.ffn[F]));
    const B = c * full;
    const width = B / bins;
    const q = (t: Float64Array, u: number) => Math.ceil(t[u] / width);
    const brute = bruteLatency(hI, fI, dims, tables, q, bins);
    const lutArg = perLayer ? tables : tables[0];
    if (brute.best === -Infinity) {
      let threw = false;
      try {
        searchLatency(hI, fI, dims, lutArg, c, { bins });
      } catch (e) {
        threw = e instanceof ConstraintTooSmallError;
      }
      assert(threw, `trial ${trial}: expected ConstraintTooSmallError`);
      continue;
    }
    solved++;
    const res = searchLatency(hI, fI, dims, lutArg, c, { bins });
    assertClose([res.score], [brute.best], 1e-12 * (1 + brute.best), 0, `trial ${trial} score`);
    assertClose([keptScore(res.head, hI) + keptScore(res.ffn, fI)], [brute.best], 1e-9);
    assert(res.predicted <= B * (1 + 1e-12), `trial ${trial}: raw ${res.predicted} > ${B}`);
    assertClose([res.full], [full], 1e-12 * full, 0, "full");
    assert(sum(res.head) >= 1);
    // Ties go to the lower quantised cost.
    let qc = 0;
    for (let l = 0; l < L; l++) {
      qc += q(tables[l].mha, sum(res.head.slice(l * H, l * H + H)));
      qc += q(tables[l].ffn, sum(res.ffn.slice(l * F, l * F + F)));
    }
    assertEquals(qc, brute.bestCost, `trial ${trial}: not the cheapest optimum`);
    // Masks are each layer's top units (same kept importance as the top-count sum).
    for (let l = 0; l < L; l++) {
      const hs = res.head.slice(l * H, l * H + H);
      assertClose([keptScore(hs, hI.slice(l * H, l * H + H))], [
        topSum(hI.slice(l * H, l * H + H), sum(hs)),
      ], 1e-12);
    }
  }
  assert(solved > 60, `only ${solved} solvable trials`);
});

Deno.test("searchLatency dp with lut[u] = u·unit MACs matches searchFlops up to quantisation", () => {
  const r = rng(5);
  for (let trial = 0; trial < 30; trial++) {
    const dims = { L: randInt(r, 1, 4), H: randInt(r, 1, 6), F: randInt(r, 4, 40), d: 16, dh: 4 };
    const { L, H, F, d, dh } = dims;
    const s = 1 + 30 * r();
    const a = macPerHead(s, d, dh);
    const b = macPerNeuron(s, d);
    const lut = {
      mha: Float64Array.from({ length: H + 1 }, (_, u) => u * a),
      ffn: Float64Array.from({ length: F + 1 }, (_, u) => u * b),
    };
    const hI = importances(r, L * H, false);
    const fI = importances(r, L * F, false);
    const bins = trial % 2 ? 4096 : 256;
    const c = Math.max(0.2, r());
    // Rounding each of the 2L groups up loses at most one bin: any mask within B − 2L·B/bins is
    // DP-feasible, so searchFlops at c·(1 − 2L/bins) bounds the DP from below.
    let lo;
    try {
      lo = searchFlops(hI, fI, dims, s, c * (1 - 2 * L / bins));
    } catch (e) {
      assert(e instanceof ConstraintTooSmallError);
      continue;
    }
    const dp = searchLatency(hI, fI, dims, lut, c, { bins });
    const hi = searchFlops(hI, fI, dims, s, c);
    assert(dp.score <= hi.score + 1e-12, `trial ${trial}: dp ${dp.score} > flops ${hi.score}`);
    assert(dp.score >= lo.score - 1e-12, `trial ${trial}: dp ${dp.score} < ${lo.score}`);
    assert(dp.predicted <= c * L * (H * a + F * b) * (1 + 1e-12));
  }
});

Deno.test("fitPiecewise recovers (τ, κ, α); fits large-valued LUTs; clamps α at 0", () => {
  for (const [tau, kappa, alpha, U] of [[3, 2.5, 0.4, 12], [1, 7, 1, 5], [64, 1e6, 3e4, 200]]) {
    const lut = Float64Array.from(
      { length: U + 1 },
      (_, u) => u === 0 ? 0 : kappa + alpha * Math.max(0, u - tau),
    );
    const fit = fitPiecewise(lut);
    assertEquals(fit.tau, tau);
    assertClose([fit.kappa, fit.alpha], [kappa, alpha], 1e-9 * kappa, 0, "fit");
  }
  // Decreasing table: the best non-negative slope is 0 and κ is the mean of u ≥ 1.
  const fit = fitPiecewise(Float64Array.of(0, 5, 4, 3, 2));
  assertEquals(fit.alpha, 0);
  assertClose([fit.kappa], [3.5], 1e-12);
});

Deno.test("searchLatency piecewise: feasible on the raw LUT, never above the raw optimum", () => {
  const r = rng(6);
  let solved = 0;
  for (let trial = 0; trial < 120; trial++) {
    const L = randInt(r, 1, 3);
    const H = randInt(r, 1, 3);
    const F = randInt(r, 1, L === 3 ? 2 : 4);
    const dims = { L, H, F, d: 8, dh: 2 };
    const hI = importances(r, L * H, false);
    const fI = importances(r, L * F, false);
    const lut = { mha: randomLut(r, H), ffn: randomLut(r, F) };
    const c = 0.1 + 0.9 * r();
    const full = L * (lut.mha[H] + lut.ffn[F]);
    const raw = bruteLatency(hI, fI, dims, Array(L).fill(lut), (t, u) => t[u], c * full);
    let res;
    try {
      res = searchLatency(hI, fI, dims, lut, c, { method: "piecewise" });
    } catch (e) {
      assert(e instanceof ConstraintTooSmallError, String(e));
      continue;
    }
    solved++;
    assert(res.predicted <= c * full * (1 + 1e-12), `trial ${trial}: over budget`);
    assert(res.score <= raw.best + 1e-12, `trial ${trial}: above the optimum`);
    assert(sum(res.head) >= 1);
    assertClose([keptScore(res.head, hI) + keptScore(res.ffn, fI)], [res.score], 1e-12);
  }
  assert(solved > 60, `only ${solved} trials solved`);
});

Deno.test("searchLatency piecewise on a linear LUT (BERT-like shape) keeps the budget", () => {
  const r = rng(7);
  const dims = { L: 4, H: 12, F: 256, d: 64, dh: 16 };
  // κ-plus-slope tables with a fixed per-sub-layer overhead, like a measured GPU LUT.
  const lut = {
    mha: Float64Array.from({ length: 13 }, (_, h) => 1e-4 + (h ? 2e-4 + 3e-5 * h : 0)),
    ffn: Float64Array.from({ length: 257 }, (_, n) => 1e-4 + (n ? 1e-4 + 2e-6 * n : 0)),
  };
  const hI = importances(r, 48, false);
  const fI = importances(r, 1024, false);
  for (const c of [0.3, 0.5, 0.7, 0.9, 1]) {
    const pw = searchLatency(hI, fI, dims, lut, c, { method: "piecewise" });
    const dp = searchLatency(hI, fI, dims, lut, c);
    assert(pw.predicted <= pw.budget * (1 + 1e-12) && dp.predicted <= dp.budget * (1 + 1e-12));
    // A piecewise mask within B·(1 − 2L/4096) is feasible for the quantised DP.
    const pwLo = searchLatency(hI, fI, dims, lut, c * (1 - 8 / 4096), { method: "piecewise" });
    assert(pwLo.score <= dp.score + 1e-12, `c=${c}: piecewise beats the DP`);
  }
  const fullRes = searchLatency(hI, fI, dims, lut, 1);
  assertEquals(sum(fullRes.head) + sum(fullRes.ffn), 48 + 1024);
});

Deno.test("searchLatency rejects budgets without a head and malformed tables", async () => {
  const dims = { L: 2, H: 2, F: 2, d: 4, dh: 2 };
  const lut = { mha: Float64Array.of(1, 1.1, 1.2), ffn: Float64Array.of(1, 1.1, 1.2) };
  // Even the empty model costs 4 of the full 4.8 → c = 0.5 fits nothing.
  await assertRejects(
    () => searchLatency(new Float64Array(4), new Float64Array(4), dims, lut, 0.5),
    ConstraintTooSmallError,
  );
  await assertRejects(
    () =>
      searchLatency(new Float64Array(4), new Float64Array(4), dims, lut, 0.5, {
        method: "piecewise",
      }),
    ConstraintTooSmallError,
  );
  await assertRejects(
    () =>
      searchLatency(new Float64Array(4), new Float64Array(4), dims, {
        mha: Float64Array.of(1, 2),
        ffn: lut.ffn,
      }, 0.9),
    Error,
    "H+1",
  );
});
