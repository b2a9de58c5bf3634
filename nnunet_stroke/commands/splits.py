"""`nnunet-stroke splits ID`: 5-fold CV (folds 0-4) and five 8:1:1 splits (folds 5-9) for nnU-Net."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "splits", help="write splits_final.json (folds 0-4: 5-fold CV, 5-9: repeated 8:1:1) and heldout_test.json",
        description="Write $nnUNet_preprocessed/DatasetID_*/splits_final.json with folds 0-4 = 5-fold CV and "
                    "folds 5-9 = five repeated 8:1:1 splits, and heldout_test.json with the test cases of "
                    "folds 5-9 (in neither the train nor the val list of their fold).")
    parser.add_argument("dataset", help="dataset id or name, e.g. 990 or Dataset990_ISLES22")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stratify", choices=["volume"], help="balance lesion-volume bins (cases.csv) across parts")
    parser.add_argument("--group", choices=["site", "duplicate"],
                        help="keep all cases of a site / of a duplicate-image group on one side of every split")
    parser.add_argument("--force", action="store_true",
                        help="replace splits even when folds with trained models change (their results then no "
                             "longer match; the folds are listed)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from nnunet_stroke.splits import write_splits

    path = write_splits(args.dataset, seed=args.seed, stratify=args.stratify, group=args.group, force=args.force)
    print(f"wrote {path} and {path.with_name('heldout_test.json')}")
    return 0
