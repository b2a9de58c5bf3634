"""LBMNet's planner (`nnunet-stroke plan ID --planner lbmnet`) on the ATLAS and ISLES phantoms, the stock
``nnUNetv2_preprocess`` on its plans, the paper-scale parameter count on them, and the trainers' refusal of
plans with more than five levels (issue: LBMNet as its paper ran it)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from nnunet_helpers import make_trainer, run_stock

from nnunet_stroke.errors import UserError

PAPER_PARAMS = 66.42e6  # Kuang et al. 2026, section 5
ATLAS_ID, ISLES_ID = 971, 972
PLANS = "nnUNetLBMNetPlans"


def _plan_phantom(root: Path, layout: str, dataset_id: int, cases: int) -> dict:
    from nnunet_stroke.dataset_conversion import atlas2, isles22
    from nnunet_stroke.phantom import write_phantom
    from nnunet_stroke.workflows.planning import plan

    source = write_phantom(root / layout, layout, cases=cases, seed=0)
    raw = (atlas2 if layout == "atlas2" else isles22).convert(source, dataset_id, num_processes=1)
    plans_file = plan(dataset_id, "lbmnet", num_processes=1)
    run_stock(["nnUNetv2_preprocess", "-d", str(dataset_id), "-plans_name", PLANS, "-c", "3d_fullres", "-np", "1"],
              env=dict(os.environ))
    return {"raw": raw, "plans_file": plans_file, "plans": json.loads(plans_file.read_text(encoding="utf-8")),
            "dataset_json": json.loads((raw / "dataset.json").read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> dict[str, dict]:
    """The ATLAS phantom (1 mm T1w, 64x80x64) and the ISLES phantom (2 mm DWI + ADC, 40x64x64, one case
    with 4 mm slices), each planned with LBMNet's planner and preprocessed with the stock command."""
    root = tmp_path_factory.mktemp("lbmnet_planner")
    return {"atlas2": _plan_phantom(root, "atlas2", ATLAS_ID, cases=2),
            "isles22": _plan_phantom(root, "isles22", ISLES_ID, cases=3)}


@pytest.mark.parametrize("layout", ["atlas2", "isles22"])
def test_plans_are_1mm_with_at_most_five_levels(planned, layout):
    plans = planned[layout]["plans"]
    assert plans["plans_name"] == PLANS and planned[layout]["plans_file"].name == f"{PLANS}.json"
    assert "3d_lowres" not in plans["configurations"]
    for name, configuration in plans["configurations"].items():
        dim = 3 if name == "3d_fullres" else 2
        assert configuration["spacing"] == [1.0] * dim, name
        kwargs = configuration["architecture"]["arch_kwargs"]
        strides = kwargs["strides"]
        assert len(strides) == 5 and kwargs["n_stages"] == 5, (name, strides)
        assert len(kwargs["features_per_stage"]) == len(kwargs["kernel_sizes"]) == 5
        assert len(kwargs["n_conv_per_stage_decoder"]) == 4
        total = np.prod(np.array(strides), axis=0)
        assert all(p % t == 0 for p, t in zip(configuration["patch_size"], total)), (configuration["patch_size"], total)


def test_nnunet_default_planner_gives_six_levels_at_1mm_where_ours_gives_five(planned, monkeypatch):
    """The reference: nnU-Net's own planner at 1 mm on the ISLES phantom pools six levels (the issue's cause)."""
    monkeypatch.setenv("nnUNet_n_proc_DA", "1")  # nnU-Net's estimate sets torch's threads from it
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

    default = ExperimentPlanner(ISLES_ID, plans_name="nnUNetPlans_1mm", overwrite_target_spacing=[1.0, 1.0, 1.0])
    default_plans = default.plan_experiment()
    assert len(default_plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["strides"]) == 6
    ours = planned["isles22"]["plans"]["configurations"]["3d_fullres"]
    assert len(ours["architecture"]["arch_kwargs"]["strides"]) == 5


def test_nnunet_search_shrinks_the_median_patch_to_one_within_the_gpu_budget(planned):
    """nnU-Net's search shrank the median-sized patch, which does not fit 24 GB, to one whose estimate fits."""
    from nnunet_stroke.workflows.lbmnet_planner import nnUNetPlannerLBMNet, usable_gpu_bytes

    configuration = planned["isles22"]["plans"]["configurations"]["3d_fullres"]
    planner = nnUNetPlannerLBMNet(ISLES_ID)
    kwargs = configuration["architecture"]["arch_kwargs"]
    estimate = planner.static_estimate_VRAM_usage(configuration["patch_size"], 2, 2, "", kwargs, ())
    median = [int(round(s)) for s in configuration["median_image_size_in_voxels"]]
    assert estimate <= usable_gpu_bytes(24)
    assert planner.static_estimate_VRAM_usage(median, 2, 2, "", kwargs, ()) > usable_gpu_bytes(24)
    assert np.prod(configuration["patch_size"]) < np.prod(median)


