// The FFN activation and per-example neuron mask of a pass that keeps activations for its
// backward (training, the Fisher pass), for CPU adapters: Mesa llvmpipe runs storage loads lane
// by lane but fetches texels through its SIMD texture path, so the large [B·S, F] tensors are read
// from flat rgba32float textures (row-major texel order: texel t at (t mod 2^shift, t >> shift)).
// With h the FFN's pre-activation, act GELU (erf-based, as the matmul epilogue's) or ReLU and
// m the mask [B, F] (example b = row / S):
//   ffn_act_fwd:  zm = act(h) ∘ m[b]        (act(h) alone without a mask)
//   ffn_act_bwd:  dh = act'(h) ∘ m[b] ∘ dzm,  ds[b, c] = Σ_t dzm[b·S + t, c] · act(h[b·S + t, c])
//                 and, with BIAS, the per-example column sums of dh, dbp[b, c] = Σ_t dh[b·S + t, c]
//                 (the FFN bias gradient is Σ_b dbp[b, c]: B rows to sum instead of B·S)
// so the backward needs h only (act(h) is recomputed). ffn_act_bwd gives one invocation four
// columns of one example and sums its S rows in order (deterministic). Needs normal_cdf prepended
// (lib/ops/ffn_act.ts builds it on the matmul epilogue's erf).

// GELU (1) or ReLU (2).
override ACT: u32 = 1u;
// Whether a mask is bound (else m is a placeholder and the mask is 1).
override MASKED: bool = true;
// Whether ffn_act_bwd writes the per-example column sums of dh (else dbp4 is a placeholder).
override BIAS: bool = false;

struct Params {
  n4: u32, // texels of h: B·S·F / 4
  F4: u32, // texels per row: F / 4
  S: u32, // rows per example
  nx: u32, // workgroups along x (ffn_act_fwd; index = (y·nx + x)·64 + local)
  shift: u32, // log2 of the textures' width in texels
  B: u32, // examples
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var htex: texture_2d<f32>; // h
@group(0) @binding(2) var dtex: texture_2d<f32>; // dzm (ffn_act_bwd; a placeholder in ffn_act_fwd)
@group(0) @binding(3) var<storage, read> m4: array<vec4<f32>>; // [B, F / 4]
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>; // zm, or dh
@group(0) @binding(5) var<storage, read_write> ds4: array<vec4<f32>>; // [B, F / 4] (ffn_act_bwd)
@group(0) @binding(6) var<storage, read_write> dbp4: array<vec4<f32>>; // [B, F / 4] (ffn_act_bwd)

fn at(t: u32) -> vec2<u32> {
  let mask = (1u << p.shift) - 1u;
  return vec2<u32>(t & mask, t >> p.shift);
}

fn act4(x: vec4<f32>) -> vec4<f32> {
  if (ACT == 2u) {
    return max(x, vec4<f32>(0.0));
  }
  return x * vec4<f32>(normal_cdf(x.x), normal_cdf(x.y), normal_cdf(x.z), normal_cdf(x.w));
}

fn gelu_grad1(x: f32) -> f32 {
  return normal_cdf(x) + x * (0.39894228040143267794 * exp(-0.5 * x * x));
}

fn act_grad4(x: vec4<f32>) -> vec4<f32> {
  if (ACT == 2u) {
    return select(vec4<f32>(0.0), vec4<f32>(1.0), x > vec4<f32>(0.0));
  }
  return vec4<f32>(gelu_grad1(x.x), gelu_grad1(x.y), gelu_grad1(x.z), gelu_grad1(x.w));
}

fn maskOf(b: u32, c: u32) -> vec4<f32> {
  if (MASKED) {
    return m4[b * p.F4 + c];
  }
  return vec4<f32>(1.0);
}

@compute @workgroup_size(64)
fn ffn_act_fwd(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * p.nx + wid.x) * 64u + lid.x;
  if (i >= p.n4) {
    return;
  }
  let row = i / p.F4;
  let c = i - row * p.F4;
  out4[i] = act4(textureLoad(htex, at(i), 0)) * maskOf(row / p.S, c);
}

@compute @workgroup_size(64)
fn ffn_act_bwd(@builtin(global_invocation_id) gid: vec3u) {
  let k = gid.x;
  if (k >= p.B * p.F4) {
    return;
  }
  let b = k / p.F4;
  let c = k - b * p.F4;
  let m = maskOf(b, c);
  var ds = vec4<f32>(0.0);
  var db = vec4<f32>(0.0);
  for (var t = 0u; t < p.S; t++) {
    let i = (b * p.S + t) * p.F4 + c;
    let x = textureLoad(htex, at(i), 0);
    let g = textureLoad(dtex, at(i), 0);
    let d = act_grad4(x) * (g * m);
    out4[i] = d;
    if (BIAS) {
      db += d;
    }
    if (MASKED) {
      ds += g * act4(x);
    }
  }
  if (MASKED) {
    ds4[k] = ds;
  }
  if (BIAS) {
    dbp4[k] = db;
  }
}
