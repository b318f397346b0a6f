// The fused inference kernels of CPU adapters against float64 references written out here.
// Attention (lib/ops/attention.ts) against a float64 reference of
// Hugging Face's attention written out here: scores q·kᵀ/√dh, the BERT additive mask
// ((1 − mask)·f32 min) or DistilBERT's masked_fill, softmax over keys, P·V, head mask, merged
// heads. Shapes cover head widths 32 and 64, padding, a fully masked example (uniform weights),
// and totals that leave a partial last texture row. Residual + LayerNorm
// (`addLayerNormInference`) against torch.nn.LayerNorm's definition (biased variance).
import { assert, assertClose, attentionProbsRef, maxAbs } from "./helpers.ts";
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { getGpu } from "../lib/gpu/context.ts";
import { fusedAttention } from "../lib/ops/attention.ts";
import { flatTextureWidth } from "../lib/ops/flat_texture.ts";
import { kernelClass } from "../lib/ops/kernel_class.ts";
import { addLayerNormInference, biasLayerNormInference } from "../lib/ops/layernorm.ts";
import { embeddingLayerNormInference } from "../lib/ops/embedding_ln.ts";
import { mul } from "../lib/ops/elementwise.ts";
import { linearPadded } from "../lib/ops/matmul.ts";
import { makeConfig } from "../lib/model/config.ts";
import { uploadBatch } from "../lib/model/inputs.ts";
import { createRandomModel } from "../lib/model/model.ts";
import { forward } from "../lib/model/run.ts";

function rand(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function reference(
  qkv: Float32Array,
  keyMask: Float32Array,
  headMask: Float32Array | undefined,
  B: number,
  S: number,
  H: number,
  dh: number,
  mode: "bert" | "distilbert",
): Float64Array {
  const W = 3 * H * dh, out = new Float64Array(B * S * H * dh);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const { P } = attentionProbsRef(qkv, keyMask, S, H, dh, mode, b, h);
      const f = headMask ? headMask[b * H + h] : 1;
      for (let i = 0; i < S; i++) {
        for (let k = 0; k < dh; k++) {
          let acc = 0;
          for (let j = 0; j < S; j++) {
            acc += P[i * S + j] * qkv[(b * S + j) * W + (2 * H + h) * dh + k];
          }
          out[(b * S + i) * H * dh + h * dh + k] = acc * f;
        }
      }
    }
  }
  return out;
}

