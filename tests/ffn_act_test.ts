// The fused FFN activation + per-example mask of CPU adapters (lib/ops/ffn_act.ts) against a
// float64 reference written out here: zm = act(h) ∘ m[b], and the backward dh = act'(h) ∘ m[b] ∘
// dzm with the mask gradient ds[b, c] = Σ_t dzm ∘ act(h) and the bias gradient db[c] = Σ_rows dh
// (GELU with the exact erf, as Hugging Face's "gelu"; ReLU with torch's threshold rule). Covers
// masks with zeros, no mask, one row per example and a flat texture with a partial last row.
import { assert, assertClose, erf, maxAbs } from "./helpers.ts";
import { getGpu } from "../lib/gpu/context.ts";
import { ffnActivation, ffnActivationBackward } from "../lib/ops/ffn_act.ts";
import { kernelClass } from "../lib/ops/kernel_class.ts";

function rand(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
const geluGrad = (x: number) =>
  0.5 * (1 + erf(x / Math.SQRT2)) + x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);

Deno.test("fused FFN activation and mask, forward and backward (mask and bias gradients), equal the float64 reference (GELU, ReLU, masks with zeros, no mask)", async () => {
  const gpu = await getGpu();
  if (kernelClass(gpu) !== "cpu") return; // CPU adapters only
  const cases = [
    { B: 3, S: 5, F: 24, act: "gelu" as const, masked: true },
    { B: 2, S: 1, F: 8, act: "gelu" as const, masked: false },
    { B: 4, S: 7, F: 12, act: "relu" as const, masked: true },
    { B: 2, S: 33, F: 516, act: "gelu" as const, masked: true },
  ];
  for (const c of cases) {
    const { B, S, F, act } = c;
    const r = rand(B * 100 + S * 7 + F);
    const n = B * S * F;
    // pre-activations over GELU's ranges (both tails, the erf pieces' boundaries)
    const h = Float32Array.from({ length: n }, () => 12 * r());
    const dzm = Float32Array.from({ length: n }, () => 2 * r());
    const mask = c.masked
      ? Float32Array.from({ length: B * F }, (_, i) => i % 5 === 2 ? 0 : 1 + r())
      : undefined;
    const f = act === "gelu" ? gelu : (x: number) => Math.max(x, 0);
    const fg = act === "gelu" ? geluGrad : (x: number) => x > 0 ? 1 : 0;
    const zRef = new Float64Array(n), dhRef = new Float64Array(n), dsRef = new Float64Array(B * F);
    const dbRef = new Float64Array(F);
    for (let i = 0; i < n; i++) {
      const row = Math.floor(i / F), col = i % F, b = Math.floor(row / S);
      const m = mask ? mask[b * F + col] : 1;
      zRef[i] = f(h[i]) * m;
      dhRef[i] = fg(h[i]) * m * dzm[i];
      dsRef[b * F + col] += dzm[i] * f(h[i]);
      dbRef[col] += dhRef[i];
    }
    const th = gpu.upload(h, [B * S, F]);
    const td = gpu.upload(dzm, [B * S, F]);
    const tm = mask ? gpu.upload(mask, [B, F]) : undefined;
    const zm = ffnActivation(th, tm, S, act);
    const back = ffnActivationBackward(td, th, tm, S, act, true);
    // without the bias gradient: the same dh, no db
    const noBias = ffnActivationBackward(td, th, tm, S, act);
    assert(zm && back && noBias, `fused FFN activation did not apply to ${JSON.stringify(c)}`);
    const label = JSON.stringify(c);
    assertClose(await zm.read(), zRef, 1e-6 * Math.max(1, maxAbs(zRef)), 1e-6, `${label} zm`);
    assertClose(
      await back.dh.read(),
      dhRef,
      1e-6 * Math.max(1, maxAbs(dhRef)),
      1e-6,
      `${label} dh`,
    );
    if (mask) {
      assert(back.ds, `${label}: no mask gradient`);
      assertClose(
        await back.ds.read(),
        dsRef,
        1e-5 * Math.max(1, maxAbs(dsRef)),
        1e-5,
        `${label} ds`,
      );
    } else assert(!back.ds, `${label}: a mask gradient without a mask`);
    assert(back.db, `${label}: no bias gradient`);
    assertClose(
      await back.db.read(),
      dbRef,
      1e-5 * Math.max(1, maxAbs(dbRef)),
      1e-5,
      `${label} db`,
    );
    assert(!noBias.db, `${label}: a bias gradient not asked for`);
    assertClose(await noBias.dh.read(), dhRef, 1e-6 * Math.max(1, maxAbs(dhRef)), 1e-6, `${label}`);
    for (const t of [th, td, tm, zm, back.dh, back.ds, back.db, noBias.dh, noBias.ds]) t?.release();
  }
});
