"""StrokeNeXt trainers for 2D CT (docs/strokenext.md): the classifier of
:mod:`nnunet_stroke.networks.strokenext` on nnU-Net's ``2d`` configuration of the converted TEKNOFEST set,
with the classification base's whole slices, class-balanced batches and validation AUC
(:mod:`~nnunet_stroke.trainers.classification`).

The paper's recipe: AdamW, label smoothing, mixed precision (AMP on CUDA, nnU-Net's autocast and
GradScaler). Its numbers are not given; the package's: label smoothing 0.1, learning rate 1e-4 (the usual
ConvNeXt fine-tuning rate), weight decay 0.05, 50 epochs of 250 iterations with nnU-Net's polynomial decay.

ImageNet weights: random initialisation by default; ``NNUNET_STROKE_CONVNEXT_WEIGHTS=/path/file`` (a
timm ConvNeXt checkpoint of the preset's encoder, ``.pth`` or ``.safetensors``) loads them into both
encoders when training starts. A whole StrokeNeXt checkpoint of this package loads through nnU-Net's own
``-pretrained_weights``. Nothing is downloaded.

Variants are trainer names (nnU-Net passes trainers no arguments): ``nnUNetTrainerStrokeNeXt`` classifies
the subtype with the converter's classes (normal / ischemic / hemorrhagic), ``nnUNetTrainerStrokeNeXt_Presence``
stroke presence (no_stroke / stroke); see :mod:`nnunet_stroke.evaluation.case_labels`.
"""
from __future__ import annotations

import os
from pathlib import Path

from nnunet_stroke.errors import UserError
from nnunet_stroke.networks.strokenext import load_imagenet_weights
from nnunet_stroke.trainers.classification import ClassificationTrainer
from nnunet_stroke.trainers.pmsan import unwrap

WEIGHTS_VARIABLE = "NNUNET_STROKE_CONVNEXT_WEIGHTS"
PAPER = "StrokeNeXt: A Siamese-encoder Approach for Brain Stroke Classification in Computed Tomography Imagery"


class nnUNetTrainerStrokeNeXt(ClassificationTrainer):
    """StrokeNeXt (two ConvNeXt encoders, 1D-convolution fusion): CT stroke subtype, normal/ischemic/hemorrhagic."""

    paper = PAPER
    network_preset, tiny_preset = "strokenext", "strokenext_tiny"
    classification_task = "subtype"
    label_smoothing = 0.1
    initial_lr_classifier = 1e-4
    weight_decay_classifier = 0.05
    epochs_classifier = 50

    def initialize(self):
        was_initialized = self.was_initialized
        super().initialize()
        weights = os.environ.get(WEIGHTS_VARIABLE)
        if was_initialized or not weights:
            return
        if not Path(weights).is_file():
            raise UserError(f"{WEIGHTS_VARIABLE}={weights}: no such file; point it at a local timm ConvNeXt "
                            f"checkpoint of the preset's encoder, or unset it for random initialisation")
        missing = load_imagenet_weights(unwrap(self.network), Path(weights))
        self.print_to_log_file(f"ConvNeXt encoders initialised from {weights}"
                               + (f"; not in the file: {missing}" if missing else ""))


class nnUNetTrainerStrokeNeXt_Presence(nnUNetTrainerStrokeNeXt):
    """StrokeNeXt for CT stroke presence (stroke / no stroke)."""

    classification_task = "presence"
