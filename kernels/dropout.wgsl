// Dropout with a counter-based RNG: the keep decision of element i is a pure hash of (seed, i)
// (`dropKeep`, kernels/dropout_hash.wgsl, prepended by lib/ops/dropout.ts), so forward and
// backward regenerate the same mask with no state buffer. Grid: ceil(n / WG) workgroups along x, y
// as a second dimension past 65535.
//
//   apply   out[i] = keep(i) ? a[i]·keep_scale : 0    (forward on x, backward on dy)

override WG: u32 = 256u;

struct Params {
  n: u32,            // number of elements
  nx: u32,           // workgroups along x
  seed: u32,
  threshold: u32,    // round(p·2^24)
  keep_scale: f32,   // 1/(1 − p)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn keep(i: u32) -> bool {
  return dropKeep(p.seed, p.threshold, i);
}

@compute @workgroup_size(WG)
fn apply(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * p.nx + wid.x) * WG + lid.x;
  if (i >= p.n) { return; }
  out[i] = select(0.0, a[i] * p.keep_scale, keep(i));
}
