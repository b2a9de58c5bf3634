"""`nnunet-stroke distill ID CONFIG FOLD [--family PMSAN|PMSANClassifier]`: PMSAN progressive knowledge
distillation (Algorithm 1 of Nalla & Deepak): train PMSAN-XL, then PMSAN-L from XL, M from L and S from M,
each with nnU-Net's own ``nnUNetv2_train`` (the chain: nnunet_stroke/workflows/distillation.py). ``--family PMSANClassifier`` distils the paper's patient-level
classifier; ``PMSAN`` (the default) PMSAN-Seg, segmentation with an auxiliary detection head. Models whose ``checkpoint_final.pth`` exists are kept unless
``--retrain``, so an interrupted chain resumes where it stopped."""
from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "distill", help="PMSAN progressive distillation: train XL, then L, M, S each from the next larger",
        description=__doc__)
    parser.add_argument("dataset", help="dataset id or name (DatasetXXX_Name)")
    parser.add_argument("configuration", help="nnU-Net configuration, e.g. 3d_fullres or 2d")
    parser.add_argument("fold", help="fold (0-9 with the package's splits, or 'all')")
    parser.add_argument("-p", dest="plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("--family", default="PMSAN", choices=("PMSAN", "PMSANClassifier"),
                        help="PMSANClassifier: the paper's classifier; PMSAN: PMSAN-Seg (default)")
    parser.add_argument("--smallest", default="S", choices=("S", "M", "L"), help="stop after this size (default S)")
    parser.add_argument("--tiny", action="store_true", help="CPU-sized _Tiny trainers (tiny presets, short schedule)")
    parser.add_argument("-device", default="cuda", choices=("cuda", "cpu", "mps"), help="device (default cuda)")
    parser.add_argument("--retrain", action="store_true", help="retrain models that already have checkpoint_final.pth")
    parser.set_defaults(func=run)


def run(args) -> int:
    from nnunet_stroke.workflows.distillation import run_distillation

    run_distillation(args.dataset, args.configuration, args.fold, plans=args.plans, family=args.family,
                     smallest=args.smallest, tiny=args.tiny, device=args.device, retrain=args.retrain)
    return 0
