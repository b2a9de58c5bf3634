"""BAGF: the adaptive gated skip-connection fusion of LBMNet (Kuang et al., Front. Med. 2026, section 3.3,
Figure 5), with the switches of its Figure 11 ablation.

Encoder features E and decoder features D (both C channels, same resolution):

    E', D'       = Align_E(E), Align_D(D)        1^3 conv + norm each (ours; the paper: "aligned along a
                                                 common channel dimension"); E' then passes a residual
                                                 depthwise block (ours; "a lightweight residual block")
    F_enc, F_dec = SA(E'), CA(D')                eq. 9 (SA, CA: CBAM's, our reading; blocks.attention)
    [alpha, beta] = Softmax(Gate([F_enc; F_dec]))  eq. 10, Gate = 1^3 conv 2C -> 2 (ours), softmax over
                                                 the two paths at every voxel
    F_fused      = alpha * F_enc + beta * F_dec  eq. 11
    O            = Conv_1(F_fused)               eq. 12

Switches (Figure 11): ``encoder_residual`` (Enc-Res), ``encoder_spatial_attention`` (Enc-SA),
``decoder_channel_attention`` (Dec-CA), ``gate``. With ``gate=False`` the fusion is U-Net
concatenation, O = Conv_1([F_enc; F_dec]) (2C -> C), without alignment (E and D already share C);
all switches off is the concatenation baseline of Figure 11 and the "no BAGF" skip of Table 6.

Shapes: (B, C, *spatial), (B, C, *spatial) -> (B, C, *spatial), 2D or 3D (``dim``).
"""
from __future__ import annotations

import torch
from torch import nn

from nnunet_stroke.networks import inference_fusion
from nnunet_stroke.networks.blocks import nd
from nnunet_stroke.networks.blocks.attention import ChannelAttention, SpatialAttention
from nnunet_stroke.networks.blocks.conv_blocks import ConvNorm, DepthwiseResidualBlock


def _aligned(channels: int, dim: int, norm: str) -> nn.Module:
    return ConvNorm(nd.conv(dim)(channels, channels, 1, bias=False), nd.norm(norm, dim, channels))


class BAGF(nn.Module):
    """Adaptive gated skip fusion, eq. 9-12 (see the module docstring for the switches).

    Args:
        channels: C of the encoder and decoder features and of the output.
        dim: 2 or 3 spatial dimensions.
        norm: ``"batch"`` or ``"instance"``.
        encoder_residual, encoder_spatial_attention, decoder_channel_attention, gate: Figure 11's switches.
        attention_reduction: channel reduction of the channel attention.

    Shapes: ``forward(encoder, decoder)``, both ``(B, C, *spatial)`` -> ``(B, C, *spatial)``.
    """

    def __init__(self, channels: int, dim: int, norm: str = "batch", encoder_residual: bool = True,
                 encoder_spatial_attention: bool = True, decoder_channel_attention: bool = True,
                 gate: bool = True, attention_reduction: int = 4):
        super().__init__()
        conv = nd.conv(dim)
        self.align_encoder = _aligned(channels, dim, norm) if gate else nn.Identity()
        self.align_decoder = _aligned(channels, dim, norm) if gate else nn.Identity()
        self.encoder_residual = DepthwiseResidualBlock(channels, dim, norm) if encoder_residual else nn.Identity()
        self.spatial_attention = SpatialAttention(dim) if encoder_spatial_attention else nn.Identity()
        self.channel_attention = (ChannelAttention(channels, dim, reduction=attention_reduction)
                                  if decoder_channel_attention else nn.Identity())
        self.gate = conv(2 * channels, 2, 1) if gate else None  # eq. 10
        self.out = conv(channels if gate else 2 * channels, channels, 1)  # eq. 12

    def forward(self, encoder: torch.Tensor, decoder: torch.Tensor) -> torch.Tensor:
        f_enc = self.spatial_attention(self.encoder_residual(self.align_encoder(encoder)))  # eq. 9
        f_dec = self.channel_attention(self.align_decoder(decoder))
        both = torch.cat([f_enc, f_dec], 1)
        if self.gate is None:
            return self.out(both)
        alpha, beta = torch.softmax(self.gate(both), 1).chunk(2, 1)  # eq. 10
        if inference_fusion.applies(self):  # the same sum, in place in f_enc
            return self.out(f_enc.mul_(alpha).addcmul_(beta, f_dec))
        return self.out(alpha * f_enc + beta * f_dec)  # eq. 11-12
