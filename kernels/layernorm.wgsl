// LayerNorm over the last dimension of x [R, C] (biased variance, as torch.nn.LayerNorm).
// Two variant families, each deterministic (fixed summation order):
//   GPU class: one workgroup per row (row = wid.y·nx + wid.x), reductions a fixed-order tree in
//     workgroup memory. WG must be a power of two ≤ 256.
//   CPU class (*_rows): one invocation per row (row = (wid.y·nx + wid.x)·WG + lid), serial
//     loops over the row in increasing column order, no barriers; suits CPU adapters (llvmpipe),
//     whose SIMD lanes then process WG rows side by side.
//
// Entry points:
//   forward, forward_rows          y = (x − mean)·rstd·gamma + beta; saves mean [R], rstd [R]
//   backward_dx, backward_dx_rows  dx = rstd·(g − mean(g) − x̂·mean(g∘x̂)) with g = dy∘gamma,
//                                  x̂ = (x − mean)·rstd
//   param_partial stage 1 of dgamma/dbeta: column sums of dy∘x̂ and dy over chunks of rows,
//                 written to part [2, chunks, C] (one invocation per column and chunk)
//   param_partial4 the same, four columns per invocation from flat textures (CPU adapters)
//   param_final   stage 2: dgamma[c] = Σ_k part[0, k, c], dbeta[c] = Σ_k part[1, k, c] in order k

override WG: u32 = 256u;

struct Params {
  rows: u32,      // R
  cols: u32,      // C
  nx: u32,        // workgroups along x (row grid) or column groups (param kernels)
  eps: f32,       // variance epsilon (forward)
  chunk: u32,     // rows per chunk (param_partial)
  chunks: u32,    // number of chunks
  shift: u32,     // param_partial4: log2 of the flat textures' width in texels
}

@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> red_a: array<f32, 256>;
var<workgroup> red_b: array<f32, 256>;

// Tree sum of red_a[0..WG) (and red_b) into element 0; every invocation must call it.
fn reduce2(lid: u32) {
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    workgroupBarrier();
    if (lid < s) {
      red_a[lid] = red_a[lid] + red_a[lid + s];
      red_b[lid] = red_b[lid] + red_b[lid + s];
    }
  }
  workgroupBarrier();
}

fn row_index(wid: vec3u) -> u32 {
  return wid.y * p.nx + wid.x;
}

// ---------------------------------------------------------------- forward
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd_out: array<f32>;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let row = row_index(wid);
  if (row >= p.rows) { return; } // uniform across the workgroup
  let lid = lid3.x;
  let base = row * p.cols;
  var s = 0.0;
  for (var c = lid; c < p.cols; c += WG) { s += x[base + c]; }
  red_a[lid] = s;
  red_b[lid] = 0.0;
  reduce2(lid);
  let mean = red_a[0] / f32(p.cols);
  workgroupBarrier();
  var q = 0.0;
  for (var c = lid; c < p.cols; c += WG) {
    let d = x[base + c] - mean;
    q += d * d;
  }
  red_a[lid] = q;
  reduce2(lid);
  let rstd = inverseSqrt(red_a[0] / f32(p.cols) + p.eps);
  for (var c = lid; c < p.cols; c += WG) {
    y[base + c] = (x[base + c] - mean) * rstd * gamma[c] + beta[c];
  }
  if (lid == 0u) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

// CPU class: one invocation per row, serial loops, no barriers.
@compute @workgroup_size(WG)
fn forward_rows(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let row = row_index(wid) * WG + lid3.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var s = 0.0;
  for (var c = 0u; c < p.cols; c++) { s += x[base + c]; }
  let mean = s / f32(p.cols);
  var q = 0.0;
  for (var c = 0u; c < p.cols; c++) {
    let d = x[base + c] - mean;
    q += d * d;
  }
  let rstd = inverseSqrt(q / f32(p.cols) + p.eps);
  for (var c = 0u; c < p.cols; c++) {
    y[base + c] = (x[base + c] - mean) * rstd * gamma[c] + beta[c];
  }
  mean_out[row] = mean;
  rstd_out[row] = rstd;
}

