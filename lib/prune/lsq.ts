/**
 * Mask tuning solve (METHOD.md §6.3–6.4): given the f64 normal equations of one sub-layer's
 * least-squares reconstruction problem, find real mask values x = 1 + δ with the damped system
 * (G² + λ²I)δ = G·r, r = q − G·1, and decide whether to accept them.
 *
 * Solvers: k = 1 closed form δ = G·r/(G² + λ²); "dense" (default up to 256 unknowns) = Householder
 * QR of the stacked matrix [G; λI] (f64, never forming G², so the conditioning is cond([G; λI]) not
 * its square); "lsmr" (default above 256) = our LSMR (Fong & Saunders 2011) on the same stacked
 * problem, the algorithm the official code's CuPy call uses, with its columns scaled to unit norm
 * (Jacobi preconditioning, δ = D·y) when λ > 0: the minimiser is unique then, so the scaling
 * changes only the iteration count — on BERT-base FFN systems (n ≈ 1300, from transformers-style
 * random weights) about 200 iterations instead of 1100–1300, the solutions 1e-7 apart
 * (bench/README.md). With λ = 0 it runs unscaled and returns the minimum-norm solution.
 * @module
 */
import { InvalidArgumentError, ShapeError } from "../errors.ts";

/**
 * The extra constant column of the MHA problem (unknown β, the intercept): `gBeta[i]` = Σ column_i·1,
 * `gBetaBeta` = Σ 1·1 (tokens·d), `qBeta` = Σ 1·R.
 */
export interface LsIntercept {
  /** Cross terms of each unit's column with the constant column (length n). */
  gBeta: Float64Array;
  /** Σ 1·1 over all rows (number of tokens × d). */
  gBetaBeta: number;
  /** Σ 1·R, the constant column against the target. */
  qBeta: number;
}

/** Options of `solveMaskLs`. */
export interface SolveMaskLsOptions {
  /** Damping λ (default 1, absolute: G sums over tokens). */
  lambda?: number;
  /** Reject when any |x_i| exceeds this (default 10). */
  maxAbs?: number;
  /** MHA intercept column; eliminated exactly (undamped) before the damped solve. */
  intercept?: LsIntercept;
  /** "auto" (default: dense for n ≤ 256, else lsmr), "dense" or "lsmr". */
  method?: "auto" | "dense" | "lsmr";
  /** LSMR tolerances (default 1e-10 each; the official code uses 1e-6). */
  atol?: number;
  /** LSMR relative residual tolerance (default 1e-10). */
  btol?: number;
  /** Conditioning limit (default 1e8), for LSMR's estimate and the dense R-diagonal ratio. */
  conlim?: number;
  /** LSMR iteration cap (default 5·n, CuPy's default). */
  maxIter?: number;
  /** LSMR with unit-norm columns when λ > 0 (default true; false: plain LSMR, as CuPy's). */
  precondition?: boolean;
}

/** Outcome of `solveMaskLs`. */
export interface SolveMaskLsResult {
  /** Solved mask values x = 1 + δ (also when rejected, for reporting; NaN if not computed). */
  x: Float64Array;
  /** Whether the caller should use `x` (otherwise keep the binary mask). */
  accepted: boolean;
  /** Why the solution was rejected. */
  reason?: string;
  /** E at the binary mask: x = 1 (and β = 0). */
  e1: number;
  /** E at the solution v = (x, β). */
  ev: number;
  /** min x_i. */
  min: number;
  /** max x_i. */
  max: number;
  /** LSMR iterations (absent for the closed form and dense solves). */
  iterations?: number;
  /** The intercept β at the solution (0 without an intercept; discarded by the caller). */
  beta: number;
  /** Which solver ran. */
  method: "closed" | "dense" | "lsmr";
}

