// Attention softmax with a key padding mask, and its backward. Scores are [B·H, Sq, Sk] (row =
// query, column = key); keyMask is [B, Sk] f32 (1 = real token, 0 = padding). Two variant
// families, each deterministic (fixed reduction order):
//   GPU class: one workgroup per row (row = wid.y·nx + wid.x); max and sum are fixed-order tree
//     reductions in workgroup memory. WG must be a power of two ≤ 256.
//   CPU class (*_rows): one invocation per row (row = (wid.y·nx + wid.x)·WG + lid), serial
//     loops in increasing key order, no barriers (suits CPU adapters such as llvmpipe).
//
//   masked_forward, masked_forward_rows  P = softmax(v) with v = scale·s + (1 − m)·MIN   (mode 0, Hugging Face BERT)
//                                      v = m == 0 ? MIN : scale·s   (mode 1, HF DistilBERT)
//                   MIN = −3.4028234663852886e38 = torch.finfo(float32).min
//   backward, backward_rows              dS = scale·P∘(dP − Σ_k dP∘P)   (rows of the last dimension); with
//                   mode 1 (distilbert) masked keys get 0, since masked_fill cuts their gradient
//                   (this only matters in rows whose keys are all masked, where P is uniform)

override WG: u32 = 256u;

struct Params {
  rows: u32,   // number of rows (B·H·Sq)
  cols: u32,   // Sk
  nx: u32,     // workgroups along x
  sq: u32,     // queries per (batch, head)
  heads: u32,  // H
  mode: u32,   // 0 = bert (additive), 1 = distilbert (masked_fill); backward: 1 = zero masked keys
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

const F32_MIN: f32 = -3.4028234663852886e38;

var<workgroup> red: array<f32, 256>;

fn reduce_max(lid: u32, v: f32) -> f32 {
  workgroupBarrier();
  red[lid] = v;
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    workgroupBarrier();
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
  }
  workgroupBarrier();
  return red[0];
}

fn reduce_sum(lid: u32, v: f32) -> f32 {
  workgroupBarrier();
  red[lid] = v;
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    workgroupBarrier();
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
  }
  workgroupBarrier();
  return red[0];
}

// ---------------------------------------------------------------- forward
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> key_mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> probs: array<f32>;

fn masked_value(base: u32, mbase: u32, k: u32) -> f32 {
  let m = key_mask[mbase + k];
  let v = p.scale * scores[base + k];
  if (p.mode == 0u) { return v + (1.0 - m) * F32_MIN; }
  return select(v, F32_MIN, m == 0.0);
}

@compute @workgroup_size(WG)
fn masked_forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let row = wid.y * p.nx + wid.x;
  if (row >= p.rows) { return; }
  let lid = lid3.x;
  let base = row * p.cols;
  let b = row / (p.sq * p.heads);
  let mbase = b * p.cols;
  var mx = F32_MIN;
  for (var k = lid; k < p.cols; k += WG) { mx = max(mx, masked_value(base, mbase, k)); }
  mx = reduce_max(lid, mx);
  var sum = 0.0;
  for (var k = lid; k < p.cols; k += WG) { sum += exp(masked_value(base, mbase, k) - mx); }
  sum = reduce_sum(lid, sum);
  let inv = 1.0 / sum;
  for (var k = lid; k < p.cols; k += WG) {
    probs[base + k] = exp(masked_value(base, mbase, k) - mx) * inv;
  }
}

// CPU class: one invocation per row. exp is evaluated once per key: stored, then scaled by 1/sum.
@compute @workgroup_size(WG)
fn masked_forward_rows(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_id) lid3: vec3u,
) {
  let row = (wid.y * p.nx + wid.x) * WG + lid3.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  let mbase = (row / (p.sq * p.heads)) * p.cols;
  var mx = F32_MIN;
  for (var k = 0u; k < p.cols; k++) { mx = max(mx, masked_value(base, mbase, k)); }
  var sum = 0.0;
  for (var k = 0u; k < p.cols; k++) {
    let e = exp(masked_value(base, mbase, k) - mx);
    probs[base + k] = e;
    sum += e;
  }
  let inv = 1.0 / sum;
  for (var k = 0u; k < p.cols; k++) { probs[base + k] = probs[base + k] * inv; }
}

// ---------------------------------------------------------------- backward
@group(0) @binding(1) var<storage, read> d_probs: array<f32>;
@group(0) @binding(2) var<storage, read> b_probs: array<f32>;
@group(0) @binding(3) var<storage, read> b_mask: array<f32>;  // [B, Sk] (alias of P if mode 0)
@group(0) @binding(4) var<storage, read_write> d_scores: array<f32>;

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let row = wid.y * p.nx + wid.x;
  if (row >= p.rows) { return; }
  let lid = lid3.x;
  let base = row * p.cols;
  var dot = 0.0;
  for (var k = lid; k < p.cols; k += WG) { dot += d_probs[base + k] * b_probs[base + k]; }
  dot = reduce_sum(lid, dot);
  let mbase = (row / (p.sq * p.heads)) * p.cols;
  for (var k = lid; k < p.cols; k += WG) {
    let g = p.scale * b_probs[base + k] * (d_probs[base + k] - dot);
    let cut = p.mode == 1u && b_mask[mbase + k] == 0.0;
    d_scores[base + k] = select(g, 0.0, cut);
  }
}

// CPU class: one invocation per row, serial loops, no barriers.
@compute @workgroup_size(WG)
fn backward_rows(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let row = (wid.y * p.nx + wid.x) * WG + lid3.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var dot = 0.0;
  for (var k = 0u; k < p.cols; k++) { dot += d_probs[base + k] * b_probs[base + k]; }
  let mbase = (row / (p.sq * p.heads)) * p.cols;
  for (var k = 0u; k < p.cols; k++) {
    let g = p.scale * b_probs[base + k] * (d_probs[base + k] - dot);
    let cut = p.mode == 1u && b_mask[mbase + k] == 0.0;
    d_scores[base + k] = select(g, 0.0, cut);
  }
}
