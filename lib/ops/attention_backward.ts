/**
 * Fused attention backward for CPU adapters (kernels/attention_backward.wgsl and
 * kernels/attention_delta.wgsl): from the saving forward's packed projection qkv, context before
 * the head mask and softmax statistics (`fusedAttentionSaving` in lib/ops/attention.ts), the
 * gradient of the packed projection dqkv [B·S, 3·H·dh] and the per-example head-mask gradient —
 * without the [B·H, S, S] probabilities, the head split/merge layouts and the batched products of
 * the unfused backward (lib/model/encoder.ts keeps that path for GPUs and for head widths without
 * unrolled entries). Attention dropout (training) is redrawn in the kernels from the forward's
 * seed (kernels/dropout_hash.wgsl).
 *
 * The dq and dkv entries are generated unrolled, like the forward's (lib/ops/attention_unrolled.ts):
 * named variables instead of private arrays, R rows per invocation in workgroups of 8 (one
 * llvmpipe SIMD batch), so each streamed K/V (dq) or Q/G (dkv) texel the batch fetches serves 8·R
 * rows. Scores are recomputed with the forward's expression, so the probabilities equal the
 * forward's to the rounding of one exponential.
 * @module
 */
import header from "../../kernels/attention_backward.wgsl" with { type: "text" };
import hash from "../../kernels/dropout_hash.wgsl" with { type: "text" };
import deltaSrc from "../../kernels/attention_delta.wgsl" with { type: "text" };
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import { f32Bits, type KernelSpec } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import {
  type AttentionDropout,
  dropoutParams,
  fusedAttentionSavingApplies,
  type FusedAttentionShape,
  queryRows,
} from "./attention.ts";
import { maskLines, queryPrologue, UNROLLED_WG } from "./attention_unrolled.ts";
import { flatTexture } from "./flat_texture.ts";

/**
 * Rows per invocation of the dq and dkv entries for sequence length S and head width 4·D: the
 * smallest of 2, 4, 8, 16 with ⌈S / R⌉ ≤ 8 (a whole sequence in one SIMD batch per head), capped
 * at R·D ≤ 64. Idle micro-benchmark (B = 32, S = 128, dq + dkv, marginal ms, 3 medians of 5):
 * dh = 32 (H = 4) R = 4 / 4: 81–101, 8 / 8: 68–71, 16 / 8: 69–72, 8 / 16: 71–74 (and 8 s to
 * compile); dh = 64 (B = 8, H = 12) 2 / 2: 165–187, 4 / 4: 129–139; dh = 16 (H = 8) 8 / 8: 73–76,
 * 16 / 16: 54–64.
 */
