"""BSC-Mamba, LBMNet's decoder block (Kuang et al., Front. Med. 2026, section 3.2, Figure 4), with the
switches of Tables 8 and 9.

    y      = ASC(x)                                  eq. 4-5  (blocks.asc)
    output = reshape(W_f [Mamba(y_seq); reverse(Mamba(reverse(y_seq)))]) + y    eq. 6-8

The scan is ``networks.ssm.DirectionalScan3d`` (pre-LayerNorm, one Mamba per direction, concat and a
Linear kC -> C, residual); ``directions`` is "bi" in the paper, "forward" for Table 9's one-way and
"quad" (bidirectional along the depth-first and height-first orders) for its four-way row.
``asc=False`` / ``ssm=False`` give Table 8's "Only-SSM" / "Only-ASC"; with both off the block is
the "basic 3D convolutional decoder" stage (two 3^3 conv-norm-act, blocks.conv_blocks.PlainConvBlock).

Shapes: (B, C, *spatial) -> (B, C, *spatial), 2D or 3D (``dim``).
"""
from __future__ import annotations

from torch import nn

from nnunet_stroke.networks.blocks.asc import ASCBlock
from nnunet_stroke.networks.blocks.conv_blocks import PlainConvBlock
from nnunet_stroke.networks.ssm import DirectionalScan3d


class BSCMamba(nn.Sequential):
    def __init__(self, channels: int, dim: int, norm: str = "batch", asc: bool = True, ssm: bool = True,
                 directions: str = "bi", d_state: int = 16, expand: int = 2, d_conv: int = 4):
        layers: list[nn.Module] = []
        if asc:
            layers.append(ASCBlock(channels, dim, norm))
        if ssm:
            layers.append(DirectionalScan3d(channels, directions=directions, fuse="concat",
                                            d_state=d_state, d_conv=d_conv, expand=expand))
        if not layers:
            layers.append(PlainConvBlock(channels, channels, dim, norm))
        super().__init__(*layers)
