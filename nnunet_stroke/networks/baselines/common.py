"""Building blocks shared by the baselines.

- ``BasicResBlock`` and ``UpsampleLayer``: the residual block (conv-norm-act-conv-norm + 1x1 projection
  shortcut, then act) and the nearest-neighbour upsampling + 1x1 conv of STU-Net (Huang et al. 2023,
  ``STUNet.py``) and U-Mamba (Ma et al. 2024, ``UMambaBot_3d.py``), which define them identically.
- ``PadToMultiple``: runs a network whose input must be divisible by a fixed factor (UNETR: 16,
  SwinUNETR: 32) on any planned patch by zero-padding every spatial axis at its end to the next
  multiple and cropping the logits back. nnU-Net z-scores its inputs, so zero is the mean intensity.
- ``require_no_deep_supervision``: the error raised when a network without deep supervision is asked
  for it (its trainer switches nnU-Net's deep supervision off); ``NoDeepSupervision`` is such a
  network's ``decoder`` attribute, so that ``network.decoder.deep_supervision`` exists (always False).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from dynamic_network_architectures.building_blocks.helper import get_matching_instancenorm
from torch import nn


def require_no_deep_supervision(name: str, deep_supervision: bool) -> None:
    if deep_supervision:
        raise ValueError(f"{name} has no deep supervision; build it with deep_supervision=False "
                         "(its trainer disables nnU-Net's deep supervision)")


class BasicResBlock(nn.Module):
    """conv(k, stride) - IN - LeakyReLU - conv(k) - IN, plus the (1x1, stride) projected input, then LeakyReLU."""

    def __init__(self, conv_op, input_channels: int, output_channels: int, kernel_size=3, stride=1,
                 use_1x1conv: bool = False):
        super().__init__()
        norm_op = get_matching_instancenorm(conv_op)
        padding = [k // 2 for k in kernel_size] if isinstance(kernel_size, (list, tuple)) else kernel_size // 2
        self.conv1 = conv_op(input_channels, output_channels, kernel_size, stride=stride, padding=padding)
        self.norm1 = norm_op(output_channels, eps=1e-5, affine=True)
        self.act1 = nn.LeakyReLU(inplace=True)
        self.conv2 = conv_op(output_channels, output_channels, kernel_size, padding=padding)
        self.norm2 = norm_op(output_channels, eps=1e-5, affine=True)
        self.act2 = nn.LeakyReLU(inplace=True)
        self.conv3 = conv_op(input_channels, output_channels, kernel_size=1, stride=stride) if use_1x1conv else None

    def forward(self, x):
        y = self.act1(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        shortcut = self.conv3(x) if self.conv3 is not None else x
        return self.act2(y + shortcut)


class UpsampleLayer(nn.Module):
    """Nearest-neighbour upsampling by ``scale`` then a 1x1 convolution."""

    def __init__(self, conv_op, input_channels: int, output_channels: int, scale: Sequence[int]):
        super().__init__()
        self.conv = conv_op(input_channels, output_channels, kernel_size=1)
        self.scale = tuple(float(s) for s in scale)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=self.scale, mode="nearest"))


class NoDeepSupervision(nn.Module):
    """``decoder`` attribute of single-output networks: ``network.decoder.deep_supervision`` is False."""

    deep_supervision = False


class PadToMultiple(nn.Module):
    """Zero-pad each spatial axis at its end to a multiple of ``multiple`` (the last axis to at least
    ``min_last_axis``), run ``network``, crop the logits back."""

    def __init__(self, network: nn.Module, multiple: int, min_last_axis: int = 0):
        super().__init__()
        self.network = network
        self.multiple = multiple
        self.min_last_axis = min_last_axis
        self.decoder = NoDeepSupervision()

    @staticmethod
    def padded_size(size: Sequence[int], multiple: int, min_last_axis: int = 0) -> tuple[int, ...]:
        padded = [int(math.ceil(s / multiple) * multiple) for s in size]
        padded[-1] = max(padded[-1], int(math.ceil(min_last_axis / multiple) * multiple))
        return tuple(padded)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        target = self.padded_size(spatial, self.multiple, self.min_last_axis)
        pad = []
        for size, padded in zip(reversed(spatial), reversed(target)):
            pad += [0, padded - size]
        out = self.network(F.pad(x, pad) if any(pad) else x)
        return out[(..., *(slice(0, s) for s in spatial))]

