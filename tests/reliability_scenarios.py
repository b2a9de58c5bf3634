"""The fuzz table: bad inputs and faults, each run through `nnunet-stroke` in a subprocess by
tests/test_reliability_fuzz.py, which also renders this table into docs/reliability.md.

A scenario damages a fresh copy of tiny phantom data (``Workspace``), runs one command and expects either
an error (exit code 2, no traceback, stderr naming every string in ``names``, nothing new in
``$nnUNet_raw``) or success with exactly the right result (``check``). Placeholders in ``argv``:
{isles22}, {atlas2}, {teknofest}, {aisd} (copies of the phantom releases), {ref}, {pred} (the converted
ISLES labels; the predictions are identical copies), {raw}, {work}.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from reliability_damage import (cut_gzip_trailer, flip_x, four_d, garbage, nifti, other_spacing, resource_forks,
                                shift_origin, truncate, uncompressed_truncated, with_value)

CASE = "sub-strokecase0002"
MASK = f"derivatives/{CASE}/ses-0001/{CASE}_ses-0001_msk.nii.gz"
DWI = f"{CASE}/ses-0001/dwi/{CASE}_ses-0001_dwi.nii.gz"
ADC = f"{CASE}/ses-0001/dwi/{CASE}_ses-0001_adc.nii.gz"
FLAIR = f"{CASE}/ses-0001/anat/{CASE}_ses-0001_FLAIR.nii.gz"
ATLAS_CASE = "sub-r001s001"
ATLAS_DIR = f"Training/R001/{ATLAS_CASE}/ses-1/anat"
ATLAS_T1 = f"{ATLAS_DIR}/{ATLAS_CASE}_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz"
ATLAS_MASK = f"{ATLAS_DIR}/{ATLAS_CASE}_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz"
SPLITS_NAME = "Dataset510_Splits"


class Workspace:
    """One scenario's folders: copies of the base data made on demand, empty nnU-Net folders."""

    def __init__(self, root: Path, base: dict[str, Path]):
        self.root, self.base = root, base
        self.raw, self.preprocessed, self.results = (root / "raw", root / "preprocessed", root / "results")
        for folder in (self.raw, self.preprocessed, self.results):
            folder.mkdir(parents=True)
        self.env: dict[str, str | None] = {"nnUNet_raw": str(self.raw), "nnUNet_preprocessed": str(self.preprocessed),
                                           "nnUNet_results": str(self.results)}
        self._copies: dict[str, Path] = {}

    def __getitem__(self, key: str) -> Path:
        if key in ("raw", "work"):
            return self.raw if key == "raw" else self.root
        if key not in self._copies:
            self._copies[key] = self.root / key
            shutil.copytree(self.base[key], self._copies[key])
        return self._copies[key]

    def fill(self, text: str) -> str:
        for key in ("isles22", "atlas2", "teknofest", "aisd", "ref", "pred", "raw", "work"):
            if "{" + key + "}" in text:
                text = text.replace("{" + key + "}", str(self[key]))
        return text


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str                                  # what the user did or what went wrong
    argv: tuple[str, ...]
    expect: str                                 # "error" or "ok"
    names: tuple[str, ...] = ()                 # error: strings stderr must contain (case, file)
    outcome: str = ""                           # ok: the exact result that is checked
    prepare: Callable[[Workspace], None] | None = None
    check: Callable[[Workspace, subprocess.CompletedProcess], None] | None = None
    environment: dict = field(default_factory=dict)  # value None: the variable is unset


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def fake_splits_dataset(ws: Workspace, trained_fold: int | None) -> None:
    raw = ws.raw / SPLITS_NAME
    (raw / "labelsTr").mkdir(parents=True)
    (raw / "dataset.json").write_text(json.dumps({"file_ending": ".nii.gz"}), encoding="utf-8")
    for i in range(12):
        (raw / "labelsTr" / f"case{i:02d}.nii.gz").touch()
    (raw / "cases.csv").write_text("case,lesion_volume_ml\n" + "".join(f"case{i:02d},{i}\n" for i in range(12)),
                                   encoding="utf-8")
    subprocess.run([sys.executable, "-m", "nnunet_stroke.cli", "splits", "510", "--seed", "0"], check=True,
                   env={**os.environ, **ws.env}, capture_output=True)
    if trained_fold is not None:
        fold = ws.results / SPLITS_NAME / "nnUNetTrainerX__nnUNetPlans__3d_fullres" / f"fold_{trained_fold}"
        fold.mkdir(parents=True)
        (fold / "checkpoint_final.pth").touch()


