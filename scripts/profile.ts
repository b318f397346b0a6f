/**
 * `deno task profile [train|mlm|infer|fisher|tune] [--batch B] [--seq S] [--top 25] [--json FILE]
 * [--model DIR|URL]`: where the GPU time of one pass goes, per kernel. Runs the pass once to warm up, runs it again while the GPU
 * context records every dispatch (`Gpu.startRecording`), then replays each dispatch on its own and
 * times it with the bench's `timeGpu`: marginally, (t(2n) − t(n)) / n with n replays queued before
 * one sync (n sized so t(n) ≈ 30 ms; groups of 4 that already last 30 ms are timed whole), which
 * leaves out a sync's fixed cost (≥ 10 ms in Deno 2.9) and the JavaScript that
 * recorded the pass. Buffer and texture copies are not dispatches: the gap between the pass's
 * wall time and the dispatches' sum is those, the recording and the sync.
 *
 * Scenarios: `train` — a training step of the bench's L4/H256/F1024 BERT (default batch 16 × 64);
 * `mlm` — an MLM pretraining step of the zoo's DistilBERT L3/H128/F512 with the 30522-piece
 * vocabulary (32 × 64); `infer` — an inference forward of the zoo's BERT L4/H128/F512 (32 × 128),
 * or of the checkpoint `--model` names (e.g. a pruned one: uneven layers, padded FFN widths);
 * `fisher` — one batch of the Fisher pass on the zoo's BERT shape (32 × 128): forward with saved
 * activations, mask-gradient-only backward; `tune` — mask tuning of one batch on that shape
 * (every head and one neuron in eight kept).
 * @module
 */
import { parseArgs } from "node:util";
import { InvalidArgumentError } from "../lib/errors.ts";
import { getGpu, type Gpu, type RecordedDispatch } from "../lib/gpu/context.ts";
import { makeConfig } from "../lib/model/config.ts";
import type { Grads } from "../lib/model/encoder.ts";
import { uploadBatch, uploadMasks } from "../lib/model/inputs.ts";
import { createRandomModel, loadCheckpoint, type Model } from "../lib/model/model.ts";
import { backward, forward } from "../lib/model/run.ts";
import { sumAll } from "../lib/ops/reduce.ts";
import { createMlmHead, maskBatch, mlmForwardBackward } from "../lib/train/mlm.ts";
import { AdamW } from "../lib/train/optimizer.ts";
import { finishStep, zeroGrads } from "../lib/train/step.ts";
import { tuneMasks } from "../lib/prune/tune.ts";
import { Pcg32 } from "../lib/util/pcg32.ts";
import { median, timeGpu } from "./bench/common.ts";
import { runCli } from "./cli.ts";

/** A 4-layer, 4-head BERT classifier of hidden size d and FFN width F (the bench's and the zoo's). */
function bertConfig(V: number, d: number, F: number) {
  return makeConfig({
    arch: "bert",
    head: "classification",
    vocabSize: V,
    hiddenSize: d,
    numHeads: 4,
    numLayers: 4,
    intermediateSize: F,
  });
}

/** A profiled scenario: builds its model and returns one pass (labels phases via the gpu). */
interface Scenario {
  describe: string;
  run: () => Promise<void>;
  release: () => void;
}

/** A batch of b full rows of s tokens (ids spread over the vocabulary), without labels. */
function fullBatch(b: number, s: number, V: number) {
  const lo = Math.min(1000, V >> 1); // past the special tokens of a full BERT vocabulary
  return {
    size: b,
    seqLen: s,
    inputIds: Int32Array.from({ length: b * s }, (_, i) => lo + ((i * 7919) % (V - lo))),
    tokenTypeIds: new Int32Array(b * s),
    attentionMask: new Int32Array(b * s).fill(1),
    indices: [] as number[],
  };
}

