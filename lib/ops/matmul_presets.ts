/**
 * Matmul tile presets per adapter class. A preset fixes the override constants of
 * `kernels/matmul.wgsl`: workgroup lanes (WGX × WGY) and the register tile each lane computes
 * (TM rows × TN columns). The CPU numbers come from `deno task bench` sweeps recorded in
 * bench/README.md; they can be replaced at run time with `setMatmulPreset` (used by the bench's
 * sweep and by tests that want a small, quick-to-compile tile).
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";

/** Override constants of the matmul kernel. */
export interface MatmulPreset {
  /** Lanes per workgroup along N (columns). */
  wgx: number;
  /** Lanes per workgroup along M (rows). */
  wgy: number;
  /** Output rows per lane (1…32). */
  tm: number;
  /** Output columns per lane (1…16). */
  tn: number;
  /**
   * Texture kernel only: lanes (and workgroups) along x index row tiles and those along y column
   * tiles (kernels/matmul_tex.wgsl's override SWAP; grid `textureGrid`).
   */
  swap?: boolean;
}

/**
 * Workgroup grid [x, y] of the texture kernel with preset `p` over M rows and `cols` columns:
 * column tiles along x and row tiles along y, or the other way round with `p.swap`.
 */
export function textureGrid(p: Readonly<MatmulPreset>, M: number, cols: number): [number, number] {
  const rowTiles = Math.ceil(M / ((p.swap ? p.wgx : p.wgy) * p.tm));
  const colTiles = Math.ceil(cols / ((p.swap ? p.wgy : p.wgx) * p.tn));
  return p.swap ? [rowTiles, colTiles] : [colTiles, rowTiles];
}

/**
 * Built-in presets. `cpu` (Mesa llvmpipe/lavapipe) was chosen by measurement on a 2-core AMD EPYC
 * with Mesa 22.3.6 / LLVM 15 (bench/README.md): every storage load runs lane by lane there, so
 * the biggest register tile that still compiles in a few seconds wins. `gpu` is the conventional
 * 16×16-lane, 4×4-per-lane layout and has NOT been measured yet (no GPU machine was available).
 */
export const MATMUL_PRESETS: Readonly<Record<"cpu" | "gpu", Readonly<MatmulPreset>>> = {
  cpu: { wgx: 8, wgy: 1, tm: 32, tn: 8 },
  gpu: { wgx: 16, wgy: 16, tm: 4, tn: 4 },
};

const overrides: Partial<Record<"cpu" | "gpu", MatmulPreset>> = {};

/** The preset in force for an adapter class (an override from `setMatmulPreset`, else built-in). */
export function matmulPreset(kind: "cpu" | "gpu"): Readonly<MatmulPreset> {
  return overrides[kind] ?? MATMUL_PRESETS[kind];
}

/**
 * Replaces the preset of an adapter class for the rest of the process (`undefined` restores the
 * built-in one). Raises `InvalidArgumentError` for tiles the kernel cannot hold.
 */
export function setMatmulPreset(kind: "cpu" | "gpu", preset: MatmulPreset | undefined): void {
  if (preset) {
    const { wgx, wgy, tm, tn } = preset;
    const ok = [wgx, wgy, tm, tn].every((v) => Number.isInteger(v) && v >= 1) && tm <= 32 &&
      tn <= 16 && wgx * wgy <= 256;
    if (!ok) {
      throw new InvalidArgumentError(
        `matmul preset ${
          JSON.stringify(preset)
        }: need integers ≥ 1 with tm ≤ 32, tn ≤ 16 and wgx·wgy ≤ 256`,
      );
    }
    overrides[kind] = { ...preset };
  } else delete overrides[kind];
}

/** Register tiles (rows × columns per invocation) that kernels/matmul_tex.wgsl has entry points for. */
export const TEXTURE_TILES: readonly (readonly [number, number])[] = [
  [8, 4],
  [8, 8],
  [4, 8],
  [4, 4],
  [16, 4],
  [16, 8],
  [16, 16],
];

