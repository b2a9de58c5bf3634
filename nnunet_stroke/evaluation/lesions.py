"""Lesion-wise (connected-component) metrics of the ISLES'22 and ATLAS v2.0 challenges.

Rules of the official code (ezequieldlrosa/isles22 `utils/eval_utils.py`; npnl/atlas2_grand_challenge
`isles/scoring.py`, MICCAI 2022 revision), see docs/evaluation.md:
- a reference lesion (connected component) is a true positive when at least one of its voxels is also
  predicted, otherwise a false negative;
- a predicted component that touches no reference voxel is a false positive;
- lesion F1 = TP / (TP + (FP + FN) / 2); both masks empty gives 1.0, an empty reference with any
  prediction gives 0; one large prediction covering several reference lesions counts them all as TP;
- lesion count difference = |#components(reference) - #components(prediction)|.
ISLES'22 labels components with 26-connectivity (cc3d), ATLAS v2.0 with scipy.ndimage.label's default
structure, i.e. 6-connectivity. In 2D the same rules use 8- and 4-connectivity.

Components are labelled once with cc3d and matched through the labels found in the intersection, which
gives exactly the counts of the official per-component loops.
"""
from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np

CONNECTIVITY_2D = {26: 8, 18: 8, 6: 4, 8: 8, 4: 4}


@dataclass(frozen=True)
class LesionCounts:
    """Components of reference and prediction and their matching under the any-overlap rule."""

    reference: int
    prediction: int
    tp: int
    fp: int
    fn: int

    @property
    def f1(self) -> float:
        if self.tp + self.fp + self.fn == 0:
            return 1.0
        return self.tp / (self.tp + (self.fp + self.fn) / 2)


def _label(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    if mask.ndim == 2:
        connectivity = CONNECTIVITY_2D[connectivity]
    labels, count = cc3d.connected_components(np.ascontiguousarray(mask, dtype=np.uint8),
                                              connectivity=connectivity, return_N=True)
    return labels, int(count)


def match_lesions(reference: np.ndarray, prediction: np.ndarray, connectivity: int) -> LesionCounts:
    """Count components (3D connectivity 6, 18 or 26) and match them with the any-overlap rule."""
    labels_ref, n_ref = _label(reference, connectivity)
    labels_pred, n_pred = _label(prediction, connectivity)
    overlap = reference & prediction
    found_ref = np.unique(labels_ref[overlap]).size
    touching_pred = np.unique(labels_pred[overlap]).size
    return LesionCounts(reference=n_ref, prediction=n_pred, tp=found_ref, fp=n_pred - touching_pred,
                        fn=n_ref - found_ref)
