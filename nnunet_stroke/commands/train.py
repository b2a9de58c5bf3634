"""`nnunet-stroke train ...`: ``nnUNetv2_train`` with this package's trainers found (same arguments)."""
import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", add_help=False, help="nnUNetv2_train with nnUNet_extTrainer set (same arguments; -h for them)",
        description="Run nnUNetv2_train with nnUNet_extTrainer pointing at this package's trainers.")
    parser.add_argument("stock_args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=run, passthrough=True)


def run(args) -> int:
    import sys

    from nnunet_stroke.nnunet_env import nnunet_folder, with_ext_trainer

    if not {"-h", "--help"} & set(args.stock_args):
        for variable in ("nnUNet_preprocessed", "nnUNet_results"):
            nnunet_folder(variable)
    with_ext_trainer()
    from nnunetv2.run.run_training import run_training_entry

    sys.argv = ["nnUNetv2_train", *args.stock_args]
    run_training_entry()
    return 0
