/**
 * Fused inference embeddings for CPU adapters: y = LayerNorm(word[ids] + (pos[posIds] +
 * type[typeIds])) in one dispatch, one invocation per row, the row's 4·C4 ≤ 256 values kept in
 * named variables (no private arrays: llvmpipe keeps those in memory and addresses them per lane).
 * The unfused inference path is two gathers (one vec4 per invocation, each paying an index
 * division, an id load and a bounds check) and `addLayerNormInference`, which copies both sums into
 * textures first; here every id is loaded once per row and nothing is written but y.
 *
 * The sum is formed as word + (pos + type), the order of the unfused path (`embeddingGatherSum`
 * then `addLayerNormInference`), and the statistics exactly as kernels/layernorm.wgsl's unrolled
 * entry (lib/ops/layernorm_unrolled.ts): two-pass mean and biased variance, each a vec4 sum in
 * column order, then its components in order; an id outside its table's range contributes a zero
 * row (as `embeddingGather`). Inference only: no statistics are saved, no backward.
 * @module
 */
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import { f32Bits, type KernelSpec, type Resource } from "../gpu/context.ts";
import { shapeStr, type Tensor } from "../gpu/tensor.ts";
import { flatTextureFits, heldFlatTexture } from "./flat_texture.ts";
import { grid1d } from "./grid.ts";
import { kernelClass } from "./kernel_class.ts";

/** Rows per workgroup (one invocation per row). */
const WG = 64;
/** Largest row width / 4 with a generated entry. */
const MAX_C4 = 64;

const cache = new Map<string, string>();

/** WGSL of the entry `embed_ln_c<C4>` (with a token-type table when `types`). */
export function embeddingLayerNormSource(C4: number, types: boolean): string {
  const key = `${C4}/${types}`;
  let s = cache.get(key);
  if (!s) {
    s = source(C4, types);
    cache.set(key, s);
  }
  return s;
}

function source(C4: number, types: boolean): string {
  const cs = Array.from({ length: C4 }, (_, i) => i);
  const L: string[] = [
    `override WG: u32 = ${WG}u;`,
    `struct Params {`,
    `  rows: u32,   // R`,
    `  nx: u32,     // workgroups along x`,
    `  V: u32,      // rows of the word table`,
    `  VP: u32,     // rows of the position table`,
    `  VT: u32,     // rows of the token-type table (0 without one)`,
    `  eps: f32,    // variance epsilon`,
    `  shift: u32,  // log2 of the gamma/beta textures' width`,
    `  pshift: u32, // log2 of the position table texture's width`,
    `  tshift: u32, // log2 of the type table texture's width`,
    `  wshift: u32,`,
    `}`,
    `@group(0) @binding(0) var<uniform> p: Params;`,
    `@group(0) @binding(1) var e_word: texture_2d<f32>;`,
    `@group(0) @binding(2) var<storage, read> e_ids: array<i32>;`,
    `@group(0) @binding(3) var e_pos: texture_2d<f32>;`,
    `@group(0) @binding(4) var<storage, read> e_pids: array<i32>;`,
    `@group(0) @binding(5) var e_gamma: texture_2d<f32>;`,
    `@group(0) @binding(6) var e_beta: texture_2d<f32>;`,
    `@group(0) @binding(7) var<storage, read_write> e_y: array<vec4<f32>>;`,
  ];
  if (types) {
    L.push(
      `@group(0) @binding(8) var e_type: texture_2d<f32>;`,
      `@group(0) @binding(9) var<storage, read> e_tids: array<i32>;`,
    );
  }
  L.push(
    `fn e_at(t: u32) -> vec2<u32> {`,
    `  return vec2<u32>(t & ((1u << p.shift) - 1u), t >> p.shift);`,
    `}`,
    `fn e_tat(t: u32, shift: u32) -> vec2<u32> {`,
    `  return vec2<u32>(t & ((1u << shift) - 1u), t >> shift);`,
    `}`,
    `@compute @workgroup_size(WG)`,
    `fn embed_ln_c${C4}(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {`,
    `  let row = (wid.y * p.nx + wid.x) * WG + lid.x;`,
    `  if (row >= p.rows) {`,
    `    return;`,
    `  }`,
    `  let z = vec4<f32>(0.0);`,
    `  let iw = e_ids[row];`,
    `  let okw = iw >= 0 && u32(iw) < p.V;`,
    `  let bw = select(0u, u32(iw), okw) * ${C4}u;`,
    `  let ip = e_pids[row];`,
    `  let okp = ip >= 0 && u32(ip) < p.VP;`,
    `  let bp = select(0u, u32(ip), okp) * ${C4}u;`,
  );
  if (types) {
    L.push(
      `  let it = e_tids[row];`,
      `  let okt = it >= 0 && u32(it) < p.VT;`,
      `  let bt = select(0u, u32(it), okt) * ${C4}u;`,
    );
  }
  for (const c of cs) {
    const pos = `select(z, textureLoad(e_pos, e_tat(bp + ${c}u, p.pshift), 0), okp)`;
    const typ = types
      ? ` + select(z, textureLoad(e_type, e_tat(bt + ${c}u, p.tshift), 0), okt)`
      : "";
    L.push(
      `  let v${c} = select(z, textureLoad(e_word, e_tat(bw + ${c}u, p.wshift), 0), okw) + (${pos}${typ});`,
    );
  }
  L.push(`  let inv = 1.0 / f32(${4 * C4});`, `  var s = z;`);
  for (const c of cs) L.push(`  s += v${c};`);
  L.push(`  let mean = (s.x + s.y + s.z + s.w) * inv;`, `  var q = z;`);
  for (const c of cs) L.push(`  let d${c} = v${c} - mean;`, `  q += d${c} * d${c};`);
  L.push(`  let rstd = inverseSqrt((q.x + q.y + q.z + q.w) * inv + p.eps);`);
  L.push(`  let base = row * ${C4}u;`);
  for (const c of cs) {
    L.push(
      `  e_y[base + ${c}u] = d${c} * rstd * textureLoad(e_gamma, e_at(${c}u), 0) + ` +
        `textureLoad(e_beta, e_at(${c}u), 0);`,
    );
  }
  L.push(`}`);
  return L.join("\n") + "\n";
}

