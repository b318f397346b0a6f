/**
 * LayerNorm over the last dimension (torch.nn.LayerNorm semantics: biased variance, eps inside the
 * square root) with its explicit backward. Forward saves the per-row mean and reciprocal standard
 * deviation for the backward. All reductions run in a fixed order, so results are deterministic.
 * @module
 */
import src from "../../kernels/layernorm.wgsl" with { type: "text" };
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import { f32Bits, type KernelSpec } from "../gpu/context.ts";
import { shapeStr, type Tensor } from "../gpu/tensor.ts";
import type { Texture2D } from "../gpu/textures.ts";
import { add } from "./elementwise.ts";
import { flatTexture, flatTextureFits, heldFlatTexture } from "./flat_texture.ts";
import { grid1d } from "./grid.ts";
import { kernelClass } from "./kernel_class.ts";
import {
  UNROLLED_LN_MAX_C4,
  UNROLLED_LN_ROWS,
  unrolledLayerNormEntry,
  unrolledLayerNormSource,
  unrolledLayerNormTrainSource,
} from "./layernorm_unrolled.ts";

const ROW_WG = 256;
/** Rows per workgroup of the CPU-class kernels (one invocation per row). */
const CPU_ROWS_WG = 64;
const COL_WG = 64;
/** Rows summed by one invocation in the first stage of the dgamma/dbeta column reduction. */
const ROWS_PER_CHUNK = 32;

const spec = (entry: string, bindings: KernelSpec["bindings"], WG: number): KernelSpec => ({
  name: "layernorm.wgsl",
  source: src,
  entry,
  bindings,
  constants: { WG },
});
const rowWg = (cols: number) => (cols <= 32 ? 32 : cols <= 64 ? 64 : cols <= 128 ? 128 : ROW_WG);
const FORWARD = (wg: number) => spec("forward", ["read", "read", "read", "rw", "rw", "rw"], wg);
const BACKWARD_DX = (wg: number) =>
  spec("backward_dx", ["read", "read", "read", "read", "read", "rw"], wg);
const FORWARD_ROWS = spec("forward_rows", ["read", "read", "read", "rw", "rw", "rw"], CPU_ROWS_WG);
const ADD_FORWARD_ROWS_TEX = spec(
  "add_forward_rows_tex",
  ["texture", "texture", "texture", "texture", "rw"],
  CPU_ROWS_WG,
);
const BACKWARD_DX_ROWS = spec(
  "backward_dx_rows",
  ["read", "read", "read", "read", "read", "rw"],
  CPU_ROWS_WG,
);
const PARAM_PARTIAL = spec("param_partial", ["read", "read", "read", "read", "rw"], COL_WG);
const PARAM_PARTIAL4 = spec(
  "param_partial4",
  ["texture", "texture", "read", "read", "rw"],
  COL_WG,
);
const PARAM_FINAL = spec("param_final", ["read", "rw", "rw"], COL_WG);

/** Rows and columns of `x` seen as [R, C] with C its last dimension. */
function rowsCols(op: string, x: Tensor): [number, number] {
  if (x.shape.length === 0) throw new ShapeError(`${op}: x must have at least one dimension`);
  const cols = x.shape[x.shape.length - 1];
  return [cols === 0 ? 0 : x.size / cols, cols];
}

function expectSize(op: string, name: string, t: Tensor, size: number, what: string): void {
  if (t.size !== size) {
    throw new ShapeError(`${op}: ${name} ${shapeStr(t)} must have ${size} elements (${what})`);
  }
}

/**
 * LayerNorm forward over the last dimension of `x` (seen as [R, C]): y = (x − mean)·rstd·gamma +
 * beta with rstd = 1/√(var + eps), var biased. `gamma` and `beta` have C elements. Returns `y`
 * (shape of `x`) and the saved `mean` and `rstd` ([R]) that `layerNormBackward` needs.
 */
