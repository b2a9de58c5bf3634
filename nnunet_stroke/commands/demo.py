"""`nnunet-stroke demo`: the whole pipeline on the synthetic phantom, on a CPU, in minutes."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="phantom -> convert -> plan -> split -> train (CPU) -> predict held-out -> evaluate -> report",
        description="Run the whole pipeline on the synthetic stroke phantom (no download) and write "
                    "WORKDIR/summary.json, WORKDIR/metrics.json and WORKDIR/report/.")
    parser.add_argument("--workdir", default="nnunet_stroke_demo", help="folder for every file the demo writes")
    parser.add_argument("--trainer", default="nnUNetTrainerStrokeUNet_Tiny", help="a trainer name (see `trainers`)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from nnunet_stroke.demo import run_demo
    from nnunet_stroke.errors import UserError
    from nnunet_stroke.trainers import TRAINERS

    if args.trainer not in TRAINERS:
        raise UserError(f"unknown trainer {args.trainer!r}; `nnunet-stroke trainers` lists them")
    run_demo(Path(args.workdir), trainer=args.trainer)
    return 0
