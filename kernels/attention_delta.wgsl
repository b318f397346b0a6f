// Per-row terms of the fused attention backward (kernels/attention_backward.wgsl) and the head
// mask gradient, from the merged gradient G = ∂loss/∂(hm·O) and the context O before the head
// mask (both [B·S, H·dh], read as flat rgba32float textures in row-major texel order):
//   r_i = G_i·O_i (head h's slice of row b·S + i),  delta[(b·H + h)·S + i] = hm·r_i (= dO_i·O_i),
//   headGrad[b·H + h] = Σ_i r_i (= ∂loss/∂hm).
// One invocation per (b, h), summing its rows in order (deterministic). Grid: x = ⌈B·H / 64⌉.

struct Params {
  S: u32,
  H: u32,
  D: u32, // texels per head: dh / 4
  shift: u32, // log2 of both textures' width in texels
  hasHeadMask: u32,
  BH: u32, // B·H
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var gtex: texture_2d<f32>;
@group(0) @binding(2) var otex: texture_2d<f32>;
@group(0) @binding(3) var<storage, read> headMask: array<f32>; // [B·H] when hasHeadMask
@group(0) @binding(4) var<storage, read_write> delta: array<f32>; // [B·H·S]
@group(0) @binding(5) var<storage, read_write> headGrad: array<f32>; // [B·H]

fn at(t: u32) -> vec2<u32> {
  let mask = (1u << p.shift) - 1u;
  return vec2<u32>(t & mask, t >> p.shift);
}

@compute @workgroup_size(64)
fn attention_delta(@builtin(global_invocation_id) gid: vec3u) {
  let bh = gid.x;
  if (bh >= p.BH) {
    return;
  }
  let b = bh / p.H;
  let h = bh % p.H;
  var hm = 1.0;
  if (p.hasHeadMask != 0u) {
    hm = headMask[bh];
  }
  var sum = 0.0;
  for (var i = 0u; i < p.S; i++) {
    let base = (b * p.S + i) * p.H * p.D + h * p.D;
    var r = 0.0;
    for (var c = 0u; c < p.D; c++) {
      r += dot(textureLoad(gtex, at(base + c), 0), textureLoad(otex, at(base + c), 0));
    }
    delta[bh * p.S + i] = hm * r;
    sum += r;
  }
  headGrad[bh] = sum;
}
