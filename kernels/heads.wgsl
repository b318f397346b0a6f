// Attention head split/merge: moves a column block of a packed activation x [B·S, W] to and from
// the per-head layout [B·H, S, dh]. Head h of the block uses columns colOffset + h·dh … + dh − 1.
// Both entries run one invocation per per-head element i = (b·H + h)·S·dh + s·dh + k.
// Grid: ceil(n / WG) workgroups along x, y as a second index dimension past 65535 groups.

override WG: u32 = 256u;

struct Params {
  n: u32,         // B·H·S·dh
  nx: u32,        // workgroups along x
  S: u32,         // sequence length
  H: u32,         // heads
  dh: u32,        // head width
  W: u32,         // row width of the packed tensor
  colOffset: u32, // first column of the head block
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
// The same buffers as vec4s, for split4/merge4 (dh, W and colOffset multiples of 4; Params then
// count vec4s): llvmpipe loads and stores storage lane by lane, so a quarter of the accesses.
@group(0) @binding(1) var<storage, read> src4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst4: array<vec4<f32>>;

fn flat(wid: vec3u, lid: vec3u) -> u32 {
  return (wid.y * p.nx + wid.x) * WG + lid.x;
}

// Offset in the packed [B·S, W] tensor of per-head element i.
fn packedIndex(i: u32) -> u32 {
  let k = i % p.dh;
  let rest = i / p.dh;
  let s = rest % p.S;
  let bh = rest / p.S;
  let h = bh % p.H;
  let b = bh / p.H;
  return (b * p.S + s) * p.W + p.colOffset + h * p.dh + k;
}

// dst (heads layout)[i] = src (packed)[packedIndex(i)]
@compute @workgroup_size(WG)
fn split(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  dst[i] = src[packedIndex(i)];
}

// dst (packed)[packedIndex(i)] = src (heads layout)[i]; other columns of dst are left untouched
@compute @workgroup_size(WG)
fn merge(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  dst[packedIndex(i)] = src[i];
}

// split on vec4s
@compute @workgroup_size(WG)
fn split4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  dst4[i] = src4[packedIndex(i)];
}

// merge on vec4s
@compute @workgroup_size(WG)
fn merge4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  dst4[packedIndex(i)] = src4[i];
}