/** The tables and id tensors of `embeddingLayerNormInference`. */
export interface EmbeddingTables {
  /** Word table [V, d] and token ids (i32, N of them). */
  word: Tensor;
  ids: Tensor;
  /** Position table [VP, d] and position ids (N). */
  pos: Tensor;
  posIds: Tensor;
  /** Optional token-type table [VT, d] and type ids (N). */
  type?: Tensor;
  typeIds?: Tensor;
}

/**
 * LayerNorm(word[ids] + (pos[posIds] + type[typeIds])) over rows of d values, [N, d], in one
 * dispatch; `undefined` (nothing recorded) where this adapter or shape has no such kernel (a GPU
 * adapter, d % 4 != 0 or d > 256), so that the caller falls back to gathers and a LayerNorm.
 */
export function embeddingLayerNormInference(
  t: EmbeddingTables,
  gamma: Tensor,
  beta: Tensor,
  eps: number,
): Tensor | undefined {
  const { word, ids, pos, posIds } = t;
  if (word.shape.length !== 2 || pos.shape.length !== 2 || pos.shape[1] !== word.shape[1]) {
    throw new ShapeError(
      `embeddingLayerNormInference: tables must be [V, d], got ${shapeStr(word)} and ${
        shapeStr(pos)
      }`,
    );
  }
  const [V, d] = word.shape;
  const N = ids.size;
  if ((t.type === undefined) !== (t.typeIds === undefined)) {
    throw new InvalidArgumentError(
      "embeddingLayerNormInference: a token-type table needs its ids and vice versa",
    );
  }
  if (t.type && (t.type.shape.length !== 2 || t.type.shape[1] !== d)) {
    throw new ShapeError(
      `embeddingLayerNormInference: type table ${shapeStr(t.type)} vs width ${d}`,
    );
  }
  if (posIds.size !== N || (t.typeIds && t.typeIds.size !== N)) {
    throw new ShapeError(
      `embeddingLayerNormInference: ${N} token ids, ${posIds.size} position ids${
        t.typeIds ? `, ${t.typeIds.size} type ids` : ""
      }`,
    );
  }
  if (gamma.size !== d || beta.size !== d) {
    throw new ShapeError(
      `embeddingLayerNormInference: gamma ${shapeStr(gamma)} / beta ${
        shapeStr(beta)
      } vs width ${d}`,
    );
  }
  if (!(eps >= 0)) throw new InvalidArgumentError("embeddingLayerNormInference: eps must be ≥ 0");
  const gpu = word.gpu;
  const C4 = d / 4;
  if (kernelClass(gpu) !== "cpu" || d % 4 !== 0 || C4 > MAX_C4 || N === 0) return undefined;
  if (![word, pos, t.type ?? pos].every((x) => flatTextureFits(gpu, x.size))) return undefined;
  const types = t.type !== undefined;
  const spec: KernelSpec = {
    name: `embedding_ln+c${C4}${types ? "t" : ""}`,
    source: embeddingLayerNormSource(C4, types),
    entry: `embed_ln_c${C4}`,
    bindings: ["texture", "read", "texture", "read", "texture", "texture", "rw"].concat(
      types ? ["texture", "read"] : [],
    ) as KernelSpec["bindings"],
    constants: { WG },
  };
  // parameters: copied into textures once and kept (re-copied after a parameter update)
  const tw = heldFlatTexture(word), tp = heldFlatTexture(pos);
  const tt = t.type ? heldFlatTexture(t.type) : undefined;
  const tg = heldFlatTexture(gamma), tb = heldFlatTexture(beta);
  const y = gpu.empty([N, d]);
  const [nx, ny] = grid1d(N, WG);
  gpu.dispatchResources(
    spec,
    [
      N,
      nx,
      V,
      pos.shape[0],
      t.type ? t.type.shape[0] : 0,
      f32Bits(eps),
      tg.shift,
      tp.shift,
      tt?.shift ?? 0,
      tw.shift,
    ],
    ([tw.tex, ids, tp.tex, posIds, tg.tex, tb.tex, y] as Resource[]).concat(
      tt ? [tt.tex, t.typeIds!] : [],
    ),
    [nx, ny],
  );
  return y;
}
