// The masked residual target of mask tuning (lib/prune/tune.ts, METHOD.md §6):
//   out[r, c] = (t[r, c] − x[r, c] − bias[c]) · rowMask[r]
// with t (the teacher's pre-LayerNorm sum) and x (the student's sub-layer input) [R, C] read as
// flat rgba32float textures in row-major texel order (texel i at (i mod 2^shift, i >> shift)):
// Mesa llvmpipe fetches texels through its SIMD path but loads storage lane by lane. One texel
// (four columns) per invocation; grid (nx, ny) of 64-lane workgroups, index (y·nx + x)·64 + local.

struct Params {
  n4: u32, // texels: R·C / 4
  C4: u32, // texels per row
  nx: u32, // workgroups along x
  shift: u32, // log2 of both textures' width in texels
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var ttex: texture_2d<f32>;
@group(0) @binding(2) var xtex: texture_2d<f32>;
@group(0) @binding(3) var<storage, read> bias4: array<vec4<f32>>; // [C / 4]
@group(0) @binding(4) var<storage, read> rowMask: array<f32>; // [R]
@group(0) @binding(5) var<storage, read_write> out4: array<vec4<f32>>; // [R, C / 4]

@compute @workgroup_size(64)
fn residual_rows(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * p.nx + wid.x) * 64u + lid.x;
  if (i >= p.n4) {
    return;
  }
  let row = i / p.C4;
  let mask = (1u << p.shift) - 1u;
  let at = vec2<u32>(i & mask, i >> p.shift);
  out4[i] = (textureLoad(ttex, at, 0) - textureLoad(xtex, at, 0) - bias4[i - row * p.C4]) *
    rowMask[row];
}
