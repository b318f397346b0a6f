/**
 * Typed errors for everything a user can cause. Every error fastprune raises on bad input is a
 * `FastpruneError` subclass whose message says what was wrong and what to do.
 * @module
 */

/** Base class of every error fastprune raises deliberately. */
export class FastpruneError extends Error {
  /** Creates an error with a one-line, user-facing message. */
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** No WebGPU adapter could be found on this machine. */
export class NoAdapterError extends FastpruneError {}

/** Tensor shapes or sizes do not agree with what an operation needs. */
export class ShapeError extends FastpruneError {}

/** A tensor or dispatch is past a limit of the WebGPU device (binding size, workgroup count). */
export class DeviceLimitError extends FastpruneError {}

/** A tensor was used after `release()`. */
export class ReleasedTensorError extends FastpruneError {}

/** A value has the wrong type or is out of range (dtype, option, budget). */
export class InvalidArgumentError extends FastpruneError {}

/** A file is missing, malformed or of an unsupported format. */
export class FileFormatError extends FastpruneError {}

/** A checkpoint uses an architecture or feature fastprune does not support. */
export class UnsupportedModelError extends FastpruneError {}
