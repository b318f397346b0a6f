/**
 * Matrix multiplication for every layout the model needs, batched, with a fused epilogue
 * (bias, GELU/ReLU, scale, accumulate), plus the Hugging Face `linear` layer and its backward.
 * Two kernel paths, same results up to fp32 rounding order, each deterministic:
 * - storage (`kernels/matmul.wgsl`): reads both operands from storage buffers through strides;
 *   every layout, any shape; the fallback, and for small products.
 * - texture (`kernels/matmul_tex.wgsl`), the default on every adapter: both operands are first
 *   put into pooled rgba32float textures of K-rows (a `copyBufferToTexture` when the operand is
 *   row-major in K with K % 64 == 0, else one pass of the repack kernel `kernels/matmul_pack.wgsl`,
 *   which also transposes and zero-pads), then read with `textureLoad`, which llvmpipe runs
 *   through its SIMD texel path (3–7× the storage path there) and an NVIDIA H100 through its
 *   texture caches (2.3–13× the storage path per BERT-base product, 3.5–4× through the model;
 *   bench/README.md). Used when every
 *   texture dimension fits the device's maxTextureDimension2D (batches are split to fit) and,
 *   unless forced, the product has at least `TEXTURE_MIN_MACS` multiply-adds or a reduction of at
 *   least `TEXTURE_MIN_K` (`textureWorthwhile`).
 * Everything records commands; nothing is awaited here.
 * @module
 */
import src from "../../kernels/matmul.wgsl" with { type: "text" };
import texSrc from "../../kernels/matmul_tex.wgsl" with { type: "text" };
import packSrc from "../../kernels/matmul_pack.wgsl" with { type: "text" };
import epilogueSrc from "../../kernels/matmul_epilogue.wgsl" with { type: "text" };
import { DeviceLimitError, InvalidArgumentError, ShapeError } from "../errors.ts";
import { f32Bits, type Gpu, type KernelSpec } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import type { Texture2D } from "../gpu/textures.ts";
import {
  type MatmulPreset,
  matmulPreset,
  matmulTexturePreset,
  textureGrid,
  texturePlan,
  texturePresetForStores,
  textureWorthwhile,
} from "./matmul_presets.ts";

/** Activation applied by the matmul epilogue after the bias. */
export type Activation = "none" | "gelu" | "relu";

/** Options of `matmul`. */
export interface MatmulOptions {
  /** Read `a` as [..., K, M] and use its transpose. */
  transA?: boolean;
  /** Read `b` as [N, K] (or [..., N, K]) and use its transpose. */
  transB?: boolean;
  /** [N], added to every output row before the activation. */
  bias?: Tensor;
  /** Activation after the bias: exact-erf GELU (Hugging Face "gelu"), ReLU or none. */
  act?: Activation;
  /** Scale of the product (default 1). */
  alpha?: number;
  /** Output tensor [..., M, N] (required with `accumulate`); must not share storage with inputs. */
  out?: Tensor;
  /** Add the result to the current contents of `out` instead of overwriting them. */
  accumulate?: boolean;
}

const ACT_CODES: Record<Activation, number> = { none: 0, gelu: 1, relu: 2 };
const FLAG_BIAS = 1;
const FLAG_ACCUMULATE = 2;

const SOURCE = src + "\n" + epilogueSrc;
const TEX_SOURCE = texSrc + "\n" + epilogueSrc;

/**
 * The epilogue's override constants for an activation and the FLAG_ACCUMULATE bit of `flags`
 * (kernels/matmul_epilogue.wgsl: compiled in rather than read from the uniform, because llvmpipe
 * runs both sides of a uniform branch).
 */
function epilogueConstants(act: Activation, flags: number): Record<string, number> {
  return { ACT: ACT_CODES[act], ACCUMULATE: (flags & FLAG_ACCUMULATE) !== 0 ? 1 : 0 };
}

function spec(kind: "cpu" | "gpu", act: Activation, flags: number): KernelSpec {
  const p = matmulPreset(kind);
  return {
    name: "matmul.wgsl",
    source: SOURCE,
    entry: "matmul",
    bindings: ["read", "read", "read", "rw"],
    constants: { WGX: p.wgx, WGY: p.wgy, TM: p.tm, TN: p.tn, ...epilogueConstants(act, flags) },
  };
}

