"""ISLES 2022 -> nnU-Net raw dataset (layouts in docs/data.md).

Reads both release layouts, matching file names case-insensitively (``_FLAIR``/``_flair``,
``_adc``/``_ADC``, ``.nii.gz`` or ``.nii``):

- Zenodo BIDS release: ``SRC/sub-strokecaseXXXX/ses-0001/{dwi,anat}/..._{dwi,adc,FLAIR}.nii.gz``
- GitHub / release-1: ``SRC/rawdata/sub-strokecaseXXXX/ses-0001/..._{dwi,adc,flair}.nii.gz``

with masks in ``SRC/derivatives/sub-strokecaseXXXX/ses-0001/..._msk.nii.gz`` in both. Writes channel 0
DWI, channel 1 ADC (both z-scored by nnU-Net) and a binary label on the DWI grid. ``with_flair`` adds
FLAIR as channel 2, *resampled* (linear interpolation, SimpleITK, identity transform, zero outside) from
its own grid onto the DWI grid through the scanner coordinates in the headers; this is resampling, not
registration: motion between the acquisitions is not corrected. ``cases.csv`` counts lesions with
26-connectivity, as the official ISLES'22 scorer does; the acquisition site is not in the release's
file names, so ``site`` is empty.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from nnunet_stroke.errors import UserError
from nnunet_stroke.parallel import parallel_map

from .common import (CaseRecord, binary_mask, check_same_grid, check_voxels, child_folder, copy_or_write,
                     dataset_folder_name, finite_array, lesion_record, nifti_files, nnunet_raw_dir, read_header,
                     read_image, staged_dataset, write_cases_csv, write_dataset_json, write_like)

CASE_PREFIX = "sub-strokecase"
LESION_CONNECTIVITY = 26


@dataclass(frozen=True)
class IslesCase:
    case: str
    dwi: Path
    adc: Path
    mask: Path | None  # None for unlabelled scans (nnunet-stroke predict-scans)
    flair: Path | None


def _find_one(case: str, folder: Path | None, suffix: str, what: str, required: bool) -> Path | None:
    """The single NIfTI file under ``folder`` whose name ends in ``suffix`` (+ .nii[.gz]), any letter case."""
    found = nifti_files(folder, suffix) if folder else []
    if len(found) > 1:
        raise UserError(f"case {case}: several {what} files ({', '.join(str(p) for p in found)}); "
                        "keep one and move the others out of the dataset folder")
    if not found and required:
        where = folder if folder else f"derivatives/{case}"
        raise UserError(f"case {case}: no {what} file (*{suffix}.nii.gz) under {where}; "
                        "restore it from the ISLES 2022 release or remove the case")
    return found[0] if found else None


def find_cases(src: Path, with_flair: bool, with_masks: bool = True) -> list[IslesCase]:
    """Locate every case's DWI, ADC, mask (and FLAIR) in either release layout; without ``with_masks``
    (unlabelled scans) derivatives/ may be missing and masks are not looked for."""
    src = Path(src)
    if not src.is_dir():
        raise UserError(f"{src} is not a folder; pass the ISLES 2022 root (the folder that holds derivatives/)")
    raw_root = child_folder(src, "rawdata") or src
    derivatives = child_folder(src, "derivatives")
    case_dirs = sorted((p for p in raw_root.iterdir() if p.is_dir() and p.name.lower().startswith(CASE_PREFIX)),
                       key=lambda p: p.name.lower())
    if (derivatives is None and with_masks) or not case_dirs:
        raise UserError(f"{src} is not an ISLES 2022 tree: expected {CASE_PREFIX}XXXX folders (Zenodo release) or "
                        "rawdata/sub-strokecaseXXXX (GitHub release) next to a derivatives/ folder; "
                        "pass the dataset's root folder")
    raw_names = {p.name.lower() for p in case_dirs}
    for orphan in sorted(p for p in (derivatives.iterdir() if with_masks else ())
                         if p.is_dir() and p.name.lower().startswith(CASE_PREFIX)
                         and p.name.lower() not in raw_names):
        raise UserError(f"case {orphan.name}: has a mask under {orphan} but no image folder in {raw_root}; "
                        "restore the case's DWI/ADC or remove its derivatives folder")
    cases = []
    for case_dir in case_dirs:
        case = case_dir.name
        mask_dir = child_folder(derivatives, case.lower()) if with_masks else None
        cases.append(IslesCase(
            case=case,
            dwi=_find_one(case, case_dir, "_dwi", "DWI", required=True),
            adc=_find_one(case, case_dir, "_adc", "ADC", required=True),
            mask=_find_one(case, mask_dir, "_msk", "lesion mask", required=True) if with_masks else None,
            flair=_find_one(case, case_dir, "_flair", "FLAIR", required=with_flair),
        ))
    return cases


def convert_case(job: tuple[IslesCase, str, str, bool]) -> CaseRecord:
    """Check one case and write it into imagesTr/labelsTr (module level: runs in spawned workers)."""
    case, images_dir, labels_dir, with_flair = job
    name = case.case
    dwi = read_header(case.dwi, name, dimension=3)
    adc = read_header(case.adc, name, dimension=3)
    mask_image = read_image(case.mask, name, dimension=3) if case.mask else None
    check_same_grid(dwi, case.dwi, adc, case.adc, name)
    if mask_image is not None:
        check_same_grid(dwi, case.dwi, mask_image, case.mask, name)
    check_voxels(case.dwi, name)
    check_voxels(case.adc, name)
    copy_or_write(case.dwi, dwi, dwi, Path(images_dir) / f"{name}_0000.nii.gz", name)
    copy_or_write(case.adc, adc, dwi, Path(images_dir) / f"{name}_0001.nii.gz", name)
    if with_flair:
        flair = read_image(case.flair, name, dimension=3)
        finite_array(flair, case.flair, name)
        on_dwi_grid = sitk.Resample(flair, dwi.GetSize(), sitk.Transform(), sitk.sitkLinear, dwi.GetOrigin(),
                                    dwi.GetSpacing(), dwi.GetDirection(), 0.0, sitk.sitkFloat32)
        write_like(sitk.GetArrayFromImage(on_dwi_grid), dwi, Path(images_dir) / f"{name}_0002.nii.gz")
    if mask_image is None:
        return CaseRecord(name, "", "", "", "")
    mask = binary_mask(mask_image, case.mask, name)
    write_like(mask, dwi, Path(labels_dir) / f"{name}.nii.gz")
    return lesion_record(name, mask, dwi.GetSpacing()[::-1], LESION_CONNECTIVITY)


def convert(src: Path, dataset_id: int, name: str = "ISLES22", overwrite: bool = False, with_flair: bool = False,
            num_processes: int = 2) -> Path:
    """Convert the ISLES 2022 tree at ``src`` into ``$nnUNet_raw/Dataset{ID:03d}_{name}``; return that folder."""
    cases = find_cases(src, with_flair)
    channels = {"0": "DWI", "1": "ADC", **({"2": "FLAIR"} if with_flair else {})}
    with staged_dataset(dataset_id, name, overwrite) as staging:
        images, labels = staging / "imagesTr", staging / "labelsTr"
        images.mkdir()
        labels.mkdir()
        jobs = [(case, str(images), str(labels), with_flair) for case in cases]
        records = parallel_map(convert_case, jobs, num_processes, "convert isles22")
        write_dataset_json(staging, channels, {"background": 0, "lesion": 1}, len(cases), dataset_name=name,
                           reference="https://isles22.grand-challenge.org/ (Hernandez Petzsche et al., Sci Data 2022)",
                           license="CC BY-SA 4.0",
                           description="ISLES 2022 DWI/ADC" + ("/FLAIR (resampled onto the DWI grid)" if with_flair
                                                               else "") + " with acute infarct masks")
        write_cases_csv(staging / "cases.csv", records)
    return nnunet_raw_dir() / dataset_folder_name(dataset_id, name)
