// GPU pruning stages against independent references: Fisher vs the float64 PyTorch per-example
// gradients, tuning recovering an exactly known scale (duplicated units), compaction equivalence
// on both architectures with uneven and fully pruned layers, and the whole pipeline's invariants.
import {
  assert,
  assertClose,
  assertEquals,
  assertRejects,
  loadFixture,
  maxAbs,
} from "./helpers.ts";
import { getGpu } from "../lib/gpu/context.ts";
import { makeConfig } from "../lib/model/config.ts";
import { type ModelInput, uploadBatch } from "../lib/model/inputs.ts";
import { downloadWeights, loadCheckpoint, type Model, uploadModel } from "../lib/model/model.ts";
import { hfCompatibleLayout } from "../lib/model/hf_layout.ts";
import { randomWeights } from "../lib/model/random.ts";
import { forward, runModel } from "../lib/model/run.ts";
import { collectFisher } from "../lib/prune/fisher.ts";
import { compactModel } from "../lib/prune/compact.ts";
import { GroupedReads, tuneMasks } from "../lib/prune/tune.ts";
import { TeacherTargets } from "../lib/prune/teacher.ts";
import { InvalidArgumentError } from "../lib/errors.ts";
import type { Tensor } from "../lib/gpu/tensor.ts";
import { prune } from "../lib/prune/pipeline.ts";
import type { MaskSet } from "../lib/prune/types.ts";
import { Pcg32 } from "../lib/util/pcg32.ts";

/** Random batches with mixed lengths (deterministic). */
function randomBatches(
  vocab: number,
  count: number,
  batch: number,
  maxLen: number,
  head: "classification" | "regression" | "qa",
  labels: number,
  seed: number,
): ModelInput[] {
  const rng = new Pcg32(seed);
  const out: ModelInput[] = [];
  for (let start = 0; start < count; start += batch) {
    const B = Math.min(batch, count - start);
    const lens = Array.from({ length: B }, () => 3 + rng.bounded(maxLen - 2));
    const S = Math.max(...lens);
    const ids = new Int32Array(B * S), am = new Int32Array(B * S), tt = new Int32Array(B * S);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < lens[b]; s++) {
        ids[b * S + s] = 1 + rng.bounded(vocab - 1);
        am[b * S + s] = 1;
        tt[b * S + s] = s > lens[b] / 2 ? 1 : 0;
      }
    }
    const x: ModelInput = {
      size: B,
      seqLen: S,
      inputIds: ids,
      attentionMask: am,
      tokenTypeIds: tt,
    };
    if (head === "classification") {
      x.labels = Int32Array.from({ length: B }, () => rng.bounded(labels));
    }
    if (head === "regression") {
      x.targets = Float32Array.from({ length: B }, () => rng.bounded(500) / 100);
    }
    if (head === "qa") {
      x.startPositions = Int32Array.from(lens, (n) => 1 + rng.bounded(n - 2));
      x.endPositions = Int32Array.from(
        x.startPositions,
        (p, b) => Math.min(lens[b] - 1, p + rng.bounded(3)),
      );
    }
    out.push(x);
  }
  return out;
}

function smallConfig(
  arch: "bert" | "distilbert",
  head: "classification" | "regression" | "qa",
  L = 3,
) {
  return makeConfig({
    arch,
    head,
    numLabels: head === "classification" ? 3 : head === "regression" ? 1 : 2,
    vocabSize: 50,
    hiddenSize: 32,
    numLayers: L,
    numHeads: 4,
    intermediateSize: 48,
    maxPositions: 64,
    typeVocabSize: arch === "bert" ? 2 : 0,
  });
}

function randomModel(
  arch: "bert" | "distilbert",
  head: "classification" | "regression" | "qa",
  seed: number,
  scale = 5,
): Promise<Model> {
  const config = smallConfig(arch, head);
  const weights = randomWeights(config, seed);
  // larger weights than HF's 0.02 init so that the heads and neurons matter
  for (const [name, t] of weights) {
    if (name.endsWith(".w") || name.startsWith("emb.")) {
      t.data.forEach((v, i) => (t.data[i] = v * scale));
    }
  }
  return uploadModel({ config, weights });
}

