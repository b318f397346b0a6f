import {
  assert,
  assertClose,
  assertEquals,
  assertRejects,
  erf,
  loadFixture,
  maxAbs,
} from "./helpers.ts";
import { getGpu } from "../lib/gpu/context.ts";
import {
  type Activation,
  linear,
  linearBackward,
  linearFromPadded,
  linearPadded,
  matmul,
  type MatmulPath,
  setMatmulPath,
} from "../lib/ops/matmul.ts";
import {
  matmulPreset,
  setMatmulPreset,
  setMatmulTexturePreset,
  TEXTURE_TILES,
} from "../lib/ops/matmul_presets.ts";
import { DeviceLimitError, InvalidArgumentError, ShapeError } from "../lib/errors.ts";

interface Arr {
  shape: number[];
  data: number[];
}
interface Case {
  name: string;
  a: Arr;
  b: Arr;
  bias?: Arr;
  out0?: Arr;
  transA: boolean;
  transB: boolean;
  act: Activation;
  alpha: number;
  expected: Arr;
}
interface Fixture {
  cases: Case[];
  linearBackward: Record<"x" | "w" | "dy" | "dx" | "dw", Arr>;
}

const fixture = await loadFixture<Fixture>("matmul.json");

/** Runs every PyTorch case; max |err| ≤ 1e-4 · max(1, max |expected|). */
async function runCases(label: string) {
  const gpu = await getGpu();
  for (const c of fixture.cases) {
    const a = gpu.upload(c.a.data, c.a.shape);
    const b = gpu.upload(c.b.data, c.b.shape);
    const bias = c.bias ? gpu.upload(c.bias.data, c.bias.shape) : undefined;
    const out = c.out0 ? gpu.upload(c.out0.data, c.out0.shape) : undefined;
    const y = matmul(a, b, {
      transA: c.transA,
      transB: c.transB,
      bias,
      act: c.act,
      alpha: c.alpha,
      out,
      accumulate: out !== undefined,
    });
    assertEquals([...y.shape], c.expected.shape, `${label} ${c.name}: shape`);
    const got = await y.read();
    const scale = Math.max(1, maxAbs(c.expected.data));
    assertClose(got, c.expected.data, 1e-4 * scale, 0, `${label} ${c.name}`);
    for (const t of [a, b, bias, y]) t?.release();
  }
}

/** Runs `fn` with the matmul path forced to `path`, restoring "auto" afterwards. */
async function withPath<T>(path: MatmulPath, fn: () => Promise<T>): Promise<T> {
  setMatmulPath(path);
  try {
    return await fn();
  } finally {
    setMatmulPath("auto");
  }
}

const PATHS: MatmulPath[] = ["storage", "texture"];

Deno.test("matmul matches PyTorch float64 for all layouts, batches and epilogues (built-in preset)", async () => {
  await runCases(
    `auto path, preset ${JSON.stringify(matmulPreset((await getGpu()).adapter.kind))}`,
  );
  for (const path of PATHS) await withPath(path, () => runCases(`${path} path`));
});

Deno.test("matmul edge tiles: a 2-D workgroup with small tiles is also exact (storage path)", async () => {
  // Rows spread over y lanes and several row/column tiles per grid: every ragged edge is hit.
  const kind = (await getGpu()).adapter.kind;
  setMatmulPreset(kind, { wgx: 4, wgy: 2, tm: 3, tn: 2 });
  try {
    await withPath("storage", () => runCases("storage, preset 4x2 lanes, 3x2 tile"));
  } finally {
    setMatmulPreset(kind, undefined);
  }
});

Deno.test("matmul texture path: every texture tile and a 2-D workgroup are exact", async () => {
  // Small workgroups (2×3 lanes) put several tiles on every fixture's ragged edges.
  for (const [tm, tn] of TEXTURE_TILES) {
    setMatmulTexturePreset({ wgx: 2, wgy: 3, tm, tn });
    try {
      await withPath("texture", () => runCases(`texture, 2x3 lanes, ${tm}x${tn} tile`));
    } finally {
      setMatmulTexturePreset(undefined);
    }
  }
});

