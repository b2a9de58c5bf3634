"""Trainer discovery through the shim, names, the hybrid loss and the _Tiny mechanism."""
import importlib
import inspect
import pkgutil
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_stroke.trainers import TRAINERS
from nnunet_stroke.trainers.base import inverse_frequency_weights, nnUNetTrainerStrokeUNet


def nnunet_builtin_trainer_names() -> set[str]:
    import nnunetv2.training.nnUNetTrainer as package

    names = set()
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        try:
            module = importlib.import_module(info.name)
        except Exception:  # optional dependencies of some built-in variants
            continue
        names |= {n for n, o in vars(module).items() if inspect.isclass(o) and n.startswith("nnUNetTrainer")}
    return names


def test_stock_lookup_finds_our_trainers_through_the_shim():
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    for name in ("nnUNetTrainerStrokeUNet", "nnUNetTrainerStrokeUNet_Tiny"):
        found = recursive_find_trainer_class_by_name(name)
        assert found.__name__ == name and found.__module__.startswith("nnunet_stroke")


def test_no_trainer_name_clashes_with_nnunet():
    builtin = nnunet_builtin_trainer_names()
    assert "nnUNetTrainer" in builtin and "nnUNetTrainer_1epoch" in builtin  # the walk saw nnU-Net's trainers
    assert not (set(TRAINERS) & builtin)


def test_every_trainer_has_a_tiny_variant():
    full = [n for n in TRAINERS if not n.endswith("_Tiny")]
    assert full
    for name in full:
        tiny = TRAINERS[f"{name}_Tiny"]
        assert issubclass(tiny, TRAINERS[name]) and tiny.is_tiny


def test_inverse_frequency_weights_by_hand():
    np.testing.assert_allclose(inverse_frequency_weights([900, 100], 10.0), [1.0, 9.0])
    np.testing.assert_allclose(inverse_frequency_weights([990, 10], 10.0), [1.0, 10.0])  # 99 capped at 10
    np.testing.assert_allclose(inverse_frequency_weights([800, 150, 50], 10.0), [1.0, 800 / 150, 10.0])
    np.testing.assert_allclose(inverse_frequency_weights([100, 0], 10.0), [1.0, 10.0])  # absent class: the cap


def test_hybrid_loss_is_dice_plus_weighted_ce_and_differs_from_nnunet(planned_phantom):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunet_helpers import make_trainer

    ours = make_trainer(nnUNetTrainerStrokeUNet, planned_phantom)
    default = make_trainer(nnUNetTrainer, planned_phantom)
    for trainer in (ours, default):
        trainer.enable_deep_supervision = False
    ours_loss, default_loss = ours._build_loss(), default._build_loss()
    weights = ours_loss.ce.weight
    assert weights[0] == 1.0 and weights[1] > 1.0  # lesion voxels are rarer than background

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 8, 8, 8, generator=generator)
    target = torch.zeros(2, 1, 8, 8, 8)
    target[0, 0, 2:4, 2:4, 2:4] = 1  # 8 of 1024 voxels: imbalanced
    log_p = torch.log_softmax(logits, 1)
    labels = target[:, 0].long()
    picked = log_p.gather(1, labels[:, None])[:, 0]
    w = weights[labels]
    weighted_ce = -(w * picked).sum() / w.sum()
    plain_ce = -picked.mean()
    dice_term = default_loss(logits, target) - plain_ce  # nnU-Net's loss = CE + Dice term (same Dice settings)
    assert torch.allclose(ours_loss(logits, target), weighted_ce + dice_term, atol=1e-5)
    assert not torch.allclose(ours_loss(logits, target), default_loss(logits, target), atol=1e-3)


def test_tiny_planned_unet_has_cpu_widths(planned_phantom):
    from nnunet_helpers import make_trainer

    tiny = make_trainer(TRAINERS["nnUNetTrainerStrokeUNet_Tiny"], planned_phantom)
    network = tiny.build_network_architecture(tiny.plans_manager, tiny.configuration_manager, 2, 2, True)
    widths = [stage[-1].output_channels for stage in network.encoder.stages]
    assert widths[:4] == [8, 16, 32, 64] and max(widths) == 64
    assert tiny.num_iterations_per_epoch == 25 and tiny.num_epochs == 40


