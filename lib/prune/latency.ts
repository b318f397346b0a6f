/**
 * Latency lookup tables measured with our own kernels on the current adapter (METHOD.md §2.2):
 * lut_mha[h] = one MHA sub-layer (QKV, attention, W_o, residual, LN₁) with h heads, lut_ffn[n] =
 * one FFN sub-layer with n neurons, at a fixed batch × sequence length, both as inference runs
 * them (fused kernels). Each entry is the median of `runs` marginal timings (the per-submit
 * overhead removed, see `marginalTime`) after warm-up; every h is timed, n at 0, 1, 16, 32, F and
 * each multiple of `step`, linearly interpolated between — except on the texture path past 32
 * neurons, where a width costs what ⌈n/64⌉·64 costs (a pruned FFN's first product runs whole SIMD
 * batches of 64 or 128 columns: `linearPadded`).
 * Tables are cached on disk per adapter, shape, model dims and kernel version. Also
 * `measureModelLatency` / `measureModelLatencies` for whole-model timings in reports.
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";
import type { Gpu } from "../gpu/context.ts";
import { makeConfig } from "../model/config.ts";
import { attentionForward, ffnForward, type LayerState } from "../model/encoder.ts";
import { uploadBatch } from "../model/inputs.ts";
import { matmulPath, PADDED_WIDTH } from "../ops/matmul.ts";
import { TEXTURE_NARROW_MIN_M, textureWorthwhile } from "../ops/matmul_presets.ts";
import { createRandomModel, type Model } from "../model/model.ts";
import { forward } from "../model/run.ts";
import type { OnProgress } from "../util/progress.ts";
import type { LatencyTable } from "./search_latency.ts";

/**
 * Bump when kernels change in a way that changes timings (part of the cache key). 2: fused
 * inference kernels; 3: marginal (per-submit-free) timings; 4: LayerNorm/bias textures; 5: 4-row
 * attention, vec4 matmul stores; 6: 16x16 matmul tile, vec4 gathers; 7: padded odd FFN widths;
 * 8: FFN widths zero-padded to a multiple of 64, the tables' FFN timed fused; 9: the step cost only
 * where the padded path applies (not for products under TEXTURE_MIN_MACS, e.g. n < 16 at 1 × 128);
 * 10: unrolled attention entries for head widths 16, 32, 64 (lib/ops/attention_unrolled.ts);
 * 11: padded FFN products compute and read ⌈n/4⌉·4 columns, the narrow tile, FFN timed at 16, 32;
 * 12: the step cost again past 32 neurons (linear interpolation under-predicted); 13: zero-width
 * sub-layers broadcast their bias in one vec4 kernel (`broadcastRows`); 14: unrolled residual +
 * LayerNorm for rows of ≤ 256 values (lib/ops/layernorm_unrolled.ts); 15: the matmul epilogue's
 * activation and accumulate flag compiled in as override constants; 16: a wide product's last N % 128
 * ≤ 64 columns on a narrower tile (`texturePlan`), 33–64 columns on the 16 × 8 tile; 17: small
 * products with K ≥ 64 on the texture path (`textureWorthwhile`); 18: fused inference embeddings
 * (lib/ops/embedding_ln.ts) and LayerNorm parameters read from kept textures (`heldFlatTexture`);
 * 19: products of < 128 columns over ≥ 1024 rows on swapped tiles (rows along the SIMD lanes);
 * 20: zero-width sub-layers add their bias row inside the LayerNorm (`biasLayerNormInference`);
 * 21: GPU-class adapters take the texture matmul path too (`matmulPath`).
 */
export const KERNEL_VERSION = 21;

/** Options of `measureLatencyTable`. */
export interface LatencyOptions {
  /** Batch size of the timed shape (default 32). */
  batch?: number;
  /** Sequence length of the timed shape (default 128). */
  seqLen?: number;
  /** Marginal timings per entry (default 20; each times 1 and then 2 runs, see `marginalTime`). */
  runs?: number;
  /** Warm-up runs per entry (default 2). */
  warmup?: number;
  /** FFN widths are timed at multiples of this (default 64). */
  step?: number;
  /** Cache directory (default $XDG_CACHE_HOME/fastprune or ~/.cache/fastprune); null = no cache. */
  cacheDir?: string | null;
  /** Progress callback over timed entries. */
  onProgress?: OnProgress;
}

