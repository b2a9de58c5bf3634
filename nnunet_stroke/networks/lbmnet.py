"""LBMNet: multi-scale LSC encoder, BSC-Mamba decoder, BAGF skip fusion (Kuang et al., Front. Med. 2026,
section 3, Figure 2), built for nnU-Net's planned patch and pooling.

Level ``l`` of the plan (``strides[l]`` = nnU-Net's ``pool_op_kernel_sizes[l]``) holds C_l channels at
resolution patch / prod(strides[:l+1]):

- level 0: the stem, a 3^dim conv-norm-act with stride ``strides[0]`` (usually 1);
- level l >= 1: an encoder stage, a conv with kernel = stride = ``strides[l]`` (downsampling, any
  anisotropy) then ``encoder_blocks`` LSC blocks (eq. 1-3, blocks.lsc);
- decoder stage at level l = n-2 ... 0: transposed conv (kernel = stride = ``strides[l+1]``) to C_l,
  BAGF with the level-l encoder features (eq. 9-12, blocks.bagf), ``decoder_blocks`` BSC-Mamba blocks
  (ASC eq. 4-5 + bidirectional SSM eq. 6-8, residual = block input as eq. 8 prints it,
  blocks.bsc_mamba), a 1^dim convolution head.

On an ISLES-like plan with five levels (e.g. patch 80x112x112, strides [1,1,1] + 4 x [2,2,2]) the stem
and the paper's four encoder stages map one-to-one onto the plan's levels; other plans get one
encoder stage per level after the first. Channel widths: C_l = min(base_channels * 2^l, max_channels).
``ssm_stages`` ("all" or k) puts the SSM in every decoder stage or in the k coarsest ones only.

Output (nnU-Net's contract): logits (B, num_classes, *patch / strides[0]); with deep supervision a list
of the n-1 decoder outputs, highest resolution first, the i-th at patch / prod(strides[:i+1]);
switch with ``network.decoder.deep_supervision``. No softmax.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from nnunet_stroke.networks.blocks import nd
from nnunet_stroke.networks.blocks.conventions import stage_features
from nnunet_stroke.networks.blocks.deep_supervision import DeepSupervisionDecoder
from nnunet_stroke.networks.blocks.bagf import BAGF
from nnunet_stroke.networks.blocks.bsc_mamba import BSCMamba
from nnunet_stroke.networks.blocks.conv_blocks import ConvNorm, ConvNormAct, ResidualBlock
from nnunet_stroke.networks.blocks.lsc import LSCBlock
from nnunet_stroke.networks.registry import register_architecture

ENCODER_BLOCKS = ("lsc", "residual", "conv")


def check_plan(patch_size: Sequence[int], strides: Sequence[Sequence[int]]) -> None:
    """Raise ValueError unless every stride has one entry per patch axis and the patch divides evenly."""
    if len(patch_size) not in (2, 3):
        raise ValueError(f"LBMNet works on 2D or 3D patches, got patch_size {tuple(patch_size)}")
    if len(strides) < 2 or any(len(s) != len(patch_size) for s in strides):
        raise ValueError(f"strides must list at least two levels with {len(patch_size)} entries each "
                         f"(nnU-Net's pool_op_kernel_sizes), got {strides}")
    total = [math.prod(s[axis] for s in strides) for axis in range(len(patch_size))]
    if any(p % t for p, t in zip(patch_size, total)):
        raise ValueError(f"patch_size {tuple(patch_size)} is not divisible by the total stride {tuple(total)} of "
                         f"strides {strides}; use the patch of the plans.json these strides come from")


class LBMNetEncoder(nn.Module):
    """(B, in, *patch) -> list of n level features, finest first."""

    def __init__(self, input_channels: int, widths: Sequence[int], strides: Sequence[Sequence[int]], dim: int,
                 norm: str, block: str, blocks_per_stage: int, lsc_kernels: Sequence[int], lsc_refine: bool):
        super().__init__()
        if block not in ENCODER_BLOCKS:
            raise ValueError(f"encoder_block must be one of {ENCODER_BLOCKS}, got {block!r}")

        def make_block(channels: int) -> nn.Module:
            if block == "lsc":
                return LSCBlock(channels, dim, norm, kernels=lsc_kernels, refine=lsc_refine)
            if block == "residual":
                return ResidualBlock(channels, dim, norm)
            return ConvNormAct(channels, channels, dim, norm)

        self.stem = ConvNormAct(input_channels, widths[0], dim, norm, kernel_size=3, stride=strides[0])
        self.stages = nn.ModuleList(
            nn.Sequential(
                ConvNorm(nd.conv(dim)(widths[level - 1], widths[level], strides[level], stride=strides[level],
                                      bias=False), nd.norm(norm, dim, widths[level])),
                *(make_block(widths[level]) for _ in range(blocks_per_stage)))
            for level in range(1, len(widths)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # PyTorch's CPU convolution returns a few-channel input's output channels-first even when both are
        # channels-last, and every later layer would follow it (3-4x slower depthwise convolutions)
        features = [nd.same_layout(self.stem(x), x)]
        for stage in self.stages:
            features.append(stage(features[-1]))
        return features


class LBMNetDecoderStage(nn.Module):
    """Upsample the coarser features, fuse them with the skip (BAGF), refine (BSC-Mamba)."""

    def __init__(self, coarse_channels: int, channels: int, stride: Sequence[int], dim: int, norm: str,
                 blocks: int, ssm: bool, block_kwargs: dict, skip_kwargs: dict):
        super().__init__()
        self.upsample = nd.conv_transpose(dim)(coarse_channels, channels, stride, stride=stride, bias=False)
        self.fusion = BAGF(channels, dim, norm, **skip_kwargs)
        self.blocks = nn.Sequential(*(BSCMamba(channels, dim, norm, ssm=ssm, **block_kwargs) for _ in range(blocks)))

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.fusion(skip, self.upsample(coarse)))


class LBMNetDecoder(DeepSupervisionDecoder):
    """Level features (finest first) -> logits or, with ``deep_supervision``, a list, finest first."""

    def __init__(self, widths: Sequence[int], strides: Sequence[Sequence[int]], num_classes: int, dim: int,
                 norm: str, blocks: int, ssm_levels: Sequence[int], deep_supervision: bool, block_kwargs: dict,
                 skip_kwargs: dict):
        super().__init__(deep_supervision)
        coarse_to_fine = range(len(widths) - 2, -1, -1)
        self.ssm_levels = tuple(sorted(ssm_levels))
        self.stages = nn.ModuleList(
            LBMNetDecoderStage(widths[level + 1], widths[level], strides[level + 1], dim, norm, blocks,
                               level in ssm_levels, block_kwargs, skip_kwargs) for level in coarse_to_fine)
        self.heads = nn.ModuleList(nd.conv(dim)(widths[level], num_classes, 1) for level in coarse_to_fine)

    def decode_stage(self, index: int, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.stages[index](coarse, skip)

    def segmentation_head(self, index: int) -> nn.Module:
        return self.heads[index]


class LBMNet(nn.Module):
    """LBMNet: the encoder's level features, finest first, go through the decoder.

    Args:
        encoder: :class:`LBMNetEncoder`.
        decoder: :class:`LBMNetDecoder` (holds nnU-Net's switch ``decoder.deep_supervision``).

    Shapes: ``(B, C_in, *patch) -> (B, classes, *patch)``, or with deep supervision ``len(strides) - 1``
    logits at ``patch / cumprod(strides)[i]``, highest resolution first.
    """

    def __init__(self, encoder: LBMNetEncoder, decoder: LBMNetDecoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if x.device.type == "cpu":  # PyTorch's CPU conv backward is 10-40x faster channels-last (depthwise 3D most)
            x = x.contiguous(memory_format=nd.channels_last_format(x.dim() - 2))
        return self.decoder(self.encoder(x))


def ssm_decoder_levels(levels: int, ssm_stages: str | int) -> list[int]:
    """Decoder levels (0 = finest) holding the SSM: all n-1, or the ``ssm_stages`` coarsest."""
    decoder_levels = list(range(levels - 1))
    if ssm_stages == "all":
        return decoder_levels
    if not isinstance(ssm_stages, int) or ssm_stages < 0:
        raise ValueError(f"ssm_stages must be 'all' or a non-negative int, got {ssm_stages!r}")
    return decoder_levels[max(len(decoder_levels) - ssm_stages, 0):]


@register_architecture("lbmnet")
def build_lbmnet(*, input_channels: int, num_classes: int, patch_size: Sequence[int],
                 strides: Sequence[Sequence[int]], deep_supervision: bool, base_channels: int = 48,
                 max_channels: int = 768, norm: str = "batch", encoder_block: str = "lsc", encoder_blocks: int = 2,
                 lsc_kernels: Sequence[int] = (5, 7), lsc_refine: bool = True, decoder_blocks: int = 1,
                 decoder_asc: bool = True, decoder_ssm: bool = True, ssm_stages: str | int = "all",
                 ssm_directions: str = "bi", d_state: int = 16, expand: int = 2, d_conv: int = 4,
                 bagf_encoder_residual: bool = True, bagf_encoder_spatial_attention: bool = True,
                 bagf_decoder_channel_attention: bool = True, bagf_gate: bool = True) -> LBMNet:
    """LBMNet for a planned patch and pooling; the defaults are the paper-scale preset ``lbmnet``."""
    check_plan(patch_size, strides)
    dim, levels = len(patch_size), len(strides)
    widths = stage_features(levels, base_channels, max_channels)  # C_l = min(base * 2^l, max)
    encoder = LBMNetEncoder(input_channels, widths, strides, dim, norm, encoder_block, encoder_blocks,
                            tuple(lsc_kernels), lsc_refine)
    decoder = LBMNetDecoder(
        widths, strides, num_classes, dim, norm, decoder_blocks,
        ssm_decoder_levels(levels, ssm_stages) if decoder_ssm else [], deep_supervision,
        block_kwargs={"asc": decoder_asc, "directions": ssm_directions, "d_state": d_state, "expand": expand,
                      "d_conv": d_conv},
        skip_kwargs={"encoder_residual": bagf_encoder_residual,
                     "encoder_spatial_attention": bagf_encoder_spatial_attention,
                     "decoder_channel_attention": bagf_decoder_channel_attention, "gate": bagf_gate})
    return LBMNet(encoder, decoder)