/** float64 reference: alpha·op(a)·op(b) + bias, activation, + out0 (definition of the product). */
function reference(
  a: Float32Array,
  b: Float32Array,
  d: { batch: number; M: number; N: number; K: number; transA: boolean; transB: boolean },
  o: { sharedB: boolean; alpha: number; bias?: Float32Array; act: Activation; out0?: Float32Array },
): Float64Array {
  const { batch, M, N, K, transA, transB } = d;
  const y = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const ab = z * M * K, bb = o.sharedB ? 0 : z * K * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = a[ab + (transA ? k * M + m : m * K + k)];
          const bv = b[bb + (transB ? n * K + k : k * N + n)];
          s += av * bv;
        }
        let v = o.alpha * s + (o.bias ? o.bias[n] : 0);
        if (o.act === "relu") v = Math.max(v, 0);
        if (o.act === "gelu") v = 0.5 * v * (1 + erf(v / Math.SQRT2));
        const i = (z * M + m) * N + n;
        y[i] = v + (o.out0 ? o.out0[i] : 0);
      }
    }
  }
  return y;
}

interface Extra {
  name: string;
  a: number[];
  b: number[];
  transA?: boolean;
  transB?: boolean;
  bias?: boolean;
  act?: Activation;
  alpha?: number;
  accumulate?: boolean;
}

/**
 * Shapes the PyTorch fixture lacks: K % 64 == 0 (the copyBufferToTexture path, as in the model's
 * X·Wᵀ and attention Q·Kᵀ with head size 64), K % 4 != 0 (zero-padded texels), and batches whose
 * rows exceed maxTextureDimension2D (split over dispatches) or do not fit at all (storage fallback).
 */
function extraCases(maxDim: number): Extra[] {
  const half = Math.floor(maxDim / 2.5); // two batch items per texture: 3 items → 2 chunks
  return [
    {
      name: "nt K=64 + bias, gelu",
      a: [40, 64],
      b: [24, 64],
      transB: true,
      bias: true,
      act: "gelu",
    },
    {
      name: "attention scores [3,20,64]·[3,20,64]ᵀ",
      a: [3, 20, 64],
      b: [3, 20, 64],
      transB: true,
      alpha: 0.125,
    },
    { name: "attention context [3,20,64]·[3,64,16]", a: [3, 20, 64], b: [3, 64, 16] },
    { name: "shared b, K=128 [2,5,128]·[9,128]ᵀ", a: [2, 5, 128], b: [9, 128], transB: true },
    {
      name: "batched N=12 (vec4 stores), bias, alpha, accumulate",
      a: [2, 9, 10],
      b: [2, 10, 12],
      bias: true,
      alpha: 0.5,
      accumulate: true,
    },
    { name: "nn K=130 (zero-padded texel)", a: [11, 130], b: [130, 7], act: "relu", bias: true },
    {
      name: "tn K=70 accumulate",
      a: [70, 12],
      b: [70, 9],
      transA: true,
      accumulate: true,
      alpha: -0.5,
    },
    { name: "tt K=66", a: [66, 5], b: [6, 66], transA: true, transB: true },
    { name: `batched rows ${half} (2 chunks)`, a: [3, half, 4], b: [3, 4, 5] },
    { name: `shared b, rows ${half}×3 (2 chunks)`, a: [3, half, 4], b: [4, 5] },
    { name: `batched nt rows ${half} K=64`, a: [3, half, 64], b: [3, 3, 64], transB: true },
    { name: `rows ${maxDim + 1} (storage fallback)`, a: [maxDim + 1, 4], b: [4, 3] },
  ];
}

