"""Every registered preset, timm-style (one parametrised test over ``preset_names()``), and the registry's
inheritance rules.

- every preset resolves, and a preset with a base holds only what differs from it;
- every tiny preset builds at a small plan and runs: nnU-Net's deep-supervision contract (one output per
  decoder stage, highest resolution first, the switch ``network.decoder.deep_supervision``), a single
  full-resolution output for networks without deep supervision, class logits for classifiers;
- every paper-scale preset builds on the meta device (no memory) at the networks benchmark's plan, and its
  parameter count equals the one recorded by benchmarks/bench_networks.py (its newest record; so presets rewritten as
  base + overrides give the same networks); where a paper gives a count, the preset is within 10% of it.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nnunet_stroke.networks import registry
from nnunet_stroke.networks.registry import (PresetError, UnknownPresetError, build_network, load_preset,
                                             preset_names, read_preset_file)

PRESETS = preset_names()
TINY = [name for name in PRESETS if "tiny" in name]
PAPER_SCALE = [name for name in PRESETS if "tiny" not in name]
SMALL_PLAN = {"patch_size": (8, 16, 16), "strides": [(1, 1, 1), (1, 2, 2), (2, 2, 2)]}
TWO_D_ONLY = {"strokenext"}  # architectures built for 2D configurations only (classifiers of single slices)
SMALL_PLAN_2D = {"patch_size": (32, 32), "strides": [(1, 1), (2, 2), (2, 2)]}
# the plan of benchmarks/bench_networks.py: 2 channels, 2 classes, 32^3, nnU-Net's isotropic pooling, 4 levels
BENCH_PLAN = {"input_channels": 2, "num_classes": 2, "patch_size": (32, 32, 32), "strides": [(1, 1, 1)] + [(2, 2, 2)] * 3}
BENCH_RECORDS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "networks"
# MONAI's SwinTransformer calls .item() on a torch.linspace while it is built, which the meta device refuses
NOT_ON_META = {"swin_unetr"}
ISLES_PLAN = {"input_channels": 2, "num_classes": 2, "patch_size": (80, 112, 112), "strides": [(1, 1, 1)] + [(2, 2, 2)] * 4}
# preset -> (plan, millions, source): counts a paper states for the network the preset builds
PAPER_COUNTS = {
    "lbmnet": (ISLES_PLAN, 66.42, "Kuang et al. 2026, section 5 (five-level ISLES-like plan: stem + 4 stages)"),
    "stunet_s": ({**BENCH_PLAN, "input_channels": 1, "num_classes": 105}, 14.6, "Huang et al. 2023, model scales"),
    "stunet_b": ({**BENCH_PLAN, "input_channels": 1, "num_classes": 105}, 58.3, "Huang et al. 2023, model scales"),
}


def small_plan(name: str) -> dict:
    return SMALL_PLAN_2D if load_preset(name)["architecture"] in TWO_D_ONLY else SMALL_PLAN


def bench_plan(name: str) -> dict:
    if load_preset(name)["architecture"] in TWO_D_ONLY:
        return {**BENCH_PLAN, "patch_size": (32, 32), "strides": [(1, 1)] + [(2, 2)] * 3}
    return BENCH_PLAN


def n_params(network: torch.nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def build_paper_scale(name: str, plan: dict, deep_supervision: bool = False) -> torch.nn.Module:
    device = "cpu" if load_preset(name)["architecture"] in NOT_ON_META else "meta"
    with torch.device(device):
        return build_network(name, deep_supervision=deep_supervision, **plan)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_resolves_and_holds_only_what_differs_from_its_base(name):
    preset = load_preset(name)
    assert preset["chain"][-1] == name and preset["architecture"] in registry._ARCHITECTURES
    assert preset["paper"] and preset["description"]
    raw = read_preset_file(name)
    if "base" in raw:
        base = load_preset(raw["base"])
        restated = {k for k, v in raw.get("params", {}).items() if base["params"].get(k, object()) == v}
        assert not restated, f"{name} restates its base's params {sorted(restated)}"
        assert raw.get("description", None) != base["description"] and raw.get("paper", None) != base["paper"]
    if name.endswith("_tiny") and "base" in raw:  # a tiny twin overrides its paper-scale parent
        assert "tiny" not in raw["base"], (name, raw["base"])


@pytest.fixture(scope="module")
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", TINY)
def test_tiny_preset_builds_and_runs_at_a_small_plan(name, single_thread):
    torch.manual_seed(0)
    plan = small_plan(name)
    patch, strides = plan["patch_size"], plan["strides"]
    try:
        network = build_network(name, input_channels=2, num_classes=3, deep_supervision=True, **plan)
    except ValueError as error:  # networks without deep supervision say so when asked for it
        assert "no deep supervision" in str(error)
        network = build_network(name, input_channels=2, num_classes=3, deep_supervision=False, **plan)
    network.eval()
    x = torch.randn(1, 2, *patch)
    with torch.no_grad():
        output = network(x)
        if isinstance(output, list):  # deep supervision: patch / cumulative stride, highest resolution first
            scale, expected = [1] * len(patch), []
            for stride in strides[:-1]:
                scale = [a * b for a, b in zip(scale, stride)]
                expected.append((1, 3, *(p // s for p, s in zip(patch, scale))))
            assert [tuple(o.shape) for o in output] == expected
            network.decoder.deep_supervision = False  # nnU-Net's switch for validation and prediction
            torch.testing.assert_close(network(x), output[0])
        elif output.dim() == 2:  # a classifier: class logits
            assert tuple(output.shape) == (1, 3)
        else:
            assert tuple(output.shape) == (1, 3, *patch)
    assert all(torch.isfinite(o).all() for o in (output if isinstance(output, list) else [output]))


def benchmark_counts() -> dict[str, str]:
    """preset -> parameter count in millions as RESULTS.md prints it (paper and tiny), from the newest record
    of benchmarks/bench_networks.py."""
    records = sorted(BENCH_RECORDS.glob("*.json"))
    counts = {}
    for row in json.loads(records[-1].read_text(encoding="utf-8"))["figures"]["rows"] if records else []:
        if "params_m" in row:
            counts[row["preset"]] = f"{row['params_m']:.2f}"
            if row.get("tiny_params_m") is not None:
                counts[row["tiny"]] = f"{row['tiny_params_m']:.3f}"
    return counts


BENCHMARKED = benchmark_counts()


@pytest.mark.parametrize("name", PAPER_SCALE)
def test_paper_scale_preset_builds_on_meta_with_the_benchmarked_count(name):
    network = build_paper_scale(name, bench_plan(name))
    count = n_params(network)
    if name in BENCHMARKED:
        assert f"{count / 1e6:.2f}" == BENCHMARKED[name], (name, count)
    if name in PAPER_COUNTS:
        plan, millions, source = PAPER_COUNTS[name]
        count = n_params(build_paper_scale(name, plan))
        assert abs(count / 1e6 / millions - 1) < 0.10, (name, count, source)


def test_tiny_counts_match_the_benchmark():
    """RESULTS.md never shows a stale count: the newest networks record, when there is one, matches the code
    (with no record its section says "not yet recorded" and shows no count)."""
    checked = [name for name in TINY if name in BENCHMARKED]
    if BENCHMARKED:  # the record was parsed, not merely found
        assert len(checked) >= 10 and len([name for name in PAPER_SCALE if name in BENCHMARKED]) >= 20
    for name in checked:
        with torch.device("meta") if load_preset(name)["architecture"] not in NOT_ON_META else torch.device("cpu"):
            count = n_params(build_network(name, deep_supervision=False, **bench_plan(name)))
        assert f"{count / 1e6:.3f}" == BENCHMARKED[name], (name, count)


# --- the registry's inheritance rules, on presets written to a temporary folder ---

@pytest.fixture
def preset_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_folder", lambda: tmp_path)

    def write(name: str, **content):
        (tmp_path / f"{name}.json").write_text(json.dumps(content), encoding="utf-8")
        return tmp_path / f"{name}.json"

    return write


def test_chain_resolves_root_first_then_overrides(preset_folder):
    preset_folder("root", architecture="lbmnet", paper="P", description="root",
                  params={"base_channels": 48, "max_channels": 768, "lsc_kernels": [5, 7]})
    preset_folder("child", base="root", description="child", params={"lsc_kernels": [5], "lsc_refine": False})
    preset_folder("grandchild", base="child", params={"base_channels": 8})
    resolved = load_preset("grandchild")
    assert resolved == {"architecture": "lbmnet", "paper": "P", "description": "child", "chain": ["root", "child", "grandchild"],
                        "params": {"base_channels": 8, "max_channels": 768, "lsc_kernels": [5], "lsc_refine": False}}
    with torch.device("meta"):
        network = build_network("grandchild", input_channels=1, num_classes=2, **SMALL_PLAN)
    assert network.encoder.stem[0].out_channels == 8
    assert {b.kernel_size for s in network.encoder.stages for b in s[1].depthwise} == {(5, 5, 5)}


@pytest.mark.parametrize("content, message", [
    ({"base": "root", "parms": {}}, "unknown top-level key"),
    ({"base": "root", "params": {"base_channel": 8}}, r"\['base_channel'\] are not arguments of architecture 'lbmnet'"),
    ({"base": "root", "params": {"patch_size": [8, 8, 8]}}, "come from nnU-Net's plans"),
    ({"base": "root", "architecture": "plain_unet"}, "inherits the base's architecture"),
    ({"base": "nowhere"}, "base 'nowhere' is not a preset"),
])
def test_invalid_preset_is_refused_naming_its_file(preset_folder, content, message):
    preset_folder("root", architecture="lbmnet", paper="P", description="root", params={})
    path = preset_folder("bad", description="bad", **content)
    with pytest.raises(PresetError, match=message) as error:
        load_preset("bad")
    assert str(path) in str(error.value)


def test_params_forwarded_through_a_builder_are_checked_against_the_receiver(preset_folder):
    preset_folder("pm", architecture="pmsan", paper="P", description="d",
                  params={"phi": 1.0, "base_widths": [8], "base_depths": [1], "base_attention_dim": 16,
                          "base_detection_hidden": 16, "recurrent_levels": 1, "recurrent_levls": 1})
    with pytest.raises(PresetError, match=r"\['recurrent_levls'\]"):
        load_preset("pm")


def test_cycle_is_refused(preset_folder):
    preset_folder("a", base="b", params={})
    preset_folder("b", base="a", params={})
    with pytest.raises(PresetError, match=r"cycle \(a -> b -> a\)") as error:
        load_preset("a")
    assert "a.json" in str(error.value)


def test_unknown_preset_and_unknown_override_are_refused():
    with pytest.raises(UnknownPresetError, match="unknown network preset 'lbmnet_huge'"):
        load_preset("lbmnet_huge")
    with pytest.raises(KeyError):  # the historical exception type still catches it
        load_preset("lbmnet_huge")
    with pytest.raises(PresetError, match="overrides: params \\['ssm_stage'\\]"):
        build_network("lbmnet_tiny", input_channels=1, num_classes=2, ssm_stage=2, **SMALL_PLAN)


def test_trainers_command_prints_the_resolved_preset(capsys):
    from nnunet_stroke.cli import main

    assert main(["trainers", "--preset", "lbmnet_abl_lsc_k5_tiny"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["chain"] == ["lbmnet", "lbmnet_abl_lsc_k5", "lbmnet_abl_lsc_k5_tiny"]
    assert printed["params"]["lsc_kernels"] == [5] and printed["params"]["base_channels"] == 8
    assert printed["params"]["bagf_gate"] is True  # inherited from the root
    assert main(["trainers", "--preset", "lbmnet_huge"]) == 2
    assert "unknown network preset 'lbmnet_huge'" in capsys.readouterr().err
