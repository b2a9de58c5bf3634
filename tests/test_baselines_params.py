"""Parameter counts of the paper-scale baselines against published or reference-implementation figures.

Each figure is quoted with its source; counts are rounded to the precision the source gives.
"""
import math

import pytest

from nnunet_stroke.networks.registry import build_network

ISOTROPIC_6_STAGES = [(1, 1, 1)] + [(2, 2, 2)] * 5  # nnU-Net's 3d_fullres pooling for a 128^3 patch


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def mamba_v1_params(d_model, d_state=16, d_conv=4, expand=2) -> int:
    """mamba-ssm v1 ``Mamba``: 3*E*d^2 + E*d*(d_conv + 2R + 3N + 3), R = ceil(d/16) (mamba-ssm mamba_simple.py)."""
    rank = math.ceil(d_model / 16)
    return 3 * expand * d_model ** 2 + expand * d_model * (d_conv + 2 * rank + 3 * d_state + 3)


@pytest.mark.parametrize("preset, input_channels, num_classes, patch, millions, source", [
    # STU-Net paper (Huang et al. 2023, arXiv 2304.06716): S/B = 14.6/58.3 M, pre-trained on TotalSegmentator
    # (1 CT channel, 104 structures + background)
    ("stunet_s", 1, 105, (128, 128, 128), 14.6, "Huang et al. 2023"),
    ("stunet_b", 1, 105, (128, 128, 128), 58.3, "Huang et al. 2023"),
    # MONAI reference implementations, measured with 3 input channels and 2 classes at 96^3
    ("swin_unetr", 3, 2, (96, 96, 96), 62.2, "MONAI SwinUNETR feature size 48"),
    ("unetr", 3, 2, (96, 96, 96), 99.1, "MONAI UNETR feature size 16, hidden 768"),
    # SegMamba reference code (ge-xing/SegMamba, default feat 48-384), BraTS setting: 4 MRI channels, 3 regions
    ("segmamba", 4, 3, (128, 128, 128), 67.4, "SegMamba default"),
])
def test_paper_scale_parameter_counts(preset, input_channels, num_classes, patch, millions, source):
    network = build_network(preset, input_channels=input_channels, num_classes=num_classes, patch_size=patch,
                            strides=ISOTROPIC_6_STAGES)
    assert round(n_params(network) / 1e6, 1) == millions, source


def test_unetpp_matches_the_published_2d_count():
    """UNet++ (Zhou et al., DLMIA 2018, Table 1): 9.04 M with widths 32-512, four downsamplings, 2D, no
    normalisation; U-Net 7.76 M in the same table. Heads of levels 1-3 exist for deep supervision only."""
    network = build_network("unetpp", input_channels=1, num_classes=1, patch_size=(96, 96),
                            strides=[(1, 1)] + [(2, 2)] * 4, base_features=32, max_features=512, norm=None)
    unused_heads = n_params(network.decoder.heads[1:])
    assert round((n_params(network) - unused_heads) / 1e6, 2) == 9.04


def test_umamba_bot_bottleneck_layer_is_mamba_ssm_sized():
    """U-Mamba Bot at nnU-Net's default widths (32-320): the bottleneck MambaLayer = LayerNorm(320) +
    mamba-ssm v1 Mamba(320) = 675,200 + 640 parameters (verified by instantiating mamba-ssm)."""
    network = build_network("umamba_bot", input_channels=1, num_classes=2, patch_size=(128, 128, 128),
                            strides=ISOTROPIC_6_STAGES)
    assert mamba_v1_params(320) == 675_200
    assert n_params(network.mamba_layer.mamba) == 675_200
    assert n_params(network.mamba_layer) == 675_200 + 640


def test_umamba_enc_has_a_mamba_layer_per_stage_with_channel_tokens_at_the_bottom():
    """U-Mamba Enc: one MambaLayer per encoder stage; a stage with no more voxels than channels switches to
    channel tokens (d_model = voxels): at 128^3 the 4^3 = 64-voxel bottleneck with 320 channels does."""
    network = build_network("umamba_enc", input_channels=1, num_classes=2, patch_size=(128, 128, 128),
                            strides=ISOTROPIC_6_STAGES)
    layers = network.encoder.mamba_layers
    assert [(layer.dim, layer.channel_token) for layer in layers] == [
        (32, False), (64, False), (128, False), (256, False), (320, False), (64, True)]
    for layer in layers:
        assert n_params(layer) == mamba_v1_params(layer.dim) + 2 * layer.dim


def test_segmamba_tri_orientated_layers_match_the_reference_code():
    """SegMamba Mamba layers (LayerNorm + ToM with shared in/out projections): 31,488, 94,080, 312,576 and
    1,122,816 parameters for dims 48-384 (instantiation of the SegMamba reference code)."""
    network = build_network("segmamba", input_channels=4, num_classes=3, patch_size=(128, 128, 128),
                            strides=ISOTROPIC_6_STAGES)
    per_stage = [n_params(stage[0]) for stage in network.vit.stages]
    assert per_stage == [31_488, 94_080, 312_576, 1_122_816]


def test_transunet_transformer_is_vit_base():
    """ViT-B (Dosovitskiy et al. 2021, Table 1: 12 layers, hidden 768, MLP 3072, 12 heads, 86 M with the
    patch embedding and head): each block has 4h^2 + 4h (attention) + 2hm + h + m (MLP) + 4h (two
    LayerNorms) = 7,087,872 parameters, 85,054,464 for twelve."""
    network = build_network("transunet", input_channels=1, num_classes=2, patch_size=(64, 64, 64),
                            strides=[(1, 1, 1)] + [(2, 2, 2)] * 4)
    h, m = 768, 3072
    per_block = 4 * h * h + 4 * h + 2 * h * m + h + m + 4 * h
    assert per_block * 12 == 85_054_464
    assert n_params(network.transformer.blocks) == 85_054_464