# ------------------------------------------------------------------------------------------ checks
def _cases_csv(folder: Path) -> str:
    return (folder / "cases.csv").read_text(encoding="utf-8")


def same_as_clean_conversion(ws: Workspace, result) -> None:
    converted = ws.raw / "Dataset501_ISLES22"
    assert _cases_csv(converted) == _cases_csv(ws.base["converted"])
    assert sorted(p.name for p in converted.rglob("*")) == sorted(p.name for p in ws.base["converted"].rglob("*"))


def label_is_3d_and_equal(ws: Workspace, result) -> None:
    same_as_clean_conversion(ws, result)
    label = nifti(ws.raw / "Dataset501_ISLES22" / "labelsTr" / f"{CASE}.nii.gz")
    clean = nifti(ws.base["converted"] / "labelsTr" / f"{CASE}.nii.gz")
    assert label.ndim == 3 and np.array_equal(np.asanyarray(label.dataobj), np.asanyarray(clean.dataobj))


def atlas_image_is_3d(ws: Workspace, result) -> None:
    image = nifti(ws.raw / "Dataset502_ATLAS2" / "imagesTr" / f"{ATLAS_CASE}_0000.nii.gz")
    source = np.asanyarray(nifti(ws.base["atlas2"] / ATLAS_T1).dataobj)
    assert image.ndim == 3 and np.array_equal(np.asanyarray(image.dataobj), source)


def stale_staging_removed(ws: Workspace, result) -> None:
    same_as_clean_conversion(ws, result)
    assert sorted(p.name for p in ws.raw.iterdir()) == ["Dataset501_ISLES22"]


def stale_preprocessed_removed(ws: Workspace, result) -> None:
    assert not (ws.preprocessed / "Dataset501_ISLES22").exists()
    assert "removed" in result.stdout and "preprocessed" in result.stdout
    assert len(list((ws.raw / "Dataset501_ISLES22" / "labelsTr").iterdir())) == 2


