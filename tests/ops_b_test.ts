/**
 * Tests of ops part B (embedding, heads, masks, reduce, rows) against float64 PyTorch fixtures
 * (tests/fixtures/gen_ops_b.py), exact adjoint identities ⟨dy, f(x)⟩ = ⟨f*(dy), x⟩ evaluated in
 * float64 on the CPU, and direct float64 / float32-sequential definitions for large shapes.
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
import { getGpu } from "../lib/gpu/context.ts";
import type { Tensor } from "../lib/gpu/tensor.ts";
import { InvalidArgumentError, ShapeError } from "../lib/errors.ts";
import { embeddingBackward, embeddingGather, embeddingGatherSum } from "../lib/ops/embedding.ts";
import {
  mergeHeads,
  mergeHeadsBackward,
  splitHeads,
  splitHeadsBackward,
} from "../lib/ops/heads.ts";
import {
  accumulateSquares,
  scaleColsGrouped,
  scaleColsGroupedBackward,
  scaleRows,
  scaleRowsBackward,
} from "../lib/ops/masks.ts";
import { dotAll, dotGroups, dotRows, sumAll, sumGroups, sumRows } from "../lib/ops/reduce.ts";
import { addRowVector, broadcastRows, selectRows, selectRowsBackward } from "../lib/ops/rows.ts";
import { mul } from "../lib/ops/elementwise.ts";
import { setKernelClass } from "../lib/ops/kernel_class.ts";

// deno-lint-ignore no-explicit-any
type Case = Record<string, any>;
const fx = await loadFixture<Record<string, Case[]>>("ops_b.json");

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

/** Forward tolerance: 1e-4 · scale (stated project tolerance for fp32 forward). */
const fwdTol = (want: ArrayLike<number>) => 1e-4 * Math.max(1, maxAbs(want));
/** Gradient tolerance: 1e-5 · scale elementwise (tighter than the stated rel 1e-3). */
const gradTol = (want: ArrayLike<number>) => 1e-5 * Math.max(1, maxAbs(want));

/** ⟨a, b⟩ in float64. */
function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assertEquals(a.length, b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Σ|a∘b| in float64, the scale of a dot product's rounding error. */
function absDot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] * b[i]);
  return s;
}

/** Asserts ⟨a1, b1⟩ = ⟨a2, b2⟩ up to `rel` of the absolute dot scale. */
function assertAdjoint(
  a1: ArrayLike<number>,
  b1: ArrayLike<number>,
  a2: ArrayLike<number>,
  b2: ArrayLike<number>,
  rel: number,
  label: string,
): void {
  const l = dot(a1, b1);
  const r = dot(a2, b2);
  const scale = Math.max(absDot(a1, b1), absDot(a2, b2), 1e-30);
  assert(Math.abs(l - r) <= rel * scale, `${label}: ⟨·,·⟩ ${l} vs ${r} (scale ${scale})`);
}

/** Reads and releases tensors. */
async function take(...ts: Tensor[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const t of ts) out.push(await t.read());
  for (const t of ts) if (!t.released) t.release();
  return out;
}

/** Deterministic pseudo-random values in [-1, 1) (LCG), for large shapes. */
function noise(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** The f32 values a fixture list encodes (9 significant digits round-trip float32 exactly). */
function f32(values: number[]): number[] {
  return Array.from(Float32Array.from(values));
}

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return ua.length === ub.length && ua.every((v, i) => v === ub[i]);
}

// ------------------------------------------------------------------ embedding

