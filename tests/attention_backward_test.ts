// The fused attention backward of CPU adapters (lib/ops/attention_backward.ts) and the saving
// forward (`fusedAttentionSaving`) against a float64 reference of Hugging Face's attention and its
// analytic gradient written out here (scores q·kᵀ/√dh, the BERT additive mask or DistilBERT's
// masked_fill, softmax, P·V, head mask; loss = Σ G ∘ merged for a random G). The reference
// gradient is itself checked against central finite differences of the reference forward.
// Shapes cover head widths 16, 32 and 64, padding, a fully masked example, zero head masks, S
// over several workgroups and a partial last row of rows per invocation, attention dropout
// (training), whose mask must be the one lib/ops/dropout.ts draws for the probabilities, and
// queries at the first Sq positions only (the [CLS]-only last layer: the reference is the full
// attention with G zero at the other rows, whose outputs are compared at the query rows).
import { assert, assertClose, attentionProbsRef, maxAbs } from "./helpers.ts";
import { getGpu } from "../lib/gpu/context.ts";
import { type AttentionDropout, fusedAttentionSaving } from "../lib/ops/attention.ts";
import { dropout } from "../lib/ops/dropout.ts";
import { attentionDelta, fusedAttentionBackward } from "../lib/ops/attention_backward.ts";
import { kernelClass } from "../lib/ops/kernel_class.ts";

function rand(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

interface Case {
  B: number;
  S: number;
  H: number;
  dh: number;
  mode: "bert" | "distilbert";
}

/** Probabilities of (b, h) in float64 (tests/helpers.ts). */
function probs(qkv: ArrayLike<number>, keyMask: Float32Array, c: Case, b: number, h: number) {
  return attentionProbsRef(qkv, keyMask, c.S, c.H, c.dh, c.mode, b, h);
}

/** Reference forward: merged masked context, context before the mask, loss Σ G ∘ merged. */
function forwardRef(
  qkv: ArrayLike<number>,
  keyMask: Float32Array,
  headMask: Float32Array | undefined,
  G: Float32Array,
  c: Case,
  drop?: Float32Array,
) {
  const { B, S, H, dh } = c;
  const W = 3 * H * dh;
  const ctx = new Float64Array(B * S * H * dh), merged = new Float64Array(B * S * H * dh);
  let loss = 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const { P } = probs(qkv, keyMask, c, b, h);
      const f = headMask ? headMask[b * H + h] : 1;
      for (let i = 0; i < S; i++) {
        for (let k = 0; k < dh; k++) {
          let acc = 0;
          for (let j = 0; j < S; j++) {
            const dm = drop ? drop[((b * H + h) * S + i) * S + j] : 1;
            acc += P[i * S + j] * dm * qkv[(b * S + j) * W + (2 * H + h) * dh + k];
          }
          const o = (b * S + i) * H * dh + h * dh + k;
          ctx[o] = acc;
          merged[o] = acc * f;
          loss += G[o] * merged[o];
        }
      }
    }
  }
  return { ctx, merged, loss };
}

/** Reference gradients of loss = Σ G ∘ merged: dqkv and ∂loss/∂headMask. */
function backwardRef(
  qkv: ArrayLike<number>,
  keyMask: Float32Array,
  headMask: Float32Array | undefined,
  G: Float32Array,
  c: Case,
  drop?: Float32Array,
) {
  const { B, S, H, dh } = c;
  const W = 3 * H * dh, scale = 1 / Math.sqrt(dh);
  const dqkv = new Float64Array(B * S * W), dhm = new Float64Array(B * H);
  const { ctx } = forwardRef(qkv, keyMask, headMask, G, c, drop);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const { P, fill } = probs(qkv, keyMask, c, b, h);
      const f = headMask ? headMask[b * H + h] : 1;
      const q = (i: number, k: number) => qkv[(b * S + i) * W + h * dh + k];
      const kk = (j: number, k: number) => qkv[(b * S + j) * W + (H + h) * dh + k];
      const v = (j: number, k: number) => qkv[(b * S + j) * W + (2 * H + h) * dh + k];
      const mo = (i: number, k: number) => (b * S + i) * H * dh + h * dh + k;
      const dO = (i: number, k: number) => f * G[mo(i, k)];
      for (let i = 0; i < S; i++) {
        for (let k = 0; k < dh; k++) dhm[b * H + h] += G[mo(i, k)] * ctx[mo(i, k)];
      }
      // the dropout factor of probability (i, j): 0 or 1/(1 − p)
      const dm = (i: number, j: number) => drop ? drop[((b * H + h) * S + i) * S + j] : 1;
      const dS = new Float64Array(S * S);
      for (let i = 0; i < S; i++) {
        const dP = new Float64Array(S);
        let dot = 0;
        for (let j = 0; j < S; j++) {
          for (let k = 0; k < dh; k++) dP[j] += dO(i, k) * v(j, k);
          dP[j] *= dm(i, j);
          dot += P[i * S + j] * dP[j];
        }
        for (let j = 0; j < S; j++) {
          dS[i * S + j] = fill[i * S + j] ? 0 : P[i * S + j] * (dP[j] - dot) * scale;
        }
      }
      for (let i = 0; i < S; i++) {
        for (let k = 0; k < dh; k++) {
          let dq = 0, dk = 0, dv = 0;
          for (let j = 0; j < S; j++) {
            dq += dS[i * S + j] * kk(j, k);
            dk += dS[j * S + i] * q(j, k);
            dv += P[j * S + i] * dm(j, i) * dO(j, k);
          }
          dqkv[(b * S + i) * W + h * dh + k] = dq;
          dqkv[(b * S + i) * W + (H + h) * dh + k] = dk;
          dqkv[(b * S + i) * W + (2 * H + h) * dh + k] = dv;
        }
      }
    }
  }
  return { dqkv, dhm };
}

