"""`nnunet-stroke predict ...`: ``nnUNetv2_predict`` with this package's trainers found (same arguments)."""
import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", add_help=False, help="nnUNetv2_predict with nnUNet_extTrainer set (same arguments; -h for them)",
        description="Run nnUNetv2_predict with nnUNet_extTrainer pointing at this package's trainers.")
    parser.add_argument("stock_args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=run, passthrough=True)


def run(args) -> int:
    import sys

    from nnunet_stroke.nnunet_env import with_ext_trainer

    with_ext_trainer()
    from nnunetv2.inference.predict_from_raw_data import predict_entry_point

    sys.argv = ["nnUNetv2_predict", *args.stock_args]
    predict_entry_point()
    return 0