Deno.test("embeddingGather and embeddingBackward match PyTorch (repeated ids) and adjoint", async () => {
  const gpu = await getGpu();
  for (const c of fx.embedding) {
    const label = `embedding V=${c.V} d=${c.d} N=${c.ids.length}`;
    const table = gpu.upload(c.table, [c.V, c.d]);
    const ids = gpu.uploadU32(c.ids);
    const dy = gpu.upload(c.dy, [c.ids.length, c.d]);
    const y = embeddingGather(table, ids);
    assertEquals(y.shape, [c.ids.length, c.d]);
    const dtable = embeddingBackward(dy, Int32Array.from(c.ids), c.V);
    assertEquals(dtable.shape, [c.V, c.d]);
    const [yv, dtv] = await take(y, dtable);
    assertEquals(Array.from(yv), f32(c.y), `${label}: gather is an exact copy`);
    assertClose(dtv, c.dtable, gradTol(c.dtable), 0, `${label} dtable`);
    // ⟨dy, gather(table)⟩ = ⟨dtable, table⟩
    assertAdjoint(f32(c.dy), yv, dtv, f32(c.table), 1e-6, `${label} adjoint`);
    // `into`: the gradient is added to what is there; `out`: the gather writes into it.
    const init = noise(c.V * c.d, 7);
    const into = gpu.upload(init, [c.V, c.d]);
    const same = embeddingBackward(dy, Int32Array.from(c.ids), c.V, into);
    assert(same === into, "embeddingBackward returns `into`");
    const out = gpu.empty([c.ids.length, c.d]);
    assert(embeddingGather(table, ids, out) === out, "embeddingGather returns `out`");
    const [iv, ov] = await take(into, out);
    assertClose(iv, init.map((v, i) => v + c.dtable[i]), gradTol(c.dtable), 0, `${label} into`);
    assertEquals(Array.from(ov), f32(c.y));
    table.release();
    ids.release();
    dy.release();
  }
});

Deno.test("embeddingGather with d % 4 == 0 (vec4 rows) copies table rows; ids outside [0, V) give zero rows", async () => {
  const gpu = await getGpu();
  const V = 13, d = 12;
  const tableHost = noise(V * d, 11);
  const idsHost = Int32Array.from([3, 0, 12, -1, 13, 3, 7, 1000]);
  const table = gpu.upload(tableHost, [V, d]);
  const ids = gpu.uploadU32(idsHost);
  const y = embeddingGather(table, ids);
  const got = await y.read();
  const want = new Float32Array(idsHost.length * d);
  idsHost.forEach((id, n) => {
    if (id >= 0 && id < V) want.set(tableHost.subarray(id * d, (id + 1) * d), n * d);
  });
  assertEquals(Array.from(got), Array.from(want));
  for (const t of [table, ids, y]) t.release();
});

Deno.test("embeddingGatherSum adds rows of two tables as f32 (vec4 and odd widths); ids outside a table's range add zero rows", async () => {
  const gpu = await getGpu();
  for (const d of [12, 7]) {
    const Va = 9, Vb = 3;
    const aHost = noise(Va * d, 5), bHost = noise(Vb * d, 6);
    const idsA = Int32Array.from([3, 0, 8, -1, 9, 3, 7]);
    const idsB = Int32Array.from([0, 2, 1, 1, 0, 3, -5]);
    const ts = [
      gpu.upload(aHost, [Va, d]),
      gpu.uploadU32(idsA),
      gpu.upload(bHost, [Vb, d]),
      gpu.uploadU32(idsB),
    ];
    const y = embeddingGatherSum(ts[0], ts[1], ts[2], ts[3]);
    assertEquals(y.shape, [idsA.length, d]);
    const got = await y.read();
    const want = new Float32Array(idsA.length * d);
    for (let n = 0; n < idsA.length; n++) {
      for (let j = 0; j < d; j++) {
        const a = idsA[n] >= 0 && idsA[n] < Va ? aHost[idsA[n] * d + j] : 0;
        const b = idsB[n] >= 0 && idsB[n] < Vb ? bHost[idsB[n] * d + j] : 0;
        want[n * d + j] = Math.fround(a + b);
      }
    }
    assertEquals(Array.from(got), Array.from(want), `d = ${d}`);
    for (const t of [...ts, y]) t.release();
  }
  const t = gpu.upload(noise(8, 1), [2, 4]), w = gpu.upload(noise(10, 1), [2, 5]);
  const ids = gpu.uploadU32(Int32Array.from([0, 1]));
  await assertRejects(() => embeddingGatherSum(t, ids, w, ids), ShapeError);
  for (const x of [t, w, ids]) x.release();
});

