/**
 * Tests of lib/prune/rearrange.ts against a naive transcription of METHOD.md §5 (Q recomputed from
 * scratch for every candidate) and against exhaustive subset enumeration.
 */
import { assert, assertClose, assertEquals, assertRejects } from "./helpers.ts";
import { exactHeadRearrange, rearrangeLayer } from "../lib/prune/rearrange.ts";
import { InvalidArgumentError, ShapeError } from "../lib/errors.ts";

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

/** Gram matrix M = Σ_x g(x)g(x)ᵀ of per-example gradient rows (|D| × u). */
function gram(r: () => number, nD: number, u: number, ints: boolean): Float64Array {
  const g = Float64Array.from(
    { length: nD * u },
    () => ints ? Math.floor(r() * 7) - 3 : (r() - 0.5) * (r() < 0.2 ? 5 : 1),
  );
  const M = new Float64Array(u * u);
  for (let x = 0; x < nD; x++) {
    for (let i = 0; i < u; i++) {
      for (let j = 0; j < u; j++) M[i * u + j] += g[x * u + i] * g[x * u + j];
    }
  }
  return M;
}

/** Q(S) = Σ_x (Σ_{i∈S} g_i(x))² = Σ_{a,b∈S} M_ab, from scratch. */
function Q(M: Float64Array, u: number, S: number[]): number {
  let q = 0;
  for (const a of S) for (const b of S) q += M[a * u + b];
  return q;
}

/** Direct transcription of the greedy definition in METHOD.md §5 (one pass). */
function naiveGreedy(M: Float64Array, u: number, mask: ArrayLike<number>): Float64Array {
  const I = (i: number) => M[i * u + i];
  const asc = (a: number, b: number) => (I(a) - I(b)) || (a - b);
  const S: number[] = [];
  const rest: number[] = [];
  for (let i = 0; i < u; i++) (mask[i] === 0 ? S : rest).push(i);
  S.sort(asc);
  rest.sort(asc);
  for (const j of rest) {
    S.push(j);
    let bestPos = -1;
    let best = Infinity;
    for (let p = 0; p < S.length; p++) {
      const q = Q(M, u, S.filter((_, t) => t !== p));
      if (q < best) {
        best = q;
        bestPos = p;
      }
    }
    S.splice(bestPos, 1);
  }
  const out = new Float64Array(u).fill(1);
  for (const i of S) out[i] = 0;
  return out;
}

function randomMask(r: () => number, u: number): Float64Array {
  return Float64Array.from({ length: u }, () => (r() < 0.5 ? 0 : 1));
}
const zeros = (m: ArrayLike<number>) => Array.from(m).filter((v) => v === 0).length;
const prunedSet = (m: ArrayLike<number>) => Array.from(m).flatMap((v, i) => (v === 0 ? [i] : []));

Deno.test("rearrangeLayer equals the naive greedy transcription; Q never increases", () => {
  const r = rng(11);
  let improved = 0;
  for (let trial = 0; trial < 300; trial++) {
    const u = 2 + Math.floor(r() * 14);
    const ints = trial % 3 === 0; // small integers: exact arithmetic, many ties
    const M = gram(r, 1 + Math.floor(r() * 12), u, ints);
    const mask = randomMask(r, u);
    const res = rearrangeLayer(M, u, mask);
    assertEquals(Array.from(res.mask), Array.from(naiveGreedy(M, u, mask)), `trial ${trial}`);
    assertEquals(zeros(res.mask), zeros(mask));
    const before = Q(M, u, prunedSet(mask));
    const after = Q(M, u, prunedSet(res.mask));
    assertClose([res.before, res.after], [before, after], 1e-9 * (1 + Math.abs(before)));
    assert(after <= before + 1e-9 * (1 + Math.abs(before)), `trial ${trial}: Q increased`);
    if (after < before - 1e-9) improved++;
  }
  assert(improved > 30, `greedy improved only ${improved} masks`);
});

