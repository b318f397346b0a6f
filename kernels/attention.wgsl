// Fused multi-head attention for inference (no probabilities kept for a backward pass), for CPU
// adapters: Mesa llvmpipe runs storage loads lane by lane but fetches texels through its SIMD
// texture path, and the unfused attention (split heads, scores, masked softmax, P·V, merge) moves
// the [B·H, S, S] scores through storage several times. Here each invocation owns one query row
// of one head and streams over the keys with an online softmax (running max m, running sum l):
//   s_j = scale · q·k_j, masked as Hugging Face does (mode 0, BERT: s_j + (1 − mask_j)·f32 min;
//   mode 1, DistilBERT: s_j replaced by f32 min where mask_j = 0), so a row whose keys are all
//   masked comes out uniform, as in the unfused kernel;
//   ctx = Σ_j exp(s_j − m) v_j / Σ_j exp(s_j − m), times the head mask of (b, h) when present.
// The packed projection qkv [B·S, 3·H·dh] (Q block, K block, V block, head-major inside each)
// is read from an rgba32float texture holding it in row-major texel order: texel t is at
// (t mod 2^wShift, t >> wShift). The output is the merged context [B·S, H·dh] (the layout W_o
// reads), written as vec4s. Each invocation computes two query rows (2·gid.x and 2·gid.x + 1), so
// every key and value texel it fetches serves both (≈ 1.3× one row per invocation under load,
// tmp micro-benchmark at B=32, S=128, H=4, dh=32). Grid: x = ⌈S / (2·WG)⌉, y = H, z = B.

override WG: u32 = 64u;
override DH4: u32 = 8u; // head width / 4, at most MAX_DH4

const MAX_DH4 = 16u;
const F32_MIN = -3.40282346638528859812e+38;

struct Params {
  S: u32,
  H: u32,
  rowTexels: u32, // texels per token row of qkv: 3·H·dh / 4
  wShift: u32, // log2 of the texture width in texels
  mode: u32, // 0: BERT additive mask, 1: DistilBERT masked_fill
  scale: f32, // 1 / √dh
  hasHeadMask: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var qkv: texture_2d<f32>;
@group(0) @binding(2) var<storage, read> keyMask: array<f32>; // [B, S]
@group(0) @binding(3) var<storage, read> headMask: array<f32>; // [B·H] when hasHeadMask
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>; // [B·S, H·dh / 4]

fn texel(t: u32) -> vec4<f32> {
  let mask = (1u << p.wShift) - 1u;
  return textureLoad(qkv, vec2<u32>(t & mask, t >> p.wShift), 0);
}

@compute @workgroup_size(WG)
fn attention(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let i0 = 2u * gid.x;
  let h = wid.y;
  let b = wid.z;
  if (i0 >= p.S) {
    return;
  }
  let i1 = min(i0 + 1u, p.S - 1u);
  var q0: array<vec4<f32>, MAX_DH4>;
  var q1: array<vec4<f32>, MAX_DH4>;
  var a0: array<vec4<f32>, MAX_DH4>;
  var a1: array<vec4<f32>, MAX_DH4>;
  let qb0 = (b * p.S + i0) * p.rowTexels + h * DH4;
  let qb1 = (b * p.S + i1) * p.rowTexels + h * DH4;
  for (var c = 0u; c < DH4; c++) {
    q0[c] = texel(qb0 + c);
    q1[c] = texel(qb1 + c);
    a0[c] = vec4<f32>(0.0);
    a1[c] = vec4<f32>(0.0);
  }
  var m0 = F32_MIN;
  var m1 = F32_MIN;
  var l0 = 0.0;
  var l1 = 0.0;
  for (var j = 0u; j < p.S; j++) {
    let kBase = (b * p.S + j) * p.rowTexels + (p.H + h) * DH4;
    var s0 = 0.0;
    var s1 = 0.0;
    for (var c = 0u; c < DH4; c++) {
      let k = texel(kBase + c);
      s0 += dot(q0[c], k);
      s1 += dot(q1[c], k);
    }
    s0 *= p.scale;
    s1 *= p.scale;
    let km = keyMask[b * p.S + j];
    if (p.mode == 0u) {
      s0 += (1.0 - km) * F32_MIN;
      s1 += (1.0 - km) * F32_MIN;
    } else if (km == 0.0) {
      s0 = F32_MIN;
      s1 = F32_MIN;
    }
    let n0 = max(m0, s0);
    let n1 = max(m1, s1);
    let c0 = exp(m0 - n0);
    let c1 = exp(m1 - n1);
    let e0 = exp(s0 - n0);
    let e1 = exp(s1 - n1);
    l0 = l0 * c0 + e0;
    l1 = l1 * c1 + e1;
    let vBase = kBase + p.H * DH4;
    for (var c = 0u; c < DH4; c++) {
      let v = texel(vBase + c);
      a0[c] = a0[c] * c0 + e0 * v;
      a1[c] = a1[c] * c1 + e1 * v;
    }
    m0 = n0;
    m1 = n1;
  }
  var f0 = 1.0 / l0;
  var f1 = 1.0 / l1;
  if (p.hasHeadMask != 0u) {
    f0 *= headMask[b * p.H + h];
    f1 *= headMask[b * p.H + h];
  }
  let o0 = (b * p.S + i0) * p.H * DH4 + h * DH4;
  let o1 = (b * p.S + i1) * p.H * DH4 + h * DH4;
  for (var c = 0u; c < DH4; c++) {
    out[o0 + c] = a0[c] * f0;
    if (i0 + 1u < p.S) {
      out[o1 + c] = a1[c] * f1;
    }
  }
}