/**
 * Preset of the texture-operand kernel (kernels/matmul_tex.wgsl): workgroup
 * lanes WGX × WGY and a TM × TN tile from `TEXTURE_TILES`. Chosen by measurement on Mesa
 * llvmpipe 22.3 (bench/README.md, "Texture operands").
 */
export const MATMUL_TEXTURE_PRESET: Readonly<MatmulPreset> = { wgx: 8, wgy: 8, tm: 8, tn: 8 };

/**
 * Under the "auto" path, products with fewer multiply-adds than this (batch·M·N·K) stay on the
 * storage kernel: for them the extra copy/repack commands cost more than the
 * faster inner loop saves (tiny products measured ≈ 330 µs per call through textures vs ≈ 160 µs
 * through storage, bench/README.md). 64³ MACs take ≈ 0.5 ms on the storage path there.
 */
export const TEXTURE_MIN_MACS = 64 * 64 * 64;

/**
 * Reduction length from which the texture path pays even under `TEXTURE_MIN_MACS`: the storage
 * kernel's lane-by-lane loads grow with K, the texture path's extra commands do not. Same-run
 * timings (session 9, idle, whole `matmul` calls with bias, storage / texture ms): M = 128, K =
 * 128, N = 1–16 (a batch-1 FFN of < 16 neurons): 1.5–2.0 / 0.4–0.6; M = 1 or 32, N = 2, K = 128 (a
 * classifier): 0.8–1.0 / 0.3; K = 64: 0.4–0.5 / 0.2–0.3; K = 32 even (0.22–0.39 / 0.15–0.40); K =
 * 4–16 storage ahead (0.06–0.19 / 0.08–0.34).
 */
export const TEXTURE_MIN_K = 64;

/**
 * Whether a product of `macs` multiply-adds over a reduction of length K takes the texture path
 * under "auto" (where its shapes fit): at least `TEXTURE_MIN_MACS`, or K ≥
 * `TEXTURE_MIN_K`.
 */
export function textureWorthwhile(macs: number, K: number): boolean {
  return macs >= TEXTURE_MIN_MACS || K >= TEXTURE_MIN_K;
}

/**
 * Preset of the texture-operand kernel for large products (M ≥ 128 and N ≥ 128 rows and columns
 * in one dispatch): 16 × 16 outputs per invocation on 8 × 4 lanes, so 32 texel fetches feed 1024
 * multiply-adds instead of 16 feeding 256. Same-run sweep on Mesa llvmpipe 22.3 (bench/README.md):
 * 1.2–1.56× the 8 × 8 tile from [4096, 128]·[128, 128] to [4096, 1024]·[1024, 256] and the
 * backward's dYᵀ·X products; 0.85× on batched 64 × 64 attention products, which keep the 8 × 8
 * tile.
 */
export const MATMUL_TEXTURE_PRESET_LARGE: Readonly<MatmulPreset> = {
  wgx: 8,
  wgy: 4,
  tm: 16,
  tn: 16,
};

/**
 * Preset for narrow products (N ≤ `TEXTURE_NARROW_MAX_N` columns, M ≥ `TEXTURE_NARROW_MIN_M`
 * rows): 16 × 8 outputs per invocation, lanes along x over rows (`swap`), one lane along y per
 * workgroup. llvmpipe runs the 8 lanes along x as one SIMD batch and runs a batch whose lanes are
 * all out of range like any other (both sides of every branch), so the lanes along x must all
 * have work: with the columns there, a 40-column product paid for 64 (8 lanes × 8 columns), and
 * a second lane along y for 16 more. Same-run micro-benchmark (session 10, idle, M = 4096, K =
 * 128, bias + GELU, `linearPadded`; ms): N = 21 / 32 / 39 / 64: previous tiles (16 × 4 on 8 × 8
 * lanes to 32 columns, 16 × 8 on 8 × 4 lanes to 64) 4.5–6.0 / 4.5 / 5.9 / 6.1–6.9, this one
 * 3.0 / 3.4–3.8 / 3.9–4.3 / 6.1–8.7; the same swapped tile with 4 lanes along y 3.1–3.4 / 3.5 /
 * 6.0–6.9 / 6.6–7.6.
 */
