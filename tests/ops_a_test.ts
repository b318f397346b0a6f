/**
 * Tests of ops part A (LayerNorm, activations, masked softmax, losses, dropout, AdamW).
 *
 * References: float64 PyTorch fixtures from tests/fixtures/gen_ops_a.py (forward values and
 * autograd gradients), float64 CPU implementations of the definitions written here for the wide
 * rows (C = 4096), and central finite differences of the GPU forward done here in f32 (h = 1e-2 on
 * per-row probes Σ w∘y with random w). Tolerances: forward max-abs ≤ 1e-4·max(1, max|ref|);
 * gradients max-abs ≤ 1e-3·max|ref| vs float64; finite differences max-abs ≤ 1e-3·max|fd| + 1e-4
 * (observed ≤ 4e-5).
 * @module
 */
import {
  assert,
  assertClose,
  assertEquals,
  assertRejects,
  loadFixture,
  maxAbs,
} from "./helpers.ts";
import { getGpu, type Gpu } from "../lib/gpu/context.ts";
import type { Tensor } from "../lib/gpu/tensor.ts";
import { ShapeError } from "../lib/errors.ts";
import { addLayerNorm, layerNorm, layerNormBackward } from "../lib/ops/layernorm.ts";
import {
  gelu,
  geluBackward,
  relu,
  reluBackward,
  tanh,
  tanhBackward,
} from "../lib/ops/activation.ts";
import { softmaxBackward, softmaxMasked } from "../lib/ops/softmax.ts";
import { kernelClass, setKernelClass } from "../lib/ops/kernel_class.ts";
import {
  crossEntropy,
  crossEntropyBackward,
  mseLoss,
  mseLossBackward,
  spanLoss,
  spanLossBackward,
} from "../lib/ops/loss.ts";
import { dropout, dropoutBackward } from "../lib/ops/dropout.ts";
import { adamwStep } from "../lib/ops/adamw.ts";

// ---------------------------------------------------------------- helpers

function checkForward(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string) {
  assertClose(actual, expected, 1e-4 * Math.max(1, maxAbs(expected)), 0, label);
}

function checkGrad(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string) {
  assertClose(actual, expected, 1e-3 * maxAbs(expected) + 1e-7, 0, label);
}

function checkFd(actual: ArrayLike<number>, fd: ArrayLike<number>, label: string) {
  assertClose(actual, fd, 1e-3 * maxAbs(fd) + 1e-4, 0, `${label} (finite differences)`);
}

/** Deterministic pseudo-random numbers in [−1, 1) (mulberry32). */
function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

/** Reads a tensor and releases it. */
async function take(t: Tensor): Promise<Float32Array> {
  const r = await t.read();
  t.release();
  return r;
}

/**
 * Central finite differences in f32 of probes that are independent per row: `f(x)` returns one
 * probe value per row; element i belongs to row `rowOf(i)`. Elements i ≡ j (mod stride) are
 * perturbed together (they must lie in different rows), so 2·stride forward runs suffice.
 */
async function centralDiff(
  x: Float32Array,
  f: (x: Float32Array) => Promise<Float64Array>,
  rowOf: (i: number) => number,
  stride: number,
  h = 1e-2,
): Promise<Float64Array> {
  const grad = new Float64Array(x.length);
  for (let j = 0; j < stride; j++) {
    const xp = Float32Array.from(x);
    const xm = Float32Array.from(x);
    for (let i = j; i < x.length; i += stride) {
      xp[i] = x[i] + h;
      xm[i] = x[i] - h;
    }
    const fp = await f(xp);
    const fm = await f(xm);
    for (let i = j; i < x.length; i += stride) {
      const r = rowOf(i);
      grad[i] = (fp[r] - fm[r]) / (Math.fround(x[i] + h) - Math.fround(x[i] - h));
    }
  }
  return grad;
}

/** Per-row probes Σ_c w[r, c]·y[r, c] in float64. */
function rowProbe(y: ArrayLike<number>, w: ArrayLike<number>, cols: number): Float64Array {
  const rows = y.length / cols;
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c] * y[r * cols + c];
    out[r] = s;
  }
  return out;
}

/**
 * Registers `fn` as two tests, one per kernel class ("gpu": workgroup reductions, "cpu": one
 * invocation per row), forced with `setKernelClass`, so both variants meet the same references
 * whatever adapter runs the tests.
 */
function testBothClasses(name: string, fn: () => Promise<void>): void {
  for (const kc of ["gpu", "cpu"] as const) {
    Deno.test(`${name} [${kc}-class kernels]`, async () => {
      setKernelClass(kc);
      try {
        await fn();
      } finally {
        setKernelClass("auto");
      }
    });
  }
}

// ---------------------------------------------------------------- LayerNorm

interface LayerNormCase {
  rows: number;
  cols: number;
  eps: number;
  x: number[];
  gamma: number[];
  beta: number[];
  dy: number[];
  y: number[];
  mean: number[];
  rstd: number[];
  dx: number[];
  dgamma: number[];
  dbeta: number[];
}