export function backwardRows(S: number, D: number): number {
  const cap = Math.min(16, 64 / D);
  let R = 2;
  while (R < cap && Math.ceil(S / R) > UNROLLED_WG) R *= 2;
  return R;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** q·k over the D texels of a head, in the forward's order (same rounding). */
function dots(a: (c: number) => string, b: (c: number) => string, D: number): string {
  return range(D).map((c) => `dot(${a(c)}, ${b(c)})`).join(" + ");
}

/**
 * The dq entry for R query rows per invocation, or with `q1` the one for a single query per
 * sequence (`attention_dq_q1_d<D>`, R = 1): its lanes are 8 sequences rather than 8 row groups of
 * one, so every K/V fetch of the SIMD batch serves 8 queries instead of 1.
 */
function dqEntry(R: number, D: number, q1 = false): string {
  const L: string[] = [];
  L.push(`@compute @workgroup_size(${UNROLLED_WG})`);
  L.push(
    `fn attention_dq_${
      q1 ? "q1" : `r${R}`
    }_d${D}(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {`,
  );
  queryPrologue(L, R, q1);
  L.push(`  let hm = headScale(b, h);`, `  let gRow = p.rowTexels / 3u;`);
  L.push(`  let sb = (b * p.H + h) * p.Sq;`, `  let pb = (b * p.H + h) * p.S;`);
  for (const r of range(R)) {
    L.push(`  let row${r} = min(i0 + ${r}u, p.Sq - 1u);`);
    L.push(`  let qb${r} = (b * p.S + row${r}) * p.rowTexels + h * ${D}u;`);
    L.push(`  let gb${r} = (b * p.Sq + row${r}) * gRow + h * ${D}u;`);
    for (const c of range(D)) {
      L.push(`  let q${r}_${c} = texel(qb${r} + ${c}u);`);
      L.push(`  let g${r}_${c} = gtexel(gb${r} + ${c}u) * hm;`);
      L.push(`  var a${r}_${c} = vec4<f32>(0.0);`);
    }
    L.push(`  let st${r} = stats[sb + row${r}];`, `  let d${r} = delta[sb + row${r}];`);
    L.push(`  let pi${r} = (pb + row${r}) * p.S;`);
  }
  L.push(`  for (var j = 0u; j < p.S; j++) {`);
  L.push(`    let kBase = (b * p.S + j) * p.rowTexels + (p.H + h) * ${D}u;`);
  L.push(`    let vBase = kBase + p.H * ${D}u;`);
  for (const c of range(D)) {
    L.push(`    let k_${c} = texel(kBase + ${c}u);`, `    let v_${c} = texel(vBase + ${c}u);`);
  }
  maskLines(L, "", "j");
  for (const r of range(R)) {
    const qk = dots((c) => `q${r}_${c}`, (c) => `k_${c}`, D);
    L.push(`    let t${r} = select((${qk}) * p.scale + add, F32_MIN, fill);`);
    L.push(`    let e${r} = exp(t${r} - st${r}.x) * st${r}.y;`);
    const gv = dots((c) => `g${r}_${c}`, (c) => `v_${c}`, D);
    // a DistilBERT-filled score is a constant: no gradient (matters only for a row whose keys are
    // all masked, where P is uniform; elsewhere P_ij = 0 at masked keys)
    L.push(`    let kp${r} = keepFactor(pi${r} + j);`);
    L.push(`    let s${r} = select(e${r} * (kp${r} * (${gv}) - d${r}) * p.scale, 0.0, fill);`);
    for (const c of range(D)) L.push(`    a${r}_${c} += s${r} * k_${c};`);
  }
  L.push(`  }`);
  for (const r of range(R)) {
    L.push(`  if (i0 + ${r}u < p.Sq) {`);
    L.push(`    let o${r} = (b * p.S + i0 + ${r}u) * p.rowTexels + h * ${D}u;`);
    for (const c of range(D)) L.push(`    out[o${r} + ${c}u] = a${r}_${c};`);
    L.push(`  }`);
  }
  L.push(`}`);
  return L.join("\n") + "\n";
}

function dkvEntry(R: number, D: number): string {
  const L: string[] = [];
  L.push(`@compute @workgroup_size(${UNROLLED_WG})`);
  L.push(
    `fn attention_dkv_r${R}_d${D}(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {`,
  );
  L.push(`  let j0 = ${R}u * gid.x;`, `  let h = wid.y;`, `  let b = wid.z;`);
  L.push(`  if (j0 >= p.S) {`, `    return;`, `  }`);
  L.push(`  let hm = headScale(b, h);`, `  let gRow = p.rowTexels / 3u;`);
  L.push(`  let sb = (b * p.H + h) * p.Sq;`, `  let pb = (b * p.H + h) * p.S;`);
  for (const r of range(R)) {
    L.push(`  let row${r} = min(j0 + ${r}u, p.S - 1u);`);
    L.push(`  let kb${r} = (b * p.S + row${r}) * p.rowTexels + (p.H + h) * ${D}u;`);
    for (const c of range(D)) {
      L.push(`  let k${r}_${c} = texel(kb${r} + ${c}u);`);
      L.push(`  let v${r}_${c} = texel(kb${r} + p.H * ${D}u + ${c}u);`);
      L.push(`  var dk${r}_${c} = vec4<f32>(0.0);`, `  var dv${r}_${c} = vec4<f32>(0.0);`);
    }
    maskLines(L, `${r}`, `row${r}`);
  }
  L.push(`  for (var i = 0u; i < p.Sq; i++) {`);
  L.push(`    let qb = (b * p.S + i) * p.rowTexels + h * ${D}u;`);
  L.push(`    let gb = (b * p.Sq + i) * gRow + h * ${D}u;`);
  for (const c of range(D)) {
    L.push(`    let q_${c} = texel(qb + ${c}u);`, `    let g_${c} = gtexel(gb + ${c}u) * hm;`);
  }
  L.push(`    let st = stats[sb + i];`, `    let d = delta[sb + i];`);
  for (const r of range(R)) {
    const qk = dots((c) => `q_${c}`, (c) => `k${r}_${c}`, D);
    L.push(`    let t${r} = select((${qk}) * p.scale + add${r}, F32_MIN, fill${r});`);
    L.push(`    let e${r} = exp(t${r} - st.x) * st.y;`);
    L.push(`    let kp${r} = keepFactor((pb + i) * p.S + row${r});`);
    L.push(`    let ed${r} = e${r} * kp${r};`);
    for (const c of range(D)) L.push(`    dv${r}_${c} += ed${r} * g_${c};`);
    const gv = dots((c) => `g_${c}`, (c) => `v${r}_${c}`, D);
    L.push(`    let s${r} = select(e${r} * (kp${r} * (${gv}) - d) * p.scale, 0.0, fill${r});`);
    for (const c of range(D)) L.push(`    dk${r}_${c} += s${r} * q_${c};`);
  }
  L.push(`  }`);
  for (const r of range(R)) {
    L.push(`  if (j0 + ${r}u < p.S) {`);
    L.push(`    let o${r} = (b * p.S + j0 + ${r}u) * p.rowTexels + (p.H + h) * ${D}u;`);
    for (const c of range(D)) {
      L.push(`    out[o${r} + ${c}u] = dk${r}_${c};`);
      L.push(`    out[o${r} + p.H * ${D}u + ${c}u] = dv${r}_${c};`);
    }
    // a position that was no query: the dq entry leaves its Q block, which is zero
    L.push(`    if (j0 + ${r}u >= p.Sq) {`);
    L.push(`      let z${r} = (b * p.S + j0 + ${r}u) * p.rowTexels + h * ${D}u;`);
    for (const c of range(D)) L.push(`      out[z${r} + ${c}u] = vec4<f32>(0.0);`);
    L.push(`    }`);
    L.push(`  }`);
  }
  L.push(`}`);
  return L.join("\n") + "\n";
}

const cache = new Map<string, KernelSpec>();

/** The dq, dkv or single-query dq (`q1`, R = 1) entry's kernel. */
function backwardSpec(
  kind: "dq" | "dkv" | "q1",
  R: number,
  D: number,
  constants: { DROPOUT: number },
): KernelSpec {
  const tag = kind === "q1" ? `dq_q1_d${D}` : `${kind}_r${R}_d${D}`;
  const entry = `attention_${tag}`;
  const key = `${entry}:${constants.DROPOUT}`;
  let spec = cache.get(key);
  if (!spec) {
    const body = kind === "dkv" ? dkvEntry(R, D) : dqEntry(R, D, kind === "q1");
    spec = {
      name: `attention_backward.wgsl+${tag}`,
      source: hash + header + body,
      entry,
      bindings: ["texture", "texture", "read", "read", "read", "read", "rw"],
      constants,
    };
    cache.set(key, spec);
  }
  return spec;
}

const DELTA_SPEC: KernelSpec = {
  name: "attention_delta.wgsl",
  source: deltaSrc,
  entry: "attention_delta",
  bindings: ["texture", "texture", "read", "rw", "rw"],
};

/** What the saving fused forward kept for `fusedAttentionBackward`. */
export interface FusedAttentionSaved {
  /** The packed projection [B·S, 3·H·dh] the forward read. */
  qkv: Tensor;
  /** Context before the head mask, merged [B·Sq, H·dh] (Sq = `s.queries`, default S). */
  ctx: Tensor;
  /** Per query row (b·H + h)·Sq + i: the softmax's max m and 1/l, [B·H·Sq, 2]. */
  stats: Tensor;
}

/** Checks that `t` is a query-side tensor [B·Sq, H·dh] of shape `s`. */
function checkMerged(name: string, t: Tensor, s: FusedAttentionShape): void {
  const rows = s.B * queryRows(s);
  if (t.size !== rows * s.H * s.dh) {
    throw new ShapeError(
      `${name} [${t.shape.join(", ")}] is not [B·Sq = ${rows}, H·dh = ${s.H * s.dh}]`,
    );
  }
}

/**
 * Per-row terms of the backward and the head-mask gradient: from dMerged = ∂loss/∂(merged masked
 * context) [B·Sq, H·dh] and the context before the mask, returns `delta` [B·H·Sq] (hm·r_i with r_i
 * the row's dMerged·ctx over the head's columns) and `headGrad` [B·H] (Σ_i r_i = ∂loss/∂hm[b, h],
 * the per-example head-mask gradient). The caller releases both.
 */
export function attentionDelta(
  dMerged: Tensor,
  ctx: Tensor,
  headMask: Tensor | undefined,
  s: FusedAttentionShape,
): { delta: Tensor; headGrad: Tensor } {
  checkMerged("attentionDelta: dMerged", dMerged, s);
  checkMerged("attentionDelta: ctx", ctx, s);
  const { B, H, dh } = s;
  const Sq = queryRows(s); // the kernel's rows per (b, h): the query rows
  if (headMask && headMask.size !== B * H) {
    throw new ShapeError(`attentionDelta: headMask has ${headMask.size} values, expected ${B * H}`);
  }
  const gpu = dMerged.gpu;
  const g = flatTexture(dMerged), o = flatTexture(ctx);
  const delta = gpu.empty([B * H * Sq]);
  const headGrad = gpu.empty([B * H]);
  gpu.dispatchResources(
    DELTA_SPEC,
    [Sq, H, dh / 4, g.shift, headMask ? 1 : 0, B * H],
    [g.tex, o.tex, headMask ?? dMerged, delta, headGrad],
    [Math.ceil((B * H) / 64)],
  );
  gpu.textures.release(g.tex);
  gpu.textures.release(o.tex);
  return { delta, headGrad };
}

/**
 * ∂loss/∂qkv [B·S, 3·H·dh] of the saving fused forward, from dMerged = ∂loss/∂(merged masked
 * context) and `delta` of `attentionDelta`; `dropout` as the forward had it. With fewer queries
 * than positions (`s.queries`), the Q block is zero at the positions that were no query. Runs where
 * `fusedAttentionSavingApplies` holds (the caller checks). The caller releases the result.
 */
export function fusedAttentionBackward(
  saved: FusedAttentionSaved,
  dMerged: Tensor,
  delta: Tensor,
  keyMask: Tensor,
  headMask: Tensor | undefined,
  s: FusedAttentionShape,
  dropout?: AttentionDropout,
): Tensor {
  const { B, S, H, dh } = s;
  const Sq = queryRows(s);
  const drop = dropoutParams(dropout);
  const gpu = dMerged.gpu;
  if (!fusedAttentionSavingApplies(gpu, s)) {
    throw new InvalidArgumentError(`fusedAttentionBackward: no fused backward for this shape`);
  }
  checkMerged("fusedAttentionBackward: dMerged", dMerged, s);
  checkMerged("fusedAttentionBackward: ctx", saved.ctx, s);
  if (saved.qkv.size !== B * S * 3 * H * dh || saved.stats.size !== 2 * B * H * Sq) {
    throw new ShapeError(`fusedAttentionBackward: saved tensors do not match the shape`);
  }
  if (
    delta.size !== B * H * Sq || keyMask.size !== B * S || (headMask && headMask.size !== B * H)
  ) {
    throw new ShapeError(`fusedAttentionBackward: delta, keyMask or headMask of the wrong size`);
  }
  const D = dh / 4;
  const q = flatTexture(saved.qkv), g = flatTexture(dMerged);
  const dqkv = gpu.empty([B * S, 3 * H * dh]);
  const params = [
    S,
    H,
    3 * H * D,
    q.shift,
    s.mode === "bert" ? 0 : 1,
    f32Bits(s.scale),
    headMask ? 1 : 0,
    g.shift,
    ...drop.params,
    Sq,
    B,
  ];
  const resources = [q.tex, g.tex, keyMask, headMask ?? keyMask, saved.stats, delta, dqkv];
  const rq = backwardRows(Sq, D), rkv = backwardRows(S, D);
  const constants = { DROPOUT: drop.on ? 1 : 0 };
  if (Sq === 1) {
    // one query per sequence: lanes over sequences
    gpu.dispatchResources(backwardSpec("q1", 1, D, constants), params, resources, [
      Math.ceil(B / UNROLLED_WG),
      H,
      1,
    ]);
  } else {
    gpu.dispatchResources(backwardSpec("dq", rq, D, constants), params, resources, [
      Math.ceil(Sq / (UNROLLED_WG * rq)),
      H,
      B,
    ]);
  }
  gpu.dispatchResources(backwardSpec("dkv", rkv, D, constants), params, resources, [
    Math.ceil(S / (UNROLLED_WG * rkv)),
    H,
    B,
  ]);
  gpu.textures.release(q.tex);
  gpu.textures.release(g.tex);
  return dqkv;
}
