"""Planning with the package's nnU-Net planners (``nnunet-stroke plan``).

nnU-Net finds experiment planners only inside its own package, so the package runs nnU-Net's planning
API with its planner class, as ``nnUNetv2_plan_and_preprocess`` would: the dataset fingerprint is
extracted first when ``dataset_fingerprint.json`` is missing (nnU-Net's ``DatasetFingerprintExtractor``),
then the planner writes ``$nnUNet_preprocessed/DatasetID_Name/<plans name>.json``. Preprocessing and
training are the stock commands with ``-plans_name`` / ``-p``.
"""
from __future__ import annotations

import os
from pathlib import Path

from nnunet_stroke.errors import UserError

PLANNERS = ("lbmnet",)  # --planner choices
MIN_GPU_MEMORY_GB = 4  # below, the paper-scale network's weights and optimiser state leave no room for a patch


def _require_nnunet_folders() -> None:
    for variable in ("nnUNet_raw", "nnUNet_preprocessed"):
        if not os.environ.get(variable):
            raise UserError(f"{variable} is not set: export nnUNet_raw and nnUNet_preprocessed (nnU-Net's data "
                            "folders, see nnU-Net's documentation/setting_up_paths.md) and run the command again")


def _dataset_name(dataset: str | int) -> str:
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        return maybe_convert_to_dataset_name(dataset)
    except (RuntimeError, ValueError) as error:
        raise UserError(f"dataset {dataset!r} not found in $nnUNet_raw={os.environ['nnUNet_raw']} or "
                        f"$nnUNet_preprocessed: {error} Convert it first (nnunet-stroke convert ...).") from error


def next_commands(dataset_id: int, plans_name: str) -> list[str]:
    """The stock commands that use the plans."""
    return [f"nnUNetv2_preprocess -d {dataset_id} -plans_name {plans_name} -c 3d_fullres",
            f"nnUNetv2_train {dataset_id} 3d_fullres FOLD -tr nnUNetTrainerLBMNet -p {plans_name}"]


def plan(dataset: str | int, planner: str = "lbmnet", gpu_memory_gb: float | None = None,
         num_processes: int | None = None) -> Path:
    """Extract the fingerprint when missing, plan with ``planner``; return the plans file written."""
    if planner not in PLANNERS:
        raise UserError(f"unknown planner {planner!r}; choose one of {', '.join(PLANNERS)}")
    if gpu_memory_gb is not None and not gpu_memory_gb >= MIN_GPU_MEMORY_GB:
        raise UserError(f"--gpu-memory-gb {gpu_memory_gb}: LBMNet's planner needs at least {MIN_GPU_MEMORY_GB} GB "
                        "(the paper used 24 GB)")
    _require_nnunet_folders()
    name = _dataset_name(dataset)
    raw = Path(os.environ["nnUNet_raw"]) / name
    if not (raw / "dataset.json").is_file():
        raise UserError(f"{raw / 'dataset.json'} does not exist; convert the dataset into $nnUNet_raw first")
    from nnunetv2.configuration import default_num_processes
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset

    from nnunet_stroke.workflows.lbmnet_planner import PAPER_GPU_MEMORY_GB, nnUNetPlannerLBMNet

    dataset_id = int(name[len("Dataset"):].split("_")[0])
    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / name
    if not (preprocessed / "dataset_fingerprint.json").is_file():
        extract_fingerprint_dataset(dataset_id, num_processes=num_processes or default_num_processes,
                                    check_dataset_integrity=True, clean=False)
    planner_instance = nnUNetPlannerLBMNet(name, gpu_memory_target_in_gb=gpu_memory_gb or PAPER_GPU_MEMORY_GB)
    planner_instance.plan_experiment()
    return preprocessed / f"{planner_instance.plans_identifier}.json"
