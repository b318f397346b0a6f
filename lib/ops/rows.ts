/**
 * Row ops: `selectRows` gathers rows by index (e.g. the [CLS] rows or answer positions) with its
 * scatter backward, and `addRowVector` broadcasts a row vector over every row (biases,
 * position and token-type embeddings); its backward for the vector is `sumRows` in reduce.ts.
 * @module
 */
import src from "../../kernels/rows.wgsl" with { type: "text" };
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import type { KernelSpec } from "../gpu/context.ts";
import { expectShape, type Tensor } from "../gpu/tensor.ts";
import { grid1d } from "./grid.ts";

const WG = 256;
const spec = (entry: string, bindings: KernelSpec["bindings"]): KernelSpec => ({
  name: "rows.wgsl",
  source: src,
  entry,
  bindings,
  constants: { WG },
});
const SELECT_ROWS = spec("select_rows", ["read", "read", "rw"]);
const SCATTER_ROWS = spec("scatter_rows", ["read", "read", "rw"]);
const ADD_ROW_VECTOR = spec("add_row_vector", ["read", "read", "rw"]);
const ADD_ROW_VECTOR_INPLACE = spec("add_row_vector_inplace", ["read", "rw"]);
const BROADCAST_ROWS4 = spec("broadcast_rows4", ["read", "rw"]);

function matrix(op: string, x: Tensor): [number, number] {
  if (x.shape.length !== 2) {
    throw new ShapeError(`${op}: expected a [N, C] tensor, got [${x.shape.join(", ")}]`);
  }
  return [x.shape[0], x.shape[1]];
}

/**
 * Gathers rows: out[m, :] = x[rows[m], :] for x [N, C] and `rows` an i32 tensor of M row indices
 * (uploaded with `gpu.uploadU32`); returns [M, C]. An index outside [0, N) yields a zero row.
 * Backward: `selectRowsBackward`.
 */
export function selectRows(x: Tensor, rows: Tensor): Tensor {
  const [N, C] = matrix("selectRows", x);
  const M = rows.size;
  const out = x.gpu.empty([M, C]);
  const n = M * C;
  const [nx, ny] = grid1d(n, WG);
  x.gpu.dispatch(SELECT_ROWS, [n, nx, C, N], [x, rows, out], [nx, ny]);
  return out;
}

/**
 * Backward of `selectRows` (row indices unique): returns dx [N, C], zero except
 * dx[rows[m], :] = dy[m, :].
 */
export function selectRowsBackward(dy: Tensor, rows: Tensor, N: number): Tensor {
  const [M, C] = matrix("selectRowsBackward", dy);
  if (rows.size !== M) {
    throw new ShapeError(
      `selectRowsBackward: dy [${dy.shape.join(", ")}] needs ${M} row indices, got ${rows.size}`,
    );
  }
  const dx = dy.gpu.zeros([N, C]);
  const n = M * C;
  const [nx, ny] = grid1d(n, WG);
  dy.gpu.dispatch(SCATTER_ROWS, [n, nx, C, N], [dy, rows, dx], [nx, ny]);
  return dx;
}

/**
 * Broadcast add of a row vector: y[r, c] = x[r, c] + b[c] for x [R, C] (leading dimensions are
 * flattened into R) and b [C]. `out` may be x itself (in place). Backward: dx = dy,
 * db = `sumRows(dy)`.
 */
export function addRowVector(x: Tensor, b: Tensor, out?: Tensor): Tensor {
  if (x.shape.length < 1) {
    throw new ShapeError(`addRowVector: x must have at least one dimension, got []`);
  }
  const C = x.shape[x.shape.length - 1];
  expectShape("addRowVector b", b, [C]);
  const o = out ?? x.gpu.empty(x.shape);
  if (o.size !== x.size) {
    throw new ShapeError(
      `addRowVector: out [${o.shape.join(", ")}] differs in size from x [${x.shape.join(", ")}]`,
    );
  }
  if (o.buffer === b.buffer) {
    throw new InvalidArgumentError("addRowVector: out must not share storage with b");
  }
  const n = x.size;
  const [nx, ny] = grid1d(n, WG);
  if (o.buffer === x.buffer) {
    x.gpu.dispatch(ADD_ROW_VECTOR_INPLACE, [n, nx, C, 0], [b, o], [nx, ny]);
  } else {
    x.gpu.dispatch(ADD_ROW_VECTOR, [n, nx, C, 0], [x, b, o], [nx, ny]);
  }
  return o;
}

/**
 * A tensor of `shape` (last dimension C) whose every row is `b` [C] (a zero-width sub-layer's
 * output: its bias). One vec4 load and store per four values where C % 4 == 0, else zeros plus
 * `addRowVector`.
 */
export function broadcastRows(b: Tensor, shape: readonly number[]): Tensor {
  const C = b.shape[0];
  if (b.shape.length !== 1 || shape.length < 1 || shape[shape.length - 1] !== C) {
    throw new ShapeError(
      `broadcastRows: b [${b.shape.join(", ")}] is not the last dimension of [${shape.join(", ")}]`,
    );
  }
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new InvalidArgumentError(`broadcastRows: shape must be non-negative integers`);
  }
  const gpu = b.gpu;
  if (C % 4 !== 0) {
    const zeros = gpu.zeros(shape);
    const out = addRowVector(zeros, b);
    zeros.release();
    return out;
  }
  const out = gpu.empty(shape);
  const n = out.size / 4;
  const [nx, ny] = grid1d(n, WG);
  gpu.dispatch(BROADCAST_ROWS4, [n, nx, C / 4, 0], [b, out], [nx, ny]);
  return out;
}
