"""TransUNet-style 3D CNN-Transformer (Chen et al., "TransUNet: Transformers Make Strong Encoders for
Medical Image Segmentation", arXiv 2102.04306, LBMNet reference 8; in 3D on nnU-Net as in Chen et al.,
"3D TransUNet", arXiv 2310.07781, encoder-only configuration).

- CNN encoder: nnU-Net's ``PlainConvEncoder`` (two conv-IN-LeakyReLU per stage, strided convs with
  the planned pooling, widths ``min(base * 2**i, max)``) in place of TransUNet's ResNet-50.
- Transformer: the bottleneck feature map is embedded token-per-voxel (1x1 conv to ``hidden_size``,
  TransUNet's "patch size 1" hybrid embedding), plus a learned position embedding for the planned
  patch's bottleneck grid, then ``num_layers`` pre-norm ViT blocks (LayerNorm, multi-head
  self-attention with qkv bias, LayerNorm, GELU MLP, residuals) and a final LayerNorm; a 1x1 conv maps back to the bottleneck width.
  ViT-B settings (12 layers, hidden 768, MLP 3072, 12 heads) make 85,054,464 block parameters, as in
  ViT-B/16 (86 M with its patch embedding and head; Dosovitskiy et al. 2021, Table 1).
- Decoder: nnU-Net's ``UNetDecoder`` (transposed conv, concatenation with the skip, conv blocks)
  in place of TransUNet's cascaded upsampler, with nnU-Net deep supervision.
Input (B, C_in, *patch) -> logits (B, classes, *patch), or ``len(strides) - 1`` logits with deep
supervision. The position embedding fixes the input to the planned patch (as in UNETR).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from torch import nn

from nnunet_stroke.networks.blocks import nd
from nnunet_stroke.networks.blocks.conventions import init_he, stage_features
from nnunet_stroke.networks.registry import register_architecture


class ViTBlock(nn.Module):
    """ViT encoder block: x + MHSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, hidden_size, mlp_dim, num_heads, dropout_rate=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size)
        self.attn = nn.MultiheadAttention(hidden_size, num_heads, dropout=dropout_rate, batch_first=True)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.mlp = nn.Sequential(nn.Linear(hidden_size, mlp_dim), nn.GELU(), nn.Dropout(dropout_rate),
                                 nn.Linear(mlp_dim, hidden_size), nn.Dropout(dropout_rate))

    def forward(self, x):
        y = self.norm1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class BottleneckTransformer(nn.Module):
    """(B, C, *grid) -> (B, C, *grid): token-per-voxel ViT over the bottleneck grid."""

    def __init__(self, conv_op, channels, grid, hidden_size, mlp_dim, num_heads, num_layers, dropout_rate=0.0):
        super().__init__()
        self.grid = tuple(int(g) for g in grid)
        self.embed = conv_op(channels, hidden_size, kernel_size=1)
        self.position = nn.Parameter(torch.zeros(1, int(np.prod(self.grid)), hidden_size))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.dropout = nn.Dropout(dropout_rate)
        self.blocks = nn.ModuleList(ViTBlock(hidden_size, mlp_dim, num_heads, dropout_rate) for _ in range(num_layers))
        self.norm = nn.LayerNorm(hidden_size)
        self.project = conv_op(hidden_size, channels, kernel_size=1)

    def forward(self, x):
        if tuple(x.shape[2:]) != self.grid:
            raise ValueError(f"TransUNet was built for a bottleneck grid {self.grid} (the planned patch) but got "
                             f"{tuple(x.shape[2:])}; feed patches of the planned size")
        tokens = self.dropout(self.embed(x).flatten(2).transpose(1, 2) + self.position)
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens).transpose(1, 2).reshape(x.shape[0], -1, *self.grid)
        return self.project(tokens)


class TransUNet(nn.Module):
    """nnU-Net CNN encoder, a ViT on the bottleneck tokens, nnU-Net's decoder (module docstring).

    Args:
        input_channels, num_classes: image channels and classes.
        patch_size, strides: nnU-Net's planned patch and pooling.
        features: channels per stage.
        hidden_size, mlp_dim, num_heads, num_layers, dropout_rate: the transformer's sizes.
        deep_supervision: nnU-Net's switch.

    Shapes: ``(B, C_in, *patch) -> (B, classes, *patch)``, or a list with deep supervision.
    """

    def __init__(self, input_channels, num_classes, patch_size, strides, features, hidden_size, mlp_dim,
                 num_heads, num_layers, deep_supervision=False, dropout_rate=0.0):
        super().__init__()
        dim = nd.dim_of(patch_size)
        conv_op, norm_op = nd.conv(dim), nd.norm_class("instance", dim)
        common = dict(conv_bias=True, norm_op=norm_op, norm_op_kwargs={"eps": 1e-5, "affine": True},
                      nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True})
        self.encoder = PlainConvEncoder(input_channels, len(features), features, conv_op, 3, strides, 2,
                                        return_skips=True, **common)
        grid = np.array(patch_size) // np.prod(np.array(strides), axis=0)
        self.transformer = BottleneckTransformer(conv_op, features[-1], grid, hidden_size, mlp_dim, num_heads,
                                                 num_layers, dropout_rate)
        self.decoder = UNetDecoder(self.encoder, num_classes, 2, deep_supervision, **common)
        for module in (self.encoder, self.decoder):
            module.apply(init_he)

    def forward(self, x):
        skips = self.encoder(x)
        skips[-1] = self.transformer(skips[-1])
        return self.decoder(skips)


@register_architecture("transunet")
def build_transunet(*, input_channels: int, num_classes: int, patch_size: Sequence[int],
                    strides: Sequence[Sequence[int]], deep_supervision: bool, base_features: int,
                    max_features: int, hidden_size: int, mlp_dim: int, num_heads: int, num_layers: int,
                    dropout_rate: float = 0.0) -> TransUNet:
    features = stage_features(len(strides), base_features, max_features)
    return TransUNet(input_channels, num_classes, patch_size, strides, features, hidden_size, mlp_dim, num_heads,
                     num_layers, deep_supervision, dropout_rate)