export const MATMUL_TEXTURE_PRESET_NARROW: Readonly<MatmulPreset> = {
  wgx: 8,
  wgy: 1,
  tm: 16,
  tn: 8,
  swap: true,
};

/**
 * Preset for products of `TEXTURE_NARROW_MAX_N` < N ≤ `TEXTURE_MEDIUM_MAX_N` columns over ≥
 * `TEXTURE_NARROW_MIN_M` rows (and a wide product's last N % 128 columns, `texturePlan`): 16 × 16
 * outputs per invocation, swapped as `MATMUL_TEXTURE_PRESET_NARROW`. Same-run micro-benchmark
 * (session 10, as there): N = 80 / 96: 8 × 8 tile 13.1–14.3 / 13.1–13.9 ms, the large tile 10.0–10.3
 * / 11.1–11.8, this one 7.7–8.1 / 8.2–9.7, swapped 16 × 8 8.8–9.1 / 9.4–11.0. At N = 128 the large
 * tile stays ahead (9.4–10.3 against 12.4–13.0).
 */
export const MATMUL_TEXTURE_PRESET_MEDIUM: Readonly<MatmulPreset> = {
  wgx: 8,
  wgy: 1,
  tm: 16,
  tn: 16,
  swap: true,
};

/** Widest product (columns per batch item) that takes `MATMUL_TEXTURE_PRESET_NARROW`. */
export const TEXTURE_NARROW_MAX_N = 64;

/** Widest product (columns per batch item) that takes `MATMUL_TEXTURE_PRESET_MEDIUM`. */
export const TEXTURE_MEDIUM_MAX_N = 127;

/**
 * Fewest rows per batch item of a product that takes `MATMUL_TEXTURE_PRESET_NARROW` or
 * `MATMUL_TEXTURE_PRESET_MEDIUM`.
 */
export const TEXTURE_NARROW_MIN_M = 1024;

/**
 * Largest tile (TM·TN outputs) with a scalar-store entry point in kernels/matmul_tex.wgsl; larger
 * tiles only store vec4s (N % 4 == 0), and `texturePresetForStores` gives other products the
 * default tile (a 16 × 16 scalar-store entry took 15.7 s to compile on llvmpipe).
 */
export const TEXTURE_SCALAR_MAX_TILE = 64;

/**
 * The preset a texture product of N columns runs with, given the preset in force: `p` itself
 * unless N % 4 != 0 and `p`'s tile has no scalar-store entry, then `p` with 4 columns per lane
 * for a swapped tile, else `MATMUL_TEXTURE_PRESET`.
 */
export function texturePresetForStores(
  p: Readonly<MatmulPreset>,
  N: number,
): Readonly<MatmulPreset> {
  if (N % 4 === 0 || p.tm * p.tn <= TEXTURE_SCALAR_MAX_TILE) return p;
  // a swapped tile keeps its row lanes with 4 columns each (16 × 4 has scalar stores)
  return p.swap && p.tm * 4 <= TEXTURE_SCALAR_MAX_TILE ? { ...p, tn: 4 } : MATMUL_TEXTURE_PRESET;
}

/** Smallest M and N of a dispatch that takes `MATMUL_TEXTURE_PRESET_LARGE`. */
export const TEXTURE_LARGE_MIN = 128;

let textureOverride: MatmulPreset | undefined;

