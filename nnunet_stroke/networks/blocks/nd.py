"""Dimension-generic layer choice: the one place where a network's convolution, transposed convolution,
normalisation and pooling classes are picked from ``dim`` (2 or 3), so 2D and 3D share every block.

The classes come from dynamic-network-architectures' ``building_blocks/helper.py`` (nnU-Net's own
mapping); this module adds the norm-by-name rule and channels-last helpers.
"""
from __future__ import annotations

from typing import Sequence

import torch
from dynamic_network_architectures.building_blocks.helper import (convert_dim_to_conv_op, get_matching_batchnorm,
                                                                  get_matching_convtransp, get_matching_instancenorm,
                                                                  get_matching_pool_op)
from torch import nn

from nnunet_stroke.networks.blocks.depthwise import Conv3d
from nnunet_stroke.networks.inference_fusion import memory_layout

NORMS = ("batch", "instance")


def dim_of(patch_size: Sequence[int]) -> int:
    """Number of spatial axes of a planned patch (or stride); 2 or 3, else a ValueError."""
    if len(patch_size) not in (2, 3):
        raise ValueError(f"patch_size must have 2 or 3 axes, got {tuple(patch_size)}")
    return len(patch_size)


def conv(dim: int) -> type[nn.Module]:
    """``nn.Conv2d`` or ``blocks.depthwise.Conv3d`` (an ``nn.Conv3d`` with a cheaper CPU backward for
    depthwise convolutions, same computation and state_dict)."""
    return Conv3d if dim == 3 else convert_dim_to_conv_op(dim)


def conv_transpose(dim: int) -> type[nn.Module]:
    """``nn.ConvTranspose2d`` or ``nn.ConvTranspose3d``."""
    return get_matching_convtransp(dimension=dim)


def max_pool(dim: int) -> type[nn.Module]:
    """``nn.MaxPool2d`` or ``nn.MaxPool3d``."""
    return get_matching_pool_op(dimension=dim, pool_type="max")


def norm_class(kind: str, dim: int) -> type[nn.Module]:
    """``batch``: BatchNorm (LBMNet eq. 3); ``instance``: InstanceNorm (nnU-Net's default)."""
    if kind == "batch":
        return get_matching_batchnorm(dimension=dim)
    if kind == "instance":
        return get_matching_instancenorm(dimension=dim)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def norm(kind: str, dim: int, channels: int) -> nn.Module:
    """A normalisation layer over ``channels``: BatchNorm, or InstanceNorm with affine parameters."""
    return norm_class(kind, dim)(channels, **({"affine": True} if kind == "instance" else {}))


def channels_last_format(dim: int) -> torch.memory_format:
    return {2: torch.channels_last, 3: torch.channels_last_3d}[dim]


def channels_last_weights(network: nn.Module) -> nn.Module:
    """Store every 2D/3D convolution weight channels-last, in place; returns ``network``.

    PyTorch's CPU (oneDNN) convolutions run channels-last end to end once their weight is, which trains
    nnU-Net's tiny planned U-Net 1.48x faster per step here (benchmarks/RESULTS.md, "Channels-last
    convolution weights on the CPU").
    Values are unchanged, and state_dicts load into either layout.
    """
    with torch.no_grad():
        for parameter in network.parameters():
            if parameter.dim() in (4, 5):
                parameter.data = parameter.data.contiguous(memory_format=channels_last_format(parameter.dim() - 2))
    return network


def same_layout(tensor: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``tensor`` in ``reference``'s memory layout: channel reductions of a channels-last map come out
    channels-first, and a convolution on them then takes PyTorch's slow CPU path (3-4x here)."""
    layout = memory_layout(reference)
    return tensor if layout is torch.contiguous_format else tensor.contiguous(memory_format=layout)


def spatial_dims(dim: int) -> tuple[int, ...]:
    """Axes of the spatial dimensions of a (batch, channels, *spatial) tensor."""
    return tuple(range(2, 2 + dim))