export function layerNorm(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  eps: number,
  out?: Tensor,
): { y: Tensor; mean: Tensor; rstd: Tensor } {
  const [rows, cols] = rowsCols("layerNorm", x);
  expectSize("layerNorm", "gamma", gamma, cols, `last dim of x ${shapeStr(x)}`);
  expectSize("layerNorm", "beta", beta, cols, `last dim of x ${shapeStr(x)}`);
  if (!(eps >= 0)) throw new InvalidArgumentError(`layerNorm: eps must be ≥ 0, got ${eps}`);
  const gpu = x.gpu;
  const y = out ?? gpu.empty(x.shape);
  expectSize("layerNorm", "out", y, x.size, `shape of x ${shapeStr(x)}`);
  const mean = gpu.empty([rows]);
  const rstd = gpu.empty([rows]);
  const cpu = kernelClass(gpu) === "cpu";
  const [nx, ny] = grid1d(rows, cpu ? CPU_ROWS_WG : 1);
  if (cpu && unrolledTrainFits(x, cols)) {
    // rows of ≤ 256 values on a CPU adapter: x through a flat texture, the unrolled entry
    const tx = flatTexture(x), tg = heldFlatTexture(gamma), tb = heldFlatTexture(beta);
    gpu.dispatchResources(
      unrolledTrainSpec("fwd", cols / 4),
      [rows, cols, nx, f32Bits(eps), tx.shift, tg.shift],
      [tx.tex, tg.tex, tb.tex, y, mean, rstd],
      [nx, ny],
    );
    gpu.textures.release(tx.tex);
    return { y, mean, rstd };
  }
  gpu.dispatch(
    cpu ? FORWARD_ROWS : FORWARD(rowWg(cols)),
    [rows, cols, nx, f32Bits(eps), 0, 0],
    [x, gamma, beta, y, mean, rstd],
    [nx, ny],
  );
  return { y, mean, rstd };
}

/**
 * Training-path residual + LayerNorm: sum = a + r (returned: a backward needs it), then
 * `layerNorm(sum, gamma, beta, eps)`. On CPU adapters, rows of ≤ 256 values (C % 4 == 0) run one
 * unrolled kernel that reads a and r through flat textures and writes sum, y, mean and rstd;
 * elsewhere the add and `layerNorm`. Same results as those two up to fp32 rounding (the sum is
 * exact either way; the statistics sum in another order than the serial CPU-class kernel).
 */
export function addLayerNorm(
  a: Tensor,
  r: Tensor,
  gamma: Tensor,
  beta: Tensor,
  eps: number,
): { sum: Tensor; y: Tensor; mean: Tensor; rstd: Tensor } {
  if (r.size !== a.size) {
    throw new ShapeError(`addLayerNorm: residual ${shapeStr(r)} vs ${shapeStr(a)}`);
  }
  const [rows, cols] = rowsCols("addLayerNorm", a);
  const gpu = a.gpu;
  if (kernelClass(gpu) !== "cpu" || !unrolledTrainFits(a, cols)) {
    const sum = add(a, r);
    return { sum, ...layerNorm(sum, gamma, beta, eps) };
  }
  expectSize("addLayerNorm", "gamma", gamma, cols, `last dim of a ${shapeStr(a)}`);
  expectSize("addLayerNorm", "beta", beta, cols, `last dim of a ${shapeStr(a)}`);
  if (!(eps >= 0)) throw new InvalidArgumentError(`addLayerNorm: eps must be ≥ 0, got ${eps}`);
  const sum = gpu.empty(a.shape), y = gpu.empty(a.shape);
  const mean = gpu.empty([rows]), rstd = gpu.empty([rows]);
  const ta = flatTexture(a), tr = flatTexture(r);
  const tg = heldFlatTexture(gamma), tb = heldFlatTexture(beta);
  const [nx, ny] = grid1d(rows, CPU_ROWS_WG);
  gpu.dispatchResources(
    unrolledTrainSpec("addfwd", cols / 4),
    [rows, cols, nx, f32Bits(eps), ta.shift, tg.shift],
    [ta.tex, tr.tex, tg.tex, tb.tex, sum, y, mean, rstd],
    [nx, ny],
  );
  gpu.textures.release(ta.tex);
  gpu.textures.release(tr.tex);
  return { sum, y, mean, rstd };
}

/**
 * Whether the unrolled training entries (lib/ops/layernorm_unrolled.ts) take rows of `cols`
 * values of `x`: C % 4 == 0, C ≤ 256 and x within the flat-texture limits.
 */
function unrolledTrainFits(x: Tensor, cols: number): boolean {
  return cols % 4 === 0 && cols / 4 <= UNROLLED_LN_MAX_C4 && flatTextureFits(x.gpu, x.size) &&
    flatTextureFits(x.gpu, cols);
}

const TRAIN_BINDINGS: Record<"fwd" | "addfwd" | "dx", KernelSpec["bindings"]> = {
  fwd: ["texture", "texture", "texture", "rw", "rw", "rw"],
  addfwd: ["texture", "texture", "texture", "texture", "rw", "rw", "rw", "rw"],
  dx: ["texture", "texture", "read", "read", "texture", "rw"],
};

function unrolledTrainSpec(kind: "fwd" | "addfwd" | "dx", c4: number): KernelSpec {
  return {
    name: `layernorm.wgsl+ln_${kind}_c${c4}`,
    source: unrolledLayerNormTrainSource(kind, c4),
    entry: `ln_${kind}_c${c4}`,
    bindings: TRAIN_BINDINGS[kind],
    constants: { WG: CPU_ROWS_WG },
  };
}

