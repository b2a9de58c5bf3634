"""Cross-scale attention of PMSAN (section "Cross-Scale Attention Mechanism"):

    A = softmax(Q K^T / sqrt(d_k)) V

with queries from one scale (the deepest feature map) and keys and values from the feature maps of all
scales, each projected into a shared ``dim``-dimensional space by its own 1x1 convolution (plus a learned
scale embedding on the keys, so a token knows which scale it came from). Multi-head; ``d_k`` is the
head dimension.

Affordable on large maps: every scale is average-pooled onto the query grid, and the query grid is
itself pooled to at most ``max_grid`` x ``max_grid`` tokens. With ``T = gh * gw <= max_grid**2`` query
tokens and ``S`` scales there are ``S * T`` keys, so the attention costs ``2 * S * T**2 * dim`` multiply-adds
per slice (S=6, T=64, dim=256: 12.6 M MACs), independent of the input size; pooling and the 1x1
projections are linear in the number of voxels. The output is upsampled back to the query map and added
(residual).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_stroke.networks.blocks.multiscale import instance_norm


class CrossScaleAttention(nn.Module):
    """Queries from ``query_map`` (N, query_channels, H, W), keys/values from ``scale_maps`` (one per scale)."""

    def __init__(self, query_channels: int, scale_channels: Sequence[int], dim: int, head_dim: int = 32,
                 max_grid: int = 8):
        super().__init__()
        if dim % head_dim:
            raise ValueError(f"attention dim {dim} is not a multiple of head_dim {head_dim}")
        self.num_heads = dim // head_dim
        self.max_grid = max_grid
        self.query = nn.Conv2d(query_channels, dim, 1)
        self.keys = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in scale_channels)
        self.values = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in scale_channels)
        self.scale_embedding = nn.Parameter(torch.zeros(len(scale_channels), dim))
        self.out = nn.Sequential(nn.Conv2d(dim, query_channels, 1, bias=False),
                                 instance_norm(query_channels))

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(N, dim, gh, gw) -> (N, heads, gh*gw, head_dim)."""
        n, dim = x.shape[:2]
        return x.reshape(n, self.num_heads, dim // self.num_heads, -1).transpose(2, 3)

    def forward(self, query_map: torch.Tensor, scale_maps: Sequence[torch.Tensor]) -> torch.Tensor:
        height, width = query_map.shape[-2:]
        grid = (min(height, self.max_grid), min(width, self.max_grid))
        query = self._tokens(self.query(F.adaptive_avg_pool2d(query_map, grid)))
        keys, values = [], []
        for scale, (x, key, value) in enumerate(zip(scale_maps, self.keys, self.values)):
            pooled = F.adaptive_avg_pool2d(x, grid)
            keys.append(self._tokens(key(pooled) + self.scale_embedding[scale][:, None, None]))
            values.append(self._tokens(value(pooled)))
        attended = F.scaled_dot_product_attention(query, torch.cat(keys, 2), torch.cat(values, 2))
        attended = attended.transpose(2, 3).reshape(query_map.shape[0], -1, *grid)
        update = self.out(attended)
        if grid != (height, width):
            update = F.interpolate(update, size=(height, width), mode="bilinear", align_corners=False)
        return query_map + update
