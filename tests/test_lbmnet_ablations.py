"""The ablation presets of LBMNet's Tables 6-9 and Figure 11 (Kuang et al., Front. Med. 2026): each
trainer's network is inspected for what its row removes or keeps, at both scales: the tiny preset built
on the CPU and the paper-scale preset built on the meta device (no memory) on a five-level plan (stem +
the paper's four encoder stages), so a paper-scale preset that loses its SSM or its LSC blocks fails.
Every tiny preset differs from its paper-scale preset only in the scale keys."""
import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet

from nnunet_stroke.networks.blocks.asc import ASCBlock
from nnunet_stroke.networks.blocks.bagf import BAGF
from nnunet_stroke.networks.blocks.conv_blocks import DepthwiseResidualBlock, ResidualBlock
from nnunet_stroke.networks.blocks.lsc import LSCBlock
from nnunet_stroke.networks.registry import build_network, load_preset
from nnunet_stroke.networks.ssm import DirectionalScan3d
from nnunet_stroke.trainers import lbmnet as lbmnet_trainers

FIVE_LEVELS = [[1, 1, 1]] + [[2, 2, 2]] * 4
PATCH = {"tiny": (16, 16, 16), "paper": (80, 112, 112)}  # the paper-scale patch: the 2 mm ISLES-like plan
SCALES = ("tiny", "paper")
SCALE_KEYS = {"base_channels", "max_channels", "encoder_blocks", "decoder_blocks", "ssm_stages"}
# what the scale keys give on five levels: LSC (or replacement) blocks per encoder stage, decoder levels with SSM
BLOCKS_PER_STAGE = {"tiny": 1, "paper": 2}
SSM_LEVELS = {"tiny": (2, 3), "paper": (0, 1, 2, 3)}


def network_of(suffix: str, scale: str = "tiny") -> torch.nn.Module:
    trainer = getattr(lbmnet_trainers, f"nnUNetTrainerLBMNet_{suffix}")
    preset = trainer.tiny_preset if scale == "tiny" else trainer.network_preset
    with torch.device("cpu" if scale == "tiny" else "meta"):
        return build_network(preset, input_channels=2, num_classes=2, patch_size=PATCH[scale],
                             strides=FIVE_LEVELS, deep_supervision=True)


def instances(module, cls):
    return [m for m in module.modules() if isinstance(m, cls)]


def encoder_depthwise_kernels(network) -> set:
    return {c.kernel_size[0] for c in network.encoder.modules()
            if isinstance(c, torch.nn.Conv3d) and c.groups == c.in_channels > 1}


def bagf_parts(network) -> set:
    parts = set()
    for fusion in instances(network, BAGF):
        parts |= {name for name in ("encoder_residual", "spatial_attention", "channel_attention")
                  if not isinstance(getattr(fusion, name), torch.nn.Identity)}
        parts |= {"gate"} if fusion.gate is not None else set()
    return parts


def decoder_parts(network) -> set:
    return ({"asc"} if instances(network.decoder, ASCBlock) else set()) | \
        ({"ssm"} if instances(network.decoder, DirectionalScan3d) else set())


