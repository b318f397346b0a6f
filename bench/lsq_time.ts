/**
 * `deno run -A bench/lsq_time.ts [n…]`: times the host least-squares solve of mask tuning
 * (`solveMaskLs`, LSMR with unit-norm columns and plain) on synthetic FFN-like systems G = (WᵀW)∘(ZᵀZ) (W: 64 × n weights of std 0.02, Z:
 * leaky-ReLU activations of 256 tokens), q = G·x* for a known x* around 1. Prints per n the
 * solver, LSMR's iterations, whether the solution was accepted, its largest error against x* (the
 * λ = 1 damping biases it on these weakly scaled systems) and the seconds. Default n: 384 768 1536
 * 3072 (BERT-base FFN widths of a pruned layer).
 * @module
 */
import { solveMaskLs } from "../lib/prune/lsq.ts";
import { Rng } from "../lib/model/random.ts";

const sizes = Deno.args.length ? Deno.args.map(Number) : [384, 768, 1536, 3072];
for (const n of sizes) {
  const d = 64, T = 256;
  const rng = new Rng(n);
  const W = Float64Array.from({ length: d * n }, () => 0.02 * rng.normal());
  const Z = Float64Array.from({ length: T * n }, () => {
    const x = rng.normal();
    return x > 0 ? x : 0.05 * x;
  });
  const G = new Float64Array(n * n);
  const col = new Float64Array(T);
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < T; t++) col[t] = Z[t * n + i];
    for (let j = i; j < n; j++) {
      let a = 0, b = 0;
      for (let k = 0; k < d; k++) a += W[k * n + i] * W[k * n + j];
      for (let t = 0; t < T; t++) b += col[t] * Z[t * n + j];
      G[i * n + j] = G[j * n + i] = a * b;
    }
  }
  const xStar = Float64Array.from({ length: n }, (_, i) => 1 + 0.1 * ((i % 5) - 2));
  const q = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += G[i * n + j] * xStar[j];
    q[i] = s;
  }
  // rr = Σ‖R‖² ≥ x*ᵀGx* (the target's norm; exact fit here)
  let rr = 0;
  for (let i = 0; i < n; i++) rr += q[i] * xStar[i];
  for (const precondition of [true, false]) {
    const t0 = performance.now();
    const r = solveMaskLs(G, q, rr, { precondition });
    const s = (performance.now() - t0) / 1000;
    let err = 0;
    for (let i = 0; i < n; i++) err = Math.max(err, Math.abs(r.x[i] - xStar[i]));
    console.log(
      `n ${n} ${precondition ? "unit-norm columns" : "plain"}: ${r.method}${
        r.iterations === undefined ? "" : ` ${r.iterations} iterations`
      }, ${r.accepted ? "accepted" : `rejected (${r.reason})`}, max |x − x*| ${
        err.toExponential(2)
      }, ${s.toFixed(2)} s`,
    );
  }
}