Deno.test("rearrangeLayer passes: Infinity reaches a fixed point no worse than one pass", () => {
  const r = rng(12);
  for (let trial = 0; trial < 100; trial++) {
    const u = 3 + Math.floor(r() * 12);
    const M = gram(r, 2 + Math.floor(r() * 6), u, false);
    const mask = randomMask(r, u);
    const one = rearrangeLayer(M, u, mask);
    const two = rearrangeLayer(M, u, mask, { passes: 2 });
    assertEquals(Array.from(two.mask), Array.from(naiveGreedy(M, u, one.mask)), "pass 2");
    const conv = rearrangeLayer(M, u, mask, { passes: Infinity });
    assert(conv.after <= one.after + 1e-12 * (1 + Math.abs(one.after)));
    assertEquals(Array.from(naiveGreedy(M, u, conv.mask)), Array.from(conv.mask), "fixed point");
    assertEquals(zeros(conv.mask), zeros(mask));
  }
});

Deno.test("rearrangeLayer leaves all-kept / all-pruned masks unchanged; validates input", async () => {
  const M = gram(rng(13), 4, 5, false);
  for (const m of [[1, 1, 1, 1, 1], [0, 0, 0, 0, 0]]) {
    const res = rearrangeLayer(M, 5, Float64Array.from(m));
    assertEquals(Array.from(res.mask), m);
    assertEquals(res.before, res.after);
  }
  await assertRejects(() => rearrangeLayer(M, 5, new Float64Array(4)), ShapeError);
  await assertRejects(() => rearrangeLayer(M, 4, new Float64Array(4)), ShapeError);
  await assertRejects(
    () => rearrangeLayer(M, 5, Float64Array.of(1, 0.5, 1, 0, 1)),
    InvalidArgumentError,
  );
});

Deno.test("rearrangeLayer: hand example where swapping lowers the loss estimate", () => {
  // Units 0 and 1 have the smallest Fisher (1 each) but always move together (g0 = g1), so
  // pruning both costs Q = 4; unit 2 (I = 1.5) is anti-correlated with unit 0: Q({0,2}) = Q({1,2}) = 0.5.
  // g rows over 2 examples: g0 = (1, 0), g1 = (1, 0), g2 = (−1, 0.7071…).
  const g = [[1, 0], [1, 0], [-1, Math.SQRT1_2]];
  const M = new Float64Array(9);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) M[i * 3 + j] = g[i][0] * g[j][0] + g[i][1] * g[j][1];
  }
  const res = rearrangeLayer(M, 3, Float64Array.of(0, 0, 1));
  assertClose([res.before], [4], 1e-12);
  // S = [0, 1] (I ascending, index tie-break); append 2: Q(S∖{0}) = Q(S∖{1}) = 0.5 < Q(S∖{2}) = 4,
  // and the first minimiser in list order (unit 0) leaves: S = {1, 2}.
  assertEquals(Array.from(res.mask), [1, 0, 0]);
  assertClose([res.after], [0.5], 1e-12);
});

Deno.test("exactHeadRearrange finds the minimum over all subsets (bitmask enumeration)", () => {
  const r = rng(14);
  for (let trial = 0; trial < 60; trial++) {
    const u = 1 + Math.floor(r() * 10);
    const k = Math.floor(r() * (u + 1));
    const M = gram(r, 1 + Math.floor(r() * 6), u, trial % 2 === 0);
    let best = Infinity;
    for (let s = 0; s < 1 << u; s++) {
      const S = [];
      for (let i = 0; i < u; i++) if (s & (1 << i)) S.push(i);
      if (S.length === k) best = Math.min(best, Q(M, u, S));
    }
    const ex = exactHeadRearrange(M, u, k);
    assertEquals(zeros(ex.mask), k);
    assertClose([ex.q, Q(M, u, prunedSet(ex.mask))], [best, best], 1e-9 * (1 + Math.abs(best)));
    if (k > 0 && k < u) {
      const mask = new Float64Array(u).fill(1);
      for (let i = 0; i < k; i++) mask[i] = 0;
      assert(rearrangeLayer(M, u, mask).after >= best - 1e-9 * (1 + Math.abs(best)));
    }
  }
});
