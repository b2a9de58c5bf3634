"""Every registered tiny preset (timm-style, from the registry, no hand-kept lists) on an anisotropic 3D
plan and a 2D plan: nnU-Net's output contract (deep-supervision logits at patch / cumprod(strides), highest
resolution first, the switch ``network.decoder.deep_supervision``; one full-resolution output for networks
without deep supervision, which refuse it by name; class logits for classifiers); a network built for one dimensionality only refuses the other with a ValueError naming it. Plus STU-Net's pooling
rule and SegMamba's tri-orientated mixer against three Mamba mixers."""
import pytest
import torch

from nnunet_stroke.networks.baselines.segmamba import TriOrientedMamba
from nnunet_stroke.networks.registry import build_network, preset_names
from nnunet_stroke.networks.ssm import Mamba

TINY = [name for name in preset_names() if "tiny" in name]
PLANS = {
    "anisotropic_3d": dict(patch_size=(12, 20, 24), strides=[(1, 1, 1), (1, 2, 2), (2, 2, 2)]),
    "2d": dict(patch_size=(20, 24), strides=[(1, 1), (2, 2), (2, 2)]),
}
ANISOTROPIC = PLANS["anisotropic_3d"]


def build(preset, deep_supervision, patch_size, strides, input_channels=2, num_classes=3):
    torch.manual_seed(0)
    return build_network(preset, input_channels=input_channels, num_classes=num_classes, patch_size=patch_size,
                         strides=strides, deep_supervision=deep_supervision)


def expected_deep_supervision_shapes(batch, classes, patch, strides):
    scale, shapes = [1] * len(patch), []
    for stride in strides[:-1]:
        scale = [a * b for a, b in zip(scale, stride)]
        shapes.append((batch, classes, *(p // s for p, s in zip(patch, scale))))
    return shapes


def build_for_plan(preset, plan):
    """The network with deep supervision, else without (it must refuse by name); None when it is built for
    the other dimensionality only and says so."""
    other = "3D" if len(plan["patch_size"]) == 2 else "2D"
    for deep_supervision in (True, False):
        try:
            return build(preset, deep_supervision, **plan)
        except ValueError as error:
            message = str(error)
            if f"{other} network" in message or f"{other} classifier" in message:
                return None
            assert deep_supervision and "no deep supervision" in message, message


@pytest.mark.parametrize("plan_name", PLANS)
@pytest.mark.parametrize("preset", TINY)
def test_every_tiny_preset_follows_nnunets_output_contract(preset, plan_name):
    plan = PLANS[plan_name]
    patch = plan["patch_size"]
    network = build_for_plan(preset, plan)
    if network is None:
        return
    x = torch.randn(1, 2, *patch)
    with torch.no_grad():
        output = network(x)
        if isinstance(output, list):
            assert [tuple(o.shape) for o in output] == expected_deep_supervision_shapes(1, 3, patch, plan["strides"])
            network.decoder.deep_supervision = False  # nnU-Net's switch (validation, prediction)
            output = network(x)
        else:
            assert output.dim() == 2 or network.decoder.deep_supervision is False
    expected = (1, 3) if output.dim() == 2 else (1, 3, *patch)  # class logits of a classifier, else full resolution
    assert tuple(output.shape) == expected and torch.isfinite(output).all()


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
