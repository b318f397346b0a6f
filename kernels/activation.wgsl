// Elementwise activations and their backward rules over flat f32 arrays. Grid: ceil(n / WG)
// workgroups along x, y as a second dimension past 65535 (index = (y·nx + x)·WG + local).
//
//   gelu(x)  = x·Φ(x), Φ the standard normal CDF via erf (Hugging Face "gelu", exact form)
//   gelu'(x) = Φ(x) + x·φ(x)
//   relu(x)  = max(x, 0), relu' = 1 where x > 0 else 0 (torch's threshold_backward)
//   tanh(x), tanh' = 1 − y² with y = tanh(x)
//
// WGSL has no erf: normal_cdf below uses the fdlibm (Sun) rational approximations of s_erf.c,
// evaluated in f32 (max abs error ≈ 6e-8 against the exact erf). Φ(x) for x ≤ −0.84375·√2 uses
// erfc directly so the negative tail keeps its relative accuracy.

override WG: u32 = 256u;

struct Params {
  n: u32,   // number of elements
  nx: u32,  // workgroups along x
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;       // x (forward) or dy (backward)
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;       // x or y (backward)
@group(0) @binding(3) var<storage, read_write> bout: array<f32>;

fn flat(wid: vec3u, lid: vec3u) -> u32 {
  return (wid.y * p.nx + wid.x) * WG + lid.x;
}

// ---------------------------------------------------------------- erf (fdlibm s_erf.c)

const ERX: f32 = 8.45062911510467529297e-01;

fn poly_pp(z: f32) -> f32 {
  return 1.28379167095512558561e-01 + z * (-3.25042107247001499370e-01 + z * (-2.84817495755985104766e-02 + z * (-5.77027029648944159157e-03 + z * -2.37630166566501626084e-05)));
}
fn poly_qq(z: f32) -> f32 {
  return 1.0 + z * (3.97917223959155352819e-01 + z * (6.50222499887672944485e-02 + z * (5.08130628187576562776e-03 + z * (1.32494738004321644526e-04 + z * -3.96022827877536812320e-06))));
}
fn poly_pa(s: f32) -> f32 {
  return -2.36211856075265944077e-03 + s * (4.14856118683748331666e-01 + s * (-3.72207876035701323847e-01 + s * (3.18346619901161753674e-01 + s * (-1.10894694282396677476e-01 + s * (3.54783043256182359371e-02 + s * -2.16637559486879084300e-03)))));
}
fn poly_qa(s: f32) -> f32 {
  return 1.0 + s * (1.06420880400844228286e-01 + s * (5.40397917702171048937e-01 + s * (7.18286544141962662868e-02 + s * (1.26171219808761642112e-01 + s * (1.36370839120290507362e-02 + s * 1.19844998467991074170e-02)))));
}
// The two tail rationals share one evaluation: rb and sb are padded with a leading zero
// coefficient to the degrees of ra and sa (c + s·0 = c exactly for the finite s used), and each
// coefficient is selected by the range of a.
fn poly_r(s: f32, lo: bool) -> f32 {
  var r = select(0.0, -9.81432934416914548592e+00, lo);
  r = select(-4.83519191608651397019e+02, -8.12874355063065934246e+01, lo) + s * r;
  r = select(-1.02509513161107724954e+03, -1.84605092906711035994e+02, lo) + s * r;
  r = select(-6.37566443368389627722e+02, -1.62396669462573470355e+02, lo) + s * r;
  r = select(-1.60636384855821916062e+02, -6.23753324503260060396e+01, lo) + s * r;
  r = select(-1.77579549177547519889e+01, -1.05586262253232909814e+01, lo) + s * r;
  r = select(-7.99283237680523006574e-01, -6.93858572707181764372e-01, lo) + s * r;
  return select(-9.86494292470009928597e-03, -9.86494403484714822705e-03, lo) + s * r;
}
fn poly_s(s: f32, lo: bool) -> f32 {
  var r = select(0.0, -6.04244152148580987438e-02, lo);
  r = select(-2.24409524465858183362e+01, 6.57024977031928170135e+00, lo) + s * r;
  r = select(4.74528541206955367215e+02, 1.08635005541779435134e+02, lo) + s * r;
  r = select(2.55305040643316442583e+03, 4.29008140027567833386e+02, lo) + s * r;
  r = select(3.19985821950859553908e+03, 6.45387271733267880336e+02, lo) + s * r;
  r = select(1.53672958608443695994e+03, 4.34565877475229228821e+02, lo) + s * r;
  r = select(3.25792512996573918826e+02, 1.37657754143519042600e+02, lo) + s * r;
  r = select(3.03380607434824582924e+01, 1.96512716674392571292e+01, lo) + s * r;
  return 1.0 + s * r;
}

// erfc(a) for a ≥ 1.25 (relative accuracy kept in the tail; 0 past a = 10); any value for
// smaller a (callers select it away).
fn erfc_tail(a: f32) -> f32 {
  let s = 1.0 / (a * a);
  let lo = a < 2.857142857;
  let r = poly_r(s, lo) / poly_s(s, lo);
  let z = bitcast<f32>(bitcast<u32>(a) & 0xfffff000u); // a with its low mantissa bits cleared
  let v = exp(-z * z - 0.5625) * exp((z - a) * (z + a) + r) / a;
  return select(v, 0.0, a >= 10.0);
}

// Φ(x) = ½·erfc(−x/√2), computed from erfc in the negative tail. Mesa llvmpipe runs both sides of
// every branch under a lane mask, so the ranges are not branched on: each rational (small, middle,
// tail) is evaluated once, for |t|, and the result selected by range — the same expressions the
// fdlibm branches evaluate (bench/README.md, session 9: 23% faster GELU, equally accurate).
fn normal_cdf(x: f32) -> f32 {
  let t = x * 0.70710678118654752;
  let a = abs(t);
  let small = t + t * (poly_pp(a * a) / poly_qq(a * a)); // erf(t), |t| < 0.84375
  let mid = poly_pa(a - 1.0) / poly_qa(a - 1.0); // erf(|t|) − ERX, 0.84375 ≤ |t| < 1.25
  let tail = erfc_tail(a); // erfc(|t|), |t| ≥ 1.25
  var y = 0.5 * (1.0 + small);
  y = select(y, 0.5 * (1.0 + (ERX + mid)), t >= 0.84375);
  y = select(y, 0.5 * (1.0 + (1.0 - tail)), t >= 1.25);
  y = select(y, 0.5 * (1.0 - ERX - mid), t <= -0.84375);
  return select(y, 0.5 * tail, t <= -1.25);
}

// tanh without overflow for large |x| (some drivers' tanh returns NaN there).
fn tanh_f(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.0625) {
    let z = x * x;
    return x * (1.0 + z * (-0.33333333333 + z * (0.13333333333 + z * -0.053968253968)));
  }
  let e = exp(-2.0 * min(a, 20.0));
  return sign(x) * (1.0 - e) / (1.0 + e);
}

