"""`nnunet-stroke predict-scans SRC OUT -d ID -c CONFIG -tr TRAINER`: new scans in a release's layout ->
masks in the source geometry, volumes.csv and the heads' JSON (nnunet_stroke/workflows/predict_scans.py)."""

from nnunet_stroke.arguments import add_prediction_runtime_arguments


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict-scans", help="predict new scans in a release's layout: one mask per case in the source geometry, "
                              "volumes.csv, detection/classification JSON",
        description="Read unlabelled cases from SRC (a folder in a dataset release's layout, checked as `convert` "
                    "checks it), predict them with a trained model and write OUT/<case>.nii.gz on each source "
                    "image's grid, OUT/volumes.csv (lesion volume in ml and lesion count per case) and "
                    "detection.json / classification.json for networks with those heads. A case that cannot be "
                    "read is named on stderr, the others are predicted, and the exit code is 1.")
    parser.add_argument("src", help="the scans' root folder in the release's layout (e.g. ISLES-2022/)")
    parser.add_argument("out", help="output folder (must not exist)")
    parser.add_argument("-d", dest="dataset", required=True, help="dataset name or id the model was trained on")
    parser.add_argument("-c", dest="configuration", required=True, help="nnU-Net configuration, e.g. 3d_fullres")
    parser.add_argument("-tr", dest="trainer", required=True, help="trainer class name")
    parser.add_argument("-p", dest="plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("-f", dest="folds", nargs="+", default=None,
                        help="folds to ensemble (default: every fold with a final checkpoint)")
    parser.add_argument("--layout", default="isles22", choices=("isles22", "isles22-github", "atlas2"),
                        help="release layout of SRC (isles22 reads both ISLES 2022 release layouts)")
    parser.add_argument("-chk", dest="checkpoint", default="checkpoint_final.pth")
    add_prediction_runtime_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from nnunet_stroke.workflows.nnunet_env import with_ext_trainer
    from nnunet_stroke.workflows.predict_scans import run_predict_scans

    with_ext_trainer()
    folds = [f if f == "all" else int(f) for f in args.folds] if args.folds else None
    return run_predict_scans(args.src, args.out, args.dataset, args.configuration, args.trainer, plans=args.plans,
                             folds=folds, layout=args.layout, device=args.device,
                             use_mirroring=not args.disable_tta, checkpoint=args.checkpoint,
                             num_processes_preprocessing=args.npp, num_processes_export=args.nps)
