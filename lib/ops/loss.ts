/**
 * Losses per example with their gradients: cross-entropy (classification, ignore index −100),
 * mean squared error (regression) and the Hugging Face span loss of extractive QA. Forward
 * functions return one loss per example ([B]); the caller reduces (e.g. mean = scale 1/B in the
 * backward). Label and position tensors hold i32 values (upload them with `gpu.uploadU32`).
 * @module
 */
import src from "../../kernels/loss.wgsl" with { type: "text" };
import { ShapeError } from "../errors.ts";
import { f32Bits, type KernelSpec } from "../gpu/context.ts";
import { shapeStr, type Tensor } from "../gpu/tensor.ts";
import { grid1d } from "./grid.ts";
import { kernelClass } from "./kernel_class.ts";

const ELEM_WG = 256;
const R = "read" as const;
const spec = (entry: string, bindings: KernelSpec["bindings"], WG: number): KernelSpec => ({
  name: "loss.wgsl",
  source: src,
  entry,
  bindings,
  constants: { WG },
});
const gpuRowWg = (cols: number) => (cols <= 32 ? 32 : cols <= 64 ? 64 : cols <= 128 ? 128 : 256);
/**
 * Lanes per row: on the CPU class a single SIMD-width workgroup (8 lanes, one llvmpipe fiber, so
 * its barriers cost no fiber switches); on the GPU class enough lanes for the row.
 */
const rowWg = (t: Tensor, cols: number) => (kernelClass(t.gpu) === "cpu" ? 8 : gpuRowWg(cols));
const ROW6 = [R, R, R, R, R, "rw"] as const;
const ROW7 = [R, R, R, R, R, "rw", "rw"] as const;
const MSE_FORWARD = spec("mse_forward", [R, R, "rw"], ELEM_WG);
const MSE_BACKWARD = spec("mse_backward", [R, R, "rw"], ELEM_WG);

function rows2d(op: string, name: string, t: Tensor): [number, number] {
  if (t.shape.length !== 2) throw new ShapeError(`${op}: ${name} ${shapeStr(t)} must be 2-D`);
  return [t.shape[0], t.shape[1]];
}

function expectSize(op: string, name: string, t: Tensor, size: number, what: string): void {
  if (t.size !== size) {
    throw new ShapeError(`${op}: ${name} ${shapeStr(t)} must have ${size} elements (${what})`);
  }
}

/**
 * Per-example cross-entropy of `logits` [B, C] against i32 `labels` [B]: loss_b =
 * logsumexp(logits_b) − logits_b[label_b]. Label −100 (ignore index) gives loss 0; any other label
 * outside [0, C) gives NaN.
 */
export function crossEntropy(logits: Tensor, labels: Tensor, out?: Tensor): Tensor {
  const [b, c] = rows2d("crossEntropy", "logits", logits);
  expectSize("crossEntropy", "labels", labels, b, `rows of logits ${shapeStr(logits)}`);
  const o = out ?? logits.gpu.empty([b]);
  expectSize("crossEntropy", "out", o, b, "one loss per row");
  const [nx, ny] = grid1d(b, 1);
  logits.gpu.dispatch(
    spec("ce_forward", ROW6, rowWg(logits, c)),
    [b, c, nx, 0, 0],
    [logits, logits, labels, labels, logits, o],
    [nx, ny],
  );
  return o;
}

/**
 * Gradient of scale·loss_b of `crossEntropy` with respect to the logits: scale·(softmax − onehot)
 * per row ([B, C]); rows whose label is −100 are 0.
 */
export function crossEntropyBackward(
  logits: Tensor,
  labels: Tensor,
  scale: number,
  out?: Tensor,
): Tensor {
  const [b, c] = rows2d("crossEntropyBackward", "logits", logits);
  expectSize("crossEntropyBackward", "labels", labels, b, `rows of logits ${shapeStr(logits)}`);
  const o = out ?? logits.gpu.empty(logits.shape);
  expectSize("crossEntropyBackward", "out", o, logits.size, `shape of logits`);
  const [nx, ny] = grid1d(b, 1);
  logits.gpu.dispatch(
    spec("ce_backward", ROW6, rowWg(logits, c)),
    [b, c, nx, 0, f32Bits(scale)],
    [logits, logits, labels, labels, logits, o],
    [nx, ny],
  );
  return o;
}

function mseCheck(op: string, pred: Tensor, target: Tensor): void {
  const ok = pred.shape.length === 1 || (pred.shape.length === 2 && pred.shape[1] === 1);
  if (!ok) throw new ShapeError(`${op}: pred ${shapeStr(pred)} must be [B] or [B, 1]`);
  expectSize(op, "target", target, pred.size, `one target per prediction ${shapeStr(pred)}`);
}