/** A measured table plus how it was measured. */
export interface MeasuredLatencyTable extends LatencyTable {
  /** Adapter summary. */
  adapter: string;
  /** Batch size. */
  batch: number;
  /** Sequence length. */
  seqLen: number;
  /** Which FFN widths were timed (others interpolated). */
  ffnTimed: number[];
  /** Additivity check: predicted vs measured whole layers. */
  additivity: { heads: number; neurons: number; predicted: number; measured: number }[];
  /** Cache file used, if any. */
  cacheFile?: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Marginal seconds of one `run` inside a submit: the median over `runs` of t(2) − t(1), where
 * t(n) is the wall time of n recorded runs and one sync. This
 * removes the per-submit overhead (submit, fence wait, readiness polling: ≈ 10–15 ms on llvmpipe),
 * which a whole forward pays once but a table of per-sub-layer timings would otherwise count once
 * per entry (at batch 1 × 128 that overhead alone was larger than a sub-layer).
 */
async function marginalTime(
  gpu: Gpu,
  run: () => void,
  runs: number,
  warmup: number,
): Promise<number> {
  const group = async (n: number) => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) run();
    await gpu.sync();
    return (performance.now() - t0) / 1000;
  };
  for (let i = 0; i < warmup; i++) await group(1);
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const one = await group(1);
    t.push(Math.max(0, (await group(2)) - one));
  }
  return median(t);
}

function cacheRoot(): string | null {
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  const home = Deno.env.get("HOME");
  if (xdg) return `${xdg}/fastprune`;
  return home ? `${home}/.cache/fastprune` : null;
}

