"""Attention U-Net (Oktay et al., "Attention U-Net: Learning Where to Look for the Pancreas", MIDL 2018;
LBMNet reference 12), MONAI's ``monai.networks.nets.AttentionUnet`` on nnU-Net's planned pooling.

One level per planned stage: widths ``min(base * 2**i, max)`` (nnU-Net's rule), the planned strides
(anisotropic ones included) as the strided convolutions of the encoder and the transposed
convolutions of the decoder, additive attention gates on every skip (gating signal from the coarser
level). MONAI's implementation has no deep supervision. Input (B, C_in, *patch) -> logits
(B, classes, *patch), 2D or 3D.
"""
from __future__ import annotations

from typing import Sequence

from monai.networks.nets import AttentionUnet
from torch import nn

from nnunet_stroke.networks.baselines.common import NoDeepSupervision, require_no_deep_supervision
from nnunet_stroke.networks.blocks.conventions import stage_features
from nnunet_stroke.networks.registry import register_architecture


class AttentionUNet(nn.Module):
    """MONAI's Attention U-Net with nnU-Net's ``decoder.deep_supervision`` attribute (always False).

    Args:
        network: the MONAI ``AttentionUnet`` built for the plan.

    Shapes: ``(B, C_in, *patch) -> (B, classes, *patch)``.
    """

    def __init__(self, network: AttentionUnet):
        super().__init__()
        self.network = network
        self.decoder = NoDeepSupervision()

    def forward(self, x):
        return self.network(x)


@register_architecture("attention_unet")
def build_attention_unet(*, input_channels: int, num_classes: int, patch_size: Sequence[int],
                         strides: Sequence[Sequence[int]], deep_supervision: bool, base_features: int,
                         max_features: int, dropout: float = 0.0) -> AttentionUNet:
    require_no_deep_supervision("Attention U-Net", deep_supervision)
    if len(strides) < 2:
        raise ValueError(f"Attention U-Net needs at least one downsampling; the plans have strides {strides}")
    channels = stage_features(len(strides), base_features, max_features)
    network = AttentionUnet(spatial_dims=len(patch_size), in_channels=input_channels, out_channels=num_classes,
                            channels=channels, strides=[tuple(s) for s in strides[1:]], dropout=dropout)
    return AttentionUNet(network)