/**
 * The texture kernel of preset `p` for a job's activation and flags; `v4`: the entry point
 * storing vec4s (needs N % 4 == 0).
 */
function texSpec(
  p: Readonly<MatmulPreset>,
  v4: boolean,
  j: { act: Activation; flags: number },
): KernelSpec {
  return {
    name: "matmul_tex.wgsl",
    source: TEX_SOURCE,
    entry: `matmul_tex_${p.tm}x${p.tn}${v4 ? "_v4" : ""}`,
    bindings: ["texture", "texture", "texture", "rw"],
    constants: {
      WGX: p.wgx,
      WGY: p.wgy,
      SWAP: p.swap ? 1 : 0,
      ...epilogueConstants(j.act, j.flags),
    },
  };
}

const PACK_WG = 8;
const PACK_SPEC: KernelSpec = {
  name: "matmul_pack.wgsl",
  source: packSrc,
  entry: "pack",
  bindings: ["read", "storage-texture"],
  constants: { WGX: PACK_WG, WGY: PACK_WG },
};

/** Which matmul kernel path to use: by adapter ("auto"), or forced. */
export type MatmulPath = "auto" | "texture" | "storage";

let forcedPath: MatmulPath = initialPath();

/** The start-up path: FASTPRUNE_MATMUL_PATH ("texture", "storage"), else "auto". */
function initialPath(): MatmulPath {
  try {
    const v = Deno.env.get("FASTPRUNE_MATMUL_PATH");
    if (v === "texture" || v === "storage") return v;
  } catch {
    // no --allow-env: keep the default
  }
  return "auto";
}

/**
 * Forces the matmul kernel path for everything recorded from now on: "texture" (texture
 * operands; shapes that do not fit the device's texture limits still fall back to "storage"),
 * "storage" (storage-buffer kernel), or "auto" (the default: texture where the shape fits and the
 * product is worth it, on every adapter). For tests and benchmarks that compare both paths on one adapter. The environment
 * variable FASTPRUNE_MATMUL_PATH=texture|storage sets the start-up value (e.g. to run a whole test
 * suite through one path).
 */
export function setMatmulPath(path: MatmulPath): void {
  if (path !== "auto" && path !== "texture" && path !== "storage") {
    throw new InvalidArgumentError(
      `setMatmulPath: expected "auto", "texture" or "storage", got ${path}`,
    );
  }
  forcedPath = path;
}

/**
 * The matmul path in force on `gpu` before shape checks ("texture" or "storage"); under "auto",
 * products `textureWorthwhile` rejects and shapes past the texture limits still use "storage".
 */
export function matmulPath(_gpu: Gpu): "texture" | "storage" {
  // "auto" is texture on every adapter: on llvmpipe (3–7× the storage kernel) and on the NVIDIA
  // H100 (2.3–13× per product; bench/README.md, fourteenth session), the only GPU measured
  if (forcedPath !== "auto") return forcedPath;
  return "texture";
}

const fmt = (t: Tensor) => `[${t.shape.join(", ")}]`;

