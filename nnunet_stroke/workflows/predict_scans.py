"""``nnunet-stroke predict-scans``: new, unlabelled scans in a release's own layout -> one lesion mask per
case in the source image's geometry, ``volumes.csv``, and the detection/classification head's JSON.

1. The layout's converter finds the cases (``dataset_conversion.isles22`` / ``atlas2``, masks not looked
   for) and checks and stages each one exactly as ``nnunet-stroke convert`` does (same readers, same
   validation, same errors), as ``CASE_XXXX.nii.gz`` on the grid of the case's first channel (DWI for
   ISLES'22, T1w for ATLAS). A case that fails is reported by name with the reason; the others go on.
2. nnU-Net's predictor (or the package's subclass for a detection or classification head) predicts the
   staged cases with the chosen folds. nnU-Net writes each mask with the spacing, origin and direction of
   the staged first channel, i.e. of the source image.
3. ``OUT/<case>.nii.gz`` (the source's case id), ``volumes.csv`` (``case, lesion_volume_ml,
   lesion_count``; lesions counted as the layout's challenge counts them: 26-connected for ISLES'22,
   6-connected for ATLAS) and ``detection.json`` / ``classification.json`` for those heads. ``OUT`` is built
   in a hidden staging folder and renamed into place: it holds nothing else and never half a result.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from nnunet_stroke.errors import UserError

VOLUME_COLUMNS = ("case", "lesion_volume_ml", "lesion_count")
VOLUMES_FILE = "volumes.csv"
HEAD_FILES = ("detection.json", "classification.json")


@dataclass(frozen=True)
class ScanLayout:
    """How one release's unlabelled cases are found and staged (the converter's own functions)."""

    find: Callable[[Path, int], list]           # (source root, channels) -> the converter's case records
    job: Callable[[object, str, int], tuple]    # (case record, staging folder, channels) -> convert_case job
    convert_case: Callable[[tuple], object]
    channels: tuple[int, ...]                   # numbers of input channels the layout can provide
    lesion_connectivity: int


def _isles22() -> ScanLayout:
    from nnunet_stroke.dataset_conversion import isles22

    return ScanLayout(find=lambda src, channels: isles22.find_cases(src, with_flair=channels == 3, with_masks=False),
                      job=lambda case, folder, channels: (case, folder, None, channels == 3),
                      convert_case=isles22.convert_case, channels=(2, 3),
                      lesion_connectivity=isles22.LESION_CONNECTIVITY)


def _atlas2() -> ScanLayout:
    from nnunet_stroke.dataset_conversion import atlas2

    def find(src: Path, channels: int) -> list:
        training, testing = atlas2.find_cases(src, with_masks=False)
        return training + testing

    return ScanLayout(find=find, job=lambda case, folder, channels: (case, folder, None),
                      convert_case=atlas2.convert_case, channels=(1,), lesion_connectivity=atlas2.LESION_CONNECTIVITY)


LAYOUTS: dict[str, Callable[[], ScanLayout]] = {"isles22": _isles22, "isles22-github": _isles22, "atlas2": _atlas2}


@dataclass
class ScanReport:
    """What a run did: predicted case ids and {case: reason} for the cases that could not be read."""

    predicted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def scan_layout(name: str, channels: int) -> ScanLayout:
    if name not in LAYOUTS:
        raise UserError(f"unknown --layout {name!r}; choose one of {', '.join(LAYOUTS)}")
    layout = LAYOUTS[name]()
    if channels not in layout.channels:
        raise UserError(f"the model takes {channels} input channels, but --layout {name} provides "
                        f"{' or '.join(map(str, layout.channels))}; use the layout of the data the model was "
                        "trained on")
    return layout


def stage_cases(src: Path, layout: ScanLayout, channels: int, folder: Path, report: ScanReport) -> list[str]:
    """Check and stage every case of ``src`` into ``folder`` (CASE_XXXX.nii.gz); returns the staged case ids
    and records the others in ``report.failed``."""
    from tqdm import tqdm

    cases = layout.find(Path(src), channels)
    staged = []
    for case in tqdm(cases, desc="reading scans", unit="case"):
        try:
            layout.convert_case(layout.job(case, str(folder), channels))
            staged.append(case.case)
        except (UserError, OSError, RuntimeError) as error:  # the converter's errors name the case and file
            for partial in folder.glob(f"{case.case}_*"):
                partial.unlink()
            report.failed[case.case] = str(error)
    return staged


def predict_staged(predictor, kind: str, folder: Path, cases: list[str], channels: int, work: Path,
                   num_processes_preprocessing: int, num_processes_export: int) -> None:
    """Predict the staged cases into ``work`` (nnU-Net also writes its run's json files there)."""
    inputs = [[str(folder / f"{case}_{c:04d}.nii.gz") for c in range(channels)] for case in cases]
    if kind == "classification":
        predictor.classify_files(inputs, work, num_processes_preprocessing=num_processes_preprocessing)
    elif num_processes_preprocessing == 0 and num_processes_export == 0:
        predictor.predict_from_files_sequential(inputs, str(work), save_probabilities=False, overwrite=True,
                                                folder_with_segs_from_prev_stage=None)
    else:
        predictor.predict_from_files(inputs, str(work), save_probabilities=False, overwrite=True,
                                     num_processes_preprocessing=max(1, num_processes_preprocessing),
                                     num_processes_segmentation_export=max(1, num_processes_export))


def lesion_volumes(masks: list[Path], connectivity: int) -> list:
    """One ``volumes.csv`` row per mask: lesion volume in ml and connected lesions (the converters' count)."""
    import SimpleITK as sitk

    from nnunet_stroke.dataset_conversion.common import lesion_record

    records = []
    for mask in masks:
        image = sitk.ReadImage(str(mask))
        case = mask.name[:-len(".nii.gz")]
        records.append(lesion_record(case, sitk.GetArrayViewFromImage(image) > 0, image.GetSpacing()[::-1],
                                     connectivity))
    return records


def predict_scans(src: Path, out: Path, predictor, kind: str, layout_name: str = "isles22",
                  num_processes_preprocessing: int = 0, num_processes_export: int = 0) -> ScanReport:
    """Stage, predict and write ``out`` (see the module docstring) with an initialised ``predictor`` of
    ``kind`` ("segmentation", "detection" or "classification"); returns what was predicted and what failed."""
    from nnunet_stroke.dataset_conversion.common import write_cases_csv
    from nnunet_stroke.staging import new_staging_folder, staged_folder

    out = Path(out)
    if out.exists():
        raise UserError(f"{out} already exists; remove it or choose another output folder")
    channels = len(predictor.dataset_json["channel_names"])
    layout = scan_layout(layout_name, channels)
    report = ScanReport()
    scratch = new_staging_folder(out.parent, f"{out.name}.inputs")
    try:
        inputs, work = scratch / "images", scratch / "predictions"
        inputs.mkdir()
        work.mkdir()
        staged = stage_cases(Path(src), layout, channels, inputs, report)
        if not staged:
            raise UserError(f"no case of {src} could be read ({len(report.failed)} failed); "
                            + "; ".join(report.failed.values()))
        predict_staged(predictor, kind, inputs, staged, channels, work, num_processes_preprocessing,
                       num_processes_export)
        with staged_folder(out) as staging:
            masks = [work / f"{case}.nii.gz" for case in staged] if kind != "classification" else []
            for mask in masks:
                shutil.move(str(mask), staging / mask.name)
            if masks:
                write_cases_csv(staging / VOLUMES_FILE, lesion_volumes([staging / m.name for m in masks],
                                                                       layout.lesion_connectivity), VOLUME_COLUMNS)
            for head_file in HEAD_FILES:
                if (work / head_file).is_file():
                    shutil.move(str(work / head_file), staging / head_file)
        report.predicted = staged
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def run_predict_scans(src: Path, out: Path, dataset: str, configuration: str, trainer: str,
                      plans: str = "nnUNetPlans", folds: list | None = None, layout: str = "isles22",
                      device: str = "cuda", use_mirroring: bool = True, checkpoint: str = "checkpoint_final.pth",
                      num_processes_preprocessing: int = 0, num_processes_export: int = 0) -> int:
    """``nnunet-stroke predict-scans``: the trained model's predictor on ``src``; exit code 1 when a case failed."""
    from nnunet_stroke.workflows.ensemble import model_predictor

    model = trained_model_folder(dataset, trainer, plans, configuration)
    predictor, kind = model_predictor(model, folds, device, use_mirroring=use_mirroring, checkpoint=checkpoint)
    report = predict_scans(src, out, predictor, kind, layout, num_processes_preprocessing, num_processes_export)
    print(f"predicted {len(report.predicted)} cases into {out}")
    for case, reason in report.failed.items():
        print(f"nnunet-stroke predict-scans: case {case} was not predicted: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


def trained_model_folder(dataset: str, trainer: str, plans: str, configuration: str) -> Path:
    """``$nnUNet_results/DatasetXXX/<trainer>__<plans>__<configuration>``; a UserError when it is missing."""
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    from nnunet_stroke.nnunet_folders import nnunet_folder

    nnunet_folder("nnUNet_results")
    try:
        folder = Path(get_output_folder(dataset, trainer, plans, configuration))
    except RuntimeError as error:
        raise UserError(f"unknown dataset {dataset!r} ({str(error).strip().splitlines()[0]}); check -d and "
                        "$nnUNet_raw / $nnUNet_results") from None
    if not folder.is_dir():
        raise UserError(f"no trained model in {folder}: train {trainer} ({configuration}, plans {plans}) first or "
                        "install one (nnUNetv2_install_pretrained_model_from_zip)")
    return folder
