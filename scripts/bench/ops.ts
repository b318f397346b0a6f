/**
 * Benchmark of the non-matmul ops, both kernel classes side by side ("gpu": workgroup-tree
 * reductions; "cpu": one invocation per row, see lib/ops/kernel_class.ts), in the same run so the
 * ratio is fair on a shared machine. Sections: LayerNorm and masked-softmax GB/s; per-kernel
 * milliseconds of a whole model forward+backward (every dispatch of one pass is captured, then each
 * non-matmul dispatch is replayed alone between syncs); whole-model forward and forward+backward
 * wall time. Run directly: `deno run -A scripts/bench/ops.ts [--quick] [--models-only]
 * [--shape B,S,d,H,F,L] [--json]`.
 * @module
 */
import { getGpu, type Gpu, type KernelSpec } from "../../lib/gpu/context.ts";
import { Tensor } from "../../lib/gpu/tensor.ts";
import { makeConfig } from "../../lib/model/config.ts";
import { createRandomModel, type Model } from "../../lib/model/model.ts";
import { type ModelInput, uploadBatch, uploadMasks } from "../../lib/model/inputs.ts";
import { backward, forward } from "../../lib/model/run.ts";
import { layerNorm, layerNormBackward } from "../../lib/ops/layernorm.ts";
import { softmaxBackward, softmaxMasked } from "../../lib/ops/softmax.ts";
import { type KernelClass, setKernelClass } from "../../lib/ops/kernel_class.ts";

const CLASSES: KernelClass[] = ["gpu", "cpu"];

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

function printTable(rows: readonly (readonly string[])[]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const [i, r] of rows.entries()) {
    console.log(
      r.map((x, c) => (c === 0 ? x.padEnd(widths[c]) : x.padStart(widths[c]))).join("  "),
    );
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
}

function randomData(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** Median ms per call of `record` (recorded `per` times between syncs), after one warm-up. */
async function timeOp(gpu: Gpu, record: () => void, repeats: number, per: number) {
  record();
  await gpu.sync();
  const ms: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    for (let i = 0; i < per; i++) record();
    await gpu.sync();
    ms.push((performance.now() - t0) / per);
  }
  return median(ms);
}

