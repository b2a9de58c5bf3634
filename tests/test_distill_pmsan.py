"""PMSAN progressive distillation (Algorithm 1): teacher convention, initialisation by slicing, the softened
KL against hand-computed references, and the error when the teacher is missing."""
import math

import numpy as np
import pytest
import torch

from nnunet_stroke.errors import UserError
from nnunet_stroke.networks.registry import build_network
from nnunet_stroke.trainers.distillation import (binary_logits, distillation_chain, initialize_from_teacher,
                                                 softened_kl, teacher_trainer_name)
from test_pmsan_network import single_thread  # noqa: F401 (autouse fixture)

STRIDES = [(1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2)]


def test_teacher_is_the_next_larger_size_with_the_same_suffix():
    assert teacher_trainer_name("nnUNetTrainerPMSAN_S_Distill") == "nnUNetTrainerPMSAN_M_Distill"
    assert teacher_trainer_name("nnUNetTrainerPMSAN_M_Distill_Tiny") == "nnUNetTrainerPMSAN_L_Distill_Tiny"
    assert teacher_trainer_name("nnUNetTrainerPMSAN_L_Distill_Tiny") == "nnUNetTrainerPMSAN_XL_Tiny"
    assert distillation_chain() == ["nnUNetTrainerPMSAN_XL", "nnUNetTrainerPMSAN_L_Distill",
                                    "nnUNetTrainerPMSAN_M_Distill", "nnUNetTrainerPMSAN_S_Distill"]
    from nnunet_stroke.trainers import TRAINERS

    for name in distillation_chain(suffix="_Tiny") + distillation_chain():
        assert name in TRAINERS  # every name of the convention is a real trainer


@pytest.mark.parametrize("student,teacher", [("pmsan_s", "pmsan_m"), ("pmsan_tiny_l", "pmsan_tiny_xl")])
def test_student_starts_from_slices_of_its_teacher(student, teacher):
    build = lambda preset: build_network(preset, input_channels=2, num_classes=2, patch_size=(8, 32, 32),  # noqa: E731
                                         strides=STRIDES, deep_supervision=True)
    torch.manual_seed(0)
    student_net, teacher_net = build(student), build(teacher)
    teacher_state = teacher_net.state_dict()
    copied, total = initialize_from_teacher(student_net, teacher_state)
    assert total == sum(p.numel() for p in student_net.parameters())
    assert copied / total >= 0.5, copied / total
    recounted = 0
    for name, parameter in student_net.named_parameters():
        source = teacher_state[name]
        if all(t >= s for t, s in zip(source.shape, parameter.shape)):
            torch.testing.assert_close(parameter, source[tuple(slice(0, s) for s in parameter.shape)])
            recounted += parameter.numel()
    assert recounted == copied


def test_softened_kl_matches_a_hand_computed_value():
    teacher, student = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.5, 0.5, 0.0]])
    temperature = 2.0
    p = np.exp(teacher.numpy()[0] / temperature); p /= p.sum()
    q = np.exp(student.numpy()[0] / temperature); q /= q.sum()
    expected = temperature ** 2 * float(np.sum(p * np.log(p / q)))
    assert softened_kl(teacher, student, temperature).item() == pytest.approx(expected, rel=1e-5)
    # voxel maps: mean over voxels of the per-voxel KL; zero when student == teacher
    maps = torch.randn(2, 3, 4, 5, 5)
    assert softened_kl(maps, maps, temperature).item() == pytest.approx(0.0, abs=1e-6)


def test_detection_kl_is_the_bernoulli_kl_of_the_sigmoids():
    teacher, student, temperature = torch.tensor([1.5]), torch.tensor([-0.5]), 2.0
    p, q = 1 / (1 + math.exp(-1.5 / temperature)), 1 / (1 + math.exp(0.5 / temperature))
    expected = temperature ** 2 * (p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q)))
    value = softened_kl(binary_logits(teacher), binary_logits(student), temperature).item()
    assert value == pytest.approx(expected, rel=1e-5)


def test_missing_teacher_is_a_user_error_naming_the_checkpoint(planned_phantom):
    from nnunet_helpers import make_trainer

    from nnunet_stroke.trainers import TRAINERS

    trainer = make_trainer(TRAINERS["nnUNetTrainerPMSAN_S_Distill_Tiny"], planned_phantom, fold=7)
    with pytest.raises(UserError) as error:
        trainer.initialize()
    message = str(error.value)
    assert "nnUNetTrainerPMSAN_M_Distill_Tiny__nnUNetPlans__3d_fullres" in message
    assert "fold_7" in message and "checkpoint_final.pth" in message and "nnunet-stroke distill" in message
