"""Dimension-generic layer choice for the LBMNet blocks: the same block code builds 2D and 3D networks.

As in dynamic-network-architectures, a block receives ``dim`` (2 or 3) and picks its convolution and
normalisation classes here, so no block is written twice.
"""
from __future__ import annotations

import torch
from torch import nn

NORMS = ("batch", "instance")


def conv(dim: int) -> type[nn.Module]:
    return {2: nn.Conv2d, 3: nn.Conv3d}[dim]


def conv_transpose(dim: int) -> type[nn.Module]:
    return {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[dim]


def norm(kind: str, dim: int, channels: int) -> nn.Module:
    """``batch``: BatchNorm (LBMNet eq. 3); ``instance``: affine InstanceNorm (nnU-Net's default)."""
    if kind == "batch":
        return {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dim](channels)
    if kind == "instance":
        return {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[dim](channels, affine=True)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


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
    channels_last = channels_last_format(reference.dim() - 2)
    if reference.is_contiguous(memory_format=channels_last) and not reference.is_contiguous():
        return tensor.contiguous(memory_format=channels_last)
    return tensor


def spatial_dims(dim: int) -> tuple[int, ...]:
    """Axes of the spatial dimensions of a (batch, channels, *spatial) tensor."""
    return tuple(range(2, 2 + dim))
