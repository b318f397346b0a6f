// TEMPORARY simple matmul used until the tuned kernels land: C[b] = alpha·op(A[b])·op(B[b]) (+ C)
// (+ bias, act). One output per invocation, generic strides.
override WG: u32 = 64u;
struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  sAm: u32, sAk: u32, sBk: u32, sBn: u32,
  strideA: u32, strideB: u32, strideC: u32, flags: u32, // flags: 1 bias, 2 accumulate, 4 gelu, 8 relu
  alpha: f32, nx: u32, p0: u32, p1: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

fn erf_approx(x: f32) -> f32 {
  // Abramowitz–Stegun 7.1.26 (|error| ≤ 1.5e-7)
  let t = 1.0 / (1.0 + 0.3275911 * abs(x));
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-x * x);
  return select(-y, y, x >= 0.0);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let n = wid.x * WG + lid.x;
  let m = wid.y;
  let bi = wid.z;
  if (n >= p.N || m >= p.M) { return; }
  let oa = bi * p.strideA; let ob = bi * p.strideB;
  var s = 0.0;
  for (var k = 0u; k < p.K; k++) {
    s = fma(a[oa + m * p.sAm + k * p.sAk], b[ob + k * p.sBk + n * p.sBn], s);
  }
  s = s * p.alpha;
  let ci = bi * p.strideC + m * p.N + n;
  if ((p.flags & 2u) != 0u) { s = s + c[ci]; }
  if ((p.flags & 1u) != 0u) { s = s + bias[n]; }
  if ((p.flags & 4u) != 0u) { s = 0.5 * s * (1.0 + erf_approx(s * 0.7071067811865476)); }
  if ((p.flags & 8u) != 0u) { s = max(s, 0.0); }
  c[ci] = s;
}
