"""Splits for nnU-Net's ``splits_final.json``: 5-fold CV and repeated 8:1:1 splits (LBMNet section 4.1).

Layout of the written file (a list indexed by nnU-Net's ``-f FOLD``):

- folds 0-4: 5-fold cross-validation over all cases (train = 4/5, val = 1/5);
- folds 5-9: five repeated random 8:1:1 splits; ``train`` holds 80 %, ``val`` 10 %, and the remaining
  10 % (the test cases) are in neither list, so nnU-Net never trains or validates on them. They are
  written to ``heldout_test.json`` as ``{"5": [cases], ..., "9": [cases]}``.

Assignment is deterministic given the seed. With ``stratify="volume"`` the cases are ordered by lesion-volume
bin (no lesion, < 5, 5-10, 10-50, > 50 ml, from ``cases.csv``) and ``class`` (which is what separates the
strata of 2D sets without volumes, e.g. normal / ischemic / hemorrhagic CT slices), shuffled within a
stratum, then each unit
goes to the part whose share is furthest below its target: systematic stratified sampling, so every
part receives each bin in proportion. With ``group`` set, all cases sharing a value of that
``cases.csv`` column (site, or a duplicate-image group) form one unit and always land on the same side.
"""
from __future__ import annotations

import csv
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from nnunet_stroke.errors import UserError
from nnunet_stroke.nnunet_folders import dataset_name, nnunet_folder
from nnunet_stroke.staging import atomic_write_text, check_writable

NUM_CV_FOLDS = 5
NUM_REPEATS = 5
REPEAT_FRACTIONS = (0.8, 0.1, 0.1)  # train, val, test
VOLUME_BIN_EDGES_ML = (5.0, 10.0, 50.0)  # bins: 0 = no lesion, then < 5, 5-10, 10-50, > 50 ml
GROUP_COLUMNS = {"site": "site", "duplicate": "duplicate_group"}


@dataclass(frozen=True)
class Unit:
    """Cases that must stay together, with the stratum they are sorted by."""

    cases: tuple[str, ...]
    stratum: tuple[int, str]


def volume_bin(volume_ml: float | None) -> int:
    if volume_ml is None or volume_ml <= 0:
        return 0
    return 1 + int(np.searchsorted(VOLUME_BIN_EDGES_ML, volume_ml, side="right"))


def read_cases_csv(path: Path) -> dict[str, dict[str, str]]:
    """{case: row} of ``cases.csv``; a missing ``case`` column, a row with a missing or repeated case, or a
    lesion volume that is not a finite number >= 0 is a UserError naming the file and line."""
    if not path.is_file():
        raise UserError(f"{path} is missing; it is written by `nnunet-stroke convert`. Re-convert the dataset, "
                        "or drop --stratify/--group")
    fix = "re-convert the dataset (`nnunet-stroke convert ... --overwrite`) or repair the file"
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if "case" not in (reader.fieldnames or []):
                raise UserError(f"{path} has no 'case' column (header {reader.fieldnames}); {fix}")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path} is not a readable CSV file ({error}); {fix}") from None
    table: dict[str, dict[str, str]] = {}
    for line, row in enumerate(rows, start=2):
        case, volume = row.get("case"), row.get("lesion_volume_ml")
        if not case or case in table:
            raise UserError(f"{path}, line {line}: {'repeated' if case else 'missing'} case {case or ''!r}; {fix}")
        try:
            valid = volume in ("", None) or (math.isfinite(float(volume)) and float(volume) >= 0)
        except ValueError:
            valid = False
        if not valid:
            raise UserError(f"{path}, line {line}: case {case} has lesion_volume_ml {volume!r}, not a finite "
                            f"number >= 0 (or empty); {fix}")
        table[case] = row
    return table


def make_units(cases: Sequence[str], table: dict[str, dict[str, str]] | None, stratify: bool,
               group_column: str | None) -> list[Unit]:
    """One unit per case, or per value of ``group_column``; stratum = volume bin of the unit's mean volume."""
    def volume(case: str) -> float | None:
        value = (table or {}).get(case, {}).get("lesion_volume_ml", "")
        return float(value) if value not in ("", None) else None

    groups: dict[str, list[str]] = {}
    for case in cases:
        key = case
        if group_column is not None:
            row = table.get(case) if table else None
            if row is None or group_column not in row:
                raise UserError(f"case {case} has no '{group_column}' column in cases.csv; re-convert the dataset "
                                "with a current `nnunet-stroke convert` or drop --group")
            key = f"group:{row[group_column]}" if row[group_column] else case
        groups.setdefault(key, []).append(case)
    units = []
    for members in groups.values():
        stratum = (0, "")
        if stratify:
            volumes = [v for v in (volume(c) for c in members) if v is not None]
            classes = sorted((table or {}).get(c, {}).get("class", "") for c in members)
            stratum = (volume_bin(float(np.mean(volumes)) if volumes else None), max(set(classes), key=classes.count))
        units.append(Unit(tuple(sorted(members)), stratum))
    return sorted(units, key=lambda u: u.cases)


def partition(units: Sequence[Unit], fractions: Sequence[float], rng: np.random.Generator) -> list[list[str]]:
    """Assign units to parts with target ``fractions`` (see the module docstring); returns case lists."""
    order = rng.permutation(len(units))
    strata = sorted({u.stratum for u in units})
    strata_rank = {strata[i]: rank for rank, i in enumerate(rng.permutation(len(strata)))}
    ordered = sorted((units[i] for i in order), key=lambda u: strata_rank[u.stratum])  # stable: shuffled in bin
    targets = np.asarray(fractions, dtype=float)
    parts: list[list[str]] = [[] for _ in fractions]
    assigned = np.zeros(len(fractions))
    for unit in ordered:
        total = assigned.sum() + len(unit.cases)
        deficit = targets * total - assigned
        part = int(np.argmax(deficit + 1e-9 * rng.random(len(fractions))))
        parts[part].extend(unit.cases)
        assigned[part] += len(unit.cases)
    return [sorted(p) for p in parts]


