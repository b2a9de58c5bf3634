"""Lesion-size strata and Bland-Altman volume agreement (LBMNet Tables 2-3 and section 4.3.2, Figure 8;
PMSAN's small infarcts < 5 ml).

Strata are by reference lesion volume in ml (= cm^3): "<5" (a subset of "<10", PMSAN), "<10", "10-50"
and ">50" (LBMNet), with 10 <= v <= 50 in the middle stratum. Cases with an empty reference have no
lesion size and belong to no stratum; 2D images have no volume and no strata.

Bland-Altman: for every case the difference d = prediction - reference (negative = under-estimation)
and the mean m = (prediction + reference) / 2; bias = mean(d), 95% limits of agreement = bias +- 1.96 SD
(ddof=1). Absolute differences are in ml (pixels for 2D); relative differences are 100 * d / m in %
of the mean volume, as LBMNet reports, leaving out cases where both volumes are 0.
"""
from __future__ import annotations

import math

import numpy as np

from nnunet_stroke.evaluation.aggregate import aggregate_cases

STRATA = (("<5", 0.0, 5.0), ("<10", 0.0, 10.0), ("10-50", 10.0, 50.0), (">50", 50.0, math.inf))
EXCLUSIVE_STRATA = ("<10", "10-50", ">50")


def in_stratum(volume_ml: float | None, name: str) -> bool:
    if volume_ml is None or volume_ml <= 0:
        return False
    _, lower, upper = next(s for s in STRATA if s[0] == name)
    if name == "10-50":
        return lower <= volume_ml <= upper
    if name == ">50":
        return volume_ml > lower
    return volume_ml < upper


def stratum_of(volume_ml: float | None) -> str | None:
    """The exclusive LBMNet stratum of a reference volume (None without a lesion or a volume)."""
    return next((name for name in EXCLUSIVE_STRATA if in_stratum(volume_ml, name)), None)


def strata_summary(cases: list[dict]) -> dict | None:
    """Per stratum: bounds, case count, proportion of lesion cases and the aggregate of every metric."""
    if any(case.get("ref_volume_ml") is None for case in cases):
        return None
    lesion_cases = [c for c in cases if c["ref_volume_ml"] > 0]
    strata = []
    for name, lower, upper in STRATA:
        members = [c for c in lesion_cases if in_stratum(c["ref_volume_ml"], name)]
        strata.append({"name": name, "lower_ml": lower, "upper_ml": None if math.isinf(upper) else upper,
                       "n": len(members),
                       "proportion": len(members) / len(lesion_cases) if lesion_cases else None,
                       "aggregate": aggregate_cases(members)})
    return {"reference_volume_unit": "ml", "n_lesion_cases": len(lesion_cases),
            "n_empty_reference": len(cases) - len(lesion_cases), "strata": strata}


def _limits(differences: np.ndarray) -> dict:
    n = int(differences.size)
    if n == 0:
        return {"n": 0, "bias": None, "sd": None, "loa_low": None, "loa_high": None}
    bias = float(differences.mean())
    sd = float(differences.std(ddof=1)) if n > 1 else None
    return {"n": n, "bias": bias, "sd": sd, "loa_low": None if sd is None else bias - 1.96 * sd,
            "loa_high": None if sd is None else bias + 1.96 * sd}


def bland_altman(reference: np.ndarray, prediction: np.ndarray) -> dict:
    """Bias and 95% limits of agreement, absolute and relative (% of the pair's mean volume)."""
    reference, prediction = np.asarray(reference, float), np.asarray(prediction, float)
    difference, mean = prediction - reference, (prediction + reference) / 2
    nonzero = mean > 0
    return {"absolute": _limits(difference), "relative_pct": _limits(100 * difference[nonzero] / mean[nonzero]),
            "n_excluded_relative": int((~nonzero).sum())}


def bland_altman_summary(cases: list[dict]) -> dict:
    """Overall and per-stratum Bland-Altman statistics of predicted vs reference lesion volume."""
    unit = "ml" if all(c.get("ref_volume_ml") is not None for c in cases) else "vox"

    def of(members):
        return bland_altman([c[f"ref_volume_{unit}"] for c in members], [c[f"pred_volume_{unit}"] for c in members])

    by_stratum = {}
    if unit == "ml":
        for name, _, _ in STRATA:
            by_stratum[name] = of([c for c in cases if in_stratum(c["ref_volume_ml"], name)])
    return {"difference": "prediction - reference", "unit": unit, "overall": of(cases), "by_stratum": by_stratum}
