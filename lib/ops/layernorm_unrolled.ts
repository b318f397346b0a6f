/**
 * WGSL of unrolled inference entries for residual + LayerNorm, y = LayerNorm(a + r), generated on
 * demand for rows of C = 4·C4 ≤ 256 values (`add_ln_r<R>_c<C4>`). Same contract and bindings as
 * kernels/layernorm.wgsl's `add_forward_rows_tex` (a, r, gamma, beta as flat textures, y as vec4
 * storage), but every row's C4 texels of a + r are fetched once into named variables (no private
 * arrays: llvmpipe keeps those in memory and addresses them per lane) and kept for the output,
 * and each invocation owns R rows (gamma/beta fetched once for them): per row 2·C4 + 2·C4/R
 * fetches instead of the generic kernel's 4·C4 + 2·C4. The statistics are two-pass over the kept
 * values (mean, then the mean of squared deviations: the biased variance of torch.nn.LayerNorm),
 * each sum a vec4 accumulated in column order, then its components in order.
 *
 * Idle micro-benchmark (session 8, [4096, 128], texture copies included, same run, generic →
 * unrolled): R = 1 4.37 → 2.50 ms, R = 2 4.14 → 2.86 and 3.34 → 1.88 ms, R = 4 3.86 → 2.63 ms —
 * no R clearly ahead of the noise, so R = 1 (the least code to compile).
 * @module
 */
import src from "../../kernels/layernorm.wgsl" with { type: "text" };

/** Largest C / 4 with an unrolled entry. */
export const UNROLLED_LN_MAX_C4 = 64;

/** Rows per invocation of the unrolled entries. */
export const UNROLLED_LN_ROWS = 1;

/** kernels/layernorm.wgsl up to its first entry point: parameters and `row_index`. */
const HEADER = src.slice(0, src.indexOf("@compute"));

/** Texel address of flat texel t in a texture of width 2^shift (every entry here uses it). */
const U_AT = `
fn u_at(t: u32, shift: u32) -> vec2<u32> {
  return vec2<u32>(t & ((1u << shift) - 1u), t >> shift);
}
`;

const BINDINGS = `
@group(0) @binding(1) var u_a: texture_2d<f32>;
@group(0) @binding(2) var u_r: texture_2d<f32>;
@group(0) @binding(3) var u_gamma: texture_2d<f32>;
@group(0) @binding(4) var u_beta: texture_2d<f32>;
@group(0) @binding(5) var<storage, read_write> u_y: array<vec4<f32>>;

`;

const cache = new Map<number, string>();

/**
 * WGSL source (shared header + one entry `add_ln_r<R>_c<C4>`) for rows of 4·C4 values; with
 * `broadcast`, entry `add_ln_r<R>_c<C4>_b`, where `a` is one row of C values added to every row of
 * r (a zero-width sub-layer's bias).
 */
export function unrolledLayerNormSource(C4: number, broadcast = false): string {
  const key = 2 * C4 + (broadcast ? 1 : 0);
  let s = cache.get(key);
  if (!s) {
    s = HEADER + U_AT + BINDINGS + entry(UNROLLED_LN_ROWS, C4, broadcast);
    cache.set(key, s);
  }
  return s;
}

/** Entry name of `unrolledLayerNormSource(C4, broadcast)`. */
export function unrolledLayerNormEntry(C4: number, broadcast = false): string {
  return `add_ln_r${UNROLLED_LN_ROWS}_c${C4}${broadcast ? "_b" : ""}`;
}