Deno.test("matmul ragged, copy-path, split-batch and fallback shapes match a float64 reference on both paths", async () => {
  const gpu = await getGpu();
  const cases = extraCases(gpu.textures.maxDim);
  for (const path of PATHS) {
    await withPath(path, async () => {
      for (const [ci, c] of cases.entries()) {
        const { transA = false, transB = false, act = "none", alpha = 1 } = c;
        const [a0, a1] = c.a.slice(-2), [b0, b1] = c.b.slice(-2);
        const [M, K] = transA ? [a1, a0] : [a0, a1];
        const N = transB ? b0 : b1;
        const batch = c.a.slice(0, -2).reduce((x, y) => x * y, 1);
        const as = rand(c.a.reduce((x, y) => x * y), 100 + ci);
        const bs = rand(c.b.reduce((x, y) => x * y), 200 + ci);
        const biasData = c.bias ? rand(N, 300 + ci) : undefined;
        const out0 = c.accumulate ? rand(batch * M * N, 400 + ci) : undefined;
        const sharedB = c.b.length === 2;
        const want = reference(as, bs, { batch, M, N, K, transA, transB }, {
          sharedB,
          alpha,
          bias: biasData,
          act,
          out0,
        });
        const a = gpu.upload(as, c.a), b = gpu.upload(bs, c.b);
        const bias = biasData ? gpu.upload(biasData) : undefined;
        const out = out0 ? gpu.upload(out0, [...c.a.slice(0, -2), M, N]) : undefined;
        const y = matmul(a, b, { transA, transB, bias, act, alpha, out, accumulate: !!out });
        assertEquals([...y.shape], [...c.a.slice(0, -2), M, N], `${path} ${c.name}: shape`);
        const got = await y.read();
        // Inputs in [-1, 1): |sum| ≤ K; fp32 accumulation error grows like √K·eps·K at worst.
        const scale = Math.max(1, maxAbs(want));
        assertClose(got, want, 1e-4 * scale, 0, `${path} ${c.name}`);
        for (const t of [a, b, bias, y]) t?.release();
      }
    });
  }
});

Deno.test("matmul texture path records copies for K % 64 == 0, repacks otherwise, runs blocks past the texture limit", async () => {
  // Dispatch counts tell the paths apart: the copy path adds no dispatch, each repacked operand
  // adds one, the storage path is a single dispatch.
  const gpu = await getGpu();
  const count = (a: number[], b: number[], o: { transB?: boolean } = {}) => {
    const ta = gpu.zeros(a), tb = gpu.zeros(b);
    const before = gpu.counters.dispatches;
    const y = matmul(ta, tb, o);
    const n = gpu.counters.dispatches - before;
    for (const t of [ta, tb, y]) t.release();
    return n;
  };
  await withPath("texture", async () => {
    assertEquals(count([8, 64], [5, 64], { transB: true }), 1, "nt, K = 64: two copies");
    assertEquals(count([8, 64], [64, 5]), 2, "nn, K = 64: copy a, repack b");
    assertEquals(count([8, 7], [7, 5]), 3, "nn, K = 7: repack both");
    const rows = gpu.textures.maxDim + 1;
    // two row blocks, each: repack a's rows, repack b (K = 4), one product
    assertEquals(count([rows, 4], [4, 3]), 6, "rows past the texture limit: blocks");
    await gpu.sync();
  });
  await withPath("storage", async () => {
    assertEquals(count([8, 7], [7, 5]), 1, "storage path: one dispatch");
    await gpu.sync();
  });
  await assertRejects(() => setMatmulPath("fast" as MatmulPath), InvalidArgumentError, "texture");
  await assertRejects(
    () => setMatmulTexturePreset({ wgx: 8, wgy: 8, tm: 5, tn: 4 }),
    InvalidArgumentError,
    "tile",
  );
});

for (const path of PATHS) {
  Deno.test(`linear and linearBackward match PyTorch autograd (${path} path)`, () =>
    withPath(path, linearBackwardCase));
}

async function linearBackwardCase() {
  const gpu = await getGpu();
  const f = fixture.linearBackward;
  const x = gpu.upload(f.x.data, f.x.shape);
  const w = gpu.upload(f.w.data, f.w.shape);
  const dy = gpu.upload(f.dy.data, f.dy.shape);
  const { dx, dw } = linearBackward(dy, x, w);
  assert(dx, "dx requested by default");
  assertClose(await dx.read(), f.dx.data, 1e-4 * Math.max(1, maxAbs(f.dx.data)), 0, "dx");
  assertClose(await dw.read(), f.dw.data, 1e-4 * Math.max(1, maxAbs(f.dw.data)), 0, "dw");
  // dwInto accumulates: D0 + dw; needDx false returns no dx.
  const d0 = Float32Array.from(f.dw.data, (_, i) => Math.sin(i));
  const into = gpu.upload(d0, f.dw.shape);
  const r = linearBackward(dy, x, w, { needDx: false, dwInto: into });
  assert(r.dx === undefined, "needDx: false must skip dx");
  assert(r.dw === into, "dwInto is returned as dw");
  const want = f.dw.data.map((v, i) => v + d0[i]);
  assertClose(await into.read(), want, 1e-4 * Math.max(1, maxAbs(want)), 0, "dwInto");
  for (const t of [x, w, dy, dx, dw, into]) t.release();
}