testBothClasses(
  "layerNorm forward and backward match float64 PyTorch (C = 1, 7, 300, 769; 70 rows)",
  async () => {
    const gpu = await getGpu();
    const { cases } = await loadFixture<{ cases: LayerNormCase[] }>("ops_a_layernorm.json");
    for (const c of cases) {
      const label = `layerNorm ${c.rows}×${c.cols}`;
      const x = gpu.upload(c.x, [c.rows, c.cols]);
      const gamma = gpu.upload(c.gamma);
      const beta = gpu.upload(c.beta);
      const dy = gpu.upload(c.dy, [c.rows, c.cols]);
      const { y, mean, rstd } = layerNorm(x, gamma, beta, c.eps);
      assertEquals(y.shape, [c.rows, c.cols]);
      assertEquals(mean.shape, [c.rows]);
      const { dx, dgamma, dbeta } = layerNormBackward(dy, x, mean, rstd, gamma);
      checkForward(await y.read(), c.y, `${label} y`);
      checkForward(await mean.read(), c.mean, `${label} mean`);
      assertClose(await rstd.read(), c.rstd, 0, 1e-4, `${label} rstd`);
      if (c.cols > 1) checkGrad(await dx.read(), c.dx, `${label} dx`);
      else {
        // Exactly 0 in exact arithmetic for C = 1 (x − mean = 0). In float32 the centred term
        // dy·γ − mean(dy·γ) keeps the product's rounding where the compiler fuses it into an FMA
        // (NVIDIA's does), and rstd = 1/√eps (10⁶ here) amplifies it: allow a few ulps of that.
        let scale = 0;
        for (let r = 0; r < c.rows; r++) {
          scale = Math.max(scale, c.rstd[r] * Math.abs(c.dy[r] * c.gamma[0]));
        }
        assertClose(await dx.read(), c.dx, 1e-6 + 4 * 2 ** -24 * scale, 0, `${label} dx`);
      }
      checkGrad(await dgamma.read(), c.dgamma, `${label} dgamma`);
      checkGrad(await dbeta.read(), c.dbeta, `${label} dbeta`);
      for (const t of [x, gamma, beta, dy, y, mean, rstd, dx, dgamma, dbeta]) t.release();
    }
  },
);

/** Float64 LayerNorm and its gradients, from the definition. */
function layerNormRef(
  x: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  dy: Float32Array,
  cols: number,
  eps: number,
) {
  const rows = x.length / cols;
  const y = new Float64Array(x.length);
  const dx = new Float64Array(x.length);
  const dgamma = new Float64Array(cols);
  const dbeta = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let mean = 0;
    for (let c = 0; c < cols; c++) mean += x[o + c];
    mean /= cols;
    let v = 0;
    for (let c = 0; c < cols; c++) v += (x[o + c] - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / cols + eps);
    let mg = 0;
    let mgx = 0;
    for (let c = 0; c < cols; c++) {
      const xh = (x[o + c] - mean) * rstd;
      y[o + c] = xh * gamma[c] + beta[c];
      mg += dy[o + c] * gamma[c];
      mgx += dy[o + c] * gamma[c] * xh;
      dgamma[c] += dy[o + c] * xh;
      dbeta[c] += dy[o + c];
    }
    mg /= cols;
    mgx /= cols;
    for (let c = 0; c < cols; c++) {
      const xh = (x[o + c] - mean) * rstd;
      dx[o + c] = rstd * (dy[o + c] * gamma[c] - mg - xh * mgx);
    }
  }
  return { y, dx, dgamma, dbeta };
}

testBothClasses(
  "layerNorm handles 4096-column rows (float64 reference from the definition)",
  async () => {
    const gpu = await getGpu();
    const rows = 3;
    const cols = 4096;
    const xs = rand(rows * cols, 1).map((v, i) => 3 * v + (i % 5));
    const gs = rand(cols, 2).map((v) => 1 + 0.5 * v);
    const bs = rand(cols, 3);
    const dys = rand(rows * cols, 4);
    const ref = layerNormRef(xs, gs, bs, dys, cols, 1e-12);
    const x = gpu.upload(xs, [rows, cols]);
    const gamma = gpu.upload(gs);
    const beta = gpu.upload(bs);
    const dy = gpu.upload(dys, [rows, cols]);
    const { y, mean, rstd } = layerNorm(x, gamma, beta, 1e-12);
    const { dx, dgamma, dbeta } = layerNormBackward(dy, x, mean, rstd, gamma);
    checkForward(await take(y), ref.y, "layerNorm 4096 y");
    checkGrad(await take(dx), ref.dx, "layerNorm 4096 dx");
    checkGrad(await take(dgamma), ref.dgamma, "layerNorm 4096 dgamma");
    checkGrad(await take(dbeta), ref.dbeta, "layerNorm 4096 dbeta");
    for (const t of [x, gamma, beta, dy, mean, rstd]) t.release();
  },
);

