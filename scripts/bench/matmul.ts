/**
 * Matmul section of `deno task bench`: GFLOP/s of the three layouts at BERT-base shapes
 * (tokens 512; 768→768, 768→3072, 3072→768) for the forward (X·Wᵀ, "nt") and both backward
 * products (dX = dY·W "nn", dW = dYᵀ·X "tn"), the same products through onnxruntime-node (CPU
 * EP) with the ratio ours/theirs, and the dispatch overhead per op. `--sweep` additionally
 * times a list of candidate presets on one shape (how bench/README.md chose the CPU preset).
 * @module
 */
import { matmul } from "../../lib/ops/matmul.ts";
import { axpby } from "../../lib/ops/elementwise.ts";
import { type MatmulPreset, matmulPreset, setMatmulPreset } from "../../lib/ops/matmul_presets.ts";
import type { Tensor } from "../../lib/gpu/tensor.ts";
import {
  type BenchContext,
  type BenchSection,
  median,
  printTable,
  randomF32,
  timeGpu,
  timeGpuCpu,
} from "./common.ts";
import { loadOrt, timeOrtGemm } from "./ort.ts";

/** One benchmarked product: out[M, N] = op(A)·op(B). */
interface Shape {
  label: string;
  layout: "nt" | "nn" | "tn";
  M: number;
  N: number;
  K: number;
}

const T = 512;
const LAYERS: [number, number][] = [[768, 768], [768, 3072], [3072, 768]];

/** The BERT-base products: forward x·Wᵀ, dx = dy·W and dW = dyᵀ·x for each linear layer. */
export function bertShapes(): Shape[] {
  const shapes: Shape[] = [];
  for (const [inF, outF] of LAYERS) {
    const l = `${inF}→${outF}`;
    shapes.push({ label: `fwd  x·Wᵀ  ${l}`, layout: "nt", M: T, N: outF, K: inF });
    shapes.push({ label: `bwd  dy·W  ${l}`, layout: "nn", M: T, N: inF, K: outF });
    shapes.push({ label: `bwd  dyᵀ·x ${l}`, layout: "tn", M: outF, N: inF, K: T });
  }
  return shapes;
}

/** Operand shapes of a product in the given layout. */
function operandShapes(s: Shape): { a: number[]; b: number[] } {
  return {
    a: s.layout === "tn" ? [s.K, s.M] : [s.M, s.K],
    b: s.layout === "nt" ? [s.N, s.K] : [s.K, s.N],
  };
}

async function timeOurs(ctx: BenchContext, s: Shape, repeats: number) {
  const { gpu } = ctx;
  const sh = operandShapes(s);
  const a = gpu.upload(randomF32(s.M * s.K, 1), sh.a);
  const b = gpu.upload(randomF32(s.N * s.K, 2), sh.b);
  const out = gpu.empty([s.M, s.N]);
  const opts = { transA: s.layout === "tn", transB: s.layout === "nt", out };
  const t0 = performance.now();
  matmul(a, b, opts);
  await gpu.sync();
  const firstMs = performance.now() - t0;
  const { ms, cpuMs } = await timeGpuCpu(gpu, () => matmul(a, b, opts), repeats);
  for (const t of [a, b, out]) t.release();
  return { ms, cpuMs, firstMs };
}

async function dispatchOverhead(ctx: BenchContext, count: number) {
  const { gpu } = ctx;
  const tiny: Tensor[] = [gpu.upload([1, 2, 3, 4], [2, 2]), gpu.upload([5, 6, 7, 8], [2, 2])];
  const out = gpu.empty([2, 2]);
  const rec = (f: () => void) => () => {
    for (let i = 0; i < count; i++) f();
  };
  const repeats = ctx.quick ? 3 : 7;
  const mm = median(
    await timeGpu(gpu, rec(() => matmul(tiny[0], tiny[1], { out })), repeats),
  );
  const ew = median(await timeGpu(gpu, rec(() => axpby(tiny[0], tiny[1], 1, 1, out)), repeats));
  for (const t of [...tiny, out]) t.release();
  return { dispatches: count, matmulUs: (mm * 1000) / count, axpbyUs: (ew * 1000) / count };
}

/** Parses `--sweep "8x1:16x8,8x1:32x16"` (wgx x wgy : tm x tn), or the default candidate list. */
function sweepPresets(arg: string | boolean | undefined): MatmulPreset[] {
  const text = typeof arg === "string" && arg !== ""
    ? arg
    : "8x1:8x8,8x1:16x8,8x1:8x16,8x1:16x16,8x1:32x8,16x1:16x8,4x1:16x8";
  return text.split(",").map((t) => {
    const [wg, tile] = t.split(":");
    const [wgx, wgy] = wg.split("x").map(Number);
    const [tm, tn] = tile.split("x").map(Number);
    return { wgx, wgy, tm, tn };
  });
}

