"""Progressive knowledge distillation of PMSAN (Nalla & Deepak, Algorithm 1; docs/pmsan.md).

XL is trained with the plain joint loss; then L learns from XL, M from L and S from M. A student:

1. starts from its teacher: every student tensor takes the leading slice of the teacher tensor of the
   same name (leading output and input channels; leading blocks of a stage, since block ``i`` has the
   same name in both), see :func:`initialize_from_teacher`;
2. is trained with ``alpha * L_hard + (1 - alpha) * T**2 * [KL(p_t || p_s) + w_det * KL(q_t || q_s)]``
   where ``L_hard`` is the joint segmentation + detection loss of :mod:`~nnunet_stroke.trainers.pmsan`,
   ``p`` the voxel softmax of the full-resolution logits at temperature ``T`` (KL summed over classes,
   averaged over voxels), ``q`` the detection probability sigmoid(logit / T) (a two-class softmax), and
   ``w_det`` the detection loss weight. ``alpha`` = 0.5 and ``T`` = 2 (Hinton et al.'s usual choices;
   the paper names neither).

The teacher is found by convention, so the stock ``nnUNetv2_train`` works: same dataset, configuration,
fold and plans, trainer = the next larger size (``nnUNetTrainerPMSAN_S_Distill[_Tiny]`` ->
``nnUNetTrainerPMSAN_M_Distill[_Tiny]``, ..., ``nnUNetTrainerPMSAN_L_Distill[_Tiny]`` ->
``nnUNetTrainerPMSAN_XL[_Tiny]``), checkpoint ``checkpoint_final.pth`` in nnU-Net's results folder.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from nnunetv2.utilities.file_path_utilities import get_output_folder
from torch import nn

from nnunet_stroke.errors import UserError
from nnunet_stroke.trainers.pmsan import (PMSANTrainer, nnUNetTrainerPMSAN_L, nnUNetTrainerPMSAN_M,
                                          nnUNetTrainerPMSAN_S, unwrap)

DISTILLATION_ALPHA = 0.5
TEMPERATURE = 2.0
SIZES = ("S", "M", "L", "XL")
_STUDENT = re.compile(r"^nnUNetTrainerPMSAN_(S|M|L)_Distill(.*)$")


def teacher_trainer_name(student_trainer_name: str) -> str:
    """The trainer whose final checkpoint teaches ``student_trainer_name`` (suffixes such as _Tiny kept)."""
    match = _STUDENT.match(student_trainer_name)
    if match is None:
        raise ValueError(f"{student_trainer_name} is not a PMSAN distillation trainer")
    size, suffix = match.groups()
    larger = SIZES[SIZES.index(size) + 1]
    return f"nnUNetTrainerPMSAN_{larger}{suffix}" if larger == "XL" else f"nnUNetTrainerPMSAN_{larger}_Distill{suffix}"


def distillation_chain(smallest: str = "S", suffix: str = "") -> list[str]:
    """Trainers in Algorithm 1's order: XL, then every distilled size down to ``smallest``."""
    sizes = SIZES[SIZES.index(smallest):-1][::-1]
    return [f"nnUNetTrainerPMSAN_XL{suffix}"] + [f"nnUNetTrainerPMSAN_{s}_Distill{suffix}" for s in sizes]


def initialize_from_teacher(student: nn.Module, teacher_state: dict[str, torch.Tensor]) -> tuple[int, int]:
    """Copy the leading slice of each same-named, at-least-as-large teacher tensor into the student;
    returns (parameters copied, student parameters)."""
    copied = total = 0
    with torch.no_grad():
        for name, parameter in student.named_parameters():
            total += parameter.numel()
            source = teacher_state.get(name)
            if source is None or source.dim() != parameter.dim() or any(
                    t < s for t, s in zip(source.shape, parameter.shape)):
                continue
            parameter.copy_(source[tuple(slice(0, s) for s in parameter.shape)])
            copied += parameter.numel()
    return copied, total


