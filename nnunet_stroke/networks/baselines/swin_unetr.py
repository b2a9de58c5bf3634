"""SwinUNETR (Hatamizadeh et al., "Swin UNETR: Swin Transformers for Semantic Segmentation of Brain
Tumors in MRI Images", BrainLes 2021; LBMNet Tables 1, 3, 4 "SwinUNet", reference 9), MONAI's
``monai.networks.nets.SwinUNETR``, run on nnU-Net's planned patch.

A four-stage Swin Transformer encoder (patch 2, window 7, depths 2-2-2-2, heads 3-6-12-24) with
residual convolutional skips and decoder; feature size 48 gives 62.2 M parameters (3 input channels,
2 classes; independent of the patch size). Five 2x downsamplings make the input size a multiple of
32: the planned patch is zero-padded at the end of every axis to the next multiple of 32, the last
axis to at least 64 (so that the 1/32 bottleneck has two voxels: instance normalisation needs more
than one while training), and the logits are cropped back (``PadToMultiple``); the planned pooling
is not used. No deep supervision.
Input (B, C_in, *patch) -> logits (B, classes, *patch); 2D patches use ``spatial_dims=2``.
"""
from __future__ import annotations

from typing import Sequence

from monai.networks.nets import SwinUNETR

from nnunet_stroke.networks.baselines.common import PadToMultiple, require_no_deep_supervision
from nnunet_stroke.networks.registry import register_architecture

SWIN_UNETR_DIVISOR = 32  # 2 (patch embedding) * 2**4 (patch merging)
SWIN_UNETR_MIN_LAST_AXIS = 64  # two bottleneck voxels


@register_architecture("swin_unetr")
def build_swin_unetr(*, input_channels: int, num_classes: int, patch_size: Sequence[int],
                     strides: Sequence[Sequence[int]], deep_supervision: bool, feature_size: int,
                     depths: Sequence[int] = (2, 2, 2, 2), num_heads: Sequence[int] = (3, 6, 12, 24),
                     window_size: int = 7, use_v2: bool = False) -> PadToMultiple:
    require_no_deep_supervision("SwinUNETR", deep_supervision)
    network = SwinUNETR(in_channels=input_channels, out_channels=num_classes, feature_size=feature_size,
                        depths=tuple(depths), num_heads=tuple(num_heads), window_size=window_size,
                        spatial_dims=len(patch_size), use_v2=use_v2)
    return PadToMultiple(network, SWIN_UNETR_DIVISOR, SWIN_UNETR_MIN_LAST_AXIS)
