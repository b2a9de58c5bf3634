"""Multi-scale feature-extraction block of PMSAN (Nalla & Deepak, "Progressive Multi-Scale Attention
Networks", section "Multi-Scale Feature Extraction").

Parallel convolutional paths run at several resolutions of the same feature map (full, 1/2, 1/4, ...):
path ``k`` average-pools the input by ``2**k``, applies a 3x3 conv-norm-nonlinearity and is upsampled
back (bilinear). The paths are concatenated and merged by a 1x1 convolution, added to the input
(residual). Fine paths keep small-infarct detail, coarse paths see lobe-sized context.

Input and output: ``(N, channels, H, W)``; 2D, applied to every slice of a volume with shared weights.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_stroke.networks.blocks import nd


def instance_norm(channels: int) -> nn.GroupNorm:
    """Instance normalisation with affine parameters, as nnU-Net uses, written as GroupNorm with one group
    per channel (the same function; PyTorch's CPU kernel for it is several times faster than
    InstanceNorm2d's on many small per-slice maps, and it accepts 1x1 maps)."""
    return nn.GroupNorm(channels, channels, eps=1e-5, affine=True)


def conv_norm_act(in_channels: int, out_channels: int, kernel_size: int = 3, stride=1) -> nn.Sequential:
    """3x3 (or 1x1) convolution, instance norm, leaky ReLU: nnU-Net's basic unit, in 2D."""
    return nn.Sequential(
        nd.conv(2)(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        instance_norm(out_channels),
        nn.LeakyReLU(0.01, inplace=True),
    )


def pooled_size(height: int, width: int, factor: int) -> tuple[int, int]:
    """Map size after average pooling by ``factor``; at least 2x2 (a 1x1 map has nothing to normalise)."""
    return (min(height, max(2, math.ceil(height / factor))), min(width, max(2, math.ceil(width / factor))))


class MultiScaleBlock(nn.Module):
    """``num_paths`` parallel 3x3 paths at resolutions 1, 1/2, ..., 1/2**(num_paths-1), merged and residual."""

    def __init__(self, channels: int, num_paths: int = 3, path_channels: int | None = None):
        super().__init__()
        path_channels = path_channels or max(channels // 2, 1)
        self.paths = nn.ModuleList(conv_norm_act(channels, path_channels) for _ in range(num_paths))
        self.merge = nn.Sequential(
            nd.conv(2)(num_paths * path_channels, channels, 1, bias=False),
            instance_norm(channels),
        )
        self.nonlin = nn.LeakyReLU(0.01, inplace=True)

    def chunked_parameters(self) -> dict[str, tuple[int, int]]:
        """The merge convolution reads the concatenated paths: one chunk of its input axis per path."""
        return {"merge.0.weight": (1, len(self.paths))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        outputs = []
        for level, path in enumerate(self.paths):
            size = pooled_size(height, width, 2**level)
            if size == (height, width):
                outputs.append(path(x))
            else:
                coarse = path(F.adaptive_avg_pool2d(x, size))
                outputs.append(F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False))
        return self.nonlin(x + self.merge(torch.cat(outputs, dim=1)))
