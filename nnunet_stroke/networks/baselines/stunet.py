"""STU-Net (Huang et al., "STU-Net: Scalable and Transferable Medical Image Segmentation Models
Empowered by Large-Scale Supervised Pre-training", arXiv 2304.06716; reference code
``uni-medical/STU-Net`` ``nnunet/network_architecture/STUNet.py``).

Six resolution stages of ``BasicResBlock``s (3x3x3 kernels everywhere), the first block of every
stage a strided residual block with a 1x1 projection shortcut; decoder: nearest upsampling + 1x1
conv, concatenation with the skip, residual blocks; one 1x1 segmentation head per decoder stage.
Scales (``dims``, ``depth`` per stage): S = 16..256, depth 1 (14.6 M parameters); B = 32..512, depth 1
(58.3 M); L = 64..1024, depth 2; H = 96..1536, depth 3.

Adaptation to nnU-Net's plans, as STU-Net's own trainer does: the planned pooling is truncated to
five downsamplings or padded with stride-1 stages to five. Deep supervision returns the first
``len(strides) - 1`` decoder outputs, highest resolution first (with padded stages the extra
outputs at the lowest resolution are not returned). Input (B, C_in, *patch) -> logits (B, classes, *patch).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from nnunet_stroke.networks.baselines.common import BasicResBlock, UpsampleLayer
from nnunet_stroke.networks.blocks import nd
from nnunet_stroke.networks.blocks.conventions import init_he
from nnunet_stroke.networks.registry import register_architecture

STUNET_POOLINGS = 5  # STU-Net always has six stages


def stunet_poolings(strides: Sequence[Sequence[int]], n_dims: int) -> list[tuple[int, ...]]:
    """The planned downsamplings (strides[1:]) truncated or padded with ones to five, as STUNetTrainer."""
    poolings = [tuple(s) for s in strides[1:]][:STUNET_POOLINGS]
    return poolings + [(1,) * n_dims] * (STUNET_POOLINGS - len(poolings))


class STUNetDecoder(nn.Module):
    """STU-Net's decoder: nearest upsampling + 1x1 conv, concatenation, residual blocks, 1x1 heads.

    Args:
        conv_op: ``nn.Conv2d`` or ``nn.Conv3d``.
        dims, depth: channels and residual blocks per level.
        poolings: the encoder's strides below level 0.
        num_classes: logits per voxel.
        n_outputs: deep-supervision outputs nnU-Net expects.
        deep_supervision: nnU-Net's switch.

    Shapes: ``forward(bottleneck, skips)`` -> ``(B, classes, *patch)``, or ``n_outputs`` logits, highest
    resolution first.
    """

    def __init__(self, conv_op, dims, depth, poolings, num_classes, n_outputs, deep_supervision):
        super().__init__()
        self.deep_supervision = deep_supervision
        self.n_outputs = n_outputs
        self.upsample_layers = nn.ModuleList(
            UpsampleLayer(conv_op, dims[-1 - u], dims[-2 - u], poolings[-1 - u]) for u in range(len(poolings)))
        self.stages = nn.ModuleList(
            nn.Sequential(BasicResBlock(conv_op, 2 * dims[-2 - u], dims[-2 - u], use_1x1conv=True),
                          *[BasicResBlock(conv_op, dims[-2 - u], dims[-2 - u]) for _ in range(depth[-2 - u] - 1)])
            for u in range(len(poolings)))
        self.seg_outputs = nn.ModuleList(conv_op(dims[-2 - u], num_classes, kernel_size=1)
                                         for u in range(len(poolings)))

    def forward(self, x, skips):
        outputs = []
        for u, (upsample, stage, head) in enumerate(zip(self.upsample_layers, self.stages, self.seg_outputs)):
            x = stage(torch.cat((upsample(x), skips[-(u + 1)]), dim=1))
            if self.deep_supervision or u == len(self.stages) - 1:
                outputs.append(head(x))
        if not self.deep_supervision:
            return outputs[-1]
        return outputs[::-1][:self.n_outputs]


class STUNet(nn.Module):
    """STU-Net for planned ``strides``; (B, C_in, *patch) -> logits, or a list with deep supervision."""

    def __init__(self, input_channels: int, num_classes: int, strides, dims: Sequence[int],
                 depth: Sequence[int], deep_supervision: bool = False, n_dims: int = 3):
        super().__init__()
        if len(dims) != STUNET_POOLINGS + 1 or len(depth) != STUNET_POOLINGS + 1:
            raise ValueError(f"STU-Net has six stages: dims and depth need 6 entries, got {dims}, {depth}")
        conv_op = nn.Conv3d if n_dims == 3 else nn.Conv2d
        poolings = stunet_poolings(strides, n_dims)
        n_outputs = len(strides) - 1
        if deep_supervision and n_outputs > STUNET_POOLINGS:
            raise ValueError(f"STU-Net has {STUNET_POOLINGS} decoder outputs but the plans have {len(strides)} "
                             "stages; train it without deep supervision or with plans of at most 6 stages")
        self.encoder = nn.ModuleList()
        self.encoder.append(nn.Sequential(
            BasicResBlock(conv_op, input_channels, dims[0], use_1x1conv=True),
            *[BasicResBlock(conv_op, dims[0], dims[0]) for _ in range(depth[0] - 1)]))
        for d in range(1, STUNET_POOLINGS + 1):
            self.encoder.append(nn.Sequential(
                BasicResBlock(conv_op, dims[d - 1], dims[d], stride=poolings[d - 1], use_1x1conv=True),
                *[BasicResBlock(conv_op, dims[d], dims[d]) for _ in range(depth[d] - 1)]))
        self.decoder = STUNetDecoder(conv_op, dims, depth, poolings, num_classes, n_outputs, deep_supervision)
        self.apply(init_he)

    def forward(self, x):
        skips = []
        for stage in self.encoder[:-1]:
            x = stage(x)
            skips.append(x)
        return self.decoder(self.encoder[-1](x), skips)


@register_architecture("stunet")
def build_stunet(*, input_channels: int, num_classes: int, patch_size: Sequence[int],
                 strides: Sequence[Sequence[int]], deep_supervision: bool, dims: Sequence[int],
                 depth: Sequence[int]) -> STUNet:
    return STUNet(input_channels, num_classes, strides, dims, depth, deep_supervision, n_dims=nd.dim_of(patch_size))
