"""Baseline trainers on the planned phantom: build from nnU-Net's plans, two training iterations and a
prediction in-process (tiny variants); U-Mamba Bot through the stock ``nnUNetv2_train``/``nnUNetv2_predict``;
nnU-Net's ResEnc through ``nnUNetTrainerStrokeUNet`` with ResEnc plans; the ``_LBMNetRecipe`` trainers on
LBMNet's recipe (section 4.2) while the plain names keep nnU-Net's schedule."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunet_helpers import predict_in_process, stock_predict, stock_train, train_in_process
from nnunet_stroke.trainers import TRAINERS

BASELINES = ["nnUNetTrainerUNetPlusPlus", "nnUNetTrainerAttentionUNet", "nnUNetTrainerUNETR", "nnUNetTrainerSwinUNETR",
             "nnUNetTrainerTransUNet", "nnUNetTrainerUMambaBotCPU", "nnUNetTrainerUMambaEncCPU", "nnUNetTrainerSegMamba",
             "nnUNetTrainerSTUNet_S", "nnUNetTrainerSTUNet_B"]
SINGLE_OUTPUT = {"nnUNetTrainerAttentionUNet", "nnUNetTrainerUNETR", "nnUNetTrainerSwinUNETR", "nnUNetTrainerSegMamba"}
STOCK_TRAINER = "nnUNetTrainerUMambaBotCPU_Tiny"


def test_every_baseline_is_registered_with_a_paper():
    for name in BASELINES:
        trainer = TRAINERS[name]
        assert trainer.network_preset and trainer.tiny_preset and trainer.paper
        assert TRAINERS[f"{name}_Tiny"].is_tiny


@pytest.mark.parametrize("name", BASELINES)
def test_tiny_baseline_trains_and_predicts_in_process(name, planned_phantom, tmp_path):
    trainer = train_in_process(TRAINERS[f"{name}_Tiny"], planned_phantom, fold=5, iterations=2)
    assert trainer.enable_deep_supervision == (name not in SINGLE_OUTPUT)
    losses = trainer.logger.local_logger.my_fantastic_logging["train_losses"]
    assert len(losses) == 1 and np.isfinite(losses[0])
    case = planned_phantom.heldout["5"][0]
    predict_in_process(trainer, planned_phantom, [case], tmp_path)
    prediction = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"{case}.nii.gz")))
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(planned_phantom.raw / "labelsTr" / f"{case}.nii.gz")))
    assert prediction.shape == reference.shape and set(np.unique(prediction)) <= {0, 1}


def test_umamba_bot_through_the_stock_commands(planned_phantom, tmp_path):
    fold = "6"
    stock_train(planned_phantom, STOCK_TRAINER, fold)
    case = planned_phantom.heldout[fold][0]
    out = stock_predict(planned_phantom, STOCK_TRAINER, fold, [case], tmp_path)
    prediction = sitk.ReadImage(str(out / f"{case}.nii.gz"))
    reference = sitk.ReadImage(str(planned_phantom.raw / "labelsTr" / f"{case}.nii.gz"))
    assert prediction.GetSize() == reference.GetSize()


def test_stroke_unet_with_resenc_plans_builds_nnunets_residual_encoder_unet(planned_phantom, monkeypatch):
    """ResEnc M comes from nnU-Net: plan the phantom with nnU-Net's ResEnc M planner (Python API, no
    preprocessing) and build ``nnUNetTrainerStrokeUNet``'s network from those plans."""
    from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet
    from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import \
        nnUNetPlannerResEncM
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    monkeypatch.setenv("nnUNet_n_proc_DA", "1")  # the planner sets torch's thread count from it (0 in tests)
    planner = nnUNetPlannerResEncM(planned_phantom.dataset_id)
    plans = planner.plan_experiment()
    assert plans["plans_name"] == "nnUNetResEncUNetMPlans"
    plans_manager = PlansManager(plans)
    configuration = plans_manager.get_configuration("3d_fullres")
    trainer_class = TRAINERS["nnUNetTrainerStrokeUNet"]
    network = trainer_class.build_network_architecture(plans_manager, configuration, 2, 2, True)
    assert isinstance(network, ResidualEncoderUNet)
    assert list(configuration.network_arch_init_kwargs["n_blocks_per_stage"][:2]) == [1, 3]  # ResEnc M/L: 1, 3, 4, 6, ...