Deno.test("embeddingBackward sums in increasing position order: bit-exact and deterministic", async () => {
  const gpu = await getGpu();
  const V = 50, d = 67, N = 3001;
  // Few distinct ids (heavy repeats, some ids never used) and values of very different magnitudes,
  // so a different summation order would change the f32 result.
  const idsHost = Int32Array.from({ length: N }, (_, n) => ((n * 7919) % 13) * 3 + (n % 2));
  const base = noise(N * d, 3);
  const dyHost = base.map((v, i) => v * 10 ** ((i % 9) - 4));
  const dy = gpu.upload(dyHost, [N, d]);
  const init = noise(V * d, 11);
  // Reference: the contract itself, in float32: acc = Σ_{n increasing} dy[n], then into + acc.
  const acc = new Float32Array(V * d);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < d; j++) {
      const o = idsHost[n] * d + j;
      acc[o] = Math.fround(acc[o] + dyHost[n * d + j]);
    }
  }
  const want = init.map((v, i) => Math.fround(v + acc[i]));
  const runs: Float32Array[] = [];
  for (let k = 0; k < 2; k++) {
    const into = gpu.upload(init, [V, d]);
    embeddingBackward(dy, idsHost, V, into);
    runs.push((await take(into))[0]);
  }
  assert(bitsEqual(runs[0], runs[1]), "two runs must be bit-identical");
  assert(bitsEqual(runs[0], want), "result must equal the increasing-order f32 sum bit for bit");
  // and it is close to the float64 sum
  const exact = new Float64Array(V * d);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < d; j++) exact[idsHost[n] * d + j] += dyHost[n * d + j];
  }
  assertClose(runs[0], Array.from(exact, (v, i) => v + init[i]), 1e-4 * maxAbs(exact), 0, "f64");
  dy.release();
});

Deno.test("embedding ops reject bad shapes and ids with typed errors", async () => {
  const gpu = await getGpu();
  const dy = gpu.upload(new Float32Array(6), [3, 2]);
  await assertRejects(() => embeddingBackward(dy, Int32Array.from([0, 1]), 4), ShapeError);
  await assertRejects(
    () => embeddingBackward(dy, Int32Array.from([0, 4, 1]), 4),
    InvalidArgumentError,
    "outside [0, 4)",
  );
  const into = gpu.zeros([5, 2]);
  await assertRejects(() => embeddingBackward(dy, Int32Array.from([0, 1, 2]), 4, into), ShapeError);
  const ids = gpu.uploadU32([0, 1]);
  await assertRejects(() => embeddingGather(dy, ids, into), ShapeError);
  dy.release();
  into.release();
  ids.release();
});

// ------------------------------------------------------------------ heads

Deno.test("splitHeads / mergeHeads and backward match PyTorch, with adjoint identities", async () => {
  const gpu = await getGpu();
  for (const c of fx.heads) {
    const { B, S, H, dh, W, colOffset } = c;
    const label = `heads B=${B} S=${S} H=${H} dh=${dh} W=${W} off=${colOffset}`;
    const x = gpu.upload(c.x, [B * S, W]);
    const heads = splitHeads(x, B, S, H, dh, colOffset);
    assertEquals(heads.shape, [B * H, S, dh]);
    // backward into a dx pre-filled with a sentinel: columns outside the block must keep it
    const sentinel = -1234.5;
    const dx = gpu.upload(new Float32Array(B * S * W).fill(sentinel), [B * S, W]);
    const dHeads = gpu.upload(c.dHeads, [B * H, S, dh]);
    splitHeadsBackward(dHeads, dx, B, S, H, dh, colOffset);
    const ctx = gpu.upload(c.ctx, [B * H, S, dh]);
    const merged = mergeHeads(ctx, B, S, H);
    assertEquals(merged.shape, [B * S, H * dh]);
    const dOut = gpu.upload(c.dOut, [B * S, H * dh]);
    const dctx = mergeHeadsBackward(dOut, B, S, H);
    assertEquals(dctx.shape, [B * H, S, dh]);
    const [hv, dxv, mv, dcv] = await take(heads, dx, merged, dctx);
    assertEquals(Array.from(hv), f32(c.heads), `${label}: split is an exact copy`);
    assertEquals(Array.from(mv), f32(c.merged), `${label}: merge is an exact copy`);
    assertEquals(Array.from(dcv), f32(c.dctx), `${label}: mergeHeadsBackward`);
    for (let i = 0; i < dxv.length; i++) {
      const col = i % W;
      const inBlock = col >= colOffset && col < colOffset + H * dh;
      // autograd's dx is zero outside the block; ours leaves those columns untouched
      assertEquals(dxv[i], inBlock ? Math.fround(c.dx[i]) : sentinel, `${label}: dx[${i}]`);
    }
    const dxBlock = Array.from(dxv, (v) => (v === sentinel ? 0 : v));
    assertAdjoint(f32(c.dHeads), hv, dxBlock, f32(c.x), 1e-12, `${label} split adjoint`);
    assertAdjoint(f32(c.dOut), mv, dcv, f32(c.ctx), 1e-12, `${label} merge adjoint`);
    for (const t of [x, dHeads, ctx, dOut]) t.release();
  }
});

