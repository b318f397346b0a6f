/**
 * Test helpers: assertions (node:assert/strict), fixture loading, tolerance checks and running a
 * CLI script as a user does.
 * @module
 */
import assertNode from "node:assert/strict";

/** Asserts a condition. */
export function assert(cond: unknown, message?: string): asserts cond {
  assertNode.ok(cond, message);
}

/** Asserts deep equality. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  assertNode.deepStrictEqual(actual, expected, message);
}

/** Asserts that `fn` throws an instance of `cls` (sync or async) and returns the error. */
export async function assertRejects<E extends Error>(
  fn: () => unknown,
  cls: new (...args: never[]) => E,
  includes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof cls, `expected ${cls.name}, got ${e}`);
    if (includes) {
      assert(String(e.message).includes(includes), `message "${e.message}" lacks "${includes}"`);
    }
    return e;
  }
  throw new Error(`expected ${cls.name} to be thrown`);
}

/**
 * Asserts max |actual − expected| ≤ atol + rtol·|expected| elementwise; reports the worst index.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  rtol = 0,
  label = "",
): void {
  assert(
    actual.length === expected.length,
    `${label}: length ${actual.length} vs ${expected.length}`,
  );
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    const tol = atol + rtol * Math.abs(expected[i]);
    if (!(d <= tol) && (d - tol > worstExcess || worst < 0)) {
      worst = i;
      worstExcess = d - tol;
    }
  }
  assert(
    worst < 0,
    `${label}: element ${worst}: ${actual[worst]} vs ${
      expected[worst]
    } (atol ${atol}, rtol ${rtol})`,
  );
}

/** Max |x| of an array (for tolerances scaled by magnitude). */
export function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

/** Loads a JSON fixture from tests/fixtures/. */
export async function loadFixture<T = Record<string, unknown>>(name: string): Promise<T> {
  const url = new URL(`./fixtures/${name}`, import.meta.url);
  return JSON.parse(await Deno.readTextFile(url)) as T;
}

/** The repository root (with a trailing slash). */
export const ROOT = new URL("../", import.meta.url).pathname;

/** The demo model and its data, as CLI arguments (`--model … --task sst2 --data …`). */
export const DEMO_ARGS = [
  "--model",
  `${ROOT}demo/model`,
  "--task",
  "sst2",
  "--data",
  `${ROOT}demo/data`,
];

/** Runs `scripts/<script>` with `args` from the repository root; decoded stdout and stderr. */
export async function runScript(
  script: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const res = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}scripts/${script}`, ...args],
    cwd: ROOT,
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: res.code, stdout: dec.decode(res.stdout), stderr: dec.decode(res.stderr) };
}

/** erf to ~1e-15 (Taylor series for |x| < 3, continued-fraction tail beyond): reference only. */
export function erf(x: number): number {
  const t = Math.abs(x);
  if (t < 3) {
    let sum = 0, term = t;
    for (let n = 0; n < 200; n++) {
      sum += term / (2 * n + 1);
      term *= -t * t / (n + 1);
      if (Math.abs(term) < 1e-17) break;
    }
    return Math.sign(x) * sum * 2 / Math.sqrt(Math.PI);
  }
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (t + f);
  const erfc = Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f);
  return Math.sign(x) * (1 - erfc);
}

/** f32's most negative finite value (Hugging Face's attention mask fill). */
export const F32_MIN = -3.4028234663852886e38;

/**
 * Float64 reference of Hugging Face's attention probabilities of head h of example b, from the
 * packed projection qkv [B·S, 3·H·dh] (Q, K, V blocks) and the key mask [B, S]: scores q·k/√dh,
 * masked as BERT does (+ (1 − m)·f32 min, in f32 arithmetic as PyTorch computes it) or as
 * DistilBERT does (masked_fill with f32 min; `fill` marks those constant scores), softmax over the
 * keys. Unmasked scores stay in float64 (finite-difference checks differentiate through them).
 */
export function attentionProbsRef(
  qkv: ArrayLike<number>,
  keyMask: ArrayLike<number>,
  S: number,
  H: number,
  dh: number,
  mode: "bert" | "distilbert",
  b: number,
  h: number,
): { P: Float64Array; fill: Uint8Array } {
  const W = 3 * H * dh, scale = 1 / Math.sqrt(dh);
  const P = new Float64Array(S * S);
  const fill = new Uint8Array(S * S);
  for (let i = 0; i < S; i++) {
    const s = new Float64Array(S);
    for (let j = 0; j < S; j++) {
      let dot = 0;
      for (let k = 0; k < dh; k++) {
        dot += qkv[(b * S + i) * W + h * dh + k] * qkv[(b * S + j) * W + (H + h) * dh + k];
      }
      const m = keyMask[b * S + j];
      if (mode === "distilbert" && m === 0) fill[i * S + j] = 1;
      s[j] = m !== 0
        ? dot * scale
        : mode === "bert"
        ? Math.fround(Math.fround(dot * scale) + F32_MIN)
        : F32_MIN;
    }
    const mx = Math.max(...s);
    const e = s.map((v) => Math.exp(v - mx));
    const sum = e.reduce((a, v) => a + v, 0);
    for (let j = 0; j < S; j++) P[i * S + j] = e[j] / sum;
  }
  return { P, fill };
}
