"""Patient-level classification metrics (PMSAN Table 1: accuracy, sensitivity, specificity, AUC; the
StrokeNeXt paper's accuracy, macro F1 and paired tests), on arrays: ``truth`` (n,) class indices,
``probabilities`` (n, K) rows summing to one, ``predicted`` (n,) class indices (the decided labels).

- Accuracy; balanced accuracy = mean over classes of the class's sensitivity (recall).
- Sensitivity of class k = TP_k / (cases of class k); specificity of class k = TN_k / (cases not of k),
  one-vs-rest; undefined (None) without such cases.
- Macro F1 = mean over the classes of 2 TP / (2 TP + FP + FN); a class with 2 TP + FP + FN = 0 (absent
  from truth and prediction) scores 1, the classes' F1 being the same in every sample.
- AUROC: the Mann-Whitney statistic with tied scores counted one half (``detection.roc_auc``: midranks).
  Two classes: of p(class 1). More than two: one-vs-rest for each class on p(class), averaged unweighted;
  undefined when any class lacks cases or non-cases (per-class values are reported as well).
- ECE (Guo et al. 2017, top-label): the argmax probability of each case is binned into 15 equal-width
  bins on [0, 1] (``calibration.ReliabilityHistogram``), "correct" = argmax equals the truth, gaps
  |mean confidence - accuracy| weighted by the bin's share of cases. It ignores any decision threshold.
- Youden threshold (binary): decision ``p(class 1) >= t``; t maximises J = sensitivity + specificity - 1
  over the distinct scores; t is the midpoint between the lowest score called positive and the next
  lower score (the lowest score itself if none), ties of J broken towards the lower threshold (higher
  sensitivity): our choices. Without both classes J is undefined and the caller falls back to argmax.
- Percentile bootstrap: cases resampled with replacement ``n_boot`` = 2000 times with a fixed seed (0);
  the CI is the 2.5th and 97.5th percentile of the resamples where the metric is defined.
- McNemar (paired decisions): b = cases only model A gets right, c = only B; exact two-sided binomial
  test (b ~ Bin(b + c, 1/2)) when b + c < 25, else chi-square with continuity correction
  (|b - c| - 1)^2 / (b + c), 1 degree of freedom.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from nnunet_stroke.evaluation.calibration import ReliabilityHistogram
from nnunet_stroke.evaluation.detection import roc_auc

N_BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0
ECE_BINS = 15
MCNEMAR_EXACT_BELOW = 25


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator > 0 else None


def decision_rates(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> dict[str, float | None]:
    """accuracy, balanced_accuracy, macro_f1, sensitivity_<k>, specificity_<k>, f1_<k> (k = class index)."""
    truth, predicted = np.asarray(truth, dtype=int), np.asarray(predicted, dtype=int)
    rates: dict[str, float | None] = {"accuracy": _ratio(np.sum(truth == predicted), truth.size)}
    f1 = []
    for k in range(n_classes):
        is_k, called_k = truth == k, predicted == k
        tp, fp, fn = np.sum(is_k & called_k), np.sum(~is_k & called_k), np.sum(is_k & ~called_k)
        rates[f"sensitivity_{k}"] = _ratio(tp, np.sum(is_k))
        rates[f"specificity_{k}"] = _ratio(np.sum(~is_k & ~called_k), np.sum(~is_k))
        f1.append(1.0 if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
        rates[f"f1_{k}"] = float(f1[-1])
    recalls = [rates[f"sensitivity_{k}"] for k in range(n_classes) if rates[f"sensitivity_{k}"] is not None]
    rates["balanced_accuracy"] = float(np.mean(recalls)) if recalls else None
    rates["macro_f1"] = float(np.mean(f1))
    return rates


def one_vs_rest_auroc(truth: np.ndarray, probabilities: np.ndarray) -> dict[str, float | None]:
    """``auroc`` (binary, or the unweighted one-vs-rest mean) and ``auroc_<k>`` per class."""
    truth, probabilities = np.asarray(truth, dtype=int), np.asarray(probabilities, dtype=float)
    n_classes = probabilities.shape[1]
    if n_classes == 2:
        auc = roc_auc(truth == 1, probabilities[:, 1])
        return {"auroc": auc}
    per_class = {f"auroc_{k}": roc_auc(truth == k, probabilities[:, k]) for k in range(n_classes)}
    defined = [v for v in per_class.values() if v is not None]
    return {"auroc": float(np.mean(defined)) if len(defined) == n_classes else None, **per_class}


def reliability(truth: np.ndarray, probabilities: np.ndarray, n_bins: int = ECE_BINS) -> ReliabilityHistogram:
    """Top-label reliability histogram: argmax probability against "argmax is the true class"."""
    probabilities = np.asarray(probabilities, dtype=float)
    top = probabilities.argmax(axis=1)
    return ReliabilityHistogram.of(probabilities.max(axis=1), top == np.asarray(truth, dtype=int), n_bins)


def expected_calibration_error(truth: np.ndarray, probabilities: np.ndarray, n_bins: int = ECE_BINS) -> float | None:
    return reliability(truth, probabilities, n_bins).ece()


def classification_metrics(truth, probabilities, predicted) -> dict[str, float | None]:
    """Every point metric of the module docstring, keyed by class index."""
    probabilities = np.asarray(probabilities, dtype=float)
    return {**decision_rates(truth, predicted, probabilities.shape[1]), **one_vs_rest_auroc(truth, probabilities),
            "ece": expected_calibration_error(truth, probabilities)}


def bootstrap_indices(n: int, n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def interval(value: float | None, resampled: list[float | None], n: int | None = None) -> dict:
    """{value, ci_low, ci_high[, n]}: percentile 95% interval of the defined resampled values."""
    defined = np.array([v for v in resampled if v is not None], dtype=float)
    undefined = value is None or defined.size == 0
    result = {"value": value,
              "ci_low": None if undefined else float(np.percentile(defined, 2.5)),
              "ci_high": None if undefined else float(np.percentile(defined, 97.5))}
    return result if n is None else {**result, "n": n}


def bootstrap_metrics(truth, probabilities, predicted, n_boot: int = N_BOOTSTRAP,
                      seed: int = BOOTSTRAP_SEED) -> dict[str, dict]:
    """Every metric of :func:`classification_metrics` with its percentile-bootstrap 95% CI."""
    truth, probabilities, predicted = np.asarray(truth, int), np.asarray(probabilities, float), np.asarray(predicted, int)
    point = classification_metrics(truth, probabilities, predicted)
    samples = [classification_metrics(truth[i], probabilities[i], predicted[i])
               for i in bootstrap_indices(truth.size, n_boot, seed)]
    return {key: interval(value, [s[key] for s in samples]) for key, value in point.items()}


def proportion_interval(successes: np.ndarray, n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> dict:
    """A proportion (e.g. sensitivity on a subgroup) with its bootstrap CI and n; value None when n = 0."""
    successes = np.asarray(successes, dtype=float)
    if successes.size == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n": 0}
    resampled = successes[bootstrap_indices(successes.size, n_boot, seed)].mean(axis=1)
    return interval(float(successes.mean()), list(resampled), n=int(successes.size))


def youden_threshold(truth, score) -> dict | None:
    """{threshold, youden_j, sensitivity, specificity} for ``score >= threshold`` (binary truth), or None
    when truth lacks a class (rule: module docstring)."""
    truth, score = np.asarray(truth, dtype=bool), np.asarray(score, dtype=float)
    if truth.all() or not truth.any():
        return None
    candidates = np.unique(score)  # ascending; candidate k calls scores >= candidates[k] positive
    sensitivity = np.array([np.mean(score[truth] >= t) for t in candidates])
    specificity = np.array([np.mean(score[~truth] < t) for t in candidates])
    j = sensitivity + specificity - 1
    best = int(np.flatnonzero(j == j.max())[0])  # lowest threshold among the ties
    threshold = candidates[best] if best == 0 else (candidates[best] + candidates[best - 1]) / 2
    return {"threshold": float(threshold), "youden_j": float(j[best]), "sensitivity": float(sensitivity[best]),
            "specificity": float(specificity[best])}


def mcnemar(correct_a, correct_b) -> dict:
    """McNemar's test of paired decisions (rule: module docstring)."""
    correct_a, correct_b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    b, c = int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))
    if b + c == 0:
        return {"b": b, "c": c, "method": "exact binomial", "statistic": None, "p_value": 1.0}
    if b + c < MCNEMAR_EXACT_BELOW:
        p = min(1.0, 2 * stats.binom.cdf(min(b, c), b + c, 0.5))
        return {"b": b, "c": c, "method": "exact binomial", "statistic": None, "p_value": float(p)}
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    return {"b": b, "c": c, "method": "chi-square with continuity correction", "statistic": float(statistic),
            "p_value": float(stats.chi2.sf(statistic, df=1))}


def paired_auroc_difference(truth, probabilities_a, probabilities_b, n_boot: int = N_BOOTSTRAP,
                            seed: int = BOOTSTRAP_SEED) -> dict:
    """AUROC(A) - AUROC(B) with a paired percentile-bootstrap 95% CI (the same resampled cases for both)."""
    truth = np.asarray(truth, dtype=int)
    probabilities_a, probabilities_b = np.asarray(probabilities_a, float), np.asarray(probabilities_b, float)

    def difference(index) -> float | None:
        a = one_vs_rest_auroc(truth[index], probabilities_a[index])["auroc"]
        b = one_vs_rest_auroc(truth[index], probabilities_b[index])["auroc"]
        return None if a is None or b is None else a - b

    every = np.arange(truth.size)
    resampled = [difference(i) for i in bootstrap_indices(truth.size, n_boot, seed)]
    return {**interval(difference(every), resampled), "n_boot": n_boot, "seed": seed}
