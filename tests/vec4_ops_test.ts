/**
 * The vec4 twins of the elementwise, mask and head-layout kernels (used when rows are multiples
 * of 4 values) against plain JavaScript references, next to their scalar entries (odd widths),
 * with the entry each call ran asserted.
 * @module
 */
import { assertClose, assertEquals } from "./helpers.ts";
import { getGpu } from "../lib/gpu/context.ts";
import type { Tensor } from "../lib/gpu/tensor.ts";
import { axpby, mul } from "../lib/ops/elementwise.ts";
import { scaleColsGrouped, scaleRows } from "../lib/ops/masks.ts";
import { mergeHeads, splitHeads, splitHeadsBackward } from "../lib/ops/heads.ts";
import { Pcg32 } from "../lib/util/pcg32.ts";

function rand(n: number, seed: number): Float32Array {
  const r = new Pcg32(seed);
  return Float32Array.from({ length: n }, () => r.nextU32() / 2 ** 31 - 1);
}

/** Runs `f`, returns its result and the entry points it dispatched. */
async function entries<T>(f: () => T): Promise<[T, string[]]> {
  const gpu = await getGpu();
  gpu.startRecording();
  const r = f();
  return [r, gpu.stopRecording().map((d) => d.entry)];
}

async function read(t: Tensor): Promise<Float32Array> {
  const v = await t.read();
  t.release();
  return v;
}

Deno.test("axpby and mul: vec4 entries for sizes of a multiple of 4, in place too; scalar ones otherwise", async () => {
  const gpu = await getGpu();
  for (const [n, suffix] of [[24, "4"], [23, ""]] as const) {
    const av = rand(n, 1), bv = rand(n, 2);
    const a = gpu.upload(av), b = gpu.upload(bv);
    const [y, e1] = await entries(() => axpby(a, b, 0.5, -2));
    assertEquals(e1, [`axpby${suffix}`]);
    assertClose(await read(y), av.map((v, i) => 0.5 * v - 2 * bv[i]), 1e-6, 1e-6, `axpby n=${n}`);
    const [z, e2] = await entries(() => mul(a, b, 3));
    assertEquals(e2, [`mul${suffix}`]);
    assertClose(await read(z), av.map((v, i) => 3 * v * bv[i]), 1e-6, 1e-6, `mul n=${n}`);
    axpby(a, b, 1, 1, a); // in place: a += b
    assertClose(await read(a), av.map((v, i) => v + bv[i]), 1e-6, 1e-6, `a += b n=${n}`);
    b.release();
  }
});

Deno.test("scaleRows and scaleColsGrouped: vec4 entries for rows of a multiple of 4 values", async () => {
  const gpu = await getGpu();
  for (const [C, suffix] of [[8, "4"], [6, ""]] as const) {
    const [G, T] = [3, 5], R = G * T;
    const xv = rand(R * C, C), sr = rand(R, C + 1), sc = rand(G * C, C + 2);
    const x = gpu.upload(xv, [R, C]), s1 = gpu.upload(sr), s2 = gpu.upload(sc, [G, C]);
    const [y, e1] = await entries(() => scaleRows(x, s1));
    assertEquals(e1, [`scale_rows${suffix}`]);
    const want1 = xv.map((v, i) => v * sr[Math.floor(i / C)]);
    assertClose(await read(y), want1, 1e-6, 1e-6, `scaleRows C=${C}`);
    const [z, e2] = await entries(() => scaleColsGrouped(x, s2, T));
    assertEquals(e2, [`scale_cols_grouped${suffix}`]);
    const want2 = xv.map((v, i) => v * sc[Math.floor(i / C / T) * C + (i % C)]);
    assertClose(await read(z), want2, 1e-6, 1e-6, `scaleColsGrouped C=${C}`);
    for (const t of [x, s1, s2]) t.release();
  }
});

Deno.test("head split/merge: vec4 entries when head width, row width and offset are multiples of 4", async () => {
  const gpu = await getGpu();
  const [B, S, H] = [2, 3, 2];
  for (const [dh, off, suffix] of [[8, 4, "4"], [8, 2, ""], [6, 0, ""]] as const) {
    const W = off + 3 * H * dh; // a packed Q/K/V-like row with a leading offset block
    const xv = rand(B * S * W, dh + off);
    const x = gpu.upload(xv, [B * S, W]);
    const at = (b: number, h: number, s: number, k: number) =>
      xv[(b * S + s) * W + off + h * dh + k];
    const want = new Float32Array(B * H * S * dh);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let s = 0; s < S; s++) {
          for (let k = 0; k < dh; k++) want[((b * H + h) * S + s) * dh + k] = at(b, h, s, k);
        }
      }
    }
    const [heads, e1] = await entries(() => splitHeads(x, B, S, H, dh, off));
    assertEquals(e1, [`split${suffix}`]);
    const hv = await heads.read();
    assertClose(hv, want, 0, 0, `split dh=${dh} off=${off}`);
    // merge (offset 0, width H·dh) puts the heads back side by side
    const [merged, e2] = await entries(() => mergeHeads(heads, B, S, H));
    assertEquals(e2, [`merge${dh % 4 === 0 ? "4" : ""}`]);
    const mv = await read(merged);
    for (let r = 0; r < B * S; r++) {
      for (let c = 0; c < H * dh; c++) {
        assertEquals(mv[r * H * dh + c], xv[r * W + off + c], `merge row ${r} col ${c}`);
      }
    }
    // splitHeadsBackward writes only its block: the other columns keep their values
    const dx = gpu.upload(new Float32Array(B * S * W).fill(7), [B * S, W]);
    const [, e3] = await entries(() => splitHeadsBackward(heads, dx, B, S, H, dh, off));
    assertEquals(e3, [`merge${suffix}`]);
    const dv = await read(dx);
    for (let r = 0; r < B * S; r++) {
      for (let c = 0; c < W; c++) {
        const inBlock = c >= off && c < off + H * dh;
        assertEquals(dv[r * W + c], inBlock ? xv[r * W + c] : 7, `dx row ${r} col ${c}`);
      }
    }
    heads.release();
    x.release();
  }
});
