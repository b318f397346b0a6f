// Dropout with a counter-based RNG: the keep decision of element i is a pure hash of (seed, i),
// so forward and backward regenerate the same mask with no state buffer. The hash is two rounds
// of Wellons' "lowbias32" integer mixer; its top 24 bits u are compared with threshold =
// round(p·2^24): keep ⇔ u ≥ threshold (probability 1 − p). Grid: ceil(n / WG) workgroups along
// x, y as a second dimension past 65535.
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

fn lowbias32(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u;
  x *= 0x7feb352du;
  x ^= x >> 15u;
  x *= 0x846ca68bu;
  x ^= x >> 16u;
  return x;
}

fn keep(i: u32) -> bool {
  let key = lowbias32(p.seed ^ 0x9e3779b9u);
  let h = lowbias32(lowbias32(i ^ key) + key);
  return (h >> 8u) >= p.threshold;
}

@compute @workgroup_size(WG)
fn apply(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * p.nx + wid.x) * WG + lid.x;
  if (i >= p.n) { return; }
  out[i] = select(0.0, a[i] * p.keep_scale, keep(i));
}
