/**
 * Deterministic reductions: column sums (`sumRows`, bias gradients), per-group column sums
 * (`sumGroups`), the sum of all elements (`sumAll`) and the product forms used by mask gradients
 * (`dotRows`, `dotGroups`). Every sum has a fixed order (strided lanes, then a fixed tree, then a
 * second stage over fixed-size chunks when there are many rows), so results are bit-identical from
 * run to run; no float atomics.
 * @module
 */
import src from "../../kernels/reduce.wgsl" with { type: "text" };
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import type { KernelSpec } from "../gpu/context.ts";
import { expectShape, type Tensor } from "../gpu/tensor.ts";
import { flatTexture, flatTextureFits } from "./flat_texture.ts";
import { grid1d } from "./grid.ts";
import { kernelClass } from "./kernel_class.ts";

/** Columns per col_reduce workgroup (fewer when C is smaller). */
const CX = 16;
/** Row lanes per col_reduce workgroup (fewer when a chunk has fewer rows). */
const RY = 16;
/** Rows per chunk of the first stage of a column sum over many rows. */
const COL_CHUNK = 256;
/** Lanes per row_reduce workgroup (fewer for shorter rows). */
const WG = 256;
/** Elements per chunk of the first stage of `sumAll`. */
const FLAT_CHUNK = 64 * WG;
const MAX_GROUPS = 65535;
/** Columns (col_serial) or rows (row_serial) per workgroup of the CPU-class kernels. */
const CPU_WG = 64;
/** Elements per chunk of the first stage of `sumAll` with the CPU-class kernels. */
const CPU_FLAT_CHUNK = 1024;

/** Smallest power of two ≥ n, capped at `max` (lane counts adapt to short rows and columns). */
function lanes(n: number, max: number): number {
  let p = 1;
  while (p < n && p < max) p *= 2;
  return p;
}

const specs = new Map<string, KernelSpec>();
/** The cached kernel spec of a reduction entry with its lane counts and PRODUCT flag. */
function reduceSpec(entry: string, constants: Record<string, number>): KernelSpec {
  const key = `${entry}:${Object.values(constants).join(",")}`;
  let spec = specs.get(key);
  if (!spec) {
    const bindings: KernelSpec["bindings"] = entry === "col_serial4"
      ? ["texture", "texture", "rw"]
      : ["read", "read", "rw"];
    spec = { name: "reduce.wgsl", source: src, entry, bindings, constants };
    specs.set(key, spec);
  }
  return spec;
}

/**
 * One col_reduce dispatch: out[k, c] (+)= Σ_{r in chunk k} term(r, c) for chunks of `rows` rows of
 * a [R, C] input (term = a, or a∘b when `b` is given).
 */
function colReduce(
  a: Tensor,
  b: Tensor | null,
  R: number,
  C: number,
  rows: number,
  out: Tensor,
  accumulate: boolean,
): void {
  const nChunks = Math.ceil(R / rows);
  const ny = Math.min(nChunks, MAX_GROUPS);
  const nz = Math.ceil(nChunks / ny);
  const gpu = a.gpu;
  const flat = a.size === R * C && (!b || b.size === R * C);
  if (kernelClass(gpu) === "cpu" && C % 4 === 0 && flat && flatTextureFits(gpu, R * C)) {
    // four columns per lane from flat textures, vec4 stores (the same sums, in the same order)
    const cx = lanes(C / 4, CPU_WG);
    const ta = flatTexture(a);
    const tb = b ? flatTexture(b) : undefined;
    gpu.dispatchResources(
      reduceSpec("col_serial4", { CX: cx, PRODUCT: b ? 1 : 0 }),
      [R, C, rows, nChunks, ny, accumulate ? 1 : 0, ta.shift],
      [ta.tex, (tb ?? ta).tex, out],
      [Math.ceil(C / 4 / cx), ny, nz],
    );
    gpu.textures.release(ta.tex);
    if (tb) gpu.textures.release(tb.tex);
    return;
  }
  if (kernelClass(gpu) === "cpu") {
    const cx = lanes(C, CPU_WG);
    gpu.dispatch(
      reduceSpec("col_serial", { CX: cx, PRODUCT: b ? 1 : 0 }),
      [R, C, rows, nChunks, ny, accumulate ? 1 : 0, 0],
      [a, b ?? a, out],
      [Math.ceil(C / cx), ny, nz],
    );
    return;
  }
  const cx = lanes(C, CX);
  const ry = lanes(rows, RY);
  a.gpu.dispatch(
    reduceSpec("col_reduce", { CX: cx, RY: ry, PRODUCT: b ? 1 : 0 }),
    [R, C, rows, nChunks, ny, accumulate ? 1 : 0, 0],
    [a, b ?? a, out],
    [Math.ceil(C / cx), ny, nz],
  );
}

/** Column sums of a [R, C] input in two or more stages when R is large; result into `out` [C]. */
function columnSums(x: Tensor, R: number, C: number, out: Tensor, accumulate: boolean): void {
  if (R <= COL_CHUNK) {
    colReduce(x, null, R, C, Math.max(R, 1), out, accumulate);
    return;
  }
  const nChunks = Math.ceil(R / COL_CHUNK);
  const partial = x.gpu.empty([nChunks, C]);
  colReduce(x, null, R, C, COL_CHUNK, partial, false);
  columnSums(partial, nChunks, C, out, accumulate);
  partial.release();
}