def softened_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)) over dim 1, averaged over every other position."""
    log_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    return temperature ** 2 * (log_teacher.exp() * (log_teacher - log_student)).sum(dim=1).mean()


def binary_logits(logit: torch.Tensor) -> torch.Tensor:
    """(B,) detection logit -> (B, 2) logits whose softmax is (1 - sigmoid, sigmoid)."""
    return torch.stack([torch.zeros_like(logit), logit], dim=1)


class PMSANDistillationTrainer(PMSANTrainer):
    distillation_alpha = DISTILLATION_ALPHA
    temperature = TEMPERATURE

    def teacher_checkpoint(self) -> tuple[str, Path]:
        teacher = teacher_trainer_name(type(self).__name__)
        folder = get_output_folder(self.plans_manager.dataset_name, teacher, self.plans_manager.plans_name,
                                   self.configuration_name, self.fold)
        return teacher, Path(folder) / "checkpoint_final.pth"

    def load_teacher(self) -> nn.Module:
        from nnunet_stroke.trainers import TRAINERS

        teacher_name, checkpoint = self.teacher_checkpoint()
        if not checkpoint.is_file():
            dataset = self.plans_manager.dataset_name
            raise UserError(
                f"{type(self).__name__} distils from {teacher_name}, but its checkpoint {checkpoint} does not exist. "
                f"Train the teacher first (`nnunet-stroke train {dataset} {self.configuration_name} {self.fold} "
                f"-tr {teacher_name} -p {self.plans_manager.plans_name}`), or run the whole chain with "
                f"`nnunet-stroke distill {dataset} {self.configuration_name} {self.fold}`.")
        teacher = TRAINERS[teacher_name].build_network_architecture(
            self.plans_manager, self.configuration_manager, self.num_input_channels,
            self.label_manager.num_segmentation_heads, enable_deep_supervision=False)
        teacher.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["network_weights"])
        self.print_to_log_file(f"Teacher: {teacher_name} from {checkpoint}")
        return teacher.to(self.device).eval().requires_grad_(False)

    def initialize(self):
        if self.was_initialized:
            return super().initialize()
        super().initialize()
        self.teacher = self.load_teacher()
        copied, total = initialize_from_teacher(unwrap(self.network), self.teacher.state_dict())
        self.print_to_log_file(f"Student initialised from the teacher: {copied} of {total} parameters "
                               f"({copied / total:.1%}) are slices of teacher tensors")

    def compute_train_loss(self, data: torch.Tensor, target) -> torch.Tensor:
        output, detection_logit = self.forward_with_detection(data)
        with torch.no_grad():
            teacher_segmentation = self.teacher(data)
            teacher_detection = self.teacher.last_detection_logit
        student_segmentation = output[0] if isinstance(output, (list, tuple)) else output
        soft = softened_kl(teacher_segmentation, student_segmentation, self.temperature) + \
            self.detection_loss_weight * softened_kl(binary_logits(teacher_detection),
                                                     binary_logits(detection_logit), self.temperature)
        hard = self.joint_loss(output, detection_logit, target)
        return self.distillation_alpha * hard + (1 - self.distillation_alpha) * soft


class nnUNetTrainerPMSAN_L_Distill(PMSANDistillationTrainer, nnUNetTrainerPMSAN_L):
    """PMSAN-L distilled from PMSAN-XL (Algorithm 1), initialised from XL's weights."""


class nnUNetTrainerPMSAN_M_Distill(PMSANDistillationTrainer, nnUNetTrainerPMSAN_M):
    """PMSAN-M distilled from nnUNetTrainerPMSAN_L_Distill (Algorithm 1), initialised from its weights."""


class nnUNetTrainerPMSAN_S_Distill(PMSANDistillationTrainer, nnUNetTrainerPMSAN_S):
    """PMSAN-S distilled from nnUNetTrainerPMSAN_M_Distill (Algorithm 1), initialised from its weights."""
