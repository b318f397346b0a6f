// Parity of the GPU BERT/DistilBERT forward and backward with the float64 PyTorch reference
// (tests/fixtures/gen_model.py): logits, per-example losses, per-example mask gradients and the
// gradients of every parameter; plus finite differences of mask gradients on the GPU itself.
import { assert, assertClose, assertEquals, loadFixture, maxAbs } from "./helpers.ts";
import { readCheckpoint, writeCheckpoint } from "../lib/model/checkpoint.ts";
import { randomWeights } from "../lib/model/random.ts";
import { parseSafetensors } from "../lib/model/safetensors.ts";
import { compactWeights } from "../lib/prune/compact.ts";
import { loadCheckpoint, type Model } from "../lib/model/model.ts";
import { downloadNamed } from "../lib/model/model.ts";
import { backward, forward, runModel } from "../lib/model/run.ts";
import { type ModelInput, uploadBatch, uploadMasks } from "../lib/model/inputs.ts";
import { expectedShapes, toHfNames } from "../lib/model/weights.ts";
import type { Grads } from "../lib/model/encoder.ts";
import type { Tensor } from "../lib/gpu/tensor.ts";
import { kernelClass } from "../lib/ops/kernel_class.ts";

interface Fixture {
  model: string;
  input_ids: number[][];
  token_type_ids: number[][];
  attention_mask: number[][];
  head_mask: number[][];
  ffn_mask: number[][];
  labels?: number[];
  targets?: number[];
  start_positions?: number[];
  end_positions?: number[];
  logits?: number[][];
  start_logits?: number[][];
  end_logits?: number[][];
  per_example_loss: number[];
  loss: number;
  head_mask_grad: number[][][];
  ffn_mask_grad: number[][][];
  param_grads: Record<string, number[]>;
}

const CASES = ["bert", "distilbert"].flatMap((a) =>
  [
    "classification",
    "classification_masked",
    "regression",
    "regression_masked",
    "qa",
    "qa_masked",
    "pruned",
    "dh16_masked",
  ].map((h) => `${a}_${h}`)
);

const models = new Map<string, Model>();
async function model(dir: string): Promise<Model> {
  let m = models.get(dir);
  if (!m) {
    m = await loadCheckpoint(new URL(`./fixtures/${dir}`, import.meta.url).pathname);
    models.set(dir, m);
  }
  return m;
}

function input(f: Fixture): ModelInput {
  const B = f.input_ids.length, S = f.input_ids[0].length;
  return {
    size: B,
    seqLen: S,
    inputIds: Int32Array.from(f.input_ids.flat()),
    tokenTypeIds: Int32Array.from(f.token_type_ids.flat()),
    attentionMask: Int32Array.from(f.attention_mask.flat()),
    labels: f.labels ? Int32Array.from(f.labels) : undefined,
    targets: f.targets ? Float32Array.from(f.targets) : undefined,
    startPositions: f.start_positions ? Int32Array.from(f.start_positions) : undefined,
    endPositions: f.end_positions ? Int32Array.from(f.end_positions) : undefined,
  };
}

const flat = (x: number[][] | number[][][]): number[] => (x as number[][]).flat(2 as 1) as number[];

