/**
 * Matmul section of `deno task bench`: GFLOP/s of the three layouts at BERT-base shapes
 * (tokens 512; 768→768, 768→3072, 3072→768) for the forward (X·Wᵀ, "nt") and both backward
 * products (dX = dY·W "nn", dW = dYᵀ·X "tn"), the same products through onnxruntime-node (CPU
 * EP) with the ratio ours/theirs, and the dispatch overhead per op. Both kernel paths (storage
 * buffers and, on every adapter, texture operands) are timed in the same run (`setMatmulPath`),
 * as are batched attention products (12 heads, 4 × 128 tokens). `--sweep` additionally times a
 * list of candidate presets on one shape (how bench/README.md chose the presets): entries
 * `wgx x wgy : tm x tn` for the storage kernel, `tex:` + the same for the texture kernel.
 * @module
 */
import { matmul, type MatmulPath, setMatmulPath } from "../../lib/ops/matmul.ts";
import { axpby } from "../../lib/ops/elementwise.ts";
import {
  type MatmulPreset,
  matmulPreset,
  matmulTexturePreset,
  setMatmulPreset,
  setMatmulTexturePreset,
  TEXTURE_LARGE_MIN,
} from "../../lib/ops/matmul_presets.ts";
import type { Tensor } from "../../lib/gpu/tensor.ts";
import { makeConfig } from "../../lib/model/config.ts";
import { createRandomModel } from "../../lib/model/model.ts";
import { uploadBatch } from "../../lib/model/inputs.ts";
import { forward } from "../../lib/model/run.ts";
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

