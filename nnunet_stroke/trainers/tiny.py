"""CPU-sized ``_Tiny`` variants, generated for every trainer of the package.

``<Trainer>_Tiny`` builds the trainer's ``tiny_preset`` network (or nnU-Net's planned network with
channel widths 8-64 when the trainer trains the planned network) and runs a short schedule:
``NNUNET_STROKE_TINY_EPOCHS`` epochs (default 40) of ``NNUNET_STROKE_TINY_ITERATIONS`` iterations
(default 25), with a fifth as many validation iterations; nnU-Net's progress.png is redrawn every
``PLOT_EVERY`` epochs and after the last. The environment variables let tests and the
demo shorten or lengthen it without another class name (nnU-Net has no schedule flag).

Two settings help the short schedule learn (docs/training.md; ``benchmarks/bench_tiny_learning.py``
measures them), both for the segmentation trainers (those derived from ``nnUNetTrainerStrokeUNet``): they
train on batches of at most ``TINY_BATCH_SIZE`` = 2 patches (nnU-Net plans 4 for the demo's phantom): at the
same compute, twice the optimiser steps; and they train with AdamW at ``TINY_ADAMW_LR`` = 3e-3 under
nnU-Net's polynomial decay (``nnunetv2``'s ``nnUNetTrainerAdam`` without AMSGrad), the trainer's weight
decay kept, instead of SGD with momentum 0.99 (nnU-Net's, or a paper's recipe such as LBMNet's at lr 1e-3,
``trainers.recipes``): a few hundred SGD steps leave the network far from where the same AdamW steps get
it. The full-size trainers keep their batch size and optimiser, and the image-level classifiers
(``trainers.classification``, AdamW already) keep theirs in their ``_Tiny`` variants too.

A third setting concerns the loss: the cross-entropy class weights of the segmentation trainers
(``trainers.base``: the lesion class weighs up to 10) are annealed, linearly from the rule's weights at
the first epoch to 1 at the last (``annealed_class_weights``; re-aimed with the time budget). Without
weights, a few hundred steps may not get the network past predicting background everywhere; with the
full weights to the end, the lesion wins every voxel it has more than about a one-in-eleven chance of,
so predictions take in the partial-volume ring around every lesion, which costs most of the Dice of
small lesions.

``NNUNET_STROKE_TINY_MINUTES`` adds a time budget for training, counted from the start of training:
after every epoch the number of epochs is set to what fits at the mean epoch time so far (at most the
planned ones, at least one more), and nnU-Net's polynomial learning-rate decay is re-aimed at that last
epoch, so training still ends at a low learning rate. The first epochs carry start-up costs, so the
estimate usually grows a little as training goes on. The demo uses it to finish in its ten minutes on
any machine; the log states every change.

Every ``CHECKPOINT_EVERY`` epochs nnU-Net writes ``checkpoint_latest.pth``; the mixin adds the schedule in
force (number of epochs, re-aimed before the checkpoint is written) to every checkpoint, and
``nnUNetv2_train ... --c`` resumes with it: the same epoch count and learning-rate decay as an
uninterrupted run, the time budget not applied again.
"""
from __future__ import annotations

import math
import os
import time

import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

TINY_SUFFIX = "_Tiny"
DEFAULT_EPOCHS = 40
DEFAULT_ITERATIONS = 25
PLOT_EVERY = 5  # epochs between redraws of nnU-Net's progress.png (and the last epoch)
TINY_BATCH_SIZE = 2  # patches per batch of the segmentation _Tiny variants (at most; nnU-Net plans more)
TINY_ADAMW_LR = 3e-3  # initial learning rate of AdamW in the segmentation _Tiny variants
CHECKPOINT_EVERY = 5  # epochs between nnU-Net's checkpoint_latest.pth, from which `nnUNetv2_train --c` resumes
SCHEDULE_KEY = "tiny_schedule"  # the checkpoint's record of the schedule in force (nnU-Net stores no epoch count)


