/**
 * Matrix multiplication for every layout the model needs, batched, with a fused epilogue
 * (bias, GELU/ReLU, scale, accumulate), plus the Hugging Face `linear` layer and its backward.
 * Everything records dispatches of `kernels/matmul.wgsl`; nothing is awaited here.
 * @module
 */
import src from "../../kernels/matmul.wgsl" with { type: "text" };
import { DeviceLimitError, InvalidArgumentError, ShapeError } from "../errors.ts";
import { f32Bits, type KernelSpec } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { matmulPreset } from "./matmul_presets.ts";

/** Activation applied by the matmul epilogue after the bias. */
export type Activation = "none" | "gelu" | "relu";

/** Options of `matmul`. */
export interface MatmulOptions {
  /** Read `a` as [..., K, M] and use its transpose. */
  transA?: boolean;
  /** Read `b` as [N, K] (or [..., N, K]) and use its transpose. */
  transB?: boolean;
  /** [N], added to every output row before the activation. */
  bias?: Tensor;
  /** Activation after the bias: exact-erf GELU (Hugging Face "gelu"), ReLU or none. */
  act?: Activation;
  /** Scale of the product (default 1). */
  alpha?: number;
  /** Output tensor [..., M, N] (required with `accumulate`); must not share storage with inputs. */
  out?: Tensor;
  /** Add the result to the current contents of `out` instead of overwriting them. */
  accumulate?: boolean;
}

const ACT_CODES: Record<Activation, number> = { none: 0, gelu: 1, relu: 2 };
const FLAG_BIAS = 1;
const FLAG_ACCUMULATE = 2;

function spec(kind: "cpu" | "gpu"): KernelSpec {
  const p = matmulPreset(kind);
  return {
    name: "matmul.wgsl",
    source: src,
    entry: "matmul",
    bindings: ["read", "read", "read", "rw"],
    constants: { WGX: p.wgx, WGY: p.wgy, TM: p.tm, TN: p.tn },
  };
}

const fmt = (t: Tensor) => `[${t.shape.join(", ")}]`;

/**
 * Batched matrix product out = act(alpha·op(a)·op(b) + bias), or out += that when `accumulate`.
 * `a` is [..., M, K] ([..., K, M] with `transA`); `b` is [K, N] ([N, K] with `transB`), either
 * rank 2 and shared by every batch item or with the same leading batch dims as `a`. The result
 * is [..., M, N]. Raises `ShapeError` when shapes disagree and `InvalidArgumentError` for bad
 * options (unknown activation, `accumulate` without `out`, `out` sharing storage with an input).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const { transA = false, transB = false, bias, act = "none", alpha = 1, accumulate = false } =
    opts;
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw new ShapeError(`matmul: a ${fmt(a)} and b ${fmt(b)} must both have rank ≥ 2`);
  }
  const lead = a.shape.slice(0, -2);
  const [a0, a1] = a.shape.slice(-2);
  const [M, K] = transA ? [a1, a0] : [a0, a1];
  const [b0, b1] = b.shape.slice(-2);
  const [Kb, N] = transB ? [b1, b0] : [b0, b1];
  const sharedB = b.shape.length === 2;
  if (
    Kb !== K ||
    (!sharedB &&
      (b.shape.length !== a.shape.length || lead.some((d, i) => d !== b.shape[i])))
  ) {
    throw new ShapeError(
      `matmul: a ${fmt(a)}${transA ? "ᵀ" : ""} and b ${fmt(b)}${
        transB ? "ᵀ" : ""
      } do not agree (inner sizes ${K} vs ${Kb}; b must be rank 2 or share a's batch dims)`,
    );
  }
  if (!(act in ACT_CODES)) {
    throw new InvalidArgumentError(`matmul: unknown activation "${act}" (none, gelu or relu)`);
  }
  if (!Number.isFinite(alpha)) {
    throw new InvalidArgumentError(`matmul: alpha ${alpha} is not finite`);
  }
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== N)) {
    throw new ShapeError(`matmul: bias ${fmt(bias)} must be [${N}]`);
  }
  const outShape = [...lead, M, N];
  if (accumulate && !opts.out) {
    throw new InvalidArgumentError("matmul: accumulate needs an out tensor to add into");
  }
  const out = opts.out ?? a.gpu.empty(outShape);
  if (out.shape.length !== outShape.length || out.shape.some((d, i) => d !== outShape[i])) {
    throw new ShapeError(`matmul: out ${fmt(out)} must be [${outShape.join(", ")}]`);
  }
  for (const t of [a, b, bias]) {
    if (t && t.buffer === out.buffer) {
      throw new InvalidArgumentError("matmul: out must not share storage with a, b or bias");
    }
  }
  const batch = lead.reduce((x, y) => x * y, 1);
  if (M === 0 || N === 0 || batch === 0) return out;

  const gpu = a.gpu;
  const s = spec(gpu.adapter.kind);
  const p = matmulPreset(gpu.adapter.kind);
  const gx = Math.ceil(N / (p.wgx * p.tn));
  const gy = Math.ceil(M / (p.wgy * p.tm));
  const maxWg = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (gx > maxWg || gy > maxWg) {
    throw new DeviceLimitError(
      `matmul: output [${M}, ${N}] needs a ${gx}×${gy} grid, past this device's ${maxWg} workgroups per dimension`,
    );
  }
  const flags = (bias ? FLAG_BIAS : 0) | (accumulate ? FLAG_ACCUMULATE : 0);
  const strides = [
    transA ? 1 : K, // a_m
    transA ? M : 1, // a_k
    M * K, // a_z
    transB ? 1 : N, // b_k
    transB ? K : 1, // b_n
    sharedB ? 0 : K * N, // b_z
  ];
  const tensors = [a, b, bias ?? b, out];
  for (let z0 = 0; z0 < batch; z0 += maxWg) {
    const nz = Math.min(maxWg, batch - z0);
    const params = [M, N, K, ...strides, z0, flags, ACT_CODES[act], f32Bits(alpha)];
    gpu.dispatch(s, params, tensors, [gx, gy, nz]);
  }
  return out;
}

/**
 * Hugging Face linear layer: x [..., in] (rank ≥ 2) times w [out, in] transposed, plus bias [out], then the
 * activation: x·wᵀ + bias (same as `matmul(x, w, { transB: true, bias, act })`).
 */
