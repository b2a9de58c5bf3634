"""nnU-Net's folders (``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results``) and dataset names, with
user errors instead of tracebacks when a variable is unset or a dataset unknown."""
from __future__ import annotations

import os
from pathlib import Path

from nnunet_stroke.errors import UserError


def nnunet_folder(variable: str) -> Path:
    """The folder named by nnU-Net's environment variable ``variable`` (nnUNet_raw, nnUNet_preprocessed,
    nnUNet_results); unset or not a folder is a UserError saying how to set it."""
    value = os.environ.get(variable)
    if not value:
        raise UserError(f"the environment variable {variable} is not set; set it to nnU-Net's folder, e.g. "
                        f"`export {variable}=/data/{variable}` (see nnU-Net's documentation on setting up paths)")
    folder = Path(value)
    if not folder.is_dir():
        raise UserError(f"{variable}={folder} is not a folder; create it (`mkdir -p {folder}`) or fix the variable")
    return folder


def dataset_name(dataset: str | int) -> str:
    """nnU-Net's ``DatasetXXX_NAME`` for an id or name; an unknown dataset is a UserError."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    for variable in ("nnUNet_raw", "nnUNet_preprocessed"):
        nnunet_folder(variable)
    try:
        return maybe_convert_to_dataset_name(dataset)
    except (RuntimeError, ValueError) as error:
        raise UserError(f"unknown dataset {dataset!r} ({str(error).strip().split('. ')[0]}); convert it first "
                        "(`nnunet-stroke convert ...`) or check the id and $nnUNet_raw") from None