testBothClasses(
  "layerNorm rows of 16, 128 and 256 values (the CPU class's unrolled texture entries) against float64",
  async () => {
    const gpu = await getGpu();
    const entries: string[] = [];
    for (const cols of [16, 128, 256]) {
      const rows = 70; // not a multiple of the 64-row workgroups
      const xs = rand(rows * cols, cols).map((v, i) => 3 * v + (i % 7));
      const gs = rand(cols, cols + 1).map((v) => 1 + 0.5 * v);
      const bs = rand(cols, cols + 2);
      const dys = rand(rows * cols, cols + 3);
      const ref = layerNormRef(xs, gs, bs, dys, cols, 1e-12);
      const x = gpu.upload(xs, [rows, cols]);
      const gamma = gpu.upload(gs);
      const beta = gpu.upload(bs);
      const dy = gpu.upload(dys, [rows, cols]);
      gpu.startRecording();
      const { y, mean, rstd } = layerNorm(x, gamma, beta, 1e-12);
      const { dx, dgamma, dbeta } = layerNormBackward(dy, x, mean, rstd, gamma);
      entries.push(...gpu.stopRecording().map((d) => d.entry));
      // the saved statistics, from the definition
      const m = await mean.read(), r = await rstd.read();
      for (let i = 0; i < rows; i++) {
        const row = xs.subarray(i * cols, (i + 1) * cols);
        const mu = row.reduce((a, b) => a + b, 0) / cols;
        const sd = 1 / Math.sqrt(row.reduce((a, b) => a + (b - mu) ** 2, 0) / cols + 1e-12);
        assert(
          Math.abs(m[i] - mu) <= 1e-5 * Math.max(1, Math.abs(mu)),
          `mean ${i}: ${m[i]} vs ${mu}`,
        );
        assert(Math.abs(r[i] - sd) <= 1e-5 * sd, `rstd ${i}: ${r[i]} vs ${sd}`);
      }
      checkForward(await take(y), ref.y, `layerNorm ${cols} y`);
      checkGrad(await take(dx), ref.dx, `layerNorm ${cols} dx`);
      checkGrad(await take(dgamma), ref.dgamma, `layerNorm ${cols} dgamma`);
      checkGrad(await take(dbeta), ref.dbeta, `layerNorm ${cols} dbeta`);
      for (const t of [x, gamma, beta, dy, mean, rstd]) t.release();
    }
    const unrolled = entries.filter((e) => e.startsWith("ln_"));
    assertEquals(
      unrolled,
      kernelClass(gpu) === "cpu"
        ? ["ln_fwd_c4", "ln_dx_c4", "ln_fwd_c32", "ln_dx_c32", "ln_fwd_c64", "ln_dx_c64"]
        : [],
    );
  },
);

testBothClasses(
  "addLayerNorm (training residual + LayerNorm) stores a + r and matches float64 LayerNorm of it",
  async () => {
    const gpu = await getGpu();
    const entries: string[] = [];
    for (const [rows, cols] of [[70, 16], [70, 128], [5, 256], [3, 260]]) {
      const as = rand(rows * cols, cols + 7).map((v, i) => 2 * v + (i % 3));
      const rs = rand(rows * cols, cols + 8);
      const sums = as.map((v, i) => Math.fround(v + rs[i]));
      const gs = rand(cols, cols + 9).map((v) => 1 + 0.5 * v);
      const bs = rand(cols, cols + 10);
      const ref = layerNormRef(sums, gs, bs, new Float32Array(rows * cols), cols, 1e-12);
      const a = gpu.upload(as, [rows, cols]), r = gpu.upload(rs, [rows, cols]);
      const gamma = gpu.upload(gs), beta = gpu.upload(bs);
      gpu.startRecording();
      const out = addLayerNorm(a, r, gamma, beta, 1e-12);
      entries.push(...gpu.stopRecording().map((d) => d.entry));
      assertEquals(Array.from(await out.sum.read()), Array.from(sums), `sum ${cols}`);
      checkForward(await take(out.y), ref.y, `addLayerNorm ${cols} y`);
      const m = await take(out.mean);
      for (let i = 0; i < rows; i++) {
        const mu = sums.subarray(i * cols, (i + 1) * cols).reduce((x, y) => x + y, 0) / cols;
        assert(Math.abs(m[i] - mu) <= 1e-5 * Math.max(1, Math.abs(mu)), `mean ${i}`);
      }
      for (const t of [a, r, gamma, beta, out.sum, out.rstd]) t.release();
    }
    // rows of ≤ 256 values on the CPU class: the unrolled entry; 260 (and the GPU class): add +
    // layerNorm
    assertEquals(
      entries.filter((e) => e.startsWith("ln_")),
      kernelClass(gpu) === "cpu" ? ["ln_addfwd_c4", "ln_addfwd_c32", "ln_addfwd_c64"] : [],
    );
    await assertRejects(
      () =>
        Promise.resolve(
          addLayerNorm(gpu.zeros([2, 4]), gpu.zeros([2, 5]), gpu.zeros([4]), gpu.zeros([4]), 0),
        ),
      ShapeError,
    );
  },
);

testBothClasses("layerNorm uses a 2-D grid past 65535 rows", async () => {
  const gpu = await getGpu();
  const rows = 65537;
  const cols = 2;
  const xs = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    xs[2 * r] = r % 7;
    xs[2 * r + 1] = (r % 7) + 2; // normalised row is always (−1, 1)
  }
  const x = gpu.upload(xs, [rows, cols]);
  const gamma = gpu.upload([2, 3]);
  const beta = gpu.upload([0.5, -0.5]);
  const { y, mean, rstd } = layerNorm(x, gamma, beta, 0);
  const out = await take(y);
  const m = await take(mean);
  for (const r of [0, 1, 65534, 65535, 65536]) {
    assertClose([out[2 * r], out[2 * r + 1]], [-1.5, 2.5], 1e-5, 0, `row ${r}`);
    assertClose([m[r]], [(r % 7) + 1], 1e-6, 0, `mean ${r}`);
  }
  for (const t of [x, gamma, beta, rstd]) t.release();
});