// ---------------------------------------------------------------- backward
@group(0) @binding(1) var<storage, read> b_dy: array<f32>;
@group(0) @binding(2) var<storage, read> b_x: array<f32>;
@group(0) @binding(3) var<storage, read> b_mean: array<f32>;
@group(0) @binding(4) var<storage, read> b_rstd: array<f32>;
@group(0) @binding(5) var<storage, read> b_gamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> b_dx: array<f32>;

@compute @workgroup_size(WG)
fn backward_dx(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let row = row_index(wid);
  if (row >= p.rows) { return; }
  let lid = lid3.x;
  let base = row * p.cols;
  let mean = b_mean[row];
  let rstd = b_rstd[row];
  var sg = 0.0;
  var sgx = 0.0;
  for (var c = lid; c < p.cols; c += WG) {
    let g = b_dy[base + c] * b_gamma[c];
    sg += g;
    sgx += g * (b_x[base + c] - mean) * rstd;
  }
  red_a[lid] = sg;
  red_b[lid] = sgx;
  reduce2(lid);
  let mg = red_a[0] / f32(p.cols);
  let mgx = red_b[0] / f32(p.cols);
  for (var c = lid; c < p.cols; c += WG) {
    let xh = (b_x[base + c] - mean) * rstd;
    b_dx[base + c] = rstd * (b_dy[base + c] * b_gamma[c] - mg - xh * mgx);
  }
}

// CPU class: one invocation per row, serial loops, no barriers.
@compute @workgroup_size(WG)
fn backward_dx_rows(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let row = row_index(wid) * WG + lid3.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  let mean = b_mean[row];
  let rstd = b_rstd[row];
  var sg = 0.0;
  var sgx = 0.0;
  for (var c = 0u; c < p.cols; c++) {
    let g = b_dy[base + c] * b_gamma[c];
    sg += g;
    sgx += g * (b_x[base + c] - mean) * rstd;
  }
  let mg = sg / f32(p.cols);
  let mgx = sgx / f32(p.cols);
  for (var c = 0u; c < p.cols; c++) {
    let xh = (b_x[base + c] - mean) * rstd;
    b_dx[base + c] = rstd * (b_dy[base + c] * b_gamma[c] - mg - xh * mgx);
  }
}

// part [2, chunks, C]: part[0, k, c] = Σ_{r in chunk k} dy[r, c]·x̂[r, c]; part[1, k, c] = Σ dy[r, c]
@group(0) @binding(5) var<storage, read_write> b_part: array<f32>;

@compute @workgroup_size(WG)
fn param_partial(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let c = wid.x * WG + lid3.x;
  let k = wid.y;
  if (c >= p.cols || k >= p.chunks) { return; }
  let r0 = k * p.chunk;
  let r1 = min(p.rows, r0 + p.chunk);
  var sgx = 0.0;
  var sg = 0.0;
  for (var r = r0; r < r1; r++) {
    let d = b_dy[r * p.cols + c];
    sgx += d * (b_x[r * p.cols + c] - b_mean[r]) * b_rstd[r];
    sg += d;
  }
  b_part[k * p.cols + c] = sgx;
  b_part[(p.chunks + k) * p.cols + c] = sg;
}

