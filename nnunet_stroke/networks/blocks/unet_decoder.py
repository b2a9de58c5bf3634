"""U-shaped decoder with deep supervision in nnU-Net's order (as in dynamic-network-architectures'
``UNetDecoder``), in 2D for PMSAN's slice-wise model.

Stage ``i`` upsamples the coarser map with a transposed convolution (kernel = stride = the encoder's
stride of that level), concatenates the encoder skip, and applies ``convs_per_stage`` 3x3
conv-norm-nonlinearity units. With ``deep_supervision`` (nnU-Net's switch, settable) every stage emits
1x1-conv logits and the list is returned highest resolution first (``len(strides) - 1`` entries);
otherwise only the full-resolution logits.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from nnunet_stroke.networks.blocks.deep_supervision import DeepSupervisionDecoder
from nnunet_stroke.networks.blocks.multiscale import conv_norm_act


class UNetDecoder2d(DeepSupervisionDecoder):
    """2D U-shaped decoder with deep supervision (module docstring).

    Args:
        encoder_channels: channels of the encoder's levels, finest first.
        strides: the encoder's stride of every level (the first is the stem's and is not used).
        num_classes: logits per pixel.
        deep_supervision: nnU-Net's switch.
        convs_per_stage: conv-norm-nonlinearity units per stage.

    Shapes: features ``[(N, C_0, H_0, W_0), ..., (N, C_L, H_L, W_L)]`` -> ``(N, classes, H_0, W_0)``, or
    with deep supervision ``L`` logits, highest resolution first.
    """

    def __init__(self, encoder_channels: Sequence[int], strides: Sequence[Sequence[int]], num_classes: int,
                 deep_supervision: bool, convs_per_stage: int = 2):
        super().__init__(deep_supervision)
        self.upsamplers, self.stages, self.segmentation_heads = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for level in range(len(encoder_channels) - 2, -1, -1):
            below, here = encoder_channels[level + 1], encoder_channels[level]
            stride = tuple(strides[level + 1])
            self.upsamplers.append(nn.ConvTranspose2d(below, here, stride, stride=stride, bias=False))
            units = [conv_norm_act(2 * here, here)] + [conv_norm_act(here, here) for _ in range(convs_per_stage - 1)]
            self.stages.append(nn.Sequential(*units))
            self.segmentation_heads.append(nn.Conv2d(here, num_classes, 1))

    def chunked_parameters(self) -> dict[str, tuple[int, int]]:
        """The first convolution of each stage reads [upsampled | skip]: two chunks of its input axis."""
        return {f"stages.{i}.0.0.weight": (1, 2) for i in range(len(self.stages))}

    def decode_stage(self, index: int, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.stages[index](torch.cat([self.upsamplers[index](coarse), skip], dim=1))

    def segmentation_head(self, index: int) -> nn.Module:
        return self.segmentation_heads[index]
