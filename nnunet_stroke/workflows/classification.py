"""Chains for image-level classifiers: ``evaluate --classification/--compare`` and the held-out evaluation
of an 8:1:1 fold.

Held-out (``nnunet-stroke predict-heldout`` with a classifier trainer), in this order:

1. the fold's validation cases (``splits_final.json``) are classified with the fold's checkpoint into
   ``<fold folder>/validation_classification/classification.json`` (argmax labels);
2. the decision rule is chosen on them alone (binary: Youden's J; see
   :func:`~nnunet_stroke.evaluation.classification.validation_threshold`) and stored in
   ``<fold folder>/classification_threshold.json``;
3. only then are the held-out test cases (``heldout_test.json``) classified, the stored rule applied
   unchanged, into ``<fold folder>/heldout_test/classification.json``, and evaluated against
   ``cases.csv`` into ``heldout_test/metrics.json`` (which records the rule under ``threshold``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from nnunet_stroke.errors import UserError

VALIDATION_FOLDER = "validation_classification"


def evaluate_classifier_files(classification: str | None, compare: list[str] | None, cases_csv: str | None,
                              out: str) -> int:
    """``nnunet-stroke evaluate --classification F`` or ``--compare A B`` (with ``--cases``) -> ``out``."""
    from nnunet_stroke.evaluation import write_metrics
    from nnunet_stroke.evaluation.classification import compare_classifications, evaluate_classification
    from nnunet_stroke.staging import check_writable

    if classification and compare:
        raise UserError("give either --classification or --compare, not both")
    if not cases_csv:
        raise UserError("--classification and --compare need --cases: the dataset's cases.csv "
                        "($nnUNet_raw/DatasetXXX_NAME/cases.csv)")
    check_writable(Path(out).resolve().parent, "the folder of --out")
    if compare:
        result = compare_classifications(Path(compare[0]), Path(compare[1]), Path(cases_csv))
        write_metrics(result, out)
        test, difference = result["mcnemar"], result["auroc_difference"]
        ci = "undefined" if difference["value"] is None else \
            f"{difference['value']:+.4f} [{difference['ci_low']:+.4f}, {difference['ci_high']:+.4f}]"
        print(f"{result['n_cases']} cases: McNemar ({test['method']}) b={test['b']} c={test['c']} "
              f"p={test['p_value']:.4g}; AUROC(A) - AUROC(B) {ci}")
    else:
        metrics = evaluate_classification(Path(classification), Path(cases_csv))
        for warning in metrics["warnings"]:
            print(f"warning: {warning}", file=sys.stderr)
        write_metrics(metrics, out)
        aggregate = metrics["aggregate"]
        print(f"{metrics['n_cases']} cases: " + ", ".join(
            f"{key} {aggregate[key]['value']:.4g}" for key in ("accuracy", "balanced_accuracy", "auroc", "ece")
            if aggregate[key]["value"] is not None))
    print(f"wrote {out}")
    return 0


def _validation_cases(dataset: str | int, fold: int) -> list[str]:
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    path = Path(nnUNet_preprocessed) / maybe_convert_to_dataset_name(dataset) / "splits_final.json"
    if not path.is_file():
        raise UserError(f"{path} is missing; write the splits first: `nnunet-stroke splits {dataset}`")
    splits = json.loads(path.read_text(encoding="utf-8"))
    if fold >= len(splits) or not splits[fold].get("val"):
        raise UserError(f"fold {fold} has no validation cases in {path}; rewrite the splits")
    return list(splits[fold]["val"])


def predict_heldout_classification(dataset: str | int, configuration: str, fold: int, trainer: str,
                                   plans: str = "nnUNetPlans", device: str = "cpu",
                                   checkpoint: str = "checkpoint_final.pth", use_mirroring: bool = True) -> dict:
    """Validation -> threshold -> held-out test -> metrics (module docstring); returns the metrics."""
    import torch
    from nnunetv2.paths import nnUNet_raw
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    from nnunet_stroke.evaluation import write_metrics
    from nnunet_stroke.evaluation.classification import (CLASSIFICATION_FILE, evaluate_classification,
                                                         labels_for_classes, read_classification_json,
                                                         validation_threshold, write_threshold)
    from nnunet_stroke.workflows.heldout import heldout_cases
    from nnunet_stroke.inference.classification_predictor import ClassificationPredictor

    test_cases, validation_cases = heldout_cases(dataset, fold), _validation_cases(dataset, fold)
    overlap = sorted(set(test_cases) & set(validation_cases))
    if overlap:
        raise UserError(f"held-out cases {overlap[:5]} of fold {fold} are also validation cases; rewrite the splits")
    model_folder = Path(get_output_folder(dataset, trainer, plans, configuration))
    fold_folder = model_folder / f"fold_{fold}"
    raw = Path(nnUNet_raw) / maybe_convert_to_dataset_name(dataset)
    dataset_json = json.loads((raw / "dataset.json").read_text(encoding="utf-8"))
    ending, channels = dataset_json["file_ending"], len(dataset_json["channel_names"])

    def inputs(cases: list[str]) -> list[list[str]]:
        return [[str(raw / "imagesTr" / f"{case}_{c:04d}{ending}") for c in range(channels)] for case in cases]

    predictor = ClassificationPredictor(use_mirroring=use_mirroring, device=torch.device(device), allow_tqdm=True)
    predictor.initialize_from_trained_model_folder(str(model_folder), (fold,), checkpoint_name=checkpoint)
    validation_folder, test_folder = fold_folder / VALIDATION_FOLDER, fold_folder / "heldout_test"
    for folder in (validation_folder, test_folder):  # a fresh file per run: no case of an earlier run stays
        (folder / CLASSIFICATION_FILE).unlink(missing_ok=True)
    predictor.classify_files(inputs(validation_cases), validation_folder)
    _, validation_probabilities, _ = read_classification_json(validation_folder / CLASSIFICATION_FILE)
    labels = labels_for_classes(predictor.class_names, raw / "cases.csv", fold_folder / checkpoint)
    rule = validation_threshold(validation_probabilities, labels, predictor.class_names, validation_cases)
    write_threshold(fold_folder, rule)
    predictor.classify_files(inputs(test_cases), test_folder, threshold=rule["threshold"])
    metrics = evaluate_classification(test_folder / CLASSIFICATION_FILE, raw / "cases.csv")
    metrics["threshold"] = {key: value for key, value in rule.items() if key != "validation_cases"}
    write_metrics(metrics, test_folder / "metrics.json")
    return metrics