FULL_BAGF = {"encoder_residual", "spatial_attention", "channel_attention", "gate"}
# row -> (encoder block, encoder depthwise kernels, decoder parts, BAGF parts)
ROWS = {
    "AblT6M2": (LSCBlock, {5, 7}, set(), set()),
    "AblT6M3": (None, set(), {"asc", "ssm"}, set()),
    "AblT6M4": (LSCBlock, {5, 7}, {"asc", "ssm"}, set()),
    "AblT6M5": (LSCBlock, {5, 7}, {"asc", "ssm"}, FULL_BAGF),
    "AblT7Base": (ResidualBlock, set(), {"asc", "ssm"}, FULL_BAGF),
    "AblT7A": (LSCBlock, {5}, {"asc", "ssm"}, FULL_BAGF),
    "AblT7B": (LSCBlock, {7}, {"asc", "ssm"}, FULL_BAGF),
    "AblT7C": (LSCBlock, {9}, {"asc", "ssm"}, FULL_BAGF),
    "AblT7D": (LSCBlock, {5, 7}, {"asc", "ssm"}, FULL_BAGF),
    "AblT8Base": (LSCBlock, {5, 7}, set(), FULL_BAGF),
    "AblT8OnlyASC": (LSCBlock, {5, 7}, {"asc"}, FULL_BAGF),
    "AblT8OnlySSM": (LSCBlock, {5, 7}, {"ssm"}, FULL_BAGF),
    "AblF11Concat": (LSCBlock, {5, 7}, {"asc", "ssm"}, set()),
    "AblF11EncRes": (LSCBlock, {5, 7}, {"asc", "ssm"}, {"encoder_residual"}),
    "AblF11EncSA": (LSCBlock, {5, 7}, {"asc", "ssm"}, {"spatial_attention"}),
    "AblF11DecCA": (LSCBlock, {5, 7}, {"asc", "ssm"}, {"channel_attention"}),
}


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("row", sorted(ROWS))
def test_ablation_row_removes_and_keeps_its_components(row, scale):
    encoder_block, kernels, decoder, bagf = ROWS[row]
    network = network_of(row, scale)
    assert len(network.encoder.stages) == 4 and len(network.decoder.stages) == 4
    if encoder_block is None:
        assert not instances(network.encoder, LSCBlock) and not instances(network.encoder, ResidualBlock)
    else:  # every encoder stage holds the row's blocks, as many as the scale gives
        assert [len(instances(stage, encoder_block)) for stage in network.encoder.stages] == \
            [BLOCKS_PER_STAGE[scale]] * 4
    assert encoder_depthwise_kernels(network) == kernels
    assert decoder_parts(network) == decoder
    if "ssm" in decoder:  # the SSM sits in exactly the decoder levels the scale gives
        assert network.decoder.ssm_levels == SSM_LEVELS[scale]
        assert [bool(instances(stage, DirectionalScan3d)) for stage in network.decoder.stages] == \
            [level in SSM_LEVELS[scale] for level in (3, 2, 1, 0)]
    if "asc" in decoder:
        assert all(instances(stage, ASCBlock) for stage in network.decoder.stages)
    assert bagf_parts(network) == bagf


@pytest.mark.parametrize("scale", SCALES)
def test_table7_refinement_only_in_the_full_lsc(scale):
    def has_refinement(network):
        return all(isinstance(block.refine, torch.nn.Conv3d) and block.refine.kernel_size == (3, 3, 3)
                   for block in instances(network, LSCBlock))
    assert has_refinement(network_of("AblT7Ours", scale))
    assert not any(has_refinement(network_of(row, scale)) for row in ("AblT7A", "AblT7B", "AblT7C", "AblT7D"))


@pytest.mark.parametrize("scale", SCALES)
def test_table6_model1_is_a_plain_unet_without_any_lbmnet_part(scale):
    network = network_of("AblT6M1", scale)
    assert isinstance(network, PlainConvUNet)
    for part in (DirectionalScan3d, LSCBlock, ASCBlock, BAGF, DepthwiseResidualBlock):
        assert not instances(network, part)
    widths = [stage[0].convs[0].conv.out_channels for stage in network.encoder.stages]
    assert widths == ([8, 16, 32, 64, 64] if scale == "tiny" else [48, 96, 192, 384, 768])  # LBMNet's widths


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("row,mixers", [("AblT9OneWay", 1), ("AblT9TwoWay", 2), ("AblT9FourWay", 4)])
def test_table9_scan_directions(row, mixers, scale):
    scans = instances(network_of(row, scale), DirectionalScan3d)
    assert scans and all(len(scan.mixers) == mixers for scan in scans)
    if mixers == 4:  # bidirectional along the depth-first (D) and the height-first (H) orders
        assert all(scan.directions == (("raster", False), ("raster", True), ("height-major", False),
                                       ("height-major", True)) for scan in scans)


def test_every_lbmnet_trainer_has_a_tiny_preset_that_only_shrinks_the_scale():
    trainers = [t for n, t in vars(lbmnet_trainers).items() if n.startswith("nnUNetTrainerLBMNet")]
    assert len(trainers) == 2 + len(lbmnet_trainers.ABLATIONS)
    for trainer in trainers:
        paper, small = load_preset(trainer.network_preset), load_preset(trainer.tiny_preset)
        assert small["chain"] == [*paper["chain"], trainer.tiny_preset]  # the tiny twin inherits from it
        assert paper["architecture"] == small["architecture"]
        differing = {k for k in paper["params"].keys() | small["params"].keys()
                     if paper["params"].get(k) != small["params"].get(k)}
        assert differing <= SCALE_KEYS, (trainer.__name__, differing)
