// Fused multi-head attention backward for CPU adapters (Mesa llvmpipe), the counterpart of the
// saving forward entries attention_r<R>_d<D>_save (lib/ops/attention_unrolled.ts), which keep the
// packed projection qkv [B·S, 3·H·dh], the context before the head mask and each query row's
// softmax statistics (m, 1/l) instead of the [B·H, S, S] probabilities. With O the context of
// (b, h) before the head mask hm, G = ∂loss/∂(hm·O) (rows of the merged gradient [B·S, H·dh]),
// dO = hm·G, P_ij = exp(s_ij − m_i)/l_i recomputed from the scores exactly as the forward
// computed them, and Δ_i = dO_i·O_i (kernels/attention_delta.wgsl):
//   dV_j = Σ_i P_ij dO_i,   dS_ij = P_ij (dO_i·V_j − Δ_i),
//   dQ_i = scale Σ_j dS_ij K_j,   dK_j = scale Σ_i dS_ij Q_i
// (a masked key has P_ij = 0, so it gets no gradient through its score in either mask mode).
// The entries are generated (lib/ops/attention_backward.ts) unrolled like the forward ones:
//   attention_dq_r<R>_d<D>: each invocation owns R query rows of one head and streams over the
//     keys, fetching each key's K and V texels once for the 8 lanes of its workgroup;
//   attention_dkv_r<R>_d<D>: each invocation owns R key rows and streams over the queries,
//     fetching each query's Q and G texels once per workgroup.
// They write the Q, respectively K and V, blocks of dqkv [B·S, 3·H·dh] (the packed layout of
// qkv), so the projection's backward reads one tensor. Grid: x = ⌈S / (8·R)⌉, y = H, z = B.
// When only the first Sq positions of each sequence were queries (the forward's Sq < S, e.g. the
// [CLS]-only last layer of a classifier), G, stats and delta hold B·Sq rows (row b·Sq + i), dq
// runs over those queries only (with Sq = 1 the entry attention_dq_q1_d<D>, whose 8 lanes are 8
// sequences; grid x = ⌈B / 8⌉, y = H), dkv sums over them and writes the zero Q block of the
// positions that were no query.

const F32_MIN = -3.40282346638528859812e+38;

struct Params {
  S: u32,
  H: u32,
  rowTexels: u32, // texels per token row of qkv: 3·H·dh / 4
  wShift: u32, // log2 of the qkv texture width in texels
  mode: u32, // 0: BERT additive mask, 1: DistilBERT masked_fill
  scale: f32, // 1 / √dh
  hasHeadMask: u32,
  gShift: u32, // log2 of the G texture width in texels (rows of H·dh / 4 texels)
  // attention dropout (override DROPOUT): the forward's call-site seed, round(p·2^24), 1 / (1 − p)
  seed: u32,
  threshold: u32,
  keepScale: f32,
  Sq: u32, // query rows per sequence: the first Sq positions (G, stats and delta hold B·Sq rows)
  nB: u32, // sequences B (the lanes of the single-query dq entry)
}

// Attention dropout in training: the forward kept probability i of [B·H, S, S] with dropKeep's
// mask (kernels/dropout_hash.wgsl, prepended) and scaled it by 1 / (1 − p). With D the mask
// times that scale: dV_j = Σ_i P_ij D_ij dO_i and dS_ij = P_ij (D_ij dO_i·V_j − Δ_i), Δ_i =
// dO_i·O_i with O the dropped context (what the forward saved).
override DROPOUT: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var qkv: texture_2d<f32>;
@group(0) @binding(2) var gtex: texture_2d<f32>;
@group(0) @binding(3) var<storage, read> keyMask: array<f32>; // [B, S]
@group(0) @binding(4) var<storage, read> headMask: array<f32>; // [B·H] when hasHeadMask
@group(0) @binding(5) var<storage, read> stats: array<vec2<f32>>; // [B·H·S]: (m, 1 / l)
@group(0) @binding(6) var<storage, read> delta: array<f32>; // [B·H·S]: Δ
@group(0) @binding(7) var<storage, read_write> out: array<vec4<f32>>; // dqkv [B·S, 3·H·dh / 4]

// Texel t of qkv in row-major texel order.
fn texel(t: u32) -> vec4<f32> {
  let mask = (1u << p.wShift) - 1u;
  return textureLoad(qkv, vec2<u32>(t & mask, t >> p.wShift), 0);
}

// Texel t of G in row-major texel order.
fn gtexel(t: u32) -> vec4<f32> {
  let mask = (1u << p.gShift) - 1u;
  return textureLoad(gtex, vec2<u32>(t & mask, t >> p.gShift), 0);
}

// D_ij of probability i of [B·H, S, S]: 0 or 1 / (1 − p), 1 without dropout.
fn keepFactor(i: u32) -> f32 {
  if (DROPOUT) {
    return select(0.0, p.keepScale, dropKeep(p.seed, p.threshold, i));
  }
  return 1.0;
}

// The head mask of (b, h), 1 without one.
fn headScale(b: u32, h: u32) -> f32 {
  if (p.hasHeadMask != 0u) {
    return headMask[b * p.H + h];
  }
  return 1.0;
}