/** Deterministic pseudo-random values in [-1, 1). */
function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

for (const path of PATHS) {
  Deno.test(`linearBackward: central differences of <dy, linear(x, w)> along random directions (${path} path)`, () =>
    withPath(path, centralDifferenceCase));
}

async function centralDifferenceCase() {
  // f(x, w) = <dy, x·wᵀ + b> (3-D x: [2, 5, 6], w: [7, 6]). The derivative along a direction v is
  // (f(x + h·v) − f(x − h·v)) / 2h, evaluated with the forward kernel and float64 dot products.
  const gpu = await getGpu();
  const [B, S, I, O] = [2, 5, 6, 7];
  const xs = rand(B * S * I, 1), ws = rand(O * I, 2), dys = rand(B * S * O, 3), bs = rand(O, 4);
  const vx = rand(B * S * I, 5), vw = rand(O * I, 6);
  const h = 0.5; // f is bilinear: central differences are exact up to rounding for any h
  const bias = gpu.upload(bs);
  const f = async (x: Float32Array, w: Float32Array) => {
    const tx = gpu.upload(x, [B, S, I]), tw = gpu.upload(w, [O, I]);
    const y = linear(tx, tw, bias);
    assertEquals([...y.shape], [B, S, O]);
    const r = dot(dys, await y.read());
    for (const t of [tx, tw, y]) t.release();
    return r;
  };
  const shift = (x: Float32Array, v: Float32Array, s: number) => x.map((xi, i) => xi + s * v[i]);
  const fdX = (await f(shift(xs, vx, h), ws) - await f(shift(xs, vx, -h), ws)) / (2 * h);
  const fdW = (await f(xs, shift(ws, vw, h)) - await f(xs, shift(ws, vw, -h))) / (2 * h);
  const x = gpu.upload(xs, [B, S, I]), w = gpu.upload(ws, [O, I]), dy = gpu.upload(dys, [B, S, O]);
  const { dx, dw } = linearBackward(dy, x, w);
  assert(dx);
  assertEquals([...dx.shape], [B, S, I]);
  const gx = dot(await dx.read(), vx), gw = dot(await dw.read(), vw);
  assert(Math.abs(gx - fdX) <= 1e-3 * Math.abs(fdX), `<dx, v> ${gx} vs central difference ${fdX}`);
  assert(Math.abs(gw - fdW) <= 1e-3 * Math.abs(fdW), `<dw, V> ${gw} vs central difference ${fdW}`);
  for (const t of [x, w, dy, dx, dw, bias]) t.release();
}

for (const path of PATHS) {
  Deno.test(`matmul steady state: a second identical call creates no buffers, textures, pipelines or bind groups (${path} path)`, () =>
    withPath(path, steadyStateCase));
}

async function steadyStateCase() {
  const gpu = await getGpu();
  const a = gpu.upload(rand(24 * 20, 7), [24, 20]);
  const w = gpu.upload(rand(30 * 20, 8), [30, 20]);
  const bias = gpu.upload(rand(30, 9));
  const step = async () => {
    const y = linear(a, w, bias, "gelu");
    const { dx, dw } = linearBackward(y, a, w);
    await dw.read();
    for (const t of [y, dx!, dw]) t.release();
  };
  await step();
  const before = { ...gpu.counters };
  const textures = gpu.textures.created;
  await step();
  assertEquals(gpu.textures.created, textures, "textures");
  assertEquals(gpu.counters.buffersCreated, before.buffersCreated, "buffers");
  assertEquals(gpu.counters.pipelinesCreated, before.pipelinesCreated, "pipelines");
  assertEquals(gpu.counters.bindGroupsCreated, before.bindGroupsCreated, "bind groups");
  assertEquals(gpu.counters.submits, before.submits + 1, "one submit per step");
  for (const t of [a, w, bias]) t.release();
}