Deno.test("collectFisher equals Σ_b g_b² of the PyTorch per-example mask gradients", async () => {
  const f = await loadFixture<{
    model: string;
    input_ids: number[][];
    token_type_ids: number[][];
    attention_mask: number[][];
    labels: number[];
    head_mask_grad: number[][][];
    ffn_mask_grad: number[][][];
  }>("model_bert_classification.json");
  const m = await loadCheckpoint(new URL(`./fixtures/${f.model}`, import.meta.url).pathname);
  const B = f.input_ids.length, S = f.input_ids[0].length;
  const input: ModelInput = {
    size: B,
    seqLen: S,
    inputIds: Int32Array.from(f.input_ids.flat()),
    tokenTypeIds: Int32Array.from(f.token_type_ids.flat()),
    attentionMask: Int32Array.from(f.attention_mask.flat()),
    labels: Int32Array.from(f.labels.map((y) => (y === -100 ? 0 : y))),
  };
  // the fixture's third label is ignored (−100); relabelling changes only that example, so
  // compare on the first two examples
  const two = {
    ...input,
    size: 2,
    inputIds: input.inputIds.slice(0, 2 * S),
    tokenTypeIds: input.tokenTypeIds!.slice(0, 2 * S),
    attentionMask: input.attentionMask.slice(0, 2 * S),
    labels: input.labels!.slice(0, 2),
  };
  const r = await collectFisher(m, [two]);
  const refHead = f.head_mask_grad[0].flatMap((_, l) =>
    f.head_mask_grad[0][l].map((_, h) =>
      f.head_mask_grad[0][l][h] ** 2 + f.head_mask_grad[1][l][h] ** 2
    )
  );
  const refFfn = f.ffn_mask_grad[0].flatMap((_, l) =>
    f.ffn_mask_grad[0][l].map((_, j) =>
      f.ffn_mask_grad[0][l][j] ** 2 + f.ffn_mask_grad[1][l][j] ** 2
    )
  );
  assertClose(r.head, refHead, 2e-3 * maxAbs(refHead), 0, "head fisher");
  assertClose(r.ffn, refFfn, 2e-3 * maxAbs(refFfn), 0, "ffn fisher");
  assert(r.rows === 2 && r.headRows![0].length === 2 * 4);
  m.release();
});

Deno.test("mask tuning recovers the exact scale of duplicated heads and neurons", async () => {
  const config = smallConfig("bert", "classification", 2);
  const w = randomWeights(config, 3);
  for (const [name, t] of w) if (name.endsWith(".w")) t.data.forEach((v, i) => (t.data[i] = v * 5));
  const d = config.hiddenSize, dh = config.headDim;
  // layer 1: head 3 duplicates head 1 (Q, K, V rows and W_o columns); neuron 7 duplicates 2
  for (const x of ["q", "k", "v"]) {
    const W = w.get(`l1.${x}.w`)!, b = w.get(`l1.${x}.b`)!;
    for (let k = 0; k < dh; k++) {
      W.data.set(W.data.subarray((1 * dh + k) * d, (1 * dh + k + 1) * d), (3 * dh + k) * d);
      b.data[3 * dh + k] = b.data[1 * dh + k];
    }
  }
  const wo = w.get("l1.o.w")!;
  const hd = 4 * dh;
  for (let i = 0; i < d; i++) {
    for (let k = 0; k < dh; k++) wo.data[i * hd + 3 * dh + k] = wo.data[i * hd + 1 * dh + k];
  }
  const w1 = w.get("l1.ffn1.w")!, b1 = w.get("l1.ffn1.b")!, w2 = w.get("l1.ffn2.w")!;
  const F = config.intermediateSize;
  w1.data.set(w1.data.subarray(2 * d, 3 * d), 7 * d);
  b1.data[7] = b1.data[2];
  for (let i = 0; i < d; i++) w2.data[i * F + 7] = w2.data[i * F + 2];
  const model = await uploadModel({ config, weights: w });
  const keep: MaskSet = {
    head: new Float64Array(8).fill(1),
    ffn: new Float64Array(2 * F).fill(1),
    L: 2,
    H: 4,
    F,
  };
  keep.head[4 + 3] = 0; // prune the duplicate head of layer 1
  keep.ffn[F + 7] = 0; // and the duplicate neuron
  const batches = randomBatches(50, 96, 32, 20, "classification", 3, 1);
  const r = await tuneMasks(model, batches, keep, { lambda: 1e-6 });
  const mha = r.layers.find((t) => t.layer === 1 && t.kind === "mha")!;
  const ffn = r.layers.find((t) => t.layer === 1 && t.kind === "ffn")!;
  assert(mha.status === "tuned" && ffn.status === "tuned", JSON.stringify(r.layers));
  assert(
    Math.abs(r.mask.head[4 + 1] - 2) < 1e-2,
    `head 1 should absorb its duplicate: ${r.mask.head[5]}`,
  );
  for (const h of [0, 2]) {
    assert(Math.abs(r.mask.head[4 + h] - 1) < 1e-2, `head ${h}: ${r.mask.head[4 + h]}`);
  }
  assert(r.mask.head[4 + 3] === 0);
  // the FFN of the last layer is fitted on [CLS] only (few rows): the exact solution is still x = 2
  assert(
    Math.abs(r.mask.ffn[F + 2] - 2) < 5e-2,
    `neuron 2 should absorb its duplicate: ${r.mask.ffn[F + 2]}`,
  );
  assert(r.mask.ffn[F + 7] === 0);
  assert(mha.ev! < 1e-3 * mha.e1!, `reconstruction must be near exact: ${mha.ev} vs ${mha.e1}`);
  // every solved sub-layer reports its time, the solve's share inside it
  for (const t of r.layers.filter((t) => t.status !== "skipped")) {
    assert(t.solveSeconds! >= 0 && t.seconds! >= t.solveSeconds!, JSON.stringify(t));
  }
  model.release();
});

