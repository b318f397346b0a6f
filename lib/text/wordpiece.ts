/**
 * WordPiece tokenizer with the behaviour of Hugging Face's slow `BertTokenizer` (transformers
 * ≥ 4.30) for vocab.txt models, plus character offsets like the fast tokenizer's offset mapping.
 *
 * Pipeline per text, as in HF: split out literal special tokens ([CLS], [SEP], [PAD], [UNK],
 * [MASK]); remove NUL, U+FFFD and control characters and map whitespace to " "; put spaces around
 * CJK ideographs; NFC-normalise; split on Python whitespace; per word lowercase (if
 * `doLowerCase`) and strip accents (NFD, drop Mn; default: when lowercasing); split off every
 * punctuation character; greedy longest-match-first WordPiece with "##" continuations, a whole
 * word becoming [UNK] if any part is unknown or if it has more than 100 code points.
 *
 * Offsets are [start, end) indices into the original JavaScript string (UTF-16 code units, so
 * `text.slice(start, end)` is the token's source; the same as Python's indices for BMP text).
 * @module
 */
import { FileFormatError, InvalidArgumentError } from "../errors.ts";
import { vocabFromTokenizerJson } from "./tokenizer_json.ts";
import {
  combinesWithPrevious,
  isBertControl,
  isBertPunctuation,
  isBertWhitespace,
  isChineseChar,
  isNonspacingMark,
  isPythonSpace,
} from "./unicode.ts";

/** Options of a tokenizer (HF `tokenizer_config.json` names in camelCase). */
export interface TokenizerOptions {
  /** Lowercase the text (HF `do_lower_case`). Default: true unless the vocab looks cased. */
  doLowerCase?: boolean;
  /** Strip accents (HF `strip_accents`); null/undefined → follow `doLowerCase`. */
  stripAccents?: boolean | null;
  /** Put spaces around CJK ideographs (HF `tokenize_chinese_chars`, default true). */
  tokenizeChineseChars?: boolean;
}

/** Options of `encode`. */
export interface EncodeOptions {
  /** Maximum length including special tokens; no limit when absent. */
  maxLength?: number;
  /** Truncation strategy when over `maxLength` (default "longest_first" when maxLength is set). */
  truncation?: "longest_first" | "only_second" | false;
  /** Pad (right) with [PAD] to this length when shorter. */
  padTo?: number;
}

/** Result of `tokenize`: WordPiece tokens, their ids and [start, end) source offsets. */
export interface Tokenized {
  /** WordPiece tokens. */
  tokens: string[];
  /** Vocab ids of the tokens. */
  ids: number[];
  /** [start, end) UTF-16 source offsets per token. */
  offsets: [number, number][];
}

/** Result of `encode`: model inputs for one sequence or pair plus offsets ([0,0] for specials). */
export interface EncodedText {
  /** Token ids with [CLS]/[SEP] (and [PAD]). */
  inputIds: number[];
  /** Segment ids: 0 for the first text, 1 for the second. */
  tokenTypeIds: number[];
  /** 1 for real tokens, 0 for padding. */
  attentionMask: number[];
  /** Source offsets per position ([0, 0] for special and pad tokens). */
  offsets: [number, number][];
}

const SPECIAL_TOKENS = ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"];
const SPECIAL_RE = /\[(?:UNK|SEP|PAD|CLS|MASK)\]/g;
const MAX_CHARS_PER_WORD = 100;

/** Normalised characters (one code point each) with the source span each came from. */
interface Chars {
  ch: string[];
  start: number[];
  end: number[];
}

/**
 * Decides the default `do_lower_case` for a vocab without a tokenizer_config.json: a vocab is
 * taken as cased (→ false) when at least 100 non-bracketed entries contain an uppercase ASCII
 * letter (bert-base-cased has 8,179, bert-base-uncased none), else uncased (→ true).
 */
