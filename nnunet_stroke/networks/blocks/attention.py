"""Attention gates of LBMNet's blocks.

- :class:`ChannelAttention` with ``pools=("avg",)`` is squeeze-and-excitation (Hu et al. 2018), the
  ``f_SE-Attn`` of the ASC block (LBMNet eq. 4); with ``pools=("avg", "max")`` it is CBAM's channel
  attention (Woo et al. 2018), the ``CA`` of BAGF on the decoder features (LBMNet eq. 9).
- :class:`SpatialAttention` is CBAM's spatial attention, the ``SA`` of BAGF on the encoder features
  (LBMNet eq. 9): a k^dim convolution over the channel-wise mean and max maps.

Both return the input re-weighted by a sigmoid gate, ``x * sigmoid(...)``. The paper names SE, SA and CA
only; reading them as these modules is ours (docs/lbmnet.md, deviations table).
"""
from __future__ import annotations

import torch
from torch import nn

from nnunet_stroke.networks.blocks import nd

POOLS = ("avg", "max")


class ChannelAttention(nn.Module):
    """x * sigmoid(sum_p MLP(pool_p(x))): (B, C, *spatial) -> same shape; the MLP is C -> C/r -> C."""

    def __init__(self, channels: int, dim: int, reduction: int = 4, pools: tuple[str, ...] = ("avg", "max")):
        super().__init__()
        if not pools or any(p not in POOLS for p in pools):
            raise ValueError(f"ChannelAttention: pools must be a non-empty subset of {POOLS}, got {pools!r}")
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))
        self.pools = tuple(pools)
        self.axes = nd.spatial_dims(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = {"avg": lambda: x.mean(self.axes), "max": lambda: x.amax(self.axes)}
        logits = sum(self.mlp(pooled[p]()) for p in self.pools)
        return x * torch.sigmoid(logits).reshape(*logits.shape, *([1] * len(self.axes)))


class SpatialAttention(nn.Module):
    """x * sigmoid(Conv_k([mean_c(x), max_c(x)])): (B, C, *spatial) -> same shape."""

    def __init__(self, dim: int, kernel_size: int = 7):
        super().__init__()
        self.conv = nd.conv(dim)(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.conv(nd.same_layout(maps, x)))
