/**
 * Host-side weights: canonical, architecture-independent parameter names with their expected
 * shapes, and the mapping to and from Hugging Face BERT / DistilBERT tensor names.
 * @module
 */
import { FileFormatError, InvalidArgumentError } from "../errors.ts";
import type { EncoderConfig } from "./config.ts";

/** A dense row-major f32 tensor in host memory. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Model parameters by canonical name (see `expectedShapes`). */
export type Weights = Map<string, HostTensor>;

/**
 * Canonical parameter names and shapes for a config, in a fixed order: `emb.word [V,d]`, `emb.pos
 * [P,d]`, `emb.type [T,d]` (bert only), `emb.ln.g/b [d]`; per layer i `l{i}.q/k/v.w [H_i·dh, d]`
 * with biases `[H_i·dh]`, `l{i}.o.w [d, H_i·dh]`, `l{i}.o.b [d]`, `l{i}.ln1.g/b`, `l{i}.ffn1.w
 * [F_i, d]`, `l{i}.ffn1.b [F_i]`, `l{i}.ffn2.w [d, F_i]`, `l{i}.ffn2.b [d]`, `l{i}.ln2.g/b`; then
 * the head: bert classification/regression `pool.w [d,d] pool.b`, distilbert `pre.w [d,d] pre.b`,
 * and `cls.w [numLabels, d] cls.b`, or for qa only `qa.w [2, d] qa.b [2]`.
 */
export function expectedShapes(c: EncoderConfig): Map<string, number[]> {
  const d = c.hiddenSize;
  const s = new Map<string, number[]>();
  s.set("emb.word", [c.vocabSize, d]);
  s.set("emb.pos", [c.maxPositions, d]);
  if (c.arch === "bert") s.set("emb.type", [c.typeVocabSize, d]);
  s.set("emb.ln.g", [d]);
  s.set("emb.ln.b", [d]);
  for (let i = 0; i < c.numLayers; i++) {
    const a = c.layerHeads[i].length * c.headDim;
    const f = c.layerFfn[i];
    for (const p of ["q", "k", "v"]) {
      s.set(`l${i}.${p}.w`, [a, d]);
      s.set(`l${i}.${p}.b`, [a]);
    }
    s.set(`l${i}.o.w`, [d, a]);
    s.set(`l${i}.o.b`, [d]);
    s.set(`l${i}.ln1.g`, [d]);
    s.set(`l${i}.ln1.b`, [d]);
    s.set(`l${i}.ffn1.w`, [f, d]);
    s.set(`l${i}.ffn1.b`, [f]);
    s.set(`l${i}.ffn2.w`, [d, f]);
    s.set(`l${i}.ffn2.b`, [d]);
    s.set(`l${i}.ln2.g`, [d]);
    s.set(`l${i}.ln2.b`, [d]);
  }
  if (c.head === "qa") {
    s.set("qa.w", [2, d]);
    s.set("qa.b", [2]);
  } else {
    const pre = c.arch === "bert" ? "pool" : "pre";
    s.set(`${pre}.w`, [d, d]);
    s.set(`${pre}.b`, [d]);
    s.set("cls.w", [c.numLabels, d]);
    s.set("cls.b", [c.numLabels]);
  }
  return s;
}

const WB: Record<string, string> = { w: "weight", b: "bias", g: "weight" };

/** HF name (with the arch prefix for body tensors) of one canonical name. */
function hfName(c: EncoderConfig, name: string): string {
  const parts = name.split(".");
  const suffix = WB[parts[parts.length - 1]];
  if (c.arch === "bert") {
    const body = "bert.";
    if (parts[0] === "emb") {
      const m: Record<string, string> = {
        word: "word_embeddings.weight",
        pos: "position_embeddings.weight",
        type: "token_type_embeddings.weight",
        ln: `LayerNorm.${suffix}`,
      };
      return `${body}embeddings.${m[parts[1]]}`;
    }
    if (parts[0][0] === "l") {
      const layer = `${body}encoder.layer.${parts[0].slice(1)}.`;
      const m: Record<string, string> = {
        q: "attention.self.query",
        k: "attention.self.key",
        v: "attention.self.value",
        o: "attention.output.dense",
        ln1: "attention.output.LayerNorm",
        ffn1: "intermediate.dense",
        ffn2: "output.dense",
        ln2: "output.LayerNorm",
      };
      return `${layer}${m[parts[1]]}.${suffix}`;
    }
    const m: Record<string, string> = {
      pool: `${body}pooler.dense`,
      cls: "classifier",
      qa: "qa_outputs",
    };
    return `${m[parts[0]]}.${suffix}`;
  }
  const body = "distilbert.";
  if (parts[0] === "emb") {
    const m: Record<string, string> = {
      word: "word_embeddings.weight",
      pos: "position_embeddings.weight",
      ln: `LayerNorm.${suffix}`,
    };
    return `${body}embeddings.${m[parts[1]]}`;
  }
  if (parts[0][0] === "l") {
    const layer = `${body}transformer.layer.${parts[0].slice(1)}.`;
    const m: Record<string, string> = {
      q: "attention.q_lin",
      k: "attention.k_lin",
      v: "attention.v_lin",
      o: "attention.out_lin",
      ln1: "sa_layer_norm",
      ffn1: "ffn.lin1",
      ffn2: "ffn.lin2",
      ln2: "output_layer_norm",
    };
    return `${layer}${m[parts[1]]}.${suffix}`;
  }
  const m: Record<string, string> = { pre: "pre_classifier", cls: "classifier", qa: "qa_outputs" };
  return `${m[parts[0]]}.${suffix}`;
}