/**
 * Solves the damped mask least squares of METHOD.md §6.3 and applies the acceptance rules of §6.4.
 * E(v) = vᵀGv − 2qᵀv + rr is the reconstruction error Σ‖Σ_i v_i C_i − R‖² of mask values v (G is
 * n×n row-major, q length n, rr = Σ‖R‖²). With x = 1 + δ, r = q − G·1, δ minimises
 * ‖Gδ − r‖² + λ²‖δ‖². With `intercept`, β is eliminated exactly first (Schur complement:
 * G' = G − g_β g_βᵀ/g_ββ, q' = q − g_β q_β/g_ββ; β undamped, β = (q_β − g_βᵀx)/g_ββ), so E(v) is
 * evaluated at the best β for x while E(1) is at x = 1, β = 0 (the binary-masked student).
 * Rejected (accepted = false, with `reason`): non-finite input or solution, LSMR at its iteration
 * or conditioning limit (conlim), dense R-diagonal ratio above conlim, any |x_i| > maxAbs, or
 * E(v) ≥ E(1). No clamping; negative values are allowed.
 */
export function solveMaskLs(
  G: ArrayLike<number>,
  q: ArrayLike<number>,
  rr: number,
  o: SolveMaskLsOptions = {},
): SolveMaskLsResult {
  const n = q.length;
  if (n < 1) throw new InvalidArgumentError("solveMaskLs needs at least one unknown");
  if (G.length !== n * n) throw new ShapeError(`G has ${G.length} entries, expected ${n}×${n}`);
  const lambda = o.lambda ?? 1;
  const maxAbs = o.maxAbs ?? 10;
  const conlim = o.conlim ?? 1e8;
  if (!(lambda >= 0)) throw new InvalidArgumentError(`lambda = ${lambda} must be ≥ 0`);
  const ic = o.intercept;
  if (ic && ic.gBeta.length !== n) {
    throw new ShapeError(`intercept.gBeta has length ${ic.gBeta.length}, expected ${n}`);
  }
  const method = o.method === "dense" || o.method === "lsmr"
    ? o.method
    : (o.method ?? "auto") === "auto"
    ? (n <= 256 ? "dense" : "lsmr")
    : null;
  if (!method) throw new InvalidArgumentError(`unknown method "${o.method}" (auto | dense | lsmr)`);
  const used = n === 1 ? "closed" : method;
  const ones = new Float64Array(n).fill(1);
  const energy = (x: Float64Array, beta: number) => {
    let e = rr;
    for (let i = 0; i < n; i++) {
      let gx = 0;
      for (let j = 0; j < n; j++) gx += G[i * n + j] * x[j];
      e += x[i] * gx - 2 * q[i] * x[i];
      if (ic) e += 2 * beta * ic.gBeta[i] * x[i];
    }
    if (ic) e += beta * beta * ic.gBetaBeta - 2 * beta * ic.qBeta;
    return e;
  };
  const finiteIn = allFinite(G) && allFinite(q) && Number.isFinite(rr) &&
    (!ic || (allFinite(ic.gBeta) && Number.isFinite(ic.gBetaBeta) && Number.isFinite(ic.qBeta)));
  if (!finiteIn || (ic && !(ic.gBetaBeta > 0))) {
    const x = new Float64Array(n).fill(NaN);
    const reason = finiteIn ? "intercept gBetaBeta must be > 0" : "non-finite input";
    return {
      x,
      accepted: false,
      reason,
      e1: NaN,
      ev: NaN,
      min: NaN,
      max: NaN,
      beta: NaN,
      method: used,
    };
  }
  // Reduced system (β eliminated) in f64.
  const Gr = Float64Array.from(G);
  const qr = Float64Array.from(q);
  if (ic) {
    for (let i = 0; i < n; i++) {
      qr[i] -= ic.gBeta[i] * ic.qBeta / ic.gBetaBeta;
      for (let j = 0; j < n; j++) Gr[i * n + j] -= ic.gBeta[i] * ic.gBeta[j] / ic.gBetaBeta;
    }
  }
  const r = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += Gr[i * n + j];
    r[i] = qr[i] - s;
  }
  let delta: Float64Array;
  let failure: string | undefined;
  let iterations: number | undefined;
  if (used === "closed") {
    const g = Gr[0];
    delta = Float64Array.of(g * r[0] / (g * g + lambda * lambda));
  } else if (used === "dense") {
    const res = denseDampedLs(Gr, n, r, lambda);
    delta = res.x;
    if (res.cond > conlim) {
      failure = `conditioning limit (R-diagonal ratio ${res.cond.toExponential(2)})`;
    }
  } else {
    const res = lsmrSymmetric(Gr, n, r, lambda, o.precondition ?? true, {
      atol: o.atol ?? 1e-10,
      btol: o.btol ?? 1e-10,
      conlim,
      maxIter: o.maxIter ?? 5 * n,
    });
    delta = res.x;
    iterations = res.iterations;
    if (res.istop === 7) failure = `iteration limit (${res.iterations})`;
    if (res.istop === 3 || res.istop === 6) failure = "conditioning limit";
  }
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) x[i] = 1 + delta[i];
  let beta = 0;
  if (ic) {
    let s = ic.qBeta;
    for (let i = 0; i < n; i++) s -= ic.gBeta[i] * x[i];
    beta = s / ic.gBetaBeta;
  }
  let min = Infinity;
  let max = -Infinity;
  for (const v of x) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const e1 = energy(ones, 0);
  const ev = energy(x, beta);
  let reason: string | undefined;
  if (!allFinite(x) || !Number.isFinite(beta) || !Number.isFinite(ev)) {
    reason = "non-finite solution";
  } else if (failure) reason = failure;
  else if (Math.max(Math.abs(min), Math.abs(max)) > maxAbs) reason = `|x| > ${maxAbs}`;
  else if (!(ev < e1)) reason = "E(v) is not below E(1)";
  const out: SolveMaskLsResult = { x, accepted: !reason, e1, ev, min, max, beta, method: used };
  if (reason) out.reason = reason;
  if (iterations !== undefined) out.iterations = iterations;
  return out;
}

