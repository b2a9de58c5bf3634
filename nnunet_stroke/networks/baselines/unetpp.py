"""UNet++ (Zhou et al., "UNet++: A Nested U-Net Architecture for Medical Image Segmentation", DLMIA
2018, and "UNet++: Redesigning Skip Connections...", IEEE TMI 2020; LBMNet reference 30), 2D or 3D.

Nodes X^{i,j} (level i, column j): X^{i,0} is the encoder (max pooling by the planned stride, then a
block of two 3x3(x3) conv-norm-LeakyReLU); X^{i,j} = block(concat(X^{i,0}, ..., X^{i,j-1},
Up(X^{i+1,j-1}))), Up a transposed convolution (kernel = stride = the planned stride) to the width
of level i. One level per planned stage, widths ``min(base * 2**i, max)`` (nnU-Net's rule).
With the original 2D setting (widths 32-512, no normalisation, 1 input channel, 1 class) this gives
9.04 M parameters, UNet++'s published figure.

Output: a 1x1 head on X^{0,L-1}. Deep supervision follows nnU-Net's contract rather than UNet++'s
full-resolution heads: the i-th output is a 1x1 head on X^{i,L-1-i}, the last node of level i, at
resolution patch / cumprod(strides)[i], highest resolution first (``len(strides) - 1`` outputs).
Input (B, C_in, *patch) -> logits (B, classes, *patch).
"""
from __future__ import annotations

from typing import Sequence

import torch
from dynamic_network_architectures.building_blocks.simple_conv_blocks import StackedConvBlocks
from torch import nn

from nnunet_stroke.networks.blocks import nd
from nnunet_stroke.networks.blocks.conventions import init_he, stage_features
from nnunet_stroke.networks.registry import register_architecture


class UNetPlusPlus(nn.Module):
    """UNet++ with nested dense skip pathways on the planned pooling (module docstring).

    Args:
        input_channels, num_classes: image channels and classes.
        strides: nnU-Net's planned strides (2D or 3D).
        features: channels per level.
        norm: ``"instance"``, ``"batch"`` or None.
        deep_supervision: heads on the last node of every level.

    Shapes: ``(B, C_in, *patch) -> (B, classes, *patch)``, or ``len(strides) - 1`` logits with deep
    supervision, highest resolution first.
    """

    def __init__(self, input_channels, num_classes, strides, features, norm="instance", deep_supervision=False):
        super().__init__()
        n_dims = nd.dim_of(strides[0])
        conv_op = nd.conv(n_dims)
        if norm is not None and norm not in nd.NORMS:
            raise ValueError(f"UNet++ norm must be 'instance', 'batch' or null, got {norm!r}")
        norm_op = nd.norm_class(norm, n_dims) if norm else None
        pool_op, transpose_op = nd.max_pool(n_dims), nd.conv_transpose(n_dims)
        levels = len(features)

        def block(in_channels, out_channels):
            return StackedConvBlocks(2, conv_op, in_channels, out_channels, 3, 1, conv_bias=True, norm_op=norm_op,
                                     norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=nn.LeakyReLU,
                                     nonlin_kwargs={"inplace": True})

        self.pools = nn.ModuleList(pool_op(tuple(s), tuple(s)) for s in strides[1:])
        # nodes[i][j] is X^{i,j}; ups[i][j] lifts X^{i+1,j} to level i
        self.nodes = nn.ModuleList(
            nn.ModuleList(block(input_channels if i == 0 else features[i - 1], features[i]) if j == 0
                          else block((j + 1) * features[i], features[i]) for j in range(levels - i))
            for i in range(levels))
        self.ups = nn.ModuleList(
            nn.ModuleList(transpose_op(features[i + 1], features[i], tuple(strides[i + 1]), tuple(strides[i + 1]))
                          for _ in range(levels - 1 - i))
            for i in range(levels - 1))
        self.decoder = _Heads(conv_op, features[:-1], num_classes, deep_supervision)
        self.apply(init_he)

    def forward(self, x):
        levels = len(self.nodes)
        grid = [[] for _ in range(levels)]
        for i in range(levels):
            x = self.nodes[i][0](x if i == 0 else self.pools[i - 1](x))
            grid[i].append(x)
        for j in range(1, levels):
            for i in range(levels - j):
                up = self.ups[i][j - 1](grid[i + 1][j - 1])
                grid[i].append(self.nodes[i][j](torch.cat([*grid[i], up], dim=1)))
        return self.decoder([grid[i][levels - 1 - i] for i in range(levels - 1)])


class _Heads(nn.Module):
    """1x1 segmentation heads on the last node of every level; holds nnU-Net's deep-supervision switch."""

    def __init__(self, conv_op, features, num_classes, deep_supervision):
        super().__init__()
        self.deep_supervision = deep_supervision
        self.heads = nn.ModuleList(conv_op(f, num_classes, 1) for f in features)

    def forward(self, last_nodes):
        if self.deep_supervision:
            return [head(node) for head, node in zip(self.heads, last_nodes)]
        return self.heads[0](last_nodes[0])


@register_architecture("unetpp")
def build_unetpp(*, input_channels: int, num_classes: int, patch_size: Sequence[int],
                 strides: Sequence[Sequence[int]], deep_supervision: bool, base_features: int,
                 max_features: int, norm: str | None = "instance") -> UNetPlusPlus:
    nd.dim_of(patch_size)
    if len(strides) < 2:
        raise ValueError(f"UNet++ needs at least one downsampling; the plans have strides {strides}")
    features = stage_features(len(strides), base_features, max_features)
    return UNetPlusPlus(input_channels, num_classes, strides, features, norm, deep_supervision)
