"""Classification metrics against hand-computed values on tiny tables, the validation-only threshold and the
``evaluate --classification/--compare`` command (schema, errors naming the file)."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from nnunet_stroke.cli import main
from nnunet_stroke.evaluation import classification_metrics as cm
from nnunet_stroke.evaluation.classification import (classification_entries, evaluate_classification,
                                                     read_classification_json, stored_threshold,
                                                     validation_threshold, write_classification_json,
                                                     write_threshold)

# three classes, six cases; every value below is worked out by hand in the comments
TRUTH3 = np.array([0, 1, 2, 0, 1, 2])
PROBABILITIES3 = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7],
                           [0.3, 0.4, 0.3], [0.4, 0.4, 0.2], [0.3, 0.3, 0.4]])


def test_binary_auroc_counts_ties_one_half():
    # pairs (positive, negative): (.8,.4)=1 (.8,.2)=1 (.8,.8)=.5 (.4,.4)=.5 (.4,.2)=1 (.4,.8)=0 -> 4/6
    truth = np.array([1, 1, 0, 0, 0])
    score = np.array([0.8, 0.4, 0.4, 0.2, 0.8])
    probabilities = np.stack([1 - score, score], axis=1)
    assert cm.one_vs_rest_auroc(truth, probabilities)["auroc"] == pytest.approx(4 / 6)


def test_one_vs_rest_auroc_by_hand():
    # class 0: positives .6 (beats 4 negatives), .3 (2 wins + tie with .3) -> 6.5/8
    # class 1: positives .5 (4 wins), .4 (3 wins + tie with .4) -> 7.5/8; class 2: 8/8
    auroc = cm.one_vs_rest_auroc(TRUTH3, PROBABILITIES3)
    assert auroc["auroc_0"] == pytest.approx(6.5 / 8)
    assert auroc["auroc_1"] == pytest.approx(7.5 / 8)
    assert auroc["auroc_2"] == pytest.approx(1.0)
    assert auroc["auroc"] == pytest.approx((6.5 / 8 + 7.5 / 8 + 1) / 3)
    assert cm.one_vs_rest_auroc(TRUTH3[:4], PROBABILITIES3[:4])["auroc"] is not None
    assert cm.one_vs_rest_auroc(np.array([0, 0, 2]), PROBABILITIES3[:3])["auroc"] is None  # class 1 absent


def test_decision_rates_by_hand():
    predicted = PROBABILITIES3.argmax(axis=1)  # ties go to the first class: case 4 -> 0
    np.testing.assert_array_equal(predicted, [0, 1, 2, 1, 0, 2])
    rates = cm.decision_rates(TRUTH3, predicted, 3)
    assert rates["accuracy"] == pytest.approx(4 / 6)
    assert [rates[f"sensitivity_{k}"] for k in range(3)] == pytest.approx([1 / 2, 1 / 2, 1])
    assert [rates[f"specificity_{k}"] for k in range(3)] == pytest.approx([3 / 4, 3 / 4, 1])
    assert rates["balanced_accuracy"] == pytest.approx(2 / 3)
    # F1: class 0 TP 1 FP 1 FN 1 -> .5; class 1 the same; class 2 TP 2 -> 1
    assert [rates[f"f1_{k}"] for k in range(3)] == pytest.approx([0.5, 0.5, 1.0])
    assert rates["macro_f1"] == pytest.approx(2 / 3)


def test_ece_top_label_15_bins_weighted_by_share():
    # confidences .9 and .88 share bin 13 ([.867, .933)): mean .89, both correct -> gap .11, weight 2/5;
    # .8 wrong (gap .8), .7 right (gap .3), .55 wrong (gap .55), one case each
    probabilities = np.array([[0.9, 0.1], [0.88, 0.12], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    truth = np.array([0, 0, 1, 1, 0])
    assert cm.expected_calibration_error(truth, probabilities) == pytest.approx((2 * 0.11 + 0.8 + 0.3 + 0.55) / 5)
    assert cm.reliability(truth, probabilities).count.sum() == 5 and cm.ECE_BINS == 15


def test_mcnemar_exact_and_chi_square():
    a = np.array([True] * 5 + [False] + [True] * 4)
    b = np.array([False] * 5 + [True] + [True] * 4)
    exact = cm.mcnemar(a, b)  # b = 5, c = 1: p = 2 * P(X <= 1 | n = 6) = 2 * 7 / 64
    assert (exact["b"], exact["c"], exact["method"]) == (5, 1, "exact binomial")
    assert exact["p_value"] == pytest.approx(14 / 64)
    a = np.array([True] * 30 + [False] * 10 + [True] * 5)
    b = np.array([False] * 30 + [True] * 10 + [True] * 5)
    chi = cm.mcnemar(a, b)  # (|30 - 10| - 1)^2 / 40 = 9.025; p of chi2(1) = erfc(sqrt(x / 2))
    assert chi["statistic"] == pytest.approx(9.025)
    assert chi["p_value"] == pytest.approx(math.erfc(math.sqrt(9.025 / 2)))
    assert cm.mcnemar(a, a)["p_value"] == 1.0


def test_youden_threshold_by_hand():
    # J over the distinct scores: .1 -> 0, .3 -> 1/3, .35 -> 0, .4 -> 1/3, .8 -> 2/3, .9 -> 1/3;
    # best .8, threshold midway to the next lower score .4
    youden = cm.youden_threshold([0, 0, 0, 1, 1, 1], [0.1, 0.4, 0.35, 0.8, 0.3, 0.9])
    assert youden["threshold"] == pytest.approx(0.6)
    assert youden["youden_j"] == pytest.approx(2 / 3)
    assert (youden["sensitivity"], youden["specificity"]) == pytest.approx((2 / 3, 1.0))
    # J = 1/2 at .4 and at .8: the lower threshold (higher sensitivity) wins, midway to .2
    assert cm.youden_threshold([0, 1, 0, 1], [0.2, 0.4, 0.6, 0.8])["threshold"] == pytest.approx(0.3)
    assert cm.youden_threshold([1, 1], [0.2, 0.4]) is None


def test_bootstrap_interval_is_the_percentile_of_resampled_accuracy():
    truth, predicted = np.array([0, 1, 1, 0, 1, 0, 1, 1]), np.array([0, 1, 0, 0, 1, 1, 1, 1])
    probabilities = np.eye(2)[predicted] * 0.8 + 0.1
    result = cm.bootstrap_metrics(truth, probabilities, predicted, n_boot=300)
    index = np.random.default_rng(cm.BOOTSTRAP_SEED).integers(0, 8, size=(300, 8))
    accuracy = (truth[index] == predicted[index]).mean(axis=1)
    assert result["accuracy"]["value"] == pytest.approx(6 / 8)
    assert result["accuracy"]["ci_low"] == pytest.approx(np.percentile(accuracy, 2.5))
    assert result["accuracy"]["ci_high"] == pytest.approx(np.percentile(accuracy, 97.5))


def test_paired_auroc_difference_of_identical_models_is_zero():
    score = np.array([0.1, 0.7, 0.4, 0.9, 0.3, 0.6])
    probabilities = np.stack([1 - score, score], axis=1)
    result = cm.paired_auroc_difference(np.array([0, 1, 0, 1, 1, 0]), probabilities, probabilities, n_boot=200)
    assert (result["value"], result["ci_low"], result["ci_high"]) == (0.0, 0.0, 0.0)


def test_threshold_never_sees_test_cases():
    labels = {"v1": 0, "v2": 0, "v3": 1, "v4": 1, "t1": 0, "t2": 1}
    probabilities = {"v1": [0.8, 0.2], "v2": [0.6, 0.4], "v3": [0.3, 0.7], "v4": [0.5, 0.5],
                     "t1": [0.1, 0.9], "t2": [0.9, 0.1]}
    probabilities = {case: np.array(p) for case, p in probabilities.items()}
    names = ["no_stroke", "stroke"]
    rule = validation_threshold(probabilities, labels, names, ["v1", "v2", "v3", "v4"])
    assert rule["rule"] == "youden" and rule["threshold"] == pytest.approx(0.45)  # midway between .5 and .4
    moved = {**probabilities, "t1": np.array([0.55, 0.45]), "t2": np.array([0.42, 0.58])}
    flipped = {**labels, "t1": 1, "t2": 0}
    assert validation_threshold(moved, flipped, names, ["v4", "v3", "v2", "v1"]) == rule
    without_tests = {case: p for case, p in probabilities.items() if case.startswith("v")}
    assert validation_threshold(without_tests, labels, names, ["v1", "v2", "v3", "v4"]) == rule


def _write_cases(path, rows):
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "lesion_volume_ml", "lesion_count", "site", "class"])
        writer.writerows(rows)
    return path


@pytest.fixture
def presence_table(tmp_path):
    """Six MRI cases: two small infarcts (one missed), one large, three without lesion."""
    cases = _write_cases(tmp_path / "cases.csv", [["c1", "2.0", 1, "", ""], ["c2", "4.5", 1, "", ""],
                                                  ["c3", "30", 1, "", ""], ["c4", "0", 0, "", ""],
                                                  ["c5", "0", 0, "", ""], ["c6", "0", 0, "", ""]])
    stroke = {"c1": 0.9, "c2": 0.3, "c3": 0.8, "c4": 0.2, "c5": 0.6, "c6": 0.1}
    entries = classification_entries({c: np.array([1 - p, p]) for c, p in stroke.items()}, ["no_stroke", "stroke"])
    return write_classification_json(tmp_path / "classification.json", entries), cases


def test_evaluate_classification_schema_and_small_infarcts(presence_table):
    classification, cases = presence_table
    raw = json.loads(classification.read_text(encoding="utf-8"))
    assert set(raw) == {f"c{i}" for i in range(1, 7)}
    assert raw["c5"] == {"probabilities": {"no_stroke": pytest.approx(0.4), "stroke": pytest.approx(0.6)},
                         "label": "stroke"}
    metrics = evaluate_classification(classification, cases, n_boot=200)
    assert metrics["protocol"] == "classification"
    aggregate = metrics["aggregate"]
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "ece", "sensitivity_stroke",
                "specificity_stroke", "sensitivity_no_stroke", "specificity_no_stroke"):
        assert set(aggregate[key]) == {"value", "ci_low", "ci_high"}, key
    # labels: c1 c3 c5 stroke -> TP 2 (c1, c3), FN 1 (c2), FP 1 (c5), TN 2
    assert aggregate["accuracy"]["value"] == pytest.approx(4 / 6)
    assert aggregate["sensitivity_stroke"]["value"] == pytest.approx(2 / 3)
    assert aggregate["specificity_stroke"]["value"] == pytest.approx(2 / 3)
    # positives .9 .3 .8 vs negatives .2 .6 .1: .9 and .8 beat all three, .3 beats .2 and .1 -> 8/9
    assert aggregate["auroc"]["value"] == pytest.approx(8 / 9)
    small = aggregate["sensitivity_small_infarct"]  # c1 found, c2 missed
    assert (small["value"], small["n"]) == (pytest.approx(0.5), 2)
    assert {c["case"]: c["correct"] for c in metrics["cases"]}["c2"] is False


def test_stored_threshold_applies_to_one_fold_of_a_binary_model(tmp_path):
    write_threshold(tmp_path / "fold_5", {"rule": "youden", "threshold": 0.3})
    assert stored_threshold(tmp_path, [5], ["no_stroke", "stroke"]) == pytest.approx(0.3)
    assert stored_threshold(tmp_path, [5, 6], ["no_stroke", "stroke"]) is None
    assert stored_threshold(tmp_path, [6], ["no_stroke", "stroke"]) is None
    entries = classification_entries({"a": np.array([0.65, 0.35])}, ["no_stroke", "stroke"], threshold=0.3)
    assert entries["a"]["label"] == "stroke"  # argmax would say no_stroke


def test_cli_evaluate_and_compare(presence_table, tmp_path, capsys):
    classification, cases = presence_table
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--classification", str(classification), "--cases", str(cases), "--out", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["protocol"] == "classification"
    other = {c: e["probabilities"] for c, e in read_classification_json(classification)[2].items()}
    flipped = classification_entries({c: np.array([p["stroke"], p["no_stroke"]]) for c, p in other.items()},
                                     ["no_stroke", "stroke"])
    second = write_classification_json(tmp_path / "b.json", flipped)
    compared = tmp_path / "compare.json"
    assert main(["evaluate", "--compare", str(classification), str(second), "--cases", str(cases),
                 "--out", str(compared)]) == 0
    result = json.loads(compared.read_text(encoding="utf-8"))
    # A right on c1 c3 c4 c6, B (inverted) right on c2 c5: b = 4, c = 2, exact p = 2 * P(X <= 2 | 6) = 44/64
    assert (result["mcnemar"]["b"], result["mcnemar"]["c"]) == (4, 2)
    assert result["mcnemar"]["p_value"] == pytest.approx(44 / 64)
    assert result["auroc_difference"]["value"] == pytest.approx(8 / 9 - 1 / 9)


@pytest.mark.parametrize("content, message", [
    ("{not json", "invalid JSON"),
    ('{"c1": {"probabilities": {"no_stroke": 0.4, "stroke": 0.6}}}', "lacks probabilities or label"),
    ('{"c1": {"probabilities": {"no_stroke": 0.7, "stroke": 0.6}, "label": "stroke"}}', "summing to 1"),
    ('{"c1": {"probabilities": {"no_stroke": 0.4, "stroke": 0.6}, "label": "cat"}}', "not one of"),
])
def test_cli_names_the_malformed_file(presence_table, tmp_path, capsys, content, message):
    _, cases = presence_table
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    out = tmp_path / "m.json"
    assert main(["evaluate", "--classification", str(bad), "--cases", str(cases), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert str(bad) in error and message in error
    assert not out.exists()


def test_cli_needs_cases_and_a_matching_table(presence_table, tmp_path, capsys):
    classification, _ = presence_table
    out = tmp_path / "m.json"
    assert main(["evaluate", "--classification", str(classification), "--out", str(out)]) == 2
    assert "--cases" in capsys.readouterr().err
    other = _write_cases(tmp_path / "other.csv", [["x1", "1", 1, "", ""]])
    assert main(["evaluate", "--classification", str(classification), "--cases", str(other), "--out", str(out)]) == 2
    assert str(classification) in capsys.readouterr().err and not out.exists()


def test_report_draws_the_reliability_diagram(presence_table, tmp_path):
    from nnunet_stroke.evaluation import write_metrics

    classification, cases = presence_table
    metrics = evaluate_classification(classification, cases, n_boot=100)
    write_metrics(metrics, tmp_path / "metrics.json")
    assert main(["report", str(tmp_path / "metrics.json"), "--names", "A", "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert (tmp_path / "report" / "reliability.png").stat().st_size > 0 and "reliability.png" in report
    accuracy = metrics["aggregate"]["accuracy"]
    assert f"| accuracy | {accuracy['value']:.3f} [{accuracy['ci_low']:.3f}, {accuracy['ci_high']:.3f}] |" in report
    assert "| sensitivity_small_infarct | 0.500" in report
