/**
 * WGSL of the unrolled fused-attention entries (`attention_r<R>_d<D>`), generated on demand for
 * the common head widths dh = 4·D with D ∈ {4, 8, 16}. They share kernels/attention.wgsl's
 * header (parameters, bindings, `texel`) and its masking and online-softmax arithmetic; what
 * differs is the shape of the code:
 * - everything is unrolled into named variables: no private arrays and no loops over the head
 *   width (Mesa llvmpipe keeps private arrays in memory and runs every loop under an execution
 *   mask);
 * - the keys are taken KB = 2 at a time: the block's scores, one running-max update and one
 *   rescale of the accumulators per block, then the block's values; the last key of an odd S on
 *   its own. The block's exponentials are summed before they join the running sum, so results agree
 *   with the generic entries to fp32 rounding, not bit for bit;
 * - they run in workgroups of 8 (one llvmpipe SIMD batch at 256 bits), and `unrolledRows` picks
 *   the smallest R that puts a whole sequence's rows into one batch: llvmpipe fetches each K/V
 *   texel once per batch for all its lanes, so the fetches per query row fall as R grows;
 * - the queries can be the first Sq positions of each sequence only (parameter Sq ≤ S; the
 *   [CLS]-only last layer of a classifier has Sq = 1): the outputs then hold B·Sq rows, row
 *   b·Sq + i for query i of sequence b, while the keys and values are still all S positions. For
 *   Sq = 1 the entries `attention_q1_d<D>` (R = 1) put 8 sequences in a workgroup, one per lane
 *   (grid x = ⌈B / 8⌉, y = H): the K/V texels then differ per lane, but each batch fetch serves 8
 *   queries rather than the one a row-group entry would have left active.
 *
 * Idle micro-benchmarks (session 8, llvmpipe 256 bits, median of 9 marginal timings, same run).
 * Generic entry → this one at B = 32, S = 128: dh = 32 (H = 4) 34.3 → 21.0 ms (r16_d8, KB = 4,
 * before the R·D cap); dh = 16 (H = 8) 34.1 → 20.9 ms (r16_d4; r32_d4 33.1); S = 64, dh = 32:
 * 11.2 → 8.8 ms (r8_d8). The block size and the cap trade speed for LLVM compile time (first call,
 * Mesa's shader cache off; 32 × 128 × 4 × 32 and 8 × 128 × 12 × 64):
 *   generic                0.7 / 0.9 s compile, 36.8 / 72.6 ms
 *   R·D ≤ 64,  KB = 1, 2, 4 1.7–2.7 s, 27.4 / 50.4, 26.3 / 47.8, 25.1 / 43.2 ms
 *   R·D ≤ 128, KB = 1      4.0 / 5.5 s, 25.1 / 37.3 ms
 *   R·D ≤ 128, KB = 2      7.1 / 6.2 s, 21.2 / 33.6 ms (chosen)
 *   R·D ≤ 128, KB = 4      9.2 / 8.3 s, 21.8 / 32.9 ms
 * Mesa keeps compiled shaders in its disk cache (~/.cache/mesa_shader_cache), so the compile is
 * paid once per machine and shape. Variants that lost: key blocks with the head width in arrays
 * (generic r4, KB = 4: 55 ms), K/V read from a storage buffer (147 ms) or staged in workgroup
 * memory (174 ms) instead of the texture.
 * @module
 */
import src from "../../kernels/attention.wgsl" with { type: "text" };
import hash from "../../kernels/dropout_hash.wgsl" with { type: "text" };

/** Keys per block in the unrolled entries. */
const KB = 2;

/** Head widths / 4 that have unrolled entries. */
export const UNROLLED_DH4: readonly number[] = [4, 8, 16];

/** Invocations per workgroup of the unrolled entries (one llvmpipe SIMD batch). */
export const UNROLLED_WG = 8;

/**
 * Query rows per invocation of the unrolled entry for sequence length S and head width 4·dh4:
 * the smallest of 2, 4, 8, 16 with ⌈S / R⌉ ≤ `UNROLLED_WG`, capped so that R·dh4 ≤ 128 (beyond,
 * the live queries and accumulators spill: r32_d4 was 1.6x slower than r16_d4).
 */
export function unrolledRows(S: number, dh4: number): number {
  const cap = Math.min(16, 128 / dh4);
  let R = 2;
  while (R < cap && Math.ceil(S / R) > UNROLLED_WG) R *= 2;
  return R;
}

/** kernels/attention.wgsl up to its first entry point: parameters, bindings, `texel`. */
const HEADER = src.slice(0, src.indexOf("@compute"));

