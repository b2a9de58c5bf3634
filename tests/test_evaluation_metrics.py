"""Every evaluation metric on small hand-built masks, with the expected value worked out by hand here
(LBMNet eqs. 14-18, ISLES'22/ATLAS v2.0 lesion rules, PMSAN detection metrics, ECE, Bland-Altman)."""
import math

import numpy as np
import pytest

from nnunet_stroke.evaluation.agreement import bland_altman, stratum_of, strata_summary
from nnunet_stroke.evaluation.aggregate import summarize
from nnunet_stroke.evaluation.calibration import ReliabilityHistogram
from nnunet_stroke.evaluation.case_metrics import segmentation_metrics
from nnunet_stroke.evaluation.detection import detection_metrics, roc_auc
from nnunet_stroke.evaluation.lesions import match_lesions
from nnunet_stroke.evaluation.surface import hausdorff_distance


def volume(*voxels, shape=(6, 6, 6)):
    mask = np.zeros(shape, dtype=bool)
    for voxel in voxels:
        mask[voxel] = True
    return mask


def test_overlap_metrics_from_voxel_counts():
    reference = volume((1, 1, 1), (1, 1, 2), (1, 1, 3), (1, 1, 4))
    prediction = volume((1, 1, 3), (1, 1, 4), (3, 3, 3))
    tp, fp, fn = 2, 1, 2
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    m = segmentation_metrics(reference, prediction, (1.0, 1.0, 1.0), connectivity=26)
    assert m["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))  # 4/7
    assert m["iou"] == pytest.approx(2 / 5)
    assert m["recall"] == pytest.approx(0.5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["f2"] == pytest.approx(5 * precision * recall / (4 * precision + recall))  # eq. 17 = 10/19
    assert m["f2"] == pytest.approx(10 / 19)


def test_both_empty_is_perfect_and_distances_undefined():
    empty = volume()
    m = segmentation_metrics(empty, empty, (2.0, 2.0, 2.0), connectivity=26)
    assert m["dice"] == m["iou"] == m["recall"] == m["precision"] == m["f2"] == 1.0
    assert m["lesion_f1"] == 1.0 and m["abs_lesion_count_diff"] == 0
    assert m["abs_volume_diff_ml"] == 0.0 and m["hd95_mm"] is None and m["hd95_vox"] is None


def test_empty_reference_with_prediction():
    m = segmentation_metrics(volume(), volume((2, 2, 2)), (1.0, 1.0, 1.0), connectivity=26)
    assert m["dice"] == 0.0 and m["iou"] == 0.0 and m["f2"] == 0.0 and m["precision"] == 0.0
    assert m["recall"] is None  # no reference voxel: 0/0
    assert m["lesion_f1"] == 0.0 and (m["lesion_fp"], m["lesion_tp"], m["lesion_fn"]) == (1, 0, 0)
    assert m["hd95_mm"] is None


def test_missed_lesion_gives_zero_recall_and_undefined_precision():
    m = segmentation_metrics(volume((2, 2, 2)), volume(), (1.0, 1.0, 1.0), connectivity=6)
    assert m["dice"] == 0.0 and m["recall"] == 0.0 and m["precision"] is None
    assert m["lesion_f1"] == 0.0 and m["lesion_fn"] == 1 and m["abs_lesion_count_diff"] == 1


def test_corner_touching_lesions_one_with_26_two_with_6_connectivity():
    reference = volume((1, 1, 1), (2, 2, 2))  # share one corner only
    prediction = volume((1, 1, 1))
    isles = match_lesions(reference, prediction, connectivity=26)
    atlas = match_lesions(reference, prediction, connectivity=6)
    assert (isles.reference, isles.tp, isles.fn, isles.fp, isles.f1) == (1, 1, 0, 0, 1.0)
    assert (atlas.reference, atlas.tp, atlas.fn, atlas.fp) == (2, 1, 1, 0)
    assert atlas.f1 == pytest.approx(1 / (1 + (0 + 1) / 2))
    edge_touching = volume((1, 1, 1), (1, 2, 2))  # share an edge: 18- and 26-connected, not 6
    assert match_lesions(edge_touching, edge_touching, 26).reference == 1
    assert match_lesions(edge_touching, edge_touching, 6).reference == 2


def test_one_prediction_covering_two_lesions_counts_both_as_found():
    reference = volume((1, 1, 1), (1, 1, 4))
    prediction = volume((1, 1, 1), (1, 1, 2), (1, 1, 3), (1, 1, 4), (4, 4, 4))  # + a false positive
    m = segmentation_metrics(reference, prediction, (1.0, 1.0, 1.0), connectivity=26)
    assert (m["lesion_tp"], m["lesion_fn"], m["lesion_fp"]) == (2, 0, 1)
    assert m["lesion_f1"] == pytest.approx(2 / (2 + 1 / 2))
    assert (m["ref_lesion_count"], m["pred_lesion_count"], m["abs_lesion_count_diff"]) == (2, 2, 0)


def test_2d_lesions_use_8_and_4_connectivity():
    reference = np.zeros((5, 5), dtype=bool)
    reference[1, 1] = reference[2, 2] = True  # diagonal neighbours
    assert match_lesions(reference, reference, 26).reference == 1
    assert match_lesions(reference, reference, 6).reference == 2


def test_volumes_in_ml_and_voxels_with_anisotropic_spacing():
    spacing = (5.0, 0.5, 0.8)  # along array axes (z, y, x), mm
    reference = volume((1, 1, 1), (1, 1, 2), (1, 1, 3))
    prediction = volume((1, 1, 1), (1, 1, 2), (2, 2, 2), (3, 3, 3), (4, 4, 4))
    m = segmentation_metrics(reference, prediction, spacing, connectivity=26)
    voxel_ml = 5.0 * 0.5 * 0.8 / 1000
    assert m["ref_volume_ml"] == pytest.approx(3 * voxel_ml)
    assert m["pred_volume_ml"] == pytest.approx(5 * voxel_ml)
    assert m["abs_volume_diff_ml"] == pytest.approx(2 * voxel_ml)
    assert m["abs_volume_diff_vox"] == 2


def test_hd95_single_voxels_anisotropic():
    spacing = (5.0, 1.0, 0.5)
    reference, prediction = volume((1, 2, 2)), volume((3, 2, 5))
    expected_mm = math.hypot(2 * 5.0, 3 * 0.5)
    assert hausdorff_distance(reference, prediction, spacing) == pytest.approx(expected_mm)
    assert hausdorff_distance(reference, prediction, None) == pytest.approx(math.hypot(2, 3))


def test_hd95_is_the_larger_directed_percentile():
    # reference: a row of 20 voxels; prediction: the same row plus one voxel 10 rows away.
    reference = np.zeros((1, 30, 20), dtype=bool)
    reference[0, 5, :] = True
    prediction = reference.copy()
    prediction[0, 15, 0] = True
    # prediction -> reference: 20 distances 0 and one 10; numpy's linear percentile of 21 sorted values
    # sits at position 0.95 * (21 - 1) = 19 -> 0. Reference -> prediction: all 0. HD95 = 0 (HD would be 10).
    assert hausdorff_distance(reference, prediction, None) == pytest.approx(0.0)
    # a second far voxel: 22 values, position 0.95 * 21 = 19.95 -> d[19] + 0.95 * (d[20] - d[19]) = 9.5
    prediction[0, 15, 1] = True
    assert hausdorff_distance(reference, prediction, None) == pytest.approx(0.95 * 10.0)


def test_hd95_matches_monai_on_random_blobs():
    monai_hd = pytest.importorskip("monai.metrics").compute_hausdorff_distance
    from scipy import ndimage

    rng = np.random.default_rng(3)
    for _ in range(3):
        reference = ndimage.binary_dilation(rng.random((12, 20, 18)) > 0.97, iterations=2)
        prediction = ndimage.binary_dilation(rng.random((12, 20, 18)) > 0.97, iterations=2)
        spacing = (3.0, 0.9, 1.2)
        expected = float(monai_hd(prediction[None, None].astype(float), reference[None, None].astype(float),
                                  include_background=True, percentile=95, spacing=spacing)[0, 0])
        assert hausdorff_distance(reference, prediction, spacing) == pytest.approx(expected, rel=1e-5)


def test_lesion_matching_equals_the_official_per_component_loop():
    """Our label-intersection counting against the loop of ISLES'22 compute_lesion_f1_score."""
    import cc3d

    rng = np.random.default_rng(5)
    reference, prediction = rng.random((10, 12, 12)) > 0.9, rng.random((10, 12, 12)) > 0.9
    for connectivity in (6, 26):
        labels_ref = cc3d.connected_components(reference.astype(np.uint8), connectivity=connectivity)
        labels_pred = cc3d.connected_components(prediction.astype(np.uint8), connectivity=connectivity)
        tp = sum((labels_ref == k)[prediction].any() for k in range(1, labels_ref.max() + 1))
        fn = labels_ref.max() - tp
        fp = sum(not (labels_pred == k)[reference].any() for k in range(1, labels_pred.max() + 1))
        counts = match_lesions(reference, prediction, connectivity)
        assert (counts.tp, counts.fn, counts.fp) == (tp, fn, fp)


def test_strata_bounds_and_counts():
    assert [stratum_of(v) for v in (0.0, 3.0, 9.99, 10.0, 50.0, 50.01, None)] == \
        [None, "<10", "<10", "10-50", "10-50", ">50", None]
    cases = [{"ref_volume_ml": v, "dice": d} for v, d in ((0.0, 1.0), (3.0, 0.2), (7.0, 0.4), (10.0, 0.6),
                                                           (50.0, 0.8), (60.0, 0.9))]
    summary = strata_summary(cases)
    by_name = {s["name"]: s for s in summary["strata"]}
    assert summary["n_empty_reference"] == 1 and summary["n_lesion_cases"] == 5
    assert [by_name[n]["n"] for n in ("<5", "<10", "10-50", ">50")] == [1, 2, 2, 1]
    assert by_name["<10"]["aggregate"]["dice"]["mean"] == pytest.approx(0.3)
    assert by_name["10-50"]["proportion"] == pytest.approx(2 / 5)


def test_bland_altman_bias_and_limits():
    reference, prediction = np.array([10.0, 20.0, 30.0]), np.array([12.0, 18.0, 33.0])
    result = bland_altman(reference, prediction)
    sd = math.sqrt(((2 - 1) ** 2 + (-2 - 1) ** 2 + (3 - 1) ** 2) / 2)
    assert result["absolute"]["bias"] == pytest.approx(1.0)
    assert result["absolute"]["loa_low"] == pytest.approx(1 - 1.96 * sd)
    assert result["absolute"]["loa_high"] == pytest.approx(1 + 1.96 * sd)
    relative = [100 * 2 / 11, 100 * -2 / 19, 100 * 3 / 31.5]
    assert result["relative_pct"]["bias"] == pytest.approx(sum(relative) / 3)
    both_zero = bland_altman(np.array([0.0, 5.0]), np.array([0.0, 4.0]))
    assert both_zero["n_excluded_relative"] == 1 and both_zero["relative_pct"]["n"] == 1


def test_detection_metrics_and_auc_by_hand():
    truth = np.array([1, 1, 1, 0, 0], dtype=bool)
    score = np.array([0.9, 0.8, 0.3, 0.4, 0.1])
    result = detection_metrics(truth, score, score >= 0.5, n_bootstrap=300)
    # positive-negative pairs ranked correctly: 0.9>0.4, 0.9>0.1, 0.8>0.4, 0.8>0.1, 0.3>0.1 -> 5 of 6
    assert result["auc"]["value"] == pytest.approx(5 / 6)
    assert result["accuracy"]["value"] == pytest.approx(4 / 5)
    assert result["sensitivity"]["value"] == pytest.approx(2 / 3)
    assert result["specificity"]["value"] == pytest.approx(1.0)
    for key in ("accuracy", "sensitivity", "auc"):
        assert result[key]["ci_low"] <= result[key]["value"] <= result[key]["ci_high"]
    assert "3 positive and 2 negative" in result["warnings"][0]
    assert roc_auc(np.array([1, 0], bool), np.array([0.5, 0.5])) == pytest.approx(0.5)  # a tie counts half
    assert roc_auc(np.array([1, 1], bool), np.array([0.5, 0.7])) is None


def test_expected_calibration_error_by_hand():
    probability = np.array([0.05, 0.15, 0.95, 0.92])
    target = np.array([0, 1, 1, 1])
    histogram = ReliabilityHistogram.of(probability, target, n_bins=10)
    expected = 0.25 * abs(0.05 - 0) + 0.25 * abs(0.15 - 1) + 0.5 * abs((0.95 + 0.92) / 2 - 1)
    assert histogram.ece() == pytest.approx(expected)
    pooled = histogram + ReliabilityHistogram.of(np.array([1.0]), np.array([1]), n_bins=10)
    assert pooled.n == 5 and pooled.bins()[9]["count"] == 3  # p = 1 falls in the last bin


def test_summarize_skips_undefined_values():
    assert summarize([1.0, None, 3.0]) == {"mean": 2.0, "std": pytest.approx(math.sqrt(2)), "n": 2}
    assert summarize([None]) == {"mean": None, "std": None, "n": 0}