Deno.test("splitHeads round trip over a packed Q/K/V [B·S, 3d] with non-zero colOffset", async () => {
  const gpu = await getGpu();
  const B = 3, S = 5, H = 4, dh = 7, d = H * dh;
  const xHost = noise(B * S * 3 * d, 5);
  const x = gpu.upload(xHost, [B * S, 3 * d]);
  const dx = gpu.upload(new Float32Array(B * S * 3 * d).fill(NaN), [B * S, 3 * d]);
  const parts = [0, d, 2 * d].map((off) => splitHeads(x, B, S, H, dh, off));
  parts.forEach((p, k) => splitHeadsBackward(p, dx, B, S, H, dh, k * d));
  // merge(split(K block)) is the K block itself
  const mergedK = mergeHeads(parts[1], B, S, H);
  const [dxv, mk] = await take(dx, mergedK);
  assert(bitsEqual(dxv, xHost), "splitHeadsBackward of the three splits rebuilds x exactly");
  const kBlock = new Float32Array(B * S * d);
  for (let r = 0; r < B * S; r++) {
    kBlock.set(xHost.subarray(r * 3 * d + d, r * 3 * d + 2 * d), r * d);
  }
  assert(bitsEqual(mk, kBlock), "mergeHeads(splitHeads(x, K block)) is the K block");
  for (const p of parts) p.release();
  x.release();
  await assertRejects(
    () => splitHeads(gpu.zeros([B * S, 3 * d]), B, S, H, dh, 2 * d + 1),
    ShapeError,
  );
  await assertRejects(() => mergeHeadsBackward(gpu.zeros([B * S, 3 * d + 1]), B, S, H), ShapeError);
});

// ------------------------------------------------------------------ masks

testBothClasses(
  "scaleRows and backward match PyTorch autograd and adjoint identities",
  async () => {
    const gpu = await getGpu();
    for (const c of fx.scaleRows) {
      const label = `scaleRows R=${c.R} C=${c.C}`;
      const x = gpu.upload(c.x, [c.R, c.C]);
      const s = gpu.upload(c.s, [c.R]);
      const dy = gpu.upload(c.dy, [c.R, c.C]);
      const y = scaleRows(x, s);
      const { dx, ds } = scaleRowsBackward(dy, x, s);
      assertEquals(ds.shape, [c.R]);
      const [yv, dxv, dsv] = await take(y, dx, ds);
      assertClose(yv, c.y, 1e-6 * maxAbs(c.y), 0, `${label} y`);
      assertClose(dxv, c.dx, gradTol(c.dx), 0, `${label} dx`);
      assertClose(dsv, c.ds, gradTol(c.ds), 0, `${label} ds`);
      // y is linear in x and in s: ⟨dy, y⟩ = ⟨dx, x⟩ = ⟨ds, s⟩
      assertAdjoint(f32(c.dy), yv, dxv, f32(c.x), 1e-5, `${label} x-adjoint`);
      assertAdjoint(f32(c.dy), yv, dsv, f32(c.s), 1e-5, `${label} s-adjoint`);
      for (const t of [x, s, dy]) t.release();
    }
    // 3-D context [B·H, S, dh]: the row is everything after the first dimension
    const x3 = gpu.upload(noise(6 * 4 * 5, 1), [6, 4, 5]);
    const s3 = gpu.upload(noise(6, 2), [6]);
    const { dx, ds } = scaleRowsBackward(x3, x3, s3);
    const [dsv] = await take(ds, dx);
    const xh = await x3.read();
    for (let r = 0; r < 6; r++) {
      const want = dot(xh.subarray(r * 20, r * 20 + 20), xh.subarray(r * 20, r * 20 + 20));
      assert(Math.abs(dsv[r] - want) <= 1e-5 * want, `3-D ds[${r}] ${dsv[r]} vs ${want}`);
    }
    x3.release();
    s3.release();
  },
);

