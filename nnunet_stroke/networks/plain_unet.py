"""nnU-Net's plain 3D/2D U-Net (dynamic_network_architectures ``PlainConvUNet``) as a preset architecture.

With the defaults it is the network nnU-Net plans for its ``3d_fullres``/``2d`` configurations:
``features_per_stage`` = min(base_channels * 2^l, max_channels) (nnU-Net: 32, capped at 320 in 3D),
two 3^dim conv - InstanceNorm - LeakyReLU per stage in encoder and decoder, strided-conv downsampling
with the planned ``strides``, transposed-conv upsampling, He initialisation. nnU-Net's planner may
choose 1x3x3 kernels on strongly anisotropic levels; this builder always uses 3^dim kernels.
It is also Model 1 ("3D U-Net") of LBMNet's Table 6 (Kuang et al., Front. Med. 2026), with LBMNet's widths.
"""
from __future__ import annotations

from collections.abc import Sequence

from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from nnunet_stroke.networks.blocks import nd
from nnunet_stroke.networks.blocks.conventions import stage_features
from nnunet_stroke.networks.registry import register_architecture


@register_architecture("plain_unet")
def build_plain_unet(*, input_channels: int, num_classes: int, patch_size: Sequence[int],
                     strides: Sequence[Sequence[int]], deep_supervision: bool, base_channels: int = 32,
                     max_channels: int = 320, n_conv_per_stage: int = 2) -> PlainConvUNet:
    dim = nd.dim_of(patch_size)
    levels = len(strides)
    network = PlainConvUNet(
        input_channels=input_channels, n_stages=levels,
        features_per_stage=stage_features(levels, base_channels, max_channels),
        conv_op=nd.conv(dim), kernel_sizes=[[3] * dim] * levels,
        strides=[list(s) for s in strides], n_conv_per_stage=[n_conv_per_stage] * levels, num_classes=num_classes,
        n_conv_per_stage_decoder=[n_conv_per_stage] * (levels - 1), conv_bias=True,
        norm_op=nd.norm_class("instance", dim), norm_op_kwargs={"eps": 1e-5, "affine": True},
        nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=deep_supervision)
    network.apply(network.initialize)
    return network