Deno.test("fused attention equals the float64 Hugging Face attention (both mask modes, generic and unrolled entries, odd S, partial texture rows, first-Sq queries)", async () => {
  const gpu = await getGpu();
  if (kernelClass(gpu) !== "cpu") return; // the kernel only runs on CPU adapters
  const cases = [
    { B: 3, S: 37, H: 3, dh: 32, mode: "bert" as const, hm: true },
    { B: 2, S: 19, H: 2, dh: 64, mode: "distilbert" as const, hm: false },
    { B: 2, S: 70, H: 1, dh: 32, mode: "distilbert" as const, hm: true },
    { B: 1, S: 5, H: 4, dh: 8, mode: "bert" as const, hm: false },
    { B: 2, S: 13, H: 2, dh: 16, mode: "bert" as const, hm: true },
    { B: 2, S: 21, H: 2, dh: 48, mode: "distilbert" as const, hm: true },
    { B: 2, S: 9, H: 3, dh: 24, mode: "bert" as const, hm: false },
    // queries at the first Sq positions only (a classifier's [CLS]-only last layer: Sq = 1)
    { B: 3, S: 37, H: 3, dh: 32, mode: "bert" as const, hm: true, queries: 1 },
    { B: 2, S: 70, H: 1, dh: 32, mode: "distilbert" as const, hm: true, queries: 9 },
    { B: 11, S: 6, H: 2, dh: 16, mode: "distilbert" as const, hm: true, queries: 1 },
  ];
  // each case's entry: generic attention_r<R> for head widths without an unrolled entry, else
  // attention_r<R>_d<dh/4> with the smallest R that fits ⌈S/R⌉ ≤ 8 rows (R·dh/4 ≤ 128)
  const expected = [
    "attention_r8_d8",
    "attention_r4_d16",
    "attention_r16_d8",
    "attention_r8",
    "attention_r2_d4",
    "attention_r2",
    "attention_r4",
    "attention_q1_d8",
    "attention_r2_d8",
    "attention_q1_d4",
  ];
  const entries: string[] = [];
  for (const c of cases) {
    const { B, S, H, dh, mode } = c;
    const r = rand(B * 1000 + S * 10 + H);
    const qkv = Float32Array.from({ length: B * S * 3 * H * dh }, () => 4 * r());
    const keyMask = new Float32Array(B * S);
    for (let b = 0; b < B; b++) {
      // example b has b·3 padding positions; the last example of the first case is all padding
      const real = c.B === 3 && b === 2 ? 0 : S - 3 * b;
      for (let j = 0; j < real; j++) keyMask[b * S + j] = 1;
    }
    const headMask = c.hm
      ? Float32Array.from({ length: B * H }, (_, i) => i % 3 === 1 ? 0 : 0.5 + i / 7)
      : undefined;
    const total = qkv.length;
    const w = flatTextureWidth(total, gpu.textures.maxDim);
    const tq = gpu.upload(qkv, [B * S, 3 * H * dh]);
    const tm = gpu.upload(keyMask, [B, S]);
    const th = headMask ? gpu.upload(headMask, [B * H]) : undefined;
    const queries = "queries" in c ? c.queries : undefined;
    gpu.startRecording();
    const shape = { B, S, H, dh, scale: 1 / Math.sqrt(dh), mode, queries };
    const out = fusedAttention(tq, tm, th, shape);
    entries.push(...gpu.stopRecording().map((d) => d.entry));
    assert(out, `fused attention did not apply to ${JSON.stringify(c)}`);
    const got = await out.read();
    const full = reference(qkv, keyMask, headMask, B, S, H, dh, mode);
    // the reference's rows at the query positions: [B·Sq, H·dh]
    const Sq = queries ?? S, row = H * dh;
    const ref = new Float64Array(B * Sq * row);
    for (let b = 0; b < B; b++) {
      ref.set(full.subarray(b * S * row, (b * S + Sq) * row), b * Sq * row);
    }
    assertClose(
      got,
      ref,
      1e-5 * Math.max(1, maxAbs(ref)),
      1e-5,
      `${JSON.stringify(c)} (texture width ${w}, partial row ${total % (4 * w) !== 0})`,
    );
    for (const t of [tq, tm, th, out]) t?.release();
  }
  assertEquals(entries, expected);
  // fewer queries than positions has no generic entry: undefined, nothing recorded
  const tq = gpu.upload(new Float32Array(9 * 3 * 24), [9, 72]);
  const tm = gpu.upload(new Float32Array(9).fill(1), [1, 9]);
  const shape = { B: 1, S: 9, H: 1, dh: 24, scale: 1, mode: "bert" as const, queries: 1 };
  assertEquals(fusedAttention(tq, tm, undefined, shape), undefined);
  tq.release();
  tm.release();
});

/** float64 LayerNorm (biased variance, as torch.nn.LayerNorm) of R rows of C values x(i, c). */
function layerNormRef(
  R: number,
  C: number,
  x: (i: number, c: number) => number,
  g: Float32Array,
  b: Float32Array,
  eps: number,
): Float64Array {
  const out = new Float64Array(R * C);
  for (let i = 0; i < R; i++) {
    const v = Array.from({ length: C }, (_, c) => x(i, c));
    const mean = v.reduce((s, y) => s + y, 0) / C;
    const rstd = 1 / Math.sqrt(v.reduce((s, y) => s + (y - mean) ** 2, 0) / C + eps);
    for (let c = 0; c < C; c++) out[i * C + c] = (v[c] - mean) * rstd * g[c] + b[c];
  }
  return out;
}

