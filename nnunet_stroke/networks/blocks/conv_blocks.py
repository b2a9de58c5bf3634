"""Convolutional building blocks of LBMNet and of its ablations (Kuang et al., Front. Med. 2026).

- :class:`ConvNormAct`: convolution, normalisation, LeakyReLU (the stem, section 3; nnU-Net's unit).
- :class:`PlainConvBlock`: two 3^dim ConvNormAct, the stage of a standard U-Net: the encoder of
  Table 6 Models 1 and 3 and the "basic 3D convolutional decoder" of Tables 6 and 8.
- :class:`ResidualBlock`: conv 3 - norm - act - conv 3 - norm + x, act: the "typical 3D residual block
  with only 3^3 convolutions" that replaces LSC in the Table 7 baseline.
- :class:`DepthwiseResidualBlock`: x + norm(pointwise(act(norm(depthwise 3^dim(x))))): BAGF's
  "lightweight residual block" / "residual depthwise separable convolutional block" on the encoder
  path (section 3.3, Figure 11 "Enc-Res").
All map (B, C_in, *spatial) -> (B, C_out, *spatial / stride).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnunet_stroke.networks import inference_fusion
from nnunet_stroke.networks.blocks import nd


def _same_padding(kernel_size: Sequence[int]) -> tuple[int, ...]:
    return tuple(k // 2 for k in kernel_size)


class ConvNorm(nn.Sequential):
    """``Sequential(conv, norm, *rest)``; at inference a BatchNorm runs folded into the convolution
    (``inference_fusion.conv_then_norm``, same result, same state_dict keys)."""

    def __init__(self, conv: nn.Module, norm: nn.Module, *rest: nn.Module):
        super().__init__(conv, norm, *rest)
        self.folded = inference_fusion.InferenceCache()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = inference_fusion.conv_then_norm(self[0], self[1], x, self.folded)
        for layer in list(self)[2:]:
            x = layer(x)
        return x


class ConvNormAct(ConvNorm):
    """Convolution (same padding, no bias), normalisation, LeakyReLU.

    Args:
        in_channels, out_channels: channels in and out.
        dim: 2 or 3 spatial dimensions.
        norm: ``"batch"`` or ``"instance"``.
        kernel_size: an int or one size per axis.
        stride: an int or one stride per axis.

    Shapes: ``(B, C_in, *spatial) -> (B, C_out, *spatial / stride)``.
    """

    def __init__(self, in_channels: int, out_channels: int, dim: int, norm: str, kernel_size=3, stride=1):
        kernel = (kernel_size,) * dim if isinstance(kernel_size, int) else tuple(kernel_size)
        super().__init__(
            nd.conv(dim)(in_channels, out_channels, kernel, stride=stride, padding=_same_padding(kernel), bias=False),
            nd.norm(norm, dim, out_channels),
            nn.LeakyReLU(0.01, inplace=True),
        )


class PlainConvBlock(nn.Sequential):
    """Two 3^dim ConvNormAct: a standard U-Net stage.

    Args:
        in_channels, out_channels: channels in and out.
        dim: 2 or 3 spatial dimensions.
        norm: ``"batch"`` or ``"instance"``.

    Shapes: ``(B, C_in, *spatial) -> (B, C_out, *spatial)``.
    """

    def __init__(self, in_channels: int, out_channels: int, dim: int, norm: str):
        super().__init__(ConvNormAct(in_channels, out_channels, dim, norm), ConvNormAct(out_channels, out_channels, dim, norm))


class ResidualBlock(nn.Module):
    """Two 3^dim convolutions with normalisation and an identity shortcut.

    Args:
        channels: C, kept from input to output.
        dim: 2 or 3 spatial dimensions.
        norm: ``"batch"`` or ``"instance"``.

    Shapes: ``(B, C, *spatial) -> (B, C, *spatial)``.
    """

    def __init__(self, channels: int, dim: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(channels, channels, dim, norm),
            nd.conv(dim)(channels, channels, 3, padding=1, bias=False),
            nd.norm(norm, dim, channels),
        )
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class DepthwiseResidualBlock(nn.Module):
    """Depthwise 3^dim convolution, norm, GELU, pointwise convolution, norm, plus the input; arguments and
    shapes as :class:`ResidualBlock` (``channels`` C, ``dim``, ``norm``; ``(B, C, *spatial)`` kept)."""

    def __init__(self, channels: int, dim: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nd.conv(dim)(channels, channels, 3, padding=1, groups=channels, bias=False),
            nd.norm(norm, dim, channels),
            nn.GELU(),
            nd.conv(dim)(channels, channels, 1, bias=False),
            nd.norm(norm, dim, channels),
        )
        self.folded = (inference_fusion.InferenceCache(), inference_fusion.InferenceCache())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not inference_fusion.applies(self):
            return x + self.body(x)
        depthwise, norm, act, pointwise, pointwise_norm = self.body
        hidden = act(inference_fusion.conv_then_norm(depthwise, norm, x, self.folded[0]))
        return x + inference_fusion.conv_then_norm(pointwise, pointwise_norm, hidden, self.folded[1])
