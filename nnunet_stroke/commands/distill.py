"""`nnunet-stroke distill ID CONFIG FOLD [--family PMSAN|PMSANClassifier]`: PMSAN progressive knowledge
distillation (Algorithm 1 of Nalla & Deepak): train PMSAN-XL, then PMSAN-L from XL, M from L and S from M,
each with nnU-Net's own ``nnUNetv2_train`` (the distillation trainers find their teacher by convention, see
nnunet_stroke/trainers/distillation.py). ``--family PMSANClassifier`` distils the paper's patient-level
classifier; ``PMSAN`` (the default) PMSAN-Seg, segmentation with an auxiliary detection head. Models whose ``checkpoint_final.pth`` exists are kept unless
``--retrain``, so an interrupted chain resumes where it stopped."""
from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "distill", help="PMSAN progressive distillation: train XL, then L, M, S each from the next larger",
        description=__doc__)
    parser.add_argument("dataset", help="dataset id or name (DatasetXXX_Name)")
    parser.add_argument("configuration", help="nnU-Net configuration, e.g. 3d_fullres or 2d")
    parser.add_argument("fold", help="fold (0-9 with the package's splits, or 'all')")
    parser.add_argument("-p", dest="plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("--family", default="PMSAN", choices=("PMSAN", "PMSANClassifier"),
                        help="PMSANClassifier: the paper's classifier; PMSAN: PMSAN-Seg (default)")
    parser.add_argument("--smallest", default="S", choices=("S", "M", "L"), help="stop after this size (default S)")
    parser.add_argument("--tiny", action="store_true", help="CPU-sized _Tiny trainers (tiny presets, short schedule)")
    parser.add_argument("-device", default="cuda", choices=("cuda", "cpu", "mps"), help="device (default cuda)")
    parser.add_argument("--retrain", action="store_true", help="retrain models that already have checkpoint_final.pth")
    parser.set_defaults(func=run)


def train_command(args, trainer: str) -> list[str]:
    import shutil
    import sys

    stock = shutil.which("nnUNetv2_train")
    entry = [stock] if stock else [sys.executable, "-c", "from nnunetv2.run.run_training import run_training_entry; "
                                                         "run_training_entry()"]
    return [*entry, str(args.dataset), args.configuration, str(args.fold), "-tr", trainer, "-p", args.plans,
            "-device", args.device]


def run(args) -> int:
    import os
    import subprocess
    from pathlib import Path

    from nnunet_stroke.errors import UserError
    from nnunet_stroke.nnunet_env import with_ext_trainer

    env = with_ext_trainer(dict(os.environ))
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    from nnunet_stroke.trainers.distillation import distillation_chain

    for trainer in distillation_chain(args.smallest, "_Tiny" if args.tiny else "", args.family):
        try:
            folder = Path(get_output_folder(args.dataset, trainer, args.plans, args.configuration, args.fold))
        except RuntimeError as error:
            raise UserError(f"dataset {args.dataset}: {error} Convert, plan and preprocess it first.") from error
        if (folder / "checkpoint_final.pth").is_file() and not args.retrain:
            print(f"{trainer}: {folder / 'checkpoint_final.pth'} exists, kept (--retrain to train again)")
            continue
        command = train_command(args, trainer)
        print("running:", " ".join(command), flush=True)
        returncode = subprocess.run(command, env=env).returncode
        if returncode:
            raise UserError(f"training {trainer} failed (exit code {returncode}); its log is in {folder}. Fix the "
                            f"cause and rerun the same command: finished models are kept.")
    return 0
