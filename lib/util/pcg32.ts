/**
 * PCG32 (O'Neill's pcg32, XSH-RR output on a 64-bit LCG state) and the seeded sampling helpers
 * of METHOD.md §3. Seeding is exactly `pcg32_srandom_r(&rng, seed, 54)` from pcg-c-basic, so
 * `new Pcg32(42)` yields 0xa15c02b7, 0x7b47f409, … like the reference demo. State math uses
 * BigInt (sampling is a few thousand draws; speed does not matter here).
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";

const MASK64 = (1n << 64n) - 1n;
const MULT = 6364136223846793005n;

/** Stream selector used for every fastprune generator (pcg32_srandom's `initseq`). */
export const PCG32_STREAM = 54;

/** A PCG32 generator: `pcg32_srandom_r(seed, stream)`, then `nextU32` = `pcg32_random_r`. */
export class Pcg32 {
  private state = 0n;
  private readonly inc: bigint;

  /** Seeds as pcg32_srandom_r(seed, stream): integer seed in [0, 2^64), stream default 54. */
  constructor(seed: number | bigint, stream: number | bigint = PCG32_STREAM) {
    const s = BigInt(seed);
    if (s < 0n || s > MASK64) throw new InvalidArgumentError(`seed ${seed} is not in [0, 2^64)`);
    this.inc = ((BigInt(stream) << 1n) | 1n) & MASK64;
    this.nextU32();
    this.state = (this.state + s) & MASK64;
    this.nextU32();
  }

  /** Next uniform 32-bit unsigned integer (pcg32_random_r). */
  nextU32(): number {
    const old = this.state;
    this.state = (old * MULT + this.inc) & MASK64;
    const xorshifted = Number((((old >> 18n) ^ old) >> 27n) & 0xffffffffn);
    const rot = Number(old >> 59n);
    return ((xorshifted >>> rot) | (xorshifted << ((32 - rot) & 31))) >>> 0;
  }

  /**
   * Unbiased uniform integer in [0, bound) by rejection (pcg32_boundedrand_r: draws below
   * 2^32 mod bound are rejected, then r mod bound). `bound` must be in [1, 2^32].
   */
  bounded(bound: number): number {
    if (!Number.isInteger(bound) || bound < 1 || bound > 2 ** 32) {
      throw new InvalidArgumentError(`bound ${bound} must be an integer in [1, 2^32]`);
    }
    const threshold = (2 ** 32 - bound) % bound;
    for (;;) {
      const r = this.nextU32();
      if (r >= threshold) return r % bound;
    }
  }
}

/** Result of `sampleIndices`: the chosen indices and whether the whole population was taken. */
export interface Sample {
  /** Chosen indices, in sampling order. */
  indices: number[];
  /** True when count ≥ populationSize, so all indices were returned (callers should warn). */
  tookAll: boolean;
}

/**
 * `count` distinct indices of [0, populationSize) by partial Fisher–Yates with PCG32(seed):
 * for i = 0…count−1, j = i + bounded(n − i), swap a[i], a[j]; result a[0…count). When count ≥
 * populationSize, all indices in the order of a full seeded shuffle (same loop to n − 1) and
 * `tookAll` = true.
 */
export function sampleIndices(populationSize: number, count: number, seed: number): Sample {
  checkSizes(populationSize, count);
  const rng = new Pcg32(seed);
  const tookAll = count >= populationSize;
  const k = tookAll ? populationSize : count;
  const a = new Int32Array(populationSize);
  for (let i = 0; i < populationSize; i++) a[i] = i;
  for (let i = 0; i < k && i < populationSize - 1; i++) {
    const j = i + rng.bounded(populationSize - i);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return { indices: Array.from(a.subarray(0, k)), tookAll };
}

/**
 * `count` indices drawn independently and uniformly from [0, populationSize) with PCG32(seed)
 * (duplicates possible), like the reference code's NumPy `choice(replace=True)`.
 */
export function sampleWithReplacement(
  populationSize: number,
  count: number,
  seed: number,
): number[] {
  checkSizes(populationSize, count);
  const rng = new Pcg32(seed);
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(rng.bounded(populationSize));
  return out;
}

function checkSizes(populationSize: number, count: number): void {
  if (!Number.isInteger(populationSize) || populationSize < 1) {
    throw new InvalidArgumentError(`population size ${populationSize} must be a positive integer`);
  }
  if (!Number.isInteger(count) || count < 0) {
    throw new InvalidArgumentError(`sample count ${count} must be a non-negative integer`);
  }
}
