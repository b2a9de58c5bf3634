"""Pins the metrics.json schema (docs/evaluation.md): top-level keys, case keys, aggregate entries,
section layouts, and null (never NaN) for undefined values in the written file."""
import json

import pytest

from nnunet_stroke.evaluation import evaluate_folders, load_metrics, write_metrics
from test_evaluation_folders import make_dataset

TOP_LEVEL = {"schema_version", "protocol", "protocol_description", "protocol_metrics", "connectivity",
             "spatial_dims", "labels", "lesion_labels", "inputs", "n_cases", "missing_predictions", "cases",
             "aggregate", "strata", "detection", "calibration", "bland_altman", "warnings"}
CASE_KEYS = {"case", "prediction_missing", "dice", "iou", "recall", "precision", "f2", "hd95_mm", "hd95_vox",
             "ref_volume_ml", "pred_volume_ml", "abs_volume_diff_ml", "ref_volume_vox", "pred_volume_vox",
             "abs_volume_diff_vox", "ref_lesion_count", "pred_lesion_count", "abs_lesion_count_diff", "lesion_tp",
             "lesion_fp", "lesion_fn", "lesion_f1", "stratum", "ece_voxel", "max_lesion_probability",
             "ref_positive", "detection_score", "pred_positive"}
INTERVAL = {"value", "ci_low", "ci_high"}


def test_metrics_json_schema(tmp_path):
    make_dataset(tmp_path)
    with pytest.warns(UserWarning):
        metrics = evaluate_folders(tmp_path / "labelsTr", tmp_path / "pred", images_dir=tmp_path / "imagesTr",
                                   probabilities_dir=tmp_path / "pred", detection_json=tmp_path / "detection.json",
                                   num_processes=1, progress=False)
    write_metrics(metrics, tmp_path / "metrics.json")
    text = (tmp_path / "metrics.json").read_text(encoding="utf-8")
    written = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    assert written == load_metrics(tmp_path / "metrics.json")
    assert set(written) == TOP_LEVEL
    assert written["schema_version"] == 1 and written["protocol"] == "isles22" and written["n_cases"] == 3
    assert set(written["inputs"]) == {"ref_dir", "pred_dir", "images_dir", "probabilities_dir", "detection_json",
                                      "file_ending", "resampled_to_reference"}
    for case in written["cases"]:
        assert set(case) == CASE_KEYS
    assert written["cases"][2]["hd95_mm"] is None and written["cases"][2]["recall"] is None
    numeric = CASE_KEYS - {"case", "prediction_missing", "stratum", "ref_positive", "pred_positive"}
    assert set(written["aggregate"]) == numeric
    assert all(set(entry) == {"mean", "std", "n"} for entry in written["aggregate"].values())
    strata = written["strata"]
    assert set(strata) == {"reference_volume_unit", "n_lesion_cases", "n_empty_reference", "strata"}
    assert [s["name"] for s in strata["strata"]] == ["<5", "<10", "10-50", ">50"]
    assert set(strata["strata"][0]) == {"name", "lower_ml", "upper_ml", "n", "proportion", "aggregate"}
    detection = written["detection"]
    assert set(detection) == {"source", "score", "threshold", "rule", "n_positive", "n_negative", "accuracy",
                              "sensitivity", "specificity", "auc", "n_bootstrap", "roc", "warnings",
                              "sensitivity_by_stratum"}
    assert all(set(detection[k]) == INTERVAL for k in ("accuracy", "sensitivity", "specificity", "auc"))
    assert set(detection["roc"]) == {"fpr", "tpr"}
    calibration = written["calibration"]
    assert set(calibration) == {"voxel", "case", "roi", "case_probability"}
    assert set(calibration["voxel"]) == {"n", "ece", "n_bins", "bins"} and calibration["voxel"]["n_bins"] == 15
    assert set(calibration["voxel"]["bins"][0]) == {"lower", "upper", "count", "mean_probability",
                                                    "lesion_fraction"}
    agreement = written["bland_altman"]
    assert set(agreement) == {"difference", "unit", "overall", "by_stratum"}
    assert set(agreement["overall"]) == {"absolute", "relative_pct", "n_excluded_relative"}
    assert set(agreement["overall"]["absolute"]) == {"n", "bias", "sd", "loa_low", "loa_high"}
    assert set(agreement["by_stratum"]) == {"<5", "<10", "10-50", ">50"}


def test_write_metrics_refuses_nan_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        write_metrics({"protocol": "isles22", "cases": [], "aggregate": {"dice": {"mean": float("nan")}}},
                      tmp_path / "metrics.json")
    assert list(tmp_path.iterdir()) == []