function allFinite(a: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}

/**
 * min ‖[A; λI]δ − [b; 0]‖ by Householder QR of the 2n×n stacked matrix (column-major, f64).
 * Returns δ and the ratio max|R_ii| / min|R_ii| as a cheap conditioning estimate.
 */
function denseDampedLs(
  A: Float64Array,
  n: number,
  b: Float64Array,
  lambda: number,
): { x: Float64Array; cond: number } {
  const m = 2 * n;
  const W = new Float64Array(m * n); // column-major: W[j*m + i]
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) W[j * m + i] = A[i * n + j];
    W[i * m + n + i] = lambda;
  }
  const rhs = new Float64Array(m);
  rhs.set(b);
  const v = new Float64Array(m);
  for (let k = 0; k < n; k++) {
    const col = k * m;
    let norm2 = 0;
    for (let i = k; i < m; i++) norm2 += W[col + i] * W[col + i];
    const norm = Math.sqrt(norm2);
    if (norm === 0) continue;
    const alpha = W[col + k] >= 0 ? -norm : norm;
    let vn2 = 0;
    for (let i = k; i < m; i++) {
      v[i] = W[col + i];
      if (i === k) v[i] -= alpha;
      vn2 += v[i] * v[i];
    }
    if (vn2 === 0) continue;
    for (let j = k; j < n; j++) {
      const cj = j * m;
      let s = 0;
      for (let i = k; i < m; i++) s += v[i] * W[cj + i];
      const f = 2 * s / vn2;
      for (let i = k; i < m; i++) W[cj + i] -= f * v[i];
    }
    let s = 0;
    for (let i = k; i < m; i++) s += v[i] * rhs[i];
    const f = 2 * s / vn2;
    for (let i = k; i < m; i++) rhs[i] -= f * v[i];
  }
  const x = new Float64Array(n);
  let dmax = 0;
  let dmin = Infinity;
  for (let k = n - 1; k >= 0; k--) {
    let s = rhs[k];
    for (let j = k + 1; j < n; j++) s -= W[j * m + k] * x[j];
    const d = W[k * m + k];
    x[k] = s / d;
    dmax = Math.max(dmax, Math.abs(d));
    dmin = Math.min(dmin, Math.abs(d));
  }
  return { x, cond: dmax / dmin };
}

function symOrtho(a: number, b: number): [number, number, number] {
  if (b === 0) return [a === 0 ? 0 : Math.sign(a), 0, Math.abs(a)];
  if (a === 0) return [0, Math.sign(b), Math.abs(b)];
  if (Math.abs(b) > Math.abs(a)) {
    const tau = a / b;
    const s = Math.sign(b) / Math.sqrt(1 + tau * tau);
    return [s * tau, s, b / s];
  }
  const tau = b / a;
  const c = Math.sign(a) / Math.sqrt(1 + tau * tau);
  return [c, c * tau, a / c];
}