RECIPE_BASELINES = ["nnUNetTrainerStrokeUNet", "nnUNetTrainerUNetPlusPlus", "nnUNetTrainerAttentionUNet",
                    "nnUNetTrainerUNETR", "nnUNetTrainerSwinUNETR", "nnUNetTrainerTransUNet",
                    "nnUNetTrainerUMambaBotCPU", "nnUNetTrainerSTUNet_S", "nnUNetTrainerSTUNet_B",
                    "nnUNetTrainerSegMamba"]
CHECKPOINT_INIT_KWARGS = {"plans", "configuration", "fold", "dataset_json", "device"}  # nnU-Net's own signature


def _schedule(trainer) -> tuple:
    """(lr, weight decay, epochs, global batch size, SGD momentum) as the trainer would train."""
    trainer.network = torch.nn.Linear(2, 2)  # configure_optimizers only needs parameters
    optimizer, _ = trainer.configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (trainer.initial_lr, trainer.weight_decay)
    return (trainer.initial_lr, trainer.weight_decay, trainer.num_epochs, trainer.configuration_manager.batch_size,
            group["momentum"])


def _hybrid_loss_weights(trainer) -> torch.Tensor:
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    loss = trainer._build_loss()
    assert isinstance(loss, DeepSupervisionWrapper) == trainer.enable_deep_supervision
    inner = loss.loss if isinstance(loss, DeepSupervisionWrapper) else loss
    assert isinstance(inner, DC_and_CE_loss) and inner.ce.weight is not None
    return inner.ce.weight


@pytest.mark.parametrize("name", RECIPE_BASELINES)
def test_lbmnet_recipe_trainer_trains_on_lbmnets_recipe(name, planned_phantom):
    from nnunet_helpers import make_trainer
    from nnunet_stroke.trainers.lbmnet import nnUNetTrainerLBMNet

    recipe_class = TRAINERS[f"{name}_LBMNetRecipe"]
    trainer = make_trainer(recipe_class, planned_phantom)
    lbmnet = make_trainer(nnUNetTrainerLBMNet, planned_phantom)
    assert _schedule(trainer) == _schedule(lbmnet) == (1e-3, 3e-5, 300, 2, 0.99)  # LBMNet section 4.2
    assert trainer.enable_deep_supervision == (name not in SINGLE_OUTPUT)
    assert torch.equal(_hybrid_loss_weights(trainer), _hybrid_loss_weights(lbmnet))
    assert set(trainer.my_init_kwargs) == CHECKPOINT_INIT_KWARGS
    assert recipe_class.network_preset == TRAINERS[name].network_preset  # same network as the plain name
    tiny = TRAINERS[f"{name}_LBMNetRecipe_Tiny"]
    assert issubclass(tiny, recipe_class) and tiny.is_tiny and tiny.tiny_preset == TRAINERS[name].tiny_preset


@pytest.mark.parametrize("name", RECIPE_BASELINES)
def test_plain_baseline_names_keep_nnunets_schedule(name, planned_phantom):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunet_helpers import make_trainer

    stock = make_trainer(nnUNetTrainer, planned_phantom)
    trainer = make_trainer(TRAINERS[name], planned_phantom)
    planned_batch = planned_phantom.plans["configurations"]["3d_fullres"]["batch_size"]
    assert _schedule(trainer) == _schedule(stock) == (1e-2, 3e-5, 1000, planned_batch, 0.99)
    _hybrid_loss_weights(trainer)  # the package's loss on nnU-Net's schedule


def test_recipe_trainers_are_listed_by_the_trainers_command(capsys):
    from nnunet_stroke.cli import main

    assert main(["trainers"]) == 0
    listed = {line for line in capsys.readouterr().out.splitlines() if line.startswith("nnUNetTrainer")}
    assert {f"{name}_LBMNetRecipe{tiny}" for name in RECIPE_BASELINES for tiny in ("", "_Tiny")} <= listed
