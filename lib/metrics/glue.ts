/**
 * GLUE metrics with the formulas of scikit-learn / SciPy and the key names of Hugging Face
 * `evaluate`'s "glue" metric; `glueMetric` adds run_glue's `combined_score` (mean of the values)
 * when a task reports more than one.
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";
import { glueTask } from "../data/glue.ts";

function sameLength(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  if (a.length !== b.length) {
    throw new InvalidArgumentError(`${what}: ${a.length} predictions vs ${b.length} references`);
  }
  if (a.length === 0) throw new InvalidArgumentError(`${what}: no predictions`);
}

/** Fraction of positions where prediction equals reference. */
export function accuracy(preds: ArrayLike<number>, refs: ArrayLike<number>): number {
  sameLength(preds, refs, "accuracy");
  let ok = 0;
  for (let i = 0; i < preds.length; i++) if (preds[i] === refs[i]) ok++;
  return ok / preds.length;
}

/** Binary F1 of class 1 (sklearn `f1_score`, pos_label=1): 2tp/(2tp+fp+fn), 0 when undefined. */
export function f1Binary(preds: ArrayLike<number>, refs: ArrayLike<number>): number {
  sameLength(preds, refs, "f1");
  let tp = 0, fp = 0, fn = 0;
  for (let i = 0; i < preds.length; i++) {
    if (preds[i] === 1 && refs[i] === 1) tp++;
    else if (preds[i] === 1) fp++;
    else if (refs[i] === 1) fn++;
  }
  const d = 2 * tp + fp + fn;
  return d === 0 ? 0 : (2 * tp) / d;
}

/**
 * Matthews correlation (sklearn `matthews_corrcoef`, multiclass form from the confusion
 * matrix): (c·s − Σ t_k p_k) / √((s² − Σ p_k²)(s² − Σ t_k²)), 0 when the denominator is 0.
 */
export function matthewsCorrelation(preds: ArrayLike<number>, refs: ArrayLike<number>): number {
  sameLength(preds, refs, "matthews_correlation");
  const t = new Map<number, number>();
  const p = new Map<number, number>();
  let correct = 0;
  for (let i = 0; i < preds.length; i++) {
    t.set(refs[i], (t.get(refs[i]) ?? 0) + 1);
    p.set(preds[i], (p.get(preds[i]) ?? 0) + 1);
    if (preds[i] === refs[i]) correct++;
  }
  const s = preds.length;
  let tp = 0, pp = 0, tt = 0;
  for (const [k, v] of t) {
    tp += v * (p.get(k) ?? 0);
    tt += v * v;
  }
  for (const v of p.values()) pp += v * v;
  const cov = correct * s - tp;
  const den = (s * s - pp) * (s * s - tt);
  return den === 0 ? 0 : cov / Math.sqrt(den);
}

/** Pearson correlation (SciPy `pearsonr` statistic: centred, normalised dot product, clipped to [−1, 1]). */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  sameLength(x, y, "pearson");
  const n = x.length;
  let mx = 0, my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    const a = x[i] - mx;
    const b = y[i] - my;
    sxy += a * b;
    sxx += a * a;
    syy += b * b;
  }
  if (sxx === 0 || syy === 0) return NaN;
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx) / Math.sqrt(syy)));
}

/** Ranks 1…n with ties given their average rank (SciPy `rankdata(method="average")`). */
export function averageRanks(x: ArrayLike<number>): Float64Array {
  const idx = Array.from({ length: x.length }, (_, i) => i).sort((a, b) => x[a] - x[b]);
  const r = new Float64Array(x.length);
  for (let i = 0; i < idx.length;) {
    let j = i + 1;
    while (j < idx.length && x[idx[j]] === x[idx[i]]) j++;
    const avg = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) r[idx[k]] = avg;
    i = j;
  }
  return r;
}

/** Spearman rank correlation: Pearson of average ranks (SciPy `spearmanr` statistic). */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  sameLength(x, y, "spearmanr");
  return pearson(averageRanks(x), averageRanks(y));
}

/**
 * The GLUE metric of a task with evaluate's key names: cola → matthews_correlation; stsb →
 * pearson, spearmanr; mrpc/qqp → accuracy, f1; others → accuracy. With more than one value,
 * `combined_score` (their mean, as run_glue) is added. Classification takes class indices,
 * STS-B real scores.
 */
export function glueMetric(
  task: string,
  preds: ArrayLike<number>,
  refs: ArrayLike<number>,
): Record<string, number> {
  glueTask(task);
  let out: Record<string, number>;
  if (task === "cola") out = { matthews_correlation: matthewsCorrelation(preds, refs) };
  else if (task === "stsb") {
    out = { pearson: pearson(preds, refs), spearmanr: spearman(preds, refs) };
  } else if (task === "mrpc" || task === "qqp") {
    out = { accuracy: accuracy(preds, refs), f1: f1Binary(preds, refs) };
  } else out = { accuracy: accuracy(preds, refs) };
  const values = Object.values(out);
  if (values.length > 1) out.combined_score = values.reduce((a, b) => a + b, 0) / values.length;
  return out;
}