/** The matmul section. */
export const matmulSection: BenchSection = {
  name: "matmul",
  async run(ctx) {
    const { gpu, quick } = ctx;
    const kind = gpu.adapter.kind;
    const repeats = quick ? 1 : 3;
    const result: Record<string, unknown> = { preset: matmulPreset(kind), repeats };
    const threads = navigator.hardwareConcurrency;

    if (ctx.flags.sweep !== undefined) {
      const s: Shape = { label: "sweep", layout: "nt", M: T, N: 768, K: 768 };
      const rows = [[
        "preset (wgx×wgy : tm×tn)",
        "first call ms",
        "ms",
        "GFLOP/s",
        "CPU-time GFLOP/s",
      ]];
      const sweep = [];
      for (const p of sweepPresets(ctx.flags.sweep)) {
        setMatmulPreset(kind, p);
        const { ms, cpuMs, firstMs } = await timeOurs(ctx, s, repeats);
        const gflops = (2 * s.M * s.N * s.K) / ms / 1e6;
        const cpuGflops = (2 * s.M * s.N * s.K * threads) / cpuMs / 1e6;
        sweep.push({ preset: p, ms, cpuMs, firstMs, gflops, cpuGflops });
        rows.push([
          `${p.wgx}×${p.wgy} : ${p.tm}×${p.tn}`,
          firstMs.toFixed(0),
          ms.toFixed(1),
          gflops.toFixed(2),
          cpuGflops.toFixed(2),
        ]);
      }
      setMatmulPreset(kind, undefined);
      console.log(`\nmatmul preset sweep (${T}×768·(768×768)ᵀ, median of ${repeats}):`);
      printTable(rows);
      result.sweep = sweep;
    }

    const ortMod = await loadOrt();
    if (!ortMod.ok) console.log(`onnxruntime-node unavailable: ${ortMod.reason}`);
    const rows = [[
      "product (tokens 512)",
      "M×N×K",
      "ms",
      "GFLOP/s",
      "ORT GFLOP/s",
      "ours/ORT",
      "CPU-time GFLOP/s",
      "ORT CPU-time",
      "ratio",
    ]];
    const table = [];
    for (const s of bertShapes()) {
      const flops = 2 * s.M * s.N * s.K;
      const ours = await timeOurs(ctx, s, repeats);
      let ortT: { ms: number; cpuMs: number } | null = null;
      if (ortMod.ok) {
        const sh = operandShapes(s);
        ortT = await timeOrtGemm(
          ortMod.ort,
          randomF32(s.M * s.K, 1),
          sh.a,
          randomF32(s.N * s.K, 2),
          sh.b,
          [s.M, s.N],
          s.layout === "tn",
          s.layout === "nt",
          quick ? 3 : 7,
          threads,
        );
      }
      const g = flops / ours.ms / 1e6;
      const gc = (flops * threads) / ours.cpuMs / 1e6;
      const go = ortT ? flops / ortT.ms / 1e6 : null;
      const goc = ortT ? (flops * threads) / ortT.cpuMs / 1e6 : null;
      table.push({
        ...s,
        ms: ours.ms,
        cpuMs: ours.cpuMs,
        firstMs: ours.firstMs,
        gflops: g,
        cpuGflops: gc,
        ortMs: ortT?.ms ?? null,
        ortCpuMs: ortT?.cpuMs ?? null,
        ortGflops: go,
        ortCpuGflops: goc,
      });
      rows.push([
        s.label,
        `${s.M}×${s.N}×${s.K}`,
        ours.ms.toFixed(1),
        g.toFixed(2),
        go ? go.toFixed(1) : "n/a",
        go ? (g / go).toFixed(3) : "n/a",
        gc.toFixed(2),
        goc ? goc.toFixed(1) : "n/a",
        goc ? (gc / goc).toFixed(3) : "n/a",
      ]);
    }
    console.log(
      `\nmatmul (median of ${repeats}; ORT: CPU EP, ${threads} threads; CPU-time GFLOP/s = flops ÷ process CPU seconds × ${threads} threads, an estimate of the uncontended rate):`,
    );
    printTable(rows);
    result.shapes = table;
    result.ort = ortMod.ok
      ? { package: "onnxruntime-node@1.20.1", executionProvider: "cpu", threads }
      : { unavailable: ortMod.reason };

    const overhead = await dispatchOverhead(ctx, quick ? 200 : 1000);
    console.log(
      `\ndispatch overhead (${overhead.dispatches} tiny dispatches in one submit): matmul ${
        overhead.matmulUs.toFixed(1)
      } µs/op, axpby ${overhead.axpbyUs.toFixed(1)} µs/op`,
    );
    result.dispatchOverhead = overhead;
    return result;
  },
};
