/**
 * Best-checkpoint keeping on the GPU: a copy of every model parameter, taken when the dev metric
 * improves and copied back at the end of training.
 * @module
 */
import type { Tensor } from "../gpu/tensor.ts";
import type { Model } from "../model/model.ts";

/** A GPU copy of a model's parameters. */
export class ParamSnapshot {
  readonly #copies = new Map<string, Tensor>();

  /** Allocates copy buffers shaped like `model`'s parameters (contents undefined until `take`). */
  constructor(readonly model: Model) {
    for (const [name, p] of model.params) this.#copies.set(name, p.gpu.empty(p.shape));
  }

  /** Records a copy of the current parameters (GPU-side, no read-back). */
  take(): void {
    for (const [name, p] of this.model.params) p.gpu.copy(p, this.#copies.get(name)!);
  }

  /** Copies the snapshot back into the model's parameters. */
  restore(): void {
    for (const [name, p] of this.model.params) p.gpu.copy(this.#copies.get(name)!, p);
  }

  /** Frees the copies. */
  release(): void {
    for (const t of this.#copies.values()) if (!t.released) t.release();
    this.#copies.clear();
  }
}
