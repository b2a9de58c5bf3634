"""PMSAN: Progressive Multi-Scale Attention Network (Nalla & Deepak) as an nnU-Net segmentation network
that also answers "does this scan show an acute stroke?".

Architecture (paper section "Proposed Model"; blocks in ``networks/blocks``):

- ``encoder`` (:class:`PMSANEncoder`): a 2D stem and one stage per planned resolution level; a stage is a
  strided 3x3 convolution (the in-plane part of nnU-Net's stride) and ``depth`` multi-scale blocks
  (:mod:`~nnunet_stroke.networks.blocks.multiscale`). In a 3D configuration every slice goes through the
  same 2D weights and a bidirectional ConvGRU across slices follows the stage at the ``recurrent_levels``
  coarsest levels (:mod:`~nnunet_stroke.networks.blocks.slice_recurrence`), on slabs of as many slices
  as the plan's cumulative slice stride at that level (one slice per step for (1, 2, 2) plans). Cross-scale attention
  (:mod:`~nnunet_stroke.networks.blocks.cross_scale_attention`) ends the encoder: queries from the deepest
  map, keys and values from every level.
- ``detection_head``: global average pooling + fully connected layers on the deepest features -> one
  stroke logit per input, kept in ``network.last_detection_logit`` after every forward pass (the
  forward pass itself returns segmentation logits only, as nnU-Net's trainer and predictor expect).
- ``decoder``: U-shaped 2D decoder with deep supervision in nnU-Net's order
  (:mod:`~nnunet_stroke.networks.blocks.unet_decoder`).

The paper's classifier is ``encoder`` + ``detection_head``; its sizes (compound scaling,
:mod:`~nnunet_stroke.networks.pmsan_scaling`) refer to those two; the decoder is counted separately.

Input ``(B, C, D, H, W)`` (3D) or ``(B, C, H, W)`` (2D); output logits of the same spatial size, or with
deep supervision ``len(strides) - 1`` logits at ``patch / cumprod(strides)[i]``, highest resolution first.

Slice-axis strides: the encoder never pools across slices (it is slice-wise). A planned stride with a
slice component > 1 is applied in-plane only; the slice axis of each deep-supervision output is then
average-pooled by the cumulative slice stride of its level, so the outputs have exactly the resolution
nnU-Net's targets are downsampled to. The patch's slice count must be divisible by it (nnU-Net's plans are).
"""
from __future__ import annotations

import math
from functools import partial
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_stroke.networks.blocks.conventions import init_he
from nnunet_stroke.networks.blocks.cross_scale_attention import CrossScaleAttention
from nnunet_stroke.networks.blocks.detection_head import DetectionHead
from nnunet_stroke.networks.blocks.multiscale import MultiScaleBlock, conv_norm_act
from nnunet_stroke.networks.blocks.slice_recurrence import SliceRecurrence
from nnunet_stroke.networks.blocks.unet_decoder import UNetDecoder2d
from nnunet_stroke.networks.pmsan_scaling import scaled_depth, scaled_width
from nnunet_stroke.networks.registry import register_architecture


def per_level(values: Sequence[int], num_levels: int) -> list[int]:
    """Per-level list from a preset list: truncated, or extended by repeating its last entry."""
    values = list(values)
    return (values + values[-1:] * num_levels)[:num_levels]


class PMSANStage(nn.Module):
    """One encoder level: strided conv-norm-act, ``depth`` multi-scale blocks, optional slice recurrence.

    Args:
        in_channels, channels: channels in and out.
        stride: the in-plane stride of the level.
        depth: number of multi-scale blocks.
        num_paths: resolutions per multi-scale block.
        recurrent_hidden: hidden channels of the ConvGRU across slices, None for none.
        slice_pool: slices per recurrent step (the level's cumulative slice stride).

    Shapes: ``forward(x, num_slices)``: ``(B * S, C_in, H, W) -> (B * S, C, H / s, W / s)``.
    """

    def __init__(self, in_channels: int, channels: int, stride: Sequence[int], depth: int, num_paths: int,
                 recurrent_hidden: int | None, slice_pool: int = 1):
        super().__init__()
        self.downsample = conv_norm_act(in_channels, channels, 3, stride=tuple(stride))
        self.blocks = nn.Sequential(*(MultiScaleBlock(channels, num_paths) for _ in range(depth)))
        self.recurrence = (SliceRecurrence(channels, recurrent_hidden, slice_pool=slice_pool)
                           if recurrent_hidden else None)

    def forward(self, x: torch.Tensor, num_slices: int | None) -> torch.Tensor:
        x = self.blocks(self.downsample(x))
        if self.recurrence is not None and num_slices is not None:
            x = self.recurrence(x, num_slices)
        return x


class PMSANEncoder(nn.Module):
    """Slice-wise multi-scale encoder with inter-slice recurrence and cross-scale attention."""

    def __init__(self, input_channels: int, widths: Sequence[int], depths: Sequence[int],
                 strides_2d: Sequence[Sequence[int]], num_paths: int, recurrent_levels: int,
                 recurrent_reduction: int, attention_dim: int, attention_head_dim: int, attention_grid: int,
                 slice_pooling: Sequence[int] | None):
        """``slice_pooling``: the planned cumulative slice stride per level (3D), None for a 2D network."""
        super().__init__()
        self.widths = list(widths)
        self.stem = conv_norm_act(input_channels, widths[0])
        first_recurrent = len(widths) - recurrent_levels if slice_pooling else len(widths)
        self.stages = nn.ModuleList(
            PMSANStage(widths[max(level - 1, 0)], widths[level], strides_2d[level], depths[level], num_paths,
                       widths[level] // recurrent_reduction if level >= first_recurrent else None,
                       slice_pooling[level] if slice_pooling else 1)
            for level in range(len(widths)))
        self.attention = CrossScaleAttention(widths[-1], widths, attention_dim, attention_head_dim, attention_grid)

    def forward(self, slices: torch.Tensor, num_slices: int | None = None) -> list[torch.Tensor]:
        """``slices`` (N, C, H, W) -> per-level features, the deepest after cross-scale attention."""
        x = self.stem(slices)
        skips = []
        for stage in self.stages:
            x = stage(x, num_slices)
            skips.append(x)
        skips[-1] = self.attention(skips[-1], skips)
        return skips


