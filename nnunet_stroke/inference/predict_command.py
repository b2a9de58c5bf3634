"""``nnunet-stroke predict``: the arguments of ``nnUNetv2_predict``; networks with a detection head are
predicted with :class:`~nnunet_stroke.inference.detection_predictor.DetectionPredictor` (segmentations
exactly as nnU-Net writes them, plus ``detection.json``), classifiers (``predicts_classification``) with
:class:`~nnunet_stroke.inference.classification_predictor.ClassificationPredictor` (``classification.json``
only), every other trainer with the stock command.

The stock command builds its parser inside ``predict_entry_point``, so the options are mirrored here
(same names, defaults and meaning).
"""
from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    env_int = lambda name, default: int(os.environ.get(name, default))  # noqa: E731 (nnU-Net's _getDefaultValue)
    parser = argparse.ArgumentParser(
        prog="nnunet-stroke predict",
        description="nnUNetv2_predict; writes detection.json ({case: stroke probability}) next to the "
                    "segmentations when the trainer's network has a detection head (PMSAN).")
    parser.add_argument("-i", required=True, help="input folder (files CASE_XXXX.nii.gz)")
    parser.add_argument("-o", required=True, help="output folder")
    parser.add_argument("-d", required=True, help="dataset name or id")
    parser.add_argument("-p", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("-tr", default="nnUNetTrainer", help="trainer class used for training")
    parser.add_argument("-c", required=True, help="configuration")
    parser.add_argument("-f", nargs="+", default=(0, 1, 2, 3, 4), help="folds (default 0 1 2 3 4)")
    parser.add_argument("-step_size", type=float, default=0.5, help="sliding-window step (fraction of the patch)")
    parser.add_argument("--disable_tta", action="store_true", help="no test-time mirroring")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--save_probabilities", action="store_true", help="also export class probabilities")
    parser.add_argument("--continue_prediction", action="store_true", help="keep existing predictions")
    parser.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint file name")
    parser.add_argument("-npp", type=int, default=env_int("nnUNet_npp", 3), help="preprocessing processes")
    parser.add_argument("-nps", type=int, default=env_int("nnUNet_nps", 3), help="segmentation export processes")
    parser.add_argument("-prev_stage_predictions", default=None, help="previous stage (cascade) predictions")
    parser.add_argument("-num_parts", type=int, default=1)
    parser.add_argument("-part_id", type=int, default=0)
    parser.add_argument("-device", default="cuda", choices=("cuda", "cpu", "mps"))
    parser.add_argument("--disable_progress_bar", action="store_true")
    parser.add_argument("--not_on_device", action="store_true", help="keep the result arrays off the device")
    return parser


def trainer_prediction_kind(trainer_name: str) -> str:
    """``"classification"``, ``"detection"`` or ``"segmentation"``: the one place that decides how a trainer's
    models are predicted, from its class attribute ``predicts_classification`` / ``predicts_detection``
    (the package's trainers, else the class nnU-Net finds by name; unknown names are left to the stock command)."""
    from nnunet_stroke.trainers import TRAINERS

    trainer = TRAINERS.get(trainer_name)
    if trainer is None:
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

        try:
            trainer = recursive_find_trainer_class_by_name(trainer_name)
        except (RuntimeError, AssertionError):
            return "segmentation"
    return next((kind for kind in ("classification", "detection") if getattr(trainer, f"predicts_{kind}", False)),
                "segmentation")


def trainer_predicts_detection(trainer_name: str) -> bool:
    return trainer_prediction_kind(trainer_name) == "detection"


def run_predict(argv: list[str]) -> int:
    """Predict as ``nnUNetv2_predict argv`` does; returns the exit code (nnUNet_extTrainer must be set)."""
    args = build_parser().parse_args(argv)
    kind = trainer_prediction_kind(args.tr)
    if kind == "segmentation":
        from nnunetv2.inference.predict_from_raw_data import predict_entry_point

        sys.argv = ["nnUNetv2_predict", *argv]
        predict_entry_point()
        return 0

    import torch
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    from nnunet_stroke.errors import UserError
    from nnunet_stroke.inference.detection_predictor import DetectionPredictor

    if args.part_id >= args.num_parts:
        raise UserError(f"-part_id {args.part_id} must be smaller than -num_parts {args.num_parts}")
    folds = [f if f == "all" else int(f) for f in args.f]
    model_folder = get_output_folder(args.d, args.tr, args.p, args.c)
    if not os.path.isdir(model_folder):
        raise UserError(f"no trained model in {model_folder}: train {args.tr} ({args.c}, plans {args.p}) first")
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    elif args.device == "cuda":
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
    os.makedirs(args.o, exist_ok=True)
    if kind == "classification":
        from nnunet_stroke.inference.classification_predictor import predict_classification_command

        return predict_classification_command(args, model_folder, folds)
    predictor = DetectionPredictor(tile_step_size=args.step_size, use_gaussian=True, use_mirroring=not args.disable_tta,
                                   perform_everything_on_device=not args.not_on_device,
                                   device=torch.device(args.device), verbose=args.verbose,
                                   verbose_preprocessing=args.verbose, allow_tqdm=not args.disable_progress_bar)
    predictor.initialize_from_trained_model_folder(model_folder, folds, checkpoint_name=args.chk)
    if args.npp == 0 and args.nps == 0:
        predictor.predict_from_files_sequential(args.i, args.o, save_probabilities=args.save_probabilities,
                                                overwrite=not args.continue_prediction,
                                                folder_with_segs_from_prev_stage=args.prev_stage_predictions)
    else:
        predictor.predict_from_files(args.i, args.o, save_probabilities=args.save_probabilities,
                                     overwrite=not args.continue_prediction, num_processes_preprocessing=args.npp,
                                     num_processes_segmentation_export=args.nps,
                                     folder_with_segs_from_prev_stage=args.prev_stage_predictions,
                                     num_parts=args.num_parts, part_id=args.part_id)
    return 0
