"""``nnunet-stroke ensemble``: several trained models (any trainers, e.g. LBMNet + nnU-Net's U-Net +
SwinUNETR) predict the same cases and are combined per voxel.

- ``soft`` (nnU-Net's way): every model exports its class probabilities (``--save_probabilities``), and
  nnU-Net's own ``merge_files`` (the per-case step of ``nnUNetv2_ensemble``) averages them (models weighted
  equally, whatever their number of folds) and takes the argmax.
- ``majority`` (DeepISLES: Storm et al. combine the ISLES'22 winners' masks by majority vote): every model
  exports its mask; a voxel gets the label most models gave it; when labels tie, the lower label wins
  (background before lesion), so with an even number of models a lesion voxel needs more than half the votes.

A model is ``RESULTS_FOLDER[:FOLDS]``: a trained model folder (``$nnUNet_results/DatasetXXX_NAME/
<trainer>__<plans>__<configuration>``) and optionally its folds (``0,1,2``; default: every fold with the
checkpoint). Each model's own folds are averaged by its predictor first. ``OUT`` holds one mask per case
and nothing else (built in a hidden staging folder, renamed into place), so ``nnunet-stroke evaluate``
reads it like any prediction folder.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from nnunet_stroke.errors import UserError

VOTES = ("soft", "majority")


@dataclass(frozen=True)
class ModelSpec:
    folder: Path
    folds: tuple | None  # None: every fold with the checkpoint

    @property
    def trainer(self) -> str:
        return self.folder.name.split("__")[0]


def parse_model(text: str) -> ModelSpec:
    """``RESULTS_FOLDER[:FOLDS]`` -> ModelSpec; a missing folder or malformed folds are UserErrors."""
    folder_text, _, folds_text = text.rpartition(":") if ":" in text else (text, "", "")
    folder = Path(folder_text)
    folds = None
    if folds_text:
        try:
            folds = tuple(f if f == "all" else int(f) for f in folds_text.split(","))
        except ValueError:
            raise UserError(f"--models {text}: folds must be comma-separated numbers or 'all', e.g. "
                            f"{folder}:0,1,2") from None
    if not (folder / "plans.json").is_file() or "__" not in folder.name:
        raise UserError(f"--models {text}: {folder} is not a trained nnU-Net model folder (<trainer>__<plans>__"
                        "<configuration> holding plans.json and fold_X/); pass such a folder from $nnUNet_results")
    return ModelSpec(folder, folds)


def model_predictor(folder: Path, folds, device: str, use_mirroring: bool = True,
                    checkpoint: str = "checkpoint_final.pth"):
    """(initialised predictor, kind) for a trained model folder: nnU-Net's predictor, or the package's
    subclass for a trainer with a detection or classification head."""
    import torch

    from nnunet_stroke.inference.classification_predictor import ClassificationPredictor
    from nnunet_stroke.workflows.prediction import (segmentation_predictor, set_device_threads,
                                                    trainer_prediction_kind)

    trainer = Path(folder).name.split("__")[0]
    kind = trainer_prediction_kind(trainer)
    set_device_threads(device)
    if kind == "classification":
        predictor = ClassificationPredictor(use_mirroring=use_mirroring, device=torch.device(device), allow_tqdm=True)
    else:
        predictor = segmentation_predictor(trainer, device, use_mirroring=use_mirroring)
    available = sorted(p.name[len("fold_"):] for p in Path(folder).glob("fold_*") if (p / checkpoint).is_file())
    if not available:
        raise UserError(f"no fold of {folder} has {checkpoint}; train a fold first or pass another model folder")
    missing = [f for f in folds or () if str(f) not in available]
    if missing:
        raise UserError(f"{folder} has no {checkpoint} for fold(s) {missing} (folds with one: "
                        f"{', '.join(available)}); choose other folds")
    use_folds = list(folds) if folds else [f if f == "all" else int(f) for f in available]
    predictor.initialize_from_trained_model_folder(str(folder), use_folds, checkpoint_name=checkpoint)
    return predictor, kind


def majority_vote(masks) -> "numpy.ndarray":
    """Per voxel the label most masks give; ties go to the lower label (see the module docstring)."""
    import numpy as np

    stacked = np.stack([np.asarray(m) for m in masks])
    labels = np.unique(stacked)
    counts = np.stack([(stacked == label).sum(axis=0) for label in labels])
    return labels[np.argmax(counts, axis=0)].astype(stacked.dtype)  # argmax picks the first (lowest) of ties


def _write_soft(folders: list[Path], cases: list[str], predictor, output: Path) -> None:
    """nnU-Net's ``merge_files`` (the per-case step of ``nnUNetv2_ensemble``) over the models' .npz files."""
    from nnunetv2.ensembling.ensemble import merge_files
    from tqdm import tqdm

    writer = predictor.plans_manager.image_reader_writer_class()
    label_manager = predictor.plans_manager.get_label_manager(predictor.dataset_json)
    for case in tqdm(cases, desc="soft vote", unit="case"):
        merge_files([str(folder / f"{case}.npz") for folder in folders], str(output / case),
                    predictor.dataset_json["file_ending"], writer, label_manager, False)


def _write_majority(folders: list[Path], cases: list[str], ending: str, output: Path) -> None:
    import SimpleITK as sitk
    from tqdm import tqdm

    for case in tqdm(cases, desc="majority vote", unit="case"):
        images = [sitk.ReadImage(str(folder / f"{case}{ending}")) for folder in folders]
        vote = sitk.GetImageFromArray(majority_vote(sitk.GetArrayViewFromImage(i) for i in images))
        vote.CopyInformation(images[0])
        sitk.WriteImage(vote, str(output / f"{case}{ending}"), useCompression=True)


def input_cases(folder: Path, ending: str, channels: int) -> tuple[list[str], list[list[str]]]:
    """(case ids, [[channel files] per case]) of an nnU-Net input folder, listed once before any prediction
    (nnU-Net lists a folder with a fork pool, which can hang in a process that has run torch threads)."""
    from nnunetv2.utilities.utils import create_paths_fn, get_identifiers_from_splitted_dataset_folder

    cases = [str(case) for case in get_identifiers_from_splitted_dataset_folder(str(folder), ending)]
    if not cases:
        raise UserError(f"{folder} holds no case files (CASE_0000{ending}); pass nnU-Net's input layout (-i)")
    names = sorted(p.name for p in folder.iterdir())
    inputs = [create_paths_fn(str(folder), names, ending, case) for case in cases]
    for case, files in zip(cases, inputs):
        if len(files) != channels:
            raise UserError(f"case {case} has {len(files)} channel files in {folder}, the models take {channels} "
                            f"({case}_0000{ending} ...); add the missing channels or remove the case")
    return cases, inputs


def run_ensemble(models: list[ModelSpec], input_folder: Path, out: Path, vote: str = "soft", device: str = "cuda",
                 use_mirroring: bool = True, num_processes_preprocessing: int = 0,
                 num_processes_export: int = 0) -> list[str]:
    """Predict ``input_folder`` (CASE_XXXX files) with every model and combine them into ``out``; returns the cases."""
    import json

    from nnunet_stroke.staging import new_staging_folder, staged_folder

    if vote not in VOTES:
        raise UserError(f"unknown --vote {vote!r}; choose soft or majority")
    if len(models) < 2:
        raise UserError("an ensemble needs at least two --models")
    if not Path(input_folder).is_dir():
        raise UserError(f"{input_folder} is not a folder; pass the folder with the cases' CASE_XXXX images (-i)")
    out = Path(out)
    if out.exists():
        raise UserError(f"{out} already exists; remove it or choose another output folder")
    dataset_jsons = [json.loads((m.folder / "dataset.json").read_text(encoding="utf-8")) for m in models]
    if any(d["labels"] != dataset_jsons[0]["labels"] for d in dataset_jsons):
        raise UserError(f"the models' labels differ ({[d['labels'] for d in dataset_jsons]}); ensemble models of "
                        "one label set")
    ending = dataset_jsons[0]["file_ending"]
    cases, inputs = input_cases(Path(input_folder), ending, len(dataset_jsons[0]["channel_names"]))
    scratch = new_staging_folder(out.parent, f"{out.name}.members")
    try:
        folders = []
        for index, model in enumerate(models):
            predictor, kind = model_predictor(model.folder, model.folds, device, use_mirroring=use_mirroring)
            if kind == "classification":
                raise UserError(f"{model.folder} is a classifier; ensemble segmentation models")
            folders.append(scratch / f"model_{index}")
            folders[-1].mkdir()  # nnU-Net's sequential path does not create it
            outputs = [str(folders[-1] / case) for case in cases]
            arguments = dict(save_probabilities=vote == "soft", overwrite=True)
            if num_processes_preprocessing == 0 and num_processes_export == 0:
                predictor.predict_from_files_sequential(inputs, outputs, folder_with_segs_from_prev_stage=None,
                                                        **arguments)
            else:
                predictor.predict_from_files(inputs, outputs,
                                             num_processes_preprocessing=max(1, num_processes_preprocessing),
                                             num_processes_segmentation_export=max(1, num_processes_export),
                                             **arguments)
        with staged_folder(out) as staging:
            if vote == "soft":
                _write_soft(folders, cases, predictor, staging)
            else:
                _write_majority(folders, cases, ending, staging)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return cases
