/**
 * Deterministic random initialization with the Hugging Face BERT scheme, for tests, demos and new
 * task heads. Self-contained PRNG (splitmix32 seeding + xoshiro128**, Box-Muller normals).
 * @module
 */
import type { EncoderConfig } from "./config.ts";
import { expectedShapes, type Weights } from "./weights.ts";

/** Standard deviation of HF `initializer_range` for BERT and DistilBERT. */
export const INIT_STD = 0.02;

/** A seeded stream of uniform and normal numbers (xoshiro128**, seeded by splitmix32). */
export class Rng {
  private s = new Uint32Array(4);
  private spare: number | null = null;

  /** Seeds the stream; equal seeds give equal streams. */
  constructor(seed: number) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1;
  }

  /** Next 32 random bits as an unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }

  /** Uniform in (0, 1]. */
  uniform(): number {
    return (this.nextU32() + 1) / 4294967296;
  }

  /** Fills `out` with normal(0, std) values: the same stream as repeated `std·normal()` calls. */
  fillNormal(out: Float32Array, std: number): void {
    let i = 0;
    if (out.length > 0 && this.spare !== null) out[i++] = std * this.normal();
    const pairs = (out.length - i) >> 1;
    // xoshiro128** inlined on local state (same sequence as nextU32)
    const st = this.s;
    let s0 = st[0] | 0, s1 = st[1] | 0, s2 = st[2] | 0, s3 = st[3] | 0;
    const tau = 2 * Math.PI;
    for (let p = 0; p < pairs; p++, i += 2) {
      let r1 = Math.imul(s1, 5);
      r1 = Math.imul((r1 << 7) | (r1 >>> 25), 9) >>> 0;
      let t = s1 << 9;
      s2 ^= s0, s3 ^= s1, s1 ^= s2, s0 ^= s3, s2 ^= t, s3 = (s3 << 11) | (s3 >>> 21);
      let r2 = Math.imul(s1, 5);
      r2 = Math.imul((r2 << 7) | (r2 >>> 25), 9) >>> 0;
      t = s1 << 9;
      s2 ^= s0, s3 ^= s1, s1 ^= s2, s0 ^= s3, s2 ^= t, s3 = (s3 << 11) | (s3 >>> 21);
      const r = Math.sqrt(-2 * Math.log((r1 + 1) / 4294967296));
      const a = tau * ((r2 + 1) / 4294967296);
      out[i] = std * (r * Math.cos(a));
      out[i + 1] = std * (r * Math.sin(a));
    }
    st[0] = s0, st[1] = s1, st[2] = s2, st[3] = s3;
    if (i < out.length) out[i] = std * this.normal();
  }

  /** Standard normal (Box-Muller; the second value of each pair is kept for the next call). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const a = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(a);
    return r * Math.cos(a);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * DistilBERT sinusoidal position table [n, dim] as in HF `create_sinusoidal_embeddings`: column j
 * uses angle pos / 10000^(2⌊j/2⌋/dim), sine at even j, cosine at odd j.
 */
export function sinusoidalPositions(n: number, dim: number): Float32Array {
  const out = new Float32Array(n * dim);
  for (let pos = 0; pos < n; pos++) {
    for (let j = 0; j < dim; j++) {
      const angle = pos / Math.pow(10000, (2 * Math.floor(j / 2)) / dim);
      out[pos * dim + j] = j % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
    }
  }
  return out;
}

/**
 * Random weights for a config with the HF initialization: every weight matrix and embedding
 * normal(0, 0.02), biases 0, LayerNorm gamma 1 and beta 0, the word-embedding row of
 * `padTokenId` zero, and (DistilBERT with `sinusoidalPos`) the fixed sinusoidal position table.
 * Deterministic: parameters are drawn in `expectedShapes` order from one stream seeded by `seed`.
 */
export function randomWeights(c: EncoderConfig, seed: number): Weights {
  const rng = new Rng(seed);
  const w: Weights = new Map();
  for (const [name, shape] of expectedShapes(c)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith(".g")) data.fill(1);
    else if (name === "emb.pos" && c.sinusoidalPos) {
      data.set(sinusoidalPositions(shape[0], shape[1]));
    } else if (name.endsWith(".w") || name.startsWith("emb.") && !name.startsWith("emb.ln")) {
      rng.fillNormal(data, INIT_STD);
      if (name === "emb.word") data.fill(0, c.padTokenId * shape[1], (c.padTokenId + 1) * shape[1]);
    }
    w.set(name, { shape: [...shape], data });
  }
  return w;
}
