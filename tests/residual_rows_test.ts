// The masked residual target of mask tuning (lib/ops/residual_rows.ts) against a float64
// reference: (t − x − bias)·rowMask, on the texture path (C % 4 == 0, a partial last texture row)
// and the fallback chain (C % 4 != 0).
import { assertClose, assertEquals } from "./helpers.ts";
import { getGpu } from "../lib/gpu/context.ts";
import { residualRows } from "../lib/ops/residual_rows.ts";

Deno.test("residualRows equals (t − x − bias)·rowMask in float64 (texture path and fallback)", async () => {
  const gpu = await getGpu();
  for (const [R, C] of [[37, 16], [5, 6], [300, 128]]) {
    let s = R * 131 + C;
    const r = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 4;
    const t = Float32Array.from({ length: R * C }, r);
    const x = Float32Array.from({ length: R * C }, r);
    const b = Float32Array.from({ length: C }, r);
    const m = Float32Array.from({ length: R }, (_, i) => (i % 4 === 1 ? 0 : 1));
    const ref = Float64Array.from({ length: R * C }, (_, i) => {
      const row = Math.floor(i / C), c = i % C;
      return (t[i] - x[i] - b[c]) * m[row];
    });
    const ts = [gpu.upload(t, [R, C]), gpu.upload(x, [R, C]), gpu.upload(b, [C]), gpu.upload(m)];
    gpu.startRecording();
    const out = residualRows(ts[0], ts[1], ts[2], ts[3]);
    const entries = gpu.stopRecording().map((d) => d.entry);
    assertEquals(entries.includes("residual_rows"), C % 4 === 0, `[${R}, ${C}] path`);
    assertClose(await out.read(), ref, 1e-6, 1e-6, `[${R}, ${C}]`);
    for (const v of [...ts, out]) v.release();
  }
});
