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

let textureOverride: MatmulPreset | undefined;

/** The texture-kernel preset in force (an override from `setMatmulTexturePreset`, else built-in). */
export function matmulTexturePreset(): Readonly<MatmulPreset> {
  return textureOverride ?? MATMUL_TEXTURE_PRESET;
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
