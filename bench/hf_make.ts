/**
 * `deno run -A bench/hf_make.ts DIR`: writes small checkpoints for the Hugging Face parity check
 * (`bench/hf_parity.py`, run where `transformers` is installed): a random BERT classifier, a
 * random BERT regressor and a random DistilBERT QA model, each with every bias and LayerNorm
 * parameter perturbed (HF-style init leaves them 0 and 1, which would hide a swapped or dropped
 * tensor), and a compacted copy of the classifier and of the QA model: uneven kept heads, mask
 * values ≠ 1 folded into W_o and W₂, and one layer whose FFN is removed entirely; and each compacted
 * copy again in the `hfCompatible` layout (`-hf`: all heads, one FFN width, zeros), which
 * `bench/hf_parity.py compare` should load natively. Prints the directories it wrote.
 * @module
 */
import { makeConfig, type TaskHead } from "../lib/model/config.ts";
import { type Model, saveCheckpoint, uploadModel } from "../lib/model/model.ts";
import { randomWeights, Rng } from "../lib/model/random.ts";
import { compactModel } from "../lib/prune/compact.ts";
import type { MaskSet } from "../lib/prune/types.ts";
import { getGpu } from "../lib/gpu/context.ts";

const dir = Deno.args[0];
if (!dir) throw new Error("usage: deno run -A bench/hf_make.ts DIR");
const gpu = await getGpu();
const vocabText = await Deno.readTextFile(
  new URL("../../shared/data/vocab/bert-base-uncased.txt", import.meta.url),
);

function randomModel(arch: "bert" | "distilbert", head: TaskHead, seed: number): Promise<Model> {
  const config = makeConfig({
    arch,
    head,
    numLayers: 3,
    hiddenSize: 64,
    numHeads: 4,
    intermediateSize: 96,
    maxPositions: 64,
  });
  const weights = randomWeights(config, seed);
  const rng = new Rng(seed + 1000);
  for (const [name, t] of weights) {
    const constant = t.data.every((v) => v === t.data[0]);
    if (constant && !name.includes("emb")) {
      for (let i = 0; i < t.data.length; i++) t.data[i] += 0.1 * rng.normal();
    }
  }
  return uploadModel({ config, weights, vocabText }, gpu);
}

function masks(model: Model, seed: number): { keep: MaskSet; values: MaskSet } {
  const c = model.config;
  const L = c.numLayers, H = c.numHeads, F = c.intermediateSize;
  const rng = new Rng(seed);
  const keep: MaskSet = { head: new Float64Array(L * H), ffn: new Float64Array(L * F), L, H, F };
  const values: MaskSet = { head: new Float64Array(L * H), ffn: new Float64Array(L * F), L, H, F };
  const headsKept = [[0, 2], [1, 2, 3], [3]];
  for (let l = 0; l < L; l++) {
    for (const h of headsKept[l]) {
      keep.head[l * H + h] = 1;
      values.head[l * H + h] = 0.5 + rng.uniform();
    }
    if (l === 1) continue; // layer 1 loses its whole FFN
    for (let j = 0; j < F; j++) {
      if (rng.uniform() < 0.4) {
        keep.ffn[l * F + j] = 1;
        values.ffn[l * F + j] = 0.5 + rng.uniform();
      }
    }
  }
  return { keep, values };
}

const written: string[] = [];
async function save(model: Model, name: string) {
  await saveCheckpoint(model, `${dir}/${name}`, { force: true });
  written.push(`${dir}/${name}`);
  if (!name.endsWith("-compact")) return;
  await saveCheckpoint(model, `${dir}/${name}-hf`, { force: true, hfCompatible: true });
  written.push(`${dir}/${name}-hf`);
}
const cls = await randomModel("bert", "classification", 1);
await save(cls, "bert-cls");
await save(await compactModel(cls, masks(cls, 7)), "bert-cls-compact");
await save(await randomModel("bert", "regression", 2), "bert-reg");
const qa = await randomModel("distilbert", "qa", 3);
await save(qa, "distilbert-qa");
await save(await compactModel(qa, masks(qa, 8)), "distilbert-qa-compact");
console.log(written.join("\n"));
