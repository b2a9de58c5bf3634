"""Shared machinery of the dataset converters: where ``$nnUNet_raw`` is, refusing a dataset id that is
taken, staging into a temporary folder that is moved into place only when every case converted, image
reading and geometry/value checks with errors that name the case and file, lesion statistics for
``cases.csv`` (volume in ml, connected-component count as the challenge scorers count them: 26-connected
for ISLES'22, 6-connected for ATLAS v2.0; as the official ISLES'22 and ATLAS v2.0 scoring code does), ``dataset.json``
through nnU-Net's own ``generate_dataset_json``, and a parallel map over cases with a progress bar.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import SimpleITK as sitk

from nnunet_stroke.errors import UserError
from nnunet_stroke.image_files import (NIFTI_ENDINGS, check_3d, check_complete, complete_nifti_values, is_nifti,
                                        is_resource_fork, unreadable)
from nnunet_stroke.staging import atomic_write_text, check_writable, new_staging_folder

CASES_CSV_COLUMNS = ("case", "lesion_volume_ml", "lesion_count", "site", "class")
GEOMETRY_TOLERANCE = 1e-3  # mm for spacing/origin, absolute for direction cosines


def nnunet_raw_dir() -> Path:
    """The folder named by ``$nnUNet_raw``; it must exist."""
    value = os.environ.get("nnUNet_raw")
    if not value:
        raise UserError("the environment variable nnUNet_raw is not set; set it to the folder that holds "
                        "nnU-Net's raw datasets, e.g. `export nnUNet_raw=/data/nnUNet_raw`")
    raw = Path(value)
    if not raw.is_dir():
        raise UserError(f"nnUNet_raw={raw} is not a folder; create it (`mkdir -p {raw}`) or fix the variable")
    return raw


def dataset_folder_name(dataset_id: int, name: str) -> str:
    if not 1 <= dataset_id <= 999:
        raise UserError(f"dataset id {dataset_id} is outside 1..999, the range nnU-Net accepts; pick another id")
    if not name or any(ch in name for ch in "/\\ ") or name.startswith("."):
        raise UserError(f"dataset name {name!r} must be non-empty without slashes or spaces; pick another --name")
    return f"Dataset{dataset_id:03d}_{name}"


def datasets_with_id(raw: Path, dataset_id: int) -> list[Path]:
    """Every folder ``Dataset{ID:03d}_*`` in ``raw`` (nnU-Net resolves ids by this prefix, whatever the name)."""
    return sorted(p for p in raw.glob(f"Dataset{dataset_id:03d}_*") if p.is_dir())


@contextlib.contextmanager
def staged_dataset(dataset_id: int, name: str, overwrite: bool) -> Iterator[Path]:
    """Yield an empty staging folder under ``$nnUNet_raw``; on normal exit it replaces
    ``Dataset{ID}_{NAME}`` (and, with ``overwrite``, every other dataset with that id) in one rename.
    On any exception the staging folder is deleted and existing datasets are left untouched. Staging
    folders of killed conversions of the same id are removed first (nnunet_stroke/staging.py). When the
    replaced dataset had other cases or another name, the id's preprocessed data and splits, derived from
    the old cases, are removed (and said so)."""
    raw = nnunet_raw_dir()
    final = raw / dataset_folder_name(dataset_id, name)
    existing = datasets_with_id(raw, dataset_id)
    if existing and not overwrite:
        raise UserError(f"dataset id {dataset_id} is already taken by {', '.join(str(p) for p in existing)}; "
                        "pass --overwrite to replace it or choose another --dataset-id")
    check_writable(raw, "$nnUNet_raw")
    staging = new_staging_folder(raw, f"converting_Dataset{dataset_id:03d}")
    try:
        yield staging
        old_cases = {p.name: training_cases(p) for p in existing}
        trash = new_staging_folder(raw, f"replaced_Dataset{dataset_id:03d}")
        for index, old in enumerate(existing):
            os.replace(old, trash / f"{index}_{old.name}")
        os.replace(staging, final)
        shutil.rmtree(trash)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if existing and any(old_name != final.name or cases != training_cases(final)
                        for old_name, cases in old_cases.items()):
        retire_derived_data(dataset_id, final.name)


def training_cases(dataset: Path) -> set[str]:
    """Case ids of a raw dataset's labelsTr (file names without dataset.json's file ending)."""
    try:
        ending = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))["file_ending"]
    except (OSError, ValueError, KeyError, TypeError):
        ending = ".nii.gz"
    folder = dataset / "labelsTr"
    return {p.name[: -len(ending)] for p in folder.glob(f"*{ending}")} if folder.is_dir() else set()


def retire_derived_data(dataset_id: int, new_name: str) -> None:
    """Remove ``$nnUNet_preprocessed/Dataset{ID}_*`` (plans, preprocessed cases, splits of the replaced
    cases) and name trained models of the id that were trained on the old cases."""
    for variable, action in (("nnUNet_preprocessed", "removed"), ("nnUNet_results", "kept")):
        root = os.environ.get(variable)
        for folder in datasets_with_id(Path(root), dataset_id) if root and Path(root).is_dir() else []:
            if action == "removed":
                shutil.rmtree(folder)
                print(f"removed {folder}: its preprocessed data and splits (splits_final.json, heldout_test.json) "
                      f"belong to the replaced cases; run nnUNetv2_plan_and_preprocess -d {dataset_id} and "
                      f"`nnunet-stroke splits {dataset_id}` again")
            else:
                print(f"warning: {folder} holds models trained on the replaced cases of dataset {dataset_id}; "
                      f"they no longer match {new_name}", file=sys.stderr)


def _unreadable(path: Path, case: str, error: Exception) -> UserError:
    last_line = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    return unreadable(path, case, last_line)


def _check_dimension(image, path: Path, case: str, dimension: int | None) -> None:
    if dimension is not None and image.GetDimension() != dimension:
        raise UserError(f"case {case}: {path} is {image.GetDimension()}-D, expected a {dimension}-D image; "
                        "replace the file or remove the case")


def read_image(path: Path, case: str, dimension: int | None = None) -> sitk.Image:
    """Read ``path`` after checking it is complete (``check_complete``); with ``dimension``, also require
    that many image axes (a NIfTI file with singleton axes beyond the 3rd is read squeezed, as ITK does)."""
    check_complete(path, case)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise _unreadable(path, case, error) from None
    _check_dimension(image, path, case, dimension)
    return image


def read_header(path: Path, case: str, dimension: int | None = None) -> sitk.ImageFileReader:
    """The header of ``path`` only (size, spacing, origin, direction; no voxels decoded), for images that are
    copied byte for byte; pair it with ``check_voxels``."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise _unreadable(path, case, error) from None
    _check_dimension(reader, path, case, dimension)
    return reader


