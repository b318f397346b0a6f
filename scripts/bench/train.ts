/**
 * `deno task bench` section "train": training throughput (tokens/s of forward + backward +
 * clipping + AdamW, dropout on) of a random BERT classifier on our kernels, against PyTorch CPU
 * training the same shape (`bench/torch_train_step.py time`) in the same run. `--quick` uses
 * batch 16 × 64; the full run uses the training issue's L4/H256 shape at batch 64 × 64.
 * @module
 */
import { makeConfig } from "../../lib/model/config.ts";
import type { Grads } from "../../lib/model/encoder.ts";
import { createRandomModel } from "../../lib/model/model.ts";
import { AdamW } from "../../lib/train/optimizer.ts";
import { trainStep } from "../../lib/train/step.ts";
import { type BenchSection, median, printTable, pythonPath } from "./common.ts";

/** The train section. */
export const trainSection: BenchSection = {
  name: "train",
  async run(ctx) {
    const [L, d, H, F, V] = [4, 256, 4, 1024, 30522];
    const [B, S] = ctx.quick ? [16, 64] : [64, 64];
    const steps = ctx.quick ? 2 : 3;
    const config = makeConfig({
      arch: "bert",
      head: "classification",
      vocabSize: V,
      hiddenSize: d,
      numLayers: L,
      numHeads: H,
      intermediateSize: F,
    });
    const model = await createRandomModel(config, 0, ctx.gpu);
    const batch = {
      size: B,
      seqLen: S,
      inputIds: Int32Array.from({ length: B * S }, (_, i) => 1 + ((i * 7919) % (V - 1))),
      tokenTypeIds: new Int32Array(B * S),
      attentionMask: new Int32Array(B * S).fill(1),
      labels: Int32Array.from({ length: B }, (_, i) => i % 2),
      indices: [] as number[],
    };
    const opt = new AdamW(model.params);
    const grads: Grads = new Map();
    const times: number[] = [];
    for (let i = 0; i <= steps; i++) {
      const t = performance.now();
      await trainStep(model, batch, grads, opt, { lr: 1e-4, seed: i, maxGradNorm: 1 });
      if (i > 0) times.push(performance.now() - t);
    }
    opt.release();
    for (const g of grads.values()) g.release();
    model.release();
    const ours = median(times);
    let torch: number | undefined;
    let note: string | undefined;
    try {
      const r = await new Deno.Command(pythonPath(), {
        args: [
          new URL("../../bench/torch_train_step.py", import.meta.url).pathname,
          "time",
          ...[
            "--layers",
            L,
            "--hidden",
            d,
            "--heads",
            H,
            "--ffn",
            F,
            "--batch",
            B,
            "--seq",
            S,
            "--vocab",
            V,
            "--steps",
            steps,
            "--threads",
            navigator.hardwareConcurrency,
          ]
            .map(String),
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(r.stdout);
      const m = text.match(/([0-9.]+)\s*ms/);
      if (r.code === 0 && m) torch = Number(m[1]);
      else {note = `PyTorch step timing failed: ${
          new TextDecoder().decode(r.stderr).trim().split("\n").pop()
        }`;}
    } catch (e) {
      note = `PyTorch unavailable: ${(e as Error).message}`;
    }
    const tok = (ms: number) => ((B * S) / (ms / 1000)).toFixed(0);
    console.log(`\n## Training step L${L}/H${d}/F${F}, batch ${B} × ${S} (median ms; tokens/s)\n`);
    printTable([
      ["", "step ms", "tokens/s"],
      ["fastprune", ours.toFixed(0), tok(ours)],
      ["PyTorch CPU", torch ? torch.toFixed(0) : "—", torch ? tok(torch) : "—"],
      ["ratio ours/torch", torch ? (ours / torch).toFixed(2) : "—", ""],
    ]);
    if (note) console.error(`train bench: ${note}`);
    return { shape: { L, d, H, F, V, B, S }, oursStepMs: ours, torchStepMs: torch, note };
  },
};