testBothClasses(
  "scaleColsGrouped and backward match PyTorch autograd and adjoint identities",
  async () => {
    const gpu = await getGpu();
    for (const c of fx.scaleColsGrouped) {
      const label = `scaleColsGrouped G=${c.G} T=${c.T} C=${c.C}`;
      const x = gpu.upload(c.x, [c.G * c.T, c.C]);
      const s = gpu.upload(c.s, [c.G, c.C]);
      const dy = gpu.upload(c.dy, [c.G * c.T, c.C]);
      const y = scaleColsGrouped(x, s, c.T);
      const { dx, ds } = scaleColsGroupedBackward(dy, x, s, c.T);
      assertEquals(ds.shape, [c.G, c.C]);
      const [yv, dxv, dsv] = await take(y, dx, ds);
      assertClose(yv, c.y, 1e-6 * maxAbs(c.y), 0, `${label} y`);
      assertClose(dxv, c.dx, gradTol(c.dx), 0, `${label} dx`);
      assertClose(dsv, c.ds, gradTol(c.ds), 0, `${label} ds`);
      assertAdjoint(f32(c.dy), yv, dxv, f32(c.x), 1e-5, `${label} x-adjoint`);
      assertAdjoint(f32(c.dy), yv, dsv, f32(c.s), 1e-5, `${label} s-adjoint`);
      for (const t of [x, s, dy]) t.release();
    }
    const x = gpu.zeros([10, 3]);
    const s = gpu.zeros([3, 3]);
    await assertRejects(() => scaleColsGrouped(x, s, 3), ShapeError);
    await assertRejects(() => scaleRows(x, s), ShapeError);
    x.release();
    s.release();
  },
);

Deno.test("accumulateSquares adds g∘g to the accumulator", async () => {
  const gpu = await getGpu();
  for (const c of fx.accumulateSquares) {
    const g = gpu.upload(c.g);
    const acc = gpu.upload(c.acc);
    accumulateSquares(g, acc);
    accumulateSquares(g, acc); // twice: acc + 2 g²
    const [v] = await take(acc);
    const want = c.out.map((o: number, i: number) => o + c.g[i] * c.g[i]);
    assertClose(v, want, 1e-6 * maxAbs(want), 0, `accumulateSquares n=${c.n}`);
    g.release();
  }
  const a = gpu.zeros([3]);
  await assertRejects(() => accumulateSquares(a, a), InvalidArgumentError);
  await assertRejects(() => accumulateSquares(a, gpu.zeros([4])), ShapeError);
  a.release();
});

// ------------------------------------------------------------------ reductions