function inputs(c: Case, allMaskedLast: boolean, withHeadMask: boolean) {
  const { B, S, H, dh } = c;
  const r = rand(B * 1000 + S * 10 + H + dh);
  const qkv = Float32Array.from({ length: B * S * 3 * H * dh }, () => 3 * r());
  const keyMask = new Float32Array(B * S);
  for (let b = 0; b < B; b++) {
    const real = allMaskedLast && b === B - 1 ? 0 : Math.max(1, S - 3 * b);
    for (let j = 0; j < real; j++) keyMask[b * S + j] = 1;
  }
  const headMask = withHeadMask
    ? Float32Array.from({ length: B * H }, (_, i) => i % 3 === 1 ? 0 : 0.5 + i / 7)
    : undefined;
  const G = Float32Array.from({ length: B * S * H * dh }, () => 2 * r());
  return { qkv, keyMask, headMask, G };
}

Deno.test("reference attention gradient equals central finite differences of the reference forward", () => {
  for (
    const [mode, withDrop] of [["bert", false], ["distilbert", false], ["bert", true]] as const
  ) {
    const c: Case = { B: 2, S: 5, H: 2, dh: 4, mode };
    const { qkv, keyMask, headMask, G } = inputs(c, false, true);
    const x = Float64Array.from(qkv);
    // a fixed dropout pattern (factors 0 or 1/(1 − 0.3)) on the probabilities
    const drop = withDrop
      ? Float32Array.from({ length: 2 * 2 * 5 * 5 }, (_, i) => (i * 7) % 5 === 1 ? 0 : 1 / 0.7)
      : undefined;
    const forwardRef_ = (q: ArrayLike<number>, hm: Float32Array) =>
      forwardRef(q, keyMask, hm, G, c, drop);
    const { dqkv, dhm } = backwardRef(x, keyMask, headMask, G, c, drop);
    const eps = 1e-6;
    for (let t = 0; t < x.length; t += 3) {
      const x0 = x[t];
      x[t] = x0 + eps;
      const lp = forwardRef_(x, headMask!).loss;
      x[t] = x0 - eps;
      const lm = forwardRef_(x, headMask!).loss;
      x[t] = x0;
      const fd = (lp - lm) / (2 * eps);
      assert(
        Math.abs(fd - dqkv[t]) < 1e-6 * Math.max(1, Math.abs(fd)),
        `${mode} ${withDrop} dqkv[${t}]`,
      );
    }
    for (let t = 0; t < headMask!.length; t++) {
      const hp = Float32Array.from(headMask!), hm = Float32Array.from(headMask!);
      hp[t] += 0.25;
      hm[t] -= 0.25; // the loss is linear in the head mask
      const fd = (forwardRef_(x, hp).loss - forwardRef_(x, hm).loss) / (hp[t] - hm[t]); // f32 step
      assert(
        Math.abs(fd - dhm[t]) < 1e-9 * Math.max(1, Math.abs(fd)),
        `${mode} ${withDrop} dhm[${t}]: ${fd} vs ${dhm[t]}`,
      );
    }
  }
});

/** The rows of `x` [B·S, w] at the first Sq positions of each sequence: [B·Sq, w]. */
function queryRowsOf(x: ArrayLike<number>, B: number, S: number, Sq: number, w: number) {
  const out = new Float64Array(B * Sq * w);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < Sq * w; i++) out[b * Sq * w + i] = x[b * S * w + i];
  }
  return out;
}