def check_voxels(path: Path, case: str) -> None:
    """Decode ``path`` completely: a truncated or corrupt file and NaN/infinite voxels are errors naming the
    case and file."""
    if is_nifti(path):
        _raise_if_not_finite(complete_nifti_values(path, case), path, case)
    else:
        finite_array(read_image(path, case), path, case)


def grid_mismatch(reference, image) -> str | None:
    """Describe how ``image``'s voxel grid differs from ``reference``'s, or None when they agree."""
    if reference.GetSize() != image.GetSize():
        return f"size {image.GetSize()} vs {reference.GetSize()}"
    for what, a, b in (("spacing", image.GetSpacing(), reference.GetSpacing()),
                       ("origin", image.GetOrigin(), reference.GetOrigin()),
                       ("direction", image.GetDirection(), reference.GetDirection())):
        if not np.allclose(a, b, atol=GEOMETRY_TOLERANCE):
            return f"{what} {tuple(round(v, 4) for v in a)} vs {tuple(round(v, 4) for v in b)}"
    return None


def check_same_grid(reference, reference_path: Path, image, path: Path, case: str) -> None:
    mismatch = grid_mismatch(reference, image)
    if mismatch:
        raise UserError(f"case {case}: {path} is on another voxel grid than {reference_path} ({mismatch}); "
                        "resample it onto that grid or remove the case")


def _stored_values(path: Path, array: np.ndarray, case: str) -> np.ndarray:
    """The voxel values as stored. ITK's NIfTI reader silently turns NaN/inf into 0, so NIfTI files are
    read once more with nibabel (installed with nnunetv2) to see them."""
    return complete_nifti_values(path, case) if is_nifti(path) else array


def finite_array(image: sitk.Image, path: Path, case: str) -> np.ndarray:
    """``image`` as an array view (z, y, x), after checking that the file holds no NaN/infinite voxels."""
    array = sitk.GetArrayViewFromImage(image)
    _raise_if_not_finite(_stored_values(path, array, case) if np.issubdtype(array.dtype, np.floating) else array,
                         path, case)
    return array


def _raise_if_not_finite(values: np.ndarray, path: Path, case: str) -> None:
    if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise UserError(f"case {case}: {path} has {bad} NaN/infinite voxels; replace them (e.g. with 0) "
                        "or remove the case")