testBothClasses("sumRows, sumGroups and sumAll match PyTorch float64", async () => {
  const gpu = await getGpu();
  for (const c of fx.sumRows) {
    const label = `sumRows R=${c.R} C=${c.C}`;
    const x = gpu.upload(c.x, [c.R, c.C]);
    const y = sumRows(x);
    assertEquals(y.shape, [c.C]);
    const into = gpu.upload(c.into);
    assert(sumRows(x, into) === into, "sumRows returns `into`");
    const [yv, iv] = await take(y, into);
    assertClose(yv, c.sum, fwdTol(c.sum), 0, label);
    assertClose(iv, c.sumInto, fwdTol(c.sumInto), 0, `${label} into`);
    x.release();
  }
  for (const c of fx.sumGroups) {
    const x = gpu.upload(c.x, [c.G * c.T, c.C]);
    const y = sumGroups(x, c.T);
    assertEquals(y.shape, [c.G, c.C]);
    const [yv] = await take(y, x);
    assertClose(yv, c.sum, fwdTol(c.sum), 0, `sumGroups G=${c.G} T=${c.T} C=${c.C}`);
  }
  for (const c of fx.sumAll) {
    const x = gpu.upload(c.x);
    const y = sumAll(x);
    assertEquals(y.shape, [1]);
    const [yv] = await take(y, x);
    assertClose(yv, c.sum, fwdTol(c.sum), 0, `sumAll n=${c.n}`);
  }
});

testBothClasses(
  "dotAll matches a float64 dot product and sumAll of the product",
  async () => {
    const gpu = await getGpu();
    for (const n of [1, 1000, 70001]) {
      const ah = noise(n, n), bh = noise(n, n + 1);
      let want = 0;
      for (let i = 0; i < n; i++) want += ah[i] * bh[i];
      const a = gpu.upload(ah), b = gpu.upload(bh);
      const prod = mul(a, b);
      const [got, viaProduct] = await take(dotAll(a, b), sumAll(prod));
      assertClose(got, [want], 1e-6 * Math.sqrt(n), 1e-6, `dotAll n=${n}`);
      // Not bit-equal in general: a GPU compiler may fuse the product into the first add (FMA;
      // NVIDIA's does), so the two differ by the products' rounding.
      assertClose(got, viaProduct, 1e-6 * Math.sqrt(n), 1e-6, `dotAll n=${n} vs sumAll(a∘b)`);
      for (const t of [a, b, prod]) t.release();
    }
    const a = gpu.zeros([3]);
    await assertRejects(() => dotAll(a, gpu.zeros([4])), ShapeError);
    a.release();
  },
);

testBothClasses(
  "reductions over many rows (multi-stage) match float64 sums and are deterministic",
  async () => {
    const gpu = await getGpu();
    // [R, C] shapes: one stage (R ≤ 256), two stages, three stages (R/256 > 256), ragged C
    // (C % 4 == 0: four columns per lane from flat textures on CPU adapters)
    for (
      const [R, C] of [[1000, 37], [4096, 3], [70001, 2], [257, 1], [1000, 36], [70001, 4], [
        4096,
        12,
      ]]
    ) {
      const xh = noise(R * C, R + C);
      const x = gpu.upload(xh, [R, C]);
      const want = new Float64Array(C);
      for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) want[c] += xh[r * C + c];
      const [a, b] = await take(sumRows(x), sumRows(x));
      assert(bitsEqual(a, b), `sumRows R=${R} C=${C}: runs differ`);
      // |error| of an f32 sum of R values of magnitude ≤ 1 is far below 1e-6·R
      assertClose(a, want, 1e-6 * R, 0, `sumRows R=${R} C=${C}`);
      x.release();
    }
    const n = 70001;
    const xh = noise(n, 9);
    const x = gpu.upload(xh);
    let want = 0;
    for (const v of xh) want += v;
    const [a, b] = await take(sumAll(x), sumAll(x));
    assert(bitsEqual(a, b), "sumAll runs differ");
    assert(Math.abs(a[0] - want) <= 1e-6 * n, `sumAll ${a[0]} vs ${want}`);
    x.release();
  },
);

testBothClasses(
  "reductions with more than 65535 rows or groups use the y/z grid dimensions",
  async () => {
    const gpu = await getGpu();
    const R = 70003;
    const ah = noise(R, 21);
    const bh = noise(R, 22);
    const a = gpu.upload(ah, [R, 1]);
    const b = gpu.upload(bh, [R, 1]);
    const [rows, groups, gsum] = await take(dotRows(a, b), dotGroups(a, b, 1), sumGroups(a, 1));
    const prod = ah.map((v, i) => v * bh[i]);
    assertClose(rows, prod, 1e-6, 0, "dotRows, 70003 rows");
    assertClose(groups, prod, 1e-6, 0, "dotGroups, 70003 groups");
    assertEquals(Array.from(gsum), Array.from(ah), "sumGroups with T = 1 is a copy");
    a.release();
    b.release();
  },
);