for (
  const [arch, head] of [["bert", "classification"], ["distilbert", "regression"], ["bert", "qa"], [
    "distilbert",
    "qa",
  ]] as const
) {
  Deno.test(`compaction equals the masked model: ${arch} ${head}, uneven and fully pruned layers`, async () => {
    const model = await randomModel(arch, head, 11);
    const { L, H } = { L: 3, H: 4 };
    const F = model.config.intermediateSize;
    const rng = new Pcg32(5);
    const keep: MaskSet = { head: new Float64Array(L * H), ffn: new Float64Array(L * F), L, H, F };
    const values: MaskSet = {
      head: new Float64Array(L * H),
      ffn: new Float64Array(L * F),
      L,
      H,
      F,
    };
    for (let i = 0; i < L * H; i++) keep.head[i] = rng.bounded(3) > 0 ? 1 : 0;
    for (let i = 0; i < L * F; i++) keep.ffn[i] = rng.bounded(3) > 0 ? 1 : 0;
    for (let h = 0; h < H; h++) keep.head[1 * H + h] = 0; // layer 1: no heads
    for (let j = 0; j < F; j++) keep.ffn[2 * F + j] = 0; // layer 2: no neurons
    keep.head[2 * H + 1] = 1;
    for (let i = 0; i < L * H; i++) {
      values.head[i] = keep.head[i] * (0.5 + rng.bounded(1000) / 1000);
    }
    for (let i = 0; i < L * F; i++) values.ffn[i] = keep.ffn[i] * (0.5 + rng.bounded(1000) / 1000);
    const compact = await compactModel(model, { keep, values });
    assert(compact.config.layerHeads[1].length === 0 && compact.config.layerFfn[2] === 0);
    const masks = {
      head: Array.from({ length: L }, (_, l) => Array.from(values.head.slice(l * H, (l + 1) * H))),
      ffn: Array.from({ length: L }, (_, l) => Array.from(values.ffn.slice(l * F, (l + 1) * F))),
    };
    // and the strictly transformers-loadable layout of it (all heads, one FFN width, zeros)
    const dense = await uploadModel(
      hfCompatibleLayout(compact.config, await downloadWeights(compact)),
      model.gpu,
    );
    const widths = compact.config.layerFfn;
    assert(widths[0] > 0 && widths[1] > 0 && widths[0] !== widths[1], `widths ${widths}`);
    assertEquals(dense.config.layerFfn, widths.map(() => Math.max(...widths)));
    assertEquals(dense.config.layerHeads, widths.map(() => [0, 1, 2, 3]));
    const batches = randomBatches(50, 256, 64, 40, head, 3, 9);
    let checked = 0;
    for (const b of batches) {
      const ref = await runModel(model, b, { masks, maskGrads: false });
      for (const m of [compact, dense]) {
        const got = await runModel(m, b, { maskGrads: false });
        const pairs: [number[][] | undefined, number[][] | undefined][] = [
          [ref.logits, got.logits],
          [ref.startLogits, got.startLogits],
          [ref.endLogits, got.endLogits],
        ];
        for (const [r, g] of pairs) {
          if (!r) continue;
          const rf = r.flat(), gf = g!.flat();
          for (let i = 0; i < rf.length; i++) {
            assert(
              Math.abs(rf[i] - gf[i]) <= 1e-4 * (1 + Math.abs(rf[i])),
              `${m === dense ? "hf-compatible" : "compact"} logit ${i}: ${gf[i]} vs ${rf[i]}`,
            );
          }
          if (m === compact) checked += r.length;
        }
      }
    }
    assert(checked >= 256);
    dense.release();
    compact.release();
    model.release();
  });
}

