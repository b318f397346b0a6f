/**
 * The model on the GPU: an `EncoderConfig` plus parameter tensors under canonical names, with the
 * query/key/value projections of each layer packed into one `l{i}.qkv.w` [3·H_l·d_h, d] matrix (and
 * `l{i}.qkv.b`) so that one matmul computes all three. `loadCheckpoint`/`saveCheckpoint` move
 * models between Hugging Face checkpoint directories (or URLs) and the GPU.
 * @module
 */
import { InvalidArgumentError, ShapeError } from "../errors.ts";
import { getGpu, type Gpu } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import {
  type HostCheckpoint,
  readCheckpoint,
  writeCheckpoint,
  type WriteOptions,
} from "./checkpoint.ts";
import type { EncoderConfig } from "./config.ts";
import { randomWeights } from "./random.ts";
import { expectedShapes, type HostTensor, type Weights } from "./weights.ts";

/** A BERT or DistilBERT model whose parameters live on the GPU. */
export class Model {
  /** Creates a model from already-uploaded parameters (use `uploadModel` or `loadCheckpoint`). */
  constructor(
    readonly gpu: Gpu,
    readonly config: EncoderConfig,
    readonly params: Map<string, Tensor>,
    readonly vocabText?: string,
    readonly tokenizerConfig?: Record<string, unknown>,
  ) {}

  /** The parameter tensor called `name`; raises if there is none. */
  param(name: string): Tensor {
    const t = this.params.get(name);
    if (!t) throw new InvalidArgumentError(`model has no parameter "${name}"`);
    return t;
  }

  /** Heads present in layer l. */
  heads(l: number): number {
    return this.config.layerHeads[l].length;
  }

  /** FFN width of layer l. */
  ffn(l: number): number {
    return this.config.layerFfn[l];
  }

  /** Releases every parameter tensor. */
  release(): void {
    for (const t of this.params.values()) if (!t.released) t.release();
    this.params.clear();
  }
}

/** Names of the GPU parameters of a config (canonical names, q/k/v packed as qkv). */
export function gpuParamShapes(c: EncoderConfig): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const [name, shape] of expectedShapes(c)) {
    const m = name.match(/^l(\d+)\.([qkv])\.([wb])$/);
    if (!m) {
      out.set(name, shape);
      continue;
    }
    const [, l, which, kind] = m;
    if (which !== "q") continue;
    const rows = 3 * shape[0];
    out.set(`l${l}.qkv.${kind}`, kind === "w" ? [rows, shape[1]] : [rows]);
  }
  return out;
}

/** Uploads host weights (canonical names) to the GPU, packing q/k/v. */
export async function uploadModel(host: HostCheckpoint, gpu?: Gpu): Promise<Model> {
  const g = gpu ?? (await getGpu());
  const params = new Map<string, Tensor>();
  const c = host.config;
  for (const [name, shape] of gpuParamShapes(c)) {
    const m = name.match(/^l(\d+)\.qkv\.([wb])$/);
    let data: Float32Array;
    if (m) {
      const parts = ["q", "k", "v"].map((x) => need(host.weights, `l${m[1]}.${x}.${m[2]}`));
      data = new Float32Array(parts.reduce((s, p) => s + p.data.length, 0));
      let off = 0;
      for (const p of parts) {
        data.set(p.data, off);
        off += p.data.length;
      }
    } else {
      data = need(host.weights, name).data;
    }
    if (data.length !== shape.reduce((a, b) => a * b, 1)) {
      throw new ShapeError(
        `parameter ${name}: ${data.length} values for shape [${shape.join(", ")}]`,
      );
    }
    params.set(name, g.upload(data, shape));
  }
  return new Model(g, c, params, host.vocabText, host.tokenizerConfig);
}

function need(w: Weights, name: string): HostTensor {
  const t = w.get(name);
  if (!t) throw new InvalidArgumentError(`weights lack "${name}"`);
  return t;
}

/** Reads every parameter back to the host under canonical names (q/k/v unpacked). */
export function downloadWeights(model: Model): Promise<Weights> {
  return downloadNamed(model.params);
}

/**
 * Reads GPU tensors keyed by GPU parameter names (parameters or their gradients) back to the host
 * under canonical names, unpacking `l{i}.qkv.*` into q, k and v.
 */
export async function downloadNamed(tensors: Map<string, Tensor>): Promise<Weights> {
  const w: Weights = new Map();
  for (const [name, t] of tensors) {
    const data = await t.read();
    const m = name.match(/^l(\d+)\.qkv\.([wb])$/);
    if (!m) {
      w.set(name, { shape: [...t.shape], data });
      continue;
    }
    const n = data.length / 3;
    const rows = t.shape[0] / 3;
    ["q", "k", "v"].forEach((x, i) => {
      const shape = m[2] === "w" ? [rows, t.shape[1]] : [rows];
      w.set(`l${m[1]}.${x}.${m[2]}`, { shape, data: data.slice(i * n, (i + 1) * n) });
    });
  }
  return w;
}

/** Loads a Hugging Face checkpoint directory or http(s) URL onto the GPU. */
export async function loadCheckpoint(pathOrUrl: string, gpu?: Gpu): Promise<Model> {
  return uploadModel(await readCheckpoint(pathOrUrl), gpu);
}

/**
 * Writes the model as a Hugging Face checkpoint directory, atomically (temp sibling + rename);
 * options as `writeCheckpoint` (`hfCompatible`: the uniform layout transformers loads natively).
 */
export async function saveCheckpoint(
  model: Model,
  dir: string,
  o: WriteOptions = {},
): Promise<void> {
  await writeCheckpoint(dir, {
    config: model.config,
    weights: await downloadWeights(model),
    vocabText: model.vocabText,
    tokenizerConfig: model.tokenizerConfig,
  }, o);
}

/** A model with Hugging Face-style random initialisation (for tests and benchmarks). */
export function createRandomModel(
  config: EncoderConfig,
  seed = 0,
  gpu?: Gpu,
): Promise<Model> {
  return uploadModel({ config, weights: randomWeights(config, seed) }, gpu);
}