for (const name of CASES) {
  Deno.test(`model parity with PyTorch: ${name}`, async () => {
    const f = await loadFixture<Fixture>(`model_${name}.json`);
    const m = await model(f.model);
    // and again with a classifier's last layer at the [CLS] rows only (the passes of training,
    // evaluation and the Fisher pass), which must give the same outputs and mask gradients
    const modes = m.config.head === "qa" ? [false] as const : [false, true, "ffn"] as const;
    for (const clsOnlyLastLayer of modes) {
      const label = clsOnlyLastLayer ? ` (clsOnlyLastLayer ${clsOnlyLastLayer})` : "";
      const masks = { head: f.head_mask, ffn: f.ffn_mask };
      const r = await runModel(m, input(f), { masks, clsOnlyLastLayer });
      if (f.logits) {
        const ref = flat(f.logits);
        assertClose(flat(r.logits!), ref, 1e-4 * Math.max(1, maxAbs(ref)), 0, "logits" + label);
      } else {
        const rs = flat(f.start_logits!), re = flat(f.end_logits!);
        assertClose(flat(r.startLogits!), rs, 1e-4 * Math.max(1, maxAbs(rs)), 0, "start logits");
        assertClose(flat(r.endLogits!), re, 1e-4 * Math.max(1, maxAbs(re)), 0, "end logits");
      }
      assertClose(
        r.perExampleLoss!,
        f.per_example_loss,
        1e-4 * Math.max(1, maxAbs(f.per_example_loss)),
        0,
        "loss" + label,
      );
      const hg = flat(f.head_mask_grad), fg = flat(f.ffn_mask_grad);
      const [ha, fa] = [1e-3 * Math.max(1e-3, maxAbs(hg)), 1e-3 * Math.max(1e-3, maxAbs(fg))];
      assertClose(flat(r.headMaskGrad!), hg, ha, 0, "head mask grad" + label);
      assertClose(flat(r.ffnMaskGrad!), fg, fa, 0, "ffn mask grad" + label);
      assert(maxAbs(hg) > 0 || name.includes("pruned"), "reference head grads must be non-trivial");
    }

    // An inference pass (no saved activations) takes the fused attention kernel on CPU
    // adapters: its outputs must match the same PyTorch reference.
    {
      const inp = input(f);
      const batch = uploadBatch(m.gpu, m.config, inp);
      const masks = uploadMasks(m.gpu, m.config, batch.B, { head: f.head_mask, ffn: f.ffn_mask });
      const fwd = forward(m, batch, masks, {});
      const pairs: [Tensor | undefined, number[][] | undefined, string][] = [
        [fwd.logits, f.logits, "inference logits"],
        [fwd.start, f.start_logits, "inference start logits"],
        [fwd.end, f.end_logits, "inference end logits"],
      ];
      for (const [t, ref, what] of pairs) {
        if (!ref) continue;
        const r = flat(ref);
        assertClose(await t!.read(), r, 1e-4 * Math.max(1, maxAbs(r)), 0, what);
      }
      fwd.release();
      if (f.logits) {
        // and with the last layer at the [CLS] rows only (evaluation's pass)
        const cls = forward(m, batch, masks, { clsOnlyLastLayer: true });
        assertEquals(cls.hidden.shape, [batch.B, m.config.hiddenSize], "[CLS] rows only");
        const r = flat(f.logits);
        assertClose(
          await cls.logits!.read(),
          r,
          1e-4 * Math.max(1, maxAbs(r)),
          0,
          "CLS-only logits",
        );
        cls.release();
      }
      masks.release();
      batch.release();
    }

    // Parameter gradients of HF's batch loss (QA's per-side means are not a per-example scale:
    // classification and regression only).
    if (m.config.head === "qa") return;
    // parameter gradients, also with the last layer at the [CLS] rows only (the training step's
    // and the Fisher pass's)
    for (const clsOnlyLastLayer of [false, true, "ffn"] as const) {
      const label = clsOnlyLastLayer ? ` (clsOnlyLastLayer ${clsOnlyLastLayer})` : "";
      const inp = input(f);
      const batch = uploadBatch(m.gpu, m.config, inp);
      const masks = uploadMasks(m.gpu, m.config, batch.B, { head: f.head_mask, ffn: f.ffn_mask });
      m.gpu.startRecording();
      const fwd = forward(m, batch, masks, { save: true, withLoss: true, clsOnlyLastLayer });
      const valid = inp.labels ? inp.labels.filter((y) => y !== -100).length : batch.B;
      const grads: Grads = new Map();
      const mg = backward(m, fwd, batch, masks, { lossScale: 1 / valid, grads, clsOnlyLastLayer });
      const entries = m.gpu.stopRecording().map((d) => d.entry);
      if (name.includes("dh16") && kernelClass(m.gpu) === "cpu") {
        // head width 16: the saving fused attention and the fused backward must have run
        for (
          const e of [
            "attention_r2_d4_save",
            "attention_delta",
            "attention_dq_r2_d4",
            "attention_dkv_r2_d4",
          ]
        ) {
          assert(entries.includes(e), `${name}: ${e} did not run (${[...new Set(entries)]})`);
        }
      }
      if (clsOnlyLastLayer) {
        // the pass did run at the [CLS] rows (the mode was not ignored)
        assertEquals(fwd.hidden.shape, [batch.B, m.config.hiddenSize], "hidden states: [CLS] rows");
      }
      const canonical = await downloadNamed(grads);
      for (const [name, shape] of expectedShapes(m.config)) {
        // zero-width sub-layers have no gradient tensors: their gradients are empty
        if (!canonical.has(name) && shape.includes(0)) {
          canonical.set(name, { shape, data: new Float32Array(0) });
        }
      }
      const host = toHfNames(m.config, canonical);
      for (const [hf, ref] of Object.entries(f.param_grads)) {
        const got = host.get(hf);
        assert(got, `no gradient for ${hf}`);
        assertClose(got.data, ref, 1e-3 * Math.max(1e-4, maxAbs(ref)), 0, `grad ${hf}${label}`);
      }
      mg.release();
      fwd.release();
      for (const g of grads.values()) g.release();
      masks.release();
      batch.release();
    }
  });
}

