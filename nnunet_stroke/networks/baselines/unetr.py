"""UNETR (Hatamizadeh et al., "UNETR: Transformers for 3D Medical Image Segmentation", WACV 2022), MONAI's
``monai.networks.nets.UNETR``, run on nnU-Net's planned patch.

A ViT encoder on 16^3 patches (hidden 768, MLP 3072, 12 heads, 12 layers) whose layers 3, 6, 9 and 12
feed a convolutional decoder (feature size 16). MONAI's UNETR needs an input divisible by 16 and a
fixed image size (its position embedding has one entry per 16^3 patch), so it is built for the
planned patch padded at the end of every axis to a multiple of 16 and wrapped in ``PadToMultiple``
(zero padding, logits cropped back). With feature size 16, hidden 768, 3 input channels, 2 classes
and a 96^3 patch it has 99.1 M parameters. No deep supervision.
Input (B, C_in, *patch) -> logits (B, classes, *patch); 2D patches use ``spatial_dims=2``.
"""
from __future__ import annotations

from typing import Sequence

from monai.networks.nets import UNETR

from nnunet_stroke.networks.baselines.common import PadToMultiple, require_no_deep_supervision
from nnunet_stroke.networks.registry import register_architecture

UNETR_PATCH = 16  # ViT patch edge


@register_architecture("unetr")
def build_unetr(*, input_channels: int, num_classes: int, patch_size: Sequence[int],
                strides: Sequence[Sequence[int]], deep_supervision: bool, feature_size: int,
                hidden_size: int, mlp_dim: int, num_heads: int, norm_name: str = "instance", res_block: bool = True,
                dropout_rate: float = 0.0) -> PadToMultiple:
    require_no_deep_supervision("UNETR", deep_supervision)
    img_size = PadToMultiple.padded_size(patch_size, UNETR_PATCH)
    network = UNETR(in_channels=input_channels, out_channels=num_classes, img_size=img_size,
                    feature_size=feature_size, hidden_size=hidden_size, mlp_dim=mlp_dim, num_heads=num_heads,
                    proj_type="conv", norm_name=norm_name, res_block=res_block, dropout_rate=dropout_rate,
                    spatial_dims=len(patch_size))
    return PadToMultiple(network, UNETR_PATCH)
