"""`nnunet-stroke demo` end to end, shortened (12 phantom cases and the 24-case external cohort, one epoch
of two iterations); the demo's full-size figures are a benchmark (benchmarks/bench_demo.py), not a test."""
import json
import os
import subprocess

import pytest

SUMMARY_KEYS = {"trainer": str, "test_cases": int, "mean_dice": float, "mean_dice_lesion_cases": float,
                "mean_lesion_f1": float, "threshold_baseline_dice": float, "rule_baseline_dice": float,
                "heldout_mean_dice": float, "external_cases": int, "external_mean_dice": float,
                "epochs_trained": int, "seed": int, "wall_seconds": float}


def demo(*arguments: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nnunet-stroke", "demo", *arguments], capture_output=True, text=True, encoding="utf-8",
                          errors="replace", env={**os.environ, **env})


def test_demo_runs_the_pipeline_and_writes_its_summary(tmp_path):
    done = demo("--workdir", str(tmp_path), "--cases", "12", "--seed", "3", NNUNET_STROKE_TINY_EPOCHS="1",
                NNUNET_STROKE_TINY_ITERATIONS="2",
                nnUNet_n_proc_DA="1")  # nnU-Net's planner sets torch threads from it (0 is refused)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    for key, kind in SUMMARY_KEYS.items():
        assert isinstance(summary[key], kind), (key, summary[key])
    heldout = json.loads((tmp_path / "nnUNet_preprocessed" / "Dataset901_ISLES22Phantom" / "heldout_test.json")
                         .read_text(encoding="utf-8"))
    metrics = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    external = json.loads((tmp_path / "external" / "predictions" / "metrics.json").read_text(encoding="utf-8"))
    assert sorted(c["case"] for c in metrics["cases"]) == sorted(heldout["5"])
    external_names = sorted(c["case"] for c in external["cases"])
    assert external_names == [f"sub-strokecase{1001 + i:04d}" for i in range(24)] == external_cohort_files(tmp_path)
    assert summary["external_cases"] == 24 and summary["test_cases"] == len(heldout["5"]) + 24
    dice = [c["dice"] for c in metrics["cases"] + external["cases"]]
    assert summary["mean_dice"] == pytest.approx(sum(dice) / len(dice))
    assert summary["heldout_mean_dice"] == pytest.approx(sum(dice[:len(heldout["5"])]) / len(heldout["5"]))
    assert summary["epochs_trained"] == 1 and summary["iterations_per_epoch"] == 2 and summary["seed"] == 3
    description = json.loads((tmp_path / "phantom" / "ISLES-2022" / "dataset_description.json").read_text("utf-8"))
    assert description["GeneratedBy"][0]["Seed"] == 3  # --seed reaches the phantom (and the splits)
    for key in ("threshold_baseline_dice", "rule_baseline_dice", "mean_dice", "external_mean_dice"):
        assert 0 <= summary[key] <= 1
    # the external cohort is no second dataset and never reached planning or training
    assert [p.name for p in (tmp_path / "nnUNet_raw").iterdir() if not p.name.startswith(".")] == \
        ["Dataset901_ISLES22Phantom"]
    assert not list((tmp_path / "nnUNet_preprocessed").rglob("sub-strokecase1*"))
    assert (tmp_path / "report" / "report.md").is_file()
    for step in range(1, 9):
        assert f"=== {step}/8" in done.stdout  # progress is visible
    assert "DWI+ADC rule" in done.stdout and "DWI threshold" in done.stdout


def external_cohort_files(workdir) -> list[str]:
    """The external cases as written: nnU-Net naming in imagesTs (two channels) and labelsTs."""
    images = sorted(p.name for p in (workdir / "external" / "imagesTs").iterdir())
    labels = sorted(p.name[: -len(".nii.gz")] for p in (workdir / "external" / "labelsTs").iterdir())
    assert images == sorted(f"{case}_{c:04d}.nii.gz" for case in labels for c in (0, 1))
    return labels


@pytest.mark.parametrize("arguments,message", [
    (["--trainer", "nnUNetTrainerStrokeUNet"], "nnUNetTrainerStrokeUNet_Tiny"),
    (["--trainer", "nnUNetTrainerNope_Tiny"], "unknown trainer"),
    (["--minutes", "0"], "--minutes"),
    (["--cases", "3"], "--cases"),
    (["--seed", "-1"], "--seed"),
])
def test_demo_refuses_bad_arguments(tmp_path, arguments, message):
    done = demo("--workdir", str(tmp_path), *arguments)
    assert done.returncode == 2 and message in done.stderr
    assert not any(tmp_path.iterdir())