def make_splits(cases: Sequence[str], seed: int = 0, table: dict | None = None, stratify: bool = False,
                group_column: str | None = None) -> tuple[list[dict], dict[str, list[str]]]:
    """(splits_final entries for folds 0-9, held-out test cases of folds 5-9)."""
    if len(cases) < 10:
        raise UserError(f"the dataset has {len(cases)} cases; 5-fold CV and 8:1:1 splits need at least 10")
    units = make_units(cases, table, stratify, group_column)
    folds = partition(units, [1 / NUM_CV_FOLDS] * NUM_CV_FOLDS, np.random.default_rng([seed, 0]))
    splits = [{"train": sorted(c for j, f in enumerate(folds) if j != i for c in f), "val": folds[i]}
              for i in range(NUM_CV_FOLDS)]
    heldout = {}
    for repeat in range(NUM_REPEATS):
        train, val, test = partition(units, REPEAT_FRACTIONS, np.random.default_rng([seed, 1, repeat]))
        if not val or not test:
            raise UserError(f"{len(units)} split units are too few for an 8:1:1 split with non-empty val and test")
        splits.append({"train": train, "val": val})
        heldout[str(NUM_CV_FOLDS + repeat)] = test
    return splits, heldout


def raw_cases(raw_dataset: Path) -> list[str]:
    """Case identifiers of a raw nnU-Net dataset (from labelsTr and dataset.json's file_ending)."""
    dataset_json = raw_dataset / "dataset.json"
    if not dataset_json.is_file():
        raise UserError(f"{dataset_json} is missing; is {raw_dataset} an nnU-Net raw dataset?")
    ending = json.loads(dataset_json.read_text(encoding="utf-8"))["file_ending"]
    cases = sorted(p.name[: -len(ending)] for p in (raw_dataset / "labelsTr").glob(f"*{ending}"))
    if not cases:
        raise UserError(f"no labels in {raw_dataset / 'labelsTr'}; convert the dataset first")
    return cases


def trained_folds(dataset_name: str) -> dict[int, list[Path]]:
    """{fold: [fold folders holding a checkpoint_*.pth]} over every trainer and plans of the dataset's id in
    ``$nnUNet_results`` (none when the variable is unset)."""
    root = os.environ.get("nnUNet_results")
    if not root or not Path(root).is_dir():
        return {}
    found: dict[int, list[Path]] = {}
    for checkpoint in sorted(Path(root).glob(f"{dataset_name.split('_')[0]}_*/*/fold_*/checkpoint_*.pth")):
        fold = checkpoint.parent.name[len("fold_"):]
        if fold.isdigit() and checkpoint.parent not in found.get(int(fold), []):
            found.setdefault(int(fold), []).append(checkpoint.parent)
    return found


def changed_folds(old_splits, old_heldout, splits: list[dict], heldout: dict[str, list[str]]) -> list[int]:
    """Folds whose train, val or held-out test cases differ between the written and the new splits."""
    def fold_cases(all_splits, all_heldout, fold):
        entry = all_splits[fold] if isinstance(all_splits, list) and fold < len(all_splits) else None
        test = all_heldout.get(str(fold)) if isinstance(all_heldout, dict) else None
        return (sorted(entry.get("train", [])), sorted(entry.get("val", [])), sorted(test or [])) \
            if isinstance(entry, dict) else None
    return [fold for fold in range(len(splits))
            if fold_cases(old_splits, old_heldout, fold) != fold_cases(splits, heldout, fold)]


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None  # an unreadable file matches nothing: every trained fold counts as changed


def write_splits(dataset: str | int, seed: int = 0, stratify: str | None = None, group: str | None = None,
                 force: bool = False) -> Path:
    """Write ``splits_final.json`` and ``heldout_test.json`` into the dataset's nnUNet_preprocessed folder.
    Replacing splits that change folds with trained models in ``$nnUNet_results`` needs ``force`` (and
    then the folds whose results no longer match are printed)."""
    name = dataset_name(dataset)
    raw_dataset = nnunet_folder("nnUNet_raw") / name
    cases = raw_cases(raw_dataset)
    table = read_cases_csv(raw_dataset / "cases.csv") if (stratify or group) else None
    splits, heldout = make_splits(cases, seed, table, stratify == "volume", GROUP_COLUMNS[group] if group else None)
    out = nnunet_folder("nnUNet_preprocessed") / name
    trained = trained_folds(name)
    written = _read_json(out / "splits_final.json"), _read_json(out / "heldout_test.json")
    stale = [fold for fold in changed_folds(*written, splits, heldout) if fold in trained]
    listing = "; ".join(f"fold {fold}: {', '.join(str(p) for p in trained[fold])}" for fold in stale)
    if stale and not force:
        raise UserError(f"{out / 'splits_final.json'} would change folds {', '.join(map(str, stale))}, which have "
                        f"trained models ({listing}); their held-out cases would become training cases. Rerun with "
                        f"the options those models were trained with, or pass --force to replace the splits anyway")
    check_writable(out, "$nnUNet_preprocessed dataset folder")
    for filename, content in (("splits_final.json", splits), ("heldout_test.json", heldout)):
        atomic_write_text(out / filename, json.dumps(content, indent=1))
    if stale:
        print(f"warning: the results of folds {', '.join(map(str, stale))} no longer match the new splits "
              f"({listing}); retrain them or keep them out of comparisons", file=sys.stderr)
    return out / "splits_final.json"