// ---------------------------------------------------------------- entry points

@compute @workgroup_size(WG)
fn gelu(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  let x = a[i];
  out[i] = x * normal_cdf(x);
}

@compute @workgroup_size(WG)
fn gelu_backward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  let x = b[i];
  let pdf = 0.39894228040143267794 * exp(-0.5 * x * x);
  bout[i] = a[i] * (normal_cdf(x) + x * pdf);
}

@compute @workgroup_size(WG)
fn relu(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  out[i] = max(a[i], 0.0);
}

@compute @workgroup_size(WG)
fn relu_backward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  bout[i] = select(0.0, a[i], b[i] > 0.0);
}

@compute @workgroup_size(WG)
fn tanh_forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  out[i] = tanh_f(a[i]);
}

@compute @workgroup_size(WG)
fn tanh_backward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  let y = b[i];
  bout[i] = a[i] * (1.0 - y * y);
}

// ---------------------------------------------------------------- vec4 twins (n % 4 == 0)
// The same GELU and its backward, four elements per invocation (p.n counts vec4s here):
// llvmpipe runs storage loads and stores lane by lane, so a quarter of those instructions.

@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> bout4: array<vec4<f32>>;

fn gelu_grad(x: f32) -> f32 {
  return normal_cdf(x) + x * (0.39894228040143267794 * exp(-0.5 * x * x));
}

@compute @workgroup_size(WG)
fn gelu4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  let x = a4[i];
  out4[i] = x * vec4<f32>(normal_cdf(x.x), normal_cdf(x.y), normal_cdf(x.z), normal_cdf(x.w));
}

@compute @workgroup_size(WG)
fn gelu_backward4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  let x = b4[i];
  bout4[i] = a4[i] * vec4<f32>(gelu_grad(x.x), gelu_grad(x.y), gelu_grad(x.z), gelu_grad(x.w));
}