// param_partial4 (CPU adapters, C % 4 == 0): param_partial for four columns per invocation, dy
// and x read from flat rgba32float textures (texel t at (t mod 2^shift, t >> shift)) and the sums
// stored as vec4s into the same part layout; each column summed in the same order.
@group(0) @binding(1) var q_dy: texture_2d<f32>;
@group(0) @binding(2) var q_x: texture_2d<f32>;
@group(0) @binding(3) var<storage, read> q_mean: array<f32>;
@group(0) @binding(4) var<storage, read> q_rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> q_part: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn param_partial4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let c4 = wid.x * WG + lid3.x;
  let C4 = p.cols / 4u;
  let k = wid.y;
  if (c4 >= C4 || k >= p.chunks) { return; }
  let r0 = k * p.chunk;
  let r1 = min(p.rows, r0 + p.chunk);
  let mask = (1u << p.shift) - 1u;
  var sgx = vec4<f32>(0.0);
  var sg = vec4<f32>(0.0);
  for (var r = r0; r < r1; r++) {
    let t = r * C4 + c4;
    let at = vec2u(t & mask, t >> p.shift);
    let d = textureLoad(q_dy, at, 0);
    sgx += d * (textureLoad(q_x, at, 0) - q_mean[r]) * q_rstd[r];
    sg += d;
  }
  q_part[k * C4 + c4] = sgx;
  q_part[(p.chunks + k) * C4 + c4] = sg;
}

@group(0) @binding(1) var<storage, read> f_part: array<f32>;
@group(0) @binding(2) var<storage, read_write> f_dgamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> f_dbeta: array<f32>;

@compute @workgroup_size(WG)
fn param_final(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let c = wid.x * WG + lid3.x;
  if (c >= p.cols) { return; }
  var sgx = 0.0;
  var sg = 0.0;
  for (var k = 0u; k < p.chunks; k++) {
    sgx += f_part[k * p.cols + c];
    sg += f_part[(p.chunks + k) * p.cols + c];
  }
  f_dgamma[c] = sgx;
  f_dbeta[c] = sg;
}

// ---------------------------------------------------------------- inference: residual + LayerNorm
// CPU class, C % 4 == 0: y = LayerNorm(a + r), no statistics kept (inference passes only), one
// invocation per row. a and r are read from flat textures (lib/ops/flat_texture.ts: texel t at
// (t mod 2^shift, t >> shift)), which llvmpipe fetches through its SIMD path; the sum is formed
// again in each of the two passes (statistics, output) rather than stored. Params.chunk holds the
// textures' shift. gamma and beta are flat textures too (shift in Params.chunks): every row reads
// the same texels, and llvmpipe's storage loads would run lane by lane (1.5× slower in all at
// [4096, 128], tmp micro-benchmark).
@group(0) @binding(1) var n_a: texture_2d<f32>;
@group(0) @binding(2) var n_r: texture_2d<f32>;
@group(0) @binding(3) var n_gamma: texture_2d<f32>;
@group(0) @binding(4) var n_beta: texture_2d<f32>;
@group(0) @binding(5) var<storage, read_write> n_y: array<vec4<f32>>;

fn n_sum(t: u32) -> vec4<f32> {
  let at = vec2<u32>(t & ((1u << p.chunk) - 1u), t >> p.chunk);
  return textureLoad(n_a, at, 0) + textureLoad(n_r, at, 0);
}

@compute @workgroup_size(WG)
fn add_forward_rows_tex(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let row = row_index(wid) * WG + lid3.x;
  if (row >= p.rows) { return; }
  let c4 = p.cols / 4u;
  let base = row * c4;
  // one pass of Welford per vector component, merged by Chan's formula (4 groups of c4 values)
  var mean4 = vec4<f32>(0.0);
  var m24 = vec4<f32>(0.0);
  for (var c = 0u; c < c4; c++) {
    let v = n_sum(base + c);
    let d = v - mean4;
    mean4 += d / f32(c + 1u);
    m24 += d * (v - mean4);
  }
  let mean = (mean4.x + mean4.y + mean4.z + mean4.w) * 0.25;
  let dm = mean4 - mean;
  let m2 = m24.x + m24.y + m24.z + m24.w + f32(c4) * dot(dm, dm);
  let rstd = inverseSqrt(m2 / f32(p.cols) + p.eps);
  let gmask = (1u << p.chunks) - 1u;
  for (var c = 0u; c < c4; c++) {
    let gc = vec2<u32>(c & gmask, c >> p.chunks);
    n_y[base + c] = (n_sum(base + c) - mean) * rstd * textureLoad(n_gamma, gc, 0) +
      textureLoad(n_beta, gc, 0);
  }
}
