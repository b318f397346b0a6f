// Embedding lookup and its deterministic scatter-add backward.
//
// gather:   out[n, j] = table[ids[n], j] for out [N, d]; an id outside [0, V) yields a zero row
//           (gather4: the same, a vec4 of columns per invocation, for d % 4 == 0;
//           gather_sum4: out[n, j] = table[ids[n], j] + tableB[idsB[n], j], vec4s, for the
//           position + token-type rows of fused inference).
// backward: one invocation per (unique id u, column j); the CPU sorted the positions by id, so
//           `idx` holds [uniq (U) | seg (U + 1) | perm (N)] and the rows of id uniq[u] are
//           perm[seg[u]] … perm[seg[u + 1] − 1] in increasing position order. The sum is formed in
//           that order and then added to dtable (no atomics: every output element has one writer).
// Grid: ceil(n / WG) workgroups along x, y as a second index dimension past 65535 groups.

override WG: u32 = 256u;

struct Params {
  n: u32,   // invocations that do work: N·d (gather) or U·d (backward)
  nx: u32,  // workgroups along x
  d: u32,   // embedding width
  V: u32,   // vocabulary size (rows of table)
  U: u32,   // number of distinct ids (backward)
  VB: u32,  // rows of tableB (gather_sum4)
}

@group(0) @binding(0) var<uniform> p: Params;

fn flat(wid: vec3u, lid: vec3u) -> u32 {
  return (wid.y * p.nx + wid.x) * WG + lid.x;
}

@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// out[n, j] = table[ids[n], j]
@compute @workgroup_size(WG)
fn gather(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  let n = i / p.d;
  let j = i - n * p.d;
  let id = ids[n];
  if (id < 0 || u32(id) >= p.V) {
    out[i] = 0.0;
    return;
  }
  out[i] = table[u32(id) * p.d + j];
}

@group(0) @binding(1) var<storage, read> table4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>;

// The same for d % 4 == 0, four columns per invocation (p.n = N·d/4 and p.d = d/4 here): llvmpipe
// runs storage loads and stores lane by lane, so a quarter of the instructions.
@compute @workgroup_size(WG)
fn gather4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  let n = i / p.d;
  let j = i - n * p.d;
  let id = ids[n];
  if (id < 0 || u32(id) >= p.V) {
    out4[i] = vec4<f32>(0.0);
    return;
  }
  out4[i] = table4[u32(id) * p.d + j];
}

@group(0) @binding(4) var<storage, read> tableB: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> idsB: array<i32>;

fn rowB(n: u32, j: u32) -> vec4<f32> {
  let id = idsB[n];
  if (id < 0 || u32(id) >= p.VB) {
    return vec4<f32>(0.0);
  }
  return tableB[u32(id) * p.d + j];
}

// out4[n, j] = table4[ids[n], j] + tableB[idsB[n], j] (p.n = N·d/4, p.d = d/4; an id out of its
// table's range contributes a zero row)
@compute @workgroup_size(WG)
fn gather_sum4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  let n = i / p.d;
  let j = i - n * p.d;
  let id = ids[n];
  var a = vec4<f32>(0.0);
  if (id >= 0 && u32(id) < p.V) {
    a = table4[u32(id) * p.d + j];
  }
  out4[i] = a + rowB(n, j);
}

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> dtable: array<f32>;

// dtable[uniq[u], j] += Σ_{k = seg[u]}^{seg[u+1]−1} dy[perm[k], j]   (k increasing)
@compute @workgroup_size(WG)
fn scatter_add(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, lid);
  if (i >= p.n) { return; }
  let u = i / p.d;
  let j = i - u * p.d;
  let v = u32(idx[u]);
  let first = u32(idx[p.U + u]);
  let last = u32(idx[p.U + u + 1u]);
  let permBase = 2u * p.U + 1u;
  var acc = 0.0;
  for (var k = first; k < last; k++) {
    acc += dy[u32(idx[permBase + k]) * p.d + j];
  }
  let o = v * p.d + j;
  dtable[o] = dtable[o] + acc;
}
