/**
 * The strictly Hugging Face-loadable layout of a pruned checkpoint (METHOD.md §11.4(b)): every
 * layer gets the same FFN width and all of its attention heads back, the removed units as zeros.
 * transformers has one `intermediate_size` for all layers, and version 5 no longer applies
 * `pruned_heads` when it loads a checkpoint (measured with 5.17 on the lent GPU machine, bench/README
 * "On a GPU machine again"), so a compact checkpoint with uneven layers loads there only through
 * surgery. This layout loads with the plain `from_pretrained` of any version, and its outputs equal
 * the compact model's: a zero row of W₁ (and zero b₁) with a zero column of W₂ adds GELU(0)·0 = 0, and
 * a head with zero Q/K/V rows and zero W_o columns adds nothing either. The FFN savings stay up to the
 * widest layer; the attention heads' do not (they run as zeros), which is the price of strict
 * compatibility.
 * @module
 */
import type { EncoderConfig } from "./config.ts";
import type { HostTensor, Weights } from "./weights.ts";

/** Rows `rows[i]` of `src` ([n, len] or [n]) placed at row `at[i]` of a zero [total, len] tensor. */
function scatterRows(src: HostTensor, at: number[], rowLen: number, total: number): HostTensor {
  const out = new Float32Array(total * rowLen);
  at.forEach((r, i) => out.set(src.data.subarray(i * rowLen, (i + 1) * rowLen), r * rowLen));
  return { shape: src.shape.length === 1 ? [total] : [total, rowLen], data: out };
}

/** Columns of `src` ([n, m]) placed at columns `at[i]` of a zero [n, total] tensor. */
function scatterCols(src: HostTensor, at: number[], total: number): HostTensor {
  const [n, m] = src.shape;
  const out = new Float32Array(n * total);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < m; k++) out[i * total + at[k]] = src.data[i * m + k];
  }
  return { shape: [n, total], data: out };
}

/**
 * Re-expands a (possibly pruned) checkpoint to the uniform layout transformers loads natively:
 * every layer has all `numHeads` heads (removed ones zero-filled at their original positions) and
 * the FFN width max_l F_l (at least 1; narrower layers zero-padded). The config it returns has no
 * `pruned_heads` and no `intermediate_sizes` to write, and `intermediateSize` = that width. Outputs
 * are unchanged (see the module comment). Inputs are not modified; an unpruned model comes back as
 * it was.
 */
export function hfCompatibleLayout(
  c: EncoderConfig,
  w: Weights,
): { config: EncoderConfig; weights: Weights } {
  const d = c.hiddenSize, dh = c.headDim, H = c.numHeads;
  const width = Math.max(1, ...c.layerFfn);
  const out: Weights = new Map(w);
  for (let l = 0; l < c.numLayers; l++) {
    const heads = c.layerHeads[l];
    if (heads.length !== H || heads.some((h, i) => h !== i)) {
      const rows = heads.flatMap((h) => Array.from({ length: dh }, (_, k) => h * dh + k));
      for (const x of ["q", "k", "v"]) {
        out.set(`l${l}.${x}.w`, scatterRows(w.get(`l${l}.${x}.w`)!, rows, d, H * dh));
        out.set(`l${l}.${x}.b`, scatterRows(w.get(`l${l}.${x}.b`)!, rows, 1, H * dh));
      }
      out.set(`l${l}.o.w`, scatterCols(w.get(`l${l}.o.w`)!, rows, H * dh));
    }
    const f = c.layerFfn[l];
    if (f !== width) {
      const kept = [...Array(f).keys()];
      out.set(`l${l}.ffn1.w`, scatterRows(w.get(`l${l}.ffn1.w`)!, kept, d, width));
      out.set(`l${l}.ffn1.b`, scatterRows(w.get(`l${l}.ffn1.b`)!, kept, 1, width));
      out.set(`l${l}.ffn2.w`, scatterCols(w.get(`l${l}.ffn2.w`)!, kept, width));
    }
  }
  const config: EncoderConfig = {
    ...c,
    intermediateSize: width,
    layerHeads: c.layerHeads.map(() => [...Array(H).keys()]),
    layerFfn: c.layerFfn.map(() => width),
  };
  return { config, weights: out };
}