/** One row_reduce dispatch: out[k] (+)= Σ of flat elements k·L … min(n, (k+1)·L) − 1. */
function rowReduce(
  a: Tensor,
  b: Tensor | null,
  n: number,
  L: number,
  out: Tensor,
  accumulate: boolean,
): void {
  const rows = Math.ceil(n / L);
  if (kernelClass(a.gpu) === "cpu") {
    const wg = lanes(rows, CPU_WG);
    const [nx, ny] = grid1d(rows, wg);
    a.gpu.dispatch(
      reduceSpec("row_serial", { WG: wg, PRODUCT: b ? 1 : 0 }),
      [n, L, rows, nx, accumulate ? 1 : 0],
      [a, b ?? a, out],
      [nx, ny],
    );
    return;
  }
  const [nx, ny] = grid1d(rows, 1);
  a.gpu.dispatch(
    reduceSpec("row_reduce", { WG: lanes(L, WG), PRODUCT: b ? 1 : 0 }),
    [n, L, rows, nx, accumulate ? 1 : 0],
    [a, b ?? a, out],
    [nx, ny],
  );
}

function rowsAndCols(op: string, x: Tensor): [number, number] {
  if (x.shape.length < 2) {
    throw new ShapeError(`${op}: expected a [R, C] tensor, got [${x.shape.join(", ")}]`);
  }
  const C = x.shape[x.shape.length - 1];
  return [C === 0 ? 0 : x.size / C, C];
}

/**
 * Column sums of x [R, C] (leading dimensions are flattened into R): out[c] = Σ_r x[r, c], the
 * bias gradient of a linear layer. When `into` [C] is given the sums are added to it and it is
 * returned. Rows are summed in chunks of 256 and the chunk sums in a second stage (fixed order).
 */
export function sumRows(x: Tensor, into?: Tensor): Tensor {
  const [R, C] = rowsAndCols("sumRows", x);
  const out = into ?? x.gpu.empty([C]);
  expectShape("sumRows into", out, [C]);
  if (out.buffer === x.buffer) {
    throw new InvalidArgumentError("sumRows: into must not share storage with x");
  }
  if (R === 0) {
    if (!into) x.gpu.clear(out);
    return out;
  }
  columnSums(x, R, C, out, into !== undefined);
  return out;
}

function groupsOf(op: string, x: Tensor, T: number): [number, number] {
  if (x.shape.length !== 2) {
    throw new ShapeError(`${op}: expected x [G·T, C], got [${x.shape.join(", ")}]`);
  }
  if (!Number.isInteger(T) || T < 1 || x.shape[0] % T !== 0) {
    throw new ShapeError(
      `${op}: rows of [${x.shape.join(", ")}] are not a whole number of groups of T = ${T}`,
    );
  }
  return [x.shape[0] / T, x.shape[1]];
}

/**
 * Per-group column sums: x [G·T, C] (G groups of T consecutive rows, e.g. G examples × T tokens)
 * → [G, C] with out[g, c] = Σ_t x[g·T + t, c].
 */
export function sumGroups(x: Tensor, T: number): Tensor {
  const [G, C] = groupsOf("sumGroups", x, T);
  const out = x.gpu.empty([G, C]);
  colReduce(x, null, G * T, C, T, out, false);
  return out;
}

/**
 * Per-group column sums of a product: a, b [G·T, C] → [G, C] with
 * out[g, c] = Σ_t a[g·T + t, c]·b[g·T + t, c] (the per-example FFN mask gradient).
 */
export function dotGroups(a: Tensor, b: Tensor, T: number): Tensor {
  const [G, C] = groupsOf("dotGroups", a, T);
  expectShape("dotGroups b", b, a.shape);
  const out = a.gpu.empty([G, C]);
  colReduce(a, b, G * T, C, T, out, false);
  return out;
}

/**
 * Row dot products: a, b [R, C] (leading dimensions flattened into R) → [R] with
 * out[r] = Σ_c a[r, c]·b[r, c] (the per-row head mask gradient).
 */
export function dotRows(a: Tensor, b: Tensor): Tensor {
  const [R, C] = rowsAndCols("dotRows", a);
  expectShape("dotRows b", b, a.shape);
  const out = a.gpu.empty([R]);
  if (C === 0) {
    a.gpu.clear(out);
    return out;
  }
  rowReduce(a, b, R * C, C, out, false);
  return out;
}

/**
 * Sum of all elements of x (any shape) → [1]: fixed-size chunks (16384 elements; 1024 with the
 * CPU-class kernels) and then over the chunk sums, in as many stages as needed.
 */
export function sumAll(x: Tensor): Tensor {
  return flatSum(x, null);
}

/**
 * Σ_i a[i]·b[i] over all elements of two tensors of one size → [1] (dotAll(g, g) is the squared
 * L2 norm): the chunks and stages of `sumAll`, the products formed in its first stage, so the
 * result equals sumAll of the elementwise product without that [size] temporary.
 */
export function dotAll(a: Tensor, b: Tensor): Tensor {
  if (b.size !== a.size) {
    throw new ShapeError(`dotAll: sizes differ (${a.size} vs ${b.size})`);
  }
  return flatSum(a, b);
}

function flatSum(x: Tensor, y: Tensor | null): Tensor {
  const out = x.gpu.empty([1]);
  if (x.size === 0) {
    x.gpu.clear(out);
    return out;
  }
  const chunk = kernelClass(x.gpu) === "cpu" ? CPU_FLAT_CHUNK : FLAT_CHUNK;
  let cur: Tensor = x;
  let other = y;
  while (cur.size > chunk) {
    const partial = x.gpu.empty([Math.ceil(cur.size / chunk)]);
    rowReduce(cur, other, cur.size, chunk, partial, false);
    if (cur !== x) cur.release();
    cur = partial;
    other = null;
  }
  rowReduce(cur, other, cur.size, cur.size, out, false);
  if (cur !== x) cur.release();
  return out;
}