async function scenario(
  gpu: Gpu,
  name: string,
  B?: number,
  S?: number,
  modelPath?: string,
): Promise<Scenario> {
  const V = 30522;
  if (modelPath !== undefined && name !== "infer") {
    throw new InvalidArgumentError("profile: --model applies to the infer scenario only");
  }
  if (name === "infer" && modelPath !== undefined) {
    const [b, s] = [B ?? 32, S ?? 128];
    const model = await loadCheckpoint(modelPath, gpu);
    const c = model.config;
    const batch = fullBatch(b, s, c.vocabSize);
    return {
      describe: `inference forward, ${modelPath} (${c.arch} L${c.numLayers}/H${c.hiddenSize}), ` +
        `batch ${b} × ${s}`,
      run: async () => {
        const bt = uploadBatch(gpu, c, batch);
        gpu.recordingLabel = "forward";
        forward(model, bt, undefined, {}).release();
        bt.release();
        await gpu.sync();
      },
      release: () => model.release(),
    };
  }
  if (name === "fisher") {
    // one batch of the Fisher pass (lib/prune/fisher.ts): forward with saved activations and the
    // loss, then the mask-gradient-only backward, on the zoo's BERT shape
    const [b, s] = [B ?? 32, S ?? 128];
    const config = bertConfig(V, 128, 512);
    const model = await createRandomModel(config, 0, gpu);
    const batch = {
      ...fullBatch(b, s, V),
      labels: Int32Array.from({ length: b }, (_, i) => i % 2),
    };
    return {
      describe: `Fisher pass, one batch, BERT L4/H128/F512, batch ${b} × ${s}`,
      run: async () => {
        const bt = uploadBatch(gpu, config, batch);
        const masks = uploadMasks(gpu, config, b);
        gpu.recordingLabel = "forward";
        // the passes of lib/prune/fisher.ts recording teacher targets (prune's default): the
        // last layer's FFN at the [CLS] rows only
        const pass = { clsOnlyLastLayer: "ffn" as const };
        const fwd = forward(model, bt, masks, { ...pass, save: true, withLoss: true });
        gpu.recordingLabel = "backward";
        backward(model, fwd, bt, masks, { ...pass, lossScale: 1 }).release();
        for (const t of [fwd, masks, bt]) t.release();
        await gpu.sync();
      },
      release: () => model.release(),
    };
  }
  if (name === "tune") {
    // mask tuning (lib/prune/tune.ts) of one batch on the zoo's BERT shape, for the mask the
    // 50%-FLOPs search keeps there: every head, one neuron in eight
    const [b, s] = [B ?? 32, S ?? 128];
    const config = bertConfig(V, 128, 512);
    const model = await createRandomModel(config, 0, gpu);
    const L = config.numLayers, H = config.numHeads, F = config.intermediateSize;
    const keep = {
      head: new Float64Array(L * H).fill(1),
      ffn: Float64Array.from({ length: L * F }, (_, i) => (i % 8 === 0 ? 1 : 0)),
      L,
      H,
      F,
    };
    const batch = fullBatch(b, s, V);
    return {
      describe: `mask tuning, one batch, BERT L4/H128/F512 (all heads, 1/8 of the neurons kept), ` +
        `batch ${b} × ${s}`,
      run: async () => {
        gpu.recordingLabel = "tune";
        await tuneMasks(model, [batch], keep);
      },
      release: () => model.release(),
    };
  }
  if (name === "train" || name === "infer") {
    const train = name === "train";
    const [b, s] = [B ?? (train ? 16 : 32), S ?? (train ? 64 : 128)];
    const config = train ? bertConfig(V, 256, 1024) : bertConfig(V, 128, 512);
    const model: Model = await createRandomModel(config, 0, gpu);
    const batch = {
      ...fullBatch(b, s, V),
      labels: Int32Array.from({ length: b }, (_, i) => i % 2),
    };
    const opt = new AdamW(model.params);
    const grads: Grads = new Map();
    const shape = `L4/H${config.hiddenSize}/F${config.intermediateSize}, batch ${b} × ${s}`;
    return {
      describe: train ? `training step, BERT ${shape}` : `inference forward, BERT ${shape}`,
      run: async () => {
        const bt = uploadBatch(gpu, config, batch);
        if (!train) {
          gpu.recordingLabel = "forward";
          forward(model, bt, undefined, {}).release();
          bt.release();
          await gpu.sync();
          return;
        }
        gpu.recordingLabel = "zero";
        zeroGrads(grads);
        gpu.recordingLabel = "forward";
        // the passes of lib/train/step.ts `trainStep` (the last layer at [CLS] rows only)
        const pass = { train: true, seed: 1, clsOnlyLastLayer: true };
        const fwd = forward(model, bt, undefined, { ...pass, save: true, withLoss: true });
        const lossSum = sumAll(fwd.loss!);
        gpu.recordingLabel = "backward";
        backward(model, fwd, bt, undefined, { ...pass, lossScale: 1 / b, grads }).release();
        fwd.release();
        gpu.recordingLabel = "optimizer";
        await finishStep(grads, lossSum, 1 / b, opt, { lr: 1e-4, seed: 1, maxGradNorm: 1 });
        lossSum.release();
        bt.release();
      },
      release: () => {
        opt.release();
        for (const g of grads.values()) g.release();
        model.release();
      },
    };
  }
  if (name === "mlm") {
    const [b, s] = [B ?? 32, S ?? 64];
    const config = makeConfig({
      arch: "distilbert",
      head: "classification",
      vocabSize: V,
      hiddenSize: 128,
      numHeads: 4,
      numLayers: 3,
      intermediateSize: 512,
      typeVocabSize: 0,
    });
    const model = await createRandomModel(config, 0, gpu);
    const head = createMlmHead(model, 0);
    const opt = new AdamW(new Map([...model.params, ...head]));
    const grads: Grads = new Map();
    const rng = new Pcg32(7);
    const batch = fullBatch(b, s, V);
    return {
      describe: `MLM step, DistilBERT L3/H128/F512, vocabulary ${V}, batch ${b} × ${s}`,
      run: async () => {
        const mb = maskBatch(batch, {
          maskId: 103,
          vocabSize: V,
          special: new Set([0, 101, 102]),
          rng,
        });
        gpu.recordingLabel = "zero";
        zeroGrads(grads);
        gpu.recordingLabel = "forward + backward";
        const r = mlmForwardBackward(model, head, mb, grads, { train: true, seed: 1 });
        gpu.recordingLabel = "optimizer";
        await finishStep(grads, r.lossSum, 1 / r.count, opt, { lr: 1e-4, seed: 1, maxGradNorm: 1 });
        r.lossSum.release();
      },
      release: () => {
        opt.release();
        for (const g of grads.values()) g.release();
        for (const t of head.values()) t.release();
        model.release();
      },
    };
  }
  throw new InvalidArgumentError(
    `profile: unknown scenario ${name} (train, mlm, infer, fisher, tune)`,
  );
}