Deno.test("mask gradients agree with central finite differences of the GPU loss", async () => {
  const f = await loadFixture<Fixture>("model_bert_classification_masked.json");
  const m = await model(f.model);
  const inp = input(f);
  const r = await runModel(m, inp, { masks: { head: f.head_mask, ffn: f.ffn_mask } });
  const h = 1e-2;
  const lossAt = async (l: number, unit: number, kind: "head" | "ffn", delta: number) => {
    const hm = f.head_mask.map((x) => [...x]);
    const fm = f.ffn_mask.map((x) => [...x]);
    (kind === "head" ? hm : fm)[l][unit] += delta;
    const rr = await runModel(m, inp, { masks: { head: hm, ffn: fm }, maskGrads: false });
    return rr.perExampleLoss!.reduce((a, b) => a + b, 0);
  };
  for (
    const [kind, l, unit] of [["head", 0, 2], ["head", 0, 1], ["ffn", 0, 5], ["ffn", 1, 4]] as const
  ) {
    const fd = ((await lossAt(l, unit, kind, h)) - (await lossAt(l, unit, kind, -h))) / (2 * h);
    const grads = kind === "head" ? r.headMaskGrad! : r.ffnMaskGrad!;
    const an = grads.reduce((s, ex) => s + ex[l][unit], 0);
    assert(
      Math.abs(fd - an) <= 2e-2 * Math.max(1e-2, Math.abs(an)),
      `${kind} ${l}/${unit}: fd ${fd} vs ${an}`,
    );
  }
});

// The strictly transformers-loadable layout (lib/model/hf_layout.ts) of the pruned fixtures (two
// heads of four kept in layer 0 with values 1 and 0.5, no heads and no neurons in layer 1): every
// tensor at the size transformers' own modules have without pruning, and PyTorch's logits.
for (const arch of ["bert", "distilbert"]) {
  Deno.test(`hf-compatible layout of the pruned ${arch} fixture: dense shapes, PyTorch's logits`, async () => {
    const f = await loadFixture<Fixture>(`model_${arch}_pruned.json`);
    const src = await readCheckpoint(new URL(`./fixtures/${f.model}`, import.meta.url).pathname);
    const c = src.config, L = c.numLayers, H = c.numHeads, F = c.intermediateSize;
    const set = () => ({ L, H, F, head: new Float64Array(L * H), ffn: new Float64Array(L * F) });
    const keep = set(), values = set();
    f.head_mask.forEach((row, l) =>
      row.forEach((v, h) => (keep.head[l * H + h] = 1, values.head[l * H + h] = v))
    );
    f.ffn_mask.forEach((row, l) =>
      row.forEach((v, j) => (keep.ffn[l * F + j] = 1, values.ffn[l * F + j] = v))
    );
    const folded = compactWeights(c, src.weights, { keep, values });
    const dir = await Deno.makeTempDir();
    await writeCheckpoint(dir, { ...src, ...folded }, { hfCompatible: true, force: true });
    const json = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assertEquals(json.pruned_heads, {});
    assert(!("intermediate_sizes" in json), "no intermediate_sizes");
    const width = Math.max(...f.ffn_mask.map((r) => r.length));
    assertEquals(arch === "bert" ? json.intermediate_size : json.hidden_dim, width);
    // every tensor named and shaped as the modules transformers builds from that config.json
    const unpruned = {
      ...c,
      intermediateSize: width,
      layerHeads: c.layerHeads.map(() => [...Array(H).keys()]),
      layerFfn: c.layerFfn.map(() => width),
    };
    const expected = toHfNames(unpruned, randomWeights(unpruned, 0));
    const st = parseSafetensors(await Deno.readFile(`${dir}/model.safetensors`)).tensors;
    assertEquals([...st.keys()].sort(), [...expected.keys()].sort());
    for (const [name, t] of st) assertEquals(t.shape, expected.get(name)!.shape, name);
    const m = await loadCheckpoint(dir);
    const r = await runModel(m, input(f));
    const ref = flat(f.logits!);
    assertClose(flat(r.logits!), ref, 1e-4 * Math.max(1, maxAbs(ref)), 0, "logits");
    m.release();
    await Deno.remove(dir, { recursive: true });
  });
}