/** True for canonical names of the task head (pooler / pre-classifier, classifier, qa outputs). */
export function isHeadParam(name: string): boolean {
  return /^(pool|pre|cls|qa)\./.test(name);
}

const shapeStr = (s: number[]) => `[${s.join(", ")}]`;
const sameShape = (a: number[], b: number[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Normalizes an HF tensor name: strips the `bert.` / `distilbert.` prefix and maps legacy
 * LayerNorm `gamma`/`beta` to `weight`/`bias`.
 */
function normalizeHf(arch: EncoderConfig["arch"], name: string): string {
  const prefix = arch === "bert" ? "bert." : "distilbert.";
  let n = name.startsWith(prefix) ? name.slice(prefix.length) : name;
  if (/(LayerNorm|layer_norm)\.(gamma|beta)$/.test(n)) {
    n = n.replace(/\.gamma$/, ".weight").replace(/\.beta$/, ".bias");
  }
  return n;
}

/**
 * Maps HF-named tensors to canonical `Weights` for a config. Accepts names with or without the
 * `bert.` / `distilbert.` prefix and legacy LayerNorm `gamma`/`beta`; ignores keys the model does
 * not use (`position_ids`, MLM/NSP heads, …). Raises FileFormatError listing every missing tensor
 * and every shape mismatch (HF key, expected vs found). With `allowMissingHead`, missing head
 * tensors (pooler/pre-classifier/classifier/qa) are left out instead (e.g. loading a pretrained MLM
 * checkpoint to fine-tune; the caller fills them, e.g. from `randomWeights`).
 */
export function fromHfNames(
  c: EncoderConfig,
  hf: Map<string, HostTensor>,
  o: { allowMissingHead?: boolean } = {},
): Weights {
  const byNorm = new Map<string, [string, HostTensor]>();
  for (const [name, t] of hf) {
    const n = normalizeHf(c.arch, name);
    const prev = byNorm.get(n);
    if (prev) {
      throw new FileFormatError(`weights: "${prev[0]}" and "${name}" name the same tensor`);
    }
    byNorm.set(n, [name, t]);
  }
  const w: Weights = new Map();
  const missing: string[] = [];
  const mismatched: string[] = [];
  for (const [name, shape] of expectedShapes(c)) {
    const key = hfName(c, name);
    const found = byNorm.get(normalizeHf(c.arch, key));
    if (!found) {
      if (!(o.allowMissingHead && isHeadParam(name))) missing.push(key);
      continue;
    }
    const [actualKey, t] = found;
    if (!sameShape(t.shape, shape)) {
      mismatched.push(`${actualKey}: expected ${shapeStr(shape)}, found ${shapeStr(t.shape)}`);
      continue;
    }
    w.set(name, t);
  }
  if (missing.length > 0 || mismatched.length > 0) {
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`missing tensors: ${missing.join(", ")}`);
    if (mismatched.length > 0) parts.push(`shape mismatches: ${mismatched.join("; ")}`);
    throw new FileFormatError(
      `weights do not match the ${c.arch} ${c.head} config: ${parts.join(". ")}. ` +
        `Check that config.json belongs to these weights`,
    );
  }
  return w;
}

/**
 * Maps canonical `Weights` to the exact Hugging Face names of the config's architecture and head
 * (e.g. `bert.encoder.layer.0.attention.self.query.weight`, `classifier.weight`). Raises
 * InvalidArgumentError when a parameter is missing or has the wrong shape; extra names are ignored.
 */
export function toHfNames(c: EncoderConfig, w: Weights): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  const problems: string[] = [];
  for (const [name, shape] of expectedShapes(c)) {
    const t = w.get(name);
    if (!t) problems.push(`${name} is missing`);
    else if (!sameShape(t.shape, shape)) {
      problems.push(`${name}: expected ${shapeStr(shape)}, found ${shapeStr(t.shape)}`);
    } else if (t.data.length !== shape.reduce((a, b) => a * b, 1)) {
      problems.push(`${name}: data length ${t.data.length} does not match ${shapeStr(shape)}`);
    } else out.set(hfName(c, name), t);
  }
  if (problems.length > 0) {
    throw new InvalidArgumentError(`weights do not match the config: ${problems.join("; ")}`);
  }
  return out;
}
