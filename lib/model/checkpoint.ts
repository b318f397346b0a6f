/**
 * Checkpoint directories on the host (CPU side): read a Hugging Face checkpoint (config.json +
 * model.safetensors, pytorch_model.bin or a sharded index of either, optional vocab.txt or
 * tokenizer.json / tokenizer_config.json) from a local directory or an http(s) URL, and write one
 * atomically. Uploading to the GPU is done elsewhere.
 * @module
 */
import { FileFormatError, InvalidArgumentError } from "../errors.ts";
import { configToJson, type EncoderConfig, parseConfig, type TaskHead } from "./config.ts";
import { parseSafetensors, serializeSafetensors } from "./safetensors.ts";
import { parseTorchCheckpoint } from "./torch_bin.ts";
import { vocabFromTokenizerJson } from "../text/tokenizer_json.ts";
import { fromHfNames, type HostTensor, toHfNames, type Weights } from "./weights.ts";
import { hfCompatibleLayout } from "./hf_layout.ts";

/** A checkpoint in host memory: config, canonical weights and optional tokenizer files. */
export interface HostCheckpoint {
  config: EncoderConfig;
  weights: Weights;
  vocabText?: string;
  tokenizerConfig?: Record<string, unknown>;
}

/** Reads files of a checkpoint from a local directory or a base URL; `null` when a file is absent. */
interface Source {
  where: string;
  bytes(name: string): Promise<Uint8Array | null>;
  has(name: string): Promise<boolean>;
}

function localSource(dir: string): Source {
  return {
    where: dir,
    async bytes(name) {
      try {
        return await Deno.readFile(`${dir}/${name}`);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return null;
        throw new FileFormatError(`${dir}/${name}: cannot read (${(e as Error).message})`);
      }
    },
    has: (name) => exists(`${dir}/${name}`),
  };
}

function urlSource(url: string): Source {
  const base = url.endsWith("/") ? url : `${url}/`;
  return {
    where: base,
    async bytes(name) {
      const target = new URL(name, base).href;
      let res: Response;
      try {
        res = await fetch(target);
      } catch (e) {
        throw new FileFormatError(`${target}: cannot fetch (${(e as Error).message})`);
      }
      if (res.status === 404) {
        await res.body?.cancel();
        return null;
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new FileFormatError(`${target}: HTTP ${res.status} ${res.statusText}`);
      }
      return new Uint8Array(await res.arrayBuffer());
    },
    async has(name) {
      try {
        const res = await fetch(new URL(name, base).href, { method: "HEAD" });
        await res.body?.cancel();
        return res.ok;
      } catch {
        return false;
      }
    },
  };
}

function parseJson(bytes: Uint8Array, where: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new FileFormatError(`${where}: not valid JSON (${(e as Error).message})`);
  }
}

