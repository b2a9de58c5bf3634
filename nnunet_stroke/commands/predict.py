"""`nnunet-stroke predict ...`: ``nnUNetv2_predict`` with this package's trainers found (same arguments),
plus ``detection.json`` for networks with a detection head."""
import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", add_help=False,
        help="nnUNetv2_predict with nnUNet_extTrainer set (same arguments; -h for them); writes detection.json "
             "for networks with a detection head",
        description="Run nnUNetv2_predict with nnUNet_extTrainer pointing at this package's trainers.")
    parser.add_argument("stock_args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=run, passthrough=True)


def run(args) -> int:
    from nnunet_stroke.nnunet_folders import nnunet_folder
    from nnunet_stroke.workflows.nnunet_env import with_ext_trainer
    from nnunet_stroke.workflows.prediction import run_predict

    if not {"-h", "--help"} & set(args.stock_args):
        nnunet_folder("nnUNet_results")
    with_ext_trainer()
    return run_predict(args.stock_args)
