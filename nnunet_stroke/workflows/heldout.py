"""Predict and evaluate the held-out test cases of a repeated 8:1:1 fold (``heldout_test.json``).

The test cases of folds 5-9 stay in ``imagesTr`` (planning sees them, training and validation never do);
this module predicts them with nnU-Net's predictor from the fold's final checkpoint into
``<fold folder>/heldout_test/`` (segmentations, nnU-Net's saved probabilities for calibration, and
``detection.json`` for networks with a detection head) and writes ``metrics.json`` there.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from nnunet_stroke.errors import UserError


def heldout_cases(dataset: str | int, fold: int) -> list[str]:
    from nnunet_stroke.nnunet_folders import dataset_name, nnunet_folder

    path = nnunet_folder("nnUNet_preprocessed") / dataset_name(dataset) / "heldout_test.json"
    if not path.is_file():
        raise UserError(f"{path} is missing; write the splits first: `nnunet-stroke splits {dataset}`")
    heldout = json.loads(path.read_text(encoding="utf-8"))
    if str(fold) not in heldout:
        raise UserError(f"fold {fold} has no held-out test set in {path}; folds {', '.join(heldout)} have one")
    return heldout[str(fold)]


def predict_heldout(dataset: str | int, configuration: str, fold: int, trainer: str, plans: str = "nnUNetPlans",
                    protocol: str = "isles22", device: str = "cpu", checkpoint: str = "checkpoint_final.pth",
                    use_mirroring: bool = True) -> dict:
    """Predict the fold's held-out cases into ``<fold folder>/heldout_test`` and evaluate them there."""
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    from nnunet_stroke.nnunet_folders import dataset_name, nnunet_folder
    from nnunet_stroke.workflows.nnunet_env import with_ext_trainer
    from nnunet_stroke.workflows.prediction import trainer_prediction_kind

    with_ext_trainer()
    cases = heldout_cases(dataset, fold)
    nnunet_folder("nnUNet_results")
    model_folder = Path(get_output_folder(dataset, trainer, plans, configuration))
    if not (model_folder / f"fold_{fold}" / checkpoint).is_file():
        raise UserError(f"{model_folder / f'fold_{fold}' / checkpoint} is missing; train the fold first: "
                        f"`nnunet-stroke train {dataset} {configuration} {fold} -tr {trainer} -p {plans}`")
    kind = trainer_prediction_kind(trainer)  # the trainer class's predicts_* attributes decide
    if kind == "classification":  # validation -> threshold -> test cases
        from nnunet_stroke.workflows.classification import predict_heldout_classification

        return predict_heldout_classification(dataset, configuration, fold, trainer, plans=plans, device=device,
                                              checkpoint=checkpoint, use_mirroring=use_mirroring)
    raw = nnunet_folder("nnUNet_raw") / dataset_name(dataset)
    dataset_json = json.loads((raw / "dataset.json").read_text(encoding="utf-8"))
    ending = dataset_json["file_ending"]
    output = model_folder / f"fold_{fold}" / "heldout_test"
    output.mkdir(exist_ok=True)
    references = output / "reference"  # the held-out cases' labels, linked: evaluation covers exactly these
    shutil.rmtree(references, ignore_errors=True)
    references.mkdir()
    for case in cases:
        (references / f"{case}{ending}").symlink_to(raw / "labelsTr" / f"{case}{ending}")
    return predict_and_evaluate(model_folder, fold, trainer, raw / "imagesTr", cases, references, output,
                                protocol=protocol, device=device, checkpoint=checkpoint, use_mirroring=use_mirroring)


def predict_and_evaluate(model_folder: Path, fold: int, trainer: str, images: Path, cases: list[str], references: Path,
                         output: Path, protocol: str = "isles22", device: str = "cpu",
                         checkpoint: str = "checkpoint_final.pth", use_mirroring: bool = True) -> dict:
    """Predict ``cases`` (nnU-Net-named files in ``images``) with the fold's checkpoint into ``output``
    (segmentations, probabilities, ``detection.json`` for a detection head), evaluate them against the
    labels in ``references`` and write ``output/metrics.json``; returns the metrics."""
    from nnunet_stroke.evaluation import evaluate_folders, write_metrics
    from nnunet_stroke.workflows.prediction import segmentation_predictor

    dataset_json = json.loads((model_folder / "dataset.json").read_text(encoding="utf-8"))
    ending, channels = dataset_json["file_ending"], len(dataset_json["channel_names"])
    predictor = segmentation_predictor(trainer, device, use_mirroring=use_mirroring, progress_bar=True)
    predictor.initialize_from_trained_model_folder(str(model_folder), use_folds=(fold,), checkpoint_name=checkpoint)
    inputs = [[str(images / f"{case}_{c:04d}{ending}") for c in range(channels)] for case in cases]
    predictor.predict_from_files_sequential(inputs, [str(output / case) for case in cases],
                                            save_probabilities=True, overwrite=True,
                                            folder_with_segs_from_prev_stage=None)
    foreground = sorted(v for v in dataset_json["labels"].values() if isinstance(v, int) and v > 0)
    detection = output / "detection.json"
    metrics = evaluate_folders(references, output, protocol=protocol, images_dir=images, probabilities_dir=output,
                               detection_json=detection if detection.is_file() else None, file_ending=ending,
                               labels=foreground)
    write_metrics(metrics, output / "metrics.json")
    return metrics
