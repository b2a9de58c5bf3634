"""The phantom in the two ISLES 2022 release layouts (see docs/data.md).

- ``isles22``: the Zenodo BIDS release ``ISLES-2022/sub-strokecaseXXXX/ses-0001/dwi/..._{dwi,adc}.nii.gz``,
  ``.../anat/..._FLAIR.nii.gz`` and ``derivatives/sub-strokecaseXXXX/ses-0001/..._msk.nii.gz``.
- ``isles22-github``: the GitHub/release-1 layout ``rawdata/sub-strokecaseXXXX/ses-0001/..._{dwi,adc,flair}.nii.gz``
  with the same ``derivatives/``.

DWI, ADC and mask share one grid (2 mm; every 5th case from the 3rd on is 2x2x4 mm with half the
slices, every 5th from the 5th on has a rotated, mirrored direction matrix). FLAIR has its own larger,
finer-in-plane grid with identity direction, physically aligned. Every 8th case (index 7, 15, ...) has
no lesion; the others have 1-4. Case ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, so a
case does not depend on how many cases are written. Every case has 1-3 skull-base susceptibility
artefacts, half of the lesions have a pseudo-normalised rim, 90 % of cases have 2-5 T2 shine-through
mimics (``phantom.mri``). ``difficulty`` gives another scanner profile (``mri.with_scanner``) and
``first_case`` numbers the cases on from another index (a multiple of 40 keeps the mix of grids and
lesion-free cases), e.g. for an external cohort whose names differ from the training cases'.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nnunet_stroke.phantom.anatomy import WHITE, Head, make_head
from nnunet_stroke.phantom.geometry import Grid, rotation_direction, write_nifti
from nnunet_stroke.phantom.mri import (DEFAULT_DIFFICULTY, FLAIR_TISSUE, Difficulty, draw_artefact_count,
                                       draw_mimic_count, dwi_adc_flair, rician)
from nnunet_stroke.staging import staged_folder as staged_root

DEFAULT_SHAPE = (40, 64, 64)
SPACING_MM = (2.0, 2.0, 2.0)
FLAIR_SPACING_MM = (3.0, 1.6, 1.6)
FLAIR_FIELD_OF_VIEW_FACTOR = 1.15
SESSION = "ses-0001"


def case_id(index: int) -> str:
    return f"sub-strokecase{index + 1:04d}"


def case_grid(index: int, shape: tuple[int, int, int], rng: np.random.Generator) -> Grid:
    if index % 5 == 2:
        return Grid((math.ceil(shape[0] / 2), shape[1], shape[2]), (2 * SPACING_MM[0], *SPACING_MM[1:]))
    if index % 5 == 4:
        angle = float(rng.uniform(8.0, 25.0) * rng.choice([-1.0, 1.0]))
        return Grid(tuple(shape), SPACING_MM, rotation_direction(angle, flip_x=True))
    return Grid(tuple(shape), SPACING_MM)


def flair_grid(dwi_grid: Grid) -> Grid:
    extent = [n * s * FLAIR_FIELD_OF_VIEW_FACTOR for n, s in zip(dwi_grid.shape, dwi_grid.spacing_mm)]
    return Grid(tuple(math.ceil(e / s) for e, s in zip(extent, FLAIR_SPACING_MM)), FLAIR_SPACING_MM)


def lesion_count(index: int, rng: np.random.Generator) -> int:
    return 0 if index % 8 == 7 else int(rng.choice([1, 1, 1, 2, 2, 3, 4]))


def case_paths(root: Path, case: str, github_layout: bool) -> dict[str, Path]:
    prefix = f"{case}_{SESSION}"
    mask = root / "derivatives" / case / SESSION / f"{prefix}_msk.nii.gz"
    if github_layout:
        session = root / "rawdata" / case / SESSION
        return {"dwi": session / f"{prefix}_dwi.nii.gz", "adc": session / f"{prefix}_adc.nii.gz",
                "flair": session / f"{prefix}_flair.nii.gz", "mask": mask}
    session = root / case / SESSION
    return {"dwi": session / "dwi" / f"{prefix}_dwi.nii.gz", "adc": session / "dwi" / f"{prefix}_adc.nii.gz",
            "flair": session / "anat" / f"{prefix}_FLAIR.nii.gz", "mask": mask}


def draw_head(index: int, seed: int, shape: tuple[int, int, int], difficulty: Difficulty = DEFAULT_DIFFICULTY
              ) -> tuple[np.random.Generator, Grid, Head]:
    """Case ``index``'s grid and label maps, and the generator positioned to draw its intensities."""
    rng = np.random.default_rng([seed, index])
    grid = case_grid(index, tuple(shape), rng)
    head = make_head(grid.shape, grid.spacing_mm, rng, lesion_count(index, rng), draw_mimic_count(rng, difficulty),
                     artefact_count=draw_artefact_count(rng, difficulty), evolving_fraction=difficulty.evolving_fraction)
    return rng, grid, head


def write_case(root: Path, index: int, seed: int, shape: tuple[int, int, int], github_layout: bool,
               difficulty: Difficulty = DEFAULT_DIFFICULTY) -> None:
    rng, grid, head = draw_head(index, seed, shape, difficulty)
    dwi, adc, flair_on_dwi_grid = dwi_adc_flair(head, rng, difficulty)
    target = flair_grid(grid)
    flair = rician(target.resample(grid.image(flair_on_dwi_grid)), difficulty.noise_fraction * FLAIR_TISSUE[WHITE], rng)
    paths = case_paths(root, case_id(index), github_layout)
    write_nifti(dwi, grid, paths["dwi"])
    write_nifti(adc, grid, paths["adc"])
    write_nifti(flair, target, paths["flair"])
    write_nifti(head.lesion_mask.astype(np.uint8), grid, paths["mask"])


def write_isles22(out: Path, cases: int, seed: int, shape: tuple[int, int, int] | None = None,
                  github_layout: bool = False, difficulty: Difficulty = DEFAULT_DIFFICULTY, first_case: int = 0) -> Path:
    """Write ``cases`` phantom cases (indices ``first_case`` on) into ``out/ISLES-2022``; return that folder."""
    shape = tuple(shape or DEFAULT_SHAPE)
    with staged_root(Path(out) / "ISLES-2022") as root:
        description = {"Name": "ISLES 2022 layout phantom (synthetic)", "BIDSVersion": "1.7.0",
                       "GeneratedBy": [{"Name": "nnunet-stroke phantom", "Seed": seed}]}
        (root / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
        for index in tqdm(range(first_case, first_case + cases), desc="phantom isles22", unit="case"):
            write_case(root, index, seed, shape, github_layout, difficulty)
    return Path(out) / "ISLES-2022"