/** LayerNorm and softmax forward/backward GB/s ((bytes read + written) / time) per class. */
async function bandwidth(gpu: Gpu, quick: boolean): Promise<Record<string, unknown>> {
  const repeats = quick ? 3 : 5, per = quick ? 2 : 4;
  const cases: {
    name: string;
    bytes: number;
    setup: () => { run: () => void; free: () => void };
  }[] = [];
  for (const [R, C] of [[1024, 64], [2048, 256], [1024, 768]]) {
    const mk = () => {
      const x = gpu.upload(randomData(R * C, 1), [R, C]);
      const dy = gpu.upload(randomData(R * C, 2), [R, C]);
      const g = gpu.upload(randomData(C, 3), [C]), b = gpu.upload(randomData(C, 4), [C]);
      const fw = layerNorm(x, g, b, 1e-12);
      return { x, dy, g, b, fw };
    };
    cases.push({
      name: `layerNorm fwd [${R}, ${C}]`,
      bytes: 4 * (2 * R * C + 2 * C + 2 * R),
      setup: () => {
        const t = mk();
        return {
          run: () => layerNorm(t.x, t.g, t.b, 1e-12, t.fw.y),
          free: () => [t.x, t.dy, t.g, t.b, t.fw.y].forEach((u) => u.release()),
        };
      },
    });
    cases.push({
      name: `layerNorm bwd [${R}, ${C}]`,
      bytes: 4 * (4 * R * C + 3 * C + 2 * R),
      setup: () => {
        const t = mk();
        return {
          run: () => {
            const r = layerNormBackward(t.dy, t.x, t.fw.mean, t.fw.rstd, t.g);
            r.dx.release(), r.dgamma.release(), r.dbeta.release();
          },
          free: () => [t.x, t.dy, t.g, t.b, t.fw.y].forEach((u) => u.release()),
        };
      },
    });
  }
  for (const [BH, H, S] of [[128, 4, 32], [128, 4, 64], [96, 12, 128]]) {
    const mk = () => {
      const s = gpu.upload(randomData(BH * S * S, 5), [BH, S, S]);
      const dP = gpu.upload(randomData(BH * S * S, 6), [BH, S, S]);
      const mask = gpu.upload(
        Array.from({ length: (BH / H) * S }, (_, i) => (i % S < S - (i % 5) ? 1 : 0)),
        [BH / H, S],
      );
      const P = softmaxMasked(s, mask, H, 0.125);
      const dS = gpu.empty([BH, S, S]);
      return { s, dP, mask, P, dS };
    };
    const n = BH * S * S;
    cases.push({
      name: `softmax fwd [${BH}, ${S}, ${S}]`,
      bytes: 4 * 2 * n,
      setup: () => {
        const t = mk();
        return {
          run: () => softmaxMasked(t.s, t.mask, H, 0.125, "bert", t.P),
          free: () => [t.s, t.dP, t.mask, t.P, t.dS].forEach((u) => u.release()),
        };
      },
    });
    cases.push({
      name: `softmax bwd [${BH}, ${S}, ${S}]`,
      bytes: 4 * 3 * n,
      setup: () => {
        const t = mk();
        return {
          run: () => softmaxBackward(t.dP, t.P, 0.125, undefined, t.dS),
          free: () => [t.s, t.dP, t.mask, t.P, t.dS].forEach((u) => u.release()),
        };
      },
    });
  }
  const rows: string[][] = [["op", "gpu-class ms", "GB/s", "cpu-class ms", "GB/s", "speedup"]];
  const out: Record<string, unknown> = {};
  for (const c of cases) {
    const ms: Record<string, number> = {};
    for (const k of CLASSES) {
      setKernelClass(k);
      const s = c.setup();
      ms[k] = await timeOp(gpu, s.run, repeats, per);
      s.free();
    }
    setKernelClass("auto");
    const gbs = (m: number) => (c.bytes / 1e6 / m).toFixed(2);
    rows.push([
      c.name,
      ms.gpu.toFixed(3),
      gbs(ms.gpu),
      ms.cpu.toFixed(3),
      gbs(ms.cpu),
      (ms.gpu / ms.cpu).toFixed(1) + "×",
    ]);
    out[c.name] = { gpuMs: ms.gpu, cpuMs: ms.cpu, bytes: c.bytes };
  }
  printTable(rows);
  return out;
}

interface Captured {
  spec: KernelSpec;
  params: number[];
  tensors: readonly Tensor[];
  grid: readonly [number, number?, number?];
}

/** A model shape to profile: batch, sequence, hidden, heads, FFN width, layers. */
export interface ModelShape {
  B: number;
  S: number;
  d: number;
  H: number;
  F: number;
  L: number;
}

function modelInput(B: number, S: number, vocab: number): ModelInput {
  return {
    size: B,
    seqLen: S,
    inputIds: Int32Array.from({ length: B * S }, (_, i) => (i * 7919) % vocab),
    tokenTypeIds: new Int32Array(B * S),
    // example b has b mod 8 padding positions at the end
    attentionMask: Int32Array.from(
      { length: B * S },
      (_, i) => (i % S < S - ((i / S | 0) % 8) ? 1 : 0),
    ),
    labels: Int32Array.from({ length: B }, (_, i) => i % 2),
  };
}

async function pass(gpu: Gpu, m: Model, input: ModelInput, withBackward: boolean) {
  const c = m.config;
  const batch = uploadBatch(gpu, c, input);
  const masks = uploadMasks(gpu, c, input.size, undefined);
  const grads = new Map<string, Tensor>();
  const fwd = forward(m, batch, masks, { withLoss: true, save: withBackward });
  if (withBackward) backward(m, fwd, batch, masks, { lossScale: 1 / input.size, grads }).release();
  await gpu.sync();
  fwd.release(), masks.release(), batch.release();
  for (const g of grads.values()) g.release();
}

