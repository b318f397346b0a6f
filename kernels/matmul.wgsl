// Batched matmul with a fused epilogue: out[z] = act(alpha · op(a[z]) · op(b[z]) + bias) (+ out[z]).
//
// One entry point serves every layout: a and b are read through element strides, so a transposed
// operand is just a different stride pair (nn, nt, tn and tt all use this code). Each invocation
// keeps a TM × TN register tile of outputs; rows are spread over the workgroup's y lanes and
// columns over its x lanes with a stride of WGX (row m = m_base + i·WGY + lid.y, column
// n = n_base + j·WGX + lid.x), so neighbouring lanes touch neighbouring addresses.
//
// Ragged shapes: loads clamp their row/column index into range (the clamped values only feed
// outputs that are never stored), stores are bounds-checked; any M, N, K ≥ 1 is correct.
//
// Grid: x = ceil(N / (WGX·TN)), y = ceil(M / (WGY·TM)), z = batch items of this dispatch
// (batch index = z0 + workgroup_id.z, so the host splits more than 65535 items over dispatches).
//
// Why scalar loads and no workgroup memory: on Mesa llvmpipe (the CPU adapter) every storage or
// workgroup load is executed lane by lane, so a vec4 load costs about four scalar loads and a
// workgroup-memory tile adds a second pass through the same slow path plus barriers. What pays
// is reuse per load: each loaded value feeds TM or TN fused multiply-adds (bench/README.md).
// lib/ops/matmul.ts prefers the texture kernels (matmul_tex.wgsl) when shapes allow.
//
// Needs kernels/matmul_epilogue.wgsl (epilogue()) appended to the source.

override WGX: u32 = 8u;
override WGY: u32 = 1u;
override TM: u32 = 32u; // rows per invocation, ≤ 32
override TN: u32 = 8u; // columns per invocation, ≤ 16

const MAX_TM = 32u;
const MAX_TN = 16u;
const FLAG_BIAS = 1u;
const FLAG_ACCUMULATE = 2u;

struct Params {
  M: u32,
  N: u32,
  K: u32,
  a_m: u32, // element stride of a between rows of op(a)
  a_k: u32, // element stride of a along K
  a_z: u32, // element stride of a between batch items
  b_k: u32, // element stride of b along K
  b_n: u32, // element stride of b between columns of op(b)
  b_z: u32, // element stride of b between batch items (0: b is shared)
  z0: u32, // first batch item of this dispatch
  flags: u32, // FLAG_BIAS | FLAG_ACCUMULATE (the latter is read from the override ACCUMULATE)
  act: u32, // 0 none, ACT_GELU, ACT_RELU (read from the override ACT, which equals it)
  alpha: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// out[z, m, n] = act(alpha · Σ_k a[z, m, k] · b[z, k, n] + bias[n]) (+ out[z, m, n] if accumulating)
@compute @workgroup_size(WGX, WGY)
fn matmul(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let z = p.z0 + wid.z;
  let m_base = wid.y * WGY * TM + lid.y;
  let n_base = wid.x * WGX * TN + lid.x;
  let a_base = z * p.a_z;
  let b_base = z * p.b_z;

  var row: array<u32, MAX_TM>; // clamped offset of each of this lane's rows in a
  var col: array<u32, MAX_TN>; // clamped offset of each of this lane's columns in b
  for (var i = 0u; i < TM; i++) {
    row[i] = a_base + min(m_base + i * WGY, p.M - 1u) * p.a_m;
  }
  for (var j = 0u; j < TN; j++) {
    col[j] = b_base + min(n_base + j * WGX, p.N - 1u) * p.b_n;
  }

  var acc: array<array<f32, MAX_TN>, MAX_TM>;
  for (var k = 0u; k < p.K; k++) {
    let ka = k * p.a_k;
    let kb = k * p.b_k;
    var av: array<f32, MAX_TM>;
    var bv: array<f32, MAX_TN>;
  for (var i = 0u; i < TM; i++) {
      av[i] = a[row[i] + ka];
    }
    for (var j = 0u; j < TN; j++) {
      bv[j] = b[col[j] + kb];
    }
  for (var i = 0u; i < TM; i++) {
      for (var j = 0u; j < TN; j++) {
        acc[i][j] = fma(av[i], bv[j], acc[i][j]);
      }
    }
  }

  let c_base = z * p.M * p.N;
  let has_bias = (p.flags & FLAG_BIAS) != 0u;
  for (var i = 0u; i < TM; i++) {
    let m = m_base + i * WGY;
    if (m < p.M) {
      for (var j = 0u; j < TN; j++) {
        let n = n_base + j * WGX;
        if (n < p.N) {
          var v = p.alpha * acc[i][j];
          if (has_bias) {
            v += bias[n];
          }
          v = epilogue(v);
          let o = c_base + m * p.N + n;
          if (ACCUMULATE) {
            v += out[o];
          }
          out[o] = v;
        }
      }
    }
  }
}
