"""A tiny stand-in classifier trainer for the prediction tests: mean intensity per input channel -> one
linear layer -> class logits, for any spatial dimension. Found by nnU-Net through ``tests/classifier_ext``
(an ``nnUNet_extTrainer`` folder) like any external trainer."""
from __future__ import annotations

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch import nn


class MeanIntensityClassifier(nn.Module):
    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(2).mean(dim=2))


class nnUNetTrainerClassifierFakeForTests(nnUNetTrainer):
    predicts_classification = True

    @staticmethod
    def build_network_architecture(plans_manager, configuration_manager, num_input_channels, num_output_channels,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        return MeanIntensityClassifier(num_input_channels, num_output_channels)


class nnUNetTrainerClassifierFakeSlicesForTests(nnUNetTrainerClassifierFakeForTests):
    classification_aggregates_slices = True