/**
 * The texture-kernel preset in force for an M × N output per batch item: an override from
 * `setMatmulTexturePreset` for every shape, else `MATMUL_TEXTURE_PRESET_LARGE` when M and N are
 * both at least `TEXTURE_LARGE_MIN`, for M ≥ `TEXTURE_NARROW_MIN_M` `MATMUL_TEXTURE_PRESET_NARROW`
 * when N ≤ `TEXTURE_NARROW_MAX_N` and `MATMUL_TEXTURE_PRESET_MEDIUM` when N ≤
 * `TEXTURE_MEDIUM_MAX_N`, and `MATMUL_TEXTURE_PRESET` otherwise (or without a shape).
 */
export function matmulTexturePreset(M?: number, N?: number): Readonly<MatmulPreset> {
  if (textureOverride) return textureOverride;
  if (M === undefined || N === undefined) return MATMUL_TEXTURE_PRESET;
  if (M >= TEXTURE_LARGE_MIN && N >= TEXTURE_LARGE_MIN) return MATMUL_TEXTURE_PRESET_LARGE;
  if (M >= TEXTURE_NARROW_MIN_M && N <= TEXTURE_NARROW_MAX_N) return MATMUL_TEXTURE_PRESET_NARROW;
  if (M >= TEXTURE_NARROW_MIN_M && N <= TEXTURE_MEDIUM_MAX_N) return MATMUL_TEXTURE_PRESET_MEDIUM;
  return MATMUL_TEXTURE_PRESET;
}

/** Columns [n0, n1) of a texture product and the preset that dispatch runs with. */
export interface TexturePart {
  /** Tile and lanes of this dispatch. */
  preset: Readonly<MatmulPreset>;
  /** First column. */
  n0: number;
  /** One past the last column. */
  n1: number;
}

/**
 * The dispatches of an M × N texture product (per batch item): one with `matmulTexturePreset(M,
 * N)`, except that a product on the large tile (SIMD batches of 128 columns) over ≥
 * `TEXTURE_NARROW_MIN_M` rows runs its last N % 128 columns as a second dispatch with the preset of
 * a product that wide (a swapped tile) — a pruned FFN of 157 neurons (N = 160) paid for 256
 * columns: M = 4096, K = 128, 16.3–17.3 ms in one dispatch against ≈ 13 ms in two.
 * No split under a preset override (`setMatmulTexturePreset`).
 */
export function texturePlan(M: number, N: number): TexturePart[] {
  const p = matmulTexturePreset(M, N);
  const span = p.wgx * p.tn;
  const r = N % span;
  if (
    textureOverride || p !== MATMUL_TEXTURE_PRESET_LARGE || N <= span || r === 0 ||
    r > TEXTURE_MEDIUM_MAX_N || M < TEXTURE_NARROW_MIN_M
  ) return [{ preset: p, n0: 0, n1: N }];
  return [
    { preset: p, n0: 0, n1: N - r },
    { preset: matmulTexturePreset(M, r), n0: N - r, n1: N },
  ];
}

/**
 * Replaces the texture-kernel preset for the rest of the process (`undefined` restores the
 * built-in one). Raises `InvalidArgumentError` for a tile without an entry point or a workgroup
 * of more than 256 lanes.
 */
export function setMatmulTexturePreset(preset: MatmulPreset | undefined): void {
  if (preset) {
    const { wgx, wgy, tm, tn } = preset;
    const ok = [wgx, wgy].every((v) => Number.isInteger(v) && v >= 1) && wgx * wgy <= 256 &&
      TEXTURE_TILES.some(([r, c]) => r === tm && c === tn);
    if (!ok) {
      throw new InvalidArgumentError(
        `matmul texture preset ${JSON.stringify(preset)}: tile must be one of ${
          TEXTURE_TILES.map(([r, c]) => `${r}x${c}`).join(", ")
        } and wgx·wgy ≤ 256`,
      );
    }
    textureOverride = { ...preset };
  } else textureOverride = undefined;
}
