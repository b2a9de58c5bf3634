"""`nnunet-stroke report`: report.md with the LBMNet and PMSAN tables per model and PNG figures
(Bland-Altman, Dice by lesion size, ROC, reliability diagram, worst/best case overlays)."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="report.md with paper-style tables and PNG plots from metrics.json files",
        description="Write DIR/report.md with the tables of the LBMNet paper (segmentation, lesion-size strata, "
                    "Bland-Altman) and of PMSAN (patient-level detection) for every metrics.json given (one per "
                    "model), and PNG figures. Overlays need the --images folder given to `evaluate`.")
    p.add_argument("metrics", nargs="+", help="metrics.json files written by `nnunet-stroke evaluate`")
    p.add_argument("--names", nargs="+", help="model names, one per metrics file (default: from the paths)")
    p.add_argument("--out", required=True, help="output folder; a previous report there is replaced")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nnunet_stroke.evaluation.reports import write_report

    report = write_report([Path(p) for p in args.metrics], Path(args.out), names=args.names)
    print(f"wrote {report}")
    return 0
