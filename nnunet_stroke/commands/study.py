"""`nnunet-stroke study TABLE ID`: train, predict and tabulate one table of the LBMNet paper (see
nnunet_stroke.workflows.study); `nnunet-stroke study --list` shows every table's rows and trainers."""
from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "study", help="one paper table: train every row x split, predict the held-out cases, tabulate",
        description="Train every row of a paper table on every repeated 8:1:1 split with the stock nnUNetv2_train, "
                    "predict and evaluate the held-out test cases (predict-heldout), and write the table "
                    "(mean ± sd over splits, paired Wilcoxon p against LBMNet) to "
                    "$nnUNet_results/DatasetXXX/studies/<table>[_tiny]__<plans>__<configuration>/study.md and "
                    "study.json. Finished work is skipped, so rerunning resumes.")
    parser.add_argument("table", nargs="?", help="lbmnet-table1, lbmnet-table6 ... lbmnet-table9, lbmnet-fig11")
    parser.add_argument("dataset", nargs="?", help="dataset id or name")
    parser.add_argument("--list", action="store_true", help="show every table's rows and trainers, then exit")
    parser.add_argument("--folds", default="5-9", help="8:1:1 folds with held-out test cases (default 5-9)")
    parser.add_argument("-p", dest="plans", default=None,
                        help="plans identifier (default nnUNetLBMNetPlans; with --tiny nnUNetPlans)")
    parser.add_argument("-c", dest="configuration", default="3d_fullres")
    parser.add_argument("--launcher", choices=["local", "slurm"], default="local",
                        help="local: run every step here in turn; slurm: write a job array and an aggregation job")
    parser.add_argument("--tiny", action="store_true", help="the rows' CPU-sized _Tiny trainers (phantom, demo)")
    parser.add_argument("--rows", default=None, help="comma-separated row keys (see --list); default: every row")
    parser.add_argument("--aggregate-only", action="store_true",
                        help="only write the table from the splits finished so far (train and predict nothing)")
    parser.add_argument("--disable-tta", action="store_true",
                        help="predict the held-out cases without nnU-Net's mirroring (about 8x faster in 3D)")
    parser.add_argument("-device", default=None, help="local launcher: cpu or cuda (default: cuda when available)")
    parser.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                        help="extra #SBATCH option for both jobs, e.g. --sbatch=--partition=gpu (repeatable)")
    parser.set_defaults(func=run, parser=parser)


def run(args) -> int:
    from nnunet_stroke.workflows.study_tables import describe_tables

    if args.list:
        print(describe_tables())
        return 0
    if not (args.table and args.dataset):
        args.parser.error("give TABLE and ID (or --list)")
    from nnunet_stroke.workflows.study import run_study

    rows = [key.strip() for key in args.rows.split(",") if key.strip()] if args.rows else None
    print(run_study(args.table, args.dataset, folds=args.folds, plans=args.plans, configuration=args.configuration,
                    launcher=args.launcher, tiny=args.tiny, rows=rows, aggregate_only=args.aggregate_only,
                    device=args.device, sbatch_options=args.sbatch, use_tta=not args.disable_tta))
    return 0