testBothClasses("layerNorm backward agrees with finite differences of its forward", async () => {
  const gpu = await getGpu();
  const rows = 3;
  const cols = 7;
  const xs = rand(rows * cols, 11).map((v) => 2 * v);
  const gs = rand(cols, 12).map((v) => 1 + 0.5 * v);
  const bs = rand(cols, 13);
  const w = rand(rows * cols, 14);
  const forward = async (xv: Float32Array, gv: Float32Array, bv: Float32Array) => {
    const x = gpu.upload(xv, [rows, cols]);
    const g = gpu.upload(gv);
    const b = gpu.upload(bv);
    const { y, mean, rstd } = layerNorm(x, g, b, 1e-5);
    const probe = rowProbe(await take(y), w, cols);
    for (const t of [x, g, b, mean, rstd]) t.release();
    return probe;
  };
  const total = (p: Float64Array) => Float64Array.of(p.reduce((a, b) => a + b, 0));
  const fdX = await centralDiff(xs, (v) => forward(v, gs, bs), (i) => Math.floor(i / cols), cols);
  const fdG = await centralDiff(gs, async (v) => total(await forward(xs, v, bs)), () => 0, cols);
  const fdB = await centralDiff(bs, async (v) => total(await forward(xs, gs, v)), () => 0, cols);
  const x = gpu.upload(xs, [rows, cols]);
  const gamma = gpu.upload(gs);
  const beta = gpu.upload(bs);
  const dy = gpu.upload(w, [rows, cols]);
  const { y, mean, rstd } = layerNorm(x, gamma, beta, 1e-5);
  const { dx, dgamma, dbeta } = layerNormBackward(dy, x, mean, rstd, gamma);
  checkFd(await take(dx), fdX, "layerNorm dx");
  checkFd(await take(dgamma), fdG, "layerNorm dgamma");
  checkFd(await take(dbeta), fdB, "layerNorm dbeta");
  for (const t of [x, gamma, beta, dy, y, mean, rstd]) t.release();
});

testBothClasses("layerNorm backward is deterministic (bitwise) across runs", async () => {
  const gpu = await getGpu();
  const rows = 100;
  const cols = 33;
  const x = gpu.upload(rand(rows * cols, 21), [rows, cols]);
  const gamma = gpu.upload(rand(cols, 22));
  const beta = gpu.upload(rand(cols, 23));
  const dy = gpu.upload(rand(rows * cols, 24), [rows, cols]);
  const once = async () => {
    const { y, mean, rstd } = layerNorm(x, gamma, beta, 1e-5);
    const { dx, dgamma, dbeta } = layerNormBackward(dy, x, mean, rstd, gamma);
    const r = [await take(dx), await take(dgamma), await take(dbeta)];
    for (const t of [y, mean, rstd]) t.release();
    return r;
  };
  const a = await once();
  const b = await once();
  for (let i = 0; i < a.length; i++) assertEquals(Array.from(a[i]), Array.from(b[i]));
  for (const t of [x, gamma, beta, dy]) t.release();
});

// ---------------------------------------------------------------- activations

interface ActivationFixture {
  x: number[];
  dy: number[];
  gelu: number[];
  gelu_dx: number[];
  relu: number[];
  relu_dx: number[];
  tanh: number[];
  tanh_dx: number[];
}

Deno.test("gelu, relu, tanh and their backward match float64 PyTorch", async () => {
  const gpu = await getGpu();
  const f = await loadFixture<ActivationFixture>("ops_a_activation.json");
  const x = gpu.upload(f.x);
  const dy = gpu.upload(f.dy);
  // GELU is checked tighter than the general forward tolerance: its erf must be accurate.
  const g = gelu(x);
  assertClose(await g.read(), f.gelu, 1e-6, 1e-6, "gelu");
  checkGrad(await take(geluBackward(dy, x)), f.gelu_dx, "gelu backward");
  g.release();
  // 1029 values take the scalar entries; their first 1028 the vec4 twins
  const n4 = f.x.length - (f.x.length % 4);
  assert(n4 !== f.x.length, "the fixture must leave a remainder for the scalar entries");
  const x4 = gpu.upload(f.x.slice(0, n4)), dy4 = gpu.upload(f.dy.slice(0, n4));
  gpu.startRecording();
  const g4 = gelu(x4), gd4 = geluBackward(dy4, x4);
  assertEquals(gpu.stopRecording().map((d) => d.entry), ["gelu4", "gelu_backward4"]);
  assertClose(await take(g4), f.gelu.slice(0, n4), 1e-6, 1e-6, "gelu (vec4)");
  checkGrad(await take(gd4), f.gelu_dx.slice(0, n4), "gelu backward (vec4)");
  x4.release();
  dy4.release();
  checkForward(await take(relu(x)), f.relu, "relu");
  checkGrad(await take(reluBackward(dy, x)), f.relu_dx, "relu backward");
  const t = tanh(x);
  const ty = await t.read();
  assertClose(ty, f.tanh, 1e-6, 1e-6, "tanh");
  checkGrad(await take(tanhBackward(dy, t)), f.tanh_dx, "tanh backward");
  t.release();
  x.release();
  dy.release();
});