export function vocabLooksCased(tokens: string[]): boolean {
  let n = 0;
  for (const t of tokens) {
    if (t.startsWith("[") && t.endsWith("]")) continue;
    if (/[A-Z]/.test(t) && ++n >= 100) return true;
  }
  return false;
}

/** HF-compatible BERT WordPiece tokenizer; see the module doc for the exact pipeline. */
export class WordPieceTokenizer {
  /** Token → id (for duplicate lines the last id wins, as in HF `load_vocab`). */
  readonly vocab: Map<string, number>;
  /** Id → token (line order of vocab.txt). */
  readonly idToToken: string[];
  /** Whether text is lowercased. */
  readonly doLowerCase: boolean;
  /** Whether accents are stripped (NFD + drop Mn). */
  readonly stripAccents: boolean;
  /** Whether CJK ideographs become single-character words. */
  readonly tokenizeChineseChars: boolean;
  /** Id of [CLS]. */
  readonly clsId: number;
  /** Id of [SEP]. */
  readonly sepId: number;
  /** Id of [PAD]. */
  readonly padId: number;
  /** Id of [UNK]. */
  readonly unkId: number;
  private readonly specialIds: Map<string, number>;

  private constructor(idToToken: string[], o: TokenizerOptions) {
    this.idToToken = idToToken;
    this.vocab = new Map();
    idToToken.forEach((t, i) => this.vocab.set(t, i));
    this.doLowerCase = o.doLowerCase ?? !vocabLooksCased(idToToken);
    this.stripAccents = o.stripAccents ?? this.doLowerCase;
    this.tokenizeChineseChars = o.tokenizeChineseChars ?? true;
    const need = (t: string): number => {
      const id = this.vocab.get(t);
      if (id === undefined) {
        throw new FileFormatError(`vocab has no ${t} token; is this a BERT vocab.txt?`);
      }
      return id;
    };
    this.clsId = need("[CLS]");
    this.sepId = need("[SEP]");
    this.padId = need("[PAD]");
    this.unkId = need("[UNK]");
    this.specialIds = new Map(
      SPECIAL_TOKENS.filter((t) => this.vocab.has(t)).map((t) => [t, this.vocab.get(t)!]),
    );
  }

  /**
   * Builds a tokenizer from the text of a vocab.txt (one token per line, id = line number; lines
   * end in \n, \r\n or \r as Python's universal newlines read them).
   */
  static fromVocab(vocabText: string, o: TokenizerOptions = {}): WordPieceTokenizer {
    const lines = vocabText.split(/\r\n|\r|\n/);
    if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
    if (lines.length === 0) throw new FileFormatError("vocab is empty");
    return new WordPieceTokenizer(lines, o);
  }

  /** Tokenizes one text into WordPiece tokens, ids and source offsets (no special tokens added). */
  tokenize(text: string): Tokenized {
    const out: Tokenized = { tokens: [], ids: [], offsets: [] };
    let last = 0;
    SPECIAL_RE.lastIndex = 0;
    for (let m = SPECIAL_RE.exec(text); m !== null; m = SPECIAL_RE.exec(text)) {
      const id = this.specialIds.get(m[0]);
      if (id === undefined) continue;
      this.tokenizeSegment(text, last, m.index, out);
      out.tokens.push(m[0]);
      out.ids.push(id);
      out.offsets.push([m.index, m.index + m[0].length]);
      last = m.index + m[0].length;
    }
    this.tokenizeSegment(text, last, text.length, out);
    return out;
  }

  /**
   * Encodes a text or a pair as `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` with token types 0/1.
   * Truncation as HF's slow tokenizer: "longest_first" removes one token at a time from the
   * longer sequence (from the second on ties); "only_second" cuts the second only and throws
   * InvalidArgumentError if that cannot reach `maxLength`.
   */
  encode(a: string, b?: string, o: EncodeOptions = {}): EncodedText {
    const ta = this.tokenize(a);
    const tb = b === undefined ? undefined : this.tokenize(b);
    return this.encodeTokenized(ta, tb, o);
  }

