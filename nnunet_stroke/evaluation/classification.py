"""Evaluation of image-level classifiers: ``classification.json`` against the labels of ``cases.csv``.

``classification.json`` = {case: {"probabilities": {class: p}, "label": class}} (written by
``nnunet-stroke predict -tr <classifier>``); every case lists the same classes, in logit order. The
labels come from :func:`~nnunet_stroke.evaluation.case_labels.case_labels`: the task is ``presence``
when the classes are ``no_stroke, stroke``, else ``subtype``; both files must name the same classes.

``evaluate_classification`` returns the metrics.json of ``protocol: "classification"``: ``aggregate``
holds ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``auroc`` (+ ``auroc_<class>`` for more than two
classes), ``ece``, ``sensitivity_<class>``, ``specificity_<class>``, ``f1_<class>``, each {value, ci_low,
ci_high} (rules: :mod:`~nnunet_stroke.evaluation.classification_metrics`), and
``sensitivity_small_infarct`` {value, ci_low, ci_high, n}: among cases with 0 < lesion_volume_ml < 5, the
share whose label is not the negative class (class 0); null with n = 0 where cases.csv gives no volumes.
The decisions are the file's labels (argmax, or a threshold chosen on validation cases); ``cases`` lists
per case its truth, label, probabilities and whether the label is correct; ``reliability`` holds the
15 top-label bins for the report's diagram.

``compare_classifications`` (``evaluate --compare``): McNemar's test of the two files' labels and a
paired bootstrap of the AUROC difference on the same cases.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from nnunet_stroke.errors import UserError
from nnunet_stroke.evaluation import classification_metrics as cm
from nnunet_stroke.evaluation.case_labels import PRESENCE_CLASSES, case_labels, read_cases_csv
from nnunet_stroke.staging import atomic_write_text

CLASSIFICATION_FILE = "classification.json"
THRESHOLD_FILE = "classification_threshold.json"
SMALL_INFARCT_ML = 5.0


def classification_entries(probabilities: dict[str, np.ndarray], class_names: list[str],
                           threshold: float | None = None) -> dict[str, dict]:
    """classification.json entries; label = argmax, or for two classes ``p(class 1) >= threshold``."""
    if threshold is not None and len(class_names) != 2:
        raise ValueError(f"a decision threshold needs two classes, got {class_names}")
    entries = {}
    for case, p in sorted(probabilities.items()):
        p = np.asarray(p, dtype=float)
        index = int(p[1] >= threshold) if threshold is not None else int(np.argmax(p))
        entries[case] = {"probabilities": {name: float(v) for name, v in zip(class_names, p)},
                         "label": class_names[index]}
    return entries


def write_classification_json(path: Path, entries: dict[str, dict], merge: bool = False) -> Path:
    """Write (or with ``merge`` update) a classification.json atomically; returns its path."""
    path = Path(path)
    merged = read_classification_json(path)[2] if merge and path.is_file() else {}
    merged.update(entries)
    atomic_write_text(path, json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
    return path


def _malformed(path: Path, what: str) -> UserError:
    return UserError(f"{path} is not a classification.json ({what}); it must map each case to "
                     f'{{"probabilities": {{class: p}}, "label": class}}, as `nnunet-stroke predict` writes it')


def read_classification_json(path: Path) -> tuple[list[str], dict[str, np.ndarray], dict[str, dict]]:
    """(class names, {case: probabilities}, raw entries), with the schema checked (errors name the file)."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}; pass the classification.json that "
                        f"`nnunet-stroke predict -tr <classifier>` wrote") from None
    except json.JSONDecodeError as error:
        raise _malformed(path, f"invalid JSON: {error}") from None
    if not isinstance(entries, dict) or not entries:
        raise _malformed(path, "not a non-empty object")
    class_names: list[str] | None = None
    probabilities = {}
    for case, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("probabilities"), dict) or "label" not in entry:
            raise _malformed(path, f"case {case} lacks probabilities or label")
        names = list(entry["probabilities"])
        class_names = class_names or names
        if names != class_names:
            raise _malformed(path, f"case {case} lists classes {names}, other cases {class_names}")
        if entry["label"] not in class_names:
            raise _malformed(path, f"case {case} has label {entry['label']!r}, not one of {class_names}")
        values = list(entry["probabilities"].values())
        if len(values) < 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v <= 1
                                      for v in values) or abs(sum(values) - 1) > 1e-3:
            raise _malformed(path, f"case {case}: probabilities {values} are not >= 2 numbers in [0, 1] summing to 1")
        probabilities[case] = np.array(values, dtype=float)
    return class_names, probabilities, entries


