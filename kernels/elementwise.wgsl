// Elementwise ops over flat f32 arrays. All bindings are read_write so that in-place forms
// (a += β·b) can bind a single buffer once. Grid: ceil(n / WG) workgroups along x, with y used as a
// second index dimension when n is past 65535·WG (index = (y·nx + x)·WG + local).

override WG: u32 = 256u;

struct Params {
  n: u32,        // number of elements
  nx: u32,       // workgroups along x (for 2-D grids)
  alpha: f32,    // scale of a
  beta: f32,     // scale of b
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// The same buffers as vec4s, for the *4 entries (n % 4 == 0, p.n counts vec4s): llvmpipe loads and
// stores storage lane by lane, so a quarter of the accesses.
@group(0) @binding(1) var<storage, read_write> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>;

fn flat(wid: vec3u, lid: vec3u) -> u32 {
  return (wid.y * p.nx + wid.x) * WG + lid.x;
}

// out = alpha·a + beta·b
@compute @workgroup_size(WG)
fn axpby(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  out[i] = p.alpha * a[i] + p.beta * b[i];
}

// out = alpha·a ∘ b
@compute @workgroup_size(WG)
fn mul(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  out[i] = p.alpha * a[i] * b[i];
}

// out = alpha·a (copy with scale)
@compute @workgroup_size(WG)
fn scale(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  out[i] = p.alpha * a[i];
}

// axpby on vec4s
@compute @workgroup_size(WG)
fn axpby4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  out4[i] = p.alpha * a4[i] + p.beta * b4[i];
}

// mul on vec4s
@compute @workgroup_size(WG)
fn mul4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  out4[i] = p.alpha * a4[i] * b4[i];
}