  /** `encode` for texts already tokenized with `tokenize` (lets callers cache tokenizations). */
  encodeTokenized(ta: Tokenized, tb: Tokenized | undefined, o: EncodeOptions = {}): EncodedText {
    let na = ta.ids.length;
    let nb = tb ? tb.ids.length : 0;
    const specials = tb ? 3 : 2;
    const truncation = o.truncation ?? (o.maxLength !== undefined ? "longest_first" : false);
    if (o.maxLength !== undefined && truncation !== false && na + nb + specials > o.maxLength) {
      let remove = na + nb + specials - o.maxLength;
      if (truncation === "only_second") {
        if (!tb || nb <= remove) {
          throw new InvalidArgumentError(
            `only_second truncation cannot fit ${na} + ${nb} tokens into maxLength ${o.maxLength}`,
          );
        }
        nb -= remove;
      } else if (!tb) {
        na = Math.max(0, na - remove);
      } else {
        while (remove-- > 0) {
          if (na > nb) na--;
          else nb--;
        }
      }
    }
    const inputIds = [this.clsId, ...ta.ids.slice(0, na), this.sepId];
    const offsets: [number, number][] = [[0, 0], ...ta.offsets.slice(0, na), [0, 0]];
    const tokenTypeIds = new Array<number>(inputIds.length).fill(0);
    if (tb) {
      inputIds.push(...tb.ids.slice(0, nb), this.sepId);
      offsets.push(...tb.offsets.slice(0, nb), [0, 0]);
      for (let i = 0; i <= nb; i++) tokenTypeIds.push(1);
    }
    const attentionMask = new Array<number>(inputIds.length).fill(1);
    if (o.padTo !== undefined) {
      while (inputIds.length < o.padTo) {
        inputIds.push(this.padId);
        tokenTypeIds.push(0);
        attentionMask.push(0);
        offsets.push([0, 0]);
      }
    }
    return { inputIds, tokenTypeIds, attentionMask, offsets };
  }

  /** Tokenizes text[from, to) (no special tokens inside) and appends to `out`. */
  private tokenizeSegment(text: string, from: number, to: number, out: Tokenized): void {
    if (from >= to) return;
    let chars: Chars = { ch: [], start: [], end: [] };
    let ascii = true;
    for (let i = from; i < to;) {
      const cp = text.codePointAt(i)!;
      const w = cp > 0xffff ? 2 : 1;
      const ch = w === 1 ? text[i] : text.slice(i, i + 2);
      if (cp > 127) ascii = false;
      if (cp === 0 || cp === 0xfffd || isBertControl(cp, ch)) {
        // removed
      } else if (isBertWhitespace(cp, ch)) {
        push(chars, " ", i, i + w);
      } else if (this.tokenizeChineseChars && isChineseChar(cp)) {
        push(chars, " ", i, i + w);
        push(chars, ch, i, i + w);
        push(chars, " ", i, i + w);
      } else {
        push(chars, ch, i, i + w);
      }
      i += w;
    }
    if (!ascii) chars = nfcAligned(chars);
    let ws = 0;
    const n = chars.ch.length;
    for (let i = 0; i <= n; i++) {
      if (i < n && !isPythonSpace(chars.ch[i].codePointAt(0)!)) continue;
      if (i > ws) this.tokenizeWord(chars, ws, i, ascii, out);
      ws = i + 1;
    }
  }

  /** Lowercases/strips one whitespace-delimited word, splits punctuation, runs WordPiece. */
  private tokenizeWord(c: Chars, from: number, to: number, ascii: boolean, out: Tokenized): void {
    let w: Chars = {
      ch: c.ch.slice(from, to),
      start: c.start.slice(from, to),
      end: c.end.slice(from, to),
    };
    if (this.doLowerCase) w = ascii ? lowerAscii(w) : lowerAligned(w);
    if (this.stripAccents && !ascii) w = stripAccentsAligned(w);
    let ps = 0;
    const n = w.ch.length;
    for (let i = 0; i <= n; i++) {
      const isEnd = i === n;
      const punct = !isEnd && isBertPunctuation(w.ch[i].codePointAt(0)!, w.ch[i]);
      if (!isEnd && !punct) continue;
      if (i > ps) this.wordPiece(w, ps, i, out);
      if (punct) this.wordPiece(w, i, i + 1, out);
      ps = i + 1;
    }
  }

