#!/usr/bin/env python3
"""Paired comparison of two classifiers on the same GLUE split, from the files that
`deno task eval ... --predictions FILE` writes: how many predictions differ, which way, a two-sided
sign test on the examples only one of them gets right, and a paired bootstrap (examples resampled
with replacement, both models scored on each resample) of the drop in the task's headline metric
(CoLA: Matthews correlation; others: accuracy), in points (x 100).

  /usr/bin/python3 bench/paired_bootstrap.py BASE.json PRUNED.json [PRUNED2.json ...] [--samples 10000]

With several PRUNED files (e.g. seeds) it also reports the bootstrap of their mean drop. Needs
numpy and scipy (Debian: python3-numpy python3-scipy).
"""
import argparse
import json

import numpy as np
from scipy.stats import binomtest


def mcc(y, p):
    """Matthews correlation of binary labels y and predictions p along the last axis (0 where
    undefined, as scikit-learn)."""
    tp = np.sum((y == 1) & (p == 1), axis=-1)
    tn = np.sum((y == 0) & (p == 0), axis=-1)
    fp = np.sum((y == 0) & (p == 1), axis=-1)
    fn = np.sum((y == 1) & (p == 0), axis=-1)
    den = np.sqrt(((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)).astype(float))
    return np.where(den > 0, (tp * tn - fp * fn) / np.where(den > 0, den, 1), 0.0)


def accuracy(y, p):
    return np.mean(y == p, axis=-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("pruned", nargs="+")
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    base = json.load(open(a.base))
    y = np.array(base["references"])
    pb = np.array(base["predictions"])
    metric = mcc if base["task"] == "cola" else accuracy
    name = "matthews_correlation" if base["task"] == "cola" else "accuracy"
    others = [np.array(json.load(open(f))["predictions"]) for f in a.pruned]
    for f, p in zip(a.pruned, others):
        if p.shape != y.shape:
            raise SystemExit(f"{f}: {p.size} predictions, {a.base} has {y.size}")
    rng = np.random.default_rng(a.seed)
    idx = rng.integers(0, len(y), size=(a.samples, len(y)))
    yb, mb = y[idx], metric(y[idx], pb[idx])
    print(f"{a.base}: {name} {metric(y, pb):.4f} on {len(y)} examples")
    drops = []
    for f, p in zip(a.pruned, others):
        lost = int(np.sum((pb == y) & (p != y)))
        won = int(np.sum((p == y) & (pb != y)))
        d = 100 * (mb - metric(yb, p[idx]))
        drops.append(d)
        lo, hi = np.percentile(d, [2.5, 97.5])
        print(
            f"{f}: {name} {metric(y, p):.4f}, drop {100 * (metric(y, pb) - metric(y, p)):.2f} points; "
            f"{int(np.sum(p != pb))} predictions differ ({lost} right -> wrong, {won} wrong -> right; "
            f"sign test p = {binomtest(won, lost + won, 0.5).pvalue if lost + won else 1.0:.2f}); "
            f"bootstrap 95% interval of the drop [{lo:.2f}, {hi:.2f}], P(drop <= 1) = {np.mean(d <= 1):.3f}"
        )
    if len(drops) > 1:
        m = np.mean(drops, axis=0)
        lo, hi = np.percentile(m, [2.5, 97.5])
        point = np.mean([100 * (metric(y, pb) - metric(y, p)) for p in others])
        print(f"mean of {len(drops)}: drop {point:.2f} points, bootstrap 95% interval [{lo:.2f}, {hi:.2f}], "
              f"P(drop <= 1) = {np.mean(m <= 1):.3f}")


if __name__ == "__main__":
    main()
