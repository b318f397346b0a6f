// Losses and their gradients, per example (no batch reduction: the caller scales).
// Row kernels use one workgroup per example (row = wid.y·nx + wid.x) and fixed-order tree
// reductions in workgroup memory (deterministic); WG must be a power of two ≤ 256.
//
//   ce_forward      loss[b] = logsumexp(x[b, :]) − x[b, y_b]; 0 if y_b = −100; NaN if y_b is
//                   otherwise outside [0, C)
//   ce_backward     d[b, :] = scale·(softmax(x[b, :]) − onehot(y_b)); 0 row if y_b = −100
//   span_forward    loss[b] = (CE(start[b], s_b) + CE(end[b], e_b)) / 2 with positions clamped
//                   to [0, S] and a position equal to S ignored (that side adds 0); keys with
//                   mask 0 are left out of the softmax when has_mask = 1
//   span_backward   dStart[b, :] = scale/2·(softmax − onehot(s_b)) (0 if ignored), same for end;
//                   masked keys have softmax share 0
//   mse_forward     loss[i] = (pred[i] − target[i])²
//   mse_backward    d[i] = 2·scale·(pred[i] − target[i])

override WG: u32 = 256u;

struct Params {
  rows: u32,      // B (row kernels) or n (elementwise kernels)
  cols: u32,      // C or S
  nx: u32,        // workgroups along x
  has_mask: u32,  // span kernels: 1 if `mask` is a real [B, S] key mask
  scale: f32,     // gradient scale
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> la: array<f32>;  // logits / start logits / pred
@group(0) @binding(2) var<storage, read> lb: array<f32>;  // end logits / target (else alias)
@group(0) @binding(3) var<storage, read> ia: array<i32>;  // labels / start positions
@group(0) @binding(4) var<storage, read> ib: array<i32>;  // end positions (else alias)
@group(0) @binding(5) var<storage, read> mask: array<f32>; // key mask [B, S] (else alias)
@group(0) @binding(6) var<storage, read_write> out_a: array<f32>;
@group(0) @binding(7) var<storage, read_write> out_b: array<f32>;

const F32_MIN: f32 = -3.4028234663852886e38;
const IGNORE_INDEX: i32 = -100;

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

fn logit(which: u32, i: u32) -> f32 {
  if (which == 0u) { return la[i]; }
  return lb[i];
}

fn kept(row: u32, k: u32) -> bool {
  return p.has_mask == 0u || mask[row * p.cols + k] != 0.0;
}

// Max of the kept logits of a row (every invocation of the workgroup calls it).
fn row_max(which: u32, row: u32, lid: u32) -> f32 {
  var mx = F32_MIN;
  for (var k = lid; k < p.cols; k += WG) {
    if (kept(row, k)) { mx = max(mx, logit(which, row * p.cols + k)); }
  }
  return reduce_max(lid, mx);
}

// Σ exp(x − mx) over the kept logits of a row.
fn row_sumexp(which: u32, row: u32, mx: f32, lid: u32) -> f32 {
  var s = 0.0;
  for (var k = lid; k < p.cols; k += WG) {
    if (kept(row, k)) { s += exp(logit(which, row * p.cols + k) - mx); }
  }
  return reduce_sum(lid, s);
}

// Span position clamped to [0, S] as i32; S means "ignored".
fn span_pos(v: i32) -> u32 {
  return u32(clamp(v, 0, i32(p.cols)));
}

fn nan_f() -> f32 {
  return bitcast<f32>(0x7fc00000u);
}

// ---------------------------------------------------------------- cross-entropy

@compute @workgroup_size(WG)
fn ce_forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let row = wid.y * p.nx + wid.x;
  if (row >= p.rows) { return; }
  let lid = lid3.x;
  let mx = row_max(0u, row, lid);
  let lse = mx + log(row_sumexp(0u, row, mx, lid));
  if (lid != 0u) { return; }
  let y = ia[row];
  if (y == IGNORE_INDEX) {
    out_a[row] = 0.0;
  } else if (y < 0 || y >= i32(p.cols)) {
    out_a[row] = nan_f();
  } else {
    out_a[row] = lse - la[row * p.cols + u32(y)];
  }
}

@compute @workgroup_size(WG)
fn ce_backward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let row = wid.y * p.nx + wid.x;
  if (row >= p.rows) { return; }
  let lid = lid3.x;
  let mx = row_max(0u, row, lid);
  let inv = 1.0 / row_sumexp(0u, row, mx, lid);
  let y = ia[row];
  let ignored = y == IGNORE_INDEX;
  for (var k = lid; k < p.cols; k += WG) {
    let i = row * p.cols + k;
    let g = exp(la[i] - mx) * inv - select(0.0, 1.0, i32(k) == y);
    out_a[i] = select(p.scale * g, 0.0, ignored);
  }
}

// ---------------------------------------------------------------- span (QA) loss

@compute @workgroup_size(WG)
fn span_forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let row = wid.y * p.nx + wid.x;
  if (row >= p.rows) { return; }
  let lid = lid3.x;
  let mx_a = row_max(0u, row, lid);
  let lse_a = mx_a + log(row_sumexp(0u, row, mx_a, lid));
  let mx_b = row_max(1u, row, lid);
  let lse_b = mx_b + log(row_sumexp(1u, row, mx_b, lid));
  if (lid != 0u) { return; }
  let s = span_pos(ia[row]);
  let e = span_pos(ib[row]);
  var loss = 0.0;
  if (s < p.cols) { loss += lse_a - la[row * p.cols + s]; }
  if (e < p.cols) { loss += lse_b - lb[row * p.cols + e]; }
  out_a[row] = 0.5 * loss;
}

@compute @workgroup_size(WG)
fn span_backward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let row = wid.y * p.nx + wid.x;
  if (row >= p.rows) { return; }
  let lid = lid3.x;
  let mx_a = row_max(0u, row, lid);
  let inv_a = 1.0 / row_sumexp(0u, row, mx_a, lid);
  let mx_b = row_max(1u, row, lid);
  let inv_b = 1.0 / row_sumexp(1u, row, mx_b, lid);
  let s = span_pos(ia[row]);
  let e = span_pos(ib[row]);
  let h = 0.5 * p.scale;
  for (var k = lid; k < p.cols; k += WG) {
    let i = row * p.cols + k;
    let keep = kept(row, k);
    let ga = select(0.0, exp(la[i] - mx_a) * inv_a, keep) - select(0.0, 1.0, k == s);
    let gb = select(0.0, exp(lb[i] - mx_b) * inv_b, keep) - select(0.0, 1.0, k == e);
    out_a[i] = select(0.0, h * ga, s < p.cols);
    out_b[i] = select(0.0, h * gb, e < p.cols);
  }
}

// ---------------------------------------------------------------- mean squared error
// Bindings: la = pred, lb = target, mse_out.
@group(0) @binding(3) var<storage, read_write> mse_out: array<f32>;

@compute @workgroup_size(WG)
fn mse_forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * p.nx + wid.x) * WG + lid.x;
  if (i >= p.rows) { return; }
  let d = la[i] - lb[i];
  mse_out[i] = d * d;
}

@compute @workgroup_size(WG)
fn mse_backward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * p.nx + wid.x) * WG + lid.x;
  if (i >= p.rows) { return; }
  mse_out[i] = 2.0 * p.scale * (la[i] - lb[i]);
}