testBothClasses(
  "column reductions of C % 4 == 0 (four columns per lane on CPU adapters): dotGroups, sumGroups and sumRows into match float64",
  async () => {
    const gpu = await getGpu();
    const G = 5, T = 13, C = 20;
    const ah = noise(G * T * C, 31), bh = noise(G * T * C, 32), ih = noise(C, 33);
    const a = gpu.upload(ah, [G * T, C]), b = gpu.upload(bh, [G * T, C]);
    const into = gpu.upload(ih);
    const wantDot = new Float64Array(G * C), wantSum = new Float64Array(G * C);
    const wantInto = Float64Array.from(ih);
    for (let g = 0; g < G; g++) {
      for (let t = 0; t < T; t++) {
        for (let c = 0; c < C; c++) {
          const i = (g * T + t) * C + c;
          wantDot[g * C + c] += ah[i] * bh[i];
          wantSum[g * C + c] += ah[i];
          wantInto[c] += ah[i];
        }
      }
    }
    sumRows(a, into);
    const [dot, sum, acc] = await take(dotGroups(a, b, T), sumGroups(a, T), into);
    assertClose(dot, wantDot, 1e-6 * T, 0, "dotGroups");
    assertClose(sum, wantSum, 1e-6 * T, 0, "sumGroups");
    assertClose(acc, wantInto, 1e-6 * G * T, 0, "sumRows into");
    a.release();
    b.release();
  },
);

testBothClasses("reductions reject bad shapes and handle empty inputs", async () => {
  const gpu = await getGpu();
  const x = gpu.zeros([6, 4]);
  await assertRejects(() => sumGroups(x, 4), ShapeError);
  await assertRejects(() => sumRows(x, gpu.zeros([5])), ShapeError);
  await assertRejects(() => sumRows(x, x.view([24]).view([4, 6]).view([24]) as Tensor), ShapeError);
  await assertRejects(() => sumRows(gpu.zeros([7])), ShapeError);
  const empty = gpu.zeros([0, 3]);
  const [s, t] = await take(sumRows(empty), sumAll(empty));
  assertEquals(Array.from(s), [0, 0, 0]);
  assertEquals(Array.from(t), [0]);
  x.release();
});

// ------------------------------------------------------------------ rows

Deno.test("selectRows / selectRowsBackward match PyTorch and are adjoint", async () => {
  const gpu = await getGpu();
  for (const c of fx.selectRows) {
    const label = `selectRows N=${c.N} C=${c.C} rows=${c.rows}`;
    const x = gpu.upload(c.x, [c.N, c.C]);
    const rows = gpu.uploadU32(c.rows);
    const dy = gpu.upload(c.dy, [c.rows.length, c.C]);
    const y = selectRows(x, rows);
    const dx = selectRowsBackward(dy, rows, c.N);
    assertEquals(y.shape, [c.rows.length, c.C]);
    assertEquals(dx.shape, [c.N, c.C]);
    const [yv, dxv] = await take(y, dx);
    assertEquals(Array.from(yv), f32(c.y), `${label}: y`);
    assertEquals(Array.from(dxv), f32(c.dx), `${label}: dx`);
    assertAdjoint(f32(c.dy), yv, dxv, f32(c.x), 1e-12, `${label} adjoint`);
    for (const t of [x, rows, dy]) t.release();
  }
});

