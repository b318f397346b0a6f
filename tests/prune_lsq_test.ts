/**
 * Tests of lib/prune/lsq.ts (solveMaskLs) against numpy float64 references (tests/fixtures/
 * gen_prune.py: lstsq on the stacked system [G; λI]δ = [r; 0], intercept eliminated by centring the
 * raw data) and against synthetic problems with known mask values.
 */
import { assert, assertClose, loadFixture } from "./helpers.ts";
import { solveMaskLs } from "../lib/prune/lsq.ts";

interface Case {
  name: string;
  n: number;
  lambda: number;
  G?: number[];
  q?: number[];
  rr: number;
  intercept?: { gBeta: number[]; gBetaBeta: number; qBeta: number };
  x: number[];
  beta: number;
  e1: number;
  ev: number;
  rows?: number;
}

const fixture = await loadFixture<{ cases: Case[] }>("prune_lsq.json");
const byName = (name: string) => fixture.cases.find((c) => c.name === name)!;

function solveCase(c: Case, method: "dense" | "lsmr" | "auto") {
  return solveMaskLs(Float64Array.from(c.G!), Float64Array.from(c.q!), c.rr, {
    lambda: c.lambda,
    method,
    intercept: c.intercept && {
      gBeta: Float64Array.from(c.intercept.gBeta),
      gBetaBeta: c.intercept.gBetaBeta,
      qBeta: c.intercept.qBeta,
    },
  });
}

for (const name of ["ffn_small", "ffn_weak", "ffn_scaled", "mha_intercept", "singular"]) {
  for (const method of ["dense", "lsmr"] as const) {
    Deno.test(`solveMaskLs ${method} matches numpy dense f64 (${name})`, () => {
      const c = byName(name);
      const res = solveCase(c, method);
      assert(res.accepted, `${name}: rejected: ${res.reason}`);
      assertClose(res.x, c.x, 1e-6, 1e-6, `${name} x`);
      assertClose([res.beta], [c.beta], 1e-6, 1e-6, `${name} beta`);
      const scale = Math.max(1, Math.abs(c.e1));
      assertClose([res.e1, res.ev], [c.e1, c.ev], 1e-9 * scale, 0, `${name} energies`);
      assert(res.ev < res.e1);
      assert(res.method === method);
    });
  }
}

Deno.test("solveMaskLs k = 1 uses the closed form δ = G·r/(G² + λ²)", () => {
  for (const name of ["k1", "k1_intercept"]) {
    const c = byName(name);
    const res = solveCase(c, "auto");
    assert(res.method === "closed");
    assert(res.accepted, `${name}: ${res.reason}`);
    assertClose(res.x, c.x, 1e-9, 1e-9, `${name} x`);
    assertClose([res.beta], [c.beta], 1e-9, 1e-9, `${name} beta`);
  }
  // Hand-computed: G = 4, q = 6, λ = 1: r = 6 − 4 = 2, δ = 8/17.
  const res = solveMaskLs(Float64Array.of(4), Float64Array.of(6), 10);
  assertClose(res.x, [1 + 8 / 17], 1e-15, 0, "hand k1");
});

/** C[t,i] = sin(0.37t + 1.1i + 0.013ti) + 0.2cos(0.05ti), as in gen_prune.py. */
function formulaSystem(rows: number, n: number) {
  const C = new Float64Array(rows * n);
  for (let t = 0; t < rows; t++) {
    for (let i = 0; i < n; i++) {
      C[t * n + i] = Math.sin(0.37 * t + 1.1 * i + 0.013 * t * i) + 0.2 * Math.cos(0.05 * t * i);
    }
  }
  const R = new Float64Array(rows);
  for (let t = 0; t < rows; t++) {
    let s = 0.1 * Math.cos(t);
    for (let i = 0; i < n; i++) s += C[t * n + i] * (1 + 0.3 * Math.sin(i));
    R[t] = s;
  }
  return normalEquations(C, R, rows, n);
}

function normalEquations(C: Float64Array, R: Float64Array, rows: number, n: number) {
  const G = new Float64Array(n * n);
  const q = new Float64Array(n);
  let rr = 0;
  for (let t = 0; t < rows; t++) {
    const off = t * n;
    rr += R[t] * R[t];
    for (let i = 0; i < n; i++) {
      const ci = C[off + i];
      q[i] += ci * R[t];
      for (let j = 0; j < n; j++) G[i * n + j] += ci * C[off + j];
    }
  }
  return { G, q, rr };
}

