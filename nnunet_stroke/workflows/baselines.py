"""Baselines a reader would try before a network: voxel rules on DWI and ADC, chosen on training cases.

- Threshold baseline: ``z(DWI) > t``, one global threshold.
- Rule baseline: ``z(DWI) > t and ADC < b``, DWI z-scored over the head's non-zero voxels (nnU-Net's
  normalisation of the channel), ADC in the scanner's physical units (1e-6 mm^2/s).

``t`` runs over ``Z_GRID`` (0 to 6 in steps of 0.1) and ``b`` over ``ADC_GRID`` (200 to 1500 in steps of
25, and no bound at all, so the rule grid contains the threshold rule). The pair with the best mean Dice
on the training cases is kept (ties: the smallest t, then the smallest b) and applied to the test cases;
the test cases are never read before the choice. Dice follows the ISLES'22 rule: an empty reference and
an empty prediction score 1. Every grid point is scored in one pass over a case's voxels: each voxel is
binned by how many thresholds it exceeds and how many bounds it reaches, and cumulative sums of the
2-D histogram give every rule's predicted and overlapping voxel counts at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

Z_GRID = np.round(np.arange(0.0, 6.01, 0.1), 2)
ADC_GRID = np.concatenate([np.arange(200.0, 1500.1, 25.0), [np.inf]])


@dataclass(frozen=True)
class CaseFiles:
    case: str
    dwi: Path
    adc: Path
    label: Path


@dataclass(frozen=True)
class BaselineResult:
    z_threshold: float
    adc_below: float        # inf: no ADC bound (the threshold baseline)
    train_dice: float       # mean over the training cases, at the chosen rule
    test_dice: list[float]  # per test case, in the order given

    @property
    def mean_test_dice(self) -> float:
        return float(np.mean(self.test_dice))


def nnunet_case_files(images_dir: Path, labels_dir: Path, cases: Sequence[str], file_ending: str = ".nii.gz",
                      dwi_channel: int = 0, adc_channel: int = 1) -> list[CaseFiles]:
    """The files of ``cases`` in nnU-Net's naming (``CASE_0000`` DWI, ``CASE_0001`` ADC, label ``CASE``)."""
    return [CaseFiles(c, Path(images_dir) / f"{c}_{dwi_channel:04d}{file_ending}",
                      Path(images_dir) / f"{c}_{adc_channel:04d}{file_ending}", Path(labels_dir) / f"{c}{file_ending}")
            for c in cases]


def read_array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def zscored(image: np.ndarray) -> np.ndarray:
    """``image`` z-scored over its non-zero voxels (the head)."""
    image = image.astype(np.float64)
    head = image != 0
    return (image - image[head].mean()) / max(float(image[head].std()), 1e-8)


def dice_grid(z_dwi: np.ndarray, adc: np.ndarray, reference: np.ndarray, thresholds: np.ndarray,
              adc_bounds: np.ndarray) -> np.ndarray:
    """Dice of ``(z_dwi > thresholds[i]) & (adc < adc_bounds[j])`` against ``reference`` for every (i, j);
    ``thresholds`` and ``adc_bounds`` ascending."""
    above = np.searchsorted(thresholds, z_dwi.ravel(), side="left")      # thresholds exceeded: z > t[i] iff i < above
    reached = np.searchsorted(adc_bounds, adc.ravel(), side="right")    # bounds <= adc: adc < b[j] iff j >= reached
    shape = (len(thresholds) + 1, len(adc_bounds) + 1)
    flat = above * shape[1] + reached
    reference = reference.ravel().astype(bool)

    def counts(voxels: np.ndarray) -> np.ndarray:
        histogram = np.bincount(voxels, minlength=shape[0] * shape[1]).reshape(shape)
        exceeding = np.cumsum(histogram[::-1], axis=0)[::-1][1:]       # row i: voxels with above > i
        return np.cumsum(exceeding, axis=1)[:, :-1]                      # column j: ... and reached <= j

    predicted, overlap = counts(flat), counts(flat[reference])
    total = predicted + int(reference.sum())
    return np.where(total == 0, 1.0, 2.0 * overlap / np.maximum(total, 1))


def case_dice_grid(files: CaseFiles, thresholds: np.ndarray, adc_bounds: np.ndarray) -> np.ndarray:
    return dice_grid(zscored(read_array(files.dwi)), read_array(files.adc).astype(np.float64),
                     read_array(files.label) > 0, thresholds, adc_bounds)


def _choose(train_mean: np.ndarray, thresholds: np.ndarray, adc_bounds: np.ndarray) -> tuple[float, float, float]:
    """(t, b, mean training Dice) of the best grid point; ties go to the first (smallest t, then b)."""
    i, j = np.unravel_index(int(np.argmax(train_mean)), train_mean.shape)
    return float(thresholds[i]), float(adc_bounds[j]), float(train_mean[i, j])


def _score(test: Sequence[CaseFiles], t: float, b: float) -> list[float]:
    return [float(case_dice_grid(f, np.array([t]), np.array([b]))[0, 0]) for f in test]


def fit_baselines(train: Sequence[CaseFiles], test: Sequence[CaseFiles]) -> dict[str, BaselineResult]:
    """``{"threshold": ..., "rule": ...}``: both baselines chosen on ``train`` (one pass over its files: the
    rule grid's last column, no ADC bound, is the threshold rule) and scored on each case of ``test``."""
    if not train or not test:
        raise ValueError("a baseline needs training and test cases")
    train_mean = np.mean([case_dice_grid(f, Z_GRID, ADC_GRID) for f in train], axis=0)
    results = {}
    for name, columns in (("threshold", slice(len(ADC_GRID) - 1, None)), ("rule", slice(None))):
        t, b, train_dice = _choose(train_mean[:, columns], Z_GRID, ADC_GRID[columns])
        results[name] = BaselineResult(t, b, train_dice, _score(test, t, b))
    return results