class PMSAN(nn.Module):
    """PMSAN segmentation network with a detection head (module docstring).

    Args:
        input_channels, num_classes: image channels and segmentation classes.
        patch_size, strides: nnU-Net's planned patch and pooling (2D or 3D).
        deep_supervision: nnU-Net's switch (``decoder.deep_supervision``).
        widths, depths: channels and multi-scale blocks of every level.
        num_paths: resolutions per multi-scale block.
        recurrent_levels, recurrent_reduction: coarsest levels with slice recurrence, its channel reduction.
        attention_dim, attention_head_dim, attention_grid: cross-scale attention sizes.
        detection_hidden: hidden width of the detection head.
        decoder_convs_per_stage: conv units per decoder stage.

    Shapes: ``(B, C, D, H, W)`` or ``(B, C, H, W)`` -> logits of the same spatial size (a list with deep
    supervision); the detection logit ``(B,)`` is kept in ``last_detection_logit``.
    """

    def __init__(self, input_channels: int, num_classes: int, patch_size: Sequence[int],
                 strides: Sequence[Sequence[int]], deep_supervision: bool, widths: Sequence[int],
                 depths: Sequence[int], num_paths: int = 3, recurrent_levels: int = 2, recurrent_reduction: int = 4,
                 attention_dim: int = 128, attention_head_dim: int = 32, attention_grid: int = 8,
                 detection_hidden: int = 256, decoder_convs_per_stage: int = 2):
        super().__init__()
        if len(patch_size) not in (2, 3) or any(len(s) != len(patch_size) for s in strides):
            raise ValueError(f"PMSAN needs a 2D or 3D patch and strides of the same dimension, got patch "
                             f"{tuple(patch_size)} and strides {list(strides)}")
        self.volumetric = len(patch_size) == 3
        strides_2d = [tuple(s[-2:]) for s in strides]
        # cumulative slice-axis stride of every deep-supervision output (see module docstring)
        self.slice_pooling = [math.prod(s[0] for s in strides[: level + 1]) if self.volumetric else 1
                              for level in range(len(strides))]
        if self.volumetric and patch_size[0] % self.slice_pooling[-1]:
            raise ValueError(f"patch {tuple(patch_size)}: slice count not divisible by the cumulative slice "
                             f"stride {self.slice_pooling[-1]} of strides {list(strides)}")
        self.encoder = PMSANEncoder(input_channels, widths, depths, strides_2d, num_paths, recurrent_levels,
                                    recurrent_reduction, attention_dim, attention_head_dim, attention_grid,
                                    self.slice_pooling if self.volumetric else None)
        self.detection_head = DetectionHead(widths[-1], detection_hidden)
        self.decoder = UNetDecoder2d(widths, strides_2d, num_classes, deep_supervision, decoder_convs_per_stage)
        self.last_detection_logit: torch.Tensor | None = None
        self.apply(partial(init_he, linear=True))  # He as in nnU-Net, linear layers too

    def _to_volume(self, logits: torch.Tensor, batch: int, level: int) -> torch.Tensor:
        """(batch * slices, K, h, w) -> (batch, K, slices / slice_pooling[level], h, w)."""
        volume = logits.reshape(batch, -1, *logits.shape[1:]).transpose(1, 2)
        pool = self.slice_pooling[level]
        return F.avg_pool3d(volume, (pool, 1, 1)) if pool > 1 else volume

    def forward(self, x: torch.Tensor):
        batch = x.shape[0]
        num_slices = x.shape[2] if self.volumetric else None
        slices = x.transpose(1, 2).flatten(0, 1) if self.volumetric else x
        skips = self.encoder(slices, num_slices)
        self.last_detection_logit = self.detection_head(skips[-1], num_slices or 1)
        segmentation = self.decoder(skips)
        if not self.volumetric:
            return segmentation
        if isinstance(segmentation, list):
            return [self._to_volume(s, batch, level) for level, s in enumerate(segmentation)]
        return self._to_volume(segmentation, batch, 0)


@register_architecture("pmsan", params_from=PMSAN)
def build_pmsan(*, input_channels: int, num_classes: int, patch_size: Sequence[int],
                strides: Sequence[Sequence[int]], deep_supervision: bool, phi: float,
                base_widths: Sequence[int], base_depths: Sequence[int], base_attention_dim: int,
                base_detection_hidden: int, attention_head_dim: int = 32, **params) -> PMSAN:
    """PMSAN at compound coefficient ``phi`` (widths and depths scaled from the phi = 1 bases)."""
    num_levels = len(strides)
    widths = [scaled_width(w, phi) for w in per_level(base_widths, num_levels)]
    depths = [scaled_depth(d, phi) for d in per_level(base_depths, num_levels)]
    attention_dim = scaled_width(base_attention_dim, phi, multiple=attention_head_dim)
    return PMSAN(input_channels, num_classes, patch_size, strides, deep_supervision, widths, depths,
                 attention_dim=attention_dim, attention_head_dim=attention_head_dim,
                 detection_hidden=scaled_width(base_detection_hidden, phi), **params)