  /** Greedy longest-match-first WordPiece over w[from, to). */
  private wordPiece(w: Chars, from: number, to: number, out: Tokenized): void {
    if (to - from > MAX_CHARS_PER_WORD) {
      out.tokens.push("[UNK]");
      out.ids.push(this.unkId);
      out.offsets.push([w.start[from], w.end[to - 1]]);
      return;
    }
    const word = w.ch.slice(from, to);
    const pieces: { token: string; id: number; a: number; b: number }[] = [];
    let s = 0;
    while (s < word.length) {
      let e = word.length;
      let found: { token: string; id: number } | null = null;
      while (s < e) {
        let sub = word.slice(s, e).join("");
        if (s > 0) sub = "##" + sub;
        const id = this.vocab.get(sub);
        if (id !== undefined) {
          found = { token: sub, id };
          break;
        }
        e--;
      }
      if (found === null) {
        out.tokens.push("[UNK]");
        out.ids.push(this.unkId);
        out.offsets.push([w.start[from], w.end[to - 1]]);
        return;
      }
      pieces.push({ ...found, a: s, b: e });
      s = e;
    }
    for (const p of pieces) {
      out.tokens.push(p.token);
      out.ids.push(p.id);
      out.offsets.push([w.start[from + p.a], w.end[from + p.b - 1]]);
    }
  }
}

function push(c: Chars, ch: string, start: number, end: number): void {
  c.ch.push(ch);
  c.start.push(start);
  c.end.push(end);
}

function codePoints(s: string): string[] {
  return Array.from(s);
}

/** NFC over aligned characters: each cluster (a starter and what combines with it) is
 * normalised alone and its output mapped to the cluster's span; falls back to one span for the
 * whole text if clustering ever disagrees with whole-string NFC. */
function nfcAligned(c: Chars): Chars {
  const joined = c.ch.join("");
  const whole = joined.normalize("NFC");
  if (whole === joined) return c;
  const out: Chars = { ch: [], start: [], end: [] };
  const n = c.ch.length;
  for (let i = 0; i < n;) {
    let j = i + 1;
    while (j < n && combinesWithPrevious(c.ch[j].codePointAt(0)!, c.ch[j])) j++;
    const cluster = c.ch.slice(i, j).join("");
    const norm = cluster.normalize("NFC");
    if (norm === cluster) {
      for (let k = i; k < j; k++) push(out, c.ch[k], c.start[k], c.end[k]);
    } else {
      const s = Math.min(...c.start.slice(i, j));
      const e = Math.max(...c.end.slice(i, j));
      for (const ch of codePoints(norm)) push(out, ch, s, e);
    }
    i = j;
  }
  if (out.ch.join("") === whole) return out;
  const s = Math.min(...c.start);
  const e = Math.max(...c.end);
  const fallback: Chars = { ch: [], start: [], end: [] };
  for (const ch of codePoints(whole)) push(fallback, ch, s, e);
  return fallback;
}

function lowerAscii(w: Chars): Chars {
  return { ch: w.ch.map((x) => x.toLowerCase()), start: w.start, end: w.end };
}

/** Lowercases a word as Python's `str.lower()` on the whole word (final sigma included). */
function lowerAligned(w: Chars): Chars {
  const whole = codePoints(w.ch.join("").toLowerCase());
  const per = w.ch.map((x) => codePoints(x.toLowerCase()));
  const out: Chars = { ch: [], start: [], end: [] };
  let total = 0;
  for (const p of per) total += p.length;
  if (total === whole.length) {
    let k = 0;
    per.forEach((p, i) => {
      for (let j = 0; j < p.length; j++) push(out, whole[k++], w.start[i], w.end[i]);
    });
    return out;
  }
  const s = Math.min(...w.start);
  const e = Math.max(...w.end);
  for (const ch of whole) push(out, ch, s, e);
  return out;
}