Deno.test("gelu and its backward keep their relative accuracy in the negative tail", async () => {
  const gpu = await getGpu();
  // x·Φ(x) and Φ(x) + x·φ(x) in float64 with scipy.special.erfc (Φ(x) = ½·erfc(−x/√2)); an erf
  // formed as 1 − erfc loses every digit here (gelu(−8) ≈ −5e-15).
  const xs = [-3, -4.5, -6, -8, -10, -12];
  const want = [
    -0.004049694094890288,
    -1.5289529061285272e-05,
    -5.919525870226211e-09,
    -4.976768459417463e-15,
    -7.619853024160583e-23,
    -2.131778534493245e-32,
  ];
  const wantDx = [
    -0.011945647204183927,
    -6.852916185634459e-05,
    -3.5468709453902015e-08,
    -3.979607261086796e-14,
    -7.618400096464813e-22,
    -2.5578956616748956e-31,
  ];
  const x = gpu.upload(xs);
  const ones = gpu.upload(xs.map(() => 1));
  const y = await take(gelu(x));
  const dx = await take(geluBackward(ones, x));
  xs.forEach((v, i) => {
    const e = Math.abs(y[i] - want[i]) / Math.abs(want[i]);
    const ed = Math.abs(dx[i] - wantDx[i]) / Math.abs(wantDx[i]);
    assert(e <= 1e-5, `gelu(${v}) = ${y[i]}, want ${want[i]} (relative error ${e})`);
    assert(ed <= 1e-5, `gelu'(${v}) = ${dx[i]}, want ${wantDx[i]} (relative error ${ed})`);
  });
  // the first four through the vec4 twins (six values take the scalar entries)
  const x4 = gpu.upload(xs.slice(0, 4)), ones4 = gpu.upload([1, 1, 1, 1]);
  const y4 = await take(gelu(x4)), dx4 = await take(geluBackward(ones4, x4));
  for (let i = 0; i < 4; i++) {
    assert(Math.abs(y4[i] - want[i]) / Math.abs(want[i]) <= 1e-5, `gelu4(${xs[i]}) = ${y4[i]}`);
    assert(Math.abs(dx4[i] - wantDx[i]) / Math.abs(wantDx[i]) <= 1e-5, `gelu4'(${xs[i]})`);
  }
  for (const t of [x, ones, x4, ones4]) t.release();
});

Deno.test("activation backward agrees with finite differences of the forward", async () => {
  const gpu = await getGpu();
  // Points away from relu's kink at 0 (|x| ≥ 0.05 > h).
  const xs = Float32Array.from(rand(9, 31), (v, i) => (v < 0 ? v - 0.05 : v + 0.05) * (1 + i / 3));
  const w = rand(xs.length, 32);
  const dy = gpu.upload(w);
  const x = gpu.upload(xs);
  const ops = [
    { name: "gelu", fwd: gelu, bwd: (d: Tensor, xt: Tensor) => geluBackward(d, xt) },
    { name: "relu", fwd: relu, bwd: (d: Tensor, xt: Tensor) => reluBackward(d, xt) },
    {
      name: "tanh",
      fwd: tanh,
      bwd: (d: Tensor, xt: Tensor) => {
        const y = tanh(xt);
        const r = tanhBackward(d, y);
        y.release();
        return r;
      },
    },
  ];
  for (const op of ops) {
    const fd = await centralDiff(
      xs,
      async (v) => {
        const t = gpu.upload(v);
        const y = await take(op.fwd(t));
        t.release();
        return Float64Array.from(y, (yi, i) => yi * w[i]);
      },
      (i) => i,
      1,
    );
    checkFd(await take(op.bwd(dy, x)), fd, op.name);
  }
  dy.release();
  x.release();
});

// ---------------------------------------------------------------- masked softmax

interface SoftmaxCase {
  batch: number;
  heads: number;
  sq: number;
  sk: number;
  mode: "bert" | "distilbert";
  scale: number;
  scores: number[];
  mask: number[];
  dP: number[];
  P: number[];
  dScores: number[];
}

testBothClasses(
  "softmaxMasked and softmaxBackward match float64 PyTorch (padding, fully masked rows, 300 and 512 keys)",
  async () => {
    const gpu = await getGpu();
    const { cases } = await loadFixture<{ cases: SoftmaxCase[] }>("ops_a_softmax.json");
    for (const c of cases) {
      const label = `softmax ${c.mode} B${c.batch} H${c.heads} ${c.sq}×${c.sk}`;
      const shape = [c.batch * c.heads, c.sq, c.sk];
      const scores = gpu.upload(c.scores, shape);
      const mask = gpu.upload(c.mask, [c.batch, c.sk]);
      const dP = gpu.upload(c.dP, shape);
      const P = softmaxMasked(scores, mask, c.heads, c.scale, c.mode);
      const p = await P.read();
      checkForward(p, c.P, `${label} P`);
      // Masked keys of rows with at least one real key get exactly 0.
      for (let i = 0; i < p.length; i++) {
        const b = Math.floor(i / (c.heads * c.sq * c.sk));
        const k = i % c.sk;
        if (c.P[i] === 0 && c.mask[b * c.sk + k] === 0) assertEquals(p[i], 0, `${label} P[${i}]`);
      }
      const masked = { keyMask: mask, heads: c.heads, mode: c.mode };
      checkGrad(await take(softmaxBackward(dP, P, c.scale, masked)), c.dScores, `${label} dScores`);
      for (const t of [scores, mask, dP, P]) t.release();
    }
  },
);

