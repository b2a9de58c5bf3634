"""The ISLES 2022 phantom: layouts, determinism, geometry, and the pinned difficulty measured from the
written files (docs/data.md)."""
from __future__ import annotations

import filecmp
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnunet_stroke.cli import main as cli_main
from nnunet_stroke.errors import UserError
from nnunet_stroke.phantom import write_phantom
from nnunet_stroke.phantom.anatomy import GREY, WHITE
from nnunet_stroke.phantom.isles22 import DEFAULT_SHAPE, case_paths, draw_head

TINY = (20, 28, 28)
MEASURED_CASES = 10  # default-shape cases the difficulty is measured on
SEED = 0


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float64)


def relative_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def default_phantom(tmp_path_factory) -> Path:
    return write_phantom(tmp_path_factory.mktemp("phantom"), "isles22", cases=MEASURED_CASES, seed=SEED)


@pytest.fixture(scope="module")
def heads():
    """The generator's label maps of the measured cases (which voxels are grey/white matter, mimics)."""
    return [draw_head(index, SEED, DEFAULT_SHAPE)[2] for index in range(MEASURED_CASES)]


@pytest.fixture(scope="module")
def measured(default_phantom) -> list[dict[str, np.ndarray]]:
    cases = []
    for index in range(MEASURED_CASES):
        paths = case_paths(default_phantom, f"sub-strokecase{index + 1:04d}", github_layout=False)
        cases.append({name: read(path) for name, path in paths.items() if name != "flair"})
    return cases


@pytest.mark.parametrize("layout,github", [("isles22", False), ("isles22-github", True)])
def test_layout_and_same_seed_same_bytes(tmp_path, layout, github):
    first = write_phantom(tmp_path / "a", layout, cases=3, seed=7, shape=TINY)
    second = write_phantom(tmp_path / "b", layout, cases=3, seed=7, shape=TINY)
    other_seed = write_phantom(tmp_path / "c", layout, cases=3, seed=8, shape=TINY)
    assert first == tmp_path / "a" / "ISLES-2022"
    expected = sorted(str(p.relative_to(first)) for i in range(3)
                      for p in case_paths(first, f"sub-strokecase{i + 1:04d}", github).values())
    assert [f for f in relative_files(first) if f.endswith(".nii.gz")] == expected
    assert relative_files(first) == relative_files(second)
    match, mismatch, errors = filecmp.cmpfiles(first, second, relative_files(first), shallow=False)
    assert mismatch == [] and errors == []
    dwi = case_paths(first, "sub-strokecase0001", github)["dwi"].relative_to(first)
    assert not filecmp.cmp(first / dwi, other_seed / dwi, shallow=False)
    assert not any(p.name.startswith(".") for p in (tmp_path / "a").iterdir())  # no staging folder left


def test_existing_root_is_refused(tmp_path):
    write_phantom(tmp_path, cases=1, shape=TINY)
    with pytest.raises(UserError, match="already exists"):
        write_phantom(tmp_path, cases=1, shape=TINY)


def test_grids_anisotropic_rotated_and_flair_aligned(default_phantom):
    def image(index, name):
        return sitk.ReadImage(str(case_paths(default_phantom, f"sub-strokecase{index + 1:04d}", False)[name]))

    assert image(0, "dwi").GetSpacing() == (2.0, 2.0, 2.0)
    assert image(0, "dwi").GetSize() == DEFAULT_SHAPE[::-1]
    assert image(2, "dwi").GetSpacing() == (2.0, 2.0, 4.0)          # 2x2x4 mm
    assert not np.allclose(image(4, "dwi").GetDirection(), np.eye(3).ravel())
    for index in (0, 2, 4):
        dwi, adc, mask, flair = (image(index, n) for n in ("dwi", "adc", "mask", "flair"))
        for other in (adc, mask):
            assert (other.GetSize(), other.GetSpacing(), other.GetDirection()) == \
                (dwi.GetSize(), dwi.GetSpacing(), dwi.GetDirection())
            assert np.allclose(other.GetOrigin(), dwi.GetOrigin())
        assert flair.GetSize() != dwi.GetSize() and flair.GetSpacing() != dwi.GetSpacing()
        # physically aligned: FLAIR sampled at the DWI voxels' positions (trilinear, via the inverse affine)
        # shows the brain where ADC shows brain tissue
        zyx = np.indices(sitk.GetArrayViewFromImage(dwi).shape).reshape(3, -1)
        index_xyz = zyx[::-1].T.astype(np.float64)
        physical = (np.asarray(dwi.GetDirection()).reshape(3, 3) @ (index_xyz * dwi.GetSpacing()).T).T + dwi.GetOrigin()
        flair_index = (np.linalg.inv(np.asarray(flair.GetDirection()).reshape(3, 3)) @ (physical - flair.GetOrigin()).T).T \
            / flair.GetSpacing()
        sampled = ndimage.map_coordinates(sitk.GetArrayFromImage(flair), flair_index[:, ::-1].T, order=1)
        flair_brain = sampled.reshape(sitk.GetArrayViewFromImage(dwi).shape) > 230
        adc_brain = (sitk.GetArrayFromImage(adc) > 500) & (sitk.GetArrayFromImage(adc) < 1200)
        assert 2 * (flair_brain & adc_brain).sum() / (flair_brain.sum() + adc_brain.sum()) > 0.85


