// Row gathers and broadcasts over row-major x [N, C]. One invocation per output element.
// Grid: ceil(n / WG) workgroups along x, y as a second index dimension past 65535 groups.
//
// select_rows:          out[m, c] = x[rows[m], c]   (a row index outside [0, N) yields zeros)
// scatter_rows:         dx[rows[m], c] = dy[m, c]   (indices unique; outside [0, N) skipped)
// add_row_vector:       out[r, c] = x[r, c] + b[c]
// add_row_vector_inplace: x[r, c] += b[c]
// broadcast_rows4:      out[r, c] = b[c], vec4s, for C % 4 == 0 (p.n = R·C/4, p.C = C/4): a
//                       zero-width sub-layer's output (its bias on every row)

override WG: u32 = 256u;

struct Params {
  n: u32,   // elements processed (M·C or R·C)
  nx: u32,  // workgroups along x
  C: u32,   // columns
  N: u32,   // rows of x (select/scatter)
}

@group(0) @binding(0) var<uniform> p: Params;

fn flat(wid: vec3u, lid: vec3u) -> u32 {
  return (wid.y * p.nx + wid.x) * WG + lid.x;
}

@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> rows: array<i32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

// dst[m, c] = src[rows[m], c]
@compute @workgroup_size(WG)
fn select_rows(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  let m = i / p.C;
  let c = i - m * p.C;
  let r = rows[m];
  if (r < 0 || u32(r) >= p.N) {
    dst[i] = 0.0;
    return;
  }
  dst[i] = src[u32(r) * p.C + c];
}

// dst[rows[m], c] = src[m, c]
@compute @workgroup_size(WG)
fn scatter_rows(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  let m = i / p.C;
  let c = i - m * p.C;
  let r = rows[m];
  if (r < 0 || u32(r) >= p.N) { return; }
  dst[u32(r) * p.C + c] = src[i];
}

@group(0) @binding(2) var<storage, read> bias: array<f32>;

// dst[r, c] = src[r, c] + bias[c]
@compute @workgroup_size(WG)
fn add_row_vector(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  dst[i] = src[i] + bias[i % p.C];
}

@group(0) @binding(1) var<storage, read> addend: array<f32>;
@group(0) @binding(2) var<storage, read_write> xInPlace: array<f32>;

// xInPlace[r, c] += addend[c]
@compute @workgroup_size(WG)
fn add_row_vector_inplace(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  xInPlace[i] = xInPlace[i] + addend[i % p.C];
}

@group(0) @binding(1) var<storage, read> bias4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out4: array<vec4<f32>>;

// out4[r, c] = bias4[c] (four columns per invocation: llvmpipe moves storage lane by lane)
@compute @workgroup_size(WG)
fn broadcast_rows4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  out4[i] = bias4[i % p.C];
}
