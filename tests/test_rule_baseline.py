"""The voxel-rule baselines (workflows/baselines.py): the vectorised grid against a naive per-rule loop,
and the choice made on training cases only."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_stroke.workflows.baselines import (ADC_GRID, Z_GRID, CaseFiles, dice_grid, fit_baselines,
                                               nnunet_case_files, zscored)


def naive_dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    total = int(reference.sum()) + int(prediction.sum())
    return 1.0 if total == 0 else 2.0 * int((reference & prediction).sum()) / total


def test_dice_grid_matches_a_loop_over_every_rule():
    rng = np.random.default_rng(0)
    z = rng.normal(1.0, 1.5, (6, 7, 8))
    z.flat[:5] = [0.0, 0.1, 2.0, 6.0, -1.0]          # values exactly on thresholds: z > t is strict
    adc = rng.uniform(100.0, 1600.0, z.shape)
    adc.flat[5:9] = [200.0, 225.0, 1500.0, 0.0]        # ... and on bounds: ADC < b is strict
    reference = (z > 1.5) & (adc < 700) | (rng.uniform(size=z.shape) < 0.05)
    grid = dice_grid(z, adc, reference, Z_GRID, ADC_GRID)
    assert grid.shape == (len(Z_GRID), len(ADC_GRID))
    for i in range(0, len(Z_GRID), 7):
        for j in range(0, len(ADC_GRID), 5):
            assert grid[i, j] == naive_dice(reference, (z > Z_GRID[i]) & (adc < ADC_GRID[j])), (i, j)
    assert grid[-1, -1] == naive_dice(reference, z > Z_GRID[-1])  # last column: no ADC bound
    empty = dice_grid(np.zeros(10), np.full(10, 800.0), np.zeros(10, bool), np.array([0.5]), np.array([900.0]))
    assert empty[0, 0] == 1.0  # ISLES'22: empty reference and empty prediction


def test_zscore_over_the_head_only():
    image = np.zeros((4, 4, 4))
    image[1:3, 1:3, 1:3] = [[[1.0, 3.0], [1.0, 3.0]], [[1.0, 3.0], [1.0, 3.0]]]
    z = zscored(image)
    assert np.allclose(z[1:3, 1:3, 1:3][..., 0], -1.0) and np.allclose(z[1:3, 1:3, 1:3][..., 1], 1.0)
    assert np.allclose(z[0], -2.0)  # background: (0 - mean 2) / sd 1


def write_case(folder: Path, case: str, dwi: np.ndarray, adc: np.ndarray, label: np.ndarray) -> CaseFiles:
    files = nnunet_case_files(folder, folder, [case])[0]
    for array, path in ((dwi, files.dwi), (adc, files.adc), (label.astype(np.uint8), files.label)):
        sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return files


def synthetic_case(rng: np.random.Generator, lesion_adc: float, lesion: bool = True):
    """A 'head' of DWI 400 / ADC 800 with a cube of DWI 800 and ADC ``lesion_adc`` (the label) and a
    DWI-bright, ADC-raised cube (not labelled)."""
    dwi = np.zeros((12, 12, 12), np.float32)
    dwi[1:11, 1:11, 1:11] = rng.normal(400.0, 20.0, (10, 10, 10))
    adc = np.where(dwi > 0, 800.0, 0.0).astype(np.float32)
    label = np.zeros(dwi.shape, bool)
    if lesion:
        label[2:5, 2:5, 2:5] = True
        dwi[label] *= 2.0
        adc[label] = lesion_adc
    dwi[7:10, 7:10, 7:10] *= 2.0
    adc[7:10, 7:10, 7:10] = 1300.0
    return dwi, adc, label


def test_the_choice_depends_on_the_training_cases_only(tmp_path):
    rng = np.random.default_rng(1)
    train = [write_case(tmp_path, f"train{i}", *synthetic_case(rng, lesion_adc=450.0, lesion=i != 3)) for i in range(6)]
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    test_a = [write_case(first, f"test{i}", *synthetic_case(rng, lesion_adc=450.0)) for i in range(3)]
    # the same case names, altered: other intensities, a lesion the trained rule cannot see, a lesion-free case
    test_b = [write_case(second, "test0", *synthetic_case(rng, lesion_adc=1100.0)),
              write_case(second, "test1", *synthetic_case(rng, lesion_adc=450.0, lesion=False)),
              write_case(second, "test2", *(a * 1.7 for a in synthetic_case(rng, lesion_adc=450.0)[:2]),
                         synthetic_case(rng, 450.0)[2])]
    a, b = fit_baselines(train, test_a), fit_baselines(train, test_b[::-1])
    c = fit_baselines(train[::-1], test_a[:1])
    for name in ("threshold", "rule"):
        assert (a[name].z_threshold, a[name].adc_below, a[name].train_dice) == \
            (b[name].z_threshold, b[name].adc_below, b[name].train_dice) == \
            (c[name].z_threshold, c[name].adc_below, c[name].train_dice)
    assert a["threshold"].adc_below == np.inf
    # the rule separates lesion from the ADC-raised mimic on training cases; the threshold cannot
    assert a["rule"].train_dice == 1.0 and a["rule"].adc_below < 1300.0 and a["threshold"].train_dice < 0.8
    assert a["rule"].mean_test_dice == 1.0 and b["rule"].mean_test_dice < 1.0
    assert len(b["rule"].test_dice) == 3


def test_nnunet_naming():
    files = nnunet_case_files(Path("/i"), Path("/l"), ["c1"])
    assert files == [CaseFiles("c1", Path("/i/c1_0000.nii.gz"), Path("/i/c1_0001.nii.gz"), Path("/l/c1.nii.gz"))]
