"""nnU-Net's own toolchain with the package's trainers, end to end on the phantom: model selection across
two trainers after 5-fold CV, ensembling their probabilities, sharing a model as a zip and predicting from
it with no preprocessed data, and prediction split over workers. The two trainers' five folds are trained
once per session (``toolchain_fixtures.cross_validated``); the stock commands run as subprocesses and find
the trainers through ``nnUNet_extTrainer`` alone."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_helpers import CONFIGURATION, run_stock, stock_env
from toolchain_fixtures import CV_FOLDS, CV_TRAINERS, cross_validated  # noqa: F401 (session fixture)

FOLDS = [str(f) for f in CV_FOLDS]


def _mask(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _dice_or_nan(reference: np.ndarray, prediction: np.ndarray) -> float:
    """nnU-Net's per-case Dice: NaN when both masks are empty (left out of its mean)."""
    overlap, total = np.logical_and(reference, prediction).sum(), reference.sum() + prediction.sum()
    return float("nan") if total == 0 else 2.0 * overlap / total


@pytest.fixture(scope="module")
def predictions(cross_validated, tmp_path_factory):  # noqa: F811
    """``nnUNetv2_predict`` (all five folds, probabilities saved) of three cases with each trainer."""
    root = tmp_path_factory.mktemp("stock_predictions")
    inputs = root / "in"
    inputs.mkdir()
    cases = sorted(cross_validated.planned.heldout["5"])[:3]
    for case in cases:
        for image in (cross_validated.planned.raw / "imagesTr").glob(f"{case}_*.nii.gz"):
            shutil.copy(image, inputs / image.name)
    outputs = {}
    for trainer in CV_TRAINERS:
        outputs[trainer] = root / trainer
        run_stock(["nnUNetv2_predict", "-i", str(inputs), "-o", str(outputs[trainer]), "-d",
                   str(cross_validated.planned.dataset_id), "-c", CONFIGURATION, "-tr", trainer, "-f", *FOLDS,
                   "-device", "cpu", "--disable_tta", "--save_probabilities", "-npp", "0", "-nps", "0"])
    return inputs, cases, outputs


def test_find_best_configuration_ranks_our_two_trainers_and_their_ensemble(cross_validated):  # noqa: F811
    planned = cross_validated.planned
    run_stock(["nnUNetv2_find_best_configuration", str(planned.dataset_id), "-c", CONFIGURATION, "-tr",
               *CV_TRAINERS, "-f", *FOLDS, "-np", "1"])
    info = json.loads((Path(os.environ["nnUNet_results"]) / planned.name / "inference_information.json")
                      .read_text(encoding="utf-8"))
    identifiers = [f"{trainer}__nnUNetPlans__{CONFIGURATION}" for trainer in CV_TRAINERS]
    ensemble = f"ensemble___{identifiers[0]}___{identifiers[1]}___{'_'.join(FOLDS)}"
    assert set(info["all_results"]) == {*identifiers, ensemble}
    for identifier, trainer in zip(identifiers, CV_TRAINERS):  # every case validated once, scored as nnU-Net does
        merged = cross_validated.model_folder(trainer) / f"crossval_results_folds_{'_'.join(FOLDS)}"
        cases = sorted(p.name for p in (planned.raw / "labelsTr").glob("*.nii.gz"))
        assert sorted(p.name for p in merged.glob("*.nii.gz")) == cases
        dice = [_dice_or_nan(_mask(planned.raw / "labelsTr" / c) == 1, _mask(merged / c) == 1) for c in cases]
        expected = float(np.nanmean(dice)) if not np.all(np.isnan(dice)) else float("nan")
        assert info["all_results"][identifier] == pytest.approx(expected, abs=1e-9, nan_ok=True)
    best = max(info["all_results"].values())
    first_best = next(k for k, v in info["all_results"].items() if v == best)
    chosen = {m["trainer"] for m in info["best_model_or_ensemble"]["selected_model_or_models"]}
    assert chosen == ({*CV_TRAINERS} if first_best == ensemble else {first_best.split("__")[0]})


def test_stock_ensemble_averages_the_two_trainers_probabilities(predictions, tmp_path):
    _, cases, outputs = predictions
    merged = tmp_path / "ensemble"
    run_stock(["nnUNetv2_ensemble", "-i", *(str(outputs[t]) for t in CV_TRAINERS), "-o", str(merged), "-np", "1"])
    for case in cases:
        probabilities = np.mean([np.load(outputs[t] / f"{case}.npz")["probabilities"] for t in CV_TRAINERS], axis=0)
        np.testing.assert_array_equal(_mask(merged / f"{case}.nii.gz"), np.argmax(probabilities, axis=0))


def test_exported_model_predicts_from_an_empty_results_folder(cross_validated, predictions, tmp_path):  # noqa: F811
    inputs, cases, outputs = predictions
    trainer = CV_TRAINERS[1]
    archive = tmp_path / "model.zip"
    run_stock(["nnUNetv2_export_model_to_zip", "-d", str(cross_validated.planned.dataset_id), "-o", str(archive),
               "-c", CONFIGURATION, "-tr", trainer, "-f", *FOLDS])
    site = {name: tmp_path / name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for folder in site.values():
        folder.mkdir()
    env = {**stock_env(), **{name: str(folder) for name, folder in site.items()}}
    run_stock(["nnUNetv2_install_pretrained_model_from_zip", str(archive)], env=env)
    output = tmp_path / "predicted"
    run_stock(["nnUNetv2_predict", "-i", str(inputs), "-o", str(output), "-d", str(cross_validated.planned.dataset_id),
               "-c", CONFIGURATION, "-tr", trainer, "-f", *FOLDS, "-device", "cpu", "--disable_tta", "-npp", "0",
               "-nps", "0"], env=env)
    assert not any(site["nnUNet_preprocessed"].iterdir()) and not any(site["nnUNet_raw"].iterdir())
    for case in cases:
        np.testing.assert_array_equal(_mask(output / f"{case}.nii.gz"), _mask(outputs[trainer] / f"{case}.nii.gz"))


def test_prediction_split_over_two_workers_matches_one_run(cross_validated, predictions, tmp_path):  # noqa: F811
    inputs, cases, outputs = predictions
    trainer = CV_TRAINERS[0]
    output = tmp_path / "parts"
    for part in ("0", "1"):  # nnU-Net 2.8 ignores -num_parts in its sequential path (-npp 0 -nps 0): use workers
        run_stock(["nnUNetv2_predict", "-i", str(inputs), "-o", str(output), "-d",
                   str(cross_validated.planned.dataset_id), "-c", CONFIGURATION, "-tr", trainer, "-f", *FOLDS,
                   "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1", "-num_parts", "2", "-part_id", part])
    assert sorted(p.name for p in output.glob("*.nii.gz")) == sorted(f"{case}.nii.gz" for case in cases)
    for case in cases:
        np.testing.assert_array_equal(_mask(output / f"{case}.nii.gz"), _mask(outputs[trainer] / f"{case}.nii.gz"))