/** Per-example squared error (pred − target)² for `pred` [B] or [B, 1] and `target` [B]; returns [B]. */
export function mseLoss(pred: Tensor, target: Tensor, out?: Tensor): Tensor {
  mseCheck("mseLoss", pred, target);
  const n = pred.size;
  const o = out ?? pred.gpu.empty([n]);
  expectSize("mseLoss", "out", o, n, "one loss per prediction");
  const [nx, ny] = grid1d(n, ELEM_WG);
  pred.gpu.dispatch(MSE_FORWARD, [n, 1, nx, 0, 0], [pred, target, o], [nx, ny]);
  return o;
}

/** Gradient of scale·(pred − target)² with respect to pred: 2·scale·(pred − target), shape of pred. */
export function mseLossBackward(pred: Tensor, target: Tensor, scale: number, out?: Tensor): Tensor {
  mseCheck("mseLossBackward", pred, target);
  const n = pred.size;
  const o = out ?? pred.gpu.empty(pred.shape);
  expectSize("mseLossBackward", "out", o, n, "shape of pred");
  const [nx, ny] = grid1d(n, ELEM_WG);
  pred.gpu.dispatch(MSE_BACKWARD, [n, 1, nx, 0, f32Bits(scale)], [pred, target, o], [nx, ny]);
  return o;
}

function spanCheck(
  op: string,
  start: Tensor,
  end: Tensor,
  startPos: Tensor,
  endPos: Tensor,
  keyMask?: Tensor,
): [number, number] {
  const [b, s] = rows2d(op, "start", start);
  if (end.shape.length !== 2 || end.shape[0] !== b || end.shape[1] !== s) {
    throw new ShapeError(`${op}: end ${shapeStr(end)} must match start ${shapeStr(start)}`);
  }
  expectSize(op, "startPos", startPos, b, `one position per row of ${shapeStr(start)}`);
  expectSize(op, "endPos", endPos, b, `one position per row of ${shapeStr(start)}`);
  if (keyMask && (keyMask.shape.length !== 2 || keyMask.size !== start.size)) {
    throw new ShapeError(`${op}: keyMask ${shapeStr(keyMask)} must match ${shapeStr(start)}`);
  }
  return [b, s];
}

/**
 * Per-example QA span loss with Hugging Face's convention: `start`, `end` are logits [B, S];
 * `startPos`, `endPos` i32 [B] are clamped to [0, S] and a clamped position equal to S is ignored
 * (that side contributes 0). loss_b = (CE_start_b + CE_end_b) / 2. With `keyMask` [B, S] f32,
 * positions where it is 0 are left out of the softmax (a target position must not be masked).
 */
export function spanLoss(
  start: Tensor,
  end: Tensor,
  startPos: Tensor,
  endPos: Tensor,
  keyMask?: Tensor,
  out?: Tensor,
): Tensor {
  const [b, s] = spanCheck("spanLoss", start, end, startPos, endPos, keyMask);
  const o = out ?? start.gpu.empty([b]);
  expectSize("spanLoss", "out", o, b, "one loss per row");
  const [nx, ny] = grid1d(b, 1);
  start.gpu.dispatch(
    spec("span_forward", ROW6, rowWg(start, s)),
    [b, s, nx, keyMask ? 1 : 0, 0],
    [start, end, startPos, endPos, keyMask ?? start, o],
    [nx, ny],
  );
  return o;
}

/**
 * Gradients of scale·loss_b of `spanLoss` (the /2 included) with respect to the start and end
 * logits: scale/2·(softmax − onehot) per row and side ([B, S] each); an ignored side gives a zero
 * row and masked keys get no softmax share.
 */
export function spanLossBackward(
  start: Tensor,
  end: Tensor,
  startPos: Tensor,
  endPos: Tensor,
  scale: number,
  keyMask?: Tensor,
): { dStart: Tensor; dEnd: Tensor } {
  const [b, s] = spanCheck("spanLossBackward", start, end, startPos, endPos, keyMask);
  const dStart = start.gpu.empty(start.shape);
  const dEnd = start.gpu.empty(end.shape);
  const [nx, ny] = grid1d(b, 1);
  start.gpu.dispatch(
    spec("span_backward", ROW7, rowWg(start, s)),
    [b, s, nx, keyMask ? 1 : 0, f32Bits(scale)],
    [start, end, startPos, endPos, keyMask ?? start, dStart, dEnd],
    [nx, ny],
  );
  return { dStart, dEnd };
}