/** dst = A·src for a dense row-major n×n A (four partial sums per row). */
function matvec(A: Float64Array, n: number, src: Float64Array, dst: Float64Array): void {
  const n4 = n - (n % 4);
  for (let i = 0; i < n; i++) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const row = i * n;
    let j = 0;
    for (; j < n4; j += 4) {
      s0 += A[row + j] * src[j];
      s1 += A[row + j + 1] * src[j + 1];
      s2 += A[row + j + 2] * src[j + 2];
      s3 += A[row + j + 3] * src[j + 3];
    }
    for (; j < n; j++) s0 += A[row + j] * src[j];
    dst[i] = (s0 + s1) + (s2 + s3);
  }
}

/**
 * min ‖Aδ − b‖² + damp²‖δ‖² for a symmetric dense n×n A by LSMR. With `precondition` and
 * damp > 0, the stacked matrix [A; damp·I] gets unit-norm columns: LSMR solves
 * min ‖[A·D; damp·D]y − [b; 0]‖ (D_j = 1/‖column j‖) and δ = D·y — the same unique minimiser in
 * far fewer iterations when the columns' norms differ widely. Otherwise plain LSMR with damp.
 */
function lsmrSymmetric(
  A: Float64Array,
  n: number,
  b: Float64Array,
  damp: number,
  precondition: boolean,
  o: { atol: number; btol: number; conlim: number; maxIter: number },
): { x: Float64Array; istop: number; iterations: number } {
  if (!precondition || !(damp > 0)) {
    return lsmr(
      n,
      n,
      (x, out) => matvec(A, n, x, out),
      (y, out) => matvec(A, n, y, out),
      b,
      damp,
      o,
    );
  }
  const D = new Float64Array(n);
  for (let j = 0; j < n; j++) D[j] = damp * damp;
  for (let i = 0; i < n; i++) {
    const row = i * n;
    for (let j = 0; j < n; j++) D[j] += A[row + j] * A[row + j];
  }
  for (let j = 0; j < n; j++) D[j] = 1 / Math.sqrt(D[j]);
  const scaled = new Float64Array(n), prod = new Float64Array(n);
  const stackedB = new Float64Array(2 * n);
  stackedB.set(b);
  const res = lsmr(
    2 * n,
    n,
    (y, out) => {
      for (let j = 0; j < n; j++) scaled[j] = D[j] * y[j];
      matvec(A, n, scaled, prod);
      for (let i = 0; i < n; i++) {
        out[i] = prod[i];
        out[n + i] = damp * scaled[i];
      }
    },
    (u, out) => {
      matvec(A, n, u.subarray(0, n), prod); // Aᵀ = A
      for (let j = 0; j < n; j++) out[j] = D[j] * (prod[j] + damp * u[n + j]);
    },
    stackedB,
    0,
    o,
  );
  for (let j = 0; j < n; j++) res.x[j] *= D[j];
  return res;
}

/**
 * LSMR (Fong & Saunders 2011) for min ‖Aδ − b‖² + damp²‖δ‖², A (m×n) given by its products:
 * `aprod` (x of length n → out of length m) and `atprod` (y of length m → out of length n).
 * istop: 0 b = 0, 1/2 converged (btol/atol), 3 cond ≥ conlim, 4/5 converged to machine precision,
 * 6 cond too large for machine precision, 7 iteration limit.
 */
