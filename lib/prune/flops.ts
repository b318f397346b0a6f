/**
 * FLOPs cost model of the prunable parts of an encoder (METHOD.md §2.1): MACs per attention head
 * and per FFN neuron at a fixed sequence length s, and the MAC/FLOP count of a pruned model.
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";
import type { EncoderConfig } from "../model/config.ts";
import type { MaskSet, ModelDims } from "./types.ts";

/**
 * The per-task sequence lengths s used for FLOPs accounting: dev-set average tokenized lengths of
 * the official code (GLUE) and 170 for SQuAD 1.1/2.0 (METHOD.md §2.1).
 */
export const TASK_SEQ_LEN: Record<string, number> = {
  mnli: 39.05,
  qqp: 30.55,
  qnli: 50.97,
  sst2: 25.16,
  stsb: 31.47,
  mrpc: 53.24,
  rte: 64.59,
  cola: 11.67,
  squad: 170,
  squad_v2: 170,
};

/**
 * MACs of one attention head at sequence length s (may be fractional): 3·s·d·dh for Q/K/V,
 * 2·s²·dh for QKᵀ and PV and s·dh·d for its slice of W_o, i.e. 4·s·d·dh + 2·s²·dh.
 */
export function macPerHead(s: number, d: number, dh: number): number {
  return 4 * s * d * dh + 2 * s * s * dh;
}

/** MACs of one FFN neuron at sequence length s: one row of W_1 and one column of W_2, 2·s·d. */
export function macPerNeuron(s: number, d: number): number {
  return 2 * s * d;
}

function checkCounts(name: string, kept: ArrayLike<number>, L: number, max: number): void {
  if (kept.length !== L) {
    throw new InvalidArgumentError(`${name}: expected ${L} per-layer counts, got ${kept.length}`);
  }
  for (let l = 0; l < L; l++) {
    const k = kept[l];
    if (!Number.isInteger(k) || k < 0 || k > max) {
      throw new InvalidArgumentError(`${name}[${l}] = ${k} is not an integer in 0..${max}`);
    }
  }
}

/**
 * MACs of the prunable parts of a model that keeps `keptHeads[l]` heads and `keptNeurons[l]`
 * neurons in layer l, at sequence length s: Σ_l (h_l·macPerHead + n_l·macPerNeuron). Embeddings,
 * LayerNorms, softmax, GELU, biases and the task head are not counted.
 */
export function countMacs(
  dims: ModelDims,
  s: number,
  keptHeads: ArrayLike<number>,
  keptNeurons: ArrayLike<number>,
): number {
  if (!(s > 0) || !Number.isFinite(s)) {
    throw new InvalidArgumentError(`sequence length s = ${s} must be a positive number`);
  }
  checkCounts("keptHeads", keptHeads, dims.L, dims.H);
  checkCounts("keptNeurons", keptNeurons, dims.L, dims.F);
  const a = macPerHead(s, dims.d, dims.dh);
  const b = macPerNeuron(s, dims.d);
  let total = 0;
  for (let l = 0; l < dims.L; l++) total += keptHeads[l] * a + keptNeurons[l] * b;
  return total;
}

/**
 * FLOPs of the prunable parts (2·countMacs). Two forms: `countFlops(dims, s, keptHeads,
 * keptNeurons)` with per-layer counts, or `countFlops(config, s, masks?)` with an `EncoderConfig`
 * and a `MaskSet` over its units (a unit counts when its mask value is non-zero; without masks,
 * the heads and neurons the config's layers have).
 */
export function countFlops(
  dims: ModelDims | EncoderConfig,
  s: number,
  keptHeads?: ArrayLike<number> | MaskSet,
  keptNeurons?: ArrayLike<number>,
): number {
  if ("numLayers" in dims) {
    const c = dims;
    const d: ModelDims = {
      L: c.numLayers,
      H: c.numHeads,
      F: c.intermediateSize,
      d: c.hiddenSize,
      dh: c.headDim,
    };
    if (keptHeads === undefined) {
      return 2 * countMacs(d, s, c.layerHeads.map((h) => h.length), c.layerFfn);
    }
    const m = keptHeads as MaskSet;
    if (!("head" in m) || m.L !== d.L) {
      throw new InvalidArgumentError(
        "countFlops(config, s, masks): masks must be a MaskSet of the config's layers",
      );
    }
    const heads: number[] = [], neurons: number[] = [];
    for (let l = 0; l < m.L; l++) {
      let h = 0, n = 0;
      for (let i = 0; i < m.H; i++) h += m.head[l * m.H + i] !== 0 ? 1 : 0;
      for (let j = 0; j < m.F; j++) n += m.ffn[l * m.F + j] !== 0 ? 1 : 0;
      heads.push(h);
      neurons.push(n);
    }
    return 2 * countMacs({ ...d, H: m.H, F: m.F }, s, heads, neurons);
  }
  if (keptHeads === undefined || keptNeurons === undefined || "head" in (keptHeads as object)) {
    throw new InvalidArgumentError(
      "countFlops(dims, s, keptHeads, keptNeurons) needs per-layer counts",
    );
  }
  return 2 * countMacs(dims, s, keptHeads as ArrayLike<number>, keptNeurons);
}
