/**
 * Times one fine-tuning step (forward + backward + clipping + AdamW, dropout on) of a random BERT
 * classifier on the GPU adapter, for comparison with bench/torch_train_step.py:
 *
 *   XDG_RUNTIME_DIR=/tmp deno run -A bench/train_step.ts [layers hidden heads ffn batch seq vocab steps]
 *
 * Defaults: L4/H256/A4/F1024, batch 64 × 64, vocab 30522, 2 timed steps after one warm-up step.
 * @module
 */
import { getGpu } from "../lib/gpu/context.ts";
import { makeConfig } from "../lib/model/config.ts";
import type { Grads } from "../lib/model/encoder.ts";
import { createRandomModel } from "../lib/model/model.ts";
import { AdamW } from "../lib/train/optimizer.ts";
import { trainStep } from "../lib/train/step.ts";

const [L, d, H, F, B, S, V, steps] = [4, 256, 4, 1024, 64, 64, 30522, 2].map((v, i) =>
  Deno.args[i] ? Number(Deno.args[i]) : v
);
const gpu = await getGpu();
const config = makeConfig({
  arch: "bert",
  head: "classification",
  vocabSize: V,
  hiddenSize: d,
  numLayers: L,
  numHeads: H,
  intermediateSize: F,
});
const model = await createRandomModel(config, 0, gpu);
const inputIds = Int32Array.from({ length: B * S }, (_, i) => 1 + ((i * 7919) % (V - 1)));
const batch = {
  size: B,
  seqLen: S,
  inputIds,
  tokenTypeIds: new Int32Array(B * S),
  attentionMask: new Int32Array(B * S).fill(1),
  labels: Int32Array.from({ length: B }, (_, i) => i % 2),
  indices: [],
};
const opt = new AdamW(model.params);
const grads: Grads = new Map();
const times: number[] = [];
for (let i = 0; i <= steps; i++) {
  const t = performance.now();
  await trainStep(model, batch, grads, opt, { lr: 1e-4, seed: i, maxGradNorm: 1 });
  if (i > 0) times.push(performance.now() - t);
}
times.sort((a, b) => a - b);
const med = times[Math.floor(times.length / 2)];
console.log(
  `fastprune ${gpu.adapter.summary} L${L}/H${d}/A${H}/F${F} V${V} batch ${B}x${S}: median step ` +
    `${med.toFixed(0)} ms over ${steps} steps (${((B * S) / (med / 1000)).toFixed(0)} tokens/s)`,
);