def test_lesion_volumes_counts_and_lesion_free_cases():
    volumes, counts = [], []
    for index in range(40):
        _, grid, head = draw_head(index, SEED, DEFAULT_SHAPE)
        mask = head.lesion_mask
        volumes.append(mask.sum() * np.prod(grid.spacing_mm) / 1000.0)
        counts.append(ndimage.label(mask, structure=np.ones((3, 3, 3)))[1])
    lesion_volumes = [v for v in volumes if v > 0]
    assert min(lesion_volumes) < 1.0 and max(lesion_volumes) > 50.0
    assert counts.count(0) >= 4 and sum(c >= 2 for c in counts) >= 5


def _dwi_tissue_reference(case):
    """DWI in brain tissue (ADC in the grey/white range) outside lesions."""
    return (case["adc"] > 500) & (case["adc"] < 1200) & (case["mask"] == 0)


def test_dwi_lesion_contrast_at_most_two_to_one(measured):
    ratios = []
    for case in measured:
        lesion = case["mask"] > 0
        if lesion.any():
            ring = ndimage.binary_dilation(lesion, iterations=2) & ~lesion & _dwi_tissue_reference(case)
            ratios.append(case["dwi"][lesion].mean() / case["dwi"][ring].mean())
    assert len(ratios) >= 8
    assert max(ratios) <= 2.0 and min(ratios) >= 1.2


def test_noise_and_bias_field(measured, heads):
    """Noise: robust spread of neighbour differences in grey/white matter. Bias: peak-to-peak of 8^3-block
    medians of the DWI divided by its tissue class's median (the generator's tissue labels say which voxels
    are grey or white matter; lesions, mimics and artefacts are left out): >= 0.15 in every case, >= 0.25
    in the median case (8-voxel blocks under-read a field whose ramp runs along a 4 mm axis)."""
    bias_ranges = []
    for head, case in zip(heads, measured):
        dwi = case["dwi"]
        clean = ndimage.binary_erosion(head.brain_mask) \
            & ~ndimage.binary_dilation(head.lesion_mask | head.mimic_mask | head.artefact_mask, iterations=2)
        relative = np.zeros_like(dwi)
        for tissue in (GREY, WHITE):
            voxels = clean & (head.tissue == tissue)
            relative[voxels] = dwi[voxels] / np.median(dwi[voxels])
        both = clean[:, :, 1:] & clean[:, :, :-1] & (head.tissue[:, :, 1:] == head.tissue[:, :, :-1])
        differences = (relative[:, :, 1:] - relative[:, :, :-1])[both]
        noise_fraction = 1.4826 * np.median(np.abs(differences - np.median(differences))) / np.sqrt(2.0)
        assert noise_fraction >= 0.05
        block_medians = []
        for z, y, x in np.ndindex(*(int(np.ceil(n / 8)) for n in dwi.shape)):
            block = (slice(8 * z, 8 * z + 8), slice(8 * y, 8 * y + 8), slice(8 * x, 8 * x + 8))
            if clean[block].sum() >= 50:
                block_medians.append(np.median(relative[block][clean[block]]))
        bias_ranges.append(max(block_medians) - min(block_medians))
    assert min(bias_ranges) >= 0.15 and np.median(bias_ranges) >= 0.25


def test_mimics_bright_on_dwi_with_normal_or_high_adc(measured, heads):
    cases_with_mimics = 0
    for head, case in zip(heads, measured):
        assert np.array_equal(head.lesion_mask, case["mask"] > 0)
        assert not (head.mimic_mask & (case["mask"] > 0)).any()
        reference = _dwi_tissue_reference(case) & ~ndimage.binary_dilation(head.mimic_mask, iterations=2)
        for label in range(1, int(head.mimic_labels.max()) + 1):
            core = ndimage.binary_erosion(head.mimic_labels == label)
            if core.sum() < 5:
                continue
            near = ndimage.binary_dilation(core, iterations=4) & reference
            assert case["dwi"][core].mean() / case["dwi"][near].mean() >= 1.25
            assert case["adc"][core].mean() / case["adc"][near].mean() >= 0.9
        cases_with_mimics += head.mimic_labels.max() > 0
    assert cases_with_mimics >= MEASURED_CASES // 2


def _dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    total = prediction.sum() + reference.sum()
    return 1.0 if total == 0 else 2.0 * (prediction & reference).sum() / total


def test_global_dwi_threshold_fails_where_adc_succeeds(measured):
    """The design's criterion: a DWI threshold cannot separate lesions from mimics, adding ADC can."""
    zscored = []
    for case in measured:
        head = case["adc"] > 0
        dwi = (case["dwi"] - case["dwi"][head].mean()) / case["dwi"][head].std()
        zscored.append((dwi, case["adc"], case["mask"] > 0))
    thresholds = np.linspace(0.0, 4.0, 41)
    dwi_only = max(np.mean([_dice(d > t, m) for d, _, m in zscored]) for t in thresholds)
    with_adc = max(np.mean([_dice((d > t) & (a < 600) & (a > 100), m) for d, a, m in zscored]) for t in thresholds)
    assert dwi_only <= 0.6
    assert with_adc >= dwi_only + 0.15


def test_cli_writes_and_rejects(tmp_path, capsys):
    assert cli_main(["phantom", str(tmp_path / "p"), "--layout", "isles22-github", "--cases", "2",
                     "--seed", "3", "--shape", *map(str, TINY)]) == 0
    assert (tmp_path / "p" / "ISLES-2022" / "rawdata" / "sub-strokecase0002").is_dir()
    assert cli_main(["phantom", str(tmp_path / "q"), "--layout", "teknofest", "--shape", "20", "28", "28"]) == 2
    assert "drop --shape" in capsys.readouterr().err
    assert not (tmp_path / "q").exists() or os.listdir(tmp_path / "q") == []
