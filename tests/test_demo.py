"""`nnunet-stroke demo` end to end, shortened (12 phantom cases, one epoch of two iterations); the
demo's full-size figures are a benchmark (benchmarks/bench_demo.py), not a test."""
import json
import os
import subprocess

import pytest

SUMMARY_KEYS = {"trainer": str, "test_cases": int, "mean_dice": float, "mean_dice_lesion_cases": float,
                "mean_lesion_f1": float, "threshold_baseline_dice": float, "wall_seconds": float}


def demo(*arguments: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nnunet-stroke", "demo", *arguments], capture_output=True, text=True, encoding="utf-8",
                          errors="replace", env={**os.environ, **env})


def test_demo_runs_the_pipeline_and_writes_its_summary(tmp_path):
    done = demo("--workdir", str(tmp_path), "--cases", "12", NNUNET_STROKE_TINY_EPOCHS="1",
                NNUNET_STROKE_TINY_ITERATIONS="2",
                nnUNet_n_proc_DA="1")  # nnU-Net's planner sets torch threads from it (0 is refused)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    for key, kind in SUMMARY_KEYS.items():
        assert isinstance(summary[key], kind), (key, summary[key])
    heldout = json.loads((tmp_path / "nnUNet_preprocessed" / "Dataset901_ISLES22Phantom" / "heldout_test.json")
                         .read_text(encoding="utf-8"))
    assert summary["test_cases"] == len(heldout["5"]) >= 1
    assert summary["epochs_trained"] == 1 and summary["iterations_per_epoch"] == 2
    assert 0 <= summary["threshold_baseline_dice"] <= 1 and 0 <= summary["mean_dice"] <= 1
    metrics = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert sorted(c["case"] for c in metrics["cases"]) == sorted(heldout["5"])
    assert (tmp_path / "report" / "report.md").is_file()
    for step in range(1, 8):
        assert f"=== {step}/7" in done.stdout  # progress is visible


@pytest.mark.parametrize("arguments,message", [
    (["--trainer", "nnUNetTrainerStrokeUNet"], "nnUNetTrainerStrokeUNet_Tiny"),
    (["--trainer", "nnUNetTrainerNope_Tiny"], "unknown trainer"),
    (["--minutes", "0"], "--minutes"),
    (["--cases", "3"], "--cases"),
])
def test_demo_refuses_bad_arguments(tmp_path, arguments, message):
    done = demo("--workdir", str(tmp_path), *arguments)
    assert done.returncode == 2 and message in done.stderr
    assert not any(tmp_path.iterdir())