Deno.test("fused residual + LayerNorm equals LayerNorm(a + r) in float64 (unrolled and generic entries, partial texture rows)", async () => {
  const gpu = await getGpu();
  if (kernelClass(gpu) !== "cpu") return;
  const entries: string[] = [];
  for (const [R, C] of [[37, 16], [300, 128], [3, 256], [5, 772]]) {
    const r = rand(R * 31 + C);
    const a = Float32Array.from({ length: R * C }, () => 3 * r() + 1);
    const res = Float32Array.from({ length: R * C }, () => 2 * r());
    const g = Float32Array.from({ length: C }, () => 1 + r());
    const b = Float32Array.from({ length: C }, () => r());
    const eps = 1e-12;
    const ref = layerNormRef(R, C, (i, c) => a[i * C + c] + res[i * C + c], g, b, eps);
    const ts = [
      gpu.upload(a, [R, C]),
      gpu.upload(res, [R, C]),
      gpu.upload(g, [C]),
      gpu.upload(b, [C]),
    ];
    gpu.startRecording();
    const y = addLayerNormInference(ts[0], ts[1], ts[2], ts[3], eps);
    entries.push(...gpu.stopRecording().map((d) => d.entry));
    assert(y, `fused LayerNorm did not apply to [${R}, ${C}]`);
    assertClose(await y.read(), ref, 2e-5 * Math.max(1, maxAbs(ref)), 0, `[${R}, ${C}]`);
    for (const t of [...ts, y]) t.release();
  }
  // rows of ≤ 256 values: the unrolled entries; 772: the generic one
  assertEquals(entries, ["add_ln_r1_c4", "add_ln_r1_c32", "add_ln_r1_c64", "add_forward_rows_tex"]);
});

Deno.test("bias + LayerNorm (a zero-width sub-layer) equals LayerNorm(bias + r) in float64", async () => {
  const gpu = await getGpu();
  if (kernelClass(gpu) !== "cpu") return;
  const entries: string[] = [];
  for (const [R, C] of [[37, 16], [300, 128], [3, 256]]) {
    const rnd = rand(R * 17 + C);
    const bias = Float32Array.from({ length: C }, () => 3 * rnd() + 1);
    const res = Float32Array.from({ length: R * C }, () => 2 * rnd());
    const g = Float32Array.from({ length: C }, () => 1 + rnd());
    const b = Float32Array.from({ length: C }, () => rnd());
    const eps = 1e-12;
    const ref = layerNormRef(R, C, (i, c) => bias[c] + res[i * C + c], g, b, eps);
    const ts = [
      gpu.upload(bias, [C]),
      gpu.upload(res, [R, C]),
      gpu.upload(g, [C]),
      gpu.upload(b, [C]),
    ];
    gpu.startRecording();
    const y = biasLayerNormInference(ts[0], ts[1], ts[2], ts[3], eps);
    entries.push(...gpu.stopRecording().map((d) => d.entry));
    assert(y, `bias LayerNorm did not apply to [${R}, ${C}]`);
    assertEquals([...y.shape], [R, C]);
    assertClose(await y.read(), ref, 2e-5 * Math.max(1, maxAbs(ref)), 0, `[${R}, ${C}]`);
    for (const t of [...ts, y]) t.release();
  }
  assertEquals(entries, ["add_ln_r1_c4_b", "add_ln_r1_c32_b", "add_ln_r1_c64_b"]);
  // rows past 256 values: no such kernel (the caller broadcasts the bias instead)
  const wide = [
    gpu.upload(new Float32Array(260), [260]),
    gpu.upload(new Float32Array(520), [2, 260]),
  ];
  assertEquals(biasLayerNormInference(wide[0], wide[1], wide[0], wide[0], 1e-12), undefined);
  for (const t of wide) t.release();
});

