"""The global DWI threshold baseline of the demo: the phantom must not be solvable by thresholding.

Each case's DWI is z-scored over its non-zero voxels (nnU-Net's normalisation of the channel); one
global threshold is chosen on the training cases (the one maximising their mean Dice over a grid of
z-values) and applied to the test cases. Dice of an empty reference and empty prediction is 1.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

THRESHOLD_GRID = np.round(np.arange(0.0, 6.01, 0.1), 2)


def zscored_dwi(path: Path) -> np.ndarray:
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float64)
    brain = image != 0
    return (image - image[brain].mean()) / max(image[brain].std(), 1e-8)


def dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    total = reference.sum() + prediction.sum()
    return 1.0 if total == 0 else 2.0 * np.logical_and(reference, prediction).sum() / total


def _dice_per_threshold(images: Sequence[Path], labels: Sequence[Path], thresholds: np.ndarray) -> np.ndarray:
    scores = np.zeros((len(images), len(thresholds)))
    for i, (image_path, label_path) in enumerate(zip(images, labels)):
        dwi, reference = zscored_dwi(image_path), sitk.GetArrayFromImage(sitk.ReadImage(str(label_path))) > 0
        scores[i] = [dice(reference, dwi > t) for t in thresholds]
    return scores


def threshold_baseline(raw_dataset: Path, train_cases: Sequence[str], test_cases: Sequence[str],
                       file_ending: str = ".nii.gz") -> tuple[float, float]:
    """(chosen z-threshold, mean test Dice) of the best global DWI (channel 0) threshold on the training cases."""
    def paths(cases):
        return ([raw_dataset / "imagesTr" / f"{c}_0000{file_ending}" for c in cases],
                [raw_dataset / "labelsTr" / f"{c}{file_ending}" for c in cases])

    train_scores = _dice_per_threshold(*paths(train_cases), THRESHOLD_GRID)
    best = float(THRESHOLD_GRID[int(np.argmax(train_scores.mean(axis=0)))])
    test_scores = _dice_per_threshold(*paths(test_cases), np.array([best]))
    return best, float(test_scores.mean())
