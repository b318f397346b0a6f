/**
 * Mask scaling ops for pruning: `scaleRows` (head mask on per-head context rows),
 * `scaleColsGrouped` (per-example FFN neuron mask) with their backward rules, which return the
 * mask gradient per row / per example (never summed over the batch, as Fisher needs it per
 * example), and `accumulateSquares` (Fisher accumulation acc += g∘g).
 * @module
 */
import src from "../../kernels/masks.wgsl" with { type: "text" };
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import type { KernelSpec } from "../gpu/context.ts";
import { expectShape, type Tensor } from "../gpu/tensor.ts";
import { grid1d } from "./grid.ts";
import { dotGroups, dotRows } from "./reduce.ts";

const WG = 256;
const spec = (entry: string, bindings: KernelSpec["bindings"]): KernelSpec => ({
  name: "masks.wgsl",
  source: src,
  entry,
  bindings,
  constants: { WG },
});
const SCALE_ROWS = spec("scale_rows", ["read", "read", "rw"]);
const SCALE_COLS_GROUPED = spec("scale_cols_grouped", ["read", "read", "rw"]);
// vec4 twins for rows of a multiple of 4 values (a quarter of llvmpipe's lane-by-lane accesses)
const SCALE_ROWS4 = spec("scale_rows4", ["read", "read", "rw"]);
const SCALE_COLS_GROUPED4 = spec("scale_cols_grouped4", ["read", "read", "rw"]);
const ACCUMULATE_SQUARES = spec("accumulate_squares", ["read", "rw"]);

function rowsOf(op: string, x: Tensor, s: Tensor): [number, number] {
  if (x.shape.length < 1 || s.size !== x.shape[0]) {
    throw new ShapeError(
      `${op}: s [${s.shape.join(", ")}] must hold one value per row of x [${x.shape.join(", ")}]`,
    );
  }
  const R = x.shape[0];
  return [R, R === 0 ? 0 : x.size / R];
}

/**
 * Head mask: y[r, :] = s[r]·x[r, :] for x [R, …] (R = B·H rows of S·dh context values; trailing
 * dimensions are flattened into the row) and s [R]. Backward: `scaleRowsBackward`.
 */
export function scaleRows(x: Tensor, s: Tensor): Tensor {
  const [R, C] = rowsOf("scaleRows", x, s);
  const y = x.gpu.empty(x.shape);
  const q = x.size > 0 && C % 4 === 0 ? 4 : 1;
  const n = (R * C) / q;
  const [nx, ny] = grid1d(n, WG);
  x.gpu.dispatch(q === 4 ? SCALE_ROWS4 : SCALE_ROWS, [n, nx, C / q, 0], [x, s, y], [nx, ny]);
  return y;
}

/**
 * Backward of `scaleRows`: dx = s[r]·dy[r, :] (shape of x) and ds [R] with
 * ds[r] = Σ_c dy[r, c]·x[r, c] (one value per row, i.e. per example and head).
 */
export function scaleRowsBackward(dy: Tensor, x: Tensor, s: Tensor): { dx: Tensor; ds: Tensor } {
  rowsOf("scaleRowsBackward", x, s);
  expectShape("scaleRowsBackward dy", dy, x.shape);
  const dx = scaleRows(dy, s);
  const [R, C] = [x.shape[0], x.shape[0] === 0 ? 0 : x.size / x.shape[0]];
  const ds = dotRows(dy.view([R, C]), x.view([R, C]));
  return { dx, ds };
}

function groupsOf(op: string, x: Tensor, s: Tensor, T: number): [number, number] {
  if (x.shape.length !== 2 || s.shape.length !== 2 || s.shape[1] !== x.shape[1]) {
    throw new ShapeError(
      `${op}: expected x [G·T, C] and s [G, C], got x [${x.shape.join(", ")}], s [${
        s.shape.join(", ")
      }]`,
    );
  }
  if (!Number.isInteger(T) || T < 1 || x.shape[0] !== s.shape[0] * T) {
    throw new ShapeError(
      `${op}: x [${x.shape.join(", ")}] must have G·T = ${s.shape[0]}·${T} rows for s [${
        s.shape.join(", ")
      }]`,
    );
  }
  return [s.shape[0], x.shape[1]];
}

/**
 * FFN mask: x [G·T, C] (G examples × T tokens), s [G, C]: y[g·T + t, c] = x[g·T + t, c]·s[g, c].
 * Backward: `scaleColsGroupedBackward`.
 */
export function scaleColsGrouped(x: Tensor, s: Tensor, T: number): Tensor {
  const [, C] = groupsOf("scaleColsGrouped", x, s, T);
  const y = x.gpu.empty(x.shape);
  const q = x.size > 0 && C % 4 === 0 ? 4 : 1;
  const n = x.size / q;
  const [nx, ny] = grid1d(n, WG);
  const entry = q === 4 ? SCALE_COLS_GROUPED4 : SCALE_COLS_GROUPED;
  x.gpu.dispatch(entry, [n, nx, C / q, T], [x, s, y], [nx, ny]);
  return y;
}

/**
 * Backward of `scaleColsGrouped`: dx[g·T + t, c] = dy·s[g, c] and the per-example mask gradient
 * ds[g, c] = Σ_t dy[g·T + t, c]·x[g·T + t, c].
 */
export function scaleColsGroupedBackward(
  dy: Tensor,
  x: Tensor,
  s: Tensor,
  T: number,
): { dx: Tensor; ds: Tensor } {
  groupsOf("scaleColsGroupedBackward", x, s, T);
  expectShape("scaleColsGroupedBackward dy", dy, x.shape);
  return { dx: scaleColsGrouped(dy, s, T), ds: dotGroups(dy, x, T) };
}

/** Fisher accumulation: acc += g∘g elementwise (g and acc of the same size, not aliased). */
export function accumulateSquares(g: Tensor, acc: Tensor): void {
  if (g.size !== acc.size) {
    throw new ShapeError(
      `accumulateSquares: sizes differ: g [${g.shape.join(", ")}] vs acc [${acc.shape.join(", ")}]`,
    );
  }
  if (g.buffer === acc.buffer) {
    throw new InvalidArgumentError("accumulateSquares: g and acc must not share storage");
  }
  const n = g.size;
  const [nx, ny] = grid1d(n, WG);
  g.gpu.dispatch(ACCUMULATE_SQUARES, [n, nx, 0, 0], [g, acc], [nx, ny]);
}