@pytest.mark.parametrize("env,expected", [({"NNUNET_STROKE_TINY_EPOCHS": "3", "NNUNET_STROKE_TINY_ITERATIONS": "7"}, (3, 7))])
def test_tiny_schedule_from_environment(monkeypatch, env, expected):
    from nnunet_stroke.trainers.tiny import tiny_schedule

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert tiny_schedule() == expected
    monkeypatch.setenv("NNUNET_STROKE_TINY_EPOCHS", "0")
    with pytest.raises(ValueError):
        tiny_schedule()


def test_tiny_trainer_trains_saves_and_predicts_in_process(planned_phantom, tmp_path):
    import SimpleITK as sitk
    from nnunet_helpers import predict_in_process, train_in_process

    trainer = train_in_process(TRAINERS["nnUNetTrainerStrokeUNet_Tiny"], planned_phantom, fold=5, iterations=2)
    checkpoint = torch.load(f"{trainer.output_folder}/checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert checkpoint["trainer_name"] == "nnUNetTrainerStrokeUNet_Tiny"
    assert set(checkpoint["init_args"]) == {"plans", "configuration", "fold", "dataset_json", "device"}
    case = planned_phantom.heldout["5"][0]
    predict_in_process(trainer, planned_phantom, [case], tmp_path)
    prediction = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"{case}.nii.gz")))
    assert set(np.unique(prediction)) <= {0, 1}


def test_channels_last_weights_keep_values_and_outputs():
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    from nnunet_stroke.networks.blocks.nd import channels_last_weights

    torch.manual_seed(0)
    kwargs = dict(input_channels=2, n_stages=3, features_per_stage=[4, 8, 16], conv_op=torch.nn.Conv3d,
                  kernel_sizes=3, strides=[1, 2, 2], n_conv_per_stage=2, num_classes=2,
                  n_conv_per_stage_decoder=1, norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"affine": True})
    reference = PlainConvUNet(**kwargs).double()
    network = PlainConvUNet(**kwargs).double()
    network.load_state_dict(reference.state_dict())
    channels_last_weights(network)
    weights = [p for p in network.parameters() if p.dim() == 5]
    assert all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in weights)
    assert any(not p.is_contiguous() for p in weights)  # 1x1x1 kernels are contiguous in both layouts
    x = torch.randn(1, 2, 8, 12, 12, dtype=torch.float64)
    torch.testing.assert_close(network(x), reference(x), rtol=0, atol=1e-12)
    reference.load_state_dict(network.state_dict())  # loads back into the default layout


def test_trainer_networks_are_channels_last_without_cuda(planned_phantom, monkeypatch):
    from nnunet_helpers import make_trainer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    tiny = make_trainer(TRAINERS["nnUNetTrainerStrokeUNet_Tiny"], planned_phantom)
    network = tiny.build_network_architecture(tiny.plans_manager, tiny.configuration_manager, 2, 2, True)
    assert all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in network.parameters() if p.dim() == 5)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    network = tiny.build_network_architecture(tiny.plans_manager, tiny.configuration_manager, 2, 2, True)
    assert all(p.is_contiguous() for p in network.parameters())


@pytest.mark.parametrize("done,planned,scheduled,per_epoch,left,expected", [
    (2, 40, 40, 10.0, 80.0, 10),  # 8 more fit
    (2, 5, 5, 10.0, 80.0, 5),  # never more than planned
    (5, 40, 20, 10.0, 250.0, 30),  # faster than first projected: the schedule grows back
    (3, 40, 40, 10.0, -10.0, 4),  # over budget: one more epoch, so the learning rate still reaches its end
    (4, 40, 4, 10.0, -10.0, 4),  # over budget and the schedule is done: stop
    (1, 40, 40, 10.0, 24.9, 3),  # partial epochs do not count
])
def test_epochs_within_budget_by_hand(done, planned, scheduled, per_epoch, left, expected):
    from nnunet_stroke.trainers.tiny import epochs_within_budget

    assert epochs_within_budget(done, planned, scheduled, per_epoch, left) == expected


