"""U-Mamba Bot and Enc (Ma, Li & Wang, "U-Mamba: Enhancing Long-range Dependency for Biomedical Image
Segmentation", arXiv 2401.04722; reference code ``bowang-lab/U-Mamba``, ``nets/UMambaBot_3d.py`` and
``nets/UMambaEnc_3d.py``), with the package's Mamba mixer so that they also run on CPU.

- Encoder: a stem ``BasicResBlock`` (1x1 projection shortcut) + ``BasicBlockD``s, then per stage a
  strided ``BasicResBlock`` + ``BasicBlockD``s; the planned number of blocks per stage, set to 1 in the
  second half of the stages (and of the decoder stages), as U-Mamba does.
- ``MambaLayer``: LayerNorm(C) -> Mamba(d_model=C, d_state 16, d_conv 4, expand 2) over the C-order
  raster (last axis fastest), no residual, in float32 with autocast off. At C=320 it holds
  675,200 + 640 parameters. Enc switches a stage to "channel tokens" (sequence = channels,
  d_model = voxels) when the stage's feature map has no more voxels than channels.
- Bot: one MambaLayer on the bottleneck, its output replaces the bottleneck features.
  Enc: one MambaLayer after every encoder stage (the skips carry the Mamba output).
- Decoder: nearest upsampling + 1x1 conv, concatenation, residual blocks, 1x1 heads (deep
  supervision: ``len(strides) - 1`` logits, highest resolution first).

Parameter names follow U-Mamba (``mamba_layer.norm``, ``mamba_layer.mamba.in_proj``, ...).
Kernel sizes are 3 in every stage (U-Mamba takes nnU-Net's planned kernels, which are 3 except on
the fine stages of strongly anisotropic data). Input (B, C_in, *patch) -> logits (B, classes, *patch).
"""
from __future__ import annotations

from typing import Sequence

import math

import numpy as np
import torch
from dynamic_network_architectures.building_blocks.residual import BasicBlockD
from torch import nn

from nnunet_stroke.networks.baselines.common import BasicResBlock, UpsampleLayer
from nnunet_stroke.networks.blocks import nd
from nnunet_stroke.networks.blocks.deep_supervision import DeepSupervisionDecoder
from nnunet_stroke.networks.blocks.conventions import init_he, stage_features
from nnunet_stroke.networks.registry import register_architecture
from nnunet_stroke.networks.ssm import Mamba


class MambaLayer(nn.Module):
    """LayerNorm -> Mamba on the flattened map (patch tokens) or on the channels (channel tokens)."""

    def __init__(self, dim: int, channel_token: bool = False, d_state: int = 16, d_conv: int = 4, expand: int = 2):
        super().__init__()
        self.dim = dim
        self.channel_token = channel_token
        self.norm = nn.LayerNorm(dim)
        self.mamba = Mamba(d_model=dim, d_state=d_state, d_conv=d_conv, expand=expand)

    def forward(self, x):
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            batch, channels, *spatial = x.shape
            if self.channel_token:  # tokens = channels, features = voxels
                return self.mamba(self.norm(x.flatten(2))).reshape(batch, channels, *spatial)
            tokens = x.flatten(2).transpose(1, 2)  # (B, L, C), C-order raster
            return self.mamba(self.norm(tokens)).transpose(1, 2).reshape(batch, channels, *spatial)


def _res_stage(conv_op, norm_op, input_channels, output_channels, stride, n_blocks):
    """A strided BasicResBlock with projection shortcut followed by ``n_blocks - 1`` BasicBlockD."""
    return nn.Sequential(
        BasicResBlock(conv_op, input_channels, output_channels, 3, stride, use_1x1conv=True),
        *[BasicBlockD(conv_op, output_channels, output_channels, 3, 1, conv_bias=True, norm_op=norm_op,
                      norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=nn.LeakyReLU,
                      nonlin_kwargs={"inplace": True}) for _ in range(n_blocks - 1)])


class UNetResEncoder(nn.Module):
    """Stem + residual stages; with ``mamba_layers`` (Enc) a MambaLayer follows every stage."""

    def __init__(self, conv_op, norm_op, input_channels, features, strides, n_blocks, mamba_dims=None):
        super().__init__()
        self.output_channels = features
        self.strides = strides
        self.stem = _res_stage(conv_op, norm_op, input_channels, features[0], 1, n_blocks[0])
        self.stages = nn.ModuleList(
            _res_stage(conv_op, norm_op, features[max(s - 1, 0)], features[s], strides[s], n_blocks[s])
            for s in range(len(features)))
        self.mamba_layers = None if mamba_dims is None else nn.ModuleList(
            MambaLayer(dim, channel_token) for dim, channel_token in mamba_dims)

    def forward(self, x):
        x = self.stem(x)
        skips = []
        for s, stage in enumerate(self.stages):
            x = stage(x)
            if self.mamba_layers is not None:
                x = self.mamba_layers[s](x)
            skips.append(x)
        return skips


