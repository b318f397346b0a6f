/**
 * `deno task bench` section "pruned": forward latency at batch 32 × 128 of the zoo's BERT shape
 * (L4/H128/A4/F512, random weights) and of a compact model with the same kept units as the
 * experiments' 50%-FLOPs latency cell (all 16 heads; 157, 21, 39, 39 neurons), each with the fused
 * inference kernels of CPU adapters (the default) and without them (`fused: false`), alternating
 * in the same run. The speed-up full/compact is what the latency experiment compares with the
 * FLOPs reduction. `--quick` times 3 passes per variant instead of 7.
 * @module
 */
import { makeConfig } from "../../lib/model/config.ts";
import { uploadBatch } from "../../lib/model/inputs.ts";
import { createRandomModel, type Model } from "../../lib/model/model.ts";
import { forward } from "../../lib/model/run.ts";
import { compactModel } from "../../lib/prune/compact.ts";
import { countFlops } from "../../lib/prune/flops.ts";
import { type BenchSection, median, printTable } from "./common.ts";

const KEPT_NEURONS = [157, 21, 39, 39];

/** The pruned section. */
export const prunedSection: BenchSection = {
  name: "pruned",
  async run(ctx) {
    const B = 32, S = 128, L = 4, H = 4, F = 512;
    const config = makeConfig({
      arch: "bert",
      head: "classification",
      vocabSize: 1000,
      hiddenSize: 128,
      numLayers: L,
      numHeads: H,
      intermediateSize: F,
      maxPositions: 512,
    });
    const full = await createRandomModel(config, 1, ctx.gpu);
    const keep = {
      L,
      H,
      F,
      head: new Float64Array(L * H).fill(1),
      ffn: new Float64Array(L * F),
    };
    KEPT_NEURONS.forEach((n, l) => keep.ffn.fill(1, l * F, l * F + n));
    const compact = await compactModel(full, { keep, values: keep });
    const macsRatio = countFlops(config, S, keep) / countFlops(config, S);
    const input = {
      size: B,
      seqLen: S,
      inputIds: Int32Array.from({ length: B * S }, (_, i) => 1 + (i * 7) % 999),
      attentionMask: new Int32Array(B * S).fill(1),
    };
    const runs = ctx.quick ? 3 : 7;
    const times: Record<string, number[]> = {};
    const models: [string, Model][] = [["full", full], ["compact", compact]];
    for (let i = -1; i < runs; i++) {
      for (const [name, m] of models) {
        const batch = uploadBatch(ctx.gpu, m.config, input);
        for (const fused of [true, false]) {
          const t0 = performance.now();
          forward(m, batch, undefined, { fused }).release();
          await ctx.gpu.sync();
          if (i >= 0) (times[`${name} ${fused}`] ??= []).push(performance.now() - t0);
        }
        batch.release();
      }
    }
    full.release();
    compact.release();
    const ms = (k: string) => median(times[k]);
    const rows = [["kernels", "full ms", "compact ms", "speed-up", "MACs reduction", "ratio"]];
    const out: Record<string, unknown> = { macsRatio, keptNeurons: KEPT_NEURONS };
    for (const fused of [true, false]) {
      const f = ms(`full ${fused}`), c = ms(`compact ${fused}`);
      rows.push([
        fused ? "fused (default)" : "unfused",
        f.toFixed(1),
        c.toFixed(1),
        (f / c).toFixed(2),
        (1 / macsRatio).toFixed(2),
        (f / c * macsRatio).toFixed(2),
      ]);
      out[fused ? "fused" : "unfused"] = { fullMs: f, compactMs: c, speedup: f / c };
    }
    console.log(
      `\n## Pruned-model latency, batch ${B} × ${S}, BERT L4/H128/A4/F512 (median of ${runs})\n`,
    );
    printTable(rows);
    return out;
  },
};