testBothClasses("softmaxBackward agrees with finite differences of softmaxMasked", async () => {
  const gpu = await getGpu();
  const batch = 2;
  const heads = 2;
  const s = 5;
  const scale = 0.7;
  const maskv = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0];
  const xs = rand(batch * heads * s * s, 41).map((v) => 2 * v);
  const w = rand(xs.length, 42);
  const mask = gpu.upload(maskv, [batch, s]);
  for (const mode of ["bert", "distilbert"] as const) {
    const fd = await centralDiff(
      xs,
      async (v) => {
        const t = gpu.upload(v, [batch * heads, s, s]);
        const y = await take(softmaxMasked(t, mask, heads, scale, mode));
        t.release();
        return rowProbe(y, w, s);
      },
      (i) => Math.floor(i / s),
      s,
    );
    const scores = gpu.upload(xs, [batch * heads, s, s]);
    const dP = gpu.upload(w, [batch * heads, s, s]);
    const P = softmaxMasked(scores, mask, heads, scale, mode);
    const masked = { keyMask: mask, heads, mode };
    checkFd(await take(softmaxBackward(dP, P, scale, masked)), fd, `softmax ${mode}`);
    for (const t of [scores, dP, P]) t.release();
  }
  mask.release();
});

// ---------------------------------------------------------------- losses

interface CeCase {
  rows: number;
  cols: number;
  logits: number[];
  labels: number[];
  scale: number;
  loss: number[];
  dLogits: number[];
}
interface MseCase {
  shape: number[];
  pred: number[];
  target: number[];
  scale: number;
  loss: number[];
  dPred: number[];
}
interface SpanCase {
  batch: number;
  seq: number;
  start: number[];
  end: number[];
  startPos: number[];
  endPos: number[];
  mask: number[] | null;
  scale: number;
  loss: number[];
  dStart: number[];
  dEnd: number[];
}
interface LossFixture {
  ce: CeCase[];
  mse: MseCase[];
  span: SpanCase[];
}

testBothClasses(
  "crossEntropy forward and backward match float64 PyTorch (ignore_index −100)",
  async () => {
    const gpu = await getGpu();
    const { ce } = await loadFixture<LossFixture>("ops_a_loss.json");
    for (const c of ce) {
      const label = `crossEntropy ${c.rows}×${c.cols}`;
      const logits = gpu.upload(c.logits, [c.rows, c.cols]);
      const labels = gpu.uploadU32(c.labels);
      const loss = await take(crossEntropy(logits, labels));
      checkForward(loss, c.loss, `${label} loss`);
      const grad = await take(crossEntropyBackward(logits, labels, c.scale));
      checkGrad(grad, c.dLogits, `${label} grad`);
      c.labels.forEach((l, r) => {
        if (l !== -100) return;
        assertEquals(loss[r], 0, `${label} ignored loss`);
        for (let k = 0; k < c.cols; k++) assertEquals(grad[r * c.cols + k], 0);
      });
      logits.release();
      labels.release();
    }
  },
);

testBothClasses(
  "crossEntropy handles 4096 classes (float64 reference from the definition)",
  async () => {
    const gpu = await getGpu();
    const rows = 2;
    const cols = 4096;
    const xs = rand(rows * cols, 51).map((v) => 4 * v);
    const labs = [4095, 17];
    const refLoss: number[] = [];
    const refGrad = new Float64Array(xs.length);
    for (let r = 0; r < rows; r++) {
      const row = Array.from(xs.subarray(r * cols, (r + 1) * cols));
      const mx = Math.max(...row);
      const z = row.reduce((a, v) => a + Math.exp(v - mx), 0);
      refLoss.push(mx + Math.log(z) - row[labs[r]]);
      row.forEach((
        v,
        k,
      ) => (refGrad[r * cols + k] = Math.exp(v - mx) / z - (k === labs[r] ? 1 : 0)));
    }
    const logits = gpu.upload(xs, [rows, cols]);
    const labels = gpu.uploadU32(labs);
    checkForward(await take(crossEntropy(logits, labels)), refLoss, "crossEntropy 4096 loss");
    checkGrad(
      await take(crossEntropyBackward(logits, labels, 1)),
      refGrad,
      "crossEntropy 4096 grad",
    );
    logits.release();
    labels.release();
  },
);

Deno.test("mseLoss forward and backward match float64 PyTorch ([B] and [B, 1])", async () => {
  const gpu = await getGpu();
  const { mse } = await loadFixture<LossFixture>("ops_a_loss.json");
  for (const c of mse) {
    const pred = gpu.upload(c.pred, c.shape);
    const target = gpu.upload(c.target);
    checkForward(await take(mseLoss(pred, target)), c.loss, `mse [${c.shape}] loss`);
    const g = mseLossBackward(pred, target, c.scale);
    assertEquals(g.shape, c.shape);
    checkGrad(await take(g), c.dPred, `mse [${c.shape}] grad`);
    pred.release();
    target.release();
  }
});

