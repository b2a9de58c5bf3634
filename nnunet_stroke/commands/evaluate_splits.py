"""`nnunet-stroke evaluate-splits`: mean +- std across the held-out test sets of repeated 8:1:1 splits
(LBMNet Table 5) and across k-fold cross-validation folds. See docs/evaluation.md."""
from __future__ import annotations

import argparse

from nnunet_stroke.arguments import positive_int


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate-splits", help="mean ± std of test metrics across repeated 8:1:1 splits and CV folds",
        description="Aggregate metrics.json files of several splits. Give nnU-Net results folders "
                    "(<trainer>__<plans>__<configuration>: fold_5..fold_9/heldout_test/metrics.json are the "
                    "repeated 8:1:1 splits, fold_0..fold_4/validation/ the 5-fold CV) and/or metrics.json files "
                    "(one per split).")
    p.add_argument("inputs", nargs="+", help="nnU-Net results folders or metrics.json files")
    p.add_argument("--ref", help="reference labels (labelsTr): evaluate fold folders that have predictions but "
                                 "no metrics.json yet, and write their metrics.json")
    p.add_argument("--protocol", default="isles22", choices=["isles22", "atlas2", "lbmnet"],
                   help="protocol for folds evaluated here (default: isles22)")
    p.add_argument("-np", "--num-processes", type=positive_int, default=2,
                   help="worker processes for --ref evaluation")
    p.add_argument("--out", required=True, help="summary JSON to write; a markdown table goes next to it (.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunet_stroke.workflows.evaluation import summarize_splits_to

    summarize_splits_to(args.inputs, args.out, args.ref, args.protocol, args.num_processes)
    return 0
