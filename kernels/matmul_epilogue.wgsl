// Matmul epilogue shared by kernels/matmul.wgsl and kernels/matmul_tex.wgsl (appended to their
// source by lib/ops/matmul.ts): exact-erf GELU and ReLU, per value (epilogue) and per vec4
// (epilogue4). The activation and whether the result is added to `out` are override constants,
// not uniforms: Mesa llvmpipe runs both sides of a branch under a lane mask even when the
// condition is uniform, so a runtime `act` paid for the GELU polynomials in every product
// (11–15% of a K = 128 product at M = 4096, 33% at K = 4; same-run tmp micro-benchmark, idle).
// lib/ops/matmul.ts compiles one pipeline per (activation, accumulate) pair it uses.

const ACT_GELU = 1u;
const ACT_RELU = 2u;

// 0 none, ACT_GELU, ACT_RELU.
override ACT: u32 = 0u;
// Add the result to the output's current value instead of overwriting it.
override ACCUMULATE: bool = false;

// erf(x) for f32 with max abs error ≈ 6e-8 (two minimax pieces, after N. Juffa's erff).
fn erf_f32(x: f32) -> f32 {
  let t = abs(x);
  let s = x * x;
  if (t > 0.927734375) {
    var r = fma(-1.72853470e-5, t, 3.83197126e-4);
    let u = fma(-3.88396438e-3, t, 2.42546219e-2);
    r = fma(r, s, u);
    r = fma(r, t, -1.06777877e-1);
    r = fma(r, t, -6.34846687e-1);
    r = fma(r, t, -1.28717512e-1);
    r = fma(r, t, -t);
    return select(1.0 - exp(r), exp(r) - 1.0, x < 0.0);
  }
  var r = -5.96761703e-4;
  r = fma(r, s, 4.99119423e-3);
  r = fma(r, s, -2.67681349e-2);
  r = fma(r, s, 1.12819925e-1);
  r = fma(r, s, -3.76125336e-1);
  r = fma(r, s, 1.28379166e-1);
  return fma(r, x, x);
}

// Exact (erf) GELU, Hugging Face "gelu": x · Φ(x) = 0.5 · x · (1 + erf(x / √2)).
fn gelu(x: f32) -> f32 {
  return 0.5 * x * (1.0 + erf_f32(x * 0.70710678118654752));
}

fn epilogue(v: f32) -> f32 {
  if (ACT == ACT_GELU) {
    return gelu(v);
  }
  if (ACT == ACT_RELU) {
    return max(v, 0.0);
  }
  return v;
}

fn epilogue4(v: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(epilogue(v.x), epilogue(v.y), epilogue(v.z), epilogue(v.w));
}
