// The dropout keep decision shared by kernels/dropout.wgsl and the fused attention's dropout
// (lib/ops/attention_unrolled.ts, lib/ops/attention_backward.ts): element i of a call site with
// `seed` is kept when the top 24 bits of two rounds of Wellons' "lowbias32" integer mixer over
// (seed, i) are ≥ threshold = round(p·2^24) (probability 1 − p). A pure function of (seed, i), so
// a backward regenerates the forward's mask with no state buffer, and the fused attention draws
// exactly the mask the unfused path draws for the probabilities [B·H, S, S].

fn lowbias32(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u;
  x *= 0x7feb352du;
  x ^= x >> 15u;
  x *= 0x846ca68bu;
  x ^= x >> 16u;
  return x;
}

fn dropKeep(seed: u32, threshold: u32, i: u32) -> bool {
  let key = lowbias32(seed ^ 0x9e3779b9u);
  let h = lowbias32(lowbias32(i ^ key) + key);
  return (h >> 8u) >= threshold;
}
