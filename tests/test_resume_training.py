"""``nnUNetv2_train ... --c`` resumes an interrupted training of the package's trainers with the schedule of
an uninterrupted run: an LBMNet trainer (fixed schedule) and a time-budgeted ``_Tiny`` trainer, whose number
of epochs the budget changes at run time (nnunet_stroke/trainers/tiny.py).

The interruption happens in-process right after nnU-Net wrote ``checkpoint_latest.pth`` at the end of an
epoch (as a killed job leaves it); the resumption is the stock command in a fresh process. The reference is
the same trainer run without interruption: same number of epochs, same learning rate per epoch. With a
budget of 0.006 s no epoch fits, so the budget sets the schedule to two epochs after the first one, on any
machine."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from nnunet_helpers import CONFIGURATION, make_trainer, run_stock, stock_env


class Interrupted(Exception):
    """Stands for the job being killed."""


def _train(trainer_name: str, planned, fold: int, interrupt_after_epoch: int | None = None):
    """Train in-process with checkpoint_latest written after every epoch; optionally stop after an epoch."""
    from nnunet_stroke.trainers import TRAINERS

    trainer = make_trainer(TRAINERS[trainer_name], planned, fold)
    trainer.save_every = 1
    finish_epoch = trainer.on_epoch_end

    def on_epoch_end():
        finish_epoch()
        if trainer.current_epoch == interrupt_after_epoch:
            raise Interrupted

    trainer.on_epoch_end = on_epoch_end
    if interrupt_after_epoch is None:
        trainer.run_training()
    else:
        with pytest.raises(Interrupted):
            trainer.run_training()
    return Path(trainer.output_folder)


def _schedule(fold_folder: Path) -> tuple[int, list[float]]:
    checkpoint = torch.load(fold_folder / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    return checkpoint["current_epoch"], checkpoint["logging"]["lrs"]


@pytest.mark.parametrize("trainer, fold, environment, expected_epochs", [
    ("nnUNetTrainerLBMNet_Tiny", 6, {"NNUNET_STROKE_TINY_EPOCHS": "2"}, 2),
    ("nnUNetTrainerStrokeUNet_Tiny", 7, {"NNUNET_STROKE_TINY_EPOCHS": "6", "NNUNET_STROKE_TINY_MINUTES": "0.0001"}, 2),
])
def test_resumed_training_keeps_the_uninterrupted_schedule(planned_phantom, monkeypatch, trainer, fold, environment,
                                                           expected_epochs):
    monkeypatch.setenv("NNUNET_STROKE_TINY_ITERATIONS", "1")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    fold_folder = _train(trainer, planned_phantom, fold)
    epochs, learning_rates = _schedule(fold_folder)
    assert epochs == expected_epochs and len(learning_rates) == expected_epochs
    shutil.rmtree(fold_folder)

    _train(trainer, planned_phantom, fold, interrupt_after_epoch=1)
    assert (fold_folder / "checkpoint_latest.pth").is_file() and not (fold_folder / "checkpoint_final.pth").exists()
    run_stock(["nnUNetv2_train", str(planned_phantom.dataset_id), CONFIGURATION, str(fold), "-tr", trainer,
               "-device", "cpu", "--c"], env={**stock_env(), "NNUNET_STROKE_TINY_ITERATIONS": "1", **environment})
    resumed_epochs, resumed_learning_rates = _schedule(fold_folder)
    assert resumed_epochs == epochs
    assert resumed_learning_rates == pytest.approx(learning_rates, rel=1e-12)
