"""PMSAN progressive knowledge distillation (Algorithm 1 of Nalla & Deepak) as a chain of stock
``nnUNetv2_train`` runs: XL, then L from XL, M from L and S from M (the distillation trainers find their
teacher by convention, see :mod:`nnunet_stroke.trainers.distillation`). Finished models are kept unless
``retrain``, so an interrupted chain resumes where it stopped."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from nnunet_stroke.errors import UserError


def train_command(dataset: str, configuration: str, fold: str, trainer: str, plans: str, device: str) -> list[str]:
    """The stock ``nnUNetv2_train`` command line for one model of the chain."""
    stock = shutil.which("nnUNetv2_train")
    entry = [stock] if stock else [sys.executable, "-c", "from nnunetv2.run.run_training import run_training_entry; "
                                                         "run_training_entry()"]
    return [*entry, str(dataset), configuration, str(fold), "-tr", trainer, "-p", plans, "-device", device]


def run_distillation(dataset: str, configuration: str, fold: str, plans: str = "nnUNetPlans",
                     family: str = "PMSAN", smallest: str = "S", tiny: bool = False, device: str = "cuda",
                     retrain: bool = False) -> None:
    """Train the chain's models in order, from XL down to ``smallest``; a failed run is a UserError naming
    its log folder."""
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    from nnunet_stroke.trainers.distillation import distillation_chain
    from nnunet_stroke.workflows.nnunet_env import with_ext_trainer

    env = with_ext_trainer(dict(os.environ))
    for trainer in distillation_chain(smallest, "_Tiny" if tiny else "", family):
        try:
            folder = Path(get_output_folder(dataset, trainer, plans, configuration, fold))
        except RuntimeError as error:
            raise UserError(f"dataset {dataset}: {error} Convert, plan and preprocess it first.") from error
        if (folder / "checkpoint_final.pth").is_file() and not retrain:
            print(f"{trainer}: {folder / 'checkpoint_final.pth'} exists, kept (--retrain to train again)")
            continue
        command = train_command(dataset, configuration, fold, trainer, plans, device)
        print("running:", " ".join(command), flush=True)
        returncode = subprocess.run(command, env=env).returncode
        if returncode:
            raise UserError(f"training {trainer} failed (exit code {returncode}); its log is in {folder}. Fix the "
                            f"cause and rerun the same command: finished models are kept.")
