"""Baseline networks on random tensors: nnU-Net's output contract for planned patches and anisotropic
pooling, 2D where the network supports it, and SegMamba's tri-orientated mixer against three Mamba mixers."""
import pytest
import torch

from nnunet_stroke.networks.baselines.segmamba import TriOrientedMamba
from nnunet_stroke.networks.registry import build_network
from nnunet_stroke.networks.ssm import Mamba

WITH_DEEP_SUPERVISION = ["unetpp_tiny", "transunet_tiny", "umamba_bot_tiny", "umamba_enc_tiny", "stunet_tiny"]
WITHOUT_DEEP_SUPERVISION = ["attention_unet_tiny", "unetr_tiny", "swin_unetr_tiny", "segmamba_tiny"]
# SwinUNETR runs on the planned (anisotropic) phantom patch in tests/test_baselines_trainers.py
SINGLE_OUTPUT_SHAPES = ["attention_unet_tiny", "unetr_tiny", "segmamba_tiny"]
TWO_D = ["unetpp_tiny", "attention_unet_tiny", "transunet_tiny", "umamba_bot_tiny", "stunet_tiny"]
ANISOTROPIC = dict(patch_size=(12, 20, 24), strides=[(1, 1, 1), (1, 2, 2), (2, 2, 2)])


def build(preset, deep_supervision, patch_size, strides, input_channels=2, num_classes=3):
    torch.manual_seed(0)
    return build_network(preset, input_channels=input_channels, num_classes=num_classes, patch_size=patch_size,
                         strides=strides, deep_supervision=deep_supervision)


@pytest.mark.parametrize("preset", WITH_DEEP_SUPERVISION)
def test_deep_supervision_outputs_follow_nnunet(preset):
    network = build(preset, True, **ANISOTROPIC)
    outputs = network(torch.randn(2, 2, *ANISOTROPIC["patch_size"]))
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 12, 20, 24), (2, 3, 12, 10, 12)]  # patch / cumprod(strides)
    sum(o.mean() for o in outputs).backward()
    network.decoder.deep_supervision = False  # nnU-Net's switch (validation, prediction)
    assert network(torch.randn(1, 2, *ANISOTROPIC["patch_size"])).shape == (1, 3, 12, 20, 24)


@pytest.mark.parametrize("preset", SINGLE_OUTPUT_SHAPES)
def test_single_output_networks_on_an_anisotropic_patch(preset):
    network = build(preset, False, **ANISOTROPIC)
    assert network.decoder.deep_supervision is False
    logits = network(torch.randn(2, 2, *ANISOTROPIC["patch_size"]))
    assert logits.shape == (2, 3, 12, 20, 24)
    logits.mean().backward()


@pytest.mark.parametrize("preset", WITHOUT_DEEP_SUPERVISION)
def test_single_output_networks_refuse_deep_supervision(preset):
    with pytest.raises(ValueError, match="no deep supervision"):
        build(preset, True, **ANISOTROPIC)


@pytest.mark.parametrize("preset", TWO_D)
def test_two_dimensional_patches(preset):
    network = build(preset, False, patch_size=(20, 24), strides=[(1, 1), (2, 2), (2, 2)])
    assert network(torch.randn(2, 2, 20, 24)).shape == (2, 3, 20, 24)


def test_stunet_pads_short_plans_and_truncates_long_ones_to_five_poolings():
    five = build("stunet_tiny", True, (64, 64, 64), [(1, 1, 1)] + [(2, 2, 2)] * 5)
    assert [tuple(o.shape[2:]) for o in five(torch.randn(1, 2, 64, 64, 64))] == [
        (64, 64, 64), (32, 32, 32), (16, 16, 16), (8, 8, 8), (4, 4, 4)]
    with pytest.raises(ValueError, match="at most 6 stages"):
        build("stunet_tiny", True, (128, 128, 128), [(1, 1, 1)] + [(2, 2, 2)] * 6)


def test_tri_orientated_mamba_is_three_mamba_mixers_with_shared_projections():
    """ToM(x) = M_f(x) + flip(M_b(flip(x))) + P^-1 M_s(P x), each M_k a Mamba-1 mixer with the shared in/out
    projections and direction k's conv/x_proj/dt_proj/A/D; P visits (h, w) outer and depth inner."""
    torch.manual_seed(0)
    depth, height, width, channels = 3, 2, 4, 8
    mixer = TriOrientedMamba(channels).double()
    x = torch.randn(2, depth * height * width, channels, dtype=torch.float64)

    def as_mamba(suffix):
        reference = Mamba(channels).double()
        reference.in_proj, reference.out_proj = mixer.in_proj, mixer.out_proj
        for name in ("conv1d", "x_proj", "dt_proj"):
            setattr(reference, name, getattr(mixer, name + suffix))
        reference.A_log, reference.D = getattr(mixer, f"A{suffix}_log"), getattr(mixer, f"D{suffix}")
        return reference

    def inter_slice(t):  # (B, D*H*W, C) raster -> (B, H*W*D, C)
        return t.reshape(2, depth, height * width, channels).transpose(1, 2).reshape(2, -1, channels)

    def raster(t):
        return t.reshape(2, height * width, depth, channels).transpose(1, 2).reshape(2, -1, channels)

    expected = (as_mamba("")(x) + as_mamba("_b")(x.flip(1)).flip(1) + raster(as_mamba("_s")(inter_slice(x))))
    torch.testing.assert_close(mixer(x, depth), expected, rtol=1e-9, atol=1e-9)
