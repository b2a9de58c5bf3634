"""The whole pipeline on the synthetic stroke phantom, on a CPU, with no download.

phantom (ISLES 2022 layout, seed S) -> ``convert isles22`` -> nnU-Net plan and preprocess -> splits (seed S)
-> an external cohort (``workflows.external_cohort``: another seed and scanner profile, never planned or
trained on) -> train a ``_Tiny`` trainer on fold 5 (the first 8:1:1 repeat) -> predict the fold's held-out
test cases and the external cohort with nnU-Net's predictor (without test-time mirroring, see
``DEMO_TEST_TIME_MIRRORING``) -> evaluate (ISLES'22 protocol and LBMNet
table metrics) -> the voxel-rule baselines (``workflows.baselines``, chosen on the fold's training cases)
on the same cases -> report. Writes ``WORKDIR/summary.json`` (keys: trainer, test_cases, mean_dice,
mean_dice_lesion_cases, mean_lesion_f1, threshold_baseline_dice, rule_baseline_dice, heldout_mean_dice,
external_cases, external_mean_dice, epochs_trained, seed, wall_seconds, and iterations_per_epoch,
threshold_baseline_z, rule_baseline_z, rule_baseline_adc); every mean is over the held-out and external
cases together unless its name says otherwise.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

DEMO_DATASET_ID = 901
DEMO_DATASET_NAME = "ISLES22Phantom"
DEMO_CASES = 80  # 8 held-out test cases, one lesion-free: the phantom's 1 in 8
DEMO_SEED = 0
DEMO_FOLD = 5
DEMO_MINUTES = 9.5  # budget of the whole demo: training gets what the other steps leave of it
# kept after training for predicting and evaluating the held-out and external cases (about 32), the
# baselines and the report: twice what they took in the recorded runs (summary.json's "timings",
# "after_training_s"; benchmarks/results/demo/)
PREDICTION_RESERVE_S = 45
# the time budget, not the _Tiny default of 40 epochs, decides how long the demo trains: with bfloat16 on
# the CPU more than 40 epochs fit the budget (epochs_trained in benchmarks/results/demo/)
DEMO_EPOCH_CAP = 200
# nnU-Net's test-time mirroring predicts 8 flipped copies per case in 3-D: on a CPU that is 8x the time of
# the prediction step, taken from training. The demo predicts without it (README says so); `nnunet-stroke
# predict` and `predict-heldout` keep nnU-Net's default (mirroring on)
DEMO_TEST_TIME_MIRRORING = False
CONFIGURATION = "3d_fullres"
STEPS = 8


def _step(number: int, message: str) -> None:
    print(f"\n=== {number}/{STEPS} {message}", flush=True)


def point_nnunet_at(workdir: Path) -> None:
    """nnU-Net's three folders inside ``workdir`` for this process and its children (nnunetv2 >= 2.8
    reads them from the environment when it uses them)."""
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        folder = workdir / variable
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[variable] = str(folder)


def run_demo(workdir: Path, trainer: str = "nnUNetTrainerStrokeUNet_Tiny", cases: int = DEMO_CASES,
             minutes: float = DEMO_MINUTES, seed: int = DEMO_SEED) -> dict:
    """The pipeline above; the ``_Tiny`` trainer's schedule is cut to the time ``minutes`` leaves after the
    steps before training and ``PREDICTION_RESERVE_S`` for the steps after it (``NNUNET_STROKE_TINY_MINUTES``,
    see trainers.tiny), at most ``DEMO_EPOCH_CAP`` epochs (``NNUNET_STROKE_TINY_EPOCHS``), unless those
    variables are set already."""
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
    from nnunet_stroke.phantom.isles22 import write_isles22
    from nnunet_stroke.splits import write_splits
    from nnunet_stroke.workflows.external_cohort import (EXTERNAL_CASES, external_cases, predict_external,
                                                         write_external_cohort)
    from nnunet_stroke.workflows.heldout import heldout_cases, predict_heldout

    cores = os.cpu_count() or 1
    _step(1, f"phantom: {cases} cases in the ISLES 2022 layout (seed {seed})")
    source_root = workdir / "phantom"
    shutil.rmtree(source_root, ignore_errors=True)
    source = write_isles22(source_root, cases, seed)
    _step(2, "convert isles22")
    raw = isles22.convert(source, DEMO_DATASET_ID, name=DEMO_DATASET_NAME, overwrite=True, num_processes=cores)
    _step(3, "nnU-Net fingerprint, plans, preprocessing (3d_fullres)")
    extract_fingerprints([DEMO_DATASET_ID], num_processes=cores, check_dataset_integrity=True, clean=True)
    plan_experiments([DEMO_DATASET_ID])
    preprocess([DEMO_DATASET_ID], configurations=(CONFIGURATION,), num_processes=(cores,))
    _step(4, "splits: folds 0-4 5-fold CV, folds 5-9 repeated 8:1:1")
    splits_path = write_splits(DEMO_DATASET_ID, seed=seed, stratify="volume")
    train_cases = json.loads(splits_path.read_text(encoding="utf-8"))[DEMO_FOLD]["train"]
    test_cases = heldout_cases(DEMO_DATASET_ID, DEMO_FOLD)
    _step(5, f"external cohort: {EXTERNAL_CASES} cases, another seed and scanner profile -> {workdir / 'external'}")
    external = write_external_cohort(workdir, seed, num_processes=cores)
    training_minutes = (minutes * 60 - (time.time() - started) - PREDICTION_RESERVE_S) / 60
    os.environ.setdefault("NNUNET_STROKE_TINY_MINUTES", f"{max(training_minutes, 0.5):.2f}")
    os.environ.setdefault("NNUNET_STROKE_TINY_EPOCHS", str(DEMO_EPOCH_CAP))
    _step(6, f"train {trainer} on fold {DEMO_FOLD} (CPU, at most {os.environ['NNUNET_STROKE_TINY_MINUTES']} min)")
    # nnU-Net's own training loop; its final validation of the fold's val cases is skipped here because
    # the demo predicts and evaluates the test cases next (`nnunet-stroke train` runs it as usual)
    nnunet_trainer = get_trainer_from_args(str(DEMO_DATASET_ID), CONFIGURATION, DEMO_FOLD, trainer,
                                           device=torch.device("cpu"))
    nnunet_trainer.run_training()
    timings = {"before_prediction_s": round(time.time() - started, 1)}
    _step(7, f"predict and evaluate the {len(test_cases)} held-out cases of fold {DEMO_FOLD} and the "
             f"{EXTERNAL_CASES} external cases")
    heldout = predict_heldout(DEMO_DATASET_ID, CONFIGURATION, DEMO_FOLD, trainer, protocol="isles22",
                              use_mirroring=DEMO_TEST_TIME_MIRRORING)
    external_metrics = predict_external(external, DEMO_DATASET_ID, CONFIGURATION, DEMO_FOLD, trainer,
                                        use_mirroring=DEMO_TEST_TIME_MIRRORING)
    timings["prediction_s"] = round(time.time() - started - timings["before_prediction_s"], 1)
    _step(8, "voxel-rule baselines (chosen on the fold's training cases) and report")
    baselines = run_baselines(raw, external, train_cases, test_cases, external_cases(external))
    summary = summarise(heldout, external_metrics, trainer, baselines)
    summary.update(epochs_trained=nnunet_trainer.current_epoch,
                   iterations_per_epoch=nnunet_trainer.num_iterations_per_epoch, seed=seed)
    write_report(workdir, trainer, heldout, external / "predictions" / "metrics.json")
    timings["after_training_s"] = round(time.time() - started - timings["before_prediction_s"], 1)
    summary["timings"] = timings
    summary["wall_seconds"] = round(time.time() - started, 1)
    atomic_write_text(workdir / "summary.json", json.dumps(summary, indent=1))
    print_table(heldout["cases"] + external_metrics["cases"], summary)
    return summary


def run_baselines(raw: Path, external: Path, train_cases: list[str], heldout: list[str], external_names: list[str]
                  ) -> dict:
    """Threshold and rule baselines, fitted on ``train_cases``, scored on the held-out then external cases."""
    from nnunet_stroke.workflows.baselines import fit_baselines, nnunet_case_files

    train = nnunet_case_files(raw / "imagesTr", raw / "labelsTr", train_cases)
    test = nnunet_case_files(raw / "imagesTr", raw / "labelsTr", heldout) \
        + nnunet_case_files(external / "imagesTs", external / "labelsTs", external_names)
    return fit_baselines(train, test)


def _mean(rows: list[dict], key: str) -> float | None:
    return float(sum(r[key] for r in rows) / len(rows)) if rows else None


def summarise(heldout: dict, external: dict, trainer: str, baselines: dict) -> dict:
    cases = heldout["cases"] + external["cases"]
    threshold, rule = baselines["threshold"], baselines["rule"]
    if len(threshold.test_dice) != len(cases):
        raise RuntimeError(f"baselines scored {len(threshold.test_dice)} cases, the network {len(cases)}")
    return {
        "trainer": trainer,
        "test_cases": len(cases),
        "mean_dice": _mean(cases, "dice"),
        "mean_dice_lesion_cases": _mean([c for c in cases if (c.get("ref_volume_ml") or 0) > 0], "dice"),
        "mean_lesion_f1": _mean(cases, "lesion_f1"),
        "threshold_baseline_dice": threshold.mean_test_dice,
        "rule_baseline_dice": rule.mean_test_dice,
        "heldout_cases": len(heldout["cases"]),
        "heldout_mean_dice": _mean(heldout["cases"], "dice"),
        "external_cases": len(external["cases"]),
        "external_mean_dice": _mean(external["cases"], "dice"),
        "threshold_baseline_z": threshold.z_threshold,
        "rule_baseline_z": rule.z_threshold,
        "rule_baseline_adc": rule.adc_below if np.isfinite(rule.adc_below) else None,  # None: no ADC bound
    }


def write_report(workdir: Path, trainer: str, heldout: dict, external_metrics: Path) -> None:
    """``WORKDIR/metrics.json`` (held-out cases) and ``WORKDIR/report/`` (report.md and its plots, held-out
    and external side by side)."""
    from nnunet_stroke.evaluation import write_metrics
    from nnunet_stroke.evaluation.reports import write_report as write_markdown_report

    metrics_path = workdir / "metrics.json"
    write_metrics(heldout, metrics_path)
    write_markdown_report([metrics_path, external_metrics], workdir / "report",
                          names=[f"{trainer} held-out", f"{trainer} external"])


def print_table(cases: list[dict], summary: dict) -> None:
    print(f"\n{'case':<24}{'dice':>8}{'lesion F1':>11}{'ref ml':>9}{'pred ml':>9}")
    for row in cases:
        print(f"{row['case']:<24}{row['dice']:>8.3f}{row['lesion_f1']:>11.3f}"
              f"{row['ref_volume_ml']:>9.2f}{row['pred_volume_ml']:>9.2f}")
    print(f"\n{'':<34}{'cases':>6}{'network':>9}{'DWI threshold':>15}{'DWI+ADC rule':>14}")
    print(f"{'held-out (fold ' + str(DEMO_FOLD) + ') + external':<34}{summary['test_cases']:>6}"
          f"{summary['mean_dice']:>9.3f}{summary['threshold_baseline_dice']:>15.3f}{summary['rule_baseline_dice']:>14.3f}")
    print(f"{'held-out only':<34}{summary['heldout_cases']:>6}{summary['heldout_mean_dice']:>9.3f}")
    print(f"{'external only':<34}{summary['external_cases']:>6}{summary['external_mean_dice']:>9.3f}")
    adc = "" if summary["rule_baseline_adc"] is None else f" and ADC < {summary['rule_baseline_adc']:g}"
    print(f"\nmean Dice {summary['mean_dice']:.3f} over {summary['test_cases']} cases (rule baseline "
          f"z(DWI) > {summary['rule_baseline_z']}{adc}: {summary['rule_baseline_dice']:.3f}, "
          f"threshold baseline {summary['threshold_baseline_dice']:.3f}), "
          f"mean lesion-wise F1 {summary['mean_lesion_f1']:.3f}, {summary['epochs_trained']} epochs, "
          f"{summary['wall_seconds']:.0f} s")