/**
 * Per-kernel ms of one forward+backward and whole-pass times, for both classes. Matmul dispatches
 * (class-independent) get one extra copy, every other dispatch several: each is timed by its
 * marginal cost in a submit.
 */
async function modelProfile(
  gpu: Gpu,
  shape: ModelShape,
  quick: boolean,
  wholePasses: number,
): Promise<Record<string, unknown>> {
  const { B, S, d, H, F, L } = shape;
  const vocab = 1000;
  const config = makeConfig({
    arch: "bert",
    head: "classification",
    hiddenSize: d,
    numHeads: H,
    intermediateSize: F,
    numLayers: L,
    vocabSize: vocab,
  });
  const m = await createRandomModel(config, 1, gpu);
  const input = modelInput(B, S, vocab);
  const label = `B=${B} S=${S} d=${d} H=${H} F=${F} L=${L}`;
  const perKernel = new Map<string, Record<KernelClass, number>>();
  const passMs: Record<string, Record<KernelClass, number>> = {
    forward: { gpu: 0, cpu: 0 },
    "forward+backward": { gpu: 0, cpu: 0 },
  };
  const replays = quick ? 3 : 6;
  const original = gpu.dispatch;
  const progress = (what: string) => console.error(`  [${label}] ${what}`);
  // Whole passes, the classes alternating so that a change of machine load hits both alike.
  const samples: Record<string, Record<KernelClass, number[]>> = {
    forward: { gpu: [], cpu: [] },
    "forward+backward": { gpu: [], cpu: [] },
  };
  for (let i = -1; i < wholePasses; i++) {
    for (const k of CLASSES) {
      setKernelClass(k);
      for (const [name, wb] of [["forward", false], ["forward+backward", true]] as const) {
        const t0 = performance.now();
        await pass(gpu, m, input, wb);
        const ms = performance.now() - t0;
        if (i >= 0) samples[name][k].push(ms); // i = −1: warm-up (pipeline compilation)
        progress(`${k}-class ${name} ${i < 0 ? "warm-up" : `#${i + 1}`}: ${ms.toFixed(0)} ms`);
      }
    }
  }
  for (const [name, v] of Object.entries(samples)) {
    passMs[name] = { gpu: median(v.gpu), cpu: median(v.cpu) };
  }
  for (const k of CLASSES) {
    setKernelClass(k);
    progress(`${k}-class: per-kernel replay`);
    const captured: Captured[] = [];
    gpu.dispatch = (spec, params, tensors, grid) => {
      // Handles of their own: the pass releases its tensors, whose buffers stay in the pool.
      const handles = tensors.map((t) =>
        t instanceof Tensor ? new Tensor(gpu, t.shape, t.buffer) : t
      );
      captured.push({ spec, params: Array.from(params), tensors: handles, grid });
      original.call(gpu, spec, params, tensors, grid);
    };
    try {
      await pass(gpu, m, input, true);
    } finally {
      gpu.dispatch = original;
    }
    // Replaying into buffers the pool may since have handed out again is harmless for timing.
    for (const r of captured) {
      const matmul = r.spec.name.startsWith("matmul");
      const key = matmul ? "matmul (all)" : `${r.spec.name.replace(".wgsl", "")}:${r.spec.entry}`;
      const group = async (n: number) => {
        const t0 = performance.now();
        for (let i = 0; i < n; i++) gpu.dispatch(r.spec, r.params, r.tensors, r.grid);
        await gpu.sync();
        return performance.now() - t0;
      };
      await group(1); // warm
      // Marginal cost of one more dispatch in a submit: (t(1 + n) − t(1)) / n, which removes the
      // submit/sync overhead (several ms on llvmpipe). Matmuls (class-independent): n = 1.
      const n = matmul ? 1 : replays;
      const ms = Math.max(0, (await group(1 + n)) - (await group(1))) / n;
      const e = perKernel.get(key) ?? { gpu: 0, cpu: 0 };
      e[k] += ms;
      perKernel.set(key, e);
    }
  }
  setKernelClass("auto");
  m.release();
  // CPU-class kernels have their own entry names; pair them with their GPU-class counterparts.
  const base = (key: string) =>
    key.replace(/_rows$|_serial$/, "").replace(/:col$/, ":col_reduce").replace(
      /:row$/,
      ":row_reduce",
    );
  const merged = new Map<string, Record<KernelClass, number>>();
  for (const [key, v] of perKernel) {
    const e = merged.get(base(key)) ?? { gpu: 0, cpu: 0 };
    e.gpu += v.gpu, e.cpu += v.cpu;
    merged.set(base(key), e);
  }
  const sorted = [...merged.entries()].sort((a, b) => b[1].gpu - a[1].gpu);
  console.log(
    `\nper-kernel ms in one forward+backward, ${label} (marginal ms per dispatch, summed)`,
  );
  const rows: string[][] = [["kernel", "gpu-class ms", "cpu-class ms", "speedup"]];
  let tg = 0, tc = 0;
  for (const [key, v] of sorted) {
    tg += v.gpu, tc += v.cpu;
    rows.push([
      key,
      v.gpu.toFixed(2),
      v.cpu.toFixed(2),
      v.cpu > 0 ? (v.gpu / v.cpu).toFixed(1) + "×" : "-",
    ]);
  }
  rows.push(["sum of replays", tg.toFixed(1), tc.toFixed(1), (tg / tc).toFixed(2) + "×"]);
  for (const [name, v] of Object.entries(passMs)) {
    rows.push([
      `whole ${name} (median of ${wholePasses})`,
      v.gpu.toFixed(1),
      v.cpu.toFixed(1),
      (v.gpu / v.cpu).toFixed(2) + "×",
    ]);
  }
  printTable(rows);
  return { shape, perKernelMs: Object.fromEntries(sorted), passMs };
}

/**
 * Runs the ops benchmark (both kernel classes in the same run), prints its tables and returns the
 * numbers: `bandwidth` (LayerNorm/softmax ms and bytes per class) and `models` (per-kernel ms and
 * whole-pass ms at B=32,S=64,d=256,H=4,F=1024,L=4 and, unless `quick`, BERT-base-like rows
 * d=768,H=12,F=3072 at B=8,S=128 with one layer).
 */
export async function benchOps(
  gpu: Gpu,
  o: { quick?: boolean; shapes?: ModelShape[]; modelsOnly?: boolean },
): Promise<Record<string, unknown>> {
  const quick = o.quick ?? false;
  console.log(`\nops: adapter ${gpu.adapter.kind} (${gpu.adapter.summary})`);
  const bw = o.modelsOnly ? {} : await bandwidth(gpu, quick);
  const shapes = o.shapes ?? [
    { B: 32, S: 64, d: 256, H: 4, F: 1024, L: 4 },
    ...(quick ? [] : [{ B: 8, S: 128, d: 768, H: 12, F: 3072, L: 1 }]),
  ];
  const models = [];
  for (const shape of shapes) models.push(await modelProfile(gpu, shape, quick, quick ? 1 : 3));
  return { bandwidth: bw, models };
}

if (import.meta.main) {
  const gpu = await getGpu();
  // --shape B,S,d,H,F,L profiles only that model shape
  const at = Deno.args.indexOf("--shape");
  const shapes = at >= 0
    ? [Deno.args[at + 1].split(",").map(Number)].map(([B, S, d, H, F, L]) => ({ B, S, d, H, F, L }))
    : undefined;
  const result = await benchOps(gpu, {
    quick: Deno.args.includes("--quick"),
    shapes,
    modelsOnly: Deno.args.includes("--models-only"),
  });
  if (Deno.args.includes("--json")) console.log(JSON.stringify(result));
}