def perfect_dice(ws: Workspace, result) -> None:
    metrics = json.loads((ws.root / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n_cases"] == 3 and [c["dice"] for c in metrics["cases"]] == [1.0, 1.0, 1.0]
    assert oct((ws.root / "metrics.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def forced_splits(ws: Workspace, result) -> None:
    from nnunet_stroke.splits import make_splits

    written = json.loads((ws.preprocessed / SPLITS_NAME / "splits_final.json").read_text(encoding="utf-8"))
    assert written == make_splits([f"case{i:02d}" for i in range(12)], seed=1)[0]
    assert "results of folds 6 no longer match" in result.stderr


def quiet_broken_pipe(ws: Workspace, result) -> None:
    assert result.returncode == 141 and result.stderr == ""


def quiet_help(ws: Workspace, result) -> None:
    assert result.returncode in (0, 141) and result.stderr == ""  # argparse itself ignores write errors


# --------------------------------------------------------------------------------------- the table
def _at(key: str, relative: str, damage: Callable, *args) -> Callable[[Workspace], None]:
    return lambda ws: damage(ws[key] / relative, *args)


CONVERT_ISLES = ("convert", "isles22", "{isles22}", "--dataset-id", "501", "-np", "1")
CONVERT_ATLAS = ("convert", "atlas2", "{atlas2}", "--dataset-id", "502", "-np", "1")
EVALUATE = ("evaluate", "--ref", "{ref}", "--pred", "{pred}", "--out", "{work}/metrics.json", "-np", "1")
PRED = f"{CASE}.nii.gz"

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("isles-mask-truncated", "lesion mask .nii.gz cut short (download interrupted)", CONVERT_ISLES, "error",
             (CASE, MASK.split("/")[-1], "truncated"), prepare=_at("isles22", MASK, truncate)),
    Scenario("isles-mask-trailer", "mask .nii.gz missing its gzip trailer (CRC)", CONVERT_ISLES, "error",
             (CASE, MASK.split("/")[-1]), prepare=_at("isles22", MASK, cut_gzip_trailer)),
    Scenario("isles-dwi-truncated", "DWI .nii.gz cut short", CONVERT_ISLES, "error", (CASE, DWI.split("/")[-1]),
             prepare=_at("isles22", DWI, truncate)),
    Scenario("isles-adc-nii-truncated", "uncompressed ADC .nii cut short", CONVERT_ISLES, "error",
             (CASE, ADC.split("/")[-1][:-3]), prepare=_at("isles22", ADC, uncompressed_truncated)),
    Scenario("isles-mask-garbage", "mask file holds random bytes", CONVERT_ISLES, "error", (CASE, MASK.split("/")[-1]),
             prepare=_at("isles22", MASK, garbage)),
    Scenario("isles-mask-value-2", "mask holds the value 2", CONVERT_ISLES, "error", (CASE, "not a binary"),
             prepare=_at("isles22", MASK, with_value, 2.0)),
    Scenario("isles-mask-nan", "float mask with a NaN voxel", CONVERT_ISLES, "error", (CASE, "NaN"),
             prepare=_at("isles22", MASK, with_value, float("nan"))),
    Scenario("isles-dwi-inf", "DWI with an infinite voxel", CONVERT_ISLES, "error",
             (CASE, DWI.split("/")[-1], "NaN/inf"),
             prepare=_at("isles22", DWI, with_value, float("inf"))),
    Scenario("isles-mask-other-grid", "mask on another voxel grid than the DWI", CONVERT_ISLES, "error",
             (CASE, MASK.split("/")[-1], "spacing"), prepare=_at("isles22", MASK, other_spacing)),
    Scenario("isles-mask-4d-singleton", "mask stored 4-D with a singleton 4th axis", CONVERT_ISLES, "ok",
             outcome="label written 3-D, equal to the clean conversion; cases.csv identical",
             prepare=_at("isles22", MASK, four_d, 1), check=label_is_3d_and_equal),
    Scenario("isles-dwi-4d-two-volumes", "DWI with two volumes along a 4th axis", CONVERT_ISLES, "error",
             (CASE, DWI.split("/")[-1]), prepare=_at("isles22", DWI, four_d, 2)),
    Scenario("isles-resource-forks", "macOS ._* files next to every file", CONVERT_ISLES, "ok",
             outcome="same files and cases.csv as the clean conversion",
             prepare=lambda ws: resource_forks(ws["isles22"]), check=same_as_clean_conversion),
    Scenario("isles-adc-missing", "a case without its ADC", CONVERT_ISLES, "error", (CASE, "no ADC"),
             prepare=lambda ws: (ws["isles22"] / ADC).unlink()),
    Scenario("isles-dwi-duplicate", "two DWI files in one case", CONVERT_ISLES, "error", (CASE, "several DWI"),
             prepare=lambda ws: shutil.copy(ws["isles22"] / DWI, ws["isles22"] / DWI.replace("_dwi", "_run-2_dwi"))),
    Scenario("isles-orphan-mask", "a mask folder without images", CONVERT_ISLES, "error", ("sub-strokecase0099",),
             prepare=lambda ws: shutil.copytree(ws["isles22"] / f"derivatives/{CASE}",
                                                ws["isles22"] / "derivatives/sub-strokecase0099")),
    Scenario("isles-flair-truncated", "FLAIR cut short, converted --with-flair", (*CONVERT_ISLES, "--with-flair"),
             "error", (CASE, FLAIR.split("/")[-1]), prepare=_at("isles22", FLAIR, truncate)),
    Scenario("convert-src-missing", "SRC does not exist",
             ("convert", "isles22", "{work}/nowhere", "--dataset-id", "501"), "error", ("nowhere",)),
    Scenario("convert-id-taken", "dataset id already taken, no --overwrite", CONVERT_ISLES, "error",
             ("Dataset501_Old", "--overwrite"), prepare=lambda ws: (ws.raw / "Dataset501_Old").mkdir()),
    Scenario("convert-id-zero", "--dataset-id 0", ("convert", "isles22", "{isles22}", "--dataset-id", "0"), "error",
             ("dataset id 0",)),
    Scenario("convert-np-negative", "-np -3", (*CONVERT_ISLES[:-1], "-3"), "error", ("-np", "-3")),
    Scenario("convert-stale-staging", "staging folder of a conversion killed by SIGKILL", CONVERT_ISLES, "ok",
             outcome="stale folder removed; dataset identical to the clean conversion",
             prepare=lambda ws: (ws.raw / f".converting_Dataset501.{os.uname().nodename.replace('.', '-')}."
                                 f"{dead_pid()}.1.abc").mkdir(), check=stale_staging_removed),
    Scenario("convert-overwrite-other-cases", "convert --overwrite with other cases over a preprocessed dataset",
             (*CONVERT_ISLES, "--overwrite"), "ok",
             outcome="old preprocessed data and splits removed, said on stdout",
             prepare=lambda ws: (shutil.copytree(ws.base["converted"], ws.raw / "Dataset501_ISLES22"),
                                 (ws.preprocessed / "Dataset501_ISLES22").mkdir(),
                                 (ws.preprocessed / "Dataset501_ISLES22" / "splits_final.json").write_text("[]"),
                                 shutil.rmtree(ws["isles22"] / "sub-strokecase0003"),
                                 shutil.rmtree(ws["isles22"] / "derivatives/sub-strokecase0003")),
             check=stale_preprocessed_removed),
    Scenario("convert-raw-unset", "nnUNet_raw not set", CONVERT_ISLES, "error", ("nnUNet_raw",),
             environment={"nnUNet_raw": None}),
    Scenario("convert-raw-not-folder", "nnUNet_raw names a missing folder", CONVERT_ISLES, "error",
             ("nnUNet_raw=", "missing"), environment={"nnUNet_raw": "{work}/missing"}),
    Scenario("convert-raw-read-only", "nnUNet_raw read-only", CONVERT_ISLES, "error", ("cannot write into /sys",),
             environment={"nnUNet_raw": "/sys"}),
    Scenario("atlas-mask-truncated", "ATLAS lesion mask cut short", CONVERT_ATLAS, "error",
             (ATLAS_CASE, ATLAS_MASK.split("/")[-1]), prepare=_at("atlas2", ATLAS_MASK, truncate)),
    Scenario("atlas-t1-4d-singleton", "ATLAS T1w stored 4-D with a singleton axis", CONVERT_ATLAS, "ok",
             outcome="image written 3-D with the source voxels", prepare=_at("atlas2", ATLAS_T1, four_d, 1),
             check=atlas_image_is_3d),
    Scenario("teknofest-png-truncated", "TEKNOFEST PNG slice cut short",
             ("convert", "teknofest", "{teknofest}", "--dataset-id", "503", "-np", "1"), "error",
             ("Ischemia_10001", "10001.png"),
             prepare=_at("teknofest", "Ischemia/PNG/10001.png", truncate, 0.5)),
    Scenario("aisd-dicom-truncated", "AISD DICOM slice cut short",
             ("convert", "aisd", "{aisd}", "--dataset-id", "504", "-np", "1"), "error", ("0073401", "IM0005.dcm"),
             prepare=_at("aisd", "dicom/dicom-0/0073401/CT/IM0005.dcm", truncate, 0.95)),
    Scenario("evaluate-pred-truncated", "prediction .nii.gz cut short", EVALUATE, "error", (CASE, PRED),
             prepare=_at("pred", PRED, truncate)),
    Scenario("evaluate-pred-garbage", "prediction file holds random bytes", EVALUATE, "error", (CASE, PRED),
             prepare=_at("pred", PRED, garbage)),
    Scenario("evaluate-pred-flipped", "prediction stored in another orientation", EVALUATE, "error",
             (CASE, PRED, "direction"), prepare=_at("pred", PRED, flip_x)),
    Scenario("evaluate-pred-flipped-resampled", "the same, with --resample-to-reference",
             (*EVALUATE, "--resample-to-reference"), "ok", outcome="Dice exactly 1.0 for every case; metrics.json "
             "with the umask's permissions", prepare=_at("pred", PRED, flip_x), check=perfect_dice),
    Scenario("evaluate-pred-origin", "prediction shifted by 5 mm (origin)", EVALUATE, "error", (CASE, PRED, "origin"),
             prepare=_at("pred", PRED, shift_origin)),
    Scenario("evaluate-pred-missing", "a prediction is missing", EVALUATE, "error", (CASE, "--allow-missing"),
             prepare=lambda ws: (ws["pred"] / PRED).unlink()),
    Scenario("evaluate-resource-forks", "macOS ._* files among references and predictions", EVALUATE, "ok",
             outcome="3 cases, Dice 1.0 each",
             prepare=lambda ws: (resource_forks(ws["ref"]), resource_forks(ws["pred"])),
             check=perfect_dice),
    Scenario("evaluate-out-unwritable", "--out inside a file, not a folder",
             (*EVALUATE[:-3], "{work}/file/metrics.json", "-np", "1"), "error", ("cannot write into", "file"),
             prepare=lambda ws: (ws.root / "file").write_text("x")),
    Scenario("evaluate-np-zero", "-np 0", (*EVALUATE[:-1], "0"), "error", ("-np", "'0'")),
    Scenario("report-out-inside-file", "report --out inside a file, not a folder",
             ("report", "{work}/metrics.json", "--out", "{work}/file/report"), "error", ("file", "not a folder"),
             prepare=lambda ws: ((ws.root / "file").write_text("x"), (ws.root / "metrics.json").write_text(
                 json.dumps({"protocol": "isles22", "cases": [], "aggregate": {}})))),
    Scenario("report-metrics-garbage", "report of a metrics.json that is not JSON",
             ("report", "{work}/metrics.json", "--out", "{work}/report"), "error", ("metrics.json",),
             prepare=lambda ws: (ws.root / "metrics.json").write_text("{not json")),
    Scenario("splits-trained-folds", "splits rerun with another seed over a trained fold",
             ("splits", "510", "--seed", "1"), "error", ("fold_6", "--force"),
             prepare=lambda ws: fake_splits_dataset(ws, 6)),
    Scenario("splits-trained-folds-forced", "the same with --force", ("splits", "510", "--seed", "1", "--force"),
             "ok", outcome="new splits written; the fold whose results no longer match is named",
             prepare=lambda ws: fake_splits_dataset(ws, 6), check=forced_splits),
    Scenario("splits-cases-csv-malformed", "cases.csv without a case column", ("splits", "510", "--stratify", "volume"),
             "error", ("cases.csv", "no 'case' column"),
             prepare=lambda ws: (fake_splits_dataset(ws, None),
                                 (ws.raw / SPLITS_NAME / "cases.csv").write_text("id,lesion_volume_ml\nx,1\n"))),
    Scenario("splits-unknown-dataset", "unknown dataset id", ("splits", "599"), "error", ("599",)),
    Scenario("splits-preprocessed-unset", "nnUNet_preprocessed not set", ("splits", "510"), "error",
             ("nnUNet_preprocessed is not set",), environment={"nnUNet_preprocessed": None}),
    Scenario("predict-heldout-unknown-dataset", "predict-heldout with an unknown dataset id",
             ("predict-heldout", "598", "-f", "5"), "error", ("598",)),
    Scenario("train-preprocessed-unset", "nnUNet_preprocessed not set for train", ("train", "510", "3d_fullres", "0"),
             "error", ("nnUNet_preprocessed is not set",), environment={"nnUNet_preprocessed": None}),
    Scenario("predict-results-unset", "nnUNet_results not set for predict",
             ("predict", "-i", "{work}", "-o", "{work}/out", "-d", "510", "-c", "3d_fullres"), "error",
             ("nnUNet_results is not set",), environment={"nnUNet_results": None}),
    Scenario("demo-minutes-nan", "demo --minutes nan", ("demo", "--minutes", "nan"), "error", ("--minutes", "nan")),
    Scenario("phantom-cases-negative", "phantom --cases -1", ("phantom", "{work}/ph", "--cases", "-1"), "error",
             ("--cases", "-1")),
    Scenario("trainers-closed-pipe", "stdout closed by its reader (`nnunet-stroke trainers | head -1`)",
             ("trainers",), "pipe", outcome="exit 141, nothing on stderr", check=quiet_broken_pipe),
    Scenario("help-closed-pipe", "stdout closed by its reader (`nnunet-stroke --help | head -1`)",
             ("--help",), "pipe", outcome="exit 0 or 141, nothing on stderr", check=quiet_help),
)


def render_markdown(scenarios=SCENARIOS) -> str:
    """docs/reliability.md: the table above, as the fuzz test runs it."""
    errors = sum(s.expect == "error" for s in scenarios)
    lines = ["# Reliability: bad inputs and faults", "",
             "Generated from `tests/reliability_scenarios.py` by `tests/test_reliability_fuzz.py` (regenerate with "
             "`NNUNET_STROKE_WRITE_DOCS=1 python -m pytest tests/test_reliability_fuzz.py`); a test fails when this "
             "file and the table differ. Every scenario runs `nnunet-stroke` in a subprocess on tiny phantom data "
             "and passes only with the outcome below.", "",
             f"{len(scenarios)} scenarios: {errors} must fail with exit code 2, no traceback, a message naming "
             "the strings in the last column (case, file, option) and nothing new in `$nnUNet_raw`; the others "
             "must succeed with exactly the result described.", "",
             "| # | Scenario | Fault | Command | Expected |", "|---|---|---|---|---|"]
    for index, scenario in enumerate(scenarios, start=1):
        command = "nnunet-stroke " + " ".join(scenario.argv)
        if scenario.expect == "error":
            expected = "error naming " + ", ".join(f"`{n}`" for n in scenario.names)
        else:
            expected = scenario.outcome
        environment = "".join(f" ({k} {'unset' if v is None else '=' + v})" for k, v in scenario.environment.items())
        lines.append(f"| {index} | `{scenario.name}` | {scenario.fault}{environment} | `{command}` | {expected} |")
    return "\n".join(lines) + "\n"
