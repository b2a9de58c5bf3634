"""PMSAN-Seg trainers (after Nalla & Deepak; docs/pmsan.md): segmentation with an auxiliary detection head,
not the paper's classifier (that is :mod:`nnunet_stroke.trainers.pmsan_classifier`).

Joint loss per training patch::

    L = L_seg + DETECTION_LOSS_WEIGHT * BCE(detection_logit, y_patch)

``L_seg`` is the package's Dice + class-weighted cross-entropy under nnU-Net's deep supervision
(:class:`~nnunet_stroke.trainers.base.nnUNetTrainerStrokeUNet`), ``y_patch`` = 1 when the patch's
label holds at least one lesion (foreground) voxel, else 0 - the paper's question "does this scan show an
acute stroke?" asked of the patch nnU-Net samples. The weight 0.5 keeps the detection term (about 0.7
at chance) below the segmentation loss (about 1-2 early in training), so it shapes the encoder without
dominating it. nnU-Net centres a third of each batch on foreground, so every batch holds positive
patches; random patches and lesion-free cases give the negatives.

At prediction a case's stroke probability is the maximum over sliding-window tiles of the head's
sigmoid (``nnunet_stroke.inference``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_stroke.trainers.base import PresetTrainer
from nnunet_stroke.trainers.loss_hook import LossHookTrainStep

DETECTION_LOSS_WEIGHT = 0.5
PAPER = "Nalla & Deepak, Progressive Multi-Scale Attention Networks for acute ischemic stroke detection (DWI)"


def unwrap(network: nn.Module) -> nn.Module:
    """The module itself behind DDP (``.module``) and torch.compile (``._orig_mod``)."""
    while hasattr(network, "module") or hasattr(network, "_orig_mod"):
        network = getattr(network, "module", None) or network._orig_mod
    return network


def patch_has_lesion(target: torch.Tensor, ignore_label: int | None = None) -> torch.Tensor:
    """``target`` (B, 1, ...) label map -> (B,) float: 1.0 where the patch holds a foreground voxel."""
    foreground = target > 0
    if ignore_label is not None:
        foreground &= target != ignore_label
    return foreground.flatten(1).any(dim=1).float()


class PMSANTrainer(LossHookTrainStep, PresetTrainer):
    """Shared behaviour of the PMSAN trainers: the joint segmentation + detection loss."""

    paper = PAPER
    predicts_detection = True  # nnunet_stroke.inference writes detection.json for these trainers
    detection_loss_weight = DETECTION_LOSS_WEIGHT

    def forward_with_detection(self, data: torch.Tensor):
        """(segmentation output as nnU-Net expects it, detection logits (B,))."""
        output = self.network(data)
        return output, unwrap(self.network).last_detection_logit

    def detection_targets(self, target) -> torch.Tensor:
        full_resolution = target[0] if isinstance(target, (list, tuple)) else target
        return patch_has_lesion(full_resolution, self.label_manager.ignore_label)

    def joint_loss(self, output, detection_logit, target) -> torch.Tensor:
        detection = F.binary_cross_entropy_with_logits(detection_logit.float(), self.detection_targets(target))
        return self.loss(output, target) + self.detection_loss_weight * detection

    def compute_train_loss(self, data: torch.Tensor, target) -> torch.Tensor:
        output, detection_logit = self.forward_with_detection(data)
        return self.joint_loss(output, detection_logit, target)


class nnUNetTrainerPMSAN_S(PMSANTrainer):
    """PMSAN-Seg S (phi 1.0): segmentation with an auxiliary detection head, not the paper's classifier."""

    network_preset, tiny_preset = "pmsan_s", "pmsan_tiny"


class nnUNetTrainerPMSAN_M(PMSANTrainer):
    """PMSAN-Seg M (phi 1.3): segmentation with an auxiliary detection head, not the paper's classifier."""

    network_preset, tiny_preset = "pmsan_m", "pmsan_tiny_m"


class nnUNetTrainerPMSAN_L(PMSANTrainer):
    """PMSAN-Seg L (phi 1.6): segmentation with an auxiliary detection head, not the paper's classifier."""

    network_preset, tiny_preset = "pmsan_l", "pmsan_tiny_l"


class nnUNetTrainerPMSAN_XL(PMSANTrainer):
    """PMSAN-Seg XL (phi 2.0): segmentation with an auxiliary detection head; first of its distillation chain."""

    network_preset, tiny_preset = "pmsan_xl", "pmsan_tiny_xl"
