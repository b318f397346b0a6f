/**
 * TEMPORARY simple matmul (one output per invocation) written by the lead so the model can be
 * tested while the tuned kernels are being built; the matmul engineer replaces this whole file.
 * @module
 */
import src from "../../kernels/matmul_tmp.wgsl" with { type: "text" };
import { ShapeError } from "../errors.ts";
import { f32Bits, type KernelSpec } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";

const WG = 64;
const SPEC: KernelSpec = { name: "matmul_tmp.wgsl", source: src, entry: "main", bindings: ["read", "read", "read", "rw"], constants: { WG } };

/** Options of `matmul`. */
export interface MatmulOptions {
  /** Use Aᵀ. */
  transA?: boolean;
  /** Use Bᵀ. */
  transB?: boolean;
  /** Bias [N] added to each row. */
  bias?: Tensor;
  /** Activation after the bias. */
  act?: "none" | "gelu" | "relu";
  /** Scale of the product. */
  alpha?: number;
  /** Output tensor. */
  out?: Tensor;
  /** out += alpha·op(a)·op(b). */
  accumulate?: boolean;
}

/** C = alpha·op(a)·op(b) (+bias, act), batched over leading dims. */
export function matmul(a: Tensor, b: Tensor, o: MatmulOptions = {}): Tensor {
  const ar = a.shape.length, br = b.shape.length;
  if (ar < 2 || br < 2) throw new ShapeError(`matmul needs rank ≥ 2, got [${a.shape}] and [${b.shape}]`);
  const batchDims = a.shape.slice(0, ar - 2);
  const batch = batchDims.reduce((x, y) => x * y, 1);
  const [a0, a1] = a.shape.slice(ar - 2);
  const [b0, b1] = b.shape.slice(br - 2);
  const M = o.transA ? a1 : a0, K = o.transA ? a0 : a1;
  const Kb = o.transB ? b1 : b0, N = o.transB ? b0 : b1;
  if (K !== Kb) throw new ShapeError(`matmul: inner dimensions differ: [${a.shape}] vs [${b.shape}]`);
  const bBatch = br === 2 ? 1 : b.shape.slice(0, br - 2).reduce((x, y) => x * y, 1);
  if (br > 2 && bBatch !== batch) throw new ShapeError(`matmul: batch dims differ: [${a.shape}] vs [${b.shape}]`);
  const out = o.out ?? a.gpu.empty([...batchDims, M, N]);
  if (out.size !== batch * M * N) throw new ShapeError(`matmul: out has ${out.size} values, need ${batch * M * N}`);
  const flags = (o.bias ? 1 : 0) | (o.accumulate ? 2 : 0) | (o.act === "gelu" ? 4 : 0) | (o.act === "relu" ? 8 : 0);
  const params = [
    M, N, K, batch,
    o.transA ? 1 : K, o.transA ? M : 1, o.transB ? 1 : N, o.transB ? K : 1,
    M * K, br === 2 ? 0 : K * N, M * N, flags,
    f32Bits(o.alpha ?? 1), 0, 0, 0,
  ];
  a.gpu.dispatch(SPEC, params, [a, b, o.bias ?? a, out], [Math.ceil(N / WG), M, batch]);
  return out;
}

/** x [T, in] · w[out, in]ᵀ + bias. */
export function linear(x: Tensor, w: Tensor, bias?: Tensor, act?: "none" | "gelu" | "relu"): Tensor {
  return matmul(x, w, { transB: true, bias, act });
}

/** dx = dy·w, dw = dyᵀ·x (added into dwInto when given). */
export function linearBackward(
  dy: Tensor,
  x: Tensor,
  w: Tensor,
  o: { needDx?: boolean; dwInto?: Tensor } = {},
): { dx?: Tensor; dw: Tensor } {
  const dx = o.needDx === false ? undefined : matmul(dy, w);
  const dw = o.dwInto ? matmul(dy, x, { transA: true, out: o.dwInto, accumulate: true }) : matmul(dy, x, { transA: true });
  return { dx, dw };
}