def test_time_budget_shortens_training_and_reaims_the_learning_rate(planned_phantom, monkeypatch):
    from nnunet_helpers import make_trainer

    monkeypatch.setenv("NNUNET_STROKE_TINY_EPOCHS", "30")
    monkeypatch.setenv("NNUNET_STROKE_TINY_ITERATIONS", "1")
    monkeypatch.setenv("NNUNET_STROKE_TINY_MINUTES", "0.0001")  # 6 ms: exhausted by the first epoch
    trainer = make_trainer(TRAINERS["nnUNetTrainerStrokeUNet_Tiny"], planned_phantom, fold=6)
    trainer.run_training()
    assert trainer.current_epoch == trainer.num_epochs == trainer.lr_scheduler.max_steps == 2
    # the second epoch ran at the poly rate of a 2-epoch schedule, (1 - 1/2)^0.9, not of 30 epochs
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(trainer.initial_lr * 0.5 ** 0.9)
    assert (Path(trainer.output_folder) / "checkpoint_final.pth").is_file()
    assert (Path(trainer.output_folder) / "progress.png").is_file()  # drawn after the last epoch
    log = next(Path(trainer.output_folder).glob("training_log_*.txt")).read_text(encoding="utf-8")
    assert "training stops after 2 epochs (planned 30)" in log
    # the cross-entropy class weights: the rule's in the first epoch, 1 in the last of the re-aimed schedule
    logged = [line.split("Cross-entropy class weights: ")[1].strip() for line in log.splitlines()
              if "Cross-entropy class weights: " in line]
    initial = [round(w, 3) for w in trainer.initial_class_weights.tolist()]
    assert initial[1] > 1 and logged == [str(initial), "[1.0, 1.0]"]


@pytest.mark.parametrize("epoch,num_epochs,expected", [
    (0, 5, [1.0, 10.0]), (2, 5, [1.0, 5.5]), (4, 5, [1.0, 1.0]), (9, 5, [1.0, 1.0]), (0, 1, [1.0, 10.0]),
])
def test_annealed_class_weights_by_hand(epoch, num_epochs, expected):
    from nnunet_stroke.trainers.tiny import annealed_class_weights

    weights = annealed_class_weights(torch.tensor([1.0, 10.0]), epoch, num_epochs)
    assert weights.tolist() == pytest.approx(expected)


@pytest.mark.parametrize("name,full_lr", [
    ("nnUNetTrainerLBMNet", 1e-3),  # the paper's recipe (section 4.2)
    ("nnUNetTrainerStrokeUNet_LBMNetRecipe", 1e-3),  # every trainer on the recipe
    ("nnUNetTrainerStrokeUNet", 1e-2),  # nnU-Net's schedule
    ("nnUNetTrainerPMSAN_S", 1e-2),
])
def test_tiny_segmentation_trainers_train_with_adamw_the_full_size_ones_with_sgd(planned_phantom, name, full_lr):
    from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

    from nnunet_helpers import make_trainer
    from nnunet_stroke.trainers.tiny import TINY_ADAMW_LR

    full = make_trainer(TRAINERS[name], planned_phantom)
    full.initialize()
    assert type(full.optimizer) is torch.optim.SGD and full.optimizer.param_groups[0]["momentum"] == 0.99
    assert full.optimizer.param_groups[0]["lr"] == pytest.approx(full_lr)
    tiny = make_trainer(TRAINERS[f"{name}_Tiny"], planned_phantom)
    tiny.initialize()
    assert type(tiny.optimizer) is torch.optim.AdamW and not tiny.optimizer.param_groups[0]["amsgrad"]
    group = tiny.optimizer.param_groups[0]
    assert group["lr"] == pytest.approx(TINY_ADAMW_LR) and group["weight_decay"] == full.weight_decay
    assert sum(p.numel() for p in group["params"]) == sum(p.numel() for p in tiny.network.parameters())
    assert isinstance(tiny.lr_scheduler, PolyLRScheduler) and tiny.lr_scheduler.max_steps == tiny.num_epochs


def test_tiny_segmentation_trainers_train_on_batches_of_at_most_two(planned_phantom):
    from nnunet_helpers import make_trainer

    plans = planned_phantom.plans
    planned = plans["configurations"]["3d_fullres"]["batch_size"] = 4  # what nnU-Net plans for the demo's phantom
    full = make_trainer(TRAINERS["nnUNetTrainerStrokeUNet"], planned_phantom, plans=plans)
    assert full.configuration_manager.batch_size == planned
    tiny = make_trainer(TRAINERS["nnUNetTrainerStrokeUNet_Tiny"], planned_phantom, plans=plans)
    tiny.initialize()
    assert tiny.batch_size == 2
    assert next(tiny.get_dataloaders()[0])["data"].shape[0] == 2
    # the trainer's own copy of the configuration changes, never the plans it was given
    assert plans["configurations"]["3d_fullres"]["batch_size"] == planned


