/**
 * `Tensor`: a shape plus f32 storage in a pooled GPU buffer. Reading back submits the pending
 * work; releasing returns the buffer to the pool, after which any use raises
 * `ReleasedTensorError`.
 * @module
 */
import { ReleasedTensorError, ShapeError } from "../errors.ts";
import type { Gpu } from "./context.ts";

/** Number of elements of a shape; validates that every dimension is a non-negative integer. */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new ShapeError(`invalid shape [${shape.join(", ")}]: dimensions must be integers ≥ 0`);
    }
    n *= d;
  }
  return n;
}

/** A dense row-major f32 tensor living in a GPU storage buffer. */
export class Tensor {
  #buffer: GPUBuffer | null;
  /** Number of elements. */
  readonly size: number;

  /** Wraps a pooled buffer; use `gpu.empty`, `gpu.zeros` or `gpu.upload` instead. */
  constructor(readonly gpu: Gpu, readonly shape: readonly number[], buffer: GPUBuffer) {
    this.size = shapeSize(shape);
    this.#buffer = buffer;
  }

  /** The storage buffer; raises if the tensor was released. */
  get buffer(): GPUBuffer {
    if (!this.#buffer) {
      throw new ReleasedTensorError(`tensor [${this.shape.join(", ")}] used after release()`);
    }
    return this.#buffer;
  }

  /** Bytes of data (4 per element). */
  get byteLength(): number {
    return this.size * 4;
  }

  /** True once `release()` was called. */
  get released(): boolean {
    return this.#buffer === null;
  }

  /** Submits pending work and copies the tensor back to the CPU. */
  read(): Promise<Float32Array> {
    return this.gpu.read(this);
  }

  /** Returns the buffer to the pool. Releasing twice raises `ReleasedTensorError`. */
  release(): void {
    const b = this.buffer;
    this.#buffer = null;
    this.gpu.forgetBuffer(b);
    this.gpu.pool.release(b);
  }

  /** A tensor sharing this storage with another shape of the same size (no copy). */
  view(shape: readonly number[]): TensorView {
    const size = shapeSize(shape);
    if (size !== this.size) {
      throw new ShapeError(
        `cannot view [${this.shape.join(", ")}] (${this.size} elements) as [${shape.join(", ")}]`,
      );
    }
    return new TensorView(this, shape);
  }
}

/** A reshaped view of a tensor. Releasing the view is not allowed; release the base tensor. */
export class TensorView extends Tensor {
  /** Creates a view of `base` with `shape`. */
  constructor(readonly base: Tensor, shape: readonly number[]) {
    super(base.gpu, shape, base.buffer);
  }

  /** The base tensor's buffer (raises if the base was released). */
  override get buffer(): GPUBuffer {
    return this.base.buffer;
  }

  /** True once the base tensor was released. */
  override get released(): boolean {
    return this.base.released;
  }

  /** Views cannot be released on their own. */
  override release(): void {
    throw new ReleasedTensorError("release the base tensor, not a view");
  }
}

/** A tensor's shape as text for error messages, e.g. "[4, 128]". */
export function shapeStr(t: Tensor): string {
  return `[${t.shape.join(", ")}]`;
}

/** Throws `ShapeError` unless `t.shape` equals `shape` (−1 matches any size). */
export function expectShape(name: string, t: Tensor, shape: readonly number[]): void {
  const ok = t.shape.length === shape.length && shape.every((d, i) => d < 0 || d === t.shape[i]);
  if (!ok) {
    throw new ShapeError(
      `${name}: expected shape [${shape.map((d) => (d < 0 ? "?" : d)).join(", ")}], got [${
        t.shape.join(", ")
      }]`,
    );
  }
}