def test_stock_preprocess_resamples_to_1mm(planned):
    """``nnUNetv2_preprocess -plans_name nnUNetLBMNetPlans`` wrote every case at 1 mm: each preprocessed shape
    is the cropped shape times the case's own spacing (2 mm, 4 mm slices for case 3)."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    for layout in ("atlas2", "isles22"):
        folder = Path(os.environ["nnUNet_preprocessed"]) / planned[layout]["raw"].name / f"{PLANS}_3d_fullres"
        dataset = infer_dataset_class(str(folder))(str(folder))
        assert len(dataset.identifiers) == planned[layout]["dataset_json"]["numTraining"]
        for identifier in dataset.identifiers:
            data, seg, _, properties = dataset.load_case(identifier)
            expected = np.round(np.array(properties["shape_after_cropping_and_before_resampling"]) *
                                np.array(properties["spacing"]))
            assert tuple(data.shape[1:]) == tuple(expected.astype(int)), (identifier, properties["spacing"])
            assert seg.shape[1:] == data.shape[1:]


@pytest.mark.parametrize("layout", ["atlas2", "isles22"])
def test_paper_scale_lbmnet_within_10_percent_of_the_paper_on_its_plans(planned, layout):
    """What ``nnUNetTrainerLBMNet`` builds on the plans (meta device: no memory) has 66.42 M +- 10 %."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_stroke.trainers import nnUNetTrainerLBMNet

    plans_manager = PlansManager(planned[layout]["plans"])
    configuration = plans_manager.get_configuration("3d_fullres")
    channels = len(planned[layout]["dataset_json"]["channel_names"])
    assert channels == (1 if layout == "atlas2" else 2)
    with torch.device("meta"):
        network = nnUNetTrainerLBMNet.build_network_architecture(plans_manager, configuration, channels, 2, True)
    params = sum(p.numel() for p in network.parameters())
    assert abs(params - PAPER_PARAMS) / PAPER_PARAMS < 0.10, params
    assert len(network.encoder.stages) == 4  # the paper's four encoder stages after the stem


def _six_level_plans(planned) -> dict:
    plans = json.loads(json.dumps(planned["isles22"]["plans"]))
    kwargs = plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    kwargs["strides"] = kwargs["strides"] + [[1, 2, 2]]
    kwargs["n_stages"] = 6
    return plans


@pytest.mark.parametrize("trainer_name", ["nnUNetTrainerLBMNet", "nnUNetTrainerLBMNet_AblT6M1",
                                          "nnUNetTrainerLBMNet_AblF11Concat_Tiny", "nnUNetTrainerLBMNet_Tiny"])
def test_lbmnet_trainers_refuse_plans_with_more_than_five_levels(planned, trainer_name):
    from nnunet_stroke import trainers

    dataset = type("Planned", (), {"dataset_json": planned["isles22"]["dataset_json"]})
    trainer = make_trainer(getattr(trainers, trainer_name), dataset, fold="all", plans=_six_level_plans(planned))
    with pytest.raises(UserError, match=f"nnunet-stroke plan {ISLES_ID} --planner lbmnet"):
        trainer.initialize()


def test_lbmnet_trainer_logs_its_parameters_next_to_the_papers(planned):
    from nnunet_stroke.trainers import nnUNetTrainerLBMNet_Tiny

    dataset = type("Planned", (), {"dataset_json": planned["isles22"]["dataset_json"]})
    trainer = make_trainer(nnUNetTrainerLBMNet_Tiny, dataset, fold="all", plans=planned["isles22"]["plans"])
    trainer.initialize()
    params = sum(p.numel() for p in trainer.network.parameters())
    log = Path(trainer.log_file).read_text(encoding="utf-8")
    assert f"preset lbmnet_tiny, {params / 1e6:.2f} M parameters; the paper's LBMNet has 66.42 M" in log


def test_plan_command_errors_name_the_fix(monkeypatch, capsys):
    from nnunet_stroke.cli import main

    assert main(["plan", "12345", "--planner", "lbmnet"]) == 2
    assert "convert it first" in capsys.readouterr().err.lower()
    assert main(["plan", str(ATLAS_ID), "--planner", "lbmnet", "--gpu-memory-gb", "2"]) == 2
    assert "at least 4 GB" in capsys.readouterr().err
    monkeypatch.delenv("nnUNet_preprocessed")
    assert main(["plan", str(ATLAS_ID), "--planner", "lbmnet"]) == 2
    assert "nnUNet_preprocessed is not set" in capsys.readouterr().err