/** HF `_run_strip_accents`: NFD, then drop nonspacing marks (Mn), keeping each char's span. */
function stripAccentsAligned(w: Chars): Chars {
  const out: Chars = { ch: [], start: [], end: [] };
  for (let i = 0; i < w.ch.length; i++) {
    const x = w.ch[i];
    if (x.charCodeAt(0) < 128) {
      push(out, x, w.start[i], w.end[i]);
      continue;
    }
    for (const d of codePoints(x.normalize("NFD"))) {
      if (!isNonspacingMark(d)) push(out, d, w.start[i], w.end[i]);
    }
  }
  return out;
}

/**
 * Loads a tokenizer from a checkpoint directory or URL (vocab.txt, or failing that the WordPiece
 * vocabulary and normalizer of a fast tokenizer's tokenizer.json; then optional
 * tokenizer_config.json with do_lower_case / strip_accents / tokenize_chinese_chars, which wins),
 * or from a path/URL ending in ".txt" taken as the vocab itself. Missing vocab → FileFormatError.
 */
export async function loadTokenizer(dirOrUrl: string): Promise<WordPieceTokenizer> {
  const isFile = dirOrUrl.endsWith(".txt");
  const base = isFile ? dirOrUrl : dirOrUrl.replace(/\/?$/, "/");
  const vocabPath = isFile ? base : base + "vocab.txt";
  let vocabText = await readText(vocabPath);
  let o: TokenizerOptions = {};
  if (vocabText === null && !isFile) {
    // a checkpoint with only the fast tokenizer's file: its WordPiece vocabulary and normalizer
    const fast = await readText(base + "tokenizer.json");
    if (fast !== null) {
      let json: unknown;
      try {
        json = JSON.parse(fast);
      } catch (e) {
        throw new FileFormatError(`${base}tokenizer.json is not valid JSON: ${e}`);
      }
      const v = vocabFromTokenizerJson(json, `${base}tokenizer.json`);
      vocabText = v.vocabText;
      o = v.options;
    }
  }
  if (vocabText === null) {
    throw new FileFormatError(
      `no vocab.txt ${isFile ? "" : "or tokenizer.json "}at ${
        isFile ? vocabPath : base
      }: pass a BERT checkpoint directory`,
    );
  }
  if (!isFile) {
    // tokenizer_config.json overrides the fast tokenizer's normalizer, as in transformers
    const cfgText = await readText(base + "tokenizer_config.json");
    if (cfgText !== null) {
      let cfg: Record<string, unknown>;
      try {
        cfg = JSON.parse(cfgText);
      } catch (e) {
        throw new FileFormatError(`${base}tokenizer_config.json is not valid JSON: ${e}`);
      }
      if (typeof cfg.do_lower_case === "boolean") o.doLowerCase = cfg.do_lower_case;
      if (typeof cfg.strip_accents === "boolean") o.stripAccents = cfg.strip_accents;
      if (typeof cfg.tokenize_chinese_chars === "boolean") {
        o.tokenizeChineseChars = cfg.tokenize_chinese_chars;
      }
    }
  }
  return WordPieceTokenizer.fromVocab(vocabText, o);
}

async function readText(pathOrUrl: string): Promise<string | null> {
  if (/^(https?|file):/.test(pathOrUrl)) {
    if (pathOrUrl.startsWith("file:")) {
      return readText(decodeURIComponent(new URL(pathOrUrl).pathname));
    }
    const r = await fetch(pathOrUrl);
    if (!r.ok) {
      await r.body?.cancel();
      return null;
    }
    return await r.text();
  }
  try {
    return await Deno.readTextFile(pathOrUrl);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}
