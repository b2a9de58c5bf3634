"""What the ``_Tiny`` schedule's settings do to learning: held-out Dice at a fixed number of epochs.

    python benchmarks/bench_tiny_learning.py --seed 0 [--epochs 14] [--iterations 25]

On the demo's phantom (80 cases in the ISLES 2022 layout, seed S; nnU-Net's plans, 3d_fullres; splits of
seed S), each trainer of ``--trainers`` (default the demo's two) trains fold 5 for exactly ``--epochs`` x
``--iterations`` iterations (no time budget: comparisons at a fixed number of steps, whatever the load)
twice: with the package's ``_Tiny`` settings (``trainers.tiny``: batch size at most 2, AdamW at 3e-3,
cross-entropy class weights annealed to 1) and with the settings before them (nnU-Net's planned batch
size, the trainer's own SGD and learning rate, the rule's class weights throughout). Each run's held-out test cases are predicted with nnU-Net's predictor (no test-time
mirroring, as in the demo) and evaluated with the ISLES'22 protocol. Seconds per iteration are the median
epoch time over the iterations per epoch, so they depend on the load (recorded with every run).
Writes one record per run to ``benchmarks/results/tiny_learning/``; ``python benchmarks/run.py`` renders them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from records import Measurement, load_summary, not_recorded, write_record

RECORD_NAME = "tiny_learning"
DATASET_ID = 961
FOLD = 5
CONFIGURATION = "3d_fullres"
TRAINERS = ("nnUNetTrainerStrokeUNet_Tiny", "nnUNetTrainerLBMNet_Tiny")
SETTINGS = ("package", "before")
NNUNET_INITIAL_LR = 1e-2  # nnUNetTrainer.__init__


def prepare(workdir: Path, cases: int, seed: int) -> Path:
    """Phantom -> nnU-Net raw, plans, preprocessed data and splits in ``workdir``; returns the raw folder."""
    from nnunet_stroke.workflows.demo import point_nnunet_at

    point_nnunet_at(workdir)
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprints, plan_experiments,
                                                                       preprocess)

    from nnunet_stroke.dataset_conversion import isles22
    from nnunet_stroke.phantom import write_phantom
    from nnunet_stroke.splits import write_splits

    cores = os.cpu_count() or 1
    source = write_phantom(workdir / "phantom", "isles22", cases=cases, seed=seed)
    raw = isles22.convert(source, DATASET_ID, name="TinyLearning", overwrite=True, num_processes=cores)
    extract_fingerprints([DATASET_ID], num_processes=cores, check_dataset_integrity=True, clean=True)
    plan_experiments([DATASET_ID])
    preprocess([DATASET_ID], configurations=(CONFIGURATION,), num_processes=(cores,))
    write_splits(DATASET_ID, seed=seed, stratify="volume")
    return raw


def trainer_class(name: str, setting: str) -> type:
    """The package's trainer, or (``before``) a subclass with the planned batch size, the full-size
    trainer's optimiser and learning rate, and constant class weights."""
    import nnunet_stroke.trainers as trainers
    from nnunet_stroke.trainers.tiny import TinyScheduleMixin, cross_entropy_term

    tiny = getattr(trainers, name)
    if setting == "package":
        return tiny

    class Before(tiny):
        def __init__(self, plans, configuration, fold, dataset_json, device):
            super().__init__(plans, configuration, fold, dataset_json, device)
            recipe = getattr(self, "recipe", None)
            planned = plans["configurations"][configuration]["batch_size"]
            self.configuration_manager.configuration["batch_size"] = recipe.batch_size if recipe else planned
            self.initial_lr = recipe.initial_lr if recipe is not None else NNUNET_INITIAL_LR

        def configure_optimizers(self):  # the full-size trainer's (SGD), not the _Tiny variant's AdamW
            return super(TinyScheduleMixin, self).configure_optimizers()

        def on_train_epoch_start(self):
            super().on_train_epoch_start()
            cross_entropy = cross_entropy_term(self.loss)
            if getattr(cross_entropy, "weight", None) is not None:  # the rule's weights, not annealed
                cross_entropy.weight.copy_(self.initial_class_weights)

    Before.__name__ = Before.__qualname__ = name  # nnU-Net's output folder and checkpoint carry the name
    return Before


