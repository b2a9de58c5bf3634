"""All per-case metrics of one reference/prediction pair (the entries of metrics.json's ``cases`` list).

Combines the overlap metrics (LBMNet eqs. 14-17, `overlap.py`), HD95 (eq. 18, `surface.py`), volumes and
the lesion-wise metrics of ISLES'22/ATLAS v2.0 (`lesions.py`). Volumes in ml use the voxel spacing in mm
(prod(spacing) / 1000); 2D images have no volume, so their ``*_ml`` values are null and ``*_vox`` count
pixels.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from nnunet_stroke.evaluation.lesions import match_lesions
from nnunet_stroke.evaluation.overlap import VoxelCounts, overlap_metrics
from nnunet_stroke.evaluation.surface import hausdorff_distances


def voxel_volume_ml(spacing: Sequence[float]) -> float | None:
    """Volume of one voxel in ml for 3D spacing in mm; None for 2D images."""
    return float(np.prod(spacing)) / 1000.0 if len(spacing) == 3 else None


def segmentation_metrics(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                         connectivity: int) -> dict[str, float | int | None]:
    """Every segmentation metric of one case; ``reference`` and ``prediction`` are boolean arrays."""
    counts = VoxelCounts.of(reference, prediction)
    lesions = match_lesions(reference, prediction, connectivity)
    ref_vox, pred_vox = counts.tp + counts.fn, counts.tp + counts.fp
    unit_ml = voxel_volume_ml(spacing)
    hd95_mm, hd95_vox = hausdorff_distances(reference, prediction, [spacing, None])

    def ml(voxels: int) -> float | None:
        return None if unit_ml is None else voxels * unit_ml

    return {
        **overlap_metrics(counts),
        "hd95_mm": hd95_mm,
        "hd95_vox": hd95_vox,
        "ref_volume_ml": ml(ref_vox),
        "pred_volume_ml": ml(pred_vox),
        "abs_volume_diff_ml": ml(abs(pred_vox - ref_vox)),
        "ref_volume_vox": ref_vox,
        "pred_volume_vox": pred_vox,
        "abs_volume_diff_vox": abs(pred_vox - ref_vox),
        "ref_lesion_count": lesions.reference,
        "pred_lesion_count": lesions.prediction,
        "abs_lesion_count_diff": abs(lesions.reference - lesions.prediction),
        "lesion_tp": lesions.tp,
        "lesion_fp": lesions.fp,
        "lesion_fn": lesions.fn,
        "lesion_f1": lesions.f1,
    }