const cache = new Map<string, string>();

/**
 * Bindings 5 and 6 of the saving entries (`attention_r<R>_d<D>_save`): the context before the
 * head mask, [B·Sq, H·dh] like `out`, and each query row's softmax statistics (running max m,
 * 1 / Σ exp(s − m)) at (b·H + h)·Sq + i — what lib/ops/attention_backward.ts needs to recompute
 * the probabilities; and their attention dropout (override DROPOUT; seed, threshold and scale in
 * the parameters), which draws the unfused path's mask for the probabilities [B·H, S, S].
 */
const SAVE_BINDINGS = `
@group(0) @binding(5) var<storage, read_write> ctxOut: array<vec4<f32>>; // [B·Sq, H·dh / 4]
@group(0) @binding(6) var<storage, read_write> stats: array<vec2<f32>>; // [B·H·Sq]: (m, 1 / l)

// Attention dropout (training): probability i of [B·H, S, S] kept with dropKeep's mask, scaled.
override DROPOUT: bool = false;

fn dropped(e: f32, i: u32) -> f32 {
  if (DROPOUT) {
    return select(0.0, e * p.keepScale, dropKeep(p.seed, p.threshold, i));
  }
  return e;
}
`;

/** Entry point name of the unrolled attention for R rows, D = dh/4 (`q1`: one query per lane). */
export function unrolledEntryName(R: number, D: number, save = false, q1 = false): string {
  return `attention_${q1 ? "q1" : `r${R}`}_d${D}${save ? "_save" : ""}`;
}

/**
 * WGSL source (shared header + one entry point `attention_r<R>_d<D>`, or with `save`
 * `attention_r<R>_d<D>_save`) for R rows and D = dh/4; with `q1` the single-query entry
 * `attention_q1_d<D>[_save]` (R = 1, lanes over sequences).
 */
