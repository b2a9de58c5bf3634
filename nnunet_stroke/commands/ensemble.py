"""`nnunet-stroke ensemble --models RESULTS_FOLDER[:FOLDS] ... -i IN -o OUT [--vote soft|majority]`: several
trained models combined per voxel (nnunet_stroke/workflows/ensemble.py)."""

from nnunet_stroke.arguments import add_prediction_runtime_arguments


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "ensemble", help="ensemble several trained models: soft (mean probabilities) or majority vote of masks",
        description="Predict IN (nnU-Net's input layout, CASE_XXXX files) with every model and combine them per "
                    "voxel into OUT (one mask per case, nothing else): soft averages the class probabilities as "
                    "nnUNetv2_ensemble does; majority takes the label most models give (ties: the lower label), "
                    "as DeepISLES combined the ISLES'22 winners.")
    parser.add_argument("--models", nargs="+", required=True, metavar="RESULTS_FOLDER[:FOLDS]",
                        help="trained model folders ($nnUNet_results/DatasetXXX/<trainer>__<plans>__<config>), "
                             "each optionally with folds, e.g. .../nnUNetTrainerLBMNet__nnUNetPlans__3d_fullres:0,1")
    parser.add_argument("-i", dest="input", required=True, help="input folder (CASE_XXXX.nii.gz files)")
    parser.add_argument("-o", dest="out", required=True, help="output folder (must not exist)")
    parser.add_argument("--vote", default="soft", choices=("soft", "majority"))
    add_prediction_runtime_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from nnunet_stroke.workflows.ensemble import parse_model, run_ensemble
    from nnunet_stroke.workflows.nnunet_env import with_ext_trainer

    with_ext_trainer()
    models = [parse_model(text) for text in args.models]
    cases = run_ensemble(models, args.input, args.out, vote=args.vote, device=args.device,
                         use_mirroring=not args.disable_tta, num_processes_preprocessing=args.npp,
                         num_processes_export=args.nps)
    print(f"{args.vote} vote of {len(models)} models: {len(cases)} cases in {args.out}")
    return 0
