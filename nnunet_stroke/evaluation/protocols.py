"""Evaluation protocols: which connectivity labels lesions and which metrics headline the tables.

- ``isles22``: ISLES'22 challenge (official code: ezequieldlrosa/isles22, utils/eval_utils.py): Dice, absolute volume difference in
  ml, absolute lesion-count difference, lesion-wise F1, all with 26-connectivity.
- ``atlas2``: ATLAS v2.0 challenge (npnl/atlas2_grand_challenge, isles/scoring.py): Dice, volume difference in voxels, simple
  lesion count (absolute component-count difference), lesion-wise F1, all with 6-connectivity.
- ``lbmnet``: LBMNet (Front. Med. 2026) Tables 1-4: Dice, IoU, F2, Recall, Precision, HD95 in mm and in
  voxels ("px"); lesion metrics use 26-connectivity.
Every protocol computes every metric; the protocol fixes the connectivity and the headline list.
"""
from __future__ import annotations

from dataclasses import dataclass

from nnunet_stroke.errors import UserError


@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol: lesion connectivity, the metrics its table leads with, a description."""

    name: str
    connectivity: int
    headline_metrics: tuple[str, ...]
    description: str


PROTOCOLS = {
    "isles22": Protocol("isles22", 26, ("dice", "abs_volume_diff_ml", "abs_lesion_count_diff", "lesion_f1"),
                        "ISLES'22 challenge metrics, 26-connected lesions (8 in 2D)"),
    "atlas2": Protocol("atlas2", 6, ("dice", "abs_volume_diff_vox", "abs_lesion_count_diff", "lesion_f1"),
                       "ATLAS v2.0 challenge metrics, 6-connected lesions (4 in 2D), volumes in voxels"),
    "lbmnet": Protocol("lbmnet", 26, ("dice", "iou", "f2", "recall", "precision", "hd95_mm", "hd95_vox"),
                       "LBMNet paper tables (Dice, IoU, F2, Recall, Precision, HD95)"),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UserError(f"unknown evaluation protocol {name!r}; choose one of {', '.join(PROTOCOLS)}") from None