Deno.test("fused attention backward equals the float64 gradient (both mask modes, head widths 16/32/64, padding, fully masked example, head masks, attention dropout, first-Sq queries)", async () => {
  const gpu = await getGpu();
  if (kernelClass(gpu) !== "cpu") return; // the kernels only run on CPU adapters
  type Q = { allMasked: boolean; hm: boolean; drop?: AttentionDropout; queries?: number };
  const cases: (Case & Q)[] = [
    { B: 3, S: 37, H: 3, dh: 32, mode: "bert", allMasked: true, hm: true },
    { B: 2, S: 19, H: 2, dh: 64, mode: "distilbert", allMasked: false, hm: false },
    { B: 2, S: 70, H: 1, dh: 32, mode: "distilbert", allMasked: true, hm: false },
    { B: 2, S: 13, H: 2, dh: 16, mode: "bert", allMasked: false, hm: true },
    {
      B: 3,
      S: 37,
      H: 3,
      dh: 32,
      mode: "bert",
      allMasked: true,
      hm: true,
      drop: { p: 0.1, seed: 77 },
    },
    {
      B: 2,
      S: 21,
      H: 2,
      dh: 64,
      mode: "distilbert",
      allMasked: false,
      hm: true,
      drop: { p: 0.35, seed: 4_000_000_001 },
    },
    {
      B: 3,
      S: 37,
      H: 3,
      dh: 32,
      mode: "bert",
      allMasked: true,
      hm: true,
      drop: { p: 0.1, seed: 78 },
      queries: 1,
    },
    { B: 2, S: 21, H: 2, dh: 64, mode: "distilbert", allMasked: false, hm: true, queries: 5 },
    { B: 2, S: 13, H: 2, dh: 16, mode: "bert", allMasked: false, hm: false, queries: 1 },
    {
      B: 11,
      S: 9,
      H: 2,
      dh: 16,
      mode: "distilbert",
      allMasked: true,
      hm: true,
      drop: { p: 0.2, seed: 5 },
      queries: 1,
    },
  ];
  for (const c of cases) {
    const { B, S, H, dh, mode } = c;
    const Sq = c.queries ?? S;
    const { qkv, keyMask, headMask, G } = inputs(c, c.allMasked, c.hm);
    // the gradient reaches the query rows only
    for (let b = 0; b < B; b++) G.fill(0, (b * S + Sq) * H * dh, (b + 1) * S * H * dh);
    const shape = { B, S, H, dh, scale: 1 / Math.sqrt(dh), mode, queries: c.queries };
    const tq = gpu.upload(qkv, [B * S, 3 * H * dh]);
    const tm = gpu.upload(keyMask, [B, S]);
    const th = headMask ? gpu.upload(headMask, [B * H]) : undefined;
    const tg = gpu.upload(Float32Array.from(queryRowsOf(G, B, S, Sq, H * dh)), [B * Sq, H * dh]);
    // the unfused path's dropout of the probabilities [B·H, S, S]: its factors on a tensor of ones
    let drop: Float32Array | undefined;
    if (c.drop) {
      const ones = gpu.upload(new Float32Array(B * H * S * S).fill(1));
      const f = dropout(ones, c.drop.p, c.drop.seed);
      drop = await f.read();
      ones.release();
      f.release();
    }
    const saved = fusedAttentionSaving(tq, tm, th, shape, c.drop);
    assert(saved, `saving attention did not apply to ${JSON.stringify(c)}`);
    const { delta, headGrad } = attentionDelta(tg, saved.ctx, th, shape);
    // leave a NaN-filled buffer of dqkv's size in the pool: every value of dqkv must be written
    gpu.upload(new Float32Array(B * S * 3 * H * dh).fill(NaN), [B * S, 3 * H * dh]).release();
    const dqkv = fusedAttentionBackward(
      { qkv: tq, ctx: saved.ctx, stats: saved.stats },
      tg,
      delta,
      tm,
      th,
      shape,
      c.drop,
    );
    const label = JSON.stringify(c);
    const ref = forwardRef(qkv, keyMask, headMask, G, c, drop);
    const refMerged = queryRowsOf(ref.merged, B, S, Sq, H * dh);
    const refCtx = queryRowsOf(ref.ctx, B, S, Sq, H * dh);
    const got = await saved.merged.read();
    assertClose(got, refMerged, 1e-5 * Math.max(1, maxAbs(refMerged)), 1e-5, `${label} merged`);
    const gotCtx = await saved.ctx.read();
    assertClose(gotCtx, refCtx, 1e-5 * Math.max(1, maxAbs(refCtx)), 1e-5, `${label} ctx`);
    const g = backwardRef(qkv, keyMask, headMask, G, c, drop);
    const gotHm = await headGrad.read();
    assertClose(gotHm, g.dhm, 1e-4 * Math.max(1, maxAbs(g.dhm)), 1e-4, `${label} head grad`);
    const gotD = await dqkv.read();
    assertClose(gotD, g.dqkv, 1e-4 * Math.max(1, maxAbs(g.dqkv)), 1e-4, `${label} dqkv`);
    for (
      const t of [tq, tm, th, tg, saved.merged, saved.ctx, saved.stats, delta, headGrad, dqkv]
    ) t?.release();
  }
});
