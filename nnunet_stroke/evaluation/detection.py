"""Patient-level detection metrics (PMSAN Table 1): accuracy, sensitivity, specificity and ROC AUC with
percentile-bootstrap 95% confidence intervals (cases resampled with replacement).

A case is reference-positive when its reference mask has any lesion voxel. Its score is the network's
detection probability (detection.json, decision: probability >= 0.5) or, without one, the predicted
lesion volume (decision: volume > the minimum volume, 0 by default, i.e. any predicted voxel). AUC is the
Mann-Whitney statistic with ties counted one half; it is undefined (null) without both classes, as is
sensitivity without positives and specificity without negatives.
"""
from __future__ import annotations

import numpy as np

N_BOOTSTRAP = 2000
MIN_CASES_PER_CLASS = 10


def _midranks(score: np.ndarray) -> np.ndarray:
    """Ranks 1..n with tied scores sharing their mean rank."""
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2)[inverse]


def roc_auc(truth: np.ndarray, score: np.ndarray) -> float | None:
    truth = np.asarray(truth, dtype=bool)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _midranks(np.asarray(score, dtype=float))
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(truth: np.ndarray, score: np.ndarray) -> dict[str, list[float]] | None:
    """False- and true-positive rates at every distinct score threshold, from (0, 0) to (1, 1)."""
    truth = np.asarray(truth, dtype=bool)
    if truth.all() or not truth.any():
        return None
    thresholds = np.unique(score)[::-1]
    tpr = [0.0] + [float(np.mean(score[truth] >= t)) for t in thresholds]
    fpr = [0.0] + [float(np.mean(score[~truth] >= t)) for t in thresholds]
    return {"fpr": fpr, "tpr": tpr}


def _rates(truth: np.ndarray, decision: np.ndarray) -> np.ndarray:
    """Accuracy, sensitivity, specificity along the last axis (NaN where undefined); works on batches."""
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.mean(truth == decision, axis=-1)
        sensitivity = np.sum(truth & decision, axis=-1) / np.sum(truth, axis=-1)
        specificity = np.sum(~truth & ~decision, axis=-1) / np.sum(~truth, axis=-1)
    return np.stack([accuracy, sensitivity, specificity], axis=-1)


def _interval(value: float, resampled: np.ndarray) -> dict:
    resampled = resampled[np.isfinite(resampled)]
    undefined = value is None or not np.isfinite(value)
    return {"value": None if undefined else float(value),
            "ci_low": None if undefined or resampled.size == 0 else float(np.percentile(resampled, 2.5)),
            "ci_high": None if undefined or resampled.size == 0 else float(np.percentile(resampled, 97.5))}


def detection_metrics(truth, score, decision, seed: int = 0, n_bootstrap: int = N_BOOTSTRAP) -> dict:
    """Point estimates and bootstrap 95% CIs, the ROC curve and a warning when a class is small."""
    truth, score, decision = np.asarray(truth, bool), np.asarray(score, float), np.asarray(decision, bool)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    index = np.random.default_rng(seed).integers(0, truth.size, size=(n_bootstrap, truth.size))
    resampled_rates = _rates(truth[index], decision[index])
    resampled_auc = np.array([roc_auc(truth[i], score[i]) for i in index], dtype=float)
    accuracy, sensitivity, specificity = _rates(truth, decision)
    auc = roc_auc(truth, score)
    warnings = []
    if min(n_pos, n_neg) < MIN_CASES_PER_CLASS:
        warnings.append(f"only {n_pos} positive and {n_neg} negative cases (fewer than {MIN_CASES_PER_CLASS} in a "
                        f"class): specificity/sensitivity and AUC are unreliable, their CIs wide or undefined")
    return {
        "n_positive": n_pos,
        "n_negative": n_neg,
        "accuracy": _interval(accuracy, resampled_rates[:, 0]),
        "sensitivity": _interval(sensitivity, resampled_rates[:, 1]),
        "specificity": _interval(specificity, resampled_rates[:, 2]),
        "auc": _interval(auc if auc is not None else np.nan, resampled_auc),
        "n_bootstrap": n_bootstrap,
        "roc": roc_curve(truth, score),
        "warnings": warnings,
    }