/**
 * Batched matrix product out = act(alpha·op(a)·op(b) + bias), or out += that when `accumulate`.
 * `a` is [..., M, K] ([..., K, M] with `transA`); `b` is [K, N] ([N, K] with `transB`), either
 * rank 2 and shared by every batch item or with the same leading batch dims as `a`. The result
 * is [..., M, N]. Raises `ShapeError` when shapes disagree and `InvalidArgumentError` for bad
 * options (unknown activation, `accumulate` without `out`, `out` sharing storage with an input).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const { transA = false, transB = false, bias, act = "none", alpha = 1, accumulate = false } =
    opts;
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw new ShapeError(`matmul: a ${fmt(a)} and b ${fmt(b)} must both have rank ≥ 2`);
  }
  const lead = a.shape.slice(0, -2);
  const [a0, a1] = a.shape.slice(-2);
  const [M, K] = transA ? [a1, a0] : [a0, a1];
  const [b0, b1] = b.shape.slice(-2);
  const [Kb, N] = transB ? [b1, b0] : [b0, b1];
  const sharedB = b.shape.length === 2;
  if (
    Kb !== K ||
    (!sharedB &&
      (b.shape.length !== a.shape.length || lead.some((d, i) => d !== b.shape[i])))
  ) {
    throw new ShapeError(
      `matmul: a ${fmt(a)}${transA ? "ᵀ" : ""} and b ${fmt(b)}${
        transB ? "ᵀ" : ""
      } do not agree (inner sizes ${K} vs ${Kb}; b must be rank 2 or share a's batch dims)`,
    );
  }
  if (!(act in ACT_CODES)) {
    throw new InvalidArgumentError(`matmul: unknown activation "${act}" (none, gelu or relu)`);
  }
  if (!Number.isFinite(alpha)) {
    throw new InvalidArgumentError(`matmul: alpha ${alpha} is not finite`);
  }
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== N)) {
    throw new ShapeError(`matmul: bias ${fmt(bias)} must be [${N}]`);
  }
  const outShape = [...lead, M, N];
  if (accumulate && !opts.out) {
    throw new InvalidArgumentError("matmul: accumulate needs an out tensor to add into");
  }
  const out = opts.out ?? a.gpu.empty(outShape);
  if (out.shape.length !== outShape.length || out.shape.some((d, i) => d !== outShape[i])) {
    throw new ShapeError(`matmul: out ${fmt(out)} must be [${outShape.join(", ")}]`);
  }
  for (const t of [a, b, bias]) {
    if (t && t.buffer === out.buffer) {
      throw new InvalidArgumentError("matmul: out must not share storage with a, b or bias");
    }
  }
  const batch = lead.reduce((x, y) => x * y, 1);
  if (M === 0 || N === 0 || batch === 0) return out;

  const gpu = a.gpu;
  const flags = (bias ? FLAG_BIAS : 0) | (accumulate ? FLAG_ACCUMULATE : 0);
  const path = matmulPath(gpu);
  const small = forcedPath === "auto" && !textureWorthwhile(batch * M * N * K, K);
  if (path === "texture" && !small) {
    const job = { a, b, bias, out, M, N, K, batch, transA, transB, sharedB, flags, act, alpha };
    if (matmulTexture(gpu, job)) return out;
  }
  const s = spec(gpu.adapter.kind, act, flags);
  const p = matmulPreset(gpu.adapter.kind);
  const gx = Math.ceil(N / (p.wgx * p.tn));
  const gy = Math.ceil(M / (p.wgy * p.tm));
  const maxWg = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (gx > maxWg || gy > maxWg) {
    throw new DeviceLimitError(
      `matmul: output [${M}, ${N}] needs a ${gx}×${gy} grid, past this device's ${maxWg} workgroups per dimension`,
    );
  }
  const strides = [
    transA ? 1 : K, // a_m
    transA ? M : 1, // a_k
    M * K, // a_z
    transB ? 1 : N, // b_k
    transB ? K : 1, // b_n
    sharedB ? 0 : K * N, // b_z
  ];
  const tensors = [a, b, bias ?? b, out];
  for (let z0 = 0; z0 < batch; z0 += maxWg) {
    const nz = Math.min(maxWg, batch - z0);
    const params = [M, N, K, ...strides, z0, flags, ACT_CODES[act], f32Bits(alpha)];
    gpu.dispatch(s, params, tensors, [gx, gy, nz]);
  }
  return out;
}

/**
 * Records the packing of a row-major [rows, K] tensor into a pooled rgba32float texture of
 * ⌈K/4⌉ × rows texels (value k of row r in component k % 4 of texel (k / 4, r), zero past K), as
 * the texture matmul reads its operands; here for the bias, which every output reads (llvmpipe's
 * SIMD texel path instead of its lane-by-lane storage loads). The caller releases the texture to
 * `gpu.textures` once its reads are recorded.
 */
function rowTexture(src: Tensor, rows: number, K: number, kOut = K, off = 0): Texture2D {
  if (!(rows >= 1 && K >= 1 && off + rows * K <= src.size && kOut >= K)) {
    throw new ShapeError(`rowTexture: [${rows}, ${K}] does not fit a tensor of ${src.size} values`);
  }
  const gpu = src.gpu;
  if (Math.ceil(kOut / 4) > gpu.textures.maxDim || rows > gpu.textures.maxDim) {
    throw new DeviceLimitError(`rowTexture: [${rows}, ${kOut}] is past the texture limit`);
  }
  const tex = gpu.textures.acquire(Math.ceil(kOut / 4), rows);
  fillTexture(gpu, src, tex, {
    rows,
    K,
    sR: K,
    sK: 1,
    sZ: 0,
    z0: 0,
    items: 1,
    k4: Math.ceil(kOut / 4),
    off,
  });
  return tex;
}