function entry(R: number, C4: number, broadcast: boolean): string {
  const rs = Array.from({ length: R }, (_, i) => i), cs = Array.from({ length: C4 }, (_, i) => i);
  const L: string[] = [];
  L.push(`@compute @workgroup_size(WG)`);
  L.push(
    `fn add_ln_r${R}_c${C4}${
      broadcast ? "_b" : ""
    }(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {`,
  );
  L.push(`  let row0 = (row_index(wid) * WG + lid3.x) * ${R}u;`);
  L.push(`  if (row0 >= p.rows) {`, `    return;`, `  }`);
  L.push(`  let inv = 1.0 / f32(p.cols);`);
  for (const r of rs) {
    L.push(`  let base${r} = min(row0 + ${r}u, p.rows - 1u) * ${C4}u;`);
    for (const c of cs) {
      L.push(`  let at${r}_${c} = u_at(base${r} + ${c}u, p.chunk);`);
      // a broadcast row has C values like gamma and beta: texels 0 … C4 − 1 of a flat texture
      // of their width (shift p.chunks)
      const atA = broadcast ? `u_at(${c}u, p.chunks)` : `at${r}_${c}`;
      L.push(
        `  let v${r}_${c} = textureLoad(u_a, ${atA}, 0) + textureLoad(u_r, at${r}_${c}, 0);`,
      );
    }
    L.push(`  var s${r} = vec4<f32>(0.0);`);
    for (const c of cs) L.push(`  s${r} += v${r}_${c};`);
    L.push(`  let mean${r} = (s${r}.x + s${r}.y + s${r}.z + s${r}.w) * inv;`);
    L.push(`  var q${r} = vec4<f32>(0.0);`);
    for (const c of cs) {
      L.push(`  let d${r}_${c} = v${r}_${c} - mean${r};`);
      L.push(`  q${r} += d${r}_${c} * d${r}_${c};`);
    }
    L.push(`  let rstd${r} = inverseSqrt((q${r}.x + q${r}.y + q${r}.z + q${r}.w) * inv + p.eps);`);
  }
  for (const c of cs) {
    L.push(`  let g${c} = textureLoad(u_gamma, u_at(${c}u, p.chunks), 0);`);
    L.push(`  let b${c} = textureLoad(u_beta, u_at(${c}u, p.chunks), 0);`);
    for (const r of rs) {
      L.push(`  if (row0 + ${r}u < p.rows) {`);
      L.push(`    u_y[base${r} + ${c}u] = d${r}_${c} * rstd${r} * g${c} + b${c};`);
      L.push(`  }`);
    }
  }
  L.push(`}`);
  return L.join("\n") + "\n";
}

const TRAIN_BINDINGS = `
@group(0) @binding(1) var t_x: texture_2d<f32>;
@group(0) @binding(2) var t_gamma: texture_2d<f32>;
@group(0) @binding(3) var t_beta: texture_2d<f32>;
@group(0) @binding(4) var<storage, read_write> t_y: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> t_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> t_rstd: array<f32>;

`;

const ADD_BINDINGS = `
@group(0) @binding(1) var t_a: texture_2d<f32>;
@group(0) @binding(2) var t_r: texture_2d<f32>;
@group(0) @binding(3) var t_gamma: texture_2d<f32>;
@group(0) @binding(4) var t_beta: texture_2d<f32>;
@group(0) @binding(5) var<storage, read_write> t_sum: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> t_y: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> t_mean: array<f32>;
@group(0) @binding(8) var<storage, read_write> t_rstd: array<f32>;

`;

const DX_BINDINGS = `
@group(0) @binding(1) var d_dy: texture_2d<f32>;
@group(0) @binding(2) var d_x: texture_2d<f32>;
@group(0) @binding(3) var<storage, read> d_mean: array<f32>;
@group(0) @binding(4) var<storage, read> d_rstd: array<f32>;
@group(0) @binding(5) var d_gamma: texture_2d<f32>;
@group(0) @binding(6) var<storage, read_write> d_dx: array<vec4<f32>>;

`;

const trainCache = new Map<string, string>();

/**
 * WGSL of the unrolled training LayerNorm entries for rows of 4·C4 ≤ 256 values, one invocation
 * per row, the row fetched once from a flat texture into named variables:
 * `ln_fwd_c<C4>` (y = (x − mean)·rstd·gamma + beta, saving mean and rstd; statistics as the
 * inference entry: two-pass, vec4 sums in column order, then their components), `ln_addfwd_c<C4>`
 * (the same for x = a + r, which it also stores: the pre-LN sum a backward needs) and `ln_dx_c<C4>`
 * (dx = rstd·(g − mean(g) − x̂·mean(g∘x̂)), g = dy∘gamma, x̂ = (x − mean)·rstd, the two means
 * likewise vec4 sums in column order). Parameters as kernels/layernorm.wgsl (`chunk`: log2 of the
 * row textures' width, `chunks`: of gamma/beta's).
 */
