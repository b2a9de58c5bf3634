"""PMSAN classifier trainers (Nalla & Deepak; docs/pmsan.md): the paper's patient-level stroke classifier,
step 1 of Algorithm 1 - plain cross-entropy on patient labels ("stroke present" from cases.csv, see
:mod:`nnunet_stroke.evaluation.case_labels`), whole volumes, class-balanced batches
(:mod:`~nnunet_stroke.trainers.classification`). The distilled sizes are in
:mod:`~nnunet_stroke.trainers.distillation`.
"""
from __future__ import annotations

from nnunet_stroke.trainers.classification import ClassificationTrainer
from nnunet_stroke.trainers.pmsan import PAPER


class PMSANClassifierTrainer(ClassificationTrainer):
    """Base of the PMSAN classifier trainers: stroke presence (``classification_task``) from PMSAN's paper."""

    paper = PAPER
    classification_task = "presence"


class nnUNetTrainerPMSANClassifier_S(PMSANClassifierTrainer):
    """PMSAN-S classifier (phi 1.0, 5.2 M in the paper): whole-volume stroke presence, cross-entropy."""

    network_preset, tiny_preset = "pmsan_classifier_s", "pmsan_classifier_tiny"
    param_check = "PMSAN-S 5.2 M (paper), within 10% with 2 input channels (tests/test_pmsan_classifier.py)"


class nnUNetTrainerPMSANClassifier_M(PMSANClassifierTrainer):
    """PMSAN-M classifier (phi 1.3, 9.7 M in the paper): whole-volume stroke presence, cross-entropy."""

    network_preset, tiny_preset = "pmsan_classifier_m", "pmsan_classifier_tiny_m"
    param_check = "PMSAN-M 9.7 M (paper), within 10% with 2 input channels (tests/test_pmsan_classifier.py)"


class nnUNetTrainerPMSANClassifier_L(PMSANClassifierTrainer):
    """PMSAN-L classifier (phi 1.6, 16.3 M in the paper): whole-volume stroke presence, cross-entropy."""

    network_preset, tiny_preset = "pmsan_classifier_l", "pmsan_classifier_tiny_l"
    param_check = "PMSAN-L 16.3 M (paper), within 10% with 2 input channels (tests/test_pmsan_classifier.py)"


class nnUNetTrainerPMSANClassifier_XL(PMSANClassifierTrainer):
    """PMSAN-XL classifier (phi 2.0, 28.6 M in the paper): the first model of Algorithm 1."""

    network_preset, tiny_preset = "pmsan_classifier_xl", "pmsan_classifier_tiny_xl"
    param_check = "PMSAN-XL 28.6 M (paper), within 10% with 2 input channels (tests/test_pmsan_classifier.py)"
