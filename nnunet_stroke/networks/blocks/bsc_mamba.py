"""BSC-Mamba, LBMNet's decoder block (Kuang et al., Front. Med. 2026, section 3.2, Figure 4), with the
switches of Tables 8 and 9.

    y      = ASC(x)                                                          eq. 4-5  (blocks.asc)
    output = reshape(W_f [Mamba(y_seq); reverse(Mamba(reverse(y_seq)))]) + x    eq. 6-8

The residual of eq. 8 adds the block input x, as printed (not the ASC output y). The scan is
``networks.ssm.DirectionalScan3d`` without its own residual: a pre-LayerNorm (ours, eq. 6-8 have none),
one Mamba per direction, concatenation and the Linear W_f (kC -> C); ``directions`` is "bi" in the
paper, "forward" for Table 9's one-way and "quad" (bidirectional along the depth-first and height-first
orders) for its four-way row. ``asc=False`` gives Table 8's "Only-SSM" (output = SSM(x) + x),
``ssm=False`` its "Only-ASC" (output = ASC(x), eq. 5 with its own residual); with both off the block is
the "basic 3D convolutional decoder" stage (two 3^3 conv-norm-act, blocks.conv_blocks.PlainConvBlock).

Args: ``channels`` C; ``dim`` 2 or 3; ``norm`` of the convolutional parts; ``asc`` / ``ssm`` the two
stages; ``directions``, ``d_state``, ``expand``, ``d_conv`` of the scan (networks.ssm).
Shapes: (B, C, *spatial) -> (B, C, *spatial), e.g. (2, 48, 16, 16, 16) -> (2, 48, 16, 16, 16).
"""
from __future__ import annotations

import torch
from torch import nn

from nnunet_stroke.networks.blocks.asc import ASCBlock
from nnunet_stroke.networks.blocks.conv_blocks import PlainConvBlock
from nnunet_stroke.networks.ssm import DirectionalScan3d


class BSCMamba(nn.Module):
    """LBMNet's decoder block, eq. 4-8 (arguments and shapes in the module docstring).

    Shapes: ``(B, C, *spatial) -> (B, C, *spatial)``, e.g. ``(2, 48, 16, 16, 16) -> (2, 48, 16, 16, 16)``.
    """

    def __init__(self, channels: int, dim: int, norm: str = "batch", asc: bool = True, ssm: bool = True,
                 directions: str = "bi", d_state: int = 16, expand: int = 2, d_conv: int = 4):
        super().__init__()
        if asc or ssm:
            self.local = ASCBlock(channels, dim, norm) if asc else nn.Identity()
        else:
            self.local = PlainConvBlock(channels, channels, dim, norm)
        self.ssm = DirectionalScan3d(channels, directions=directions, fuse="concat", residual=False,
                                     d_state=d_state, d_conv=d_conv, expand=expand) if ssm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.local(x)  # eq. 4-5 (or the Table 8 replacement)
        if self.ssm is None:
            return y
        if not torch.is_grad_enabled():  # inference: the same sum, in place in the scan's fresh output
            return self.ssm(y).add_(x)
        return self.ssm(y) + x  # eq. 8: the residual is the block input
