/**
 * AdamW over a set of named GPU parameters (the model's, and the MLM head's during
 * pretraining): first/second moments per parameter, decoupled weight decay on every parameter
 * except biases and LayerNorm weights (as BERT fine-tuning does), one `adamwStep` dispatch per
 * parameter. Only records GPU work.
 * @module
 */
import type { Tensor } from "../gpu/tensor.ts";
import { adamwStep } from "../ops/adamw.ts";

/** Hyperparameters of the optimizer (the learning rate is given per step). */
export interface AdamWConfig {
  /** First-moment decay (default 0.9). */
  beta1?: number;
  /** Second-moment decay (default 0.999). */
  beta2?: number;
  /** Denominator epsilon (default 1e-8, HF Trainer's default is also 1e-8). */
  eps?: number;
  /** Decoupled weight decay on weight matrices and embeddings (default 0.01). */
  weightDecay?: number;
}

/**
 * True for parameters that get no weight decay: biases and LayerNorm gains/biases (canonical
 * names end in `.b`, `.bias`, `.ln.g`, `ln1.g`, `ln2.g`, `.ln.b`…), matching HF's
 * `["bias", "LayerNorm.weight"]` exclusion.
 */
export function isNoDecay(name: string): boolean {
  return /(^|\.)(b|bias)$/.test(name) || /(^|\.)ln\d*\.[gb]$/.test(name);
}

/** AdamW state over named parameters; `step` advances every parameter that has a gradient. */
export class AdamW {
  /** Number of updates done so far. */
  t = 0;
  readonly #m = new Map<string, Tensor>();
  readonly #v = new Map<string, Tensor>();
  readonly #cfg: Required<AdamWConfig>;

  /** Creates zeroed moments for every parameter of `params`. */
  constructor(readonly params: Map<string, Tensor>, cfg: AdamWConfig = {}) {
    this.#cfg = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, ...cfg };
    for (const [name, p] of params) {
      this.#m.set(name, p.gpu.zeros(p.shape));
      this.#v.set(name, p.gpu.zeros(p.shape));
    }
  }

  /**
   * One update with learning rate `lr` of every parameter that has an entry in `grads`
   * (parameters without a gradient are left alone, their moments too), each gradient multiplied
   * by `gradScale` first (a clip coefficient; the gradients themselves are not changed).
   */
  step(grads: Map<string, Tensor>, lr: number, gradScale = 1): void {
    this.t++;
    const c = this.#cfg;
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g) continue;
      adamwStep(p, g, this.#m.get(name)!, this.#v.get(name)!, {
        lr,
        beta1: c.beta1,
        beta2: c.beta2,
        eps: c.eps,
        weightDecay: isNoDecay(name) ? 0 : c.weightDecay,
        step: this.t,
        gradScale,
      });
    }
  }

  /** Frees the moment tensors. */
  release(): void {
    for (const t of [...this.#m.values(), ...this.#v.values()]) if (!t.released) t.release();
    this.#m.clear();
    this.#v.clear();
  }
}