testBothClasses(
  "spanLoss forward and backward match float64 PyTorch (clamped and ignored positions, key mask)",
  async () => {
    const gpu = await getGpu();
    const { span } = await loadFixture<LossFixture>("ops_a_loss.json");
    for (const c of span) {
      const label = `spanLoss ${c.batch}×${c.seq}${c.mask ? " masked" : ""}`;
      const shape = [c.batch, c.seq];
      const start = gpu.upload(c.start, shape);
      const end = gpu.upload(c.end, shape);
      const sp = gpu.uploadU32(c.startPos);
      const ep = gpu.uploadU32(c.endPos);
      const mask = c.mask ? gpu.upload(c.mask, shape) : undefined;
      checkForward(await take(spanLoss(start, end, sp, ep, mask)), c.loss, `${label} loss`);
      const { dStart, dEnd } = spanLossBackward(start, end, sp, ep, c.scale, mask);
      checkGrad(await take(dStart), c.dStart, `${label} dStart`);
      checkGrad(await take(dEnd), c.dEnd, `${label} dEnd`);
      for (const t of [start, end, sp, ep]) t.release();
      mask?.release();
    }
  },
);

testBothClasses("loss gradients agree with finite differences of the losses", async () => {
  const gpu = await getGpu();
  // Cross-entropy, one ignored row.
  {
    const rows = 3;
    const cols = 5;
    const scale = 0.5;
    const xs = rand(rows * cols, 61).map((v) => 2 * v);
    const labels = gpu.uploadU32([4, -100, 0]);
    const fd = await centralDiff(
      xs,
      async (v) => {
        const t = gpu.upload(v, [rows, cols]);
        const l = await take(crossEntropy(t, labels));
        t.release();
        return Float64Array.from(l, (x) => x * scale);
      },
      (i) => Math.floor(i / cols),
      cols,
    );
    const logits = gpu.upload(xs, [rows, cols]);
    checkFd(await take(crossEntropyBackward(logits, labels, scale)), fd, "crossEntropy");
    logits.release();
    labels.release();
  }
  // MSE.
  {
    const ps = rand(6, 62);
    const target = gpu.upload(rand(6, 63));
    const fd = await centralDiff(
      ps,
      async (v) => {
        const t = gpu.upload(v, [6, 1]);
        const l = await take(mseLoss(t, target));
        t.release();
        return Float64Array.from(l, (x) => 0.25 * x);
      },
      (i) => i,
      1,
    );
    const pred = gpu.upload(ps, [6, 1]);
    checkFd(await take(mseLossBackward(pred, target, 0.25)), fd, "mse");
    pred.release();
    target.release();
  }
  // Span loss with a key mask, a clamped position and an ignored side.
  {
    const batch = 3;
    const seq = 6;
    const scale = 0.8;
    const shape = [batch, seq];
    const ss = rand(batch * seq, 64).map((v) => 2 * v);
    const es = rand(batch * seq, 65).map((v) => 2 * v);
    const sp = gpu.uploadU32([1, -2, 6]);
    const ep = gpu.uploadU32([3, 9, 2]);
    const mask = gpu.upload([1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], shape);
    const probe = async (sv: Float32Array, ev: Float32Array) => {
      const s = gpu.upload(sv, shape);
      const e = gpu.upload(ev, shape);
      const l = await take(spanLoss(s, e, sp, ep, mask));
      s.release();
      e.release();
      return Float64Array.from(l, (x) => x * scale);
    };
    const row = (i: number) => Math.floor(i / seq);
    const fdS = await centralDiff(ss, (v) => probe(v, es), row, seq);
    const fdE = await centralDiff(es, (v) => probe(ss, v), row, seq);
    const start = gpu.upload(ss, shape);
    const end = gpu.upload(es, shape);
    const { dStart, dEnd } = spanLossBackward(start, end, sp, ep, scale, mask);
    checkFd(await take(dStart), fdS, "span dStart");
    checkFd(await take(dEnd), fdE, "span dEnd");
    for (const t of [start, end, sp, ep, mask]) t.release();
  }
});

// ---------------------------------------------------------------- dropout

Deno.test("dropout is deterministic per seed, keeps 1 − p within 4σ, scales by 1/(1 − p), backward reuses the mask", async () => {
  const gpu = await getGpu();
  const n = 100_003;
  const p = 0.1;
  const xs = Float32Array.from(rand(n, 71), (v) => v + 2); // never 0
  const x = gpu.upload(xs);
  const a = await take(dropout(x, p, 1234));
  const b = await take(dropout(x, p, 1234));
  const c = await take(dropout(x, p, 1235));
  assertEquals(Array.from(a), Array.from(b));
  let kept = 0;
  let differ = 0;
  for (let i = 0; i < n; i++) {
    if (a[i] !== 0) {
      kept++;
      assertEquals(a[i], Math.fround(xs[i] * Math.fround(1 / (1 - p))), `scaled element ${i}`);
    }
    if ((a[i] === 0) !== (c[i] === 0)) differ++;
  }
  const sigma = Math.sqrt(n * p * (1 - p));
  assert(Math.abs(kept - n * (1 - p)) <= 4 * sigma, `kept ${kept} of ${n} at p = ${p}`);
  // Independent masks differ in about 2p(1 − p) of the elements.
  assert(Math.abs(differ - 2 * n * p * (1 - p)) <= 6 * sigma, `seeds differ in ${differ}`);
  // Backward on a gradient of ones: exactly the forward's mask and scale.
  const ones = gpu.upload(new Float32Array(n).fill(1));
  const g = await take(dropoutBackward(ones, p, 1234));
  for (let i = 0; i < n; i++) {
    assertEquals(g[i] !== 0, a[i] !== 0, `mask element ${i}`);
    if (g[i] !== 0) assertEquals(g[i], Math.fround(1 / (1 - p)));
  }
  // p = 0 is a copy; p = 0.5 keeps about half.
  assertEquals(Array.from(await take(dropout(x, 0, 1))), Array.from(xs));
  const half = await take(dropout(ones, 0.5, 99));
  const keptHalf = half.reduce((s, v) => s + (v !== 0 ? 1 : 0), 0);
  assert(Math.abs(keptHalf - n / 2) <= 4 * Math.sqrt(n / 4), `p = 0.5 kept ${keptHalf}`);
  x.release();
  ones.release();
});

