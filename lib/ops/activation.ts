/**
 * Elementwise activations with their backward rules: exact-erf GELU (Hugging Face "gelu"), ReLU
 * and tanh. Forward functions take x; backward functions take the upstream gradient dy and the
 * saved forward input (or output for tanh) and return dx.
 * @module
 */
import src from "../../kernels/activation.wgsl" with { type: "text" };
import { ShapeError } from "../errors.ts";
import type { KernelSpec } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { grid1d } from "./grid.ts";

const WG = 256;
const FORWARD_BINDINGS = ["read", "rw"] as const;
const BACKWARD_BINDINGS = ["read", "read", "rw"] as const;
const spec = (entry: string, bindings: KernelSpec["bindings"]): KernelSpec => ({
  name: "activation.wgsl",
  source: src,
  entry,
  bindings,
  constants: { WG },
});
const GELU = spec("gelu", FORWARD_BINDINGS);
const GELU_BACKWARD = spec("gelu_backward", BACKWARD_BINDINGS);
const GELU4 = spec("gelu4", FORWARD_BINDINGS);
const GELU_BACKWARD4 = spec("gelu_backward4", BACKWARD_BINDINGS);
const RELU = spec("relu", FORWARD_BINDINGS);
const RELU_BACKWARD = spec("relu_backward", BACKWARD_BINDINGS);
const TANH = spec("tanh_forward", FORWARD_BINDINGS);
const TANH_BACKWARD = spec("tanh_backward", BACKWARD_BINDINGS);

function sameSize(op: string, a: Tensor, b: Tensor, names: string): void {
  if (a.size !== b.size) {
    throw new ShapeError(
      `${op}: ${names} sizes differ: [${a.shape.join(", ")}] vs [${b.shape.join(", ")}]`,
    );
  }
}

/** `k4`: the vec4 twin, used when the size is a positive multiple of 4. */
function unary(op: string, k: KernelSpec, x: Tensor, out?: Tensor, k4?: KernelSpec): Tensor {
  const o = out ?? x.gpu.empty(x.shape);
  sameSize(op, x, o, "x and out");
  const q = k4 && x.size > 0 && x.size % 4 === 0 ? 4 : 1;
  const [nx, ny] = grid1d(x.size / q, WG);
  x.gpu.dispatch(q === 4 ? k4! : k, [x.size / q, nx], [x, o], [nx, ny]);
  return o;
}

function binary(
  op: string,
  k: KernelSpec,
  dy: Tensor,
  saved: Tensor,
  out?: Tensor,
  k4?: KernelSpec,
): Tensor {
  sameSize(op, dy, saved, "dy and saved tensor");
  const o = out ?? dy.gpu.empty(saved.shape);
  sameSize(op, dy, o, "dy and out");
  const q = k4 && dy.size > 0 && dy.size % 4 === 0 ? 4 : 1;
  const [nx, ny] = grid1d(dy.size / q, WG);
  dy.gpu.dispatch(q === 4 ? k4! : k, [dy.size / q, nx], [dy, saved, o], [nx, ny]);
  return o;
}

/** GELU with the exact erf form, y = x·Φ(x) = x·½(1 + erf(x/√2)) (HF "gelu"). */
export function gelu(x: Tensor, out?: Tensor): Tensor {
  return unary("gelu", GELU, x, out, GELU4);
}

/** Backward of `gelu`: dx = dy·(Φ(x) + x·φ(x)), φ the standard normal density. */
export function geluBackward(dy: Tensor, x: Tensor, out?: Tensor): Tensor {
  return binary("geluBackward", GELU_BACKWARD, dy, x, out, GELU_BACKWARD4);
}

/** ReLU, y = max(x, 0). */
export function relu(x: Tensor, out?: Tensor): Tensor {
  return unary("relu", RELU, x, out);
}

/** Backward of `relu`: dx = dy where x > 0, else 0 (as torch). */
export function reluBackward(dy: Tensor, x: Tensor, out?: Tensor): Tensor {
  return binary("reluBackward", RELU_BACKWARD, dy, x, out);
}

/** Hyperbolic tangent, y = tanh(x) (overflow-safe for large |x|). */
export function tanh(x: Tensor, out?: Tensor): Tensor {
  return unary("tanh", TANH, x, out);
}

/** Backward of `tanh` from its output: dx = dy·(1 − y²) with y = tanh(x). */
export function tanhBackward(dy: Tensor, y: Tensor, out?: Tensor): Tensor {
  return binary("tanhBackward", TANH_BACKWARD, dy, y, out);
}
