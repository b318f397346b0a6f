/**
 * SQuAD metrics as the official evaluation scripts: v1.1 exact match / F1 (max over gold
 * answers, averaged over all questions, in percent) and v2.0 exact/f1/total, HasAns_*, NoAns_*,
 * best_exact/best_f1 and their thresholds. Normalisation: lowercase, drop ASCII punctuation
 * (Python's `string.punctuation`), drop the words a/an/the (Unicode word boundaries as Python's
 * `\b`), collapse whitespace (Python `str.split()`).
 * @module
 */
import type { SquadJson } from "../data/squad.ts";

const PUNCT = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;
// deno-lint-ignore no-control-regex
const PY_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/** The official `normalize_answer`: lower, remove punctuation, remove articles, fix whitespace. */
export function normalizeAnswer(s: string): string {
  let t = "";
  for (const ch of s.toLowerCase()) if (!PUNCT.has(ch)) t += ch;
  t = t.replace(ARTICLES, " ");
  return splitWords(t).join(" ");
}

function splitWords(s: string): string[] {
  return s.split(PY_SPACE).filter((w) => w.length > 0);
}

/** v1.1 `exact_match_score`: normalised strings equal. */
export function exactMatch(prediction: string, truth: string): boolean {
  return normalizeAnswer(prediction) === normalizeAnswer(truth);
}

/** Token-overlap F1 of two normalised answers. `v2` gives the v2.0 rule for empty answers. */
export function answerF1(prediction: string, truth: string, v2 = false): number {
  const p = splitWords(normalizeAnswer(prediction));
  const g = splitWords(normalizeAnswer(truth));
  if (v2 && (p.length === 0 || g.length === 0)) return p.length === g.length ? 1 : 0;
  const counts = new Map<string, number>();
  for (const w of g) counts.set(w, (counts.get(w) ?? 0) + 1);
  let same = 0;
  for (const w of p) {
    const c = counts.get(w) ?? 0;
    if (c > 0) {
      same++;
      counts.set(w, c - 1);
    }
  }
  if (same === 0) return 0;
  const precision = same / p.length;
  const recall = same / g.length;
  return (2 * precision * recall) / (precision + recall);
}

/**
 * Official v1.1 `evaluate`: for every question, max EM and max F1 over its gold answers; missing
 * predictions count as 0; returns percentages { exact_match, f1 } over all questions.
 */
export function squadV1(dataset: SquadJson, predictions: Record<string, string>): {
  exact_match: number;
  f1: number;
} {
  let em = 0, f1 = 0, total = 0;
  for (const article of dataset.data) {
    for (const p of article.paragraphs) {
      for (const qa of p.qas) {
        total++;
        const pred = predictions[qa.id];
        if (pred === undefined) continue;
        let bestEm = 0, bestF1 = 0;
        for (const a of qa.answers) {
          if (exactMatch(pred, a.text)) bestEm = 1;
          bestF1 = Math.max(bestF1, answerF1(pred, a.text));
        }
        em += bestEm;
        f1 += bestF1;
      }
    }
  }
  return { exact_match: (100 * em) / total, f1: (100 * f1) / total };
}

/** Result of `squadV2` (official v2.0 script keys). */
export type SquadV2Result = Record<string, number>;

/**
 * Official v2.0 evaluation. `noAnswerProbs` (id → probability/score that there is no answer)
 * defaults to 0 for every prediction; `naProbThresh` (default 1.0) turns a prediction into "no
 * answer" when its probability exceeds it. Returns exact, f1, total (over predicted questions),
 * HasAns_/NoAns_ exact, f1, total (when present) and best_exact(_thresh), best_f1(_thresh).
 */
export function squadV2(
  dataset: SquadJson,
  predictions: Record<string, string>,
  noAnswerProbs?: Record<string, number>,
  naProbThresh = 1.0,
): SquadV2Result {
  const naProbs: Record<string, number> = noAnswerProbs ??
    Object.fromEntries(Object.keys(predictions).map((k) => [k, 0]));
  const hasAns = new Map<string, boolean>();
  const exactRaw = new Map<string, number>();
  const f1Raw = new Map<string, number>();
  for (const article of dataset.data) {
    for (const p of article.paragraphs) {
      for (const qa of p.qas) {
        hasAns.set(qa.id, qa.answers.length > 0);
        let gold = qa.answers.map((a) => a.text).filter((t) => normalizeAnswer(t) !== "");
        if (gold.length === 0) gold = [""];
        const pred = predictions[qa.id];
        if (pred === undefined) continue;
        exactRaw.set(qa.id, Math.max(...gold.map((g) => exactMatch(g, pred) ? 1 : 0)));
        f1Raw.set(qa.id, Math.max(...gold.map((g) => answerF1(pred, g, true))));
      }
    }
  }
  const applyThresh = (scores: Map<string, number>) => {
    const out = new Map<string, number>();
    for (const [id, s] of scores) {
      out.set(id, naProbs[id] > naProbThresh ? (hasAns.get(id) ? 0 : 1) : s);
    }
    return out;
  };
  const exactT = applyThresh(exactRaw);
  const f1T = applyThresh(f1Raw);
  const evalDict = (ids: string[] | null): [number, number, number] => {
    const list = ids ?? [...exactT.keys()];
    let e = 0, f = 0;
    for (const id of list) {
      e += exactT.get(id)!;
      f += f1T.get(id)!;
    }
    return [(100 * e) / list.length, (100 * f) / list.length, list.length];
  };
  const out: SquadV2Result = {};
  [out.exact, out.f1, out.total] = evalDict(null);
  const hasIds = [...hasAns].filter(([, v]) => v).map(([k]) => k);
  const noIds = [...hasAns].filter(([, v]) => !v).map(([k]) => k);
  if (hasIds.length) [out.HasAns_exact, out.HasAns_f1, out.HasAns_total] = evalDict(hasIds);
  if (noIds.length) [out.NoAns_exact, out.NoAns_f1, out.NoAns_total] = evalDict(noIds);
  const bestThresh = (scores: Map<string, number>): [number, number] => {
    let cur = noIds.length;
    let best = cur;
    let thresh = 0;
    const ids = Object.keys(naProbs).map((k, i) => ({ k, i }))
      .sort((a, b) => (naProbs[a.k] - naProbs[b.k]) || (a.i - b.i)).map((x) => x.k);
    for (const id of ids) {
      if (!scores.has(id)) continue;
      const diff = hasAns.get(id) ? scores.get(id)! : (predictions[id] ? -1 : 0);
      cur += diff;
      if (cur > best) {
        best = cur;
        thresh = naProbs[id];
      }
    }
    return [(100 * best) / scores.size, thresh];
  };
  [out.best_exact, out.best_exact_thresh] = bestThresh(exactRaw);
  [out.best_f1, out.best_f1_thresh] = bestThresh(f1Raw);
  return out;
}
