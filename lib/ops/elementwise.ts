/**
 * Elementwise ops: `axpby` (out = α·a + β·b: add, subtract, scale), `mul` (out = α·a∘b),
 * `addInto` (a += β·b in place, gradient accumulation) and `scale`, with their backward rules.
 * Every binding is read_write, so outputs may alias inputs (each invocation reads and writes only
 * its own element; WebGPU allows one buffer in several storage bindings of a dispatch).
 * @module
 */
import src from "../../kernels/elementwise.wgsl" with { type: "text" };
import { ShapeError } from "../errors.ts";
import { f32Bits, type KernelSpec } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { grid1d } from "./grid.ts";

const WG = 256;
const spec = (entry: string): KernelSpec => ({
  name: "elementwise.wgsl",
  source: src,
  entry,
  bindings: ["rw", "rw", "rw"],
  constants: { WG },
});
const AXPBY = spec("axpby");
const MUL = spec("mul");
// vec4 twins for sizes that are multiples of 4 (a quarter of llvmpipe's lane-by-lane accesses)
const AXPBY4 = spec("axpby4");
const MUL4 = spec("mul4");
const SCALE = spec("scale");

function sameSize(op: string, a: Tensor, b: Tensor): void {
  if (a.size !== b.size) {
    throw new ShapeError(
      `${op}: sizes differ: [${a.shape.join(", ")}] vs [${b.shape.join(", ")}]`,
    );
  }
}

/** out = α·a + β·b (allocates `out` unless given; `out` may be `a` or `b`). */
export function axpby(a: Tensor, b: Tensor, alpha = 1, beta = 1, out?: Tensor): Tensor {
  sameSize("axpby", a, b);
  const o = out ?? a.gpu.empty(a.shape);
  sameSize("axpby out", a, o);
  const q = a.size > 0 && a.size % 4 === 0 ? 4 : 1;
  const [nx, ny] = grid1d(a.size / q, WG);
  const params = [a.size / q, nx, f32Bits(alpha), f32Bits(beta)];
  a.gpu.dispatch(q === 4 ? AXPBY4 : AXPBY, params, [a, b, o], [nx, ny]);
  return o;
}

/** out = a + b. Backward: da = dout, db = dout. */
export function add(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  return axpby(a, b, 1, 1, out);
}

/** acc += β·x in place (gradient accumulation); returns `acc`. */
export function addInto(acc: Tensor, x: Tensor, beta = 1): Tensor {
  return axpby(acc, x, 1, beta, acc);
}

/** out = α·a (in place when `out` is `a`). Backward: da = α·dout. */
export function scale(a: Tensor, alpha: number, out?: Tensor): Tensor {
  const o = out ?? a.gpu.empty(a.shape);
  sameSize("scale out", a, o);
  const [nx, ny] = grid1d(a.size, WG);
  a.gpu.dispatch(SCALE, [a.size, nx, f32Bits(alpha), 0], [a, a, o], [nx, ny]);
  return o;
}

/** out = α·a∘b. Backward: `mulBackward`. */
export function mul(a: Tensor, b: Tensor, alpha = 1, out?: Tensor): Tensor {
  sameSize("mul", a, b);
  const o = out ?? a.gpu.empty(a.shape);
  sameSize("mul out", a, o);
  const q = a.size > 0 && a.size % 4 === 0 ? 4 : 1;
  const [nx, ny] = grid1d(a.size / q, WG);
  a.gpu.dispatch(q === 4 ? MUL4 : MUL, [a.size / q, nx, f32Bits(alpha), 0], [a, b, o], [nx, ny]);
  return o;
}

/** Backward of `mul`: da = α·dout∘b, db = α·dout∘a. */
export function mulBackward(
  dout: Tensor,
  a: Tensor,
  b: Tensor,
  alpha = 1,
): { da: Tensor; db: Tensor } {
  return { da: mul(dout, b, alpha), db: mul(dout, a, alpha) };
}
