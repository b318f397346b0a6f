// Dropout with a counter-based RNG: the keep decision of element i is a pure hash of (seed, i)
// (`dropKeep`, kernels/dropout_hash.wgsl, prepended by lib/ops/dropout.ts), so forward and
// backward regenerate the same mask with no state buffer. Grid: ceil(n / WG) workgroups along x, y
// as a second dimension past 65535.
//
//   apply   out[i] = keep(i) ? a[i]·keep_scale : 0    (forward on x, backward on dy)
//   apply4  the same for n % 4 == 0 through a flat texture (below)

override WG: u32 = 256u;

struct Params {
  n: u32,            // number of elements
  nx: u32,           // workgroups along x
  seed: u32,
  threshold: u32,    // round(p·2^24)
  keep_scale: f32,   // 1/(1 − p)
  shift: u32,        // apply4: log2 of the flat texture's width in texels
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn keep(i: u32) -> bool {
  return dropKeep(p.seed, p.threshold, i);
}

@compute @workgroup_size(WG)
fn apply(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * p.nx + wid.x) * WG + lid.x;
  if (i >= p.n) { return; }
  out[i] = select(0.0, a[i] * p.keep_scale, keep(i));
}

// apply4 (CPU adapters, n % 4 == 0): the same, four elements per invocation, the input read from a
// flat rgba32float texture (texel t at (t mod 2^shift, t >> shift), lib/ops/flat_texture.ts) and
// the output stored as a vec4 — llvmpipe runs storage loads and stores lane by lane but texel
// fetches through its SIMD path. Uses binding 1 and 2 as a texture and a vec4 array.
@group(0) @binding(1) var atex: texture_2d<f32>;
@group(0) @binding(2) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn apply4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = (wid.y * p.nx + wid.x) * WG + lid.x;
  if (t >= p.n / 4u) { return; }
  let v = textureLoad(atex, vec2u(t & ((1u << p.shift) - 1u), t >> p.shift), 0) * p.keep_scale;
  let i = 4u * t;
  out4[t] = vec4<f32>(
    select(0.0, v.x, keep(i)),
    select(0.0, v.y, keep(i + 1u)),
    select(0.0, v.z, keep(i + 2u)),
    select(0.0, v.w, keep(i + 3u)),
  );
}