Deno.test("prune() meets the FLOPs budget and its compact model equals the tuned masked model", async () => {
  const gpu = await getGpu();
  void gpu;
  const model = await randomModel("bert", "classification", 21, 3);
  const samples = randomBatches(50, 128, 32, 24, "classification", 3, 4);
  const r = await prune(model, samples, { budget: { flops: 0.5 }, seqLen: 16 });
  assert(r.report.macs.ratio <= 0.5 + 1e-12, `MACs ratio ${r.report.macs.ratio}`);
  assert(r.report.macs.ratio > 0.3, "the search should use most of the budget");
  // rearrangement keeps counts and never increases its objective
  for (const e of r.report.rearrange) {
    assert(e.after <= e.before * (1 + 1e-9) + 1e-12, JSON.stringify(e));
  }
  for (const t of r.report.tuning) {
    if (t.status === "tuned") assert(t.ev! <= t.e1!, JSON.stringify(t));
  }
  const L = 3, H = 4, F = 48;
  const masks = {
    head: Array.from(
      { length: L },
      (_, l) => Array.from(r.masks.tuned.head.slice(l * H, (l + 1) * H)),
    ),
    ffn: Array.from(
      { length: L },
      (_, l) => Array.from(r.masks.tuned.ffn.slice(l * F, (l + 1) * F)),
    ),
  };
  const ref = await runModel(model, samples[0], { masks, maskGrads: false });
  const got = await runModel(r.compact!, samples[0], { maskGrads: false });
  assertClose(
    got.logits!.flat(),
    ref.logits!.flat(),
    1e-4 * (1 + maxAbs(ref.logits!.flat())),
    0,
    "compact vs masked",
  );
  assert(r.report.seconds.pruning > 0 && r.report.samples === 128);
  r.compact!.release();
  model.release();
});

Deno.test("prune() on a DistilBERT QA model (pad-masked span loss, all-token tuning)", async () => {
  const model = await randomModel("distilbert", "qa", 31, 3);
  const samples = randomBatches(50, 64, 16, 24, "qa", 2, 8);
  const r = await prune(model, samples, { budget: { flops: 0.6 }, seqLen: 20 });
  assert(r.report.macs.ratio <= 0.6 + 1e-12, `MACs ratio ${r.report.macs.ratio}`);
  assert(r.fisher.head.every((v) => Number.isFinite(v) && v >= 0));
  assert(r.report.tuning.some((t) => t.status === "tuned"), JSON.stringify(r.report.tuning));
  const L = 3, H = 4, F = 48;
  const masks = {
    head: Array.from(
      { length: L },
      (_, l) => Array.from(r.masks.tuned.head.slice(l * H, (l + 1) * H)),
    ),
    ffn: Array.from(
      { length: L },
      (_, l) => Array.from(r.masks.tuned.ffn.slice(l * F, (l + 1) * F)),
    ),
  };
  const ref = await runModel(model, samples[0], { masks, maskGrads: false });
  const got = await runModel(r.compact!, samples[0], { maskGrads: false });
  const rf = [...ref.startLogits!.flat(), ...ref.endLogits!.flat()];
  const gf = [...got.startLogits!.flat(), ...got.endLogits!.flat()];
  assertClose(gf, rf, 1e-4 * (1 + maxAbs(rf)), 0, "compact vs masked (QA)");
  r.compact!.release();
  model.release();
});

Deno.test("tuning's grouped read-backs hand every batch's results over in order and release them", async () => {
  const gpu = await getGpu();
  const seen: number[][] = [];
  // groups of at most 16 bytes: batches of 3 floats each are read two at a time
  const reads = new GroupedReads((vals) => seen.push(vals.map((v) => [...v]).flat()), 16);
  const made: Tensor[] = [];
  for (let b = 0; b < 5; b++) {
    const t = gpu.upload([b, b + 0.5]), u = gpu.upload([10 * b]);
    made.push(t, u);
    await reads.add([t, u]);
  }
  assertEquals(seen.length, 4); // the fifth batch waits for flush
  await reads.flush();
  await reads.flush(); // nothing pending: no-op
  assertEquals(seen, [0, 1, 2, 3, 4].map((b) => [b, b + 0.5, 10 * b]));
  for (const t of made) assert(t.released, "a read result was not released");
});