/**
 * Inference-only y = LayerNorm(a + r) (residual add and LayerNorm in one kernel, no statistics
 * kept), for CPU adapters and C % 4 == 0: a and r are read through flat textures
 * (lib/ops/flat_texture.ts); rows of at most 256 values take the unrolled entry of
 * lib/ops/layernorm_unrolled.ts (each row fetched once, two-pass statistics), wider rows the
 * generic one (one-pass Welford, the row fetched twice). Returns undefined, recording nothing,
 * elsewhere: callers then run `add` and `layerNorm`. The sums run in another order than
 * `layerNorm`'s serial loop (equal up to fp32 rounding).
 */
export function addLayerNormInference(
  a: Tensor,
  r: Tensor,
  gamma: Tensor,
  beta: Tensor,
  eps: number,
): Tensor | undefined {
  if (r.size !== a.size) {
    throw new ShapeError(`addLayerNormInference: residual ${shapeStr(r)} vs ${shapeStr(a)}`);
  }
  return addLayerNormTex("addLayerNormInference", a, r, gamma, beta, eps, false);
}

/**
 * Inference-only y = LayerNorm(bias + r) for a row `bias` [C] added to every row of r [..., C]
 * (a sub-layer with every head or neuron pruned outputs its bias on every row): as
 * `addLayerNormInference` without materialising the broadcast rows. Returns undefined, recording
 * nothing, where the unrolled entry does not apply (GPU adapters, C % 4 != 0, C > 256).
 */
export function biasLayerNormInference(
  bias: Tensor,
  r: Tensor,
  gamma: Tensor,
  beta: Tensor,
  eps: number,
): Tensor | undefined {
  const [, cols] = rowsCols("biasLayerNormInference", r);
  expectSize("biasLayerNormInference", "bias", bias, cols, `last dim of r ${shapeStr(r)}`);
  if (cols / 4 > UNROLLED_LN_MAX_C4) return undefined;
  return addLayerNormTex("biasLayerNormInference", bias, r, gamma, beta, eps, true);
}

function addLayerNormTex(
  op: string,
  a: Tensor,
  r: Tensor,
  gamma: Tensor,
  beta: Tensor,
  eps: number,
  broadcast: boolean,
): Tensor | undefined {
  const [rows, cols] = rowsCols(op, r);
  expectSize(op, "gamma", gamma, cols, `last dim of r ${shapeStr(r)}`);
  expectSize(op, "beta", beta, cols, `last dim of r ${shapeStr(r)}`);
  if (!(eps >= 0)) throw new InvalidArgumentError(`${op}: eps must be ≥ 0`);
  const gpu = r.gpu;
  if (
    kernelClass(gpu) !== "cpu" || cols % 4 !== 0 || !flatTextureFits(gpu, r.size) ||
    !flatTextureFits(gpu, cols)
  ) {
    return undefined;
  }
  // gamma, beta and a broadcast bias: parameters, copied once and kept until written
  // (`heldFlatTexture`)
  const ta = broadcast ? heldFlatTexture(a) : flatTexture(a), tr = flatTexture(r);
  const tg = heldFlatTexture(gamma), tb = heldFlatTexture(beta);
  const y = gpu.empty(r.shape);
  // rows of at most 256 values: the unrolled entry (lib/ops/layernorm_unrolled.ts)
  const c4 = cols / 4;
  const unrolled = c4 <= UNROLLED_LN_MAX_C4;
  const spec: KernelSpec = unrolled
    ? {
      name: `layernorm.wgsl+ln_c${c4}${broadcast ? "_b" : ""}`,
      source: unrolledLayerNormSource(c4, broadcast),
      entry: unrolledLayerNormEntry(c4, broadcast),
      bindings: ADD_FORWARD_ROWS_TEX.bindings,
      constants: { WG: CPU_ROWS_WG },
    }
    : ADD_FORWARD_ROWS_TEX;
  const [nx, ny] = grid1d(unrolled ? Math.ceil(rows / UNROLLED_LN_ROWS) : rows, CPU_ROWS_WG);
  gpu.dispatchResources(
    spec,
    [rows, cols, nx, f32Bits(eps), tr.shift, tg.shift],
    [ta.tex, tr.tex, tg.tex, tb.tex, y],
    [nx, ny],
  );
  if (!broadcast) gpu.textures.release(ta.tex);
  gpu.textures.release(tr.tex);
  return y;
}

/**
 * LayerNorm backward. Given dy and the forward's x, saved mean/rstd and gamma, returns dx (shape
 * of x), dgamma = Σ_rows dy∘x̂ and dbeta = Σ_rows dy ([C] each). The column sums are a two-stage
 * fixed-order reduction (chunks of rows, then chunks), hence deterministic.
 */