Deno.test("matmul rejects bad shapes and options with typed errors", async () => {
  const gpu = await getGpu();
  const a = gpu.upload(rand(6, 1), [2, 3]);
  const b = gpu.upload(rand(8, 2), [4, 2]);
  const b3 = gpu.upload(rand(6, 3), [3, 2]);
  await assertRejects(() => matmul(a, b), ShapeError, "[2, 3]");
  await assertRejects(() => matmul(a, b3, { bias: a }), ShapeError, "bias");
  await assertRejects(() => matmul(a, b3, { accumulate: true }), InvalidArgumentError, "out");
  await assertRejects(() => matmul(a, b3, { out: a }), ShapeError, "out");
  const sq = gpu.upload(rand(9, 4), [3, 3]);
  await assertRejects(() => matmul(sq, sq, { out: sq }), InvalidArgumentError, "storage");
  await assertRejects(
    () => matmul(a, b3, { act: "tanh" as Activation }),
    InvalidArgumentError,
    "activation",
  );
  const a3 = gpu.upload(rand(12, 5), [2, 2, 3]);
  const bBad = gpu.upload(rand(18, 6), [3, 3, 2]);
  await assertRejects(() => matmul(a3, bBad), ShapeError, "batch");
  await assertRejects(
    () => setMatmulPreset("cpu", { wgx: 8, wgy: 1, tm: 64, tn: 8 }),
    InvalidArgumentError,
  );
  for (const t of [a, b, b3, sq, a3, bBad]) t.release();
});

Deno.test("GELU epilogue: exact-erf GELU within 5e-7 over [-8, 8] (erf error ≤ 1e-7)", async () => {
  // The "gelu range" fixture is out = gelu(x) (K = 1, b = 1). With erf accurate to ~1e-7, GELU
  // is off by at most 0.5·|x|·1e-7 plus fp32 rounding of the result; 5e-7 absolute catches a
  // tanh approximation (error ~1e-3) and a perturbed erf coefficient.
  const gpu = await getGpu();
  const c = fixture.cases.find((c) => c.name === "gelu range")!;
  const x = gpu.upload(c.a.data, c.a.shape);
  const one = gpu.upload([1], [1, 1]);
  const zero = gpu.upload([0], [1]);
  const y = matmul(x, one, { bias: zero, act: "gelu" });
  const got = await y.read();
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    worst = Math.max(worst, Math.abs(got[i] - c.expected.data[i]));
  }
  assert(worst <= 5e-7, `max |gelu error| ${worst}`);
  for (const t of [x, one, zero, y]) t.release();
});

Deno.test("matmul splits more than 65535 batch items over dispatches; oversized grids raise", async () => {
  const gpu = await getGpu();
  const n = 65537; // one past the per-dimension workgroup limit: two dispatches along z
  const xs = rand(n, 21), ys = rand(n, 22);
  const a = gpu.upload(xs, [n, 1, 1]);
  const b = gpu.upload(ys, [n, 1, 1]);
  const y = matmul(a, b, { alpha: 2 });
  const got = await y.read();
  const want = Array.from(xs, (x, i) => 2 * x * ys[i]);
  assertClose(got, want, 1e-6, 1e-6, "batched 1×1 products");
  for (const t of [a, b, y]) t.release();
  const p = matmulPreset(gpu.adapter.kind);
  const rows = gpu.limits.maxComputeWorkgroupsPerDimension * p.wgy * p.tm + 1;
  if (rows * 4 <= gpu.limits.maxStorageBufferBindingSize) {
    const tall = gpu.empty([rows, 1]);
    const one = gpu.upload([1], [1, 1]);
    // the storage kernel's grid (the texture path runs such a product as blocks)
    await withPath(
      "storage",
      () => assertRejects(() => matmul(tall, one), DeviceLimitError, "workgroups"),
    );
    tall.release();
    one.release();
  }
});