class UNetResDecoder(DeepSupervisionDecoder):
    """U-Mamba's decoder: nearest upsampling + 1x1 conv, concatenation, residual blocks, 1x1 heads.

    Args:
        conv_op, norm_op: the dimension's convolution and normalisation classes.
        features: channels per stage; ``strides``: the planned strides.
        n_blocks: residual blocks per decoder stage.
        num_classes: logits per voxel.
        deep_supervision: nnU-Net's switch.

    Shapes: as :class:`~nnunet_stroke.networks.blocks.deep_supervision.DeepSupervisionDecoder`.
    """

    def __init__(self, conv_op, norm_op, features, strides, n_blocks, num_classes, deep_supervision):
        super().__init__(deep_supervision)
        n = len(features)
        self.upsample_layers = nn.ModuleList(
            UpsampleLayer(conv_op, features[-s], features[-(s + 1)], strides[-s]) for s in range(1, n))
        self.stages = nn.ModuleList(
            _res_stage(conv_op, norm_op, 2 * features[-(s + 1)], features[-(s + 1)], 1, n_blocks[s - 1])
            for s in range(1, n))
        self.seg_layers = nn.ModuleList(conv_op(features[-(s + 1)], num_classes, 1, 1, 0, bias=True)
                                        for s in range(1, n))

    def decode_stage(self, index: int, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.stages[index](torch.cat((self.upsample_layers[index](coarse), skip), 1))

    def segmentation_head(self, index: int) -> nn.Module:
        return self.seg_layers[index]


def umamba_blocks(n_stages: int, n_blocks_encoder: int, n_blocks_decoder: int) -> tuple[list[int], list[int]]:
    """Blocks per encoder/decoder stage: the planned numbers, 1 in the second half (as U-Mamba)."""
    encoder = [n_blocks_encoder] * n_stages
    decoder = [n_blocks_decoder] * (n_stages - 1)
    for s in range(math.ceil(n_stages / 2), n_stages):
        encoder[s] = 1
    for s in range(math.ceil((n_stages - 1) / 2 + 0.5), n_stages - 1):
        decoder[s] = 1
    return encoder, decoder


class UMamba(nn.Module):
    """U-Mamba Bot (``variant="bot"``) or Enc (``variant="enc"``) for a planned patch and pooling."""

    def __init__(self, input_channels, num_classes, patch_size, strides, features, n_blocks_encoder,
                 n_blocks_decoder, variant, deep_supervision=False):
        super().__init__()
        if variant not in ("bot", "enc"):
            raise ValueError(f"U-Mamba variant must be 'bot' or 'enc', got {variant!r}")
        dim = nd.dim_of(patch_size)
        conv_op, norm_op = nd.conv(dim), nd.norm_class("instance", dim)
        enc_blocks, dec_blocks = umamba_blocks(len(features), n_blocks_encoder, n_blocks_decoder)
        mamba_dims = None
        if variant == "enc":
            mamba_dims, size = [], np.array(patch_size)
            for s, stride in enumerate(strides):
                size = size // np.array(stride)
                voxels = int(np.prod(size))
                mamba_dims.append((voxels, True) if voxels <= features[s] else (features[s], False))
        self.encoder = UNetResEncoder(conv_op, norm_op, input_channels, features, strides, enc_blocks, mamba_dims)
        self.mamba_layer = MambaLayer(features[-1]) if variant == "bot" else None
        self.decoder = UNetResDecoder(conv_op, norm_op, features, strides, dec_blocks, num_classes, deep_supervision)
        self.apply(init_he)

    def forward(self, x):
        skips = self.encoder(x)
        if self.mamba_layer is not None:
            skips[-1] = self.mamba_layer(skips[-1])
        return self.decoder(skips)


def _build(variant: str, *, input_channels: int, num_classes: int, patch_size: Sequence[int],
           strides: Sequence[Sequence[int]], deep_supervision: bool, base_features: int, max_features: int,
           n_blocks_encoder: int, n_blocks_decoder: int) -> UMamba:
    features = stage_features(len(strides), base_features, max_features)
    return UMamba(input_channels, num_classes, patch_size, strides, features, n_blocks_encoder,
                  n_blocks_decoder, variant, deep_supervision)


@register_architecture("umamba_bot", params_from=_build)
def build_umamba_bot(**kwargs) -> UMamba:
    return _build("bot", **kwargs)


@register_architecture("umamba_enc", params_from=_build)
def build_umamba_enc(**kwargs) -> UMamba:
    return _build("enc", **kwargs)