Deno.test("solveMaskLs on 300 unknowns: LSMR (auto) and dense both match numpy to 1e-6", () => {
  const c = byName("formula300");
  const { G, q, rr } = formulaSystem(c.rows!, c.n);
  const auto = solveMaskLs(G, q, rr, { lambda: c.lambda });
  assert(auto.method === "lsmr");
  assert(auto.accepted, `rejected: ${auto.reason}`);
  assertClose(auto.x, c.x, 1e-6, 1e-6, "lsmr x");
  assert(auto.iterations! > 0 && auto.iterations! < 5 * c.n);
  const dense = solveMaskLs(G, q, rr, { lambda: c.lambda, method: "dense" });
  assertClose(dense.x, c.x, 1e-6, 1e-6, "dense x");
  assertClose([auto.ev], [c.ev], 1e-8 * c.e1, 0, "ev");
  // plain LSMR (CuPy's algorithm, no column scaling) reaches the same solution
  const plain = solveMaskLs(G, q, rr, { lambda: c.lambda, precondition: false });
  assertClose(plain.x, c.x, 1e-6, 1e-6, "plain lsmr x");
});

Deno.test("solveMaskLs LSMR with unit-norm columns: same minimiser as dense QR, far fewer iterations", () => {
  // an FFN-like system: unit j's column at token t is Z_tj·w_j, with the neurons' activation scales
  // spread over ±half a decade as in a real FFN, and the target a noisy mix with values near 1
  const n = 300, d = 32, T = 200;
  const { normal } = rng(7);
  const scale = Float64Array.from({ length: n }, (_, i) => 10 ** (0.5 * Math.sin(0.7 * i)));
  const W = Float64Array.from({ length: n * d }, () => normal());
  const xStar = Float64Array.from({ length: n }, (_, i) => 1 + 0.3 * Math.sin(i));
  const C = new Float64Array(T * d * n), R = new Float64Array(T * d);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < n; j++) {
      const z0 = normal() + 0.3;
      const z = (z0 > 0 ? z0 : 0.05 * z0) * scale[j];
      for (let k = 0; k < d; k++) C[(t * d + k) * n + j] = z * W[j * d + k];
    }
    for (let k = 0; k < d; k++) {
      let v = 0.5 * normal();
      for (let j = 0; j < n; j++) v += xStar[j] * C[(t * d + k) * n + j];
      R[t * d + k] = v;
    }
  }
  const { G, q, rr } = normalEquations(C, R, T * d, n);
  const dense = solveMaskLs(G, q, rr, { method: "dense" });
  const pre = solveMaskLs(G, q, rr, { method: "lsmr" });
  const plain = solveMaskLs(G, q, rr, { method: "lsmr", precondition: false });
  assert(dense.accepted && pre.accepted, `${dense.reason} ${pre.reason}`);
  assertClose(pre.x, dense.x, 1e-6, 1e-6, "preconditioned lsmr vs dense QR");
  assert(
    pre.iterations! * 2 < plain.iterations!,
    `column scaling should cut LSMR's iterations: ${pre.iterations} vs ${plain.iterations}`,
  );
});

/** Small deterministic PRNG (mulberry32) and a normal sampler. */
function rng(seed: number) {
  let a = seed >>> 0;
  const uni = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - uni())) * Math.cos(2 * Math.PI * uni());
  return { uni, normal };
}