const PROFILE_USAGE =
  "usage: deno task profile [train|mlm|infer|fisher|tune] [--batch B] [--seq S] [--top 25] " +
  "[--json FILE] [--model DIR|URL]";

if (import.meta.main) {
  await runCli(async () => {
    const { values, positionals } = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        batch: { type: "string" },
        seq: { type: "string" },
        top: { type: "string", default: "25" },
        json: { type: "string" },
        model: { type: "string" },
      },
    });
    const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
    const B = num(values.batch), S = num(values.seq), top = Number(values.top);
    for (const v of [B, S, top]) {
      if (v !== undefined && !(Number.isInteger(v) && v >= 1)) {
        throw new InvalidArgumentError("profile: --batch, --seq and --top take positive integers");
      }
    }
    const gpu = await getGpu();
    const sc = await scenario(gpu, positionals[0] ?? "train", B, S, values.model);
    console.log(`adapter: ${gpu.adapter.summary}\n${sc.describe}`);
    await sc.run(); // warm-up: pipelines, pooled buffers, bind groups
    const t0 = performance.now();
    gpu.startRecording();
    await sc.run();
    const wall = performance.now() - t0;
    const recs = gpu.stopRecording();
    console.log(
      `one pass: ${wall.toFixed(1)} ms wall (one or more syncs), ${recs.length} dispatches`,
    );
    const times: number[] = [];
    for (const [i, d] of recs.entries()) {
      // the bench's marginal timer: groups under 30 ms timed as (t(2n) − t(n)) / n, median of 3
      times.push(median(await timeGpu(gpu, () => gpu.replay(d), 3, 4, 30)));
      if (i % 50 === 49) console.error(`timed ${i + 1}/${recs.length}`);
    }
    const total = times.reduce((a, b) => a + b, 0);
    const group = (key: (d: RecordedDispatch) => string) => {
      const m = new Map<string, { ms: number; n: number }>();
      recs.forEach((d, i) => {
        const e = m.get(key(d)) ?? { ms: 0, n: 0 };
        e.ms += times[i];
        e.n++;
        m.set(key(d), e);
      });
      return [...m.entries()].sort((a, b) => b[1].ms - a[1].ms);
    };
    const pct = (ms: number) => `${(100 * ms / total).toFixed(1)}%`;
    console.log(`\nsum of the dispatches' marginal times: ${total.toFixed(1)} ms\n\nby phase:`);
    for (const [k, e] of group((d) => d.label)) {
      console.log(
        `  ${k.padEnd(20)} ${e.ms.toFixed(1).padStart(9)} ms ${
          pct(e.ms).padStart(6)
        }  ${e.n} dispatches`,
      );
    }
    console.log(`\nby kernel (top ${top}):`);
    for (const [k, e] of group((d) => `${d.name}:${d.entry}`).slice(0, top)) {
      console.log(
        `  ${k.padEnd(44)} ${e.ms.toFixed(1).padStart(9)} ms ${pct(e.ms).padStart(6)}  ${e.n} × ${
          (e.ms / e.n).toFixed(3)
        } ms`,
      );
    }
    if (values.json) {
      const rows = recs.map((d, i) => ({
        kernel: `${d.name}:${d.entry}`,
        label: d.label,
        workgroups: d.workgroups,
        ms: times[i],
      }));
      await Deno.writeTextFile(
        values.json,
        JSON.stringify(
          { adapter: gpu.adapter.summary, scenario: sc.describe, wall, rows },
          null,
          1,
        ) + "\n",
      );
    }
    sc.release();
  }, PROFILE_USAGE);
}