export function linear(x: Tensor, w: Tensor, bias?: Tensor, act: Activation = "none"): Tensor {
  if (x.shape.length < 2 || w.shape.length !== 2) {
    throw new ShapeError(
      `linear: x ${fmt(x)} must have rank ≥ 2 ([..., in]) and w ${fmt(w)} rank 2`,
    );
  }
  return matmul(x, w, { transB: true, bias, act });
}

/**
 * Backward of `linear` (without activation): given dy [..., out], x [..., in] and w [out, in],
 * returns dx = dy·w [..., in] and dw = dyᵀ·x [out, in] (leading dims are flattened into rows).
 * With `dwInto`, dw is added into that tensor (gradient accumulation) and it is returned as `dw`;
 * `needDx: false` skips dx (first layer). The bias gradient is the column sum of dy (not here).
 */
export function linearBackward(
  dy: Tensor,
  x: Tensor,
  w: Tensor,
  o: { needDx?: boolean; dwInto?: Tensor } = {},
): { dx?: Tensor; dw: Tensor } {
  if (w.shape.length !== 2 || dy.shape.length < 2 || x.shape.length < 2) {
    throw new ShapeError(`linearBackward: w ${fmt(w)} must be rank 2, dy and x rank ≥ 2`);
  }
  const [nOut, nIn] = w.shape;
  const rows = dy.size / Math.max(1, nOut);
  if (
    dy.shape[dy.shape.length - 1] !== nOut || x.shape[x.shape.length - 1] !== nIn ||
    x.size !== rows * nIn || dy.shape.length !== x.shape.length ||
    dy.shape.slice(0, -1).some((d, i) => d !== x.shape[i])
  ) {
    throw new ShapeError(
      `linearBackward: dy ${fmt(dy)} and x ${fmt(x)} do not match w ${fmt(w)} ([out, in])`,
    );
  }
  const dy2 = dy.view([rows, nOut]);
  const x2 = x.view([rows, nIn]);
  const dw = o.dwInto
    ? matmul(dy2, x2, { transA: true, out: o.dwInto, accumulate: true })
    : matmul(dy2, x2, { transA: true });
  if (o.needDx === false) return { dw };
  return { dx: matmul(dy, w), dw };
}