Deno.test("linearPadded → linearFromPadded equals the float64 two-layer product for widths N % 64 != 0 (texture path)", async () => {
  const gpu = await getGpu();
  // [rows, in] → N (N % 64 != 0) → out, as a pruned FFN: W₂(act(W₁x + b₁)) + b₂
  const [K, Nout] = [16, 24];
  // M ≥ 1024 with N ≤ 32: the narrow tile (MATMUL_TEXTURE_PRESET_NARROW)
  for (
    const [N, act, M] of [
      [130, "gelu", 200],
      [129, "none", 200],
      [131, "relu", 200],
      [96, "gelu", 200],
      [3, "gelu", 200],
      [21, "gelu", 1100],
      [157, "gelu", 1024], // 160 columns: 128 on the large tile, the last 32 on the narrow one
    ] as const
  ) {
    const xs = rand(M * K, N), w1 = rand(N * K, N + 1), b1 = rand(N, N + 2);
    const w2 = rand(Nout * N, N + 3), b2 = rand(Nout, N + 4);
    const z = new Float64Array(M * N);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let v = b1[n];
        for (let k = 0; k < K; k++) v += xs[m * K + k] * w1[n * K + k];
        if (act === "relu") v = Math.max(v, 0);
        if (act === "gelu") v = 0.5 * v * (1 + erf(v / Math.SQRT2));
        z[m * N + n] = v;
      }
    }
    const want = new Float64Array(M * Nout);
    for (let m = 0; m < M; m++) {
      for (let j = 0; j < Nout; j++) {
        let v = b2[j];
        for (let n = 0; n < N; n++) v += z[m * N + n] * w2[j * N + n];
        want[m * Nout + j] = v;
      }
    }
    const x = gpu.upload(xs, [M, K]), tw1 = gpu.upload(w1, [N, K]), tb1 = gpu.upload(b1, [N]);
    const tw2 = gpu.upload(w2, [Nout, N]), tb2 = gpu.upload(b2, [Nout]);
    const zp = await withPath("texture", () => Promise.resolve(linearPadded(x, tw1, tb1, act)));
    assert(zp, `N=${N}: linearPadded did not apply on the texture path`);
    const ld = Math.ceil(N / 64) * 64;
    assertEquals([...zp.shape], [M, ld]);
    // the columns up to ⌈N/4⌉·4 are exact zeros (zero weight rows and bias: act(0) = 0); those
    // past are not written and must not be read: poison them with NaN before the second product
    const zv = await zp.read();
    const n4 = Math.ceil(N / 4) * 4;
    for (let m = 0; m < M; m++) {
      for (let n = N; n < n4; n++) {
        assert(zv[m * ld + n] === 0, `N=${N}: z[${m}, ${n}] = ${zv[m * ld + n]}`);
      }
      zv.fill(NaN, m * ld + n4, (m + 1) * ld);
    }
    gpu.device.queue.writeBuffer(zp.buffer, 0, new Float32Array(zv));
    const y = linearFromPadded(zp, tw2, tb2);
    assertEquals([...y.shape], [M, Nout]);
    assertClose(await y.read(), want, 1e-4 * Math.max(1, maxAbs(want)), 1e-5, `N=${N} ${act}`);
    for (const t of [x, tw1, tb1, tw2, tb2, zp, y]) t.release();
  }
  // it does not apply to widths of a multiple of 64, nor on the storage path
  const x = gpu.upload(rand(200 * 16, 1), [200, 16]), w = gpu.upload(rand(128 * 16, 2), [128, 16]);
  assertEquals(linearPadded(x, w), undefined);
  const w3 = gpu.upload(rand(130 * 16, 3), [130, 16]);
  assertEquals(await withPath("storage", () => Promise.resolve(linearPadded(x, w3))), undefined);
  await assertRejects(() => linearPadded(x, gpu.upload(rand(130 * 15, 4), [130, 15])), ShapeError);
  const w4 = gpu.upload(rand(24 * 130, 5), [24, 130]);
  await assertRejects(() => linearFromPadded(x, w4), ShapeError, "padded output");
  for (const t of [x, w, w3, w4]) t.release();
});