Deno.test("solveMaskLs recovers known scales (noise-free, with and without intercept)", () => {
  const r = rng(7);
  for (const withIntercept of [false, true]) {
    for (const [rows, colScale, tol] of [[400, 1, 2e-2], [4000, 10, 1e-4]] as const) {
      const n = 6;
      const C = new Float64Array(rows * n);
      for (let i = 0; i < C.length; i++) C[i] = colScale * r.normal();
      const xStar = [0.4, 1.8, 1.0, -0.3, 2.5, 0.9];
      const betaStar = withIntercept ? 0.75 : 0;
      const R = new Float64Array(rows);
      for (let t = 0; t < rows; t++) {
        let s = betaStar;
        for (let i = 0; i < n; i++) s += xStar[i] * C[t * n + i];
        R[t] = s;
      }
      const { G, q, rr } = normalEquations(C, R, rows, n);
      const gBeta = new Float64Array(n);
      let qBeta = 0;
      for (let t = 0; t < rows; t++) {
        qBeta += R[t];
        for (let i = 0; i < n; i++) gBeta[i] += C[t * n + i];
      }
      const res = solveMaskLs(G, q, rr, {
        intercept: withIntercept ? { gBeta, gBetaBeta: rows, qBeta } : undefined,
      });
      assert(res.accepted, `rejected: ${res.reason}`);
      // λ = 1 against G ~ rows·scale²: the damping bias is ≈ λ²/σ_min(G)² relative.
      assertClose(res.x, xStar, tol, 0, `x rows=${rows} intercept=${withIntercept}`);
      if (withIntercept) assertClose([res.beta], [betaStar], 10 * tol, 0, "beta");
      assert(res.ev < res.e1 && res.ev <= 1e-6 * res.e1 + 1e-9, `ev ${res.ev} e1 ${res.e1}`);
      // Tiny damping: exact recovery.
      const exact = solveMaskLs(G, q, rr, {
        lambda: 1e-8,
        intercept: withIntercept ? { gBeta, gBetaBeta: rows, qBeta } : undefined,
      });
      assertClose(exact.x, xStar, 1e-8, 0, "x with tiny λ");
    }
  }
});

Deno.test("solveMaskLs rejects |x| > 10, non-finite input and no improvement", () => {
  // Solution far from 1: G = I·1e6, q = 20·1e6 → x ≈ 20.
  const big = solveMaskLs(Float64Array.of(1e6, 0, 0, 1e6), Float64Array.of(2e7, 1e6), 1);
  assert(!big.accepted && big.reason!.includes("|x| > 10"), String(big.reason));
  assertClose(big.x, [20, 1], 1e-5, 0, "x still reported");
  assert(big.max > 10 && big.min > 0.99);
  const ok = solveMaskLs(Float64Array.of(1e6, 0, 0, 1e6), Float64Array.of(2e7, 1e6), 1, {
    maxAbs: 100,
  });
  assert(ok.accepted);
  const nan = solveMaskLs(Float64Array.of(1, NaN, NaN, 1), Float64Array.of(1, 1), 1);
  assert(!nan.accepted && nan.reason === "non-finite input");
  const nanQ = solveMaskLs(Float64Array.of(1, 0, 0, 1), Float64Array.of(Infinity, 1), 1);
  assert(!nanQ.accepted && nanQ.reason === "non-finite input");
  // Already optimal at x = 1 (q = G·1): δ = 0, E(v) = E(1) → rejected as no improvement.
  const same = solveMaskLs(Float64Array.of(2, 1, 1, 2), Float64Array.of(3, 3), 10);
  assert(!same.accepted && same.reason!.includes("not below"), String(same.reason));
  assertClose(same.x, [1, 1], 0, 0, "x = 1");
});

Deno.test("solveMaskLs singular G: damping keeps it finite; undamped is rejected", () => {
  // G of two identical units plus a dead unit (zero row): rank 1.
  const G = Float64Array.of(4, 4, 0, 4, 4, 0, 0, 0, 0);
  const q = Float64Array.of(10, 10, 0);
  for (const method of ["dense", "lsmr"] as const) {
    const res = solveMaskLs(G, q, 30, { method });
    assert(res.accepted, `${method}: ${res.reason}`);
    // Published closed form in G's eigenbasis: only direction (1,1,0)/√2 with eigenvalue 8;
    // r = q − G·1 = (2, 2, 0): δ = v·8·(v·r)/(64 + 1) = (16/65)(1, 1, 0); dead unit keeps δ = 0.
    assertClose(res.x, [1 + 16 / 65, 1 + 16 / 65, 1], 1e-9, 0, `${method} x`);
  }
  // Undamped: dense QR meets a zero pivot and rejects; LSMR returns the minimum-norm solution
  // pinv(G)·r = v·(v·r)/8 = (1/4)(1, 1, 0).
  const dense0 = solveMaskLs(G, q, 30, { method: "dense", lambda: 0 });
  assert(!dense0.accepted, "dense undamped singular accepted");
  const lsmr0 = solveMaskLs(G, q, 30, { method: "lsmr", lambda: 0 });
  assertClose(lsmr0.x, [1.25, 1.25, 1], 1e-9, 0, "lsmr min-norm x");
});
