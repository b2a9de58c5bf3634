"""Session fixture shared by the toolchain, predict-scans and ensemble tests: two tiny trainers of the
package (nnU-Net's planned U-Net with LBMNet's loss, and an Attention U-Net) cross-validated on the
phantom's five folds (0-4 of ``splits_final.json``), one one-iteration epoch per fold, trained ONCE per
test session. Each fold's validation cases are predicted with probabilities saved, as
``nnUNetv2_train --npz`` does, so nnU-Net's model selection and ensembling have what they need."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from nnunet_helpers import CONFIGURATION, PlannedDataset, train_in_process

CV_TRAINERS = ("nnUNetTrainerStrokeUNet_Tiny", "nnUNetTrainerAttentionUNet_Tiny")
CV_FOLDS = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class CrossValidated:
    planned: PlannedDataset
    trainers: tuple[str, ...]

    def model_folder(self, trainer: str) -> Path:
        return Path(os.environ["nnUNet_results"]) / self.planned.name / f"{trainer}__nnUNetPlans__{CONFIGURATION}"


_TRAINED: dict[str, CrossValidated] = {}  # one training per session, whichever test modules import the fixture


@pytest.fixture(scope="session")
def cross_validated(planned_phantom) -> CrossValidated:
    from nnunet_stroke.trainers import TRAINERS

    if planned_phantom.name not in _TRAINED:
        for name in CV_TRAINERS:
            for fold in CV_FOLDS:
                trainer = train_in_process(TRAINERS[name], planned_phantom, fold=fold, iterations=1)
                trainer.inference_allowed_mirroring_axes = None  # validation without test-time mirroring (8x less)
                trainer.perform_actual_validation(save_probabilities=True)
        _TRAINED[planned_phantom.name] = CrossValidated(planned_phantom, CV_TRAINERS)
    return _TRAINED[planned_phantom.name]
