/**
 * Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_): the L2 norm over all gradients
 * is computed on the GPU (one sum of squares per tensor, gathered into one buffer and read back
 * with the step's other scalars), then every gradient is scaled by min(1, max/(norm + 1e-6)).
 * @module
 */
import type { Tensor } from "../gpu/tensor.ts";
import { scale } from "../ops/elementwise.ts";
import { dotAll } from "../ops/reduce.ts";

/**
 * Records Σ g² of every gradient into consecutive slots of `into` starting at `offset` (one slot
 * per entry of `grads`, in map order) and returns the number of slots used.
 */
export function recordSquaredNorms(grads: Map<string, Tensor>, into: Tensor, offset = 0): number {
  let i = offset;
  for (const g of grads.values()) {
    const s = dotAll(g, g);
    g.gpu.copy(s, into, 0, i++, 1);
    s.release();
  }
  return i - offset;
}

/** The clip coefficient of torch's clip_grad_norm_: min(1, maxNorm/(norm + 1e-6)). */
export function clipCoefficient(norm: number, maxNorm: number): number {
  return Math.min(1, maxNorm / (norm + 1e-6));
}

/** Scales every gradient in place by `coef` (no-op for coef = 1). */
export function scaleGradients(grads: Map<string, Tensor>, coef: number): void {
  if (coef === 1) return;
  for (const g of grads.values()) scale(g, coef, g);
}

/**
 * Clips `grads` in place to global L2 norm `maxNorm` and returns the norm before clipping
 * (awaits one read-back).
 */
export async function clipGradNorm(grads: Map<string, Tensor>, maxNorm: number): Promise<number> {
  const first = grads.values().next().value;
  if (!first) return 0;
  const parts = first.gpu.empty([grads.size]);
  recordSquaredNorms(grads, parts);
  const sq = await parts.read();
  parts.release();
  const norm = Math.sqrt(sq.reduce((a, b) => a + b, 0));
  scaleGradients(grads, clipCoefficient(norm, maxNorm));
  return norm;
}