def labels_for_classes(class_names: list[str], cases_csv: Path, source: Path) -> dict[str, int]:
    """{case: index into class_names} from cases.csv; ``source`` (the file naming the classes) for errors."""
    task = "presence" if class_names == PRESENCE_CLASSES else "subtype"
    names, labels = case_labels(cases_csv, task)
    if not set(names) <= set(class_names):
        raise UserError(f"{source} has classes {class_names} but {cases_csv} gives the {task} classes {names}; "
                        f"use the cases.csv of the dataset the classifier was trained on")
    return {case: class_names.index(names[index]) for case, index in labels.items()}


def _table(classification_json: Path, cases_csv: Path):
    class_names, probabilities, entries = read_classification_json(classification_json)
    labels = labels_for_classes(class_names, Path(cases_csv), Path(classification_json))
    missing = sorted(set(probabilities) - set(labels))
    if missing:
        raise UserError(f"{classification_json} has cases not in {cases_csv}: {', '.join(missing[:5])}"
                        f"{' ...' if len(missing) > 5 else ''}; pass the dataset's cases.csv")
    cases = sorted(probabilities)
    truth = np.array([labels[c] for c in cases], dtype=int)
    predicted = np.array([class_names.index(entries[c]["label"]) for c in cases], dtype=int)
    return class_names, cases, truth, np.stack([probabilities[c] for c in cases]), predicted


def _named(metrics: dict, class_names: list[str]) -> dict:
    """Replace the class index in ``<metric>_<k>`` keys by the class name."""
    renamed = {}
    for key, value in metrics.items():
        stem, _, index = key.rpartition("_")
        renamed[f"{stem}_{class_names[int(index)]}" if index.isdigit() and stem else key] = value
    return renamed


def small_infarct_cases(cases_csv: Path) -> set[str]:
    volumes = {row["case"]: row["lesion_volume_ml"] for row in read_cases_csv(Path(cases_csv))}
    return {case for case, v in volumes.items() if v and 0 < float(v) < SMALL_INFARCT_ML}


def evaluate_classification(classification_json: Path, cases_csv: Path, n_boot: int = cm.N_BOOTSTRAP) -> dict:
    """metrics.json content for ``protocol: "classification"`` (see the module docstring)."""
    class_names, cases, truth, probabilities, predicted = _table(classification_json, cases_csv)
    aggregate = _named(cm.bootstrap_metrics(truth, probabilities, predicted, n_boot=n_boot), class_names)
    small = small_infarct_cases(cases_csv)
    aggregate["sensitivity_small_infarct"] = cm.proportion_interval(
        np.array([predicted[i] != 0 for i, case in enumerate(cases) if case in small]), n_boot=n_boot)
    warnings = [f"class {name} has {int(np.sum(truth == k))} cases (fewer than 10): its rates and AUROC are "
                f"unreliable, their CIs wide" for k, name in enumerate(class_names) if np.sum(truth == k) < 10]
    return {
        "protocol": "classification",
        "inputs": {"classification": str(classification_json), "cases_csv": str(cases_csv)},
        "classes": class_names,
        "n_cases": len(cases),
        "n_per_class": {name: int(np.sum(truth == k)) for k, name in enumerate(class_names)},
        "bootstrap": {"n_boot": n_boot, "seed": cm.BOOTSTRAP_SEED, "interval": "percentile 95%"},
        "aggregate": aggregate,
        "reliability": cm.reliability(truth, probabilities).to_json(),
        "cases": [{"case": case, "truth": class_names[truth[i]], "label": class_names[predicted[i]],
                   "correct": bool(truth[i] == predicted[i]), "small_infarct": case in small,
                   "probabilities": dict(zip(class_names, map(float, probabilities[i])))}
                  for i, case in enumerate(cases)],
        "warnings": warnings,
    }


