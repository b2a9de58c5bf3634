"""PMSAN as its paper trains it: the whole-volume classifier's sizes through nnU-Net's hook on two plans, the
recurrence spanning the whole volume, the training loss falling on a fixed batch, and Algorithm 1's
distillation (teacher initialisation through the trainers, the KL term in the student's loss)."""
import copy
import math

import numpy as np
import pytest
import torch

from nnunet_stroke.networks.pmsan_scaling import PAPER_SIZES
from nnunet_stroke.networks.registry import build_network
from test_pmsan_network import single_thread  # noqa: F401 (autouse fixture)

CLASSIFIERS = {size: f"nnUNetTrainerPMSANClassifier_{size.upper()}" for size in PAPER_SIZES}


def five_level_plans(plans: dict) -> dict:
    """The phantom's plans with a five-level 80x112x112 3d_fullres configuration."""
    plans = copy.deepcopy(plans)
    configuration = plans["configurations"]["3d_fullres"]
    strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
    configuration["patch_size"] = [80, 112, 112]
    configuration["architecture"]["arch_kwargs"].update(
        n_stages=5, strides=strides, kernel_sizes=[[3, 3, 3]] * 5, features_per_stage=[32, 64, 128, 256, 320],
        n_conv_per_stage=[2] * 5, n_conv_per_stage_decoder=[2] * 4)
    return plans


def test_classifier_sizes_match_the_paper_on_any_plan(planned_phantom):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_stroke.trainers import TRAINERS

    counts = {}
    for plans in (planned_phantom.plans, five_level_plans(planned_phantom.plans)):
        manager = PlansManager(plans)
        configuration = manager.get_configuration("3d_fullres")
        for size, (phi, paper) in PAPER_SIZES.items():
            with torch.device("meta"):
                network = TRAINERS[CLASSIFIERS[size]].build_network_architecture(
                    manager, configuration, 2, 2, enable_deep_supervision=False)
            count = sum(p.numel() for p in network.parameters())
            assert abs(count - paper) / paper < 0.10, (size, count, paper)
            counts.setdefault(size, set()).add(count)
    assert all(len(c) == 1 for c in counts.values())  # the plan does not change the classifier


def test_recurrence_spans_the_whole_volume():
    torch.manual_seed(0)
    net = build_network("pmsan_classifier_tiny", input_channels=1, num_classes=2, patch_size=(8, 32, 32),
                        strides=[(1, 1, 1)] * 4).eval()
    x = torch.randn(1, 1, 12, 32, 32)
    features = {}
    net.encoder.stages[-1].register_forward_hook(lambda m, i, o: features.__setitem__("last", o))
    with torch.no_grad():
        net(x)
        before = features["last"].clone()
        changed = x.clone()
        changed[:, :, 0] += 3.0  # the first slice only
        net(changed)
    after = features["last"]
    assert after.shape[0] == 12  # every slice of the volume went through the shared 2D encoder
    assert not torch.allclose(before[11], after[11])  # ...and the last slice saw the first one
    assert net(torch.randn(2, 1, 12, 32, 32)).shape == (2, 2)


@pytest.mark.parametrize("preset", ["pmsan_classifier_tiny"])
def test_training_loss_falls_on_a_fixed_batch(preset):
    torch.manual_seed(0)
    net = build_network(preset, input_channels=2, num_classes=2, patch_size=(6, 32, 32), strides=[(1, 1, 1)] * 4)
    x = torch.randn(4, 2, 6, 32, 32)
    x[2:, 0, 2:4, 8:16, 8:16] += 2.0  # a bright "lesion" in the stroke cases
    y = torch.tensor([0, 0, 1, 1])
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_classifier_chain_names_are_real_trainers():
    from nnunet_stroke.trainers import TRAINERS
    from nnunet_stroke.trainers.distillation import distillation_chain, teacher_trainer_name

    assert distillation_chain(family="PMSANClassifier") == [
        "nnUNetTrainerPMSANClassifier_XL", "nnUNetTrainerPMSANClassifier_L_Distill",
        "nnUNetTrainerPMSANClassifier_M_Distill", "nnUNetTrainerPMSANClassifier_S_Distill"]
    assert teacher_trainer_name("nnUNetTrainerPMSANClassifier_L_Distill_Tiny") == "nnUNetTrainerPMSANClassifier_XL_Tiny"
    for name in distillation_chain(family="PMSANClassifier", suffix="_Tiny"):
        assert name in TRAINERS and TRAINERS[name].predicts_classification


def test_kl_term_enters_the_students_loss(planned_phantom):
    from nnunet_helpers import make_trainer

    from nnunet_stroke.trainers import TRAINERS

    trainer = make_trainer(TRAINERS["nnUNetTrainerPMSANClassifier_S_Distill_Tiny"], planned_phantom, fold=0)
    trainer.loss = torch.nn.CrossEntropyLoss()
    student, target = torch.tensor([[1.0, -1.0], [0.2, 0.4]]), torch.tensor([0, 1])
    teacher = torch.tensor([[-0.5, 1.5], [2.0, 0.0]])
    alpha, t = trainer.distillation_alpha, trainer.temperature
    ce = -np.mean([math.log(np.exp(s[k]) / np.exp(s).sum()) for s, k in zip(student.numpy(), target.numpy())])
    kl = 0.0
    for s, te in zip(student.numpy() / t, teacher.numpy() / t):
        p, q = np.exp(te) / np.exp(te).sum(), np.exp(s) / np.exp(s).sum()
        kl += float(np.sum(p * np.log(p / q))) / len(student)
    expected = alpha * ce + (1 - alpha) * t ** 2 * kl
    assert trainer.distillation_loss(student, teacher, target).item() == pytest.approx(expected, rel=1e-5)
    assert trainer.distillation_loss(student, student, target).item() == pytest.approx(alpha * ce, rel=1e-5)


def test_distilled_student_starts_from_its_trained_teacher(planned_phantom):
    from nnunet_helpers import make_trainer, train_in_process

    from nnunet_stroke.networks.pmsan_init import initialize_from_teacher
    from nnunet_stroke.trainers import TRAINERS

    teacher = train_in_process(TRAINERS["nnUNetTrainerPMSANClassifier_XL_Tiny"], planned_phantom, fold=6,
                               iterations=1)
    student = make_trainer(TRAINERS["nnUNetTrainerPMSANClassifier_L_Distill_Tiny"], planned_phantom, fold=6)
    student.initialize()
    reference = copy.deepcopy(student.network)
    for parameter in reference.parameters():  # scramble, then initialise independently from the checkpoint
        torch.nn.init.normal_(parameter)
    weights = torch.load(f"{teacher.output_folder}/checkpoint_final.pth", map_location="cpu",
                         weights_only=False)["network_weights"]
    assert initialize_from_teacher(reference, weights)[0] == sum(p.numel() for p in reference.parameters())
    for (name, got), (_, expected) in zip(student.network.named_parameters(), reference.named_parameters()):
        torch.testing.assert_close(got, expected, rtol=0, atol=0, msg=name)
    torch.testing.assert_close(student.teacher.state_dict()["head.classifier.3.bias"],
                               weights["head.classifier.3.bias"])