Deno.test("fused embeddings equal LayerNorm(word + pos + type) in float64 (out-of-range ids give zero rows; held table textures follow writes)", async () => {
  const gpu = await getGpu();
  if (kernelClass(gpu) !== "cpu") return;
  const entries: string[] = [];
  for (const [V, d, N, typed] of [[50, 16, 37, 1], [300, 128, 70, 0], [7, 256, 5, 1]] as const) {
    const r = rand(V * 7 + d);
    const VP = 40, VT = 2, eps = 1e-12;
    const word = Float32Array.from({ length: V * d }, () => 2 * r() + 0.5);
    const pos = Float32Array.from({ length: VP * d }, () => r());
    const typ = Float32Array.from({ length: VT * d }, () => r());
    const g = Float32Array.from({ length: d }, () => 1 + r());
    const b = Float32Array.from({ length: d }, () => r());
    // ids past both ends of each table contribute zero rows
    const ids = Int32Array.from({ length: N }, (_, i) => i === 1 ? -1 : i === 2 ? V : (i * 13) % V);
    const pids = Int32Array.from({ length: N }, (_, i) => i === 3 ? VP : i % VP);
    const tids = Int32Array.from({ length: N }, (_, i) => i === 4 ? -2 : (i >> 2) & 1);
    const at = (t: Float32Array, rows: number, id: number, c: number) =>
      id >= 0 && id < rows ? t[id * d + c] : 0;
    const ref = (w: Float32Array) =>
      layerNormRef(
        N,
        d,
        (n, c) =>
          at(w, V, ids[n], c) + at(pos, VP, pids[n], c) + (typed ? at(typ, VT, tids[n], c) : 0),
        g,
        b,
        eps,
      );
    const tw = gpu.upload(word, [V, d]), tp = gpu.upload(pos, [VP, d]);
    const tt = gpu.upload(typ, [VT, d]), tg = gpu.upload(g, [d]), tb = gpu.upload(b, [d]);
    const ti = gpu.uploadU32(ids), tpi = gpu.uploadU32(pids), tti = gpu.uploadU32(tids);
    const run = () => {
      gpu.startRecording();
      const y = embeddingLayerNormInference(
        { word: tw, ids: ti, pos: tp, posIds: tpi, ...(typed ? { type: tt, typeIds: tti } : {}) },
        tg,
        tb,
        eps,
      );
      entries.push(...gpu.stopRecording().map((x) => x.entry));
      assert(y, `fused embeddings did not apply to d = ${d}`);
      return y;
    };
    const y1 = run();
    const want1 = ref(word);
    assertClose(await y1.read(), want1, 2e-5 * Math.max(1, maxAbs(want1)), 0, `d = ${d}`);
    // the word table changes twice, by a kernel writing it and by gpu.write: the kept texture
    // copy must follow both
    const scaled = Float32Array.from(word, (x) => 3 * x);
    const two = gpu.upload(new Float32Array(V * d).fill(2), [V, d]);
    const orig = gpu.upload(word, [V, d]);
    mul(orig, two, 1, tw); // tw ← 2·word, by a dispatch that binds tw read-write
    const y2 = run();
    const want2 = ref(Float32Array.from(word, (x) => 2 * x));
    assertClose(await y2.read(), want2, 2e-5 * Math.max(1, maxAbs(want2)), 0, `d = ${d}, ×2`);
    gpu.write(tw, scaled);
    const y3 = run();
    const want3 = ref(scaled);
    assertClose(await y3.read(), want3, 2e-5 * Math.max(1, maxAbs(want3)), 0, `d = ${d}, ×3`);
    for (const t of [tw, tp, tt, tg, tb, ti, tpi, tti, two, orig, y1, y2, y3]) t.release();
  }
  assertEquals(new Set(entries), new Set(["embed_ln_c4", "embed_ln_c32", "embed_ln_c64"]));
});

Deno.test("fused inference with an odd FFN width (padded rows between the two FFN products) equals the unfused pass", async () => {
  const gpu = await getGpu();
  const config = makeConfig({
    arch: "bert",
    head: "classification",
    vocabSize: 100,
    hiddenSize: 32,
    numHeads: 2,
    numLayers: 2,
    intermediateSize: 130,
    maxPositions: 64,
  });
  const model = await createRandomModel(config, 3, gpu);
  const B = 4, S = 32;
  const r = rand(17);
  const attentionMask = Int32Array.from(
    { length: B * S },
    (_, i) => (i % S) < S - (i / S | 0) * 5 ? 1 : 0,
  );
  const input = {
    size: B,
    seqLen: S,
    inputIds: Int32Array.from({ length: B * S }, () => 1 + Math.floor(98 * Math.abs(r()))),
    attentionMask,
  };
  // the shape takes the padded path on this adapter (else this test would compare a path with itself)
  const probe = gpu.upload(new Float32Array(B * S * 32), [B * S, 32]);
  const z = linearPadded(probe, model.param("l0.ffn1.w"), model.param("l0.ffn1.b"), "gelu");
  if (kernelClass(gpu) === "cpu") assert(z, "linearPadded must apply to [128, 32]·[130, 32]ᵀ");
  z?.release();
  probe.release();
  const batch = uploadBatch(gpu, model.config, input);
  const fused = forward(model, batch, undefined, {});
  const plain = forward(model, batch, undefined, { fused: false });
  const want = await plain.logits!.read();
  assertClose(await fused.logits!.read(), want, 1e-4 * Math.max(1, maxAbs(want)), 0, "logits");
  const hw = await plain.hidden.read();
  assertClose(await fused.hidden.read(), hw, 1e-4 * Math.max(1, maxAbs(hw)), 0, "hidden states");
  for (const t of [fused, plain, batch]) t.release();
  model.release();
});
