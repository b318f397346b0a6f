/**
 * Hugging Face fast-tokenizer files (`tokenizer.json`) of BERT-family checkpoints: many
 * checkpoints on the Hub ship only this file, without `vocab.txt`. Its WordPiece model holds the
 * vocabulary as a token → id map and its `BertNormalizer` the lowercasing / accent / CJK options;
 * this turns them into the `vocab.txt` text (one token per line, line number = id) and the
 * `TokenizerOptions` that `WordPieceTokenizer` takes.
 * @module
 */
import { FileFormatError } from "../errors.ts";
import type { TokenizerOptions } from "./wordpiece.ts";

/** What a `tokenizer.json` gives our WordPiece tokenizer. */
export interface TokenizerJsonVocab {
  /** The vocabulary as `vocab.txt` text (token of id i on line i). */
  vocabText: string;
  /** Normalizer options (only those the file states). */
  options: TokenizerOptions;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Reads a `tokenizer.json` (already parsed) of a WordPiece model with `##` continuation pieces.
 * Raises FileFormatError for other models (BPE, Unigram), other continuation prefixes, and ids
 * that are not exactly 0 … n−1.
 */
export function vocabFromTokenizerJson(json: unknown, where: string): TokenizerJsonVocab {
  if (!isObject(json) || !isObject(json.model)) {
    throw new FileFormatError(`${where}: no "model" object; is this a tokenizer.json?`);
  }
  const model = json.model;
  if (model.type !== undefined && model.type !== "WordPiece") {
    throw new FileFormatError(
      `${where}: model type ${JSON.stringify(model.type)}; fastprune reads WordPiece (BERT) ` +
        `tokenizers only`,
    );
  }
  const prefix = model.continuing_subword_prefix ?? "##";
  if (prefix !== "##") {
    throw new FileFormatError(
      `${where}: continuing_subword_prefix ${JSON.stringify(prefix)}; only "##" is supported`,
    );
  }
  if (!isObject(model.vocab)) {
    throw new FileFormatError(`${where}: model.vocab must map tokens to ids`);
  }
  const entries = Object.entries(model.vocab);
  const tokens: (string | undefined)[] = new Array(entries.length);
  for (const [token, id] of entries) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= entries.length) {
      throw new FileFormatError(
        `${where}: id ${JSON.stringify(id)} of ${JSON.stringify(token)} is not in 0..${
          entries.length - 1
        }`,
      );
    }
    if (tokens[id] !== undefined) {
      throw new FileFormatError(`${where}: id ${id} is given to two tokens`);
    }
    if (/[\n\r]/.test(token)) {
      throw new FileFormatError(`${where}: token ${JSON.stringify(token)} contains a line break`);
    }
    tokens[id] = token;
  }
  const options: TokenizerOptions = {};
  const n = json.normalizer;
  if (isObject(n) && n.type === "BertNormalizer") {
    if (typeof n.lowercase === "boolean") options.doLowerCase = n.lowercase;
    if (typeof n.strip_accents === "boolean") options.stripAccents = n.strip_accents;
    if (typeof n.handle_chinese_chars === "boolean") {
      options.tokenizeChineseChars = n.handle_chinese_chars;
    }
  }
  return { vocabText: tokens.join("\n") + "\n", options };
}