interface TextureJob {
  a: Tensor;
  b: Tensor;
  bias?: Tensor;
  out: Tensor;
  M: number;
  N: number;
  K: number;
  batch: number;
  transA: boolean;
  transB: boolean;
  sharedB: boolean;
  flags: number;
  act: Activation;
  alpha: number;
  /**
   * Output row stride (default N; a multiple of 64 ≥ N): the kernel computes and stores ⌈N/4⌉·4
   * columns of each row, those past N exactly act(0) = 0 (B's rows and the bias are zero there),
   * and leaves the rest of the row unwritten. Only with a shared B and no batch.
   */
  ldo?: number;
  /**
   * Values per row of B that hold data (default K; ≤ K): the kernel sums over A's and B's first
   * ⌈kb/4⌉ texels only (B zero past kb), so A's rows may carry anything past ⌈kb/4⌉·4 values and
   * zeros between kb and there (`linearFromPadded`). Only with a shared B.
   */
  kb?: number;
}

/**
 * Fills rows [0, items·rowsOut) of `tex` with K-rows of batch items z0… of an operand whose
 * element (z, r, k) is at off + z·sZ + r·sR + k·sK, `k4` texels per row (default ⌈K/4⌉; zero past K)
 * and, for one item, rows rows… rowsOut − 1 zero (default rowsOut = rows): one copy when rows are
 * contiguous with K % 64 == 0 and nothing is zero-filled, else the repack kernel.
 */
function fillTexture(
  gpu: Gpu,
  src: Tensor,
  tex: Texture2D,
  o: {
    rows: number;
    K: number;
    sR: number;
    sK: number;
    sZ: number;
    z0: number;
    items: number;
    k4?: number;
    rowsOut?: number;
    off?: number;
  },
): void {
  const k4 = o.k4 ?? Math.ceil(o.K / 4);
  const rowsOut = o.items === 1 ? (o.rowsOut ?? o.rows) : o.rows;
  const off = o.off ?? 0;
  const contiguous = o.sK === 1 && o.sR === o.K && (o.items === 1 || o.sZ === o.rows * o.K);
  if (contiguous && o.K % 64 === 0 && k4 === o.K / 4 && rowsOut === o.rows && off % 4 === 0) {
    gpu.copyToTexture(src, tex, k4, o.items * o.rows, off + o.z0 * o.sZ);
    return;
  }
  const params = [rowsOut, o.K, k4, o.sR, o.sK, o.sZ, o.z0, o.rows, off];
  gpu.dispatchResources(PACK_SPEC, params, [src, tex], [
    Math.ceil(k4 / PACK_WG),
    Math.ceil(rowsOut / PACK_WG),
    o.items,
  ]);
}

/**
 * Records the product through texture operands; returns false (recording nothing) when a
 * texture would exceed the device's maxTextureDimension2D, so the caller uses the storage path.
 */