def test_tiny_classifiers_keep_their_batch_size_and_optimiser(planned_phantom):
    from nnunet_helpers import make_trainer

    full = make_trainer(TRAINERS["nnUNetTrainerPMSANClassifier_S"], planned_phantom)
    tiny = make_trainer(TRAINERS["nnUNetTrainerPMSANClassifier_S_Tiny"], planned_phantom)
    assert tiny.initial_lr == full.initial_lr
    assert tiny.configuration_manager.batch_size == full.configuration_manager.batch_size
    full.initialize()
    tiny.initialize()
    assert type(tiny.optimizer) is type(full.optimizer)
    assert tiny.optimizer.param_groups[0]["lr"] == full.optimizer.param_groups[0]["lr"]


@pytest.mark.parametrize("name,expected", [
    ("nnUNetTrainerStrokeUNet_Tiny", True),  # nnU-Net's planned network: bfloat16 autocast on a CPU that has it
    ("nnUNetTrainerLBMNet_Tiny", False),  # preset networks keep float32 (float32 depthwise and scan kernels)
])
def test_cpu_mixed_precision_runs_convolutions_in_bf16_and_the_loss_in_float32(planned_phantom, name, expected):
    from nnunet_helpers import make_trainer

    from nnunet_stroke.trainers.base import cpu_has_bf16

    trainer = make_trainer(TRAINERS[name], planned_phantom)
    trainer.initialize()
    assert trainer.cpu_autocast == (expected and cpu_has_bf16())
    convolution_dtypes, loss_inputs = [], []
    first_conv = next(m for m in trainer.network.modules() if isinstance(m, torch.nn.Conv3d))
    first_conv.register_forward_hook(lambda module, inputs, output: convolution_dtypes.append(output.dtype))
    loss = trainer.loss
    trainer.loss = lambda output, target: loss_inputs.append(output) or loss(output, target)
    batch = next(trainer.get_dataloaders()[0])
    step = trainer.train_step(batch)
    lowered = torch.bfloat16 if trainer.cpu_autocast else torch.float32
    assert convolution_dtypes == [lowered]
    assert all(o.dtype == torch.float32 for o in loss_inputs[0])  # every deep-supervision output
    assert step["loss"].dtype == np.float32 and np.isfinite(step["loss"])
    # the float32 reference: the same weights and batch without autocast give nearly the same loss
    with torch.no_grad():
        reference = loss(trainer.network(batch["data"]), batch["target"])
        with trainer.mixed_precision_context():
            mixed = loss(trainer.network(batch["data"]), batch["target"])
    assert mixed.dtype == torch.float32
    assert abs(float(mixed) - float(reference)) < 0.05 * abs(float(reference)) + 1e-3


@pytest.mark.parametrize("name,optimiser,lr", [
    ("nnUNetTrainerLBMNet_Tiny", torch.optim.SGD, 1e-3),  # the recipe's SGD and lr (section 4.2)
    ("nnUNetTrainerStrokeUNet_Tiny", torch.optim.SGD, 1e-2),  # nnU-Net's
])
def test_bench_tiny_learning_before_setting_trains_with_the_full_size_optimiser(planned_phantom, monkeypatch, name,
                                                                                 optimiser, lr):
    """benchmarks/bench_tiny_learning.py compares the _Tiny settings with 'before': the full-size trainer's
    optimiser, learning rate and batch size on the _Tiny network and schedule."""
    import sys

    from nnunet_helpers import make_trainer

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    monkeypatch.delitem(sys.modules, "bench_tiny_learning", raising=False)
    import bench_tiny_learning

    full = make_trainer(TRAINERS[name[:-len("_Tiny")]], planned_phantom)
    before = make_trainer(bench_tiny_learning.trainer_class(name, "before"), planned_phantom)
    before.initialize()
    assert type(before).__name__ == name and before.is_tiny
    assert type(before.optimizer) is optimiser and before.optimizer.param_groups[0]["lr"] == pytest.approx(lr)
    assert before.configuration_manager.batch_size == full.configuration_manager.batch_size
    assert bench_tiny_learning.trainer_class(name, "package") is TRAINERS[name]
