"""95th-percentile Hausdorff distance (HD95), LBMNet (Front. Med. 2026) equation 18.

HD95(P, G) = max(K95{ d(p, dG) : p in dP }, K95{ d(g, dP) : g in dG }): the larger of the two *directed*
95th percentiles of surface-to-surface distances. This is MONAI's definition
(`monai.metrics.compute_hausdorff_distance(percentile=95, directed=False)`: surface = mask XOR its binary
erosion with the face-connected structuring element, percentile by linear interpolation, maximum of the
two directions). medpy's `hd95` differs: it pools both directions before taking one percentile, which
gives a value between the two directed percentiles; we follow LBMNet/MONAI.

Distances come from scipy's exact Euclidean distance transform on the union's bounding box (plus one
voxel), in millimetres (``sampling=spacing``) and in voxels (unit sampling, the "px" of LBMNet Tables
1-4). An empty mask leaves HD95 undefined: the caller stores ``null`` (docs/evaluation.md).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage


def _crop_to_union(reference: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    union = reference | prediction
    box = []
    for axis in range(union.ndim):
        other_axes = tuple(a for a in range(union.ndim) if a != axis)
        present = np.flatnonzero(union.any(axis=other_axes))
        box.append(slice(max(present[0] - 1, 0), present[-1] + 2))
    return reference[tuple(box)], prediction[tuple(box)]


def _surface(mask: np.ndarray) -> np.ndarray:
    # border_value=0: voxels on the array border belong to the surface, as with MONAI's zero padding
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _directed_percentiles(surface_from: np.ndarray, surface_to: np.ndarray, sampling, percentile: float):
    distance_to = ndimage.distance_transform_edt(~surface_to, sampling=sampling)
    return float(np.percentile(distance_to[surface_from], percentile))


def hausdorff_distance(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float] | None,
                       percentile: float = 95.0) -> float | None:
    """Symmetric percentile Hausdorff distance between two boolean masks (None if either is empty).

    ``spacing`` gives the physical size of one voxel along each array axis; None means voxel units."""
    if not reference.any() or not prediction.any():
        return None
    reference, prediction = _crop_to_union(reference, prediction)
    surface_ref, surface_pred = _surface(reference), _surface(prediction)
    return max(_directed_percentiles(surface_pred, surface_ref, spacing, percentile),
               _directed_percentiles(surface_ref, surface_pred, spacing, percentile))