function matmulTexture(gpu: Gpu, j: TextureJob): boolean {
  const maxDim = gpu.textures.maxDim;
  const maxWg = gpu.limits.maxComputeWorkgroupsPerDimension;
  let { M, batch } = j;
  const { N, K, sharedB } = j;
  const k4 = Math.ceil(K / 4);
  // A shared B with a row-major A is one [batch·M, K] product: fewer ragged tiles.
  if (sharedB && !j.transA && batch * M <= maxDim) {
    M *= batch;
    batch = 1;
  }
  if (
    batch === 1 && (M > maxDim || N > maxDim) && k4 <= maxDim && j.ldo === undefined &&
    j.kb === undefined
  ) return matmulTextureBlocks(gpu, j, M, N, k4);
  if (k4 > maxDim || M > maxDim || N > maxDim) return false;
  const chunk = Math.min(
    batch,
    Math.floor(maxDim / M),
    sharedB ? batch : Math.floor(maxDim / N),
    maxWg,
  );
  // the kernel's column count (N, or N rounded up to 4 into rows padded to ldo: linearPadded),
  // the output row stride, and the texels per row it sums over (fewer than A's with kb)
  const NK = j.ldo === undefined ? N : Math.ceil(N / 4) * 4;
  const ldo = j.ldo ?? N;
  const kLoop = j.kb === undefined ? k4 : Math.ceil(j.kb / 4);
  // one dispatch per column range (the last N % 128 columns of a wide product on a narrower tile)
  const parts = texturePlan(M, NK).map((part) => {
    const p = texturePresetForStores(part.preset, NK);
    const grid = textureGrid(p, M, part.n1 - part.n0);
    return { ...part, spec: texSpec(p, NK % 4 === 0, j), grid };
  });
  if (parts.some((q) => q.grid[0] > maxWg || q.grid[1] > maxWg) || NK > maxDim) return false;
  const texA = gpu.textures.acquire(k4, chunk * M);
  const texB = gpu.textures.acquire(kLoop, sharedB ? NK : chunk * N);
  // op(a) row m, k: a[z, m, k] (row-major) or a[z, k, m] (transA).
  const aLayout = { rows: M, K, sR: j.transA ? 1 : K, sK: j.transA ? M : 1, sZ: M * K };
  // op(b) column n, k: b[z, n, k] (transB) or b[z, k, n]; a shared B may hold only kb < K values
  // per row (zero past them) and be padded with zero rows up to NK.
  const kb = sharedB ? (j.kb ?? K) : K;
  const bLayout = { rows: N, K: kb, sR: j.transB ? kb : 1, sK: j.transB ? 1 : N, sZ: N * kb };
  if (sharedB) {
    fillTexture(gpu, j.b, texB, { ...bLayout, sZ: 0, z0: 0, items: 1, k4: kLoop, rowsOut: NK });
  }
  // the bias as one texture row of ⌈NK/4⌉ texels (zero past N)
  const texBias = j.bias ? rowTexture(j.bias, 1, N, NK) : undefined;
  for (let z0 = 0; z0 < batch; z0 += chunk) {
    const items = Math.min(chunk, batch - z0);
    fillTexture(gpu, j.a, texA, { ...aLayout, z0, items });
    if (!sharedB) fillTexture(gpu, j.b, texB, { ...bLayout, z0, items });
    for (const q of parts) {
      const params = [
        M,
        q.n1,
        kLoop,
        sharedB ? 0 : N,
        z0,
        j.flags,
        ACT_CODES[j.act],
        f32Bits(j.alpha),
        0,
        ldo,
        q.n0,
      ];
      const resources = [texA, texB, texBias ?? texA, j.out];
      gpu.dispatchResources(q.spec, params, resources, [q.grid[0], q.grid[1], items]);
    }
  }
  gpu.textures.release(texA);
  gpu.textures.release(texB);
  if (texBias) gpu.textures.release(texBias);
  return true;
}

/**
 * One product (batch 1) whose M or N is past the texture limit — a vocabulary-sized MLM decoder
 * (N = 30522) and its weight gradient (M = 30522) against llvmpipe's 16384 — as blocks of at most
 * maxDim − maxDim % 64 rows and columns, each stored into its place of the output (the kernel's
 * o0 and ldo), instead of the storage kernel (2.2 s per such product on llvmpipe). Returns false,
 * recording nothing, when even a block's grid is past the device limits.
 */
function matmulTextureBlocks(gpu: Gpu, j: TextureJob, M: number, N: number, k4: number): boolean {
  const maxDim = gpu.textures.maxDim;
  const maxWg = gpu.limits.maxComputeWorkgroupsPerDimension;
  const step = maxDim - (maxDim % 64);
  const K = j.K;
  const v4 = N % 4 === 0; // blocks start at multiples of 64: every block row is vec4-aligned
  const pick = (mb: number, nb: number) => texturePresetForStores(matmulTexturePreset(mb, nb), N);
  const big = pick(Math.min(M, step), Math.min(N, step));
  if (
    textureGrid(big, Math.min(M, step), Math.min(N, step)).some((g) => g > maxWg)
  ) return false;
  for (let m0 = 0; m0 < M; m0 += step) {
    const mb = Math.min(step, M - m0);
    const texA = gpu.textures.acquire(k4, mb);
    // op(a) row m, k: a[m, k] (row-major) or a[k, m] (transA), rows m0…
    fillTexture(gpu, j.a, texA, {
      rows: mb,
      K,
      sR: j.transA ? 1 : K,
      sK: j.transA ? M : 1,
      sZ: 0,
      z0: 0,
      items: 1,
      off: j.transA ? m0 : m0 * K,
    });
    for (let n0 = 0; n0 < N; n0 += step) {
      const nb = Math.min(step, N - n0);
      const p = pick(mb, nb);
      const texB = gpu.textures.acquire(k4, nb);
      // op(b) column n, k: b[n, k] (transB) or b[k, n], columns n0…
      fillTexture(gpu, j.b, texB, {
        rows: nb,
        K,
        sR: j.transB ? K : 1,
        sK: j.transB ? 1 : N,
        sZ: 0,
        z0: 0,
        items: 1,
        off: j.transB ? n0 * K : n0,
      });
      const texBias = j.bias ? rowTexture(j.bias, 1, nb, nb, n0) : undefined;
      const params = [
        mb,
        nb,
        k4,
        0,
        0,
        j.flags,
        ACT_CODES[j.act],
        f32Bits(j.alpha),
        m0 * N + n0,
        N,
        0,
      ];
      gpu.dispatchResources(texSpec(p, v4, j), params, [texA, texB, texBias ?? texA, j.out], [
        ...textureGrid(p, mb, nb),
        1,
      ]);
      gpu.textures.release(texB);
      if (texBias) gpu.textures.release(texBias);
    }
    gpu.textures.release(texA);
  }
  return true;
}

