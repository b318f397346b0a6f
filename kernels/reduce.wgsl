// Deterministic reductions (fixed summation order, no atomics). With PRODUCT = true every term is
// a[i]·b[i] instead of a[i] (bind the same tensor twice when PRODUCT is false).
//
// col_reduce: column sums over chunks of rows. x [R, C] is cut into chunks of `rows` rows (the last
//   may be shorter); workgroup (x, y/z) sums columns x·CX … x·CX + CX − 1 of chunk y + z·ny:
//   RY row lanes each sum every RY-th row in increasing order, then a fixed tree adds the lanes.
//   out[chunk, c] = (accumulate ? out[chunk, c] : 0) + Σ_{r in chunk} term(r, c).
//   Used for bias gradients (two stages over many rows) and per-group sums.
// row_reduce: one workgroup per row of length L over a flat array of n elements (the last row may
//   be shorter): WG lanes sum a strided slice each, then a fixed tree adds the lanes.
//   out[row] = (accumulate ? out[row] : 0) + Σ_{i in row} term(i).
// col_serial / row_serial: CPU-class variants of the same sums with one invocation per output
//   element (column of a chunk, or row), each summing serially in increasing index order; no
//   workgroup memory and no barriers (suits CPU adapters such as llvmpipe). col_serial: workgroup
//   (x, y/z) covers columns x·CX … x·CX + CX − 1 of chunk y + z·ny. row_serial: row =
//   (y·nx + x)·WG + lane.

override CX: u32 = 16u;   // columns per workgroup (col_reduce)
override RY: u32 = 16u;   // row lanes per workgroup, a power of two (col_reduce)
override WG: u32 = 256u;  // lanes per workgroup, a power of two (row_reduce)
override PRODUCT: bool = false;

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn term(i: u32) -> f32 {
  if (PRODUCT) {
    return a[i] * b[i];
  }
  return a[i];
}

struct ColParams {
  R: u32,          // rows of the input
  C: u32,          // columns
  rows: u32,       // rows per chunk
  nChunks: u32,    // number of chunks (= rows of out)
  ny: u32,         // workgroups along y (chunk = z·ny + y)
  accumulate: u32, // 1: add to out
  shift: u32,      // col_serial4: log2 of the flat textures' width in texels
}

@group(0) @binding(0) var<uniform> pc: ColParams;

var<workgroup> colPart: array<f32, CX * RY>;

@compute @workgroup_size(CX, RY)
fn col_reduce(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = wid.x * CX + lid.x;
  let chunk = wid.z * pc.ny + wid.y;
  let live = c < pc.C && chunk < pc.nChunks;
  var acc = 0.0;
  if (live) {
    let r0 = chunk * pc.rows;
    let r1 = min(pc.R, r0 + pc.rows);
    for (var r = r0 + lid.y; r < r1; r += RY) {
      acc += term(r * pc.C + c);
    }
  }
  colPart[lid.y * CX + lid.x] = acc;
  workgroupBarrier();
  for (var stride = RY / 2u; stride > 0u; stride /= 2u) {
    if (lid.y < stride) {
      colPart[lid.y * CX + lid.x] += colPart[(lid.y + stride) * CX + lid.x];
    }
    workgroupBarrier();
  }
  if (live && lid.y == 0u) {
    let o = chunk * pc.C + c;
    var v = colPart[lid.x];
    if (pc.accumulate != 0u) {
      v = out[o] + v;
    }
    out[o] = v;
  }
}

@compute @workgroup_size(CX)
fn col_serial(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = wid.x * CX + lid.x;
  let chunk = wid.z * pc.ny + wid.y;
  if (c >= pc.C || chunk >= pc.nChunks) { return; }
  let r0 = chunk * pc.rows;
  let r1 = min(pc.R, r0 + pc.rows);
  var acc = 0.0;
  for (var r = r0; r < r1; r++) {
    acc += term(r * pc.C + c);
  }
  let o = chunk * pc.C + c;
  if (pc.accumulate != 0u) {
    acc = out[o] + acc;
  }
  out[o] = acc;
}

// col_serial4 (CPU adapters, C % 4 == 0): col_serial for four columns per invocation, the input
// (and b) read from flat rgba32float textures (texel t at (t mod 2^shift, t >> shift),
// lib/ops/flat_texture.ts) and the sums stored as vec4s: llvmpipe fetches texels through its SIMD
// path but runs storage loads and stores lane by lane. Each column is summed in the same order as
// in col_serial. Workgroup (x, y/z) covers column texels x·CX … x·CX + CX − 1 of chunk y + z·ny.
@group(0) @binding(1) var atex: texture_2d<f32>;
@group(0) @binding(2) var btex: texture_2d<f32>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>;

fn term4(t: u32) -> vec4<f32> {
  let at = vec2u(t & ((1u << pc.shift) - 1u), t >> pc.shift);
  if (PRODUCT) {
    return textureLoad(atex, at, 0) * textureLoad(btex, at, 0);
  }
  return textureLoad(atex, at, 0);
}

@compute @workgroup_size(CX)
fn col_serial4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c4 = wid.x * CX + lid.x;
  let C4 = pc.C / 4u;
  let chunk = wid.z * pc.ny + wid.y;
  if (c4 >= C4 || chunk >= pc.nChunks) { return; }
  let r0 = chunk * pc.rows;
  let r1 = min(pc.R, r0 + pc.rows);
  var acc = vec4<f32>(0.0);
  for (var r = r0; r < r1; r++) {
    acc += term4(r * C4 + c4);
  }
  let o = chunk * C4 + c4;
  if (pc.accumulate != 0u) {
    acc = out4[o] + acc;
  }
  out4[o] = acc;
}

struct RowParams {
  n: u32,          // elements of the flat input
  L: u32,          // row length
  rows: u32,       // number of rows = ceil(n / L)
  nx: u32,         // workgroups along x (row = y·nx + x)
  accumulate: u32, // 1: add to out
}

@group(0) @binding(0) var<uniform> pr: RowParams;

var<workgroup> rowPart: array<f32, WG>;

@compute @workgroup_size(WG)
fn row_reduce(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wid.y * pr.nx + wid.x;
  let live = row < pr.rows;
  var acc = 0.0;
  if (live) {
    let start = row * pr.L;
    let end = min(pr.n, start + pr.L);
    for (var i = start + lid.x; i < end; i += WG) {
      acc += term(i);
    }
  }
  rowPart[lid.x] = acc;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid.x < stride) {
      rowPart[lid.x] += rowPart[lid.x + stride];
    }
    workgroupBarrier();
  }
  if (live && lid.x == 0u) {
    var v = rowPart[0];
    if (pr.accumulate != 0u) {
      v = out[row] + v;
    }
    out[row] = v;
  }
}

@compute @workgroup_size(WG)
fn row_serial(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = (wid.y * pr.nx + wid.x) * WG + lid.x;
  if (row >= pr.rows) { return; }
  let start = row * pr.L;
  let end = min(pr.n, start + pr.L);
  var acc = 0.0;
  for (var i = start; i < end; i++) {
    acc += term(i);
  }
  if (pr.accumulate != 0u) {
    acc = out[row] + acc;
  }
  out[row] = acc;
}
