"""``nnunet-stroke predict`` / ``predict-heldout`` with a classifier: checkpoints loaded the nnU-Net way,
nnU-Net's preprocessing, fold ensembles averaging probabilities, classification.json, the validation-only
threshold, 2D slices. The network is a stand-in (tests/classifier_fakes.py) whose output is computed here
independently from nnU-Net's preprocessed data in numpy."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_stroke.errors import UserError
from nnunet_stroke.evaluation.classification import THRESHOLD_FILE, read_classification_json, validation_threshold

FAKE = "nnUNetTrainerClassifierFakeForTests"
FAKE_SLICES = "nnUNetTrainerClassifierFakeSlicesForTests"
CLASSES = ["no_stroke", "stroke"]
FOLD_WEIGHTS = {5: ([[1.5, -2.0], [-1.0, 2.5]], [2.0, -1.0]), 6: ([[-3.0, 1.0], [2.0, -0.5]], [-0.5, 1.5])}


@pytest.fixture
def fake_ext(monkeypatch):
    folder = Path(__file__).parent / "classifier_ext"
    import os
    monkeypatch.setenv("nnUNet_extTrainer", os.pathsep.join([os.environ["nnUNet_extTrainer"], str(folder)]))


def _write_model(planned, trainer: str, configuration: str = "3d_fullres", folds=(5, 6)) -> Path:
    """A model folder as nnU-Net's trainer leaves it: plans.json, dataset.json, fold_X/checkpoint_final.pth."""
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    folder = Path(get_output_folder(planned.dataset_id, trainer, "nnUNetPlans", configuration))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(planned.plans), encoding="utf-8")
    (folder / "dataset.json").write_text(json.dumps(planned.dataset_json), encoding="utf-8")
    for fold in folds:
        weight, bias = FOLD_WEIGHTS[fold]
        (folder / f"fold_{fold}").mkdir()
        torch.save({"network_weights": {"linear.weight": torch.tensor(weight), "linear.bias": torch.tensor(bias)},
                    "trainer_name": trainer, "init_args": {"configuration": configuration, "fold": fold},
                    "inference_allowed_mirroring_axes": (0, 1, 2) if configuration == "3d_fullres" else (0, 1),
                    "classification_classes": CLASSES}, folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder


def _softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()


def _logits(planned, case: str, fold: int, configuration: str = "3d_fullres") -> list[np.ndarray]:
    """W @ channel means + b of nnU-Net's preprocessed case (float64, numpy): one row per network input
    (the volume, or each slice under a 2D configuration)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = PlansManager(planned.plans)
    configuration_manager = plans.get_configuration(configuration)
    files = sorted(str(p) for p in (planned.raw / "imagesTr").glob(f"{case}_*.nii.gz"))
    data, _, _ = configuration_manager.preprocessor_class().run_case(files, None, plans, configuration_manager,
                                                                     planned.dataset_json)
    data = data.astype(np.float64)
    inputs = [data.reshape(data.shape[0], -1).mean(axis=1)] if configuration == "3d_fullres" else \
        [data[:, z].reshape(data.shape[0], -1).mean(axis=1) for z in range(data.shape[1])]
    weight, bias = (np.array(v, dtype=np.float64) for v in FOLD_WEIGHTS[fold])
    return [weight @ means + bias for means in inputs]


def _expected(planned, case: str, folds, configuration: str = "3d_fullres") -> np.ndarray:
    """Mean over folds (and slices) of the softmax probabilities."""
    return np.mean([np.mean([_softmax(row) for row in _logits(planned, case, fold, configuration)], axis=0)
                    for fold in folds], axis=0)


def _inputs(planned, cases, folder: Path) -> Path:
    folder.mkdir()
    for case in cases:
        for image in (planned.raw / "imagesTr").glob(f"{case}_*.nii.gz"):
            shutil.copy(image, folder / image.name)
    return folder


def test_predict_writes_classification_json_averaging_fold_probabilities(planned_phantom, fake_ext, tmp_path):
    from nnunet_stroke.workflows.prediction import run_predict, trainer_prediction_kind

    assert trainer_prediction_kind(FAKE) == "classification"
    assert trainer_prediction_kind("nnUNetTrainer") == "segmentation"
    _write_model(planned_phantom, FAKE)
    cases = sorted(planned_phantom.heldout["5"])[:1] + sorted(planned_phantom.heldout["6"])[:1]
    output = tmp_path / "out"
    assert run_predict(["-i", str(_inputs(planned_phantom, cases, tmp_path / "in")), "-o", str(output), "-d",
                        str(planned_phantom.dataset_id), "-c", "3d_fullres", "-tr", FAKE, "-f", "5", "6",
                        "-device", "cpu", "-npp", "0", "-nps", "0", "--disable_progress_bar"]) == 0
    assert sorted(p.name for p in output.iterdir()) == ["classification.json"]  # no segmentation
    class_names, probabilities, entries = read_classification_json(output / "classification.json")
    assert class_names == CLASSES and sorted(entries) == sorted(set(cases))
    for case in cases:
        expected = _expected(planned_phantom, case, (5, 6))
        np.testing.assert_allclose(probabilities[case], expected, rtol=1e-4, atol=1e-5)
        assert entries[case]["label"] == CLASSES[int(np.argmax(expected))]
        # averaging probabilities, not logits, is what is tested: the two differ here
        mean_logits = np.mean([_logits(planned_phantom, case, fold)[0] for fold in (5, 6)], axis=0)
        assert np.abs(_softmax(mean_logits) - expected).max() > 1e-3


def test_single_fold_uses_its_stored_threshold(planned_phantom, fake_ext, tmp_path):
    from nnunet_stroke.workflows.prediction import run_predict

    folder = _write_model(planned_phantom, FAKE)
    case = sorted(planned_phantom.heldout["5"])[0]
    stroke = _expected(planned_phantom, case, (5,))[1]
    threshold = stroke - 0.01 if stroke < 0.5 else stroke + 0.01  # flips the argmax decision
    (folder / "fold_5" / THRESHOLD_FILE).write_text(json.dumps({"rule": "youden", "threshold": threshold}))
    output = tmp_path / "out"
    run_predict(["-i", str(_inputs(planned_phantom, [case], tmp_path / "in")), "-o", str(output), "-d",
                 str(planned_phantom.dataset_id), "-c", "3d_fullres", "-tr", FAKE, "-f", "5", "-device", "cpu",
                 "-npp", "0", "-nps", "0", "--disable_progress_bar"])
    label = read_classification_json(output / "classification.json")[2][case]["label"]
    assert label == ("stroke" if stroke >= threshold else "no_stroke") != CLASSES[int(stroke >= 0.5)]


def test_predict_heldout_chooses_the_threshold_on_validation_cases(planned_phantom, fake_ext):
    from nnunet_stroke.workflows.heldout import predict_heldout

    folder = _write_model(planned_phantom, FAKE, folds=(5,)) / "fold_5"
    metrics = predict_heldout(planned_phantom.dataset_id, "3d_fullres", 5, FAKE, device="cpu")
    splits = json.loads((planned_phantom.preprocessed / "splits_final.json").read_text(encoding="utf-8"))
    validation, test = splits[5]["val"], planned_phantom.heldout["5"]
    _, validation_probabilities, _ = read_classification_json(folder / "validation_classification" /
                                                              "classification.json")
    _, test_probabilities, test_entries = read_classification_json(folder / "heldout_test" / "classification.json")
    assert sorted(validation_probabilities) == sorted(validation) and sorted(test_probabilities) == sorted(test)
    from nnunet_stroke.evaluation.case_labels import case_labels

    labels = case_labels(planned_phantom.raw / "cases.csv", "presence")[1]
    rule = json.loads((folder / THRESHOLD_FILE).read_text(encoding="utf-8"))
    assert rule == validation_threshold(validation_probabilities, labels, CLASSES, validation)
    for case, entry in test_entries.items():
        decision = int(np.argmax(test_probabilities[case])) if rule["threshold"] is None else \
            int(test_probabilities[case][1] >= rule["threshold"])
        assert entry["label"] == CLASSES[decision]
    written = json.loads((folder / "heldout_test" / "metrics.json").read_text(encoding="utf-8"))
    assert written["protocol"] == metrics["protocol"] == "classification" and written["n_cases"] == len(test)
    assert written["threshold"]["rule"] == rule["rule"]


def test_2d_configuration_classifies_slices(planned_phantom, fake_ext, tmp_path):
    from nnunet_stroke.inference.classification_predictor import ClassificationPredictor

    case = sorted(planned_phantom.heldout["5"])[0]
    inputs = [sorted(str(p) for p in (planned_phantom.raw / "imagesTr").glob(f"{case}_*.nii.gz"))]
    folder = _write_model(planned_phantom, FAKE_SLICES, configuration="2d", folds=(5,))
    predictor = ClassificationPredictor(use_mirroring=True, device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(folder), (5,))
    entries = predictor.classify_files(inputs, tmp_path / "slices")
    np.testing.assert_allclose(list(entries[case]["probabilities"].values()),
                               _expected(planned_phantom, case, (5,), configuration="2d"), rtol=1e-4, atol=1e-5)
    refusing = ClassificationPredictor(device=torch.device("cpu"), allow_tqdm=False)
    refusing.initialize_from_trained_model_folder(str(_write_model(planned_phantom, FAKE, "2d", (5,))), (5,))
    with pytest.raises(UserError, match=f"case {case} has .* slices"):
        refusing.classify_files(inputs, tmp_path / "refused")


def test_checkpoint_without_classes_is_refused(planned_phantom, fake_ext):
    from nnunet_stroke.inference.classification_predictor import ClassificationPredictor

    folder = _write_model(planned_phantom, FAKE, folds=(5,))
    checkpoint = torch.load(folder / "fold_5" / "checkpoint_final.pth", weights_only=False)
    del checkpoint["classification_classes"]
    torch.save(checkpoint, folder / "fold_5" / "checkpoint_final.pth")
    with pytest.raises(UserError, match="checkpoint_final.pth holds no classification_classes"):
        ClassificationPredictor(device=torch.device("cpu")).initialize_from_trained_model_folder(str(folder), (5,))


def test_real_tiny_classifier_round_trip(planned_phantom):
    """nnUNetTrainerPMSANClassifier_S_Tiny trained in-process; predict-heldout's classification of the
    fold's validation cases from the raw images reproduces the trainer's own validation predictions
    (made from nnU-Net's preprocessed files), and its test cases get the validation threshold."""
    from nnunet_helpers import train_in_process

    from nnunet_stroke.workflows.heldout import predict_heldout
    from nnunet_stroke.trainers import nnUNetTrainerPMSANClassifier_S_Tiny

    trainer = train_in_process(nnUNetTrainerPMSANClassifier_S_Tiny, planned_phantom, fold=7, iterations=2)
    trainer.perform_actual_validation()
    folder = Path(trainer.output_folder)
    own = json.loads((folder / "validation" / "classification.json").read_text(encoding="utf-8"))
    metrics = predict_heldout(planned_phantom.dataset_id, "3d_fullres", 7, "nnUNetTrainerPMSANClassifier_S_Tiny",
                              device="cpu", use_mirroring=False)
    _, ours, _ = read_classification_json(folder / "validation_classification" / "classification.json")
    assert sorted(ours) == sorted(own)
    for case, entry in own.items():
        np.testing.assert_allclose(ours[case], list(entry["probabilities"].values()), rtol=1e-4, atol=1e-5)
    assert metrics["n_cases"] == len(planned_phantom.heldout["7"])
    assert (folder / THRESHOLD_FILE).is_file()
