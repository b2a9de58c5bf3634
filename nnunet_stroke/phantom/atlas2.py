"""The phantom in the ATLAS v2.0 (R2.0) release layout (see docs/data.md)::

    ATLAS_2/Training/R0NN/dataset_description.json
    ATLAS_2/Training/R0NN/sub-r0NNsMMM/ses-1/anat/sub-r0NNsMMM_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz
    ATLAS_2/Training/R0NN/sub-r0NNsMMM/ses-1/anat/sub-r0NNsMMM_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz
    ATLAS_2/Testing/R0NN/sub-r0NNsMMM/ses-1/anat/..._T1w.nii.gz          (no masks)

T1-weighted images with dark chronic lesions (``phantom.mri.t1w``), every training case with 1-3 lesions,
no mimics. The real images are 197x233x189 voxels at 1 mm (``shape=(189, 233, 197)``, z y x); the default
is a small grid at the same 1 mm for tests and quick runs. ``cases`` training cases are written and, as in
the release (655 : 300), ``ceil(cases * 300 / 655)`` testing cases. Cases are spread over cohorts
R001-R005, subject numbers running on from training to testing. The release's top-level spreadsheet, metadata and template files are not written.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nnunet_stroke.phantom.anatomy import make_head
from nnunet_stroke.phantom.geometry import Grid, write_nifti
from nnunet_stroke.phantom.mri import t1w
from nnunet_stroke.staging import staged_folder as staged_root

DEFAULT_SHAPE = (64, 80, 64)
ATLAS_SHAPE = (189, 233, 197)
SPACING_MM = (1.0, 1.0, 1.0)
RAS_AS_LPS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # how ITK reports an MNI (RAS-stored) NIfTI
COHORTS = 5
SPACE = "space-MNI152NLin2009aSym"
TEST_FRACTION = 300 / 655


def subject(index: int) -> tuple[str, str]:
    """(cohort, subject id) of the ``index``-th case (training first, then testing), e.g. ("R001", "sub-r001s001")."""
    cohort_number, within = index % COHORTS + 1, index // COHORTS + 1
    return f"R{cohort_number:03d}", f"sub-r{cohort_number:03d}s{within:03d}"


def case_paths(root: Path, part: str, index: int) -> dict[str, Path]:
    cohort, sub = subject(index)
    anat = root / part / cohort / sub / "ses-1" / "anat"
    prefix = f"{sub}_ses-1_{SPACE}"
    return {"t1w": anat / f"{prefix}_T1w.nii.gz", "mask": anat / f"{prefix}_label-L_desc-T1lesion_mask.nii.gz"}


def write_case(root: Path, part: str, index: int, seed: int, shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng([seed, index])
    grid = Grid(tuple(shape), SPACING_MM, RAS_AS_LPS)
    head = make_head(grid.shape, grid.spacing_mm, rng, lesion_count=int(rng.choice([1, 1, 1, 2, 3])), mimic_count=0)
    paths = case_paths(root, part, index)
    write_nifti(t1w(head, rng), grid, paths["t1w"])
    if part == "Training":
        write_nifti(head.lesion_mask.astype(np.uint8), grid, paths["mask"])


def write_atlas2(out: Path, cases: int, seed: int, shape: tuple[int, int, int] | None = None) -> Path:
    """Write ``cases`` training (and the matching number of testing) cases into ``out/ATLAS_2``."""
    shape = tuple(shape or DEFAULT_SHAPE)
    parts = [("Training", index) for index in range(cases)] + \
        [("Testing", cases + index) for index in range(math.ceil(cases * TEST_FRACTION))]
    with staged_root(Path(out) / "ATLAS_2") as root:
        for part, index in tqdm(parts, desc="phantom atlas2", unit="case"):
            write_case(root, part, index, seed, shape)
        for cohort_dir in sorted(root.glob("*/R*")):
            description = {"Name": f"ATLAS v2.0 layout phantom (synthetic), cohort {cohort_dir.name}",
                           "BIDSVersion": "1.6.0"}
            (cohort_dir / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return Path(out) / "ATLAS_2"
