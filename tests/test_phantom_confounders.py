"""The ISLES 2022 phantom's confounders, measured on the written files (docs/data.md, "Confounders"), and
the bar they set: the best voxel rule ``z(DWI) > t and ADC < b`` stays at or below 0.55 mean Dice."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnunet_stroke.phantom import write_phantom
from nnunet_stroke.phantom.anatomy import GREY, SCALP, WHITE, centred_coordinates
from nnunet_stroke.phantom.isles22 import DEFAULT_SHAPE, case_id, case_paths, draw_head
from nnunet_stroke.phantom.isles22 import write_isles22
from nnunet_stroke.phantom.mri import ADC_TISSUE, DEFAULT_DIFFICULTY, with_scanner
from nnunet_stroke.workflows.baselines import ADC_GRID, Z_GRID, CaseFiles, case_dice_grid, fit_baselines

SEED = 0
CASES = 24          # default-shape cases: 16 to choose rules on, 8 held out (every third)
RULE_BAR = 0.55


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float64)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return write_phantom(tmp_path_factory.mktemp("confounders"), "isles22", cases=CASES, seed=SEED)


@pytest.fixture(scope="module")
def cases(phantom):
    """Written DWI/ADC/mask with the generator's label maps (which voxels are artefact, rim, mimic)."""
    loaded = []
    for index in range(CASES):
        paths = case_paths(phantom, case_id(index), github_layout=False)
        files = {name: read(paths[name]) for name in ("dwi", "adc", "mask")}
        loaded.append({**files, "head": draw_head(index, SEED, DEFAULT_SHAPE)[2], "paths": paths})
    return loaded


def normal_tissue(case: dict, exclude: np.ndarray) -> np.ndarray:
    """Grey/white-matter voxels at least 2 voxels away from every lesion, mimic, artefact and ``exclude``."""
    head = case["head"]
    findings = head.lesion_mask | head.mimic_mask | head.artefact_mask | exclude
    return ndimage.binary_erosion(head.brain_mask) & ~ndimage.binary_dilation(findings, iterations=2)


def tissue_ratio(case: dict, voxels: np.ndarray, name: str) -> float:
    """Mean of ``name`` over ``voxels`` divided by the mean of the same tissue mix in normal tissue nearby
    (within 5 voxels; the whole brain's for a tissue class absent there)."""
    head, image = case["head"], case[name]
    reference = normal_tissue(case, voxels)
    near = reference & ndimage.binary_dilation(voxels, iterations=5)
    means = {t: np.mean(image[(near if (near & (head.tissue == t)).sum() >= 10 else reference) & (head.tissue == t)])
             for t in np.unique(head.tissue[voxels])}
    return float(np.mean(image[voxels]) / np.mean([means[t] for t in head.tissue[voxels]]))


def test_the_mask_is_the_generator_lesion_mask_and_excludes_artefacts_and_mimics(cases):
    for case in cases:
        head, mask = case["head"], case["mask"] > 0
        assert np.array_equal(head.lesion_mask, mask)
        assert not (mask & head.artefact_mask).any() and not (mask & head.mimic_mask).any()
        assert head.rim_mask is None or not (head.rim_mask & ~mask).any()


def test_skull_base_artefacts_look_like_infarct_but_sit_as_thin_arcs_at_the_inferior_border(cases):
    """DWI-bright and ADC-low like an infarct (same contrast ranges), in every case; every artefact lies
    at the brain's inferior border (every voxel below the centre, at a median 8 mm or less from the inner
    skull surface) and is elongated (spread along its long axis >= 3x its spread across)."""
    seen = 0
    for case in cases:
        head = case["head"]
        labels = head.artefact_labels
        assert labels is not None and labels.max() >= 1
        z, _, _ = centred_coordinates(labels.shape, head.spacing_mm)
        for label in range(1, int(labels.max()) + 1):
            artefact = labels == label
            if artefact.sum() < 20:
                continue
            seen += 1
            assert tissue_ratio(case, artefact, "dwi") >= 1.2
            assert tissue_ratio(case, artefact, "adc") <= 0.85
            assert (np.broadcast_to(z, labels.shape)[artefact] < 0).all()
            depth = ndimage.distance_transform_edt(head.tissue > SCALP, sampling=head.spacing_mm)
            assert np.median(depth[artefact]) <= 8.0
            points = np.argwhere(artefact) * np.asarray(head.spacing_mm)
            spread = np.sqrt(np.linalg.eigvalsh(np.cov(points.T)))
            assert spread[-1] >= 3.0 * spread[0]
    assert seen >= CASES


def test_evolving_lesions_have_a_pseudo_normalised_rim_around_a_restricted_core(cases):
    """Rim (label 1): DWI-bright, ADC within about 10 % of normal tissue; core: ADC clearly low; the rim is
    one connected shell around the core (every rim voxel touches the lesion's surface)."""
    evolving = 0
    for case in cases:
        head = case["head"]
        if head.rim_mask is None or not head.rim_mask.any():
            continue
        for label in range(1, int(head.lesion_labels.max()) + 1):
            lesion = head.lesion_labels == label
            rim, core = lesion & head.rim_mask, lesion & ~head.rim_mask
            if rim.sum() < 30 or core.sum() < 10:
                continue
            evolving += 1
            inner_core = core & ndimage.binary_erosion(core)
            inner_core = inner_core if inner_core.sum() >= 5 else core
            assert tissue_ratio(case, rim, "dwi") >= 1.2
            assert 0.86 <= tissue_ratio(case, rim, "adc") <= 1.12  # 0.92-1.08, blurred with the core at its inner side
            assert tissue_ratio(case, inner_core, "adc") <= 0.8
            assert (ndimage.binary_dilation(~lesion) & rim).sum() >= 0.5 * rim.sum()
    assert evolving >= 4


