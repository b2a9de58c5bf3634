"""LBMNet on nnU-Net plans: shapes and deep supervision for several planned patches and poolings, the
level mapping of the paper's stem + four encoder stages, SSM placement, gradients."""

import math

import pytest
import torch

from nnunet_stroke.networks.blocks.bsc_mamba import BSCMamba
from nnunet_stroke.networks.registry import build_network
from nnunet_stroke.networks.ssm import DirectionalScan3d

ISLES_PATCH = (80, 112, 112)  # 2 mm ISLES-like plan, five resolution levels
ISLES_STRIDES = [[1, 1, 1]] + [[2, 2, 2]] * 4

PLANS = {
    "isles-like, 5 levels (scaled patch)": ((16, 32, 32), ISLES_STRIDES),
    "anisotropic (1,2,2)": ((8, 32, 24), [[1, 1, 1], [1, 2, 2], [2, 2, 2], [1, 2, 2]]),
    "3 levels": ((12, 16, 20), [[1, 1, 1], [2, 2, 2], [2, 2, 2]]),
    "2d": ((32, 24), [[1, 1], [2, 2], [2, 2], [2, 2]]),
}


def tiny(patch, strides, deep_supervision=True, input_channels=2, num_classes=3, **overrides):
    return build_network("lbmnet_tiny", input_channels=input_channels, num_classes=num_classes, patch_size=patch,
                         strides=strides, deep_supervision=deep_supervision, **overrides)


def expected_shapes(patch, strides, num_classes):
    """nnU-Net's deep-supervision contract: output i at patch / prod(strides[:i+1]), highest first."""
    shapes, scale = [], [1] * len(patch)
    for stride in strides[:-1]:
        scale = [a * b for a, b in zip(scale, stride)]
        shapes.append((num_classes, *(p // s for p, s in zip(patch, scale))))
    return shapes


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_outputs_follow_the_plan_with_and_without_deep_supervision(plan):
    torch.manual_seed(0)
    patch, strides = PLANS[plan]
    network = tiny(patch, strides).eval()
    x = torch.randn(2, 2, *patch)
    with torch.no_grad():
        outputs = network(x)
        assert isinstance(outputs, list)
        assert [tuple(o.shape[1:]) for o in outputs] == expected_shapes(patch, strides, 3)
        assert all(o.shape[0] == 2 for o in outputs)
        network.decoder.deep_supervision = False  # nnU-Net's switch for validation and prediction
        single = network(x)
    assert isinstance(single, torch.Tensor) and single.shape == (2, 3, *patch)
    torch.testing.assert_close(single, outputs[0])


def test_isles_plan_maps_stem_and_four_encoder_stages_onto_the_five_levels():
    with torch.device("meta"):  # paper scale, no memory; its count against the paper: tests/test_presets.py
        network = build_network("lbmnet", input_channels=2, num_classes=2, patch_size=ISLES_PATCH,
                                strides=ISLES_STRIDES, deep_supervision=True)
    encoder = network.encoder
    assert len(encoder.stages) == 4  # the paper's 4-stage encoder, after the stem
    assert encoder.stem[0].stride == (1, 1, 1)
    assert [stage[0][0].stride for stage in encoder.stages] == [(2, 2, 2)] * 4
    assert [stage[0][0].out_channels for stage in encoder.stages] == [96, 192, 384, 768]  # 48 * 2^l
    assert len(network.decoder.stages) == 4 and network.decoder.ssm_levels == (0, 1, 2, 3)


def test_tiny_preset_keeps_the_ssm_in_the_two_coarsest_decoder_stages():
    network = tiny(ISLES_PATCH, ISLES_STRIDES)
    assert network.decoder.ssm_levels == (2, 3)
    stages = list(network.decoder.stages)  # coarse to fine: levels 3, 2, 1, 0
    has_ssm = [any(isinstance(m, DirectionalScan3d) for m in stage.modules()) for stage in stages]
    assert has_ssm == [True, True, False, False]
    assert all(isinstance(stage.blocks[0], BSCMamba) for stage in stages)


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)
    patch, strides = PLANS["anisotropic (1,2,2)"]
    network = tiny(patch, strides, ssm_stages="all")
    outputs = network(torch.randn(2, 2, *patch))
    sum(o.square().mean() for o in outputs).backward()
    missing = [name for name, p in network.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_patch_not_divisible_by_the_plan_is_refused():
    with pytest.raises(ValueError, match="not divisible by the total stride"):
        tiny((20, 32, 32), ISLES_STRIDES)
    with pytest.raises(ValueError, match="entries each"):
        tiny((32, 32, 32), [[1, 1], [2, 2]])


def test_distributed_data_parallel_runs_two_steps(tmp_path):
    """nnU-Net's -num_gpus wraps the network in DDP without find_unused_parameters: a parameter that gets
    no gradient fails the second step. Checked here on CPU with the gloo backend (world size 1)."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        patch, strides = PLANS["3 levels"]
        network = torch.nn.parallel.DistributedDataParallel(tiny(patch, strides))
        optimizer = torch.optim.SGD(network.parameters(), lr=1e-3, momentum=0.99)
        for _ in range(2):
            optimizer.zero_grad()
            sum(o.mean() for o in network(torch.randn(2, 2, *patch))).backward()
            optimizer.step()
        converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(network.module)  # as nnU-Net does under DDP
        assert set(converted.state_dict()) == set(tiny(patch, strides).state_dict())
    finally:
        dist.destroy_process_group()


def test_deviations_table_in_the_docs_is_what_the_script_measures():
    """docs/lbmnet.md's deviations table is written by benchmarks/lbmnet_deviations.py from the paper-scale
    network (meta device); a changed network without a rerun of the script fails here."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "lbmnet_deviations.py"
    spec = importlib.util.spec_from_file_location("lbmnet_deviations", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    total, rows = script.rows()
    assert total == sum(p.numel() for p in script.build().parameters())
    costs = {choice: params for choice, _, _, params in rows}
    widths = (48, 96, 192, 384)  # the decoder levels 0-3 holding a BSC-Mamba block

    def mamba_v1(d, d_state=16, d_conv=4, expand=2):  # mamba-ssm v1 Mamba: 3Ed^2 + Ed(d_conv + 2R + 3N + 3)
        return 3 * expand * d * d + expand * d * (d_conv + 2 * math.ceil(d / 16) + 3 * d_state + 3)

    assert costs["SSM: pre-LayerNorm before the scans"] == sum(2 * c for c in widths)
    assert costs["SSM: one Mamba per direction (cost: against one shared by both)"] == sum(map(mamba_v1, widths))
    se = [v for k, v in costs.items() if k.startswith("ASC eq. 4: f_SE")]
    assert se == [sum(c * c // 2 + 5 * c // 4 for c in widths)]  # Linear C -> C/4 -> C with biases
    assert script.table_in_doc() == script.table(), "rerun: python benchmarks/lbmnet_deviations.py"