def compare_classifications(json_a: Path, json_b: Path, cases_csv: Path, n_boot: int = cm.N_BOOTSTRAP) -> dict:
    """McNemar's test and the paired bootstrap of AUROC(A) - AUROC(B) on the two files' common cases."""
    names_a, cases_a, truth, probabilities_a, predicted_a = _table(json_a, cases_csv)
    names_b, cases_b, _, probabilities_b, predicted_b = _table(json_b, cases_csv)
    if names_a != names_b or cases_a != cases_b:
        raise UserError(f"{json_a} and {json_b} must hold the same cases and classes in the same order to be "
                        f"compared ({len(cases_a)} vs {len(cases_b)} cases, classes {names_a} vs {names_b}); "
                        f"predict both models on the same cases")
    return {
        "protocol": "classification-comparison",
        "inputs": {"a": str(json_a), "b": str(json_b), "cases_csv": str(cases_csv)},
        "n_cases": len(cases_a),
        "accuracy": {"a": float(np.mean(predicted_a == truth)), "b": float(np.mean(predicted_b == truth))},
        "mcnemar": cm.mcnemar(predicted_a == truth, predicted_b == truth),
        "auroc_difference": cm.paired_auroc_difference(truth, probabilities_a, probabilities_b, n_boot=n_boot),
    }


def validation_threshold(probabilities: dict[str, np.ndarray], labels: dict[str, int], class_names: list[str],
                         validation_cases: list[str]) -> dict:
    """The decision rule of a fold, from its validation cases alone: for two classes the Youden threshold
    on p(class 1) (``classification_metrics.youden_threshold``), else (or when the validation cases lack a
    class) argmax. Only ``validation_cases`` are read from ``probabilities``."""
    record = {"rule": "argmax", "threshold": None, "positive_class": None, "validation_cases": sorted(validation_cases)}
    if len(class_names) != 2:
        return record
    truth = np.array([labels[c] == 1 for c in record["validation_cases"]], dtype=bool)
    score = np.array([probabilities[c][1] for c in record["validation_cases"]], dtype=float)
    youden = cm.youden_threshold(truth, score)
    if youden is None:
        return {**record, "note": "validation cases lack a class: Youden's J is undefined, argmax is used"}
    return {**record, "rule": "youden", "positive_class": class_names[1], **youden}


def write_threshold(fold_folder: Path, record: dict) -> Path:
    path = Path(fold_folder) / THRESHOLD_FILE
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path


def stored_threshold(model_folder: Path, folds: list, class_names: list[str]) -> float | None:
    """The Youden threshold stored for a single fold of a binary classifier, else None (argmax)."""
    if len(folds) != 1 or len(class_names) != 2:
        return None
    path = Path(model_folder) / f"fold_{folds[0]}" / THRESHOLD_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        threshold = record["threshold"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise UserError(f"{path} is unreadable ({error}); delete it or run `nnunet-stroke predict-heldout` again") \
            from None
    if threshold is not None and not (isinstance(threshold, (int, float)) and 0 <= threshold <= 1):
        raise UserError(f"{path}: threshold {threshold!r} is not a probability; delete the file or rerun "
                        f"`nnunet-stroke predict-heldout`")
    return None if threshold is None else float(threshold)
