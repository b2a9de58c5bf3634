"""Large-to-Small Convolution (LSC) block, LBMNet's encoder block (Kuang et al., Front. Med. 2026, section 3.1).

    F = sum_{s in kernels} DWConv_s(Conv_1(x))          eq. 1  (paper: kernels 5^3 and 7^3)
    y = act(BN(Conv_3(F)))                              eq. 2  (the 3^3 "refinement"; refine=False: y = act(BN(F)))
    Y = x + BN(Conv_1(y))                               eq. 3

Eq. 1-3 as printed are linear up to the final BN; the inner BN and the GELU after the spatial mixing
are this implementation's, placed where ConvNeXt/RepLKNet put theirs. ``kernels`` and ``refine`` give
the rows of Table 7: (5,) / (7,) / (9,) without refinement are Models A/B/C ("kernel only"), (5, 7)
without refinement is Model D ("dual-branch, no 3^3"), (5, 7) with refinement is the full LSC.

Shapes: (B, C, *spatial) -> (B, C, *spatial), 2D or 3D (``dim``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnunet_stroke.networks import inference_fusion
from nnunet_stroke.networks.blocks import nd
from nnunet_stroke.networks.blocks.conv_blocks import ConvNorm


class LSCBlock(nn.Module):
    """Large-to-Small Convolution block, eq. 1-3.

    Args:
        channels: C, kept from input to output.
        dim: 2 or 3 spatial dimensions.
        norm: ``"batch"`` or ``"instance"``.
        kernels: odd sizes of the parallel depthwise convolutions of eq. 1 (paper: 5 and 7).
        refine: the 3^dim refinement convolution of eq. 2 (Table 7).

    Shapes: ``(B, C, *spatial) -> (B, C, *spatial)``.
    """

    def __init__(self, channels: int, dim: int, norm: str = "batch", kernels: Sequence[int] = (5, 7), refine: bool = True):
        super().__init__()
        if not kernels or any(k % 2 == 0 or k < 1 for k in kernels):
            raise ValueError(f"LSCBlock: kernels must be odd sizes, got {kernels!r}")
        conv = nd.conv(dim)
        self.project_in = conv(channels, channels, 1)
        self.depthwise = nn.ModuleList(
            conv(channels, channels, k, padding=k // 2, groups=channels) for k in kernels)  # eq. 1
        self.refine = conv(channels, channels, 3, padding=1, bias=False) if refine else nn.Identity()  # eq. 2
        self.refine_norm = nd.norm(norm, dim, channels)
        self.act = nn.GELU()
        self.project_out = ConvNorm(conv(channels, channels, 1, bias=False), nd.norm(norm, dim, channels))  # eq. 3
        self.merged, self.folded = inference_fusion.InferenceCache(), inference_fusion.InferenceCache()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = self.project_in(x)
        if inference_fusion.applies(self) and len(self.depthwise) > 1:  # eq. 1 as one depthwise convolution
            weight, bias = self.merged.get(inference_fusion.sources(self.depthwise),
                                           lambda: inference_fusion.merged_depthwise(self.depthwise))
            largest = max(self.depthwise, key=lambda branch: branch.kernel_size)
            multi_scale = largest._conv_forward(projected, weight, bias)
        else:
            multi_scale = sum(branch(projected) for branch in self.depthwise)
        refined = self.act(inference_fusion.conv_then_norm(self.refine, self.refine_norm, multi_scale, self.folded))
        return x + self.project_out(refined)