def test_t2_shine_through_mimics_have_clearly_raised_adc(cases):
    mimics = 0
    for case in cases:
        head = case["head"]
        for label in range(1, int(head.mimic_labels.max()) + 1):
            core = ndimage.binary_erosion(head.mimic_labels == label)
            if core.sum() < 5:
                continue
            mimics += 1
            assert tissue_ratio(case, core, "dwi") >= 1.25
            assert tissue_ratio(case, core, "adc") >= 1.1
    assert mimics >= CASES


def test_lesions_are_heterogeneous_and_adc_noise_is_realistic(cases):
    """Within-lesion ADC spread beyond noise, and ADC noise sigma of 6-10 % of white matter (about
    45-70e-6 mm^2/s), measured from neighbour differences in normal white matter; ADC in physical units."""
    spreads, noise = [], []
    for case in cases:
        head, adc = case["head"], case["adc"]
        clean = normal_tissue(case, np.zeros_like(head.brain_mask)) & (head.tissue == WHITE)
        both = clean[:, :, 1:] & clean[:, :, :-1]
        noise.append(np.std((adc[:, :, 1:] - adc[:, :, :-1])[both]) / np.sqrt(2.0))
        core = ndimage.binary_erosion(head.lesion_mask & (head.tissue == WHITE), iterations=1)
        if head.rim_mask is not None:
            core &= ~ndimage.binary_dilation(head.rim_mask, iterations=1)
        if core.sum() >= 100:
            spreads.append(np.std(adc[core]))
    sigma = np.median(noise)
    assert 0.06 * ADC_TISSUE[WHITE] <= sigma <= 0.10 * ADC_TISSUE[WHITE]
    assert len(spreads) >= 3 and np.median(spreads) >= 1.1 * sigma
    white = [np.median(c["adc"][normal_tissue(c, np.zeros_like(c["head"].brain_mask)) & (c["head"].tissue == WHITE)])
             for c in cases]
    grey = [np.median(c["adc"][normal_tissue(c, np.zeros_like(c["head"].brain_mask)) & (c["head"].tissue == GREY)])
            for c in cases]
    assert 650 <= np.median(white) <= 800 and 780 <= np.median(grey) <= 920  # 1e-6 mm^2/s


def test_best_voxel_rule_stays_at_or_below_the_bar(cases, capsys):
    """The rule chosen on 16 cases scores <= 0.55 on the 8 held out; even the rule chosen on all 24 cases
    (an oracle) stays below the bar. Prints the figures (docs/data.md quotes the bar only)."""
    files = [CaseFiles(case_id(i), c["paths"]["dwi"], c["paths"]["adc"], c["paths"]["mask"]) for i, c in enumerate(cases)]
    heldout = files[2::3]
    train = [f for f in files if f not in heldout]
    baselines = fit_baselines(train, heldout)
    oracle = np.mean([case_dice_grid(f, Z_GRID, ADC_GRID) for f in files], axis=0)
    with capsys.disabled():
        for name, result in baselines.items():
            print(f"\n{name} baseline (seed {SEED}, {len(train)} training / {len(heldout)} held-out cases): "
                  f"z(DWI) > {result.z_threshold}, ADC < {result.adc_below}: training Dice {result.train_dice:.3f}, "
                  f"held-out Dice {result.mean_test_dice:.3f}")
        print(f"best rule on all {CASES} cases: mean Dice {oracle.max():.3f}")
    assert baselines["rule"].mean_test_dice <= RULE_BAR
    assert oracle.max() <= RULE_BAR
    assert baselines["threshold"].mean_test_dice <= baselines["rule"].mean_test_dice + 0.05


def test_external_scanner_profile_changes_noise_bias_and_contrast_by_at_most_a_fifth(tmp_path):
    external = with_scanner(DEFAULT_DIFFICULTY, noise=1.15, bias=1.2, contrast=0.9)
    d = DEFAULT_DIFFICULTY
    assert external.noise_fraction == pytest.approx(1.15 * d.noise_fraction)
    assert external.bias_peak_to_peak == pytest.approx(1.2 * d.bias_peak_to_peak)
    assert external.dwi_lesion_contrast == pytest.approx(tuple(1 + 0.9 * (f - 1) for f in d.dwi_lesion_contrast))
    assert external.adc_lesion_factor == d.adc_lesion_factor  # ADC stays physical
    root = write_isles22(tmp_path, 1, seed=5, shape=(20, 28, 28), difficulty=external, first_case=40)
    assert case_paths(root, case_id(40), github_layout=False)["dwi"].is_file()
    assert not case_paths(root, case_id(0), github_layout=False)["dwi"].exists()