def tiny_schedule() -> tuple[int, int]:
    """(epochs, iterations per epoch) for ``_Tiny`` trainers, from the environment or the defaults."""
    epochs = int(os.environ.get("NNUNET_STROKE_TINY_EPOCHS", DEFAULT_EPOCHS))
    iterations = int(os.environ.get("NNUNET_STROKE_TINY_ITERATIONS", DEFAULT_ITERATIONS))
    if epochs < 1 or iterations < 1:
        raise ValueError("NNUNET_STROKE_TINY_EPOCHS and NNUNET_STROKE_TINY_ITERATIONS must be >= 1")
    return epochs, iterations


def tiny_time_budget() -> float | None:
    """Training time budget in seconds from ``NNUNET_STROKE_TINY_MINUTES``, or None."""
    minutes = os.environ.get("NNUNET_STROKE_TINY_MINUTES")
    if minutes is None:
        return None
    if float(minutes) <= 0:
        raise ValueError(f"NNUNET_STROKE_TINY_MINUTES must be > 0, got {minutes}")
    return 60 * float(minutes)


def epochs_within_budget(epochs_done: int, planned_epochs: int, scheduled_epochs: int, seconds_per_epoch: float,
                         seconds_left: float) -> int:
    """Epochs the schedule should have: as many as fit ``seconds_left``, at most ``planned_epochs``; when
    no further epoch fits, one more (which then runs at the re-aimed end of the learning-rate decay)
    unless the ``scheduled_epochs`` are already done."""
    fit = math.floor(seconds_left / seconds_per_epoch)
    if fit >= 1:
        return min(planned_epochs, epochs_done + fit)
    return epochs_done if epochs_done >= scheduled_epochs else epochs_done + 1


def annealed_class_weights(initial: torch.Tensor, epoch: int, num_epochs: int) -> torch.Tensor:
    """Class weights at ``epoch`` (0-based) of ``num_epochs``: ``initial`` at the first epoch, 1 at the
    last, linear in between."""
    remaining = 1.0 - min(epoch / max(1, num_epochs - 1), 1.0)
    return 1.0 + (initial - 1.0) * remaining


def cross_entropy_term(loss) -> torch.nn.Module | None:
    """The cross-entropy term of nnU-Net's Dice + CE loss, inside its deep-supervision wrapper or not."""
    return getattr(getattr(loss, "loss", loss), "ce", None)


class _TimeBudgetSpent(Exception):
    """Ends nnU-Net's epoch loop, which iterates over the epoch range fixed when training started."""


