"""Adaptive Spatial Convolution (ASC), the local stage of LBMNet's BSC-Mamba decoder block
(Kuang et al., Front. Med. 2026, section 3.2.1, Figure 4).

    x_se = SE(Conv_3(x)) * DWConv_3(x)                             eq. 4
    y    = x + BN(DWConv_7(Conv_1(x_se) * phi(Conv_1(x_se))))     eq. 5

Conv_3 is a full 3^3 convolution and DWConv_3 a depthwise one (the text names a single depth-separable
3^3; our reading). SE is squeeze-and-excitation returning its re-weighted input (``ChannelAttention``
with average pooling, reduction 4; ours), so eq. 4 is an element-wise product of two feature maps; phi
is GELU (ours; a GEGLU-style gated unit); the 7^3 convolution is depthwise as the text says. The BN
before the residual sum is ours (eq. 5 has none), mirroring LSC's eq. 3. Costs: docs/lbmnet.md.

Shapes: (B, C, *spatial) -> (B, C, *spatial), 2D or 3D (``dim``).
"""
from __future__ import annotations

import torch
from torch import nn

from nnunet_stroke.networks import inference_fusion
from nnunet_stroke.networks.blocks import nd
from nnunet_stroke.networks.blocks.attention import ChannelAttention
from nnunet_stroke.networks.blocks.conv_blocks import ConvNorm


class ASCBlock(nn.Module):
    """Adaptive Spatial Convolution, eq. 4-5 (see the module docstring).

    Args:
        channels: C, kept from input to output.
        dim: 2 or 3 spatial dimensions.
        norm: ``"batch"`` or ``"instance"``.
        se_reduction: channel reduction of the squeeze-and-excitation.
        large_kernel: size of the depthwise convolution of eq. 5 (7).

    Shapes: ``(B, C, *spatial) -> (B, C, *spatial)``, e.g. ``(2, 32, 8, 16, 16) -> (2, 32, 8, 16, 16)``.
    """

    def __init__(self, channels: int, dim: int, norm: str = "batch", se_reduction: int = 4, large_kernel: int = 7):
        super().__init__()
        conv = nd.conv(dim)
        self.context = conv(channels, channels, 3, padding=1)  # eq. 4, Conv_3
        self.squeeze_excite = ChannelAttention(channels, dim, reduction=se_reduction, pools=("avg",))
        self.depthwise = conv(channels, channels, 3, padding=1, groups=channels)  # eq. 4, DWConv_3
        self.value = conv(channels, channels, 1)  # eq. 5, gated 1^3 pair
        self.gate = conv(channels, channels, 1)
        self.phi = nn.GELU()
        self.large = ConvNorm(
            conv(channels, channels, large_kernel, padding=large_kernel // 2, groups=channels, bias=False),
            nd.norm(norm, dim, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if inference_fusion.applies(self):  # the same products and sum, in place (no new full-size tensors)
            x_se = self.squeeze_excite(self.context(x)).mul_(self.depthwise(x))
            return self.large(self.value(x_se).mul_(self.phi(self.gate(x_se)))).add_(x)
        x_se = self.squeeze_excite(self.context(x)) * self.depthwise(x)
        return x + self.large(self.value(x_se) * self.phi(self.gate(x_se)))
