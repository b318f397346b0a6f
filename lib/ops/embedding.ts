/**
 * Embedding ops: `embeddingGather` (table lookup by token id) and `embeddingBackward`, a
 * deterministic scatter-add of the output gradient into the table gradient. The backward sorts the
 * positions by id on the CPU (callers hold the ids there) so every table element has exactly one
 * writer and sums its rows in increasing position order; no float atomics.
 * @module
 */
import src from "../../kernels/embedding.wgsl" with { type: "text" };
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import type { KernelSpec } from "../gpu/context.ts";
import { expectShape, type Tensor } from "../gpu/tensor.ts";
import { addInto } from "./elementwise.ts";
import { grid1d } from "./grid.ts";

const WG = 256;
const GATHER: KernelSpec = {
  name: "embedding.wgsl",
  source: src,
  entry: "gather",
  bindings: ["read", "read", "rw"],
  constants: { WG },
};
const GATHER4: KernelSpec = { ...GATHER, entry: "gather4" };
const SCATTER_ADD: KernelSpec = { ...GATHER, entry: "scatter_add" };
const GATHER_SUM4: KernelSpec = {
  ...GATHER,
  entry: "gather_sum4",
  bindings: ["read", "read", "rw", "read", "read"],
};

/**
 * Looks up rows of `table` [V, d] for the token ids in `ids` (an i32 tensor uploaded with
 * `gpu.uploadU32`, any shape of N elements) and returns them as [N, d] (in `out` when given).
 * An id outside [0, V) yields a zero row. Backward: `embeddingBackward`.
 */
export function embeddingGather(table: Tensor, ids: Tensor, out?: Tensor): Tensor {
  if (table.shape.length !== 2) {
    throw new ShapeError(`embeddingGather: table must be [V, d], got [${table.shape.join(", ")}]`);
  }
  const [V, d] = table.shape;
  const N = ids.size;
  const o = out ?? table.gpu.empty([N, d]);
  expectShape("embeddingGather out", o, [N, d]);
  if (o.buffer === table.buffer || o.buffer === ids.buffer) {
    throw new InvalidArgumentError("embeddingGather: out must not share storage with table or ids");
  }
  // rows of d % 4 == 0 values move as vec4s (a quarter of llvmpipe's lane-by-lane accesses)
  const w = d % 4 === 0 ? 4 : 1;
  const n = (N * d) / w;
  const [nx, ny] = grid1d(n, WG);
  table.gpu.dispatch(w === 4 ? GATHER4 : GATHER, [n, nx, d / w, V, 0], [table, ids, o], [nx, ny]);
  return o;
}

/**
 * `embeddingGather(a, idsA) + embeddingGather(b, idsB)` in one pass: [N, d] rows of `a` [Va, d]
 * and `b` [Vb, d] (same width d) summed, where an id outside its table's range adds a zero row.
 * Inference only (fused embeddings: position + token-type rows); no backward. Falls back to two
 * gathers and an add when d is not a multiple of 4.
 */
export function embeddingGatherSum(a: Tensor, idsA: Tensor, b: Tensor, idsB: Tensor): Tensor {
  if (a.shape.length !== 2 || b.shape.length !== 2 || a.shape[1] !== b.shape[1]) {
    throw new ShapeError(
      `embeddingGatherSum: tables must be [Va, d] and [Vb, d], got [${a.shape.join(", ")}] and [${
        b.shape.join(", ")
      }]`,
    );
  }
  if (idsA.size !== idsB.size) {
    throw new ShapeError(
      `embeddingGatherSum: ${idsA.size} ids for the first table, ${idsB.size} for the second`,
    );
  }
  const [V, d] = a.shape;
  const N = idsA.size;
  const gpu = a.gpu;
  if (d % 4 !== 0) {
    const o = embeddingGather(a, idsA);
    const r = embeddingGather(b, idsB);
    addInto(o, r);
    r.release();
    return o;
  }
  const o = gpu.empty([N, d]);
  const n = (N * d) / 4;
  const [nx, ny] = grid1d(n, WG);
  gpu.dispatch(GATHER_SUM4, [n, nx, d / 4, V, 0, b.shape[0]], [a, idsA, o, b, idsB], [nx, ny]);
  return o;
}

/**
 * Backward of `embeddingGather`: dtable[v] = Σ_{n: ids[n] = v} dy[n], each sum formed in
 * increasing n order, so results are bit-identical from run to run. `dy` is [N, d], `idsHost` the
 * same N ids on the CPU (each in [0, vocabSize)). Returns a new zeroed-then-filled [vocabSize, d]
 * tensor, or, when `into` [vocabSize, d] is given, adds the gradient into it and returns it.
 */
export function embeddingBackward(
  dy: Tensor,
  idsHost: Int32Array,
  vocabSize: number,
  into?: Tensor,
): Tensor {
  const N = idsHost.length;
  if (dy.shape.length !== 2 || dy.shape[0] !== N) {
    throw new ShapeError(
      `embeddingBackward: dy must be [${N}, d] for ${N} ids, got [${dy.shape.join(", ")}]`,
    );
  }
  if (!Number.isInteger(vocabSize) || vocabSize < 1) {
    throw new InvalidArgumentError(
      `embeddingBackward: vocabSize ${vocabSize} must be an integer ≥ 1`,
    );
  }
  const d = dy.shape[1];
  const gpu = dy.gpu;
  const dtable = into ?? gpu.zeros([vocabSize, d]);
  expectShape("embeddingBackward into", dtable, [vocabSize, d]);
  if (dtable.buffer === dy.buffer) {
    throw new InvalidArgumentError("embeddingBackward: into must not share storage with dy");
  }
  // Counting sort of positions by id (stable, so each segment lists positions in increasing n).
  const counts = new Int32Array(vocabSize + 1);
  for (let n = 0; n < N; n++) {
    const v = idsHost[n];
    if (!(v >= 0 && v < vocabSize)) {
      throw new InvalidArgumentError(
        `embeddingBackward: id ${v} at position ${n} is outside [0, ${vocabSize})`,
      );
    }
    counts[v + 1]++;
  }
  let U = 0;
  for (let v = 0; v < vocabSize; v++) if (counts[v + 1] > 0) U++;
  if (U === 0 || d === 0) return dtable;
  // idx = [uniq (U) | seg (U + 1) | perm (N)]
  const idx = new Int32Array(2 * U + 1 + N);
  const start = new Int32Array(vocabSize);
  let u = 0;
  let offset = 0;
  for (let v = 0; v < vocabSize; v++) {
    const c = counts[v + 1];
    start[v] = offset;
    if (c > 0) {
      idx[u] = v;
      idx[U + u] = offset;
      u++;
      offset += c;
    }
  }
  idx[2 * U] = N;
  const permBase = 2 * U + 1;
  for (let n = 0; n < N; n++) idx[permBase + start[idsHost[n]]++] = n;
  const idxTensor = gpu.uploadU32(idx);
  const n = U * d;
  const [nx, ny] = grid1d(n, WG);
  gpu.dispatch(SCATTER_ADD, [n, nx, d, vocabSize, U], [dy, idxTensor, dtable], [nx, ny]);
  idxTensor.release();
  return dtable;
}
