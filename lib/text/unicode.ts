/**
 * Character classes of Hugging Face's BERT tokenizer (`tokenization_bert.py`): whitespace,
 * control, punctuation and CJK tests on one code point, with ASCII fast paths. Categories come
 * from the JavaScript engine's Unicode tables, which may be a newer Unicode version than a given
 * Python's `unicodedata`; the two differ only on code points assigned in between.
 * @module
 */

const ZS = /\p{Zs}/u;
const OTHER = /\p{C}/u;
const PUNCT = /\p{P}/u;
const MARK_NONSPACING = /\p{Mn}/u;
const MARK = /\p{M}/u;

/** HF `_is_whitespace`: space, \t, \n, \r or Unicode category Zs. */
export function isBertWhitespace(cp: number, ch: string): boolean {
  if (cp === 32 || cp === 9 || cp === 10 || cp === 13) return true;
  return cp > 127 && ZS.test(ch);
}

/** HF `_is_control`: any category C* except \t, \n and \r (which count as whitespace). */
export function isBertControl(cp: number, ch: string): boolean {
  if (cp === 9 || cp === 10 || cp === 13) return false;
  if (cp < 32 || cp === 127) return true;
  if (cp < 128) return false;
  return OTHER.test(ch);
}

/** HF `_is_punctuation`: the ASCII symbol ranges 33–47, 58–64, 91–96, 123–126, or category P*. */
export function isBertPunctuation(cp: number, ch: string): boolean {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96)) return true;
  if (cp >= 123 && cp <= 126) return true;
  return cp > 127 && PUNCT.test(ch);
}

/** HF `_is_chinese_char`: the CJK Unified Ideograph blocks (not Hangul, kana or CJK punctuation). */
export function isChineseChar(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) || (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

/** True for a nonspacing mark (category Mn), which HF's accent stripping removes after NFD. */
export function isNonspacingMark(ch: string): boolean {
  return MARK_NONSPACING.test(ch);
}

/** True when a code point can combine with the one before it under NFC (marks, Hangul V/T jamo). */
export function combinesWithPrevious(cp: number, ch: string): boolean {
  if (cp < 0x300) return false;
  if ((cp >= 0x1160 && cp <= 0x11ff) || (cp >= 0xd7b0 && cp <= 0xd7ff)) return true;
  return MARK.test(ch);
}

/**
 * Python's `str.split()` separators (`str.isspace`): what `whitespace_tokenize` splits on.
 * Includes \u2028/\u2029 and \x1c–\x1f, which HF's whitespace test does not treat as spaces.
 */
export function isPythonSpace(cp: number): boolean {
  if (cp === 32 || (cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x1f)) return true;
  if (cp < 0x85) return false;
  return cp === 0x85 || cp === 0xa0 || cp === 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
    cp === 0x2028 || cp === 0x2029 || cp === 0x202f || cp === 0x205f || cp === 0x3000;
}
