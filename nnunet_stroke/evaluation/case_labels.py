"""Patient-level class labels from a dataset's ``cases.csv``: the one rule every classifier trainer,
predictor and evaluation of the package uses.

``case_labels(cases_csv, task)`` returns ``(class_names, labels)``: ``class_names[i]`` is the name of
logit ``i``, ``labels`` maps each case to its class index.

``task = "presence"`` (classes ``["no_stroke", "stroke"]``):

- a set whose every row has ``lesion_volume_ml`` (the MRI sets ISLES'22 and ATLAS v2.0's training part;
  also AISD, a CT set with voxel masks): stroke present = ``lesion_volume_ml > 0``;
- otherwise (the CT slices of TEKNOFEST carry no spacing, so no volume) the ``class`` column decides:
  stroke present = the class is not one of :data:`NEGATIVE_CLASSES` (``normal`` from the TEKNOFEST
  converter, ``no_lesion`` from the masks-only converters).

``task = "subtype"``: the ``class`` column itself. Class order: :data:`KNOWN_CLASS_ORDER` first (the
negative class first, then the TEKNOFEST converter's label order ischemic 1 / hemorrhagic 2), then any
other class name in sorted order. On the TEKNOFEST set this gives ``["normal", "ischemic", "hemorrhagic"]``.

A row that the rule cannot label (empty volume and empty class, a volume that is not a number) raises a
:class:`~nnunet_stroke.errors.UserError` naming the file and the case.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from nnunet_stroke.errors import UserError

TASKS = ("presence", "subtype")
PRESENCE_CLASSES = ["no_stroke", "stroke"]
NEGATIVE_CLASSES = ("normal", "no_lesion")
KNOWN_CLASS_ORDER = ("normal", "no_lesion", "ischemic", "hemorrhagic", "lesion")


def read_cases_csv(cases_csv: Path) -> list[dict[str, str]]:
    """Rows of ``cases_csv`` (columns checked: ``case``, ``lesion_volume_ml``, ``class``)."""
    path = Path(cases_csv)
    if not path.is_file():
        raise UserError(f"{path} does not exist; `nnunet-stroke convert` writes cases.csv into the dataset's "
                        f"$nnUNet_raw folder: convert the dataset (again) or pass the right path")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = sorted({"case", "lesion_volume_ml", "class"} - set(reader.fieldnames or ()))
        if missing:
            raise UserError(f"{path}: column(s) {missing} missing; cases.csv needs columns "
                            f"case, lesion_volume_ml, lesion_count, site, class")
        rows = [{key: (value or "").strip() for key, value in row.items()} for row in reader]
    if not rows:
        raise UserError(f"{path} lists no cases; convert the dataset again")
    return rows


def _volume(path: Path, row: dict[str, str]) -> float:
    try:
        volume = float(row["lesion_volume_ml"])
    except ValueError:
        volume = math.nan
    if not math.isfinite(volume) or volume < 0:
        raise UserError(f"{path}: case {row['case']} has lesion_volume_ml {row['lesion_volume_ml']!r}, not a "
                        f"volume >= 0 in ml; fix the row or convert the dataset again")
    return volume


def _class(path: Path, row: dict[str, str]) -> str:
    if not row["class"]:
        raise UserError(f"{path}: case {row['case']} has neither a lesion_volume_ml nor a class; the label rule "
                        f"(nnunet_stroke/evaluation/case_labels.py) needs one of them: fill the row")
    return row["class"]


def ordered_classes(names: set[str]) -> list[str]:
    """:data:`KNOWN_CLASS_ORDER` first, then the others sorted."""
    return [c for c in KNOWN_CLASS_ORDER if c in names] + sorted(names - set(KNOWN_CLASS_ORDER))


def case_labels(cases_csv: Path, task: str) -> tuple[list[str], dict[str, int]]:
    """``(class_names, {case: class index})`` for ``task`` in :data:`TASKS` (rule: module docstring)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    path = Path(cases_csv)
    rows = read_cases_csv(path)
    if task == "presence":
        if all(row["lesion_volume_ml"] for row in rows):
            return list(PRESENCE_CLASSES), {row["case"]: int(_volume(path, row) > 0) for row in rows}
        return list(PRESENCE_CLASSES), {row["case"]: int(_class(path, row) not in NEGATIVE_CLASSES) for row in rows}
    classes = {row["case"]: _class(path, row) for row in rows}
    names = ordered_classes(set(classes.values()))
    return names, {case: names.index(name) for case, name in classes.items()}
