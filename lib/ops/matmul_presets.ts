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
 * Preset of the texture-operand kernel used on CPU adapters (kernels/matmul_tex.wgsl): workgroup
 * lanes WGX × WGY and a TM × TN tile from `TEXTURE_TILES`. Chosen by measurement on Mesa
 * llvmpipe 22.3 (bench/README.md, "Texture operands").
 */
export const MATMUL_TEXTURE_PRESET: Readonly<MatmulPreset> = { wgx: 8, wgy: 8, tm: 8, tn: 8 };

/**
 * Under the "auto" path, products with fewer multiply-adds than this (batch·M·N·K) stay on the
 * storage kernel on CPU adapters: for them the extra copy/repack commands cost more than the
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
 * under "auto" on a CPU adapter (where its shapes fit): at least `TEXTURE_MIN_MACS`, or K ≥
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
 * rows): 16 × 4 outputs per invocation on 8 × 8 lanes. llvmpipe runs the 8 lanes along the columns
 * as one SIMD batch whatever number of them has columns to compute, so a narrow product costs per
 * batch: a 4-column tile keeps 32 columns per batch instead of 64, 16 rows halve the batches.
 * Same-run sweep (session 8, idle, M = 4096, K = 128, no bias): N = 8 / 16 / 24 / 32: 8 × 8 tile
 * 6.2 / 6.4 / 5.8 / 6.1 ms, 16 × 4 3.7 / 4.1 / 3.9 / 4.0 ms, 8 × 4 4.2 / 4.3 / 3.6 / 4.6 ms; at N = 40
 * and 48 the 8 × 8 tile stays ahead (6.5 against 8.1 ms).
 */
export const MATMUL_TEXTURE_PRESET_NARROW: Readonly<MatmulPreset> = {
  wgx: 8,
  wgy: 8,
  tm: 16,
  tn: 4,
};

/**
 * Preset for products of 33–64 columns over ≥ `TEXTURE_NARROW_MIN_M` rows: 16 × 8 outputs per
 * invocation on 8 × 4 lanes (one SIMD batch spans 64 columns). Same-run sweep (session 9, idle, M =
 * 4096, K = 128, whole `matmul` calls): N = 40 / 48 / 64: 8 × 8 tile 5.7 / 6.3 / 6.4 ms, this one
 * 5.1–5.4 / 5.3–5.7 / 5.0–5.2 ms.
 */
export const MATMUL_TEXTURE_PRESET_MEDIUM: Readonly<MatmulPreset> = {
  wgx: 8,
  wgy: 4,
  tm: 16,
  tn: 8,
};

/** Widest product (columns per batch item) that takes `MATMUL_TEXTURE_PRESET_NARROW`. */
export const TEXTURE_NARROW_MAX_N = 32;

/** Widest product (columns per batch item) that takes `MATMUL_TEXTURE_PRESET_MEDIUM`. */
export const TEXTURE_MEDIUM_MAX_N = 64;

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
 * unless N % 4 != 0 and `p`'s tile has no scalar-store entry, then `MATMUL_TEXTURE_PRESET`.
 */
export function texturePresetForStores(
  p: Readonly<MatmulPreset>,
  N: number,
): Readonly<MatmulPreset> {
  return N % 4 !== 0 && p.tm * p.tn > TEXTURE_SCALAR_MAX_TILE ? MATMUL_TEXTURE_PRESET : p;
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
 * N)`, except that a product on the large tile (SIMD batches of 128 columns) whose last N % 128
 * columns are ≤ `TEXTURE_MEDIUM_MAX_N`, over ≥ `TEXTURE_NARROW_MIN_M` rows, runs those columns as a
 * second dispatch with the preset of a product that wide — a pruned FFN of 157 neurons (N = 160)
 * paid for 256 columns: M = 4096, K = 128, 16.3–17.3 ms in one dispatch against ≈ 13 ms in two.
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