class TinyScheduleMixin:
    """Short CPU schedule; combined with a trainer by :func:`make_tiny`."""

    is_tiny = True

    # nnU-Net records the constructor's named parameters in every checkpoint: keep its exact signature
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch = tiny_schedule()
        self.planned_epochs = self.num_epochs
        self.num_val_iterations_per_epoch = max(1, self.num_iterations_per_epoch // 5)
        if self.is_segmentation_trainer:  # the trainer's own (deep-copied) configuration
            configuration = self.configuration_manager.configuration
            configuration["batch_size"] = min(configuration["batch_size"], self.tiny_batch_size)
            self.initial_lr = TINY_ADAMW_LR
        self.save_every = CHECKPOINT_EVERY
        self.time_budget = tiny_time_budget()

    @property
    def is_segmentation_trainer(self) -> bool:
        """Derived from ``nnUNetTrainerStrokeUNet``, which names the ``_Tiny`` batch size."""
        return getattr(self, "tiny_batch_size", None) is not None

    def configure_optimizers(self):
        """AdamW with nnU-Net's polynomial decay for the segmentation trainers (module docstring)."""
        if not self.is_segmentation_trainer:
            return super().configure_optimizers()
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

    def on_train_start(self):
        super().on_train_start()
        # nnU-Net redraws progress.png (a matplotlib figure) after every epoch: every 5th and the last suffice
        plot_every_epoch = self.logger.plot_progress_png

        def plot_some_epochs(output_folder: str) -> None:
            if (self.current_epoch + 1) % PLOT_EVERY == 0 or self.current_epoch + 1 >= self.num_epochs:
                plot_every_epoch(output_folder)

        self.logger.plot_progress_png = plot_some_epochs

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        cross_entropy = cross_entropy_term(self.loss)
        if getattr(cross_entropy, "weight", None) is None:  # unweighted, region (BCE) or classification losses
            return
        if not hasattr(self, "initial_class_weights"):  # the rule's weights, as the loss was built
            self.initial_class_weights = cross_entropy.weight.clone()
        cross_entropy.weight.copy_(annealed_class_weights(self.initial_class_weights, self.current_epoch,
                                                          self.num_epochs))
        weights = [round(w, 3) for w in cross_entropy.weight.tolist()]
        self.print_to_log_file(f"Cross-entropy class weights: {weights}")

    def run_training(self):
        self.budget_started = (time.monotonic(), self.current_epoch)  # epochs of a resumed run do not count
        try:
            super().run_training()
        except _TimeBudgetSpent:
            self.on_train_end()

    def on_epoch_end(self):
        if self.time_budget is not None:  # re-aimed before nnU-Net writes checkpoint_latest, which then holds it
            started, first_epoch = self.budget_started
            seconds, done = time.monotonic() - started, self.current_epoch + 1
            epochs = epochs_within_budget(done, self.planned_epochs, self.num_epochs,
                                          seconds / (done - first_epoch), self.time_budget - seconds)
            if epochs != self.num_epochs:
                self.print_to_log_file(f"Time budget of {self.time_budget / 60:.1f} min: training stops after "
                                       f"{epochs} epochs (planned {self.planned_epochs})")
                self.num_epochs = self.lr_scheduler.max_steps = epochs
        super().on_epoch_end()
        if self.time_budget is not None and self.current_epoch >= self.num_epochs:
            raise _TimeBudgetSpent

    def save_checkpoint(self, filename: str) -> None:
        super().save_checkpoint(filename)
        if self.local_rank == 0 and not self.disable_checkpointing:  # add the schedule to nnU-Net's checkpoint
            checkpoint = torch.load(filename, map_location="cpu", weights_only=False)
            checkpoint[SCHEDULE_KEY] = {"num_epochs": self.num_epochs, "time_budget": self.time_budget}
            torch.save(checkpoint, filename)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        """nnU-Net's resume (``--c``), continuing the checkpoint's schedule: its number of epochs (and the
        learning-rate decay aimed at it); a time-budgeted run keeps the schedule its budget had set when the
        checkpoint was written, so it ends with the same number of epochs as if it had not been interrupted."""
        super().load_checkpoint(filename_or_checkpoint)
        checkpoint = filename_or_checkpoint if isinstance(filename_or_checkpoint, dict) else torch.load(
            filename_or_checkpoint, map_location="cpu", weights_only=False)
        schedule = checkpoint.get(SCHEDULE_KEY)
        if schedule is not None:
            self.num_epochs = self.lr_scheduler.max_steps = schedule["num_epochs"]
            if schedule["time_budget"] is not None or self.time_budget is not None:
                self.time_budget = None
                self.print_to_log_file(f"Resumed with the checkpoint's schedule of {self.num_epochs} epochs; "
                                       "the time budget is not applied again")


def has_tiny_variant(trainer_class: type) -> bool:
    if trainer_class.__name__.endswith(TINY_SUFFIX):
        return False
    return getattr(trainer_class, "network_preset", None) is None or getattr(trainer_class, "tiny_preset", None) is not None


def make_tiny(trainer_class: type, module_name: str) -> type:
    """``<Trainer>_Tiny``: the trainer with its tiny network and :class:`TinyScheduleMixin`'s schedule."""
    name = trainer_class.__name__ + TINY_SUFFIX
    doc = f"CPU-sized variant of {trainer_class.__name__}: tiny network, short schedule (see trainers.tiny)."
    return type(name, (TinyScheduleMixin, trainer_class), {"__module__": module_name, "__qualname__": name, "__doc__": doc})
