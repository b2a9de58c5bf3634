"""CPU-sized ``_Tiny`` variants, generated for every trainer of the package.

``<Trainer>_Tiny`` builds the trainer's ``tiny_preset`` network (or nnU-Net's planned network with
channel widths 8-64 when the trainer trains the planned network) and runs a short schedule:
``NNUNET_STROKE_TINY_EPOCHS`` epochs (default 40) of ``NNUNET_STROKE_TINY_ITERATIONS`` iterations
(default 25), with a fifth as many validation iterations. The environment variables let tests and the
demo shorten or lengthen it without another class name (nnU-Net has no schedule flag).
"""
from __future__ import annotations

import os

import torch

TINY_SUFFIX = "_Tiny"
DEFAULT_EPOCHS = 40
DEFAULT_ITERATIONS = 25


def tiny_schedule() -> tuple[int, int]:
    """(epochs, iterations per epoch) for ``_Tiny`` trainers, from the environment or the defaults."""
    epochs = int(os.environ.get("NNUNET_STROKE_TINY_EPOCHS", DEFAULT_EPOCHS))
    iterations = int(os.environ.get("NNUNET_STROKE_TINY_ITERATIONS", DEFAULT_ITERATIONS))
    if epochs < 1 or iterations < 1:
        raise ValueError("NNUNET_STROKE_TINY_EPOCHS and NNUNET_STROKE_TINY_ITERATIONS must be >= 1")
    return epochs, iterations


class TinyScheduleMixin:
    """Short CPU schedule; combined with a trainer by :func:`make_tiny`."""

    is_tiny = True

    # nnU-Net records the constructor's named parameters in every checkpoint: keep its exact signature
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch = tiny_schedule()
        self.num_val_iterations_per_epoch = max(1, self.num_iterations_per_epoch // 5)
        self.save_every = self.num_epochs + 1  # only the final checkpoint


def has_tiny_variant(trainer_class: type) -> bool:
    if trainer_class.__name__.endswith(TINY_SUFFIX):
        return False
    return getattr(trainer_class, "network_preset", None) is None or getattr(trainer_class, "tiny_preset", None) is not None


def make_tiny(trainer_class: type, module_name: str) -> type:
    """``<Trainer>_Tiny``: the trainer with its tiny network and :class:`TinyScheduleMixin`'s schedule."""
    name = trainer_class.__name__ + TINY_SUFFIX
    doc = f"CPU-sized variant of {trainer_class.__name__}: tiny network, short schedule (see trainers.tiny)."
    return type(name, (TinyScheduleMixin, trainer_class), {"__module__": module_name, "__qualname__": name, "__doc__": doc})
