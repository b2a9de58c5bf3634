"""``nnUNetv2_train`` run in this process with the package's trainers found (``nnUNet_extTrainer`` set)."""
from __future__ import annotations

import sys

from nnunet_stroke.nnunet_folders import nnunet_folder
from nnunet_stroke.workflows.nnunet_env import with_ext_trainer


def run_stock_training(stock_args: list[str]) -> None:
    """Run nnU-Net's training entry point on ``stock_args`` (its own arguments); the folders it needs are
    checked first so a missing one is a UserError, not a traceback (unless only help is asked for)."""
    if not {"-h", "--help"} & set(stock_args):
        for variable in ("nnUNet_preprocessed", "nnUNet_results"):
            nnunet_folder(variable)
    with_ext_trainer()
    from nnunetv2.run.run_training import run_training_entry

    sys.argv = ["nnUNetv2_train", *stock_args]
    run_training_entry()
