// One AdamW step in place, as torch.optim.AdamW (amsgrad off), on g = grad·gscale (gscale: the
// gradient-clipping coefficient, so clipping needs no pass of its own; 1 without clipping):
//   param ← param·(1 − lr·wd)
//   m ← m + (1 − β1)·(g − m)            (torch: exp_avg.lerp_(grad, 1 − β1))
//   v ← β2·v + (1 − β2)·g²
//   param ← param − step_size·m / (√v / bc2_sqrt + eps)
// with step_size = lr/(1 − β1^t) and bc2_sqrt = √(1 − β2^t) computed on the CPU in f64.
// Grid: ceil(n / WG) workgroups along x, y as a second dimension past 65535. step4 is the same
// update on vec4s (n counts vec4s there; used when the size is a multiple of 4): llvmpipe runs
// storage accesses lane by lane, so a quarter of them; every component sees the same operations.

override WG: u32 = 256u;

struct Params {
  n: u32,
  nx: u32,
  decay: f32,      // 1 − lr·weight_decay
  beta1: f32,
  beta2: f32,
  step_size: f32,  // lr / (1 − β1^t)
  bc2_sqrt: f32,   // √(1 − β2^t)
  eps: f32,
  one_minus_beta1: f32,  // 1 − β1 computed in f64 (as torch does), then rounded
  one_minus_beta2: f32,  // 1 − β2 likewise
  gscale: f32,     // multiplies the gradient (clip coefficient)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(WG)
fn step(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * p.nx + wid.x) * WG + lid.x;
  if (i >= p.n) { return; }
  let g = grad[i] * p.gscale;
  let mi = m[i] + p.one_minus_beta1 * (g - m[i]);
  let vi = p.beta2 * v[i] + p.one_minus_beta2 * g * g;
  m[i] = mi;
  v[i] = vi;
  param[i] = param[i] * p.decay - p.step_size * mi / (sqrt(vi) / p.bc2_sqrt + p.eps);
}

@group(0) @binding(1) var<storage, read_write> param4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grad4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> m4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> v4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn step4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * p.nx + wid.x) * WG + lid.x;
  if (i >= p.n) { return; }
  let g = grad4[i] * p.gscale;
  let mi = m4[i] + p.one_minus_beta1 * (g - m4[i]);
  let vi = p.beta2 * v4[i] + p.one_minus_beta2 * g * g;
  m4[i] = mi;
  v4[i] = vi;
  param4[i] = param4[i] * p.decay - p.step_size * mi / (sqrt(vi) / p.bc2_sqrt + p.eps);
}