export function unrolledLayerNormTrainSource(kind: "fwd" | "addfwd" | "dx", C4: number): string {
  const key = `${kind}/${C4}`;
  let s = trainCache.get(key);
  if (!s) {
    s = HEADER + U_AT +
      (kind === "fwd"
        ? TRAIN_BINDINGS + fwdEntry(C4, false)
        : kind === "addfwd"
        ? ADD_BINDINGS + fwdEntry(C4, true)
        : DX_BINDINGS + dxEntry(C4));
    trainCache.set(key, s);
  }
  return s;
}

function rowHead(name: string): string[] {
  return [
    `@compute @workgroup_size(WG)`,
    `fn ${name}(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {`,
    `  let row = row_index(wid) * WG + lid3.x;`,
    `  if (row >= p.rows) {`,
    `    return;`,
    `  }`,
    `  let inv = 1.0 / f32(p.cols);`,
  ];
}

/** The components of a vec4 sum added in order. */
const hsum = (v: string) => `(${v}.x + ${v}.y + ${v}.z + ${v}.w)`;

/** `ln_fwd_c<C4>` (x = t_x) or, with `add`, `ln_addfwd_c<C4>` (x = t_a + t_r, also stored). */
function fwdEntry(C4: number, add: boolean): string {
  const cs = Array.from({ length: C4 }, (_, i) => i);
  const L = rowHead(`ln_${add ? "addfwd" : "fwd"}_c${C4}`);
  L.push(`  let base = row * ${C4}u;`);
  for (const c of cs) {
    if (add) {
      L.push(
        `  let at${c} = u_at(base + ${c}u, p.chunk);`,
        `  let v${c} = textureLoad(t_a, at${c}, 0) + textureLoad(t_r, at${c}, 0);`,
        `  t_sum[base + ${c}u] = v${c};`,
      );
    } else L.push(`  let v${c} = textureLoad(t_x, u_at(base + ${c}u, p.chunk), 0);`);
  }
  L.push(`  var s = vec4<f32>(0.0);`);
  for (const c of cs) L.push(`  s += v${c};`);
  L.push(`  let mean = ${hsum("s")} * inv;`, `  var q = vec4<f32>(0.0);`);
  for (const c of cs) L.push(`  let d${c} = v${c} - mean;`, `  q += d${c} * d${c};`);
  L.push(`  let rstd = inverseSqrt(${hsum("q")} * inv + p.eps);`);
  for (const c of cs) {
    L.push(
      `  t_y[base + ${c}u] = d${c} * rstd * textureLoad(t_gamma, u_at(${c}u, p.chunks), 0) + ` +
        `textureLoad(t_beta, u_at(${c}u, p.chunks), 0);`,
    );
  }
  L.push(`  t_mean[row] = mean;`, `  t_rstd[row] = rstd;`, `}`);
  return L.join("\n") + "\n";
}

function dxEntry(C4: number): string {
  const cs = Array.from({ length: C4 }, (_, i) => i);
  const L = rowHead(`ln_dx_c${C4}`);
  L.push(`  let base = row * ${C4}u;`, `  let mean = d_mean[row];`, `  let rstd = d_rstd[row];`);
  L.push(`  var sg = vec4<f32>(0.0);`, `  var sgx = vec4<f32>(0.0);`);
  for (const c of cs) {
    L.push(
      `  let at${c} = u_at(base + ${c}u, p.chunk);`,
      `  let g${c} = textureLoad(d_dy, at${c}, 0) * textureLoad(d_gamma, u_at(${c}u, p.chunks), 0);`,
      `  let xh${c} = (textureLoad(d_x, at${c}, 0) - mean) * rstd;`,
      `  sg += g${c};`,
      `  sgx += g${c} * xh${c};`,
    );
  }
  L.push(`  let mg = ${hsum("sg")} * inv;`, `  let mgx = ${hsum("sgx")} * inv;`);
  for (const c of cs) L.push(`  d_dx[base + ${c}u] = rstd * (g${c} - mg - xh${c} * mgx);`);
  L.push(`}`);
  return L.join("\n") + "\n";
}
