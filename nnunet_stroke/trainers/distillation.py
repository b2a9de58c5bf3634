"""Progressive knowledge distillation of PMSAN (Nalla & Deepak, Algorithm 1; docs/pmsan.md), for both
families: the paper's classifier (``PMSANClassifier``) and PMSAN-Seg (``PMSAN``, segmentation with an
auxiliary detection head).

XL is trained with its plain loss (the classifier: cross-entropy, Algorithm 1 step 1); then L learns from
XL, M from L and S from M. A student:

1. starts from its teacher (step 3): every student tensor takes its slice of the teacher tensor of the
   same name, chunk by chunk where a tensor is a concatenation (gates, concatenated paths), see
   :func:`nnunet_stroke.networks.pmsan_init.initialize_from_teacher`;
2. is trained with ``L = alpha * L_hard + (1 - alpha) * T**2 * KL(teacher || student)`` (step 4), ``alpha``
   = 0.5 and ``T`` = 2 (Hinton et al.'s usual choices; the paper names neither). Classifier: ``L_hard`` is
   the cross-entropy on patient labels and the KL is over the softened class probabilities. PMSAN-Seg:
   ``L_hard`` is its joint segmentation + detection loss, the KL term is ``KL(p_t || p_s) + w_det *
   KL(q_t || q_s)`` with ``p`` the voxel softmax of the full-resolution logits at temperature ``T`` (KL
   summed over classes, averaged over voxels), ``q`` the detection probability sigmoid(logit / T) and
   ``w_det`` the detection loss weight.

The teacher is found by convention, so the stock ``nnUNetv2_train`` works: same dataset, configuration,
fold and plans, trainer = the next larger size of the same family (``nnUNetTrainer<F>_S_Distill[_Tiny]`` ->
``nnUNetTrainer<F>_M_Distill[_Tiny]`` -> ``nnUNetTrainer<F>_L_Distill[_Tiny]`` -> ``nnUNetTrainer<F>_XL[_Tiny]``),
checkpoint ``checkpoint_final.pth`` in nnU-Net's results folder.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from nnunetv2.utilities.file_path_utilities import get_output_folder
from torch import nn

from nnunet_stroke.errors import UserError
from nnunet_stroke.networks.pmsan_init import initialize_from_teacher
from nnunet_stroke.trainers.classification import CHECKPOINT_CLASSES_KEY
from nnunet_stroke.trainers.pmsan import (PMSANTrainer, nnUNetTrainerPMSAN_L, nnUNetTrainerPMSAN_M,
                                          nnUNetTrainerPMSAN_S, unwrap)
from nnunet_stroke.trainers.pmsan_classifier import (PMSANClassifierTrainer, nnUNetTrainerPMSANClassifier_L,
                                                     nnUNetTrainerPMSANClassifier_M, nnUNetTrainerPMSANClassifier_S)

DISTILLATION_ALPHA = 0.5
TEMPERATURE = 2.0
SIZES = ("S", "M", "L", "XL")
FAMILIES = ("PMSAN", "PMSANClassifier")
_STUDENT = re.compile(r"^nnUNetTrainer(PMSAN|PMSANClassifier)_(S|M|L)_Distill(.*)$")


def teacher_trainer_name(student_trainer_name: str) -> str:
    """The trainer whose final checkpoint teaches ``student_trainer_name`` (suffixes such as _Tiny kept)."""
    match = _STUDENT.match(student_trainer_name)
    if match is None:
        raise ValueError(f"{student_trainer_name} is not a PMSAN distillation trainer")
    family, size, suffix = match.groups()
    larger = SIZES[SIZES.index(size) + 1]
    return f"nnUNetTrainer{family}_{larger}{suffix}" if larger == "XL" else \
        f"nnUNetTrainer{family}_{larger}_Distill{suffix}"


def distillation_chain(smallest: str = "S", suffix: str = "", family: str = "PMSAN") -> list[str]:
    """Trainers in Algorithm 1's order: XL, then every distilled size down to ``smallest``."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    sizes = SIZES[SIZES.index(smallest):-1][::-1]
    return [f"nnUNetTrainer{family}_XL{suffix}"] + [f"nnUNetTrainer{family}_{s}_Distill{suffix}" for s in sizes]