def train_and_evaluate(raw: Path, workdir: Path, name: str, setting: str) -> dict:
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunet_stroke.evaluation import evaluate_folders
    from nnunet_stroke.workflows.heldout import heldout_cases

    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / raw.name
    plans = load_json(str(preprocessed / "nnUNetPlans.json"))
    plans["continue_training"] = False
    dataset_json = load_json(str(preprocessed / "dataset.json"))
    trainer = trainer_class(name, setting)(plans, CONFIGURATION, FOLD, dataset_json, torch.device("cpu"))
    trainer.run_training()
    logged = trainer.logger.local_logger.my_fantastic_logging
    epoch_seconds = [end - start for start, end in
                     zip(logged["epoch_start_timestamps"], logged["epoch_end_timestamps"])]

    cases = heldout_cases(DATASET_ID, FOLD)
    output = workdir / f"{name}_{setting}"
    shutil.rmtree(output, ignore_errors=True)
    (output / "reference").mkdir(parents=True)
    if trainer.enable_deep_supervision:  # the full-resolution output only, as nnU-Net's own validation does
        trainer.set_deep_supervision_enabled(False)
    trainer.network.eval()
    predictor = nnUNetPredictor(use_mirroring=False, device=torch.device("cpu"), verbose=False, allow_tqdm=False)
    predictor.manual_initialization(trainer.network, trainer.plans_manager, trainer.configuration_manager,
                                    [trainer.network.state_dict()], dataset_json, name,
                                    trainer.inference_allowed_mirroring_axes)
    channels = len(dataset_json["channel_names"])
    predictor.predict_from_files_sequential(
        [[str(raw / "imagesTr" / f"{case}_{c:04d}.nii.gz") for c in range(channels)] for case in cases],
        [str(output / case) for case in cases], save_probabilities=False, overwrite=True,
        folder_with_segs_from_prev_stage=None)
    for case in cases:
        (output / "reference" / f"{case}.nii.gz").symlink_to(raw / "labelsTr" / f"{case}.nii.gz")
    rows = evaluate_folders(output / "reference", output, protocol="isles22", labels=[1], progress=False)["cases"]
    lesion_free = [r for r in rows if not r["ref_volume_ml"]]
    return {
        "trainer": name, "setting": setting, "batch_size": trainer.batch_size,
        "optimizer": type(trainer.optimizer).__name__, "initial_lr": trainer.initial_lr,
        "epochs": trainer.current_epoch, "iterations_per_epoch": trainer.num_iterations_per_epoch,
        "seconds_per_iteration": round(statistics.median(epoch_seconds) / trainer.num_iterations_per_epoch, 3),
        "test_cases": len(rows), "mean_dice": statistics.fmean(r["dice"] for r in rows),
        "mean_dice_lesion_cases": statistics.fmean(r["dice"] for r in rows if r["ref_volume_ml"]),
        "lesion_free_cases": len(lesion_free),
        "lesion_free_with_false_positives": sum(1 for r in lesion_free if r["pred_volume_ml"]),
        "final_pseudo_dice": float(logged["mean_fg_dice"][-1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=14, help="fixed epochs per run (the demo trains about 14 "
                                                                 "epochs of batch size 4 in its budget)")
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--cases", type=int, default=80)
    parser.add_argument("--trainers", nargs="+", default=list(TRAINERS))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    args = parser.parse_args()
    os.environ.update(NNUNET_STROKE_TINY_EPOCHS=str(args.epochs), NNUNET_STROKE_TINY_ITERATIONS=str(args.iterations))
    os.environ.pop("NNUNET_STROKE_TINY_MINUTES", None)
    from nnunet_stroke.workflows.nnunet_env import with_ext_trainer

    with_ext_trainer()
    with tempfile.TemporaryDirectory(prefix="bench_tiny_learning_") as folder:
        workdir = Path(folder)
        raw = prepare(workdir, args.cases, args.seed)
        for name in args.trainers:
            for setting in args.settings:
                import torch

                torch.manual_seed(args.seed)
                with Measurement() as measured:
                    figures = train_and_evaluate(raw, workdir, name, setting)
                figures["cases"] = args.cases
                print(json.dumps(figures))
                print(f"wrote {write_record(RECORD_NAME, figures, seed=args.seed, measurement=measured)}")


def render(records: list[dict]) -> str:
    title = "_Tiny schedule settings: held-out Dice at a fixed number of epochs"
    if not records:
        return not_recorded(title, "python benchmarks/bench_tiny_learning.py --seed 0")
    lines = [f"## {title}", "",
             "Command: `python benchmarks/bench_tiny_learning.py --seed S` (one record per run). Fold 5 of the "
             "demo's phantom; `package` = the `_Tiny` settings of `trainers/tiny.py` at the record's commit "
             "(optimiser and lr as recorded), `before` = nnU-Net's planned batch size and the full-size trainer's "
             "optimiser and learning rate. Same epochs x iterations for both; held-out test cases of the fold, ISLES'22 "
             "Dice (a lesion-free case with any predicted voxel scores 0), no test-time mirroring. s/iteration "
             "depends on the load, sampled during each run.", "",
             "| trainer | setting | seed | batch | optimiser | lr | epochs x iterations | s/iteration | test cases | mean Dice "
             "| Dice (lesion cases) | lesion-free with FP | pseudo Dice | wall s | load | commit |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for record in records:
        f = record["figures"]
        lines.append(
            f"| {f['trainer']} | {f['setting']} | {record['seed']} | {f['batch_size']} | {f.get('optimizer', '-')} | "
            f"{f['initial_lr']:g} | "
            f"{f['epochs']} x {f['iterations_per_epoch']} | {f['seconds_per_iteration']:.2f} | {f['test_cases']} | "
            f"{f['mean_dice']:.3f} | {f['mean_dice_lesion_cases']:.3f} | {f['lesion_free_with_false_positives']}/"
            f"{f['lesion_free_cases']} | {f['final_pseudo_dice']:.3f} | {record['wall_seconds']:.0f} | "
            f"{load_summary(record['load_average_1min'])} | {str(record['git_commit'])[:10]} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
