"""ATLAS v2.0 (R2.0) -> nnU-Net raw dataset (layout in docs/data.md).

Reads the release as distributed after decryption, matching names case-insensitively::

    SRC/Training/R0NN/sub-r0NNsMMM/ses-1/anat/..._T1w.nii.gz  and  ..._label-L_desc-T1lesion_mask.nii.gz
    SRC/Testing/R0NN/sub-r0NNsMMM/ses-1/anat/..._T1w.nii.gz   (no masks)

Training subjects go to imagesTr/labelsTr (channel 0 T1w, z-scored by nnU-Net; binary label), Testing
subjects to imagesTs. The cohort folder (R0NN) is the ``site`` column of ``cases.csv`` (training
cases) and of ``cases_test.csv`` (testing cases, lesion columns empty). Lesions are counted with
6-connectivity, as the ATLAS challenge scorer does (scipy.ndimage.label's default structure).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nnunet_stroke.errors import UserError
from nnunet_stroke.parallel import parallel_map

from .common import (CaseRecord, binary_mask, check_same_grid, check_voxels, child_folder, copy_or_write,
                     dataset_folder_name, lesion_record, nifti_files, nnunet_raw_dir, read_header, read_image,
                     staged_dataset, write_cases_csv, write_dataset_json, write_like)

LESION_CONNECTIVITY = 6
T1W_SUFFIX = "_t1w"
MASK_SUFFIX = "_desc-t1lesion_mask"


@dataclass(frozen=True)
class AtlasCase:
    case: str
    cohort: str
    t1w: Path
    mask: Path | None  # None for Testing subjects


def _single(case: str, folder: Path, suffix: str, what: str) -> Path:
    found = nifti_files(folder, suffix)
    if len(found) != 1:
        problem = "no" if not found else f"{len(found)}"
        listing = "" if not found else f" ({', '.join(p.name for p in found)})"
        raise UserError(f"case {case}: {problem} {what} files (*{suffix}.nii.gz) under {folder}{listing}; "
                        "keep exactly one (restore it from the ATLAS v2.0 release) or remove the subject folder")
    return found[0]


def find_cases(src: Path, with_masks: bool = True) -> tuple[list[AtlasCase], list[AtlasCase]]:
    """(training, testing) subjects of the ATLAS tree at ``src``; without ``with_masks`` (unlabelled scans)
    Training/ may be missing and no masks are looked for."""
    src = Path(src)
    if not src.is_dir():
        raise UserError(f"{src} is not a folder; pass the decrypted ATLAS v2.0 root (ATLAS_2/, holding Training/)")
    parts = {part: child_folder(src, part) for part in ("Training", "Testing")}
    if parts["Training"] is None and (with_masks or parts["Testing"] is None):
        raise UserError(f"{src} is not an ATLAS v2.0 tree: no Training/ folder with R0NN cohorts; pass the ATLAS_2/ "
                        "folder of the decrypted release")
    found: dict[str, list[AtlasCase]] = {"Training": [], "Testing": []}
    seen: dict[str, Path] = {}
    for part, folder in parts.items():
        if folder is None:
            continue
        for cohort_dir in sorted(p for p in folder.iterdir() if p.is_dir() and p.name.upper().startswith("R")):
            for subject_dir in sorted(p for p in cohort_dir.iterdir() if p.is_dir() and p.name.lower().startswith("sub-")):
                case = subject_dir.name
                if case in seen:
                    raise UserError(f"case {case}: appears twice, in {seen[case]} and {subject_dir}; remove one copy")
                seen[case] = subject_dir
                t1w = _single(case, subject_dir, T1W_SUFFIX, "T1w")
                mask = _single(case, subject_dir, MASK_SUFFIX, "lesion mask") if part == "Training" and with_masks \
                    else None
                found[part].append(AtlasCase(case, cohort_dir.name, t1w, mask))
    if not found["Training"] and (with_masks or not found["Testing"]):
        raise UserError(f"{parts['Training']} holds no subjects (R0NN/sub-*/ses-1/anat/); pass the complete ATLAS_2/ "
                        "folder of the decrypted release")
    return found["Training"], found["Testing"]


def convert_case(job: tuple[AtlasCase, str, str | None]) -> CaseRecord:
    """Check one subject and write it (module level: runs in spawned workers)."""
    case, images_dir, labels_dir = job
    t1w = read_header(case.t1w, case.case, dimension=3)
    mask_image = read_image(case.mask, case.case, dimension=3) if case.mask else None
    if mask_image is not None:
        check_same_grid(t1w, case.t1w, mask_image, case.mask, case.case)
    check_voxels(case.t1w, case.case)
    copy_or_write(case.t1w, t1w, t1w, Path(images_dir) / f"{case.case}_0000.nii.gz", case.case)
    if mask_image is None:
        return CaseRecord(case.case, "", "", case.cohort, "")
    mask = binary_mask(mask_image, case.mask, case.case)
    write_like(mask, t1w, Path(labels_dir) / f"{case.case}.nii.gz")
    return lesion_record(case.case, mask, t1w.GetSpacing()[::-1], LESION_CONNECTIVITY, site=case.cohort)


def convert(src: Path, dataset_id: int, name: str = "ATLAS2", overwrite: bool = False, num_processes: int = 2) -> Path:
    """Convert the ATLAS v2.0 tree at ``src`` into ``$nnUNet_raw/Dataset{ID:03d}_{name}``; return that folder."""
    training, testing = find_cases(src)
    with staged_dataset(dataset_id, name, overwrite) as staging:
        folders = {part: staging / part for part in ("imagesTr", "labelsTr", "imagesTs")}
        for part in ("imagesTr", "labelsTr") + (("imagesTs",) if testing else ()):
            folders[part].mkdir()
        jobs = [(case, str(folders["imagesTr"]), str(folders["labelsTr"])) for case in training] + \
            [(case, str(folders["imagesTs"]), None) for case in testing]
        records = parallel_map(convert_case, jobs, num_processes, "convert atlas2")
        write_dataset_json(staging, {"0": "T1w"}, {"background": 0, "lesion": 1}, len(training), dataset_name=name,
                           reference="https://atlas.grand-challenge.org/ (Liew et al., Sci Data 2022)",
                           license="ATLAS v2.0 data use agreement (ICPSR)",
                           description="ATLAS v2.0 T1w (MNI152NLin2009aSym, 1 mm) with chronic stroke lesion masks")
        write_cases_csv(staging / "cases.csv", records[:len(training)])
        if testing:
            write_cases_csv(staging / "cases_test.csv", records[len(training):])
    return nnunet_raw_dir() / dataset_folder_name(dataset_id, name)
