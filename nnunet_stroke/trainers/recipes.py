"""LBMNet's training recipe (Kuang et al., Front. Med. 2026, section 4.2), defined once for every trainer
that trains on it: ``nnUNetTrainerLBMNet`` and its ablations, and the ``_LBMNetRecipe`` baselines of
Table 1 (section 4.2: "all baseline methods employed the same configuration").

The recipe: SGD with momentum 0.99 (nnU-Net's Nesterov SGD with polynomial learning-rate decay; the
paper names neither Nesterov nor the decay), initial learning rate 1e-3, weight decay 3e-5, 300 epochs,
batch size 2 (global: under ``-num_gpus`` nnU-Net splits it over the GPUs), and the hybrid loss of
``nnUNetTrainerStrokeUNet`` (Dice + class-weighted cross-entropy, eq. 13) under nnU-Net's deep
supervision where the network has it. nnU-Net's epochs keep their 250 iterations.

A trainer gets the recipe by listing :class:`LBMNetRecipe` first among its bases; ``recipe = None`` in a
subclass keeps nnU-Net's defaults (lr 1e-2, 1000 epochs, the planned batch size).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

from nnunet_stroke.trainers.base import nnUNetTrainerStrokeUNet


@dataclass(frozen=True)
class TrainingRecipe:
    """Optimiser and schedule settings a trainer applies over nnU-Net's defaults."""

    initial_lr: float
    weight_decay: float
    momentum: float
    num_epochs: int
    batch_size: int


LBMNET_RECIPE = TrainingRecipe(initial_lr=1e-3, weight_decay=3e-5, momentum=0.99, num_epochs=300, batch_size=2)


class LBMNetRecipe(nnUNetTrainerStrokeUNet):
    """Trains on LBMNet's recipe (section 4.2): see the module docstring."""

    recipe: TrainingRecipe | None = LBMNET_RECIPE

    # nnU-Net records the constructor's named parameters in every checkpoint: keep its exact signature
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.recipe is not None:
            self.initial_lr = self.recipe.initial_lr
            self.weight_decay = self.recipe.weight_decay
            self.num_epochs = self.recipe.num_epochs
            # the trainer's own (deep-copied) configuration: nnU-Net reads the global batch size from it
            self.configuration_manager.configuration["batch_size"] = self.recipe.batch_size

    def configure_optimizers(self):
        if self.recipe is None:
            return super().configure_optimizers()
        optimizer = torch.optim.SGD(self.network.parameters(), self.initial_lr, weight_decay=self.weight_decay,
                                    momentum=self.recipe.momentum, nesterov=True)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)