def binary_mask(image: sitk.Image, path: Path, case: str) -> np.ndarray:
    """The mask as uint8 0/1; any other value (2, 255, -1, 0.5, NaN) is an error naming the values."""
    array = finite_array(image, path, case)
    values = np.unique(array)
    unexpected = values[(values != 0) & (values != 1)]
    if unexpected.size:
        shown = ", ".join(f"{v:g}" for v in unexpected[:5]) + (", ..." if unexpected.size > 5 else "")
        raise UserError(f"case {case}: {path} is not a binary lesion mask (values {shown} besides 0 and 1); "
                        "binarise it (e.g. mask > 0) or remove the case")
    return (array == 1).astype(np.uint8)


@dataclass(frozen=True)
class CaseRecord:
    """One row of ``cases.csv``."""

    case: str
    lesion_volume_ml: float | str
    lesion_count: int | str
    site: str
    class_: str

    def row(self) -> dict[str, object]:
        row = asdict(self)
        row["class"] = row.pop("class_")
        if isinstance(self.lesion_volume_ml, float):
            row["lesion_volume_ml"] = f"{self.lesion_volume_ml:.4f}"
        return row


def lesion_record(case: str, mask: np.ndarray, spacing_mm: Sequence[float], connectivity: int,
                  site: str = "") -> CaseRecord:
    """Lesion volume in ml and the number of connected lesions (cc3d, ``connectivity`` 6/18/26)."""
    import cc3d

    voxels = int(np.count_nonzero(mask))
    count = int(cc3d.connected_components(mask, connectivity=connectivity, return_N=True)[1]) if voxels else 0
    volume_ml = voxels * float(np.prod(spacing_mm)) / 1000.0
    return CaseRecord(case, volume_ml, count, site, "lesion" if voxels else "no_lesion")


def write_cases_csv(path: Path, records: Sequence[CaseRecord | dict],
                    columns: Sequence[str] = CASES_CSV_COLUMNS) -> None:
    """``cases.csv`` (or a table with more ``columns``), rows sorted by case, written atomically."""
    rows = [r.row() if isinstance(r, CaseRecord) else r for r in records]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: r["case"]))
    atomic_write_text(path, buffer.getvalue())


def write_dataset_json(folder: Path, channel_names: dict[str, str], labels: dict[str, int], num_training_cases: int,
                       dataset_name: str, **metadata: str) -> None:
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    generate_dataset_json(str(folder), channel_names=channel_names, labels=labels,
                          num_training_cases=num_training_cases, file_ending=".nii.gz", dataset_name=dataset_name,
                          converted_by="nnunet-stroke convert", **metadata)


def write_like(array: np.ndarray, reference, path: Path) -> None:
    """Write ``array`` (z, y, x) as compressed NIfTI with the geometry of ``reference`` (an image or a
    ``read_header`` reader)."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(reference.GetSpacing())
    image.SetOrigin(reference.GetOrigin())
    image.SetDirection(reference.GetDirection())
    sitk.WriteImage(image, str(path), useCompression=True)


def copy_or_write(source: Path, image, reference, target: Path, case: str) -> None:
    """Put the image at ``source`` (described by ``image``, an image or a ``read_header`` reader) at
    ``target`` (.nii.gz) on ``reference``'s exact geometry: a byte copy when the source already is a .nii.gz
    on exactly that grid and stored as 3-D (the common case, and much faster), else a rewrite (which also
    drops singleton 4th axes)."""
    exact = (image.GetSize() == reference.GetSize() and image.GetSpacing() == reference.GetSpacing()
             and image.GetOrigin() == reference.GetOrigin() and image.GetDirection() == reference.GetDirection())
    if exact and source.name.lower().endswith(".nii.gz") and check_3d(source, case):
        shutil.copyfile(source, target)
    else:
        pixels = image if isinstance(image, sitk.Image) else read_image(source, case)
        write_like(sitk.GetArrayFromImage(pixels), reference, target)




def child_folder(folder: Path, name: str) -> Path | None:
    """The sub-folder of ``folder`` called ``name`` in any letter case, None when there is none."""
    matches = [p for p in folder.iterdir() if p.is_dir() and p.name.lower() == name.lower()]
    return matches[0] if matches else None


def nifti_files(folder: Path, suffix: str) -> list[Path]:
    """NIfTI files (``.nii.gz``/``.nii``) anywhere under ``folder`` whose name ends in ``suffix`` + ending,
    any letter case, sorted (macOS resource forks ``._*`` skipped)."""
    endings = tuple(suffix + ending for ending in NIFTI_ENDINGS)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith(endings)
                  and not is_resource_fork(p))