function lsmr(
  m: number,
  n: number,
  aprod: (x: Float64Array, out: Float64Array) => void,
  atprod: (y: Float64Array, out: Float64Array) => void,
  b: Float64Array,
  damp: number,
  o: { atol: number; btol: number; conlim: number; maxIter: number },
): { x: Float64Array; istop: number; iterations: number } {
  const nrm = (a: Float64Array) => {
    let s = 0;
    for (const t of a) s += t * t;
    return Math.sqrt(s);
  };
  const x = new Float64Array(n);
  const u = Float64Array.from(b);
  const tmp = new Float64Array(m);
  const tmpn = new Float64Array(n);
  const normb = nrm(u);
  let beta = normb;
  if (beta > 0) { for (let i = 0; i < m; i++) u[i] /= beta; }
  const v = new Float64Array(n);
  let alpha = 0;
  if (beta > 0) {
    atprod(u, v);
    alpha = nrm(v);
  }
  if (alpha > 0) { for (let i = 0; i < n; i++) v[i] /= alpha; }
  let zetabar = alpha * beta, alphabar = alpha, rho = 1, rhobar = 1, cbar = 1, sbar = 0;
  const h = Float64Array.from(v);
  const hbar = new Float64Array(n);
  let betadd = beta, betad = 0, rhodold = 1, tautildeold = 0, thetatilde = 0, zeta = 0, d = 0;
  let normA2 = alpha * alpha, maxrbar = 0, minrbar = 1e100;
  const ctol = o.conlim > 0 ? 1 / o.conlim : 0;
  if (alpha * beta === 0) return { x, istop: 0, iterations: 0 };
  let itn = 0;
  let istop = 0;
  while (itn < o.maxIter) {
    itn++;
    aprod(v, tmp);
    for (let i = 0; i < m; i++) u[i] = tmp[i] - alpha * u[i];
    beta = nrm(u);
    if (beta > 0) {
      for (let i = 0; i < m; i++) u[i] /= beta;
      atprod(u, tmpn);
      for (let i = 0; i < n; i++) v[i] = tmpn[i] - beta * v[i];
      alpha = nrm(v);
      if (alpha > 0) { for (let i = 0; i < n; i++) v[i] /= alpha; }
    }
    const [chat, shat, alphahat] = symOrtho(alphabar, damp);
    const rhoold = rho;
    const [c, s, rhoNew] = symOrtho(alphahat, beta);
    rho = rhoNew;
    const thetanew = s * alpha;
    alphabar = c * alpha;
    const rhobarold = rhobar;
    const zetaold = zeta;
    const thetabar = sbar * rho;
    const rhotemp = cbar * rho;
    [cbar, sbar, rhobar] = symOrtho(cbar * rho, thetanew);
    zeta = cbar * zetabar;
    zetabar = -sbar * zetabar;
    const fh = thetabar * rho / (rhoold * rhobarold);
    const fx = zeta / (rho * rhobar);
    const fv = thetanew / rho;
    for (let i = 0; i < n; i++) {
      hbar[i] = h[i] - fh * hbar[i];
      x[i] += fx * hbar[i];
      h[i] = v[i] - fv * h[i];
    }
    const betaacute = chat * betadd;
    const betacheck = -shat * betadd;
    const betahat = c * betaacute;
    betadd = -s * betaacute;
    const thetatildeold = thetatilde;
    const [ctildeold, stildeold, rhotildeold] = symOrtho(rhodold, thetabar);
    thetatilde = stildeold * rhobar;
    rhodold = ctildeold * rhobar;
    betad = -stildeold * betad + ctildeold * betahat;
    tautildeold = (zetaold - thetatildeold * tautildeold) / rhotildeold;
    const taud = (zeta - thetatilde * tautildeold) / rhodold;
    d += betacheck * betacheck;
    const normr = Math.sqrt(d + (betad - taud) ** 2 + betadd * betadd);
    normA2 += beta * beta;
    const normA = Math.sqrt(normA2);
    normA2 += alpha * alpha;
    maxrbar = Math.max(maxrbar, rhobarold);
    if (itn > 1) minrbar = Math.min(minrbar, rhobarold);
    const condA = Math.max(maxrbar, rhotemp) / Math.min(minrbar, rhotemp);
    const normar = Math.abs(zetabar);
    const normx = nrm(x);
    const test1 = normr / normb;
    const test2 = normA * normr !== 0 ? normar / (normA * normr) : Infinity;
    const test3 = 1 / condA;
    const t1 = test1 / (1 + normA * normx / normb);
    const rtol = o.btol + o.atol * normA * normx / normb;
    if (itn >= o.maxIter) istop = 7;
    if (1 + test3 <= 1) istop = 6;
    if (1 + test2 <= 1) istop = 5;
    if (1 + t1 <= 1) istop = 4;
    if (test3 <= ctol) istop = 3;
    if (test2 <= o.atol) istop = 2;
    if (test1 <= rtol) istop = 1;
    if (istop > 0) break;
  }
  return { x, istop, iterations: itn };
}
