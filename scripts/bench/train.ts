/**
 * `deno task bench` section "train": training throughput (tokens/s of forward + backward +
 * clipping + AdamW, dropout on) of a random BERT classifier on our kernels, against PyTorch CPU
 * training the same shape (`bench/torch_train_step.py time`) in the same run, alternating (three
 * rounds; one with `--quick`). `--quick` uses batch 16 × 64; the full run uses the training
 * issue's L4/H256 shape at batch 64 × 64.
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
    // ours and PyTorch alternate, `rounds` times, so that both see the machine in the same state
    // (on a shared VM PyTorch's step moved by ±20% between runs minutes apart); each round times
    // `steps` steps of each after one warm-up step, and the section reports the medians
    const rounds = ctx.quick ? 1 : 3;
    const oursRounds: number[] = [], torchRounds: number[] = [];
    let note: string | undefined;
    let step = 0;
    for (let r = 0; r < rounds; r++) {
      const times: number[] = [];
      for (let i = 0; i <= steps; i++) {
        const t = performance.now();
        await trainStep(model, batch, grads, opt, { lr: 1e-4, seed: step++, maxGradNorm: 1 });
        if (i > 0) times.push(performance.now() - t);
      }
      oursRounds.push(median(times));
      if (note) continue;
      const t = await torchStep(L, d, H, F, B, S, V, steps);
      if (typeof t === "number") torchRounds.push(t);
      else note = t.note;
    }
    opt.release();
    for (const g of grads.values()) g.release();
    model.release();
    const ours = median(oursRounds);
    const torch = torchRounds.length ? median(torchRounds) : undefined;
    const roundRatios = torchRounds.map((t, i) => oursRounds[i] / t);
    const tok = (ms: number) => ((B * S) / (ms / 1000)).toFixed(0);
    console.log(`\n## Training step L${L}/H${d}/F${F}, batch ${B} × ${S} (median ms; tokens/s)\n`);
    printTable([
      ["", "step ms", "tokens/s"],
      ["fastprune", ours.toFixed(0), tok(ours)],
      ["PyTorch CPU", torch ? torch.toFixed(0) : "—", torch ? tok(torch) : "—"],
      ["ratio ours/torch", torch ? (ours / torch).toFixed(2) : "—", ""],
    ]);
    if (roundRatios.length > 1) {
      console.log(
        `\nper round (ours / PyTorch ms, ratio): ${
          oursRounds.map((o, i) =>
            `${o.toFixed(0)} / ${torchRounds[i].toFixed(0)}, ${roundRatios[i].toFixed(2)}`
          ).join(" · ")
        }`,
      );
    }
    if (note) console.error(`train bench: ${note}`);
    return {
      shape: { L, d, H, F, V, B, S },
      oursStepMs: ours,
      torchStepMs: torch,
      rounds: oursRounds.map((o, i) => ({ oursStepMs: o, torchStepMs: torchRounds[i] })),
      note,
    };
  },
};

/**
 * Median step time in ms of PyTorch CPU training the same shape (`bench/torch_train_step.py
 * time`, one process: model built, one warm-up step, `steps` timed), or why it could not run.
 */
async function torchStep(
  L: number,
  d: number,
  H: number,
  F: number,
  B: number,
  S: number,
  V: number,
  steps: number,
): Promise<number | { note: string }> {
  try {
    const args = { layers: L, hidden: d, heads: H, ffn: F, batch: B, seq: S, vocab: V, steps };
    const r = await new Deno.Command(pythonPath(), {
      args: [
        new URL("../../bench/torch_train_step.py", import.meta.url).pathname,
        "time",
        ...Object.entries(args).flatMap(([k, v]) => [`--${k}`, String(v)]),
        "--threads",
        String(navigator.hardwareConcurrency),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(r.stdout);
    const m = text.match(/([0-9.]+)\s*ms/);
    if (r.code === 0 && m) return Number(m[1]);
    const err = new TextDecoder().decode(r.stderr).trim().split("\n").pop();
    return { note: `PyTorch step timing failed: ${err}` };
  } catch (e) {
    return { note: `PyTorch unavailable: ${(e as Error).message}` };
  }
}