export function layerNormBackward(
  dy: Tensor,
  x: Tensor,
  mean: Tensor,
  rstd: Tensor,
  gamma: Tensor,
): { dx: Tensor; dgamma: Tensor; dbeta: Tensor } {
  checkBackward(dy, x, mean, rstd, gamma);
  const [rows, cols] = rowsCols("layerNormBackward", x);
  const gpu = x.gpu;
  const chunks = Math.max(1, Math.ceil(rows / ROWS_PER_CHUNK));
  if (chunks > 65535) {
    throw new ShapeError(`layerNormBackward: ${rows} rows is past the supported maximum`);
  }
  // CPU adapters, C % 4 == 0: dy and x as flat textures, shared by the dx kernel and the
  // four-column parameter sums
  const tex = kernelClass(gpu) === "cpu" && cols > 0 && cols % 4 === 0 &&
      flatTextureFits(gpu, x.size)
    ? { td: flatTexture(dy), tx: flatTexture(x) }
    : undefined;
  const r = backwardDx(dy, x, mean, rstd, gamma, tex);
  const dgamma = gpu.empty([cols]);
  const dbeta = gpu.empty([cols]);
  if (cols > 0) {
    const part = gpu.empty([2, chunks, cols]);
    if (tex) {
      const groups = Math.ceil(cols / 4 / COL_WG);
      const params = [rows, cols, groups, 0, ROWS_PER_CHUNK, chunks, tex.tx.shift];
      gpu.dispatchResources(PARAM_PARTIAL4, params, [tex.td.tex, tex.tx.tex, mean, rstd, part], [
        groups,
        chunks,
      ]);
    } else {
      const groups = Math.ceil(cols / COL_WG);
      const params = [rows, cols, groups, 0, ROWS_PER_CHUNK, chunks, 0];
      gpu.dispatch(PARAM_PARTIAL, params, [dy, x, mean, rstd, part], [groups, chunks]);
    }
    const colGroups = Math.ceil(cols / COL_WG);
    gpu.dispatch(PARAM_FINAL, [rows, cols, colGroups, 0, ROWS_PER_CHUNK, chunks, 0], [
      part,
      dgamma,
      dbeta,
    ], [colGroups]);
    part.release();
  }
  if (tex) {
    gpu.textures.release(tex.td.tex);
    gpu.textures.release(tex.tx.tex);
  }
  return { dx: r, dgamma, dbeta };
}

function checkBackward(dy: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, gamma: Tensor): void {
  const [rows, cols] = rowsCols("layerNormBackward", x);
  expectSize("layerNormBackward", "dy", dy, x.size, `shape of x ${shapeStr(x)}`);
  expectSize("layerNormBackward", "mean", mean, rows, "rows of x");
  expectSize("layerNormBackward", "rstd", rstd, rows, "rows of x");
  expectSize("layerNormBackward", "gamma", gamma, cols, `last dim of x ${shapeStr(x)}`);
}

/**
 * The input gradient of `layerNormBackward` alone (no dgamma/dbeta): for passes that need only
 * dx, such as the Fisher pass's mask gradients.
 */
export function layerNormBackwardDx(
  dy: Tensor,
  x: Tensor,
  mean: Tensor,
  rstd: Tensor,
  gamma: Tensor,
): Tensor {
  checkBackward(dy, x, mean, rstd, gamma);
  return backwardDx(dy, x, mean, rstd, gamma);
}

type FlatTex = { tex: Texture2D; shift: number };

/** dx of the LayerNorm backward (checked inputs); `tex`: flat textures of dy and x to reuse. */
function backwardDx(
  dy: Tensor,
  x: Tensor,
  mean: Tensor,
  rstd: Tensor,
  gamma: Tensor,
  tex?: { td: FlatTex; tx: FlatTex },
): Tensor {
  const [rows, cols] = rowsCols("layerNormBackward", x);
  const gpu = x.gpu;
  const dx = gpu.empty(x.shape);
  const cpu = kernelClass(gpu) === "cpu";
  const [nx, ny] = grid1d(rows, cpu ? CPU_ROWS_WG : 1);
  if (cpu && unrolledTrainFits(x, cols)) {
    const td = tex?.td ?? flatTexture(dy), tx = tex?.tx ?? flatTexture(x);
    const tg = heldFlatTexture(gamma);
    gpu.dispatchResources(
      unrolledTrainSpec("dx", cols / 4),
      [rows, cols, nx, 0, tx.shift, tg.shift],
      [td.tex, tx.tex, mean, rstd, tg.tex, dx],
      [nx, ny],
    );
    if (!tex) {
      gpu.textures.release(td.tex);
      gpu.textures.release(tx.tex);
    }
    return dx;
  }
  gpu.dispatch(
    cpu ? BACKWARD_DX_ROWS : BACKWARD_DX(rowWg(cols)),
    [rows, cols, nx, 0, 0, 0],
    [dy, x, mean, rstd, gamma, dx],
    [nx, ny],
  );
  return dx;
}