for (
  const [arch, head, labelFree] of [
    ["bert", "classification", false],
    ["bert", "classification", true],
    ["distilbert", "qa", false],
  ] as const
) {
  Deno.test(
    `tuning on the Fisher pass's teacher targets equals tuning with a teacher pass: ${arch} ${head}${
      labelFree ? " (label-free Fisher)" : ""
    }`,
    async () => {
      const model = await randomModel(arch, head, 21);
      const { L, H } = { L: 3, H: 4 };
      const F = model.config.intermediateSize;
      const batches = randomBatches(50, 40, 16, 14, head, 3, 4);
      const rng = new Pcg32(8);
      const keep: MaskSet = {
        head: new Float64Array(L * H),
        ffn: new Float64Array(L * F),
        L,
        H,
        F,
      };
      for (let i = 0; i < L * H; i++) keep.head[i] = rng.bounded(4) > 0 ? 1 : 0;
      for (let i = 0; i < L * F; i++) keep.ffn[i] = rng.bounded(3) > 0 ? 1 : 0;
      const targets = new TeacherTargets();
      await collectFisher(model, batches, { labelFree, teacherTargets: targets });
      assert(targets.complete(batches.length) && targets.sum1[0].length === L);
      const viaFisher = await tuneMasks(model, batches, keep, { teacherTargets: targets });
      const viaPass = await tuneMasks(model, batches, keep);
      assertEquals(viaFisher.teacherTargets, "fisher pass");
      assertEquals(viaPass.teacherTargets, "teacher pass");
      assert(viaFisher.layers.some((t) => t.status === "tuned"), JSON.stringify(viaFisher.layers));
      assertEquals(viaFisher.layers.map((t) => t.status), viaPass.layers.map((t) => t.status));
      // the same targets up to the rounding of the saving and the inference attention kernels
      assertClose(viaFisher.mask.head, viaPass.mask.head, 1e-4, 1e-4, "head values");
      assertClose(viaFisher.mask.ffn, viaPass.mask.ffn, 1e-4, 1e-4, "neuron values");
      // the targets stay the caller's; targets of other batches are refused
      assert(!targets.sum1[0][0].released);
      await assertRejects(
        () => tuneMasks(model, [...batches].reverse(), keep, { teacherTargets: targets }),
        InvalidArgumentError,
        "other batches",
      );
      targets.release();
      model.release();
    },
  );
}

Deno.test("teacher targets past their memory cap are dropped and tuning runs its teacher pass", async () => {
  const model = await randomModel("bert", "classification", 22);
  const batches = randomBatches(50, 32, 16, 10, "classification", 3, 5);
  const F = model.config.intermediateSize;
  const keep: MaskSet = {
    head: new Float64Array(12).fill(1),
    ffn: new Float64Array(3 * F).fill(1),
    L: 3,
    H: 4,
    F,
  };
  const tokens = batches[0].size * batches[0].seqLen;
  // room for the first batch only
  const targets = new TeacherTargets(2 * 3 * tokens * 32 * 4 + 4);
  await collectFisher(model, batches, { teacherTargets: targets });
  assert(targets.overflowed && targets.batches === 0 && !targets.complete(batches.length));
  const r = await tuneMasks(model, batches, keep, { teacherTargets: targets });
  assertEquals(r.teacherTargets, "teacher pass");
  model.release();
});

Deno.test("teacher targets refuse a pass whose last MHA ran at the [CLS] rows only", async () => {
  const model = await randomModel("bert", "classification", 23);
  const [input] = randomBatches(50, 1, 4, 10, "classification", 3, 6);
  const batch = uploadBatch(model.gpu, model.config, input);
  const targets = new TeacherTargets();
  for (const clsOnlyLastLayer of [true, "ffn"] as const) {
    const fwd = forward(model, batch, undefined, { save: true, clsOnlyLastLayer });
    if (clsOnlyLastLayer === true) {
      // tuning's last MHA reads every row's pre-LN₁ sum, which this pass did not compute
      await assertRejects(
        () => targets.record(fwd.saved!.layers, input),
        InvalidArgumentError,
        "pre-LN₁",
      );
    } else {
      // the FFN's sum is kept at [CLS] only, stored at the full size tuning indexes
      targets.record(fwd.saved!.layers, input);
      const L = model.config.numLayers, rows = input.size * input.seqLen;
      assertEquals(targets.sum2[0][L - 1].shape, [rows, 32]);
      // zero but at the [CLS] rows, where it equals the pass's [B, d] sum
      const full = await targets.sum2[0][L - 1].read();
      const cls = await fwd.saved!.layers[L - 1].sum2.read();
      for (let r = 0; r < rows; r++) {
        const b = r % input.seqLen === 0 ? r / input.seqLen : -1;
        for (let k = 0; k < 32; k++) {
          assertEquals(full[r * 32 + k], b >= 0 ? cls[b * 32 + k] : 0, `row ${r}`);
        }
      }
    }
    fwd.release();
  }
  targets.release();
  batch.release();
  model.release();
});