Deno.test("texture path: products past the texture limit run as blocks (decoder N > maxDim, its dW with M > maxDim) and match float64", async () => {
  const gpu = await getGpu();
  const big = gpu.textures.maxDim + 70; // two blocks; the second ragged, N % 4 == 2 (scalar stores)
  // forward: x [6, 8] · w [big, 8]ᵀ + bias
  const [R, K] = [6, 8];
  const xs = rand(R * K, 1), ws = rand(big * K, 2), bs = rand(big, 3);
  const want = new Float64Array(R * big);
  for (let r = 0; r < R; r++) {
    for (let n = 0; n < big; n++) {
      want[r * big + n] = bs[n] + dot(xs.subarray(r * K, r * K + K), ws.subarray(n * K, n * K + K));
    }
  }
  const x = gpu.upload(xs, [R, K]), w = gpu.upload(ws, [big, K]), b = gpu.upload(bs, [big]);
  gpu.startRecording();
  const y = await withPath("texture", () => Promise.resolve(linear(x, w, b)));
  const kernels = gpu.stopRecording().map((d) => d.name);
  assert(kernels.includes("matmul_tex.wgsl"), `texture kernel not used: ${kernels.join(", ")}`);
  assert(!kernels.includes("matmul.wgsl"), "fell back to the storage kernel");
  assertClose(await y.read(), want, 1e-5, 1e-5, `linear N=${big}`);
  // weight gradient: dyᵀ·x with dy [R, big+2] (M = big + 2 ≡ 0 mod 4: vec4 stores), accumulated
  const M = big + 2, Nc = 12;
  const dys = rand(R * M, 4), xs2 = rand(R * Nc, 5), base = rand(M * Nc, 6);
  const want2 = Float64Array.from(base);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < Nc; n++) {
      for (let r = 0; r < R; r++) want2[m * Nc + n] += dys[r * M + m] * xs2[r * Nc + n];
    }
  }
  const dy = gpu.upload(dys, [R, M]),
    x2 = gpu.upload(xs2, [R, Nc]),
    into = gpu.upload(base, [M, Nc]);
  await withPath("texture", () => {
    matmul(dy, x2, { transA: true, out: into, accumulate: true });
    return Promise.resolve();
  });
  assertClose(await into.read(), want2, 1e-5, 1e-5, `dyᵀ·x M=${M}`);
  for (const t of [x, w, b, y, dy, x2, into]) t.release();
});

Deno.test("texture path: narrow products on swapped tiles and a wide product's last N % 128 columns as a second dispatch match float64", async () => {
  const gpu = await getGpu();
  const K = 12;
  // M, N → the texture entries and grids expected (M ≥ 1024: swapped tiles for < 128 columns,
  // rows along x: grid x = ⌈M / 128⌉, y = column tiles of 8 or 16 (4 with scalar stores))
  const cases: [number, number, Activation, boolean, string[]][] = [
    [1024, 160, "gelu", false, ["matmul_tex_16x16_v4[1,16]", "matmul_tex_16x8_v4[8,4]"]],
    [1024, 184, "relu", true, ["matmul_tex_16x16_v4[1,16]", "matmul_tex_16x8_v4[8,7]"]],
    [1024, 200, "none", true, ["matmul_tex_16x16_v4[1,16]", "matmul_tex_16x16_v4[8,5]"]],
    // N % 4 != 0: scalar stores (the 8 × 8 tile for the first 128 columns, 16 × 4 swapped)
    [1024, 130, "gelu", false, ["matmul_tex_8x8[2,16]", "matmul_tex_16x4[8,1]"]],
    [1100, 40, "gelu", true, ["matmul_tex_16x8_v4[9,5]"]],
    [1100, 80, "relu", false, ["matmul_tex_16x16_v4[9,5]"]],
    [1030, 7, "gelu", true, ["matmul_tex_16x4[9,2]"]],
  ];
  for (const [M, N, act, accumulate, entries] of cases) {
    const xs = rand(M * K, N), ws = rand(N * K, N + 1), bs = rand(N, N + 2);
    const base = rand(M * N, N + 3);
    const want = new Float64Array(M * N);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let v = bs[n] + dot(xs.subarray(m * K, m * K + K), ws.subarray(n * K, n * K + K));
        if (act === "relu") v = Math.max(v, 0);
        if (act === "gelu") v = 0.5 * v * (1 + erf(v / Math.SQRT2));
        want[m * N + n] = v + (accumulate ? base[m * N + n] : 0);
      }
    }
    const x = gpu.upload(xs, [M, K]), w = gpu.upload(ws, [N, K]), b = gpu.upload(bs, [N]);
    const out = gpu.upload(base, [M, N]);
    gpu.startRecording();
    await withPath(
      "texture",
      () => Promise.resolve(matmul(x, w, { transB: true, bias: b, act, out, accumulate })),
    );
    const ran = gpu.stopRecording().filter((d) => d.name === "matmul_tex.wgsl").map((d) =>
      `${d.entry}[${d.workgroups[0]},${d.workgroups[1]}]`
    );
    assertEquals(ran, entries, `N=${N}`);
    assertClose(await out.read(), want, 1e-5, 1e-5, `N=${N} ${act} accumulate=${accumulate}`);
    for (const t of [x, w, b, out]) t.release();
  }
});