async function readTensors(src: Source): Promise<Map<string, HostTensor>> {
  const single = await src.bytes("model.safetensors");
  if (single) return parseSafetensors(single, `${src.where}/model.safetensors`).tensors;
  let indexName = "model.safetensors.index.json";
  let indexBytes = await src.bytes(indexName);
  let torch = false;
  if (!indexBytes) {
    // PyTorch's own format, as many Hub checkpoints still ship it
    const bin = await src.bytes("pytorch_model.bin");
    if (bin) return (await parseTorchCheckpoint(bin, `${src.where}/pytorch_model.bin`)).tensors;
    indexName = "pytorch_model.bin.index.json";
    indexBytes = await src.bytes(indexName);
    torch = true;
  }
  if (!indexBytes) {
    throw new FileFormatError(
      `${src.where}: no model.safetensors, pytorch_model.bin or a sharded index of either; is ` +
        `this a checkpoint directory?`,
    );
  }
  const index = parseJson(indexBytes, `${src.where}/${indexName}`) as Record<string, unknown>;
  const map = index?.weight_map;
  if (
    typeof map !== "object" || map === null || Array.isArray(map) ||
    Object.values(map).some((f) => typeof f !== "string" || f.includes("/") || f.includes(".."))
  ) {
    throw new FileFormatError(
      `${src.where}/${indexName}: "weight_map" must map tensor names to shard file names`,
    );
  }
  const weightMap = map as Record<string, string>;
  const tensors = new Map<string, HostTensor>();
  for (const shard of [...new Set(Object.values(weightMap))].sort()) {
    const bytes = await src.bytes(shard);
    if (!bytes) {
      throw new FileFormatError(`${src.where}: shard ${shard} listed in ${indexName} is missing`);
    }
    const parsed = torch
      ? await parseTorchCheckpoint(bytes, `${src.where}/${shard}`)
      : parseSafetensors(bytes, `${src.where}/${shard}`);
    for (const [name, file] of Object.entries(weightMap)) {
      if (file !== shard) continue;
      const t = parsed.tensors.get(name);
      if (t) tensors.set(name, t);
      else if (!parsed.skipped.includes(name)) {
        throw new FileFormatError(`${src.where}/${shard}: lacks "${name}" listed in ${indexName}`);
      }
    }
  }
  return tensors;
}

/**
 * Reads a checkpoint from a local directory or an http(s) URL of one: `config.json`, then
 * `model.safetensors` or `model.safetensors.index.json` plus its shards, or failing those
 * PyTorch's `pytorch_model.bin` or `pytorch_model.bin.index.json` plus its shards (read without
 * Python, lib/model/torch_bin.ts); `vocab.txt` and `tokenizer_config.json` are optional (without
 * `vocab.txt`, a fast tokenizer's `tokenizer.json` gives the vocabulary and any normalizer setting
 * `tokenizer_config.json` leaves out). HF tensor names are mapped to canonical weights
 * (`fromHfNames`). `headHint` picks the head for configs without one (`parseConfig`);
 * `allowMissingHead` lets head tensors be absent (see `fromHfNames`).
 */
export async function readCheckpoint(
  dirOrUrl: string,
  o: { headHint?: TaskHead; allowMissingHead?: boolean } = {},
): Promise<HostCheckpoint> {
  const src = /^https?:\/\//i.test(dirOrUrl) ? urlSource(dirOrUrl) : localSource(
    dirOrUrl.startsWith("file:") ? decodeURIComponent(new URL(dirOrUrl).pathname) : dirOrUrl,
  );
  const configBytes = await src.bytes("config.json");
  if (!configBytes) {
    throw new FileFormatError(`${src.where}: no config.json; is this a checkpoint directory?`);
  }
  const configWhere = `${src.where}/config.json`;
  const config = parseConfig(parseJson(configBytes, configWhere), configWhere, o.headHint);
  const weights = fromHfNames(config, await readTensors(src), {
    allowMissingHead: o.allowMissingHead,
  });
  const ckpt: HostCheckpoint = { config, weights };
  const vocab = await src.bytes("vocab.txt");
  if (vocab) ckpt.vocabText = new TextDecoder().decode(vocab);
  const tok = await src.bytes("tokenizer_config.json");
  if (tok) {
    const json = parseJson(tok, `${src.where}/tokenizer_config.json`);
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw new FileFormatError(`${src.where}/tokenizer_config.json: must be a JSON object`);
    }
    ckpt.tokenizerConfig = json as Record<string, unknown>;
  }
  if (!vocab) {
    // only a fast tokenizer: keep its vocabulary (and normalizer settings the tokenizer_config
    // does not state) so that a checkpoint written from this one carries vocab.txt
    const fast = await src.bytes("tokenizer.json");
    if (fast) {
      const where = `${src.where}/tokenizer.json`;
      const { vocabText, options } = vocabFromTokenizerJson(parseJson(fast, where), where);
      ckpt.vocabText = vocabText;
      const cfg: Record<string, unknown> = { ...ckpt.tokenizerConfig };
      const put = (key: string, v: unknown) => {
        if (v !== undefined && cfg[key] === undefined) cfg[key] = v;
      };
      put("do_lower_case", options.doLowerCase);
      put("strip_accents", options.stripAccents);
      put("tokenize_chinese_chars", options.tokenizeChineseChars);
      if (Object.keys(cfg).length > 0) ckpt.tokenizerConfig = cfg;
    }
  }
  return ckpt;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Options of `writeCheckpoint` / `saveCheckpoint`. */
