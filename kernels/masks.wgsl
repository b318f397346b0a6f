// Mask scaling ops (head and FFN masks, Fisher accumulation). One invocation per element.
// Grid: ceil(n / WG) workgroups along x, y as a second index dimension past 65535 groups.
//
// scale_rows:         y[r, c] = s[r]·x[r, c]               for x [R, C], s [R]
// scale_cols_grouped: y[g·T + t, c] = x[g·T + t, c]·s[g, c] for x [G·T, C], s [G, C]
// accumulate_squares: acc[i] += g[i]·g[i]

override WG: u32 = 256u;

struct Params {
  n: u32,   // elements
  nx: u32,  // workgroups along x
  C: u32,   // columns
  T: u32,   // rows per group (scale_cols_grouped)
}

@group(0) @binding(0) var<uniform> p: Params;

fn flat(wid: vec3u, lid: vec3u) -> u32 {
  return (wid.y * p.nx + wid.x) * WG + lid.x;
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> s: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
// The same buffers as vec4s, for the *4 entries (C % 4 == 0; p.n and p.C count vec4s): llvmpipe
// loads and stores storage lane by lane, so a quarter of the accesses.
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> s4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y4: array<vec4<f32>>;

// y[r, c] = s[r]·x[r, c]
@compute @workgroup_size(WG)
fn scale_rows(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  y[i] = s[i / p.C] * x[i];
}

// y[g·T + t, c] = x[g·T + t, c]·s[g, c]
@compute @workgroup_size(WG)
fn scale_cols_grouped(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  let row = i / p.C;
  let c = i - row * p.C;
  let g = row / p.T;
  y[i] = x[i] * s[g * p.C + c];
}

// scale_rows on vec4s
@compute @workgroup_size(WG)
fn scale_rows4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  y4[i] = s[i / p.C] * x4[i];
}

// scale_cols_grouped on vec4s
@compute @workgroup_size(WG)
fn scale_cols_grouped4(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  let row = i / p.C;
  let c = i - row * p.C;
  let g = row / p.T;
  y4[i] = x4[i] * s4[g * p.C + c];
}

@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> acc: array<f32>;

// acc[i] += g[i]·g[i]
@compute @workgroup_size(WG)
fn accumulate_squares(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  let v = g[i];
  acc[i] = acc[i] + v * v;
}