/** One benchmarked product: out[batch, M, N] = op(A)·op(B). */
interface Shape {
  label: string;
  layout: "nt" | "nn" | "tn";
  M: number;
  N: number;
  K: number;
  /** Batch items with their own A and B (attention); absent: one product. */
  batch?: number;
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

/** BERT-base attention at 4 × 128 tokens, 12 heads of 64: scores, context and their backward. */
export function attentionShapes(): Shape[] {
  const [Z, S, D] = [48, 128, 64];
  return [
    { label: "attn Q·Kᵀ   [48,128,64]", layout: "nt", M: S, N: S, K: D, batch: Z },
    { label: "attn P·V    [48,128,128]", layout: "nn", M: S, N: D, K: S, batch: Z },
    { label: "attn dP=dC·Vᵀ", layout: "nt", M: S, N: S, K: D, batch: Z },
    { label: "attn dV=Pᵀ·dC", layout: "tn", M: S, N: D, K: S, batch: Z },
    { label: "attn dQ=dS·K", layout: "nn", M: S, N: D, K: S, batch: Z },
  ];
}

/** Operand shapes of a product in the given layout. */
function operandShapes(s: Shape): { a: number[]; b: number[] } {
  const z = s.batch ? [s.batch] : [];
  return {
    a: [...z, ...(s.layout === "tn" ? [s.K, s.M] : [s.M, s.K])],
    b: [...z, ...(s.layout === "nt" ? [s.N, s.K] : [s.K, s.N])],
  };
}

const flopsOf = (s: Shape) => 2 * (s.batch ?? 1) * s.M * s.N * s.K;

async function timeOurs(ctx: BenchContext, s: Shape, repeats: number) {
  const { gpu } = ctx;
  const sh = operandShapes(s);
  const z = s.batch ?? 1;
  const a = gpu.upload(randomF32(z * s.M * s.K, 1), sh.a);
  const b = gpu.upload(randomF32(z * s.N * s.K, 2), sh.b);
  const out = gpu.empty(s.batch ? [z, s.M, s.N] : [s.M, s.N]);
  const opts = { transA: s.layout === "tn", transB: s.layout === "nt", out };
  const t0 = performance.now();
  matmul(a, b, opts);
  await gpu.sync();
  const firstMs = performance.now() - t0;
  const { ms, cpuMs } = await timeGpuCpu(gpu, () => matmul(a, b, opts), repeats);
  for (const t of [a, b, out]) t.release();
  return { ms, cpuMs, firstMs };
}

/**
 * Forward time of a random BERT (B = 32, S = 64, d = 256, 4 heads, 4 layers, FFN 1024, no
 * padding) under each matmul path ("storage" forced vs "auto", which is the texture path for the
 * large products on a CPU adapter), alternating the paths per repeat; medians in ms.
 */
export async function modelForward(ctx: BenchContext, repeats: number) {
  const { gpu } = ctx;
  const [B, S] = [32, 64];
  const config = makeConfig({
    arch: "bert",
    head: "classification",
    hiddenSize: 256,
    numHeads: 4,
    numLayers: 4,
    intermediateSize: 1024,
  });
  const model = await createRandomModel(config, 1, gpu);
  const ids = Int32Array.from({ length: B * S }, (_, i) => 1000 + ((i * 7919) % 20000));
  const batch = uploadBatch(gpu, config, {
    size: B,
    seqLen: S,
    inputIds: ids,
    attentionMask: new Int32Array(B * S).fill(1),
  });
  const times: Record<string, number[]> = { storage: [], auto: [] };
  const once = async () => {
    const t0 = performance.now();
    const r = forward(model, batch, undefined);
    await r.logits!.read();
    const ms = performance.now() - t0;
    r.release();
    return ms;
  };
  try {
    for (let i = 0; i <= repeats; i++) {
      for (const path of ["storage", "auto"] as const) {
        setMatmulPath(path);
        const ms = await once();
        if (i > 0) times[path].push(ms); // i = 0 compiles pipelines
      }
    }
  } finally {
    setMatmulPath("auto");
    batch.release();
    model.release();
  }
  return {
    config: { B, S, hidden: 256, heads: 4, layers: 4, ffn: 1024 },
    storageMs: median(times.storage),
    autoMs: median(times.auto),
    runs: times,
  };
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

/**
 * Parses `--sweep "8x1:16x8,tex:8x8:8x4"` (`[tex:]wgx x wgy : tm x tn`; `tex:` = texture kernel),
 * or the default candidate list (texture candidates first on a CPU adapter).
 */
function sweepPresets(
  arg: string | boolean | undefined,
  kind: "cpu" | "gpu",
): { texture: boolean; preset: MatmulPreset }[] {
  const tex = "tex:8x8:8x4,tex:8x8:8x8,tex:8x8:4x8,tex:8x8:4x4,tex:8x8:16x4,tex:4x4:8x4," +
    "tex:16x4:8x4,tex:4x16:8x4,tex:8x8:8x4";
  const storage = "8x1:8x8,8x1:16x8,8x1:8x16,8x1:16x16,8x1:32x8,16x1:16x8,4x1:16x8";
  const text = typeof arg === "string" && arg !== ""
    ? arg
    : kind === "cpu"
    ? tex
    : `${storage},${tex}`;
  return text.split(",").map((t) => {
    const texture = t.startsWith("tex:");
    const [wg, tile] = (texture ? t.slice(4) : t).split(":");
    const [wgx, wgy] = wg.split("x").map(Number);
    const [tm, tn] = tile.split("x").map(Number);
    return { texture, preset: { wgx, wgy, tm, tn } };
  });
}

const PATHS: ("storage" | "texture")[] = ["storage", "texture"];

/** Times `s` under each kernel path; the path in force is restored to "auto" afterwards. */
async function timePaths(ctx: BenchContext, s: Shape, repeats: number) {
  const r: Record<string, { ms: number; cpuMs: number; firstMs: number }> = {};
  try {
    for (const path of PATHS) {
      setMatmulPath(path as MatmulPath);
      r[path] = await timeOurs(ctx, s, repeats);
    }
  } finally {
    setMatmulPath("auto");
  }
  return r as Record<"storage" | "texture", { ms: number; cpuMs: number; firstMs: number }>;
}

/** The matmul section. */
export const matmulSection: BenchSection = {
  name: "matmul",
  async run(ctx) {
    const { gpu, quick } = ctx;
    const kind = gpu.adapter.kind;
    const repeats = quick ? 1 : 3;
    const result: Record<string, unknown> = {
      preset: matmulPreset(kind),
      texturePreset: matmulTexturePreset(),
      texturePresetLarge: matmulTexturePreset(TEXTURE_LARGE_MIN, TEXTURE_LARGE_MIN),
      repeats,
    };
    const threads = navigator.hardwareConcurrency;

    if (ctx.flags.sweep !== undefined) {
      const s: Shape = { label: "sweep", layout: "nt", M: T, N: 768, K: 768 };
      const rows = [[
        "kernel : preset (wgx×wgy : tm×tn)",
        "first call ms",
        "ms",
        "GFLOP/s",
        "CPU-time GFLOP/s",
      ]];
      const sweep = [];
      for (const { texture, preset: p } of sweepPresets(ctx.flags.sweep, kind)) {
        if (texture) setMatmulTexturePreset(p);
        else setMatmulPreset(kind, p);
        setMatmulPath(texture ? "texture" : "storage");
        let t;
        try {
          t = await timeOurs(ctx, s, repeats);
        } finally {
          setMatmulPath("auto");
          setMatmulTexturePreset(undefined);
          setMatmulPreset(kind, undefined);
        }
        const { ms, cpuMs, firstMs } = t;
        const gflops = (2 * s.M * s.N * s.K) / ms / 1e6;
        const cpuGflops = (2 * s.M * s.N * s.K * threads) / cpuMs / 1e6;
        sweep.push({
          kernel: texture ? "texture" : "storage",
          preset: p,
          ms,
          cpuMs,
          firstMs,
          gflops,
          cpuGflops,
        });
        rows.push([
          `${texture ? "texture" : "storage"} : ${p.wgx}×${p.wgy} : ${p.tm}×${p.tn}`,
          firstMs.toFixed(0),
          ms.toFixed(1),
          gflops.toFixed(2),
          cpuGflops.toFixed(2),
        ]);
      }
      console.log(`\nmatmul preset sweep (${T}×768·(768×768)ᵀ, median of ${repeats}):`);
      printTable(rows);
      result.sweep = sweep;
    }

    const ortMod = await loadOrt();
    if (!ortMod.ok) console.log(`onnxruntime-node unavailable: ${ortMod.reason}`);
    const rows = [[
      "product (tokens 512)",
      "batch×M×N×K",
      "storage ms",
      "texture ms",
      "storage GFLOP/s",
      "texture GFLOP/s",
      "tex/storage",
      "ORT GFLOP/s",
      "tex/ORT",
      "CPU-time storage",
      "CPU-time texture",
      "ORT CPU-time",
    ]];
    const table = [];
    for (const s of [...bertShapes(), ...attentionShapes()]) {
      const flops = flopsOf(s);
      const both = await timePaths(ctx, s, repeats);
      const ours = both.texture;
      let ortT: { ms: number; cpuMs: number } | null = null;
      if (ortMod.ok && !s.batch) {
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
      const gs = flops / both.storage.ms / 1e6;
      const gsc = (flops * threads) / both.storage.cpuMs / 1e6;
      const go = ortT ? flops / ortT.ms / 1e6 : null;
      const goc = ortT ? (flops * threads) / ortT.cpuMs / 1e6 : null;
      table.push({
        ...s,
        ms: ours.ms,
        cpuMs: ours.cpuMs,
        firstMs: ours.firstMs,
        gflops: g,
        cpuGflops: gc,
        storage: { ...both.storage, gflops: gs, cpuGflops: gsc },
        ortMs: ortT?.ms ?? null,
        ortCpuMs: ortT?.cpuMs ?? null,
        ortGflops: go,
        ortCpuGflops: goc,
      });
      rows.push([
        s.label,
        `${s.batch ?? 1}×${s.M}×${s.N}×${s.K}`,
        both.storage.ms.toFixed(1),
        ours.ms.toFixed(1),
        gs.toFixed(2),
        g.toFixed(2),
        (g / gs).toFixed(2),
        go ? go.toFixed(1) : "n/a",
        go ? (g / go).toFixed(3) : "n/a",
        gsc.toFixed(2),
        gc.toFixed(2),
        goc ? goc.toFixed(1) : "n/a",
      ]);
    }
    console.log(
      `\nmatmul, storage vs texture path (median of ${repeats}; ORT: CPU EP, ${threads} threads; CPU-time GFLOP/s = flops ÷ process CPU seconds × ${threads} threads, an estimate of the uncontended rate):`,
    );
    printTable(rows);
    result.shapes = table;
    result.ort = ortMod.ok
      ? { package: "onnxruntime-node@1.20.1", executionProvider: "cpu", threads }
      : { unavailable: ortMod.reason };

    const fwd = await modelForward(ctx, quick ? 1 : 3);
    console.log(
      `\nmodel forward B=32 S=64 d=256 L=4 F=1024 (median of ${fwd.runs.auto.length}): storage path ${
        fwd.storageMs.toFixed(0)
      } ms, auto (texture) ${fwd.autoMs.toFixed(0)} ms, speedup ${
        (fwd.storageMs / fwd.autoMs).toFixed(2)
      }×`,
    );
    result.modelForward = fwd;

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