export interface WriteOptions {
  /** Tensor dtype in the safetensors file (default F32). */
  dtype?: "F32" | "F16";
  /** Replace an existing directory (default: refuse with InvalidArgumentError). */
  force?: boolean;
  /** Write the strictly transformers-loadable uniform layout (`hfCompatibleLayout`). */
  hfCompatible?: boolean;
}

function siblingName(dir: string, tag: string): string {
  const rand = crypto.getRandomValues(new Uint32Array(2)).join("");
  return `${dir.replace(/\/+$/, "")}.${tag}-${rand}`;
}

/**
 * Writes a checkpoint directory loadable by Hugging Face transformers: `config.json`
 * (`configToJson`), `model.safetensors` (F32 or F16, metadata format "pt"), and `vocab.txt` /
 * `tokenizer_config.json` when present. Files go to a temporary sibling directory that is renamed
 * into place, so no partial directory is ever left (it is removed on error). An existing `dir` is
 * refused with InvalidArgumentError unless `force`, which swaps the new directory in and then
 * removes the old one. Missing parent directories are created. `hfCompatible` writes the uniform
 * layout of `hfCompatibleLayout` (all heads, one FFN width; removed units as zeros) instead of the
 * compact one, for loaders that do not apply `pruned_heads` / `intermediate_sizes`.
 */
export async function writeCheckpoint(
  dir: string,
  ckpt: HostCheckpoint,
  o: WriteOptions = {},
): Promise<void> {
  if (o.hfCompatible) ckpt = { ...ckpt, ...hfCompatibleLayout(ckpt.config, ckpt.weights) };
  const target = dir.replace(/\/+$/, "") || dir;
  const refuse = () => {
    throw new InvalidArgumentError(
      `${target} already exists; choose another output directory or pass force to replace it`,
    );
  };
  if (!o.force && await exists(target)) refuse();
  const config = configToJson(ckpt.config);
  const tensors = serializeSafetensors(toHfNames(ckpt.config, ckpt.weights), {
    dtype: o.dtype ?? "F32",
    metadata: { format: "pt" },
  });
  const slash = target.lastIndexOf("/");
  if (slash > 0) await Deno.mkdir(target.slice(0, slash), { recursive: true });
  const tmp = siblingName(target, "tmp");
  await Deno.mkdir(tmp, { recursive: false });
  let old: string | undefined;
  try {
    await Deno.writeTextFile(`${tmp}/config.json`, JSON.stringify(config, null, 2) + "\n");
    await Deno.writeFile(`${tmp}/model.safetensors`, tensors);
    if (ckpt.vocabText !== undefined) await Deno.writeTextFile(`${tmp}/vocab.txt`, ckpt.vocabText);
    if (ckpt.tokenizerConfig !== undefined) {
      await Deno.writeTextFile(
        `${tmp}/tokenizer_config.json`,
        JSON.stringify(ckpt.tokenizerConfig, null, 2) + "\n",
      );
    }
    if (await exists(target)) {
      if (!o.force) refuse();
      old = siblingName(target, "old");
      await Deno.rename(target, old);
    }
    try {
      await Deno.rename(tmp, target);
    } catch (e) {
      if (old) await Deno.rename(old, target);
      old = undefined;
      throw e;
    }
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  if (old) await Deno.remove(old, { recursive: true });
}
