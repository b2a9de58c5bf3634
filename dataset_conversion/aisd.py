"""``nnunet-stroke convert aisd SRC``: the Acute Ischemic Stroke Dataset (AISD; Liang et al., MICCAI 2021,
github.com/GriffinLiang/AISD: 397 non-contrast CT scans, 5 mm slices, ischemic lesions contoured on NCCT
with DWI as reference) -> a 3D nnU-Net dataset with one ``CT`` channel (nnU-Net's ``ct`` normalisation:
global foreground HU percentiles and z-score) and a binary lesion label. See docs/ct_data.md.

SRC is the folder the archives were unpacked into (layout pinned in tests/fixtures/aisd_paths.txt):
``mask/mask/<case>/000.png ...`` (from mask.zip; ``mask/<case>/`` is accepted too) and the CT series
``dicom/dicom-<k>/<case>/CT/*.dcm`` (or ``dicom-<k>/<case>/CT`` directly under SRC). The image comes from
the DICOM series, in HU with its geometry; the 8-bit ``image/`` PNG renderings are not used. The mask
stack is ordered by the number in its file names and laid onto the series as SimpleITK/GDCM sorts it.
Mask values 1-5 are all lesion by default (the release uses several lesion labels; ``lesion_values``
selects a subset). Every case must convert, or nothing is written: errors name the case, file and fix.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from nnunet_stroke.errors import UserError
from nnunet_stroke.image_files import is_resource_fork
from nnunet_stroke.parallel import parallel_map

from .common import (dataset_folder_name, finite_array, lesion_record, nnunet_raw_dir, staged_dataset,
                     write_cases_csv, write_dataset_json, write_like)
from .teknofest_masks import as_grayscale, read_png

MASK_VALUES = (0, 1, 2, 3, 4, 5)
DEFAULT_LESION_VALUES = (1, 2, 3, 4, 5)
LABELS = {"background": 0, "ischemic_lesion": 1}
CHANNEL_NAMES = {"0": "CT"}
LESION_CONNECTIVITY = 26
REFERENCE = ("Liang K, et al. Symmetry-Enhanced Attention Network for Acute Ischemic Infarct Segmentation with "
             "Non-Contrast CT Images. MICCAI 2021; https://github.com/GriffinLiang/AISD")
LICENSE = "non-commercial research and teaching use (AISD README)"


@dataclass(frozen=True)
class AisdJob:
    """One AISD case to convert: its CT and mask folders, where to write, which mask values are lesion."""

    case: str
    ct_dir: Path
    mask_dir: Path
    out_dir: Path
    lesion_values: tuple[int, ...]


def mask_root(src: Path) -> Path:
    """``mask/mask`` (mask.zip unpacked into ``mask/``) or ``mask``: the folder holding one folder per case."""
    for candidate in (src / "mask" / "mask", src / "mask"):
        if candidate.is_dir() and any(p.is_dir() for p in candidate.iterdir()):
            return candidate
    raise UserError(f"{src} is not the AISD layout: no case folders in {src / 'mask' / 'mask'} or {src / 'mask'}; "
                    "unpack mask.zip (and image.zip, dicom-*.tar.gz) into SRC, see docs/ct_data.md")


def ct_series_dirs(src: Path) -> dict[str, Path]:
    """``{case: .../dicom-<k>/<case>/CT}`` over ``SRC/dicom/dicom-*`` and ``SRC/dicom-*``."""
    found: dict[str, Path] = {}
    for ct_dir in sorted([*src.glob("dicom/dicom-*/*/CT"), *src.glob("dicom-*/*/CT")]):
        case = ct_dir.parent.name
        if case in found:
            raise UserError(f"case {case}: two CT series, {found[case]} and {ct_dir}; remove one of them")
        found[case] = ct_dir
    return found


def read_ct_series(ct_dir: Path, case: str) -> sitk.Image:
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(ct_dir))
    if len(series) != 1:
        what = "no DICOM series" if not series else f"{len(series)} DICOM series"
        raise UserError(f"case {case}: {ct_dir} holds {what} (expected one CT series); restore it from the "
                        f"dicom-*.tar.gz archives or delete the case's mask folder to leave the case out")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(ct_dir), series[0])
    left_out = sorted(p for p in ct_dir.iterdir() if p.is_file() and p.suffix.lower() in (".dcm", "")
                      and not is_resource_fork(p) and str(p) not in set(files))
    if left_out:  # GDCM drops a truncated or corrupt slice from the series without an error
        raise UserError(f"case {case}: {left_out[0]} is not a readable slice of the CT series in {ct_dir} "
                        f"({len(left_out)} such files; truncated or corrupt); re-extract it from the "
                        "dicom-*.tar.gz archive")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown reason"
        raise UserError(f"case {case}: cannot read the DICOM series in {ct_dir} ({reason}); re-extract it from "
                        "the dicom-*.tar.gz archive") from None


def read_mask_stack(mask_dir: Path, case: str) -> np.ndarray:
    """(z, y, x) uint8 of the numbered PNG slices in ``mask_dir``, values checked against ``MASK_VALUES``."""
    files = [p for p in mask_dir.iterdir() if p.is_file() and p.suffix.lower() == ".png" and not is_resource_fork(p)]
    if not files:
        raise UserError(f"case {case}: {mask_dir} holds no .png mask slices; restore it from mask.zip")
    unnumbered = [p for p in files if not p.stem.isdigit()]
    if unnumbered:
        raise UserError(f"case {case}: {unnumbered[0]} is not named by its slice number (000.png, 001.png, ...); "
                        "rename or remove it")
    slices = []
    for path in sorted(files, key=lambda p: int(p.stem)):
        mask = as_grayscale(read_png(path, case), path, case)
        if slices and mask.shape != slices[0].shape:
            raise UserError(f"case {case}: {path} is {mask.shape[1]}x{mask.shape[0]} pixels, the case's other mask "
                            f"slices {slices[0].shape[1]}x{slices[0].shape[0]}; replace the file")
        unexpected = np.setdiff1d(np.unique(mask), MASK_VALUES)
        if unexpected.size:
            raise UserError(f"case {case}: {path} has values {', '.join(map(str, unexpected[:5]))} outside the AISD "
                            f"mask labels {MASK_VALUES}; replace the file from mask.zip")
        slices.append(mask)
    return np.stack(slices)


def convert_case(job: AisdJob):
    image = read_ct_series(job.ct_dir, job.case)
    hu = finite_array(image, job.ct_dir, job.case)
    labels = read_mask_stack(job.mask_dir, job.case)
    if labels.shape != hu.shape:
        raise UserError(f"case {job.case}: the mask stack {job.mask_dir} is {labels.shape[0]} slices of "
                        f"{labels.shape[2]}x{labels.shape[1]}, the CT series {job.ct_dir} {hu.shape[0]} slices of "
                        f"{hu.shape[2]}x{hu.shape[1]}; they must match slice for slice; fix or remove the case")
    lesion = np.isin(labels, job.lesion_values).astype(np.uint8)
    sitk.WriteImage(image, str(job.out_dir / "imagesTr" / f"{job.case}_0000.nii.gz"), useCompression=True)
    write_like(lesion, image, job.out_dir / "labelsTr" / f"{job.case}.nii.gz")
    return lesion_record(job.case, lesion, image.GetSpacing(), LESION_CONNECTIVITY)


def convert(src: Path, dataset_id: int, name: str = "AISD", overwrite: bool = False, num_processes: int = 2,
            lesion_values: Sequence[int] = DEFAULT_LESION_VALUES) -> Path:
    """Convert the unpacked AISD release at ``src`` into ``$nnUNet_raw/Dataset{ID:03d}_{name}``; return it."""
    src = Path(src)
    if not src.is_dir():
        raise UserError(f"{src} is not a folder; pass the folder the AISD archives were unpacked into")
    if not set(lesion_values) <= set(MASK_VALUES) - {0}:
        raise ValueError(f"lesion_values must be a subset of {MASK_VALUES[1:]}, got {tuple(lesion_values)}")
    masks = {p.name: p for p in sorted(mask_root(src).iterdir()) if p.is_dir() and not is_resource_fork(p)}
    series = ct_series_dirs(src)
    for case, mask_dir in masks.items():
        if case not in series:
            raise UserError(f"case {case}: no CT series for {mask_dir} (looked for {src}/dicom/dicom-*/{case}/CT and "
                            f"{src}/dicom-*/{case}/CT); extract all dicom-*.tar.gz archives (dicom-3 holds 0091465, "
                            "0091468, 0091505, 0091519) or delete the mask folder to leave the case out")
    unmasked = sorted(set(series) - set(masks))
    if unmasked:
        warnings.warn(f"{len(unmasked)} CT series without a mask folder are left out (e.g. {', '.join(unmasked[:5])})",
                      stacklevel=2)
    final = nnunet_raw_dir() / dataset_folder_name(dataset_id, name)
    with staged_dataset(dataset_id, name, overwrite) as staging:
        (staging / "imagesTr").mkdir()
        (staging / "labelsTr").mkdir()
        jobs = [AisdJob(case, series[case], mask_dir, staging, tuple(lesion_values)) for case, mask_dir in masks.items()]
        records = parallel_map(convert_case, jobs, num_processes, "AISD cases")
        write_cases_csv(staging / "cases.csv", records)
        write_dataset_json(staging, CHANNEL_NAMES, LABELS, len(records), final.name, reference=REFERENCE,
                           license=LICENSE, description="AISD non-contrast CT (HU) from the DICOM series, binary "
                                                        f"ischemic lesion = mask values {tuple(lesion_values)}")
    return final