def softened_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)) over dim 1, averaged over every other position."""
    log_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    return temperature ** 2 * (log_teacher.exp() * (log_teacher - log_student)).sum(dim=1).mean()


def binary_logits(logit: torch.Tensor) -> torch.Tensor:
    """(B,) detection logit -> (B, 2) logits whose softmax is (1 - sigmoid, sigmoid)."""
    return torch.stack([torch.zeros_like(logit), logit], dim=1)


class TeacherMixin:
    """Finds, loads and copies from the teacher (module docstring); combined with a trainer of either family."""

    distillation_alpha = DISTILLATION_ALPHA
    temperature = TEMPERATURE

    def teacher_checkpoint(self) -> tuple[str, Path]:
        teacher = teacher_trainer_name(type(self).__name__)
        folder = get_output_folder(self.plans_manager.dataset_name, teacher, self.plans_manager.plans_name,
                                   self.configuration_name, self.fold)
        return teacher, Path(folder) / "checkpoint_final.pth"

    def teacher_outputs(self, checkpoint: dict) -> int:
        """Output channels of the teacher network stored in ``checkpoint``."""
        return self.label_manager.num_segmentation_heads

    def load_teacher(self) -> nn.Module:
        from nnunet_stroke.trainers import TRAINERS

        teacher_name, checkpoint_file = self.teacher_checkpoint()
        if not checkpoint_file.is_file():
            dataset = self.plans_manager.dataset_name
            family = _STUDENT.match(type(self).__name__).group(1)
            raise UserError(
                f"{type(self).__name__} distils from {teacher_name}, but its checkpoint {checkpoint_file} does not "
                f"exist. Train the teacher first (`nnunet-stroke train {dataset} {self.configuration_name} "
                f"{self.fold} -tr {teacher_name} -p {self.plans_manager.plans_name}`), or run the whole chain with "
                f"`nnunet-stroke distill {dataset} {self.configuration_name} {self.fold} --family {family}`.")
        checkpoint = torch.load(checkpoint_file, map_location="cpu", weights_only=False)
        teacher = TRAINERS[teacher_name].build_network_architecture(
            self.plans_manager, self.configuration_manager, self.num_input_channels,
            self.teacher_outputs(checkpoint), enable_deep_supervision=False)
        teacher.load_state_dict(checkpoint["network_weights"])
        self.print_to_log_file(f"Teacher: {teacher_name} from {checkpoint_file}")
        return teacher.to(self.device).eval().requires_grad_(False)

    def initialize(self):
        if self.was_initialized:
            return super().initialize()
        super().initialize()
        self.teacher = self.load_teacher()
        copied, total = initialize_from_teacher(unwrap(self.network), self.teacher.state_dict())
        self.print_to_log_file(f"Student initialised from the teacher: {copied} of {total} parameters "
                               f"({copied / total:.1%}) are slices of teacher tensors")


class PMSANDistillationTrainer(TeacherMixin, PMSANTrainer):
    """PMSAN-Seg student: joint loss + softened KL of voxel and detection outputs."""

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


class PMSANClassifierDistillationTrainer(TeacherMixin, PMSANClassifierTrainer):
    """PMSAN classifier student: ``alpha * CE + (1 - alpha) * T^2 KL(teacher || student)`` on class logits."""

    def teacher_outputs(self, checkpoint: dict) -> int:
        classes = checkpoint.get(CHECKPOINT_CLASSES_KEY)
        if classes != self.class_names:
            raise UserError(f"the teacher checkpoint's classes {classes} differ from the student's {self.class_names}; "
                            f"retrain the teacher on the current cases.csv")
        return len(classes)

    def distillation_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                          target: torch.Tensor) -> torch.Tensor:
        hard = self.loss(student_logits.float(), target)
        soft = softened_kl(teacher_logits, student_logits, self.temperature)
        return self.distillation_alpha * hard + (1 - self.distillation_alpha) * soft

    def compute_train_loss(self, data: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(data)
        return self.distillation_loss(self.network(data), teacher_logits, target)


class nnUNetTrainerPMSAN_L_Distill(PMSANDistillationTrainer, nnUNetTrainerPMSAN_L):
    """PMSAN-Seg L distilled from PMSAN-Seg XL (Algorithm 1), initialised from XL's weights."""


class nnUNetTrainerPMSAN_M_Distill(PMSANDistillationTrainer, nnUNetTrainerPMSAN_M):
    """PMSAN-Seg M distilled from nnUNetTrainerPMSAN_L_Distill (Algorithm 1), initialised from its weights."""


class nnUNetTrainerPMSAN_S_Distill(PMSANDistillationTrainer, nnUNetTrainerPMSAN_S):
    """PMSAN-Seg S distilled from nnUNetTrainerPMSAN_M_Distill (Algorithm 1), initialised from its weights."""


class nnUNetTrainerPMSANClassifier_L_Distill(PMSANClassifierDistillationTrainer, nnUNetTrainerPMSANClassifier_L):
    """PMSAN-L classifier distilled from the XL classifier (Algorithm 1), initialised from XL's weights."""


class nnUNetTrainerPMSANClassifier_M_Distill(PMSANClassifierDistillationTrainer, nnUNetTrainerPMSANClassifier_M):
    """PMSAN-M classifier distilled from nnUNetTrainerPMSANClassifier_L_Distill (Algorithm 1)."""


class nnUNetTrainerPMSANClassifier_S_Distill(PMSANClassifierDistillationTrainer, nnUNetTrainerPMSANClassifier_S):
    """PMSAN-S classifier distilled from nnUNetTrainerPMSANClassifier_M_Distill (Algorithm 1)."""
