"""Voxel-overlap metrics of one binary reference/prediction pair: Dice, IoU, Recall, Precision and F2.

Definitions follow LBMNet (Front. Med. 2026) section 3.5, equations 14-17, written with the voxel counts
TP, FP and FN so that they stay defined whenever either mask is non-empty:

    Dice = 2TP / (2TP + FP + FN)            IoU = TP / (TP + FP + FN)
    Recall = TP / (TP + FN)                 Precision = TP / (TP + FP)
    F2 = 5TP / (5TP + 4FN + FP)             (= (1+2^2) P R / (2^2 P + R), eq. 17)

Empty-mask rules (docs/evaluation.md):
- both masks empty: every overlap metric is 1.0 (ISLES'22 `compute_dice(..., empty_value=1.0)`);
- a ratio whose denominator is zero otherwise is undefined and returned as ``None``: Recall with an empty
  reference, Precision with an empty prediction. Dice, IoU and F2 are then 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VoxelCounts:
    """True positive, false positive and false negative voxel counts of a binary pair."""

    tp: int
    fp: int
    fn: int

    @classmethod
    def of(cls, reference: np.ndarray, prediction: np.ndarray) -> "VoxelCounts":
        tp = int(np.count_nonzero(reference & prediction))
        return cls(tp=tp, fp=int(np.count_nonzero(prediction)) - tp, fn=int(np.count_nonzero(reference)) - tp)

    @property
    def both_empty(self) -> bool:
        return self.tp + self.fp + self.fn == 0


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def overlap_metrics(counts: VoxelCounts) -> dict[str, float | None]:
    """Dice, IoU, Recall, Precision and F2 of one case, with the empty-mask rules of the module docstring."""
    if counts.both_empty:
        return {"dice": 1.0, "iou": 1.0, "recall": 1.0, "precision": 1.0, "f2": 1.0}
    tp, fp, fn = counts.tp, counts.fp, counts.fn
    return {
        "dice": 2 * tp / (2 * tp + fp + fn),
        "iou": tp / (tp + fp + fn),
        "recall": _ratio(tp, tp + fn),
        "precision": _ratio(tp, tp + fp),
        "f2": 5 * tp / (5 * tp + 4 * fn + fp),
    }
