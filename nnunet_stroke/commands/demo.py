"""`nnunet-stroke demo`: the whole pipeline on the synthetic phantom, on a CPU, in minutes."""
from nnunet_stroke.arguments import positive_float, positive_int


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="phantom -> convert -> plan -> split -> train (CPU) -> predict held-out and external cases "
                     "-> evaluate against voxel-rule baselines -> report",
        description="Run the whole pipeline on the synthetic stroke phantom (no download) and write "
                    "WORKDIR/summary.json, WORKDIR/metrics.json, WORKDIR/external/ and WORKDIR/report/.")
    parser.add_argument("--workdir", default="nnunet_stroke_demo", help="folder for every file the demo writes")
    parser.add_argument("--trainer", default="nnUNetTrainerStrokeUNet_Tiny",
                        help="a CPU-sized _Tiny trainer (see `trainers`)")
    parser.add_argument("--cases", type=positive_int, default=None, help="phantom cases (default 80)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the phantom, the external cohort and the splits (default 0)")
    parser.add_argument("--minutes", type=positive_float, default=None,
                        help="time budget of the whole demo; training stops early to keep it (default 9.5)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from nnunet_stroke.errors import UserError
    from nnunet_stroke.trainers import TRAINERS
    from nnunet_stroke.workflows.demo import DEMO_CASES, DEMO_MINUTES, DEMO_SEED, run_demo

    if args.trainer not in TRAINERS:
        raise UserError(f"unknown trainer {args.trainer!r}; `nnunet-stroke trainers` lists them")
    if not getattr(TRAINERS[args.trainer], "is_tiny", False):
        raise UserError(f"the demo trains on a CPU in minutes: pass a CPU-sized variant, e.g. {args.trainer}_Tiny")
    minutes = DEMO_MINUTES if args.minutes is None else args.minutes
    cases = DEMO_CASES if args.cases is None else args.cases
    if cases < 10:
        raise UserError(f"--cases must be at least 10 for an 8:1:1 split with a test case, got {cases}")
    seed = DEMO_SEED if args.seed is None else args.seed
    if seed < 0:
        raise UserError(f"--seed must be 0 or more, got {seed}")
    run_demo(Path(args.workdir), trainer=args.trainer, cases=cases, minutes=minutes, seed=seed)
    return 0