/**
 * Hugging Face linear layer: x [..., in] (rank ≥ 2) times w [out, in] transposed, plus bias [out], then the
 * activation: x·wᵀ + bias (same as `matmul(x, w, { transB: true, bias, act })`).
 */
export function linear(x: Tensor, w: Tensor, bias?: Tensor, act: Activation = "none"): Tensor {
  if (x.shape.length < 2 || w.shape.length !== 2) {
    throw new ShapeError(
      `linear: x ${fmt(x)} must have rank ≥ 2 ([..., in]) and w ${fmt(w)} rank 2`,
    );
  }
  return matmul(x, w, { transB: true, bias, act });
}

/** The texture job of a linear layer act(a·wᵀ + bias) with a shared w, as one [M, K] product. */
function linearJob(
  a: Tensor,
  w: Tensor,
  bias: Tensor | undefined,
  out: Tensor,
  [M, N, K]: [number, number, number],
  act: Activation,
): TextureJob {
  const flags = bias ? FLAG_BIAS : 0;
  return {
    a,
    b: w,
    bias,
    out,
    M,
    N,
    K,
    batch: 1,
    transA: false,
    transB: true,
    sharedB: true,
    flags,
    act,
    alpha: 1,
  };
}

/** Row granularity of `linearPadded`: 64 floats = the 256-byte row pitch of copyBufferToTexture. */
export const PADDED_WIDTH = 64;

/**
 * Inference on CPU adapters, for a layer width N = w.shape[0] with N % 64 != 0 (a pruned FFN):
 * act(x·wᵀ + bias) for x [rows, in] into a [rows, N₆₄] tensor, N₆₄ = N rounded up to a multiple of
 * `PADDED_WIDTH`, whose columns N … ⌈N/4⌉·4 − 1 are exactly act(0) = 0 (zero weight rows and bias
 * there) and whose columns past those are left unwritten (the kernel computes ⌈N/4⌉·4 columns:
 * llvmpipe runs 8 column lanes per SIMD batch, so a narrow product is a quarter to a half of the
 * padded one's batches); only `linearFromPadded` reads it, and only up to column ⌈N/4⌉·4. Rows of
 * a multiple of 64 values reach the next product's texture in one copy (else a repack pass over
 * the whole [rows, N] activation: a 496-neuron FFN took 127 ms at [4096, 128] against 105 ms for
 * 512) and are stored as vec4s (llvmpipe stores lane by lane). Returns undefined, recording
 * nothing, where it does not apply (N % 64 == 0, GPU adapters or the storage path, products
 * `textureWorthwhile` rejects, shapes past the texture limits): use `linear`. Every activation
 * here has act(0) = 0.
 */
