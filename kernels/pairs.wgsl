// Splitting interleaved pairs (QA start/end logits [N, 2]) into two contiguous arrays and back.
// All three bindings are read_write so one layout serves both entry points.

override WG: u32 = 256u;

struct Params {
  n: u32,   // number of pairs
  nx: u32,  // workgroups along x
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> pairs: array<f32>;
@group(0) @binding(2) var<storage, read_write> first: array<f32>;
@group(0) @binding(3) var<storage, read_write> second: array<f32>;

// first[i] = pairs[2i], second[i] = pairs[2i + 1]
@compute @workgroup_size(WG)
fn split_pairs(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * p.nx + wid.x) * WG + lid.x;
  if (i >= p.n) { return; }
  first[i] = pairs[2u * i];
  second[i] = pairs[2u * i + 1u];
}

// pairs[2i] = first[i], pairs[2i + 1] = second[i]
@compute @workgroup_size(WG)
fn join_pairs(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * p.nx + wid.x) * WG + lid.x;
  if (i >= p.n) { return; }
  pairs[2u * i] = first[i];
  pairs[2u * i + 1u] = second[i];
}