export function unrolledAttentionSource(R: number, D: number, save = false, q1 = false): string {
  const key = `${R}_${D}_${save}_${q1}`;
  let s = cache.get(key);
  if (!s) {
    s = HEADER + (save ? hash + SAVE_BINDINGS : "") + unrolledEntry(q1 ? 1 : R, D, save, q1);
    cache.set(key, s);
  }
  return s;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * Appends the key-mask terms of the key at `index` (kernels/attention.wgsl's masking), named by
 * `suffix`, to the generated lines `L` (also used by lib/ops/attention_backward.ts).
 */
export function maskLines(L: string[], suffix: string, index: string): void {
  L.push(`    let km${suffix} = keyMask[b * p.S + ${index}];`);
  L.push(`    var add${suffix} = 0.0;`);
  L.push(`    if (p.mode == 0u) {`);
  L.push(`      add${suffix} = (1.0 - km${suffix}) * F32_MIN;`);
  L.push(`    }`);
  L.push(`    let fill${suffix} = p.mode != 0u && km${suffix} == 0.0;`);
}

/**
 * Appends the opening of a query-row entry to the generated lines `L` (also used by
 * lib/ops/attention_backward.ts): its first query row i0, head h and sequence b, returning early
 * past the queries. Row-group entries (R rows per lane, lanes along the rows of one sequence;
 * grid x = ⌈Sq / (8·R)⌉, y = H, z = B) or, with `q1`, single-query ones (i0 = 0, one sequence per
 * lane; grid x = ⌈B / 8⌉, y = H).
 */
export function queryPrologue(L: string[], R: number, q1: boolean): void {
  if (q1) {
    L.push(`  let i0 = 0u;`, `  let h = wid.y;`, `  let b = gid.x;`);
    L.push(`  if (b >= p.nB) {`, `    return;`, `  }`);
  } else {
    L.push(`  let i0 = ${R}u * gid.x;`, `  let h = wid.y;`, `  let b = wid.z;`);
    L.push(`  if (i0 >= p.Sq) {`, `    return;`, `  }`);
  }
}

/**
 * One step of the online softmax over the keys j + k, k ∈ `ks` (their block-local suffixes):
 * fetch their K texels, scores, one max and rescale per row, fetch their V texels, accumulate.
 */
function stepLines(L: string[], R: number, D: number, ks: readonly string[], save: boolean): void {
  const rs = range(R), cs = range(D);
  for (const k of ks) {
    for (const c of cs) L.push(`    let k${k}_${c} = texel(kBase + ${k}u * p.rowTexels + ${c}u);`);
  }
  ks.forEach((k) => maskLines(L, k, `j + ${k}u`));
  for (const r of rs) {
    for (const k of ks) {
      const dots = cs.map((c) => `dot(q${r}_${c}, k${k}_${c})`).join(" + ");
      L.push(`    let t${r}_${k} = select((${dots}) * p.scale + add${k}, F32_MIN, fill${k});`);
    }
    const mx = ks.slice(1).reduce((acc, k) => `max(${acc}, t${r}_${k})`, `t${r}_${ks[0]}`);
    L.push(`    let n${r} = max(m${r}, ${mx});`);
    L.push(`    let c${r} = exp(m${r} - n${r});`);
    for (const k of ks) L.push(`    let e${r}_${k} = exp(t${r}_${k} - n${r});`);
    L.push(`    l${r} = l${r} * c${r} + (${ks.map((k) => `e${r}_${k}`).join(" + ")});`);
    L.push(`    m${r} = n${r};`);
    // the saving entries' attention dropout acts on the probabilities, after the normalisation:
    // the sum l keeps every key, the context only the kept ones
    if (save) {
      for (const k of ks) L.push(`    let e${r}_${k}d = dropped(e${r}_${k}, pi${r} + j + ${k}u);`);
    }
  }
  L.push(`    let vBase = kBase + p.H * ${D}u;`);
  for (const c of cs) {
    for (const k of ks) L.push(`    let v${k}_${c} = texel(vBase + ${k}u * p.rowTexels + ${c}u);`);
    for (const r of rs) {
      const terms = ks.map((k) => `e${r}_${k}${save ? "d" : ""} * v${k}_${c}`).join(" + ");
      L.push(`    a${r}_${c} = a${r}_${c} * c${r} + ${terms};`);
    }
  }
}

function unrolledEntry(R: number, D: number, save: boolean, q1: boolean): string {
  const L: string[] = [];
  L.push(`@compute @workgroup_size(${UNROLLED_WG})`);
  L.push(
    `fn ${
      unrolledEntryName(R, D, save, q1)
    }(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {`,
  );
  queryPrologue(L, R, q1);
  for (const r of range(R)) {
    L.push(`  let qb${r} = (b * p.S + min(i0 + ${r}u, p.Sq - 1u)) * p.rowTexels + h * ${D}u;`);
    for (const c of range(D)) {
      L.push(`  let q${r}_${c} = texel(qb${r} + ${c}u);`);
      L.push(`  var a${r}_${c} = vec4<f32>(0.0);`);
    }
    L.push(`  var m${r} = F32_MIN;`, `  var l${r} = 0.0;`);
    // index of the row's first probability in [B·H, S, S] (the dropout hash's counter)
    if (save) L.push(`  let pi${r} = ((b * p.H + h) * p.S + i0 + ${r}u) * p.S;`);
  }
  // whole blocks of KB keys, then the last S mod KB keys one at a time
  L.push(`  let nFull = p.S - p.S % ${KB}u;`);
  L.push(`  for (var j = 0u; j < nFull; j += ${KB}u) {`);
  L.push(`    let kBase = (b * p.S + j) * p.rowTexels + (p.H + h) * ${D}u;`);
  stepLines(L, R, D, range(KB).map(String), save);
  L.push(`  }`);
  L.push(`  for (var j = nFull; j < p.S; j++) {`);
  L.push(`    let kBase = (b * p.S + j) * p.rowTexels + (p.H + h) * ${D}u;`);
  stepLines(L, R, D, ["0"], save);
  L.push(`  }`);
  L.push(
    `  var hm = 1.0;`,
    `  if (p.hasHeadMask != 0u) {`,
    `    hm = headMask[b * p.H + h];`,
    `  }`,
  );
  for (const r of range(R)) {
    L.push(`  if (i0 + ${r}u < p.Sq) {`);
    L.push(`    let f${r} = hm / l${r};`);
    L.push(`    let o${r} = (b * p.Sq + i0 + ${r}u) * p.H * ${D}u + h * ${D}u;`);
    for (const c of range(D)) L.push(`    out[o${r} + ${c}u] = a${r}_${c} * f${r};`);
    if (save) {
      L.push(`    let il${r} = 1.0 / l${r};`);
      for (const c of range(D)) L.push(`    ctxOut[o${r} + ${c}u] = a${r}_${c} * il${r};`);
      L.push(`    stats[(b * p.H + h) * p.Sq + i0 + ${r}u] = vec2<f32>(m${r}, il${r});`);
    }
    L.push(`  }`);
  }
  L.push(`}`);
  return L.join("\n") + "\n";
}
