"""``nnunet-stroke predict``: the arguments of ``nnUNetv2_predict``; networks with a detection head are
predicted with :class:`~nnunet_stroke.inference.detection_predictor.DetectionPredictor` (segmentations
exactly as nnU-Net writes them, plus ``detection.json``), classifiers (``predicts_classification``) with
:class:`~nnunet_stroke.inference.classification_predictor.ClassificationPredictor` (``classification.json``
only), every other trainer with the stock command.

The stock command builds its parser inside ``predict_entry_point``, so the options are mirrored here
(same names, defaults and meaning). ``trainer_prediction_kind``, ``set_device_threads`` and
``segmentation_predictor`` are shared with ``predict-scans`` and ``ensemble``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


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


def set_device_threads(device: str) -> None:
    """torch threads as ``nnUNetv2_predict`` sets them: every core on a CPU, one thread next to a GPU."""
    import torch

    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    elif device == "cuda":
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)


def segmentation_predictor(trainer_name: str, device: str, use_mirroring: bool = True, step_size: float = 0.5,
                           verbose: bool = False, progress_bar: bool = True, on_device: bool = True):
    """nnU-Net's predictor, or :class:`DetectionPredictor` for a trainer with a detection head (not initialised)."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunet_stroke.inference.detection_predictor import DetectionPredictor

    predictor_class = DetectionPredictor if trainer_prediction_kind(trainer_name) == "detection" else nnUNetPredictor
    return predictor_class(tile_step_size=step_size, use_gaussian=True, use_mirroring=use_mirroring,
                           perform_everything_on_device=on_device, device=torch.device(device), verbose=verbose,
                           verbose_preprocessing=verbose, allow_tqdm=progress_bar)


def predict_classification(args, model_folder: str, folds: list) -> int:
    """``nnunet-stroke predict -tr <classifier>``: classification.json in ``args.o`` (the arguments of
    ``nnUNetv2_predict``; -step_size, --save_probabilities and -nps do not apply). With one fold whose
    folder holds ``classification_threshold.json`` a binary classifier's labels use that threshold."""
    import torch

    from nnunet_stroke.evaluation.classification import CLASSIFICATION_FILE, stored_threshold
    from nnunet_stroke.inference.classification_predictor import ClassificationPredictor

    predictor = ClassificationPredictor(use_mirroring=not args.disable_tta, device=torch.device(args.device),
                                        verbose=args.verbose, verbose_preprocessing=args.verbose,
                                        allow_tqdm=not args.disable_progress_bar)
    predictor.initialize_from_trained_model_folder(model_folder, folds, checkpoint_name=args.chk)
    threshold = stored_threshold(Path(model_folder), folds, predictor.class_names)
    entries = predictor.classify_files(args.i, args.o, overwrite=not args.continue_prediction,
                                       num_processes_preprocessing=args.npp, threshold=threshold,
                                       part_id=args.part_id, num_parts=args.num_parts)
    rule = f"p({predictor.class_names[1]}) >= {threshold:.4g} (fold's Youden threshold)" if threshold is not None \
        else "argmax"
    print(f"classified {len(entries)} cases (labels: {rule}) into {Path(args.o) / CLASSIFICATION_FILE}")
    return 0


def run_predict(argv: list[str]) -> int:
    """Predict as ``nnUNetv2_predict argv`` does; returns the exit code (nnUNet_extTrainer must be set)."""
    args = build_parser().parse_args(argv)
    kind = trainer_prediction_kind(args.tr)
    if kind == "segmentation":
        from nnunetv2.inference.predict_from_raw_data import predict_entry_point

        sys.argv = ["nnUNetv2_predict", *argv]
        predict_entry_point()
        return 0

    from nnunetv2.utilities.file_path_utilities import get_output_folder

    from nnunet_stroke.errors import UserError

    if args.part_id >= args.num_parts:
        raise UserError(f"-part_id {args.part_id} must be smaller than -num_parts {args.num_parts}")
    folds = [f if f == "all" else int(f) for f in args.f]
    model_folder = get_output_folder(args.d, args.tr, args.p, args.c)
    if not os.path.isdir(model_folder):
        raise UserError(f"no trained model in {model_folder}: train {args.tr} ({args.c}, plans {args.p}) first")
    set_device_threads(args.device)
    os.makedirs(args.o, exist_ok=True)
    if kind == "classification":
        return predict_classification(args, model_folder, folds)
    predictor = segmentation_predictor(args.tr, args.device, use_mirroring=not args.disable_tta,
                                       step_size=args.step_size, verbose=args.verbose,
                                       progress_bar=not args.disable_progress_bar, on_device=not args.not_on_device)
    predictor.initialize_from_trained_model_folder(model_folder, folds, checkpoint_name=args.chk)
    if args.npp == 0 and args.nps == 0 and args.num_parts == 1:  # nnU-Net's sequential path has no parts
        predictor.predict_from_files_sequential(args.i, args.o, save_probabilities=args.save_probabilities,
                                                overwrite=not args.continue_prediction,
                                                folder_with_segs_from_prev_stage=args.prev_stage_predictions)
    else:
        predictor.predict_from_files(args.i, args.o, save_probabilities=args.save_probabilities,
                                     overwrite=not args.continue_prediction,
                                     num_processes_preprocessing=max(1, args.npp),
                                     num_processes_segmentation_export=max(1, args.nps),
                                     folder_with_segs_from_prev_stage=args.prev_stage_predictions,
                                     num_parts=args.num_parts, part_id=args.part_id)
    return 0
