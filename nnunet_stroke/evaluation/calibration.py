"""Calibration of lesion probabilities: expected calibration error (ECE) and reliability-diagram bins.

ECE after Guo et al. 2017 in torchmetrics' binary form: the positive-class probability p is binned into
``n_bins`` equal-width bins on [0, 1] (bin i holds i/n <= p < (i+1)/n, p = 1 in the last bin) and
ECE = sum_b (n_b / N) * |mean p in b - fraction of lesion in b|.
Voxel-wise ECE is computed inside a region of interest (the evaluation's ROI rule, docs/evaluation.md),
since the background outside the brain would dominate it; histograms of several cases add up, so the
dataset ECE pools all ROI voxels. Case-wise ECE bins one lesion probability per case against whether
the reference has a lesion.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VOXEL_BINS = 15
CASE_BINS = 10


@dataclass
class ReliabilityHistogram:
    """Per-bin voxel count, sum of probabilities and number of lesion voxels."""

    count: np.ndarray
    probability_sum: np.ndarray
    positive_sum: np.ndarray

    @classmethod
    def of(cls, probability: np.ndarray, target: np.ndarray, n_bins: int) -> "ReliabilityHistogram":
        probability = np.asarray(probability, dtype=np.float64).ravel()
        index = np.minimum((probability * n_bins).astype(np.int64), n_bins - 1)
        return cls(count=np.bincount(index, minlength=n_bins).astype(np.float64),
                   probability_sum=np.bincount(index, weights=probability, minlength=n_bins),
                   positive_sum=np.bincount(index, weights=np.asarray(target, dtype=np.float64).ravel(),
                                            minlength=n_bins))

    def __add__(self, other: "ReliabilityHistogram") -> "ReliabilityHistogram":
        return ReliabilityHistogram(self.count + other.count, self.probability_sum + other.probability_sum,
                                    self.positive_sum + other.positive_sum)

    @property
    def n(self) -> int:
        return int(self.count.sum())

    def ece(self) -> float | None:
        if self.n == 0:
            return None
        filled = self.count > 0
        gap = np.abs(self.probability_sum[filled] - self.positive_sum[filled]) / self.count[filled]
        return float(np.sum(self.count[filled] / self.n * gap))

    def bins(self) -> list[dict]:
        """Reliability-diagram rows: bin bounds, count, mean probability and observed lesion fraction."""
        n_bins = self.count.size
        rows = []
        for i in range(n_bins):
            filled = self.count[i] > 0
            rows.append({"lower": i / n_bins, "upper": (i + 1) / n_bins, "count": int(self.count[i]),
                         "mean_probability": float(self.probability_sum[i] / self.count[i]) if filled else None,
                         "lesion_fraction": float(self.positive_sum[i] / self.count[i]) if filled else None})
        return rows

    def to_json(self) -> dict:
        return {"n": self.n, "ece": self.ece(), "n_bins": int(self.count.size), "bins": self.bins()}
