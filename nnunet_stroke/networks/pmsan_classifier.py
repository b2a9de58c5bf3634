"""PMSAN as its paper builds it: a patient-level stroke classifier (Nalla & Deepak, "Proposed Model" and
Algorithm 1; docs/pmsan.md).

Input: a whole preprocessed volume ``(B, C, D, H, W)`` (or one 2D image ``(B, C, H, W)``); output: class
logits ``(B, num_classes)`` (no softmax).

- the shared slice-wise 2D encoder (:class:`~nnunet_stroke.networks.pmsan.PMSANEncoder`: stem and
  ``len(widths)`` levels of multi-scale blocks, :mod:`~nnunet_stroke.networks.blocks.multiscale`) runs on
  every slice of the volume;
- a bidirectional ConvGRU (:mod:`~nnunet_stroke.networks.blocks.slice_recurrence`) follows the stage at
  the ``recurrent_levels`` coarsest levels and steps over every slice of the whole volume (one slice per
  step) - "initial processing is performed slice-wise with shared weights, followed by recurrent layers
  to capture inter-slice relationships";
- cross-scale attention (:mod:`~nnunet_stroke.networks.blocks.cross_scale_attention`): queries from the
  deepest map, keys and values from every level;
- the classification head: "global average pooling followed by fully connected layers" - the deepest
  features averaged over the plane and all slices, Linear -> ReLU -> Dropout(0.2) -> Linear(num_classes).

The architecture (levels, widths, depths) comes from the preset and the compound-scaling coefficient
alone (:mod:`~nnunet_stroke.networks.pmsan_scaling`): level 0 keeps the input resolution, every further
level halves the plane (stride 2); nnU-Net's planned patch and pooling are not used, so the size depends
on the number of input channels only.
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
from torch import nn

from nnunet_stroke.networks.blocks.conventions import init_he
from nnunet_stroke.networks.pmsan import PMSANEncoder
from nnunet_stroke.networks.pmsan_scaling import scaled_depth, scaled_width
from nnunet_stroke.networks.registry import register_architecture


class ClassificationHead(nn.Module):
    """Global average pooling over plane and slices, then Linear -> ReLU -> Dropout -> Linear."""

    def __init__(self, channels: int, hidden: int, num_classes: int, dropout: float = 0.2):
        super().__init__()
        self.classifier = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                        nn.Linear(hidden, num_classes))

    def forward(self, features: torch.Tensor, num_slices: int) -> torch.Tensor:
        """``features`` (batch * num_slices, C, H, W) -> logits (batch, num_classes)."""
        pooled = features.mean(dim=(2, 3)).reshape(-1, num_slices, features.shape[1]).mean(dim=1)
        return self.classifier(pooled)


class PMSANClassifier(nn.Module):
    """PMSAN's patient-level classifier (module docstring).

    Args:
        input_channels, num_classes: image channels and classes.
        widths, depths: channels and multi-scale blocks of every level.
        num_paths, recurrent_levels, recurrent_reduction: as in :class:`~nnunet_stroke.networks.pmsan.PMSAN`.
        attention_dim, attention_head_dim, attention_grid: cross-scale attention sizes.
        head_hidden: hidden width of the classification head.

    Shapes: ``(B, C, D, H, W)`` or ``(B, C, H, W)`` -> class logits ``(B, num_classes)``.
    """

    def __init__(self, input_channels: int, num_classes: int, widths: Sequence[int], depths: Sequence[int],
                 num_paths: int = 3, recurrent_levels: int = 2, recurrent_reduction: int = 4,
                 attention_dim: int = 128, attention_head_dim: int = 32, attention_grid: int = 8,
                 head_hidden: int = 256):
        super().__init__()
        if len(widths) != len(depths):
            raise ValueError(f"one depth per level: widths {list(widths)}, depths {list(depths)}")
        strides_2d = [(1, 1)] + [(2, 2)] * (len(widths) - 1)
        self.encoder = PMSANEncoder(input_channels, widths, depths, strides_2d, num_paths, recurrent_levels,
                                    recurrent_reduction, attention_dim, attention_head_dim, attention_grid,
                                    slice_pooling=[1] * len(widths))
        self.head = ClassificationHead(widths[-1], head_hidden, num_classes)
        self.apply(partial(init_he, linear=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # one 2D image: a volume of one slice
            x = x[:, :, None]
        if x.dim() != 5:
            raise ValueError(f"PMSANClassifier takes (B, C, D, H, W) or (B, C, H, W), got {tuple(x.shape)}")
        num_slices = x.shape[2]
        slices = x.transpose(1, 2).flatten(0, 1)
        features = self.encoder(slices, num_slices)[-1]
        return self.head(features, num_slices)


@register_architecture("pmsan_classifier", params_from=PMSANClassifier)
def build_pmsan_classifier(*, input_channels: int, num_classes: int, patch_size: Sequence[int],
                           strides: Sequence[Sequence[int]], deep_supervision: bool, phi: float,
                           base_widths: Sequence[int], base_depths: Sequence[int], base_attention_dim: int,
                           base_head_hidden: int, attention_head_dim: int = 32, **params) -> PMSANClassifier:
    """PMSAN classifier at compound coefficient ``phi``; ``patch_size``, ``strides`` and
    ``deep_supervision`` (nnU-Net's plan) are not used: the classifier sees whole images."""
    if len(base_widths) != len(base_depths):
        raise ValueError(f"base_widths {list(base_widths)} and base_depths {list(base_depths)} need one entry per level")
    return PMSANClassifier(
        input_channels, num_classes, [scaled_width(w, phi) for w in base_widths],
        [scaled_depth(d, phi) for d in base_depths],
        attention_dim=scaled_width(base_attention_dim, phi, multiple=attention_head_dim),
        attention_head_dim=attention_head_dim, head_hidden=scaled_width(base_head_hidden, phi), **params)
