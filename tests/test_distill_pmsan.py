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


def reference_indices(name: str, student_net, teacher_net, shape) -> list[torch.Tensor]:
    """Index lists, one per axis, that pick the teacher entries a student tensor corresponds to, built from
    the module definitions: the ConvGRU's [r | z | n] gate rows, the merge convolutions' [forward | backward]
    and per-path input columns, the decoder's [upsampled | skip] input columns; leading entries elsewhere."""
    indices = [torch.arange(size) for size in shape]

    def interleaved(chunks: int, student_width: int, teacher_width: int) -> torch.Tensor:
        return torch.tensor([c * teacher_width + i for c in range(chunks) for i in range(student_width)])

    if name.endswith(("input_gates.weight", "input_gates.bias", "hidden_gates.weight", "hidden_gates.bias")):
        cell_s = student_net.get_submodule(name.rsplit(".", 2)[0])
        cell_t = teacher_net.get_submodule(name.rsplit(".", 2)[0])
        indices[0] = interleaved(3, cell_s.hidden_channels, cell_t.hidden_channels)
    elif name.endswith("recurrence.merge.0.weight"):
        rec_s, rec_t = student_net.get_submodule(name[:-len(".merge.0.weight")]), teacher_net.get_submodule(
            name[:-len(".merge.0.weight")])
        indices[1] = interleaved(2, rec_s.forward_cell.hidden_channels, rec_t.forward_cell.hidden_channels)
    elif ".blocks." in name and name.endswith("merge.0.weight"):
        block_s, block_t = student_net.get_submodule(name[:-len(".merge.0.weight")]), teacher_net.get_submodule(
            name[:-len(".merge.0.weight")])
        indices[1] = interleaved(len(block_s.paths), block_s.paths[0][0].out_channels,
                                 block_t.paths[0][0].out_channels)
    elif name.startswith("decoder.stages.") and name.endswith(".0.0.weight"):
        stage = name[:-len(".0.0.weight")]
        conv_s, conv_t = student_net.get_submodule(stage)[0][0], teacher_net.get_submodule(stage)[0][0]
        indices[1] = interleaved(2, conv_s.out_channels, conv_t.out_channels)
    return indices


@pytest.mark.parametrize("student,teacher", [("pmsan_s", "pmsan_m"), ("pmsan_tiny_l", "pmsan_tiny_xl"),
                                             ("pmsan_classifier_s", "pmsan_classifier_m"),
                                             ("pmsan_classifier_tiny", "pmsan_classifier_tiny_m")])
def test_student_starts_from_its_teachers_tensors_chunk_by_chunk(student, teacher):
    build = lambda preset: build_network(preset, input_channels=2, num_classes=2, patch_size=(8, 32, 32),  # noqa: E731
                                         strides=STRIDES, deep_supervision=True)
    torch.manual_seed(0)
    student_net, teacher_net = build(student), build(teacher)
    teacher_state = teacher_net.state_dict()
    copied, total = initialize_from_teacher(student_net, teacher_state)
    assert total == sum(p.numel() for p in student_net.parameters())
    assert copied == total  # every student parameter starts from the teacher (the share docs/pmsan.md states)
    chunked = 0
    for name, parameter in student_net.named_parameters():
        expected = teacher_state[name]
        indices = reference_indices(name, student_net, teacher_net, parameter.shape)
        chunked += any(not torch.equal(i, torch.arange(len(i))) for i in indices)
        for axis, index in enumerate(indices):
            expected = expected.index_select(axis, index)
        torch.testing.assert_close(parameter, expected, rtol=0, atol=0, msg=name)
    assert chunked >= 4  # gates, both merges (and the decoder's first convolutions) were checked chunk-wise


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
