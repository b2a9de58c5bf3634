"""LBMNet trainers: the paper's recipe (section 4.2) against nnU-Net's own defaults, discovery of every
LBMNet trainer by nnU-Net's lookup, and a tiny LBMNet trained and used for prediction through the stock
``nnUNetv2_train`` / ``nnUNetv2_predict`` commands on the planned phantom."""

import SimpleITK as sitk
import numpy as np
import torch

from nnunet_helpers import stock_predict, stock_train
from nnunet_stroke.networks.lbmnet import LBMNet
from nnunet_stroke.trainers import TRAINERS
from nnunet_stroke.trainers.lbmnet import nnUNetTrainerLBMNet, nnUNetTrainerLBMNet_NnunetSchedule

TRAINER = "nnUNetTrainerLBMNet_Tiny"


def test_paper_recipe_and_nnunet_schedule(planned_phantom):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunet_helpers import make_trainer

    plans = planned_phantom.plans
    planned_batch = plans["configurations"]["3d_fullres"]["batch_size"]
    stock = make_trainer(nnUNetTrainer, planned_phantom, plans=plans)
    paper = make_trainer(nnUNetTrainerLBMNet, planned_phantom, plans=plans)
    assert (paper.initial_lr, paper.weight_decay, paper.num_epochs) == (1e-3, 3e-5, 300)
    assert paper.configuration_manager.batch_size == 2
    assert plans["configurations"]["3d_fullres"]["batch_size"] == planned_batch  # the plans stay untouched

    paper.initialize()
    assert paper.batch_size == 2 and paper.enable_deep_supervision
    group = paper.optimizer.param_groups[0]
    assert isinstance(paper.optimizer, torch.optim.SGD)
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (1e-3, 0.99, 3e-5)
    assert isinstance(paper.network, LBMNet) and paper.network.decoder.deep_supervision

    schedule = make_trainer(nnUNetTrainerLBMNet_NnunetSchedule, planned_phantom, plans=plans)
    assert (schedule.initial_lr, schedule.weight_decay, schedule.num_epochs) == \
        (stock.initial_lr, stock.weight_decay, stock.num_epochs)
    assert schedule.configuration_manager.batch_size == stock.configuration_manager.batch_size == planned_batch


def test_nnunet_finds_every_lbmnet_trainer_and_builds_its_tiny_network(planned_phantom):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    configuration = PlansManager(planned_phantom.plans).get_configuration("3d_fullres")
    names = sorted(n for n in TRAINERS if n.startswith("nnUNetTrainerLBMNet"))
    assert len(names) == 50
    for name in names:
        found = recursive_find_trainer_class_by_name(name)
        assert found.__name__ == name and found.__module__.startswith("nnunet_stroke")
        if name.endswith("_Tiny"):
            network = found.build_network_architecture(None, configuration, 2, 2, enable_deep_supervision=False)
            assert hasattr(network, "decoder") and network.decoder.deep_supervision is False


def test_tiny_lbmnet_trains_and_predicts_through_the_stock_commands(planned_phantom, tmp_path):
    fold = "5"
    stock_train(planned_phantom, TRAINER, fold)
    results = planned_phantom.raw.parents[1] / "nnUNet_results" / planned_phantom.name
    checkpoint = torch.load(next(results.glob(f"{TRAINER}__*/fold_{fold}/checkpoint_final.pth")),
                            map_location="cpu", weights_only=False)
    assert checkpoint["trainer_name"] == TRAINER
    assert any("ssm" in key or "mixers" in key for key in checkpoint["network_weights"])

    case = planned_phantom.heldout[fold][0]
    out = stock_predict(planned_phantom, TRAINER, fold, [case], tmp_path)
    prediction = sitk.ReadImage(str(out / f"{case}.nii.gz"))
    reference = sitk.ReadImage(str(planned_phantom.raw / "labelsTr" / f"{case}.nii.gz"))
    assert prediction.GetSize() == reference.GetSize() and prediction.GetSpacing() == reference.GetSpacing()
    assert set(np.unique(sitk.GetArrayFromImage(prediction))) <= {0, 1}