/** Measures (or loads from cache) the per-layer latency table of a model's shape. */
export async function measureLatencyTable(
  model: Model,
  o: LatencyOptions = {},
): Promise<MeasuredLatencyTable> {
  const c = model.config;
  const B = o.batch ?? 32, S = Math.min(o.seqLen ?? 128, c.maxPositions);
  const runs = o.runs ?? 20, warmup = o.warmup ?? 2, step = o.step ?? 64;
  if (!(B >= 1 && S >= 1 && runs >= 1)) {
    throw new InvalidArgumentError("latency table needs batch, seqLen and runs ≥ 1");
  }
  const H = c.numHeads, F = c.intermediateSize, d = c.hiddenSize;
  const key = [
    model.gpu.adapter.summary,
    `B${B}`,
    `S${S}`,
    `d${d}`,
    `H${H}`,
    `F${F}`,
    c.arch,
    c.hiddenAct,
    `k${KERNEL_VERSION}`,
    `r${runs}`,
  ]
    .join("|");
  const dir = o.cacheDir === null ? null : (o.cacheDir ?? cacheRoot());
  const file = dir ? `${dir}/latency-${hash(key)}.json` : undefined;
  if (file) {
    try {
      const j = JSON.parse(await Deno.readTextFile(file));
      if (j.key === key) {
        return {
          ...j.table,
          mha: Float64Array.from(j.table.mha),
          ffn: Float64Array.from(j.table.ffn),
          cacheFile: file,
        };
      }
    } catch { /* not cached */ }
  }
  const gpu = model.gpu;
  // small widths as well: a narrow FFN product runs other tiles (MATMUL_TEXTURE_PRESET_NARROW)
  const ffnTimed = [
    ...new Set([
      0,
      1,
      16,
      32,
      F,
      ...Array.from({ length: Math.floor(F / step) }, (_, i) => (i + 1) * step),
    ]),
  ]
    .filter((n) => n <= F).sort((a, b) => a - b);
  const totalEntries = H + 1 + ffnTimed.length + 3;
  let done = 0;
  const ids = new Int32Array(B * S).fill(1);
  const input = { size: B, seqLen: S, inputIds: ids, attentionMask: new Int32Array(B * S).fill(1) };
  const oneLayer = (h: number, n: number) =>
    createRandomModel(
      makeConfig({
        arch: c.arch,
        head: c.head,
        numLabels: c.numLabels,
        vocabSize: 8,
        hiddenSize: d,
        numLayers: 1,
        numHeads: H,
        intermediateSize: F,
        maxPositions: Math.max(S, 8),
        typeVocabSize: c.arch === "bert" ? 2 : 0,
        hiddenAct: c.hiddenAct,
        layerHeads: [Array.from({ length: h }, (_, i) => i)],
        layerFfn: [n],
      }),
      1,
      gpu,
    );
  const x = gpu.upload(Float32Array.from({ length: B * S * d }, (_, i) => Math.sin(i)), [B * S, d]);
  const mha = new Float64Array(H + 1);
  for (let h = 0; h <= H; h++) {
    const m = await oneLayer(h, 0);
    const batch = uploadBatch(gpu, m.config, input);
    mha[h] = await marginalTime(
      gpu,
      () => {
        const st: Partial<LayerState> = {};
        attentionForward(m, 0, x, batch, undefined, st, { fused: true });
        release(st);
      },
      runs,
      warmup,
    );
    batch.release();
    m.release();
    o.onProgress?.(++done, totalEntries);
  }
  const ffnAt = new Map<number, number>();
  for (const n of ffnTimed) {
    const m = await oneLayer(0, n);
    const batch = uploadBatch(gpu, m.config, input);
    ffnAt.set(
      n,
      await marginalTime(
        gpu,
        () => {
          const st: Partial<LayerState> = {};
          ffnForward(m, 0, x, batch, undefined, st, { fused: true });
          release(st);
        },
        runs,
        warmup,
      ),
    );
    batch.release();
    m.release();
    o.onProgress?.(++done, totalEntries);
  }
  const ffn = new Float64Array(F + 1);
  for (let i = 0; i + 1 < ffnTimed.length; i++) {
    const a = ffnTimed[i], b = ffnTimed[i + 1];
    for (let n = a; n <= b; n++) {
      ffn[n] = ffnAt.get(a)! + ((ffnAt.get(b)! - ffnAt.get(a)!) * (n - a)) / Math.max(1, b - a);
    }
  }
  if (ffnTimed.length === 1) ffn[0] = ffnAt.get(0)!;
  // On the texture path over fewer than TEXTURE_NARROW_MIN_M rows a width past 32 costs a step:
  // its first product runs whole SIMD batches of 64 columns, so n costs the timing of ⌈n/64⌉·64
  // where that was timed (for its second product, linear in ⌈n/4⌉, an overestimate: a latency
  // budget is then met with room to spare, not missed). Linear interpolation between the timed
  // points under-predicted the compact models by up to 18% (session 8, KERNEL_VERSION 11). Over
  // more rows the narrow products run swapped tiles (rows along the SIMD lanes, columns in tiles
  // of 8 or 16: `matmulTexturePreset`), whose cost grows with n in small steps: interpolated.
  if (matmulPath(gpu) === "texture" && step % PADDED_WIDTH === 0 && B * S < TEXTURE_NARROW_MIN_M) {
    for (let n = 33; n <= F; n++) {
      const up = Math.ceil(n / PADDED_WIDTH) * PADDED_WIDTH;
      const texture = textureWorthwhile(B * S * d * n, d);
      if (up !== n && up <= F && ffnAt.has(up) && texture) ffn[n] = ffnAt.get(up)!;
    }
  }
  // additivity on three whole layers
  const additivity: MeasuredLatencyTable["additivity"] = [];
  for (const [h, n] of [[H, F], [Math.ceil(H / 2), Math.ceil(F / 2)], [1, Math.min(F, step)]]) {
    const m = await oneLayer(h, n);
    const batch = uploadBatch(gpu, m.config, input);
    const measured = await marginalTime(
      gpu,
      () => {
        const st: Partial<LayerState> = {};
        attentionForward(m, 0, x, batch, undefined, st, { fused: true });
        ffnForward(m, 0, st.u!, batch, undefined, st, { fused: true });
        release(st);
      },
      runs,
      warmup,
    );
    additivity.push({ heads: h, neurons: n, predicted: mha[h] + ffn[n], measured });
    batch.release();
    m.release();
    o.onProgress?.(++done, totalEntries);
  }
  x.release();
  const table: MeasuredLatencyTable = {
    mha,
    ffn,
    adapter: gpu.adapter.summary,
    batch: B,
    seqLen: S,
    ffnTimed,
    additivity,
  };
  if (file && dir) {
    try {
      await Deno.mkdir(dir, { recursive: true });
      const tmp = `${file}.tmp-${Deno.pid}`;
      await Deno.writeTextFile(
        tmp,
        JSON.stringify({ key, table: { ...table, mha: [...mha], ffn: [...ffn] } }),
      );
      await Deno.rename(tmp, file);
      table.cacheFile = file;
    } catch { /* cache is optional */ }
  }
  return table;
}