/** kernels/dropout_hash.wgsl's keep decision, written out in JS (u32 arithmetic). */
function dropKeepRef(seed: number, threshold: number, i: number): boolean {
  const low = (v: number) => {
    let x = v >>> 0;
    x = (x ^ (x >>> 16)) >>> 0;
    x = Math.imul(x, 0x7feb352d) >>> 0;
    x = (x ^ (x >>> 15)) >>> 0;
    x = Math.imul(x, 0x846ca68b) >>> 0;
    return (x ^ (x >>> 16)) >>> 0;
  };
  const key = low((seed ^ 0x9e3779b9) >>> 0);
  const h = low((low((i ^ key) >>> 0) + key) >>> 0);
  return h >>> 8 >= threshold;
}

Deno.test("dropout of a multiple of 4 elements (the vec4 texture path on CPU adapters) draws exactly the hash's mask, also in place", async () => {
  const gpu = await getGpu();
  const n = 4 * 33_001;
  const p = 0.1, seed = 777;
  const threshold = Math.round(p * 2 ** 24), scale = Math.fround(1 / (1 - p));
  const xs = Float32Array.from(rand(n, 72), (v) => v + 2);
  const want = xs.map((v, i) => dropKeepRef(seed, threshold, i) ? Math.fround(v * scale) : 0);
  const x = gpu.upload(xs);
  assertEquals(Array.from(await take(dropout(x, p, seed))), Array.from(want));
  // in place, as the backward may run it
  const y = gpu.upload(xs);
  dropoutBackward(y, p, seed, y);
  assertEquals(Array.from(await take(y)), Array.from(want));
  x.release();
});

// ---------------------------------------------------------------- AdamW

interface AdamWFixture {
  options: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number };
  param: number[];
  grads: number[][];
  params: number[][];
  m: number[];
  v: number[];
}

Deno.test("adamwStep matches torch.optim.AdamW over 3 steps with weight decay (scalar and vec4 kernels)", async () => {
  const gpu: Gpu = await getGpu();
  const f = await loadFixture<AdamWFixture>("ops_a_adamw.json");
  // The update is elementwise: the fixture's 37 values (scalar kernel) and its first 36 (a
  // multiple of 4: the vec4 kernel) are both checked against torch.
  // gradScale (the clip coefficient folded into the update): gradients stored ÷ 4 and scaled back
  // by 4 in the kernel (exact in binary floating point) must give torch's result too.
  for (
    const [n, gs] of [[f.param.length, 1], [f.param.length - (f.param.length % 4 || 4), 1], [
      f.param.length - (f.param.length % 4 || 4),
      4,
    ]]
  ) {
    const cut = (xs: number[]) => xs.slice(0, n);
    const param = gpu.upload(cut(f.param));
    const m = gpu.zeros([n]);
    const v = gpu.zeros([n]);
    for (let step = 1; step <= 3; step++) {
      const grad = gpu.upload(cut(f.grads[step - 1]).map((g) => g / gs));
      adamwStep(param, grad, m, v, { ...f.options, step, gradScale: gs });
      const got = await param.read();
      // The update per step is ~lr = 1e-2; require agreement far below it.
      assertClose(got, cut(f.params[step - 1]), 2e-6, 0, `n=${n} ×${gs}: param after step ${step}`);
      grad.release();
    }
    checkGrad(await m.read(), cut(f.m), `n=${n}: exp_avg`);
    assertClose(await v.read(), cut(f.v), 0, 1e-5, `n=${n}: exp_avg_sq`);
    for (const t of [param, m, v]) t.release();
  }
});

// ---------------------------------------------------------------- errors

Deno.test("ops part A raise ShapeError on mismatched shapes", async () => {
  const gpu = await getGpu();
  const x = gpu.upload(rand(12, 81), [3, 4]);
  const g3 = gpu.upload([1, 1, 1]);
  const labels = gpu.uploadU32([0, 1]);
  const mask = gpu.upload([1, 1, 1], [1, 3]);
  await assertRejects(() => layerNorm(x, g3, g3, 1e-5), ShapeError, "gamma");
  await assertRejects(() => crossEntropy(x, labels), ShapeError, "labels");
  await assertRejects(() => softmaxMasked(x.view([1, 3, 4]), mask, 1, 1), ShapeError, "keyMask");
  await assertRejects(() => geluBackward(g3, x), ShapeError, "sizes differ");
  await assertRejects(() => spanLoss(x, g3, labels, labels), ShapeError, "end");
  for (const t of [x, g3, labels, mask]) t.release();
});
