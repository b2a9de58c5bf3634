"""`nnunet-stroke train ...`: ``nnUNetv2_train`` with this package's trainers found (same arguments)."""
import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", add_help=False, help="nnUNetv2_train with nnUNet_extTrainer set (same arguments; -h for them)",
        description="Run nnUNetv2_train with nnUNet_extTrainer pointing at this package's trainers.")
    parser.add_argument("stock_args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=run, passthrough=True)


def run(args) -> int:
    from nnunet_stroke.workflows.training import run_stock_training

    run_stock_training(args.stock_args)
    return 0