testBothClasses(
  "addRowVector matches PyTorch (also in place), its adjoint is sumRows",
  async () => {
    const gpu = await getGpu();
    for (const c of fx.addRowVector) {
      const label = `addRowVector R=${c.R} C=${c.C}`;
      const x = gpu.upload(c.x, [c.R, c.C]);
      const b = gpu.upload(c.b);
      const y = addRowVector(x, b);
      const dy = gpu.upload(noise(c.R * c.C, c.R), [c.R, c.C]);
      const db = sumRows(dy);
      const [yv, dbv, dyv] = await take(y, db, dy);
      assertClose(yv, c.y, 1e-6 * maxAbs(c.y), 0, label);
      // ⟨dy, x + 1bᵀ⟩ = ⟨dy, x⟩ + ⟨sumRows(dy), b⟩
      assertAdjoint(
        dyv,
        yv,
        [...dyv, ...dbv],
        [...f32(c.x), ...f32(c.b)],
        1e-5,
        `${label} adjoint`,
      );
      assert(addRowVector(x, b, x) === x, "in place returns x");
      const [inPlace] = await take(x);
      assertClose(inPlace, c.y, 1e-6 * maxAbs(c.y), 0, `${label} in place`);
      b.release();
    }
    const x = gpu.zeros([2, 3]);
    await assertRejects(() => addRowVector(x, gpu.zeros([2])), ShapeError);
    x.release();
  },
);

Deno.test("broadcastRows copies its row into every row (vec4 and odd widths, 3-D, empty); bad shapes are typed errors", async () => {
  const gpu = await getGpu();
  for (const shape of [[5, 12], [2, 3, 8], [4, 7], [0, 12]]) {
    const C = shape[shape.length - 1];
    const bh = noise(C, C);
    const b = gpu.upload(bh, [C]);
    // a pooled buffer with other values in it first, so a kernel that skipped rows would show
    gpu.upload(noise(shape.reduce((a, d) => a * d, 1), 9), shape).release();
    const y = broadcastRows(b, shape);
    assertEquals([...y.shape], shape);
    const got = await y.read();
    const want = Array.from({ length: got.length }, (_, i) => bh[i % C]);
    assertEquals(Array.from(got), want, `[${shape.join(", ")}]`);
    y.release();
    b.release();
  }
  const b = gpu.zeros([4]);
  await assertRejects(() => broadcastRows(b, [3, 5]), ShapeError);
  await assertRejects(() => broadcastRows(gpu.zeros([2, 4]), [3, 4]), ShapeError);
  await assertRejects(() => broadcastRows(b, [1.5, 4]), InvalidArgumentError);
  b.release();
});

testBothClasses(
  "a repeated step of part-B ops creates no new buffers, pipelines or bind groups",
  async () => {
    const gpu = await getGpu();
    const B = 2, S = 5, H = 3, dh = 4, d = H * dh, V = 11;
    const idsHost = Int32Array.from({ length: B * S }, (_, i) => (i * 3) % V);
    const ids = gpu.uploadU32(idsHost);
    const table = gpu.upload(noise(V * d, 1), [V, d]);
    const bias = gpu.upload(noise(3 * d, 2));
    const headMask = gpu.upload(noise(B * H, 3));
    const dtable = gpu.zeros([V, d]);
    const step = async () => {
      const emb = embeddingGather(table, ids);
      const qkvIn = gpu.upload(noise(B * S * 3 * d, 4), [B * S, 3 * d]);
      const qkv = addRowVector(qkvIn, bias);
      const k = splitHeads(qkv, B, S, H, dh, d);
      const masked = scaleRows(k, headMask);
      const { dx, ds } = scaleRowsBackward(masked, k, headMask);
      const merged = mergeHeads(dx, B, S, H);
      const db = sumRows(qkv);
      embeddingBackward(merged, idsHost, V, dtable);
      const total = sumAll(emb);
      const r = await total.read();
      for (const t of [emb, qkvIn, qkv, k, masked, dx, ds, merged, db, total]) t.release();
      return r;
    };
    await step();
    const before = { ...gpu.counters };
    await step();
    assertEquals(gpu.counters.buffersCreated, before.buffersCreated, "buffers");
    assertEquals(gpu.counters.pipelinesCreated, before.pipelinesCreated, "pipelines");
    assertEquals(gpu.counters.bindGroupsCreated, before.bindGroupsCreated, "bind groups");
    for (const t of [ids, table, bias, headMask, dtable]) t.release();
  },
);
