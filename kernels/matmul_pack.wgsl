// Repacks a matmul operand into an rgba32float texture of K-rows for kernels/matmul_tex.wgsl:
//   texel (t, z·R + r) = (src[e(z, r, 4t)], …, src[e(z, r, 4t + 3)]), zero where 4t + c ≥ K
//   and in rows r ≥ R_data (a shared B whose rows are padded: lib/ops/matmul.ts `linearPadded`),
//   e(z, r, k) = off + (z0 + z)·s_z + r·s_r + k·s_k.
// Element strides make it a copy for row-major operands whose K is not a multiple of 64 (the
// row pitch copyBufferToTexture needs) and a transpose for operands whose reduction dimension is
// not contiguous (X·W, Xᵀ·Y). One pass over the operand, cheap next to the O(M·N·K) product.
// Grid: x = ⌈K4 / WGX⌉, y = ⌈R / WGY⌉, z = batch items of this dispatch.

override WGX: u32 = 8u;
override WGY: u32 = 8u;

struct Params {
  R: u32, // rows per batch item
  K: u32, // values per row
  K4: u32, // texels per row = ⌈K / 4⌉
  s_r: u32, // element stride between rows
  s_k: u32, // element stride along K
  s_z: u32, // element stride between batch items
  z0: u32, // first batch item of this dispatch
  R_data: u32, // rows that hold values (≤ R); rows past it are written as zeros
  off: u32, // element offset of the operand (a block of a product past the texture limits)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var dst: texture_storage_2d<rgba32float, write>;

fn value(r: u32, base: u32, k: u32) -> f32 {
  if (k >= p.K || r >= p.R_data) {
    return 0.0;
  }
  return src[base + k * p.s_k];
}

@compute @workgroup_size(WGX, WGY)
fn pack(@builtin(global_invocation_id) g: vec3u) {
  let t = g.x;
  let r = g.y;
  if (t >= p.K4 || r >= p.R) {
    return;
  }
  let base = p.off + (p.z0 + g.z) * p.s_z + r * p.s_r;
  let k = 4u * t;
  let v = vec4f(value(r, base, k), value(r, base, k + 1u), value(r, base, k + 2u), value(r, base, k + 3u));
  textureStore(dst, vec2i(i32(t), i32(g.z * p.R + r)), v);
}
