"""Helpers for tests that plan, train and predict with nnU-Net in-process on the phantom."""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

PHANTOM_DATASET_ID = 990
PHANTOM_CASES = 12
PHANTOM_SHAPE = (24, 32, 32)
CONFIGURATION = "3d_fullres"


@dataclass(frozen=True)
class PlannedDataset:
    dataset_id: int
    name: str
    raw: Path
    preprocessed: Path
    source: Path

    @property
    def plans(self) -> dict:
        return json.loads((self.preprocessed / "nnUNetPlans.json").read_text(encoding="utf-8"))

    @property
    def dataset_json(self) -> dict:
        return json.loads((self.raw / "dataset.json").read_text(encoding="utf-8"))

    @property
    def heldout(self) -> dict[str, list[str]]:
        return json.loads((self.preprocessed / "heldout_test.json").read_text(encoding="utf-8"))


def plan_phantom(source_root: Path, dataset_id: int, cases: int = PHANTOM_CASES, shape=PHANTOM_SHAPE) -> PlannedDataset:
    """Phantom -> ISLES converter -> stock ``nnUNetv2_plan_and_preprocess --verify_dataset_integrity``
    (3d_fullres) -> splits."""
    from nnunet_stroke.dataset_conversion import isles22
    from nnunet_stroke.phantom import write_phantom
    from nnunet_stroke.splits import write_splits

    source = write_phantom(source_root, "isles22", cases=cases, seed=0, shape=shape)
    raw = isles22.convert(source, dataset_id, num_processes=1)
    plan = subprocess.run(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", CONFIGURATION,
                           "--verify_dataset_integrity", "-np", "1", "-npfp", "1"], capture_output=True, text=True, encoding="utf-8", errors="replace",
                          env={**os.environ, "nnUNet_n_proc_DA": "1"})  # the planner sets torch threads from it
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    write_splits(dataset_id, seed=0)
    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / raw.name
    return PlannedDataset(dataset_id, raw.name, raw, preprocessed, source)


def make_trainer(trainer_class, planned: PlannedDataset, fold: int = 5, configuration: str = CONFIGURATION,
                 plans: dict | None = None):
    plans = dict(plans or planned.plans)
    plans["continue_training"] = False
    return trainer_class(plans=plans, configuration=configuration, fold=fold, dataset_json=planned.dataset_json,
                         device=torch.device("cpu"))


def train_in_process(trainer_class, planned: PlannedDataset, fold: int = 5, iterations: int = 2,
                     configuration: str = CONFIGURATION, plans: dict | None = None):
    """Train ``iterations`` iterations (one epoch, one validation iteration) and save the final checkpoint."""
    trainer = make_trainer(trainer_class, planned, fold, configuration, plans)
    trainer.num_epochs = 1
    trainer.num_iterations_per_epoch = iterations
    trainer.num_val_iterations_per_epoch = 1
    trainer.run_training()
    return trainer


def predict_in_process(trainer, planned: PlannedDataset, cases: list[str], output: Path) -> Path:
    """Predict ``cases`` of imagesTr with nnU-Net's predictor from the trainer's final checkpoint
    (the trainer class is found by name, as the stock ``nnUNetv2_predict`` does)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                device=torch.device("cpu"), verbose=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(Path(trainer.output_folder).parent),
                                                   use_folds=(trainer.fold,), checkpoint_name="checkpoint_final.pth")
    channels = len(planned.dataset_json["channel_names"])
    inputs = [[str(planned.raw / "imagesTr" / f"{case}_{c:04d}.nii.gz") for c in range(channels)] for case in cases]
    predictor.predict_from_files_sequential(inputs, [str(output / case) for case in cases], save_probabilities=False,
                                            overwrite=True, folder_with_segs_from_prev_stage=None)
    return output


def stock_env() -> dict:
    """The environment for the stock commands: the test session's folders and a two-iteration _Tiny schedule."""
    return dict(os.environ, NNUNET_STROKE_TINY_EPOCHS="1", NNUNET_STROKE_TINY_ITERATIONS="2")


def run_stock(command: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a stock nnU-Net command; fail the test with the tail of its output when it fails."""
    done = subprocess.run(command, env=env or stock_env(), capture_output=True, text=True, encoding="utf-8",
                          errors="replace")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def stock_train(planned: PlannedDataset, trainer: str, fold: str) -> subprocess.CompletedProcess:
    return run_stock(["nnUNetv2_train", str(planned.dataset_id), CONFIGURATION, fold, "-tr", trainer, "-device", "cpu"])


def stock_predict(planned: PlannedDataset, trainer: str, fold: str, cases: list[str], tmp_path: Path) -> Path:
    """``nnUNetv2_predict`` on copies of ``cases`` from imagesTr; returns the output folder."""
    import shutil

    inputs, output = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for case in cases:
        for image in planned.raw.joinpath("imagesTr").glob(f"{case}_*.nii.gz"):
            shutil.copy(image, inputs / image.name)
    run_stock(["nnUNetv2_predict", "-i", str(inputs), "-o", str(output), "-d", str(planned.dataset_id), "-c",
               CONFIGURATION, "-f", fold, "-tr", trainer, "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1"])
    return output