export function linearPadded(
  x: Tensor,
  w: Tensor,
  bias?: Tensor,
  act: Activation = "none",
): Tensor | undefined {
  if (x.shape.length !== 2 || w.shape.length !== 2 || x.shape[1] !== w.shape[1]) {
    throw new ShapeError(`linearPadded: x ${fmt(x)} must be [rows, in] and w ${fmt(w)} [out, in]`);
  }
  const [M, K] = x.shape, N = w.shape[0];
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== N)) {
    throw new ShapeError(`linearPadded: bias ${fmt(bias)} must be [${N}]`);
  }
  if (!(act in ACT_CODES)) throw new InvalidArgumentError(`linearPadded: unknown activation`);
  const gpu = x.gpu;
  if (
    N % PADDED_WIDTH === 0 || M === 0 || K === 0 || matmulPath(gpu) !== "texture" ||
    (forcedPath === "auto" && !textureWorthwhile(M * N * K, K))
  ) return undefined;
  const ldo = Math.ceil(N / PADDED_WIDTH) * PADDED_WIDTH;
  const out = gpu.empty([M, ldo]);
  if (matmulTexture(gpu, { ...linearJob(x, w, bias, out, [M, N, K], act), ldo })) return out;
  out.release();
  return undefined;
}

/**
 * The layer after `linearPadded`: z [rows, N₆₄] (zero in columns N … ⌈N/4⌉·4 − 1, N =
 * w.shape[1], anything past) times w [out, N] transposed, plus bias: the same as
 * `linear(z[:, :N], w, bias)`, bit for bit (the kernel sums over the first ⌈N/4⌉ texels of each
 * row, in the same order; the last one ends in exact zeros).
 */
export function linearFromPadded(z: Tensor, w: Tensor, bias?: Tensor): Tensor {
  if (z.shape.length !== 2 || w.shape.length !== 2) {
    throw new ShapeError(`linearFromPadded: z ${fmt(z)} and w ${fmt(w)} must be rank 2`);
  }
  const [M, ldz] = z.shape, [N, K] = w.shape;
  if (ldz !== Math.ceil(K / PADDED_WIDTH) * PADDED_WIDTH) {
    throw new ShapeError(
      `linearFromPadded: z ${fmt(z)} is not the padded output of a ${K}-wide layer`,
    );
  }
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== N)) {
    throw new ShapeError(`linearFromPadded: bias ${fmt(bias)} must be [${N}]`);
  }
  const gpu = z.gpu;
  const out = gpu.empty([M, N]);
  if (M === 0 || N === 0) return out;
  const job = { ...linearJob(z, w, bias, out, [M, N, ldz], "none"), kb: K };
  if (!matmulTexture(gpu, job)) {
    throw new DeviceLimitError(`linearFromPadded: ${fmt(z)} is past the texture limits`);
  }
  return out;
}

/**
 * Backward of `linear` (without activation): given dy [..., out], x [..., in] and w [out, in],
 * returns dx = dy·w [..., in] and dw = dyᵀ·x [out, in] (leading dims are flattened into rows).
 * With `dwInto`, dw is added into that tensor (gradient accumulation) and it is returned as `dw`;
 * `needDx: false` skips dx (first layer); with `dxInto`, dx is added into that tensor (a residual
 * branch's gradient; not dy or x) and it is returned as `dx`. The bias gradient is the column sum
 * of dy (not here).
 */
export function linearBackward(
  dy: Tensor,
  x: Tensor,
  w: Tensor,
  o: { needDx?: boolean; dwInto?: Tensor; dxInto?: Tensor } = {},
): { dx?: Tensor; dw: Tensor } {
  if (w.shape.length !== 2 || dy.shape.length < 2 || x.shape.length < 2) {
    throw new ShapeError(`linearBackward: w ${fmt(w)} must be rank 2, dy and x rank ≥ 2`);
  }
  const [nOut, nIn] = w.shape;
  const rows = dy.size / Math.max(1, nOut);
  if (
    dy.shape[dy.shape.length - 1] !== nOut || x.shape[x.shape.length - 1] !== nIn ||
    x.size !== rows * nIn || dy.shape.length !== x.shape.length ||
    dy.shape.slice(0, -1).some((d, i) => d !== x.shape[i])
  ) {
    throw new ShapeError(
      `linearBackward: dy ${fmt(dy)} and x ${fmt(x)} do not match w ${fmt(w)} ([out, in])`,
    );
  }
  const dy2 = dy.view([rows, nOut]);
  const x2 = x.view([rows, nIn]);
  const dw = o.dwInto
    ? matmul(dy2, x2, { transA: true, out: o.dwInto, accumulate: true })
    : matmul(dy2, x2, { transA: true });
  if (o.needDx === false) return { dw };
  const dx = o.dxInto ? matmul(dy, w, { out: o.dxInto, accumulate: true }) : matmul(dy, w);
  return { dx, dw };
}
