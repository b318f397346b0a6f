/**
 * LayerNorm and attention-softmax bandwidth section of `deno task bench`: GB/s of the forward
 * and backward kernels at BERT-base shapes (LayerNorm over [512, 768]; softmax over one
 * example's 12 heads of 512×512 scores). GB/s counts the minimal logical traffic: every large
 * tensor read or written once (LayerNorm/softmax forward: 2·R·C floats; backward: 3·R·C, i.e.
 * dy/dP and x/P read, dx written); per-row statistics and parameters are ignored.
 * @module
 */
import { layerNorm, layerNormBackward } from "../../lib/ops/layernorm.ts";
import { softmaxBackward, softmaxMasked } from "../../lib/ops/softmax.ts";
import { type BenchSection, median, printTable, randomF32, timeGpu } from "./common.ts";

/** The LayerNorm/softmax bandwidth section. */
export const normsSection: BenchSection = {
  name: "norms",
  async run(ctx) {
    const { gpu, quick } = ctx;
    const repeats = quick ? 3 : 7;
    const perRepeat = quick ? 2 : 5;
    const [R, C] = [512, 768];
    const x = gpu.upload(randomF32(R * C, 11), [R, C]);
    const dy = gpu.upload(randomF32(R * C, 12), [R, C]);
    const gamma = gpu.upload(randomF32(C, 13), [C]);
    const beta = gpu.upload(randomF32(C, 14), [C]);
    const saved = layerNorm(x, gamma, beta, 1e-12);
    const [H, S] = [12, 512];
    const scores = gpu.upload(randomF32(H * S * S, 15), [H, S, S]);
    const dP = gpu.upload(randomF32(H * S * S, 16), [H, S, S]);
    const keyMask = gpu.upload(Float32Array.from({ length: S }, (_, i) => (i < 400 ? 1 : 0)), [
      1,
      S,
    ]);
    const P = softmaxMasked(scores, keyMask, H, 0.125);

    const cases: { name: string; bytes: number; record: () => void }[] = [
      {
        name: `layerNorm forward [${R}, ${C}]`,
        bytes: 2 * R * C * 4,
        record: () => {
          const r = layerNorm(x, gamma, beta, 1e-12);
          r.y.release(), r.mean.release(), r.rstd.release();
        },
      },
      {
        name: `layerNorm backward [${R}, ${C}]`,
        bytes: 3 * R * C * 4,
        record: () => {
          const r = layerNormBackward(dy, x, saved.mean, saved.rstd, gamma);
          r.dx.release(), r.dgamma.release(), r.dbeta.release();
        },
      },
      {
        name: `softmax forward [${H}, ${S}, ${S}]`,
        bytes: 2 * H * S * S * 4,
        record: () => softmaxMasked(scores, keyMask, H, 0.125).release(),
      },
      {
        name: `softmax backward [${H}, ${S}, ${S}]`,
        bytes: 3 * H * S * S * 4,
        record: () => softmaxBackward(dP, P, 0.125).release(),
      },
    ];
    const rows = [["op", "ms", "GB/s"]];
    const results = [];
    for (const c of cases) {
      const ms = median(await timeGpu(gpu, c.record, repeats, perRepeat));
      const gbs = c.bytes / ms / 1e6;
      results.push({ name: c.name, bytes: c.bytes, ms, gbs });
      rows.push([c.name, ms.toFixed(2), gbs.toFixed(2)]);
    }
    console.log(`\nLayerNorm / softmax (median of ${repeats}, minimal logical traffic):`);
    printTable(rows);
    for (const t of [x, dy, gamma, beta, saved.y, saved.mean, saved.rstd, scores, dP, keyMask, P]) {
      t.release();
    }
    return { repeats, cases: results };
  },
};
