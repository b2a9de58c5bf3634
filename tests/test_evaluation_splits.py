"""`evaluate-splits`: mean ± std across the held-out tests of repeated 8:1:1 splits (LBMNet Table 5) and
across CV folds, from an nnU-Net results folder or from metrics.json files, values checked by hand."""
import json
import shutil

import pytest

from nnunet_stroke.cli import main
from nnunet_stroke.errors import UserError
from nnunet_stroke.evaluation import write_metrics
from nnunet_stroke.evaluation.across_splits import summarize_splits
from nnunet_stroke.evaluation.aggregate import aggregate_cases
from test_evaluation_folders import make_dataset


def split_metrics(dice_values):
    cases = [{"case": f"c{i}", "dice": d, "hd95_vox": None if d == 0 else 2.0} for i, d in enumerate(dice_values)]
    return {"protocol": "isles22", "n_cases": len(cases), "cases": cases, "aggregate": aggregate_cases(cases)}


def test_repeated_splits_from_a_results_folder(tmp_path):
    results = tmp_path / "nnUNetTrainerX__nnUNetPlans__3d_fullres"
    for fold, dice in zip((5, 6, 7), ([0.5, 0.7], [0.8], [0.6, 0.8, 0.7])):  # split means 0.6, 0.8, 0.7
        write_metrics(split_metrics(dice), results / f"fold_{fold}" / "heldout_test" / "metrics.json")
    (summary,) = summarize_splits([results])["groups"]
    assert summary["kind"] == "repeated_holdout" and len(summary["splits"]) == 3
    assert summary["across_splits"]["dice"]["mean"] == pytest.approx(0.7)
    assert summary["across_splits"]["dice"]["std"] == pytest.approx(0.1)  # sample std of 0.6, 0.8, 0.7
    assert summary["across_splits"]["dice"]["n_splits"] == 3 and summary["across_splits"]["dice"]["n_cases"] == 6
    assert summary["pooled"]["dice"]["mean"] == pytest.approx(4.1 / 6)


def test_cv_folds_are_evaluated_with_ref_and_files_are_a_group(tmp_path):
    make_dataset(tmp_path)
    results = tmp_path / "nnUNetTrainerX__nnUNetPlans__3d_fullres"
    for fold in (0, 1):
        shutil.copytree(tmp_path / "pred", results / f"fold_{fold}" / "validation")
    with pytest.raises(UserError, match="fold_0/validation has predictions but no metrics.json"):
        summarize_splits([results])
    with pytest.warns(UserWarning):
        (cv,) = summarize_splits([results], ref_dir=tmp_path / "labelsTr", num_processes=1)["groups"]
    assert cv["kind"] == "kfold_cv" and (results / "fold_1" / "validation" / "metrics.json").is_file()
    assert cv["across_splits"]["dice"]["mean"] == pytest.approx(0.25) and cv["across_splits"]["dice"]["std"] == 0
    files = [results / f"fold_{fold}" / "validation" / "metrics.json" for fold in (0, 1)]
    out = tmp_path / "summary.json"
    assert main(["evaluate-splits", *map(str, files), "--out", str(out)]) == 0
    (group,) = json.loads(out.read_text(encoding="utf-8"))["groups"]
    assert group["kind"] == "splits" and group["across_splits"]["dice"]["n_splits"] == 2
    assert "| 2 given splits | 2 | 25.00 ± 0.00 |" in out.with_suffix(".md").read_text(encoding="utf-8")


def test_mixed_protocols_are_refused(tmp_path):
    first, second = split_metrics([0.5]), split_metrics([0.7])
    second["protocol"] = "atlas2"
    write_metrics(first, tmp_path / "a.json")
    write_metrics(second, tmp_path / "b.json")
    with pytest.raises(UserError, match="different protocols"):
        summarize_splits([tmp_path / "a.json", tmp_path / "b.json"])