function release(st: Partial<LayerState>): void {
  for (const t of Object.values(st)) {
    if (t && typeof t === "object" && "release" in t && !t.released) {
      try {
        t.release();
      } catch { /* views */ }
    }
  }
}

function hash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/** Median wall time (seconds) of one whole-model forward pass at batch × seqLen. */
export async function measureModelLatency(
  model: Model,
  o: { batch?: number; seqLen?: number; runs?: number; warmup?: number } = {},
): Promise<number> {
  return (await measureModelLatencies([model], o))[0];
}

/**
 * Passes shorter than this (seconds) are timed marginally by `measureModelLatencies`: a sync has a
 * fixed cost that is not the model's (Deno 2.9's read-back polls the device, then sleeps 10 ms
 * before it resolves: ≈ 12 ms per sync measured on an H100, ≈ 10–15 ms on llvmpipe).
 */
export const MARGINAL_BELOW_S = 0.1;

/**
 * Median wall times (seconds) of one whole-model forward pass of each model at batch × seqLen,
 * timed in alternation (run i of every model before run i + 1 of any): a drift of the machine's
 * speed during the measurement then affects every model alike, so ratios of the medians (a
 * speed-up) are steadier than those of separate measurements. A pass that takes at least
 * `MARGINAL_BELOW_S` is timed as one pass + sync; a shorter one marginally, (t(2n) − t(n)) / n
 * with n passes queued before one sync (n sized so that t(n) ≈ `MARGINAL_BELOW_S`), so that the
 * sync's fixed cost is not counted — the time the model occupies the device, as the latency
 * tables measure it. The models share one device; sequence lengths are capped per model at its
 * maxPositions.
 */
export async function measureModelLatencies(
  models: Model[],
  o: { batch?: number; seqLen?: number; runs?: number; warmup?: number } = {},
): Promise<number[]> {
  const runs = o.runs ?? 10, warmup = o.warmup ?? 2;
  if (!(Number.isInteger(runs) && runs >= 1 && Number.isInteger(warmup) && warmup >= 0)) {
    throw new InvalidArgumentError(`latency: runs must be ≥ 1 and warmup ≥ 0 (integers)`);
  }
  const jobs = models.map((model) => {
    const c = model.config;
    const B = o.batch ?? 32, S = Math.min(o.seqLen ?? 128, c.maxPositions);
    const batch = uploadBatch(model.gpu, c, {
      size: B,
      seqLen: S,
      inputIds: new Int32Array(B * S).fill(1),
      attentionMask: new Int32Array(B * S).fill(1),
    });
    return { model, batch, n: 1, marginal: false, t: [] as number[] };
  });
  const group = async (j: (typeof jobs)[number], n: number) => {
    const t0 = performance.now();
    for (let k = 0; k < n; k++) forward(j.model, j.batch, undefined, {}).release();
    await j.model.gpu.sync();
    return (performance.now() - t0) / 1000;
  };
  try {
    // warm-up passes; the last (at least one) decides how each model is timed
    for (let i = 0, probes = Math.max(1, warmup); i < probes; i++) {
      for (const j of jobs) {
        const t = await group(j, 1);
        if (i === probes - 1 && t < MARGINAL_BELOW_S) {
          j.marginal = true;
          j.n = Math.min(256, Math.ceil(MARGINAL_BELOW_S / Math.max(t, 1e-5)));
        }
      }
    }
    for (let i = 0; i < runs; i++) {
      for (const j of jobs) {
        if (!j.marginal) j.t.push(await group(j, 1));
        else {
          const one = await group(j, j.n);
          j.t.push(Math.max(0, (await group(j, 2 * j.n)) - one) / j.n);
        }
      }
    }
  } finally {
    for (const j of jobs) j.batch.release();
  }
  return jobs.map((j) => median(j.t));
}
