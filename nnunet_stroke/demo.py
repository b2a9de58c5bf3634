"""The whole pipeline on the synthetic stroke phantom, on a CPU, with no download.

phantom (ISLES 2022 layout) -> ``convert isles22`` -> nnU-Net plan and preprocess -> splits -> train a
``_Tiny`` trainer on fold 5 (the first 8:1:1 repeat) -> predict its held-out test cases with nnU-Net's
predictor -> evaluate (ISLES'22 protocol and LBMNet table metrics) -> report, plus the global DWI
threshold baseline. Writes ``WORKDIR/summary.json`` (keys: trainer, test_cases, mean_dice,
mean_dice_lesion_cases, mean_lesion_f1, threshold_baseline_dice, wall_seconds, and threshold_baseline_z,
epochs_trained, iterations_per_epoch).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

DEMO_DATASET_ID = 901
DEMO_DATASET_NAME = "ISLES22Phantom"
DEMO_CASES = 80  # 8 held-out test cases, one lesion-free: the phantom's 1 in 8
DEMO_SEED = 0
DEMO_FOLD = 5
DEMO_MINUTES = 9.5  # budget of the whole demo: training gets what the other steps leave of it
PREDICTION_RESERVE_S = 60  # kept for predicting and evaluating the held-out cases after training
CONFIGURATION = "3d_fullres"


def _step(message: str) -> None:
    print(f"\n=== {message}", flush=True)


def point_nnunet_at(workdir: Path) -> None:
    """nnU-Net's three folders inside ``workdir`` for this process and its children (nnunetv2 >= 2.8
    reads them from the environment when it uses them)."""
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        folder = workdir / variable
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[variable] = str(folder)


def run_demo(workdir: Path, trainer: str = "nnUNetTrainerStrokeUNet_Tiny", cases: int = DEMO_CASES,
             minutes: float = DEMO_MINUTES) -> dict:
    """The pipeline above; the ``_Tiny`` trainer's schedule (at most its 40 epochs) is cut to the time
    ``minutes`` leaves after the steps before training and ``PREDICTION_RESERVE_S`` for the steps after it
    (``NNUNET_STROKE_TINY_MINUTES``, see trainers.tiny), unless that variable is set already."""
    started = time.time()
    workdir = workdir.resolve()
    from nnunet_stroke.staging import atomic_write_text, check_writable

    check_writable(workdir, "the demo's --workdir")
    point_nnunet_at(workdir)
    from nnunet_stroke.workflows.nnunet_env import with_ext_trainer

    with_ext_trainer()
    import torch
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprints, plan_experiments,
                                                                       preprocess)
    from nnunetv2.run.run_training import get_trainer_from_args

    from nnunet_stroke.dataset_conversion import isles22
    from nnunet_stroke.workflows.heldout import heldout_cases, predict_heldout
    from nnunet_stroke.phantom import write_phantom
    from nnunet_stroke.splits import write_splits
    from nnunet_stroke.threshold_baseline import threshold_baseline

    cores = os.cpu_count() or 1
    _step(f"1/7 phantom: {cases} cases in the ISLES 2022 layout")
    source_root = workdir / "phantom"
    shutil.rmtree(source_root, ignore_errors=True)
    source = write_phantom(source_root, "isles22", cases=cases, seed=DEMO_SEED)
    _step("2/7 convert isles22")
    raw = isles22.convert(source, DEMO_DATASET_ID, name=DEMO_DATASET_NAME, overwrite=True, num_processes=cores)
    _step("3/7 nnU-Net fingerprint, plans, preprocessing (3d_fullres)")
    extract_fingerprints([DEMO_DATASET_ID], num_processes=cores, check_dataset_integrity=True, clean=True)
    plan_experiments([DEMO_DATASET_ID])
    preprocess([DEMO_DATASET_ID], configurations=(CONFIGURATION,), num_processes=(cores,))
    _step("4/7 splits: folds 0-4 5-fold CV, folds 5-9 repeated 8:1:1")
    splits_path = write_splits(DEMO_DATASET_ID, seed=DEMO_SEED, stratify="volume")
    train_cases = json.loads(splits_path.read_text(encoding="utf-8"))[DEMO_FOLD]["train"]
    test_cases = heldout_cases(DEMO_DATASET_ID, DEMO_FOLD)
    training_minutes = (minutes * 60 - (time.time() - started) - PREDICTION_RESERVE_S) / 60
    os.environ.setdefault("NNUNET_STROKE_TINY_MINUTES", f"{max(training_minutes, 0.5):.2f}")
    _step(f"5/7 train {trainer} on fold {DEMO_FOLD} (CPU, at most {os.environ['NNUNET_STROKE_TINY_MINUTES']} min)")
    # nnU-Net's own training loop; its final validation of the fold's val cases is skipped here because
    # the demo predicts and evaluates the held-out test cases next (`nnunet-stroke train` runs it as usual)
    nnunet_trainer = get_trainer_from_args(str(DEMO_DATASET_ID), CONFIGURATION, DEMO_FOLD, trainer,
                                           device=torch.device("cpu"))
    nnunet_trainer.run_training()
    _step(f"6/7 predict and evaluate the {len(test_cases)} held-out test cases of fold {DEMO_FOLD}")
    metrics = predict_heldout(DEMO_DATASET_ID, CONFIGURATION, DEMO_FOLD, trainer, protocol="isles22")
    _step("7/7 global DWI threshold baseline and report")
    threshold, baseline_dice = threshold_baseline(raw, train_cases, test_cases)
    summary = summarise(metrics, trainer, baseline_dice, time.time() - started)
    summary["threshold_baseline_z"] = threshold
    summary["epochs_trained"] = nnunet_trainer.current_epoch
    summary["iterations_per_epoch"] = nnunet_trainer.num_iterations_per_epoch
    write_report(workdir, trainer, metrics)
    atomic_write_text(workdir / "summary.json", json.dumps(summary, indent=1))
    print_table(metrics, summary)
    return summary


def summarise(metrics: dict, trainer: str, baseline_dice: float, wall_seconds: float) -> dict:
    cases = metrics["cases"]
    lesion_cases = [c for c in cases if (c.get("ref_volume_ml") or 0) > 0]
    mean = lambda rows, key: float(sum(r[key] for r in rows) / len(rows)) if rows else None  # noqa: E731
    return {
        "trainer": trainer,
        "test_cases": len(cases),
        "mean_dice": mean(cases, "dice"),
        "mean_dice_lesion_cases": mean(lesion_cases, "dice"),
        "mean_lesion_f1": mean(cases, "lesion_f1"),
        "threshold_baseline_dice": baseline_dice,
        "wall_seconds": round(wall_seconds, 1),
    }


def write_report(workdir: Path, trainer: str, metrics: dict) -> None:
    """``WORKDIR/metrics.json`` and ``WORKDIR/report/`` (report.md and its plots)."""
    from nnunet_stroke.evaluation import write_metrics
    from nnunet_stroke.evaluation.reports import write_report as write_markdown_report

    metrics_path = workdir / "metrics.json"
    write_metrics(metrics, metrics_path)
    write_markdown_report([metrics_path], workdir / "report", names=[trainer])


def print_table(metrics: dict, summary: dict) -> None:
    print(f"\n{'case':<24}{'dice':>8}{'lesion F1':>11}{'ref ml':>9}{'pred ml':>9}")
    for row in metrics["cases"]:
        print(f"{row['case']:<24}{row['dice']:>8.3f}{row['lesion_f1']:>11.3f}"
              f"{row['ref_volume_ml']:>9.2f}{row['pred_volume_ml']:>9.2f}")
    print(f"\nmean Dice {summary['mean_dice']:.3f} over {summary['test_cases']} held-out cases "
          f"(threshold baseline {summary['threshold_baseline_dice']:.3f}), "
          f"mean lesion-wise F1 {summary['mean_lesion_f1']:.3f}, {summary['wall_seconds']:.0f} s")
