"""`nnunet-stroke evaluate`: stroke metrics of a folder of predictions against the reference labels
(ISLES'22, ATLAS v2.0 or LBMNet protocol), written to metrics.json. See docs/evaluation.md."""
from __future__ import annotations

import argparse

from nnunet_stroke.arguments import non_negative_float, positive_int


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="metrics.json of predictions vs reference labels (ISLES'22, ATLAS v2.0, LBMNet tables)",
        description="Evaluate nnU-Net predictions CASE<ending> against reference labels CASE<ending>: Dice, IoU, "
                    "F2, Recall, Precision, HD95, volume and lesion-count differences, lesion-wise F1, lesion-size "
                    "strata, patient-level detection, calibration and Bland-Altman. Details: docs/evaluation.md.")
    p.add_argument("--ref", help="folder of reference label maps (e.g. nnUNet_raw/DatasetX/labelsTr)")
    p.add_argument("--pred", help="folder of predicted label maps (nnUNetv2_predict output)")
    p.add_argument("--protocol", default="isles22", choices=["isles22", "atlas2", "lbmnet"],
                   help="isles22: 26-connected lesions, volumes in ml; atlas2: 6-connected, volumes in voxels; "
                        "lbmnet: the paper's table metrics (default: isles22)")
    p.add_argument("--images", help="imagesTr/imagesTs folder (CASE_0000<ending>): brain ROI for calibration "
                                    "and overlays in the report")
    p.add_argument("--probabilities", help="folder of CASE.npz from nnUNetv2_predict --save_probabilities "
                                           "(calibration); usually the --pred folder")
    p.add_argument("--detection", help="detection.json {case: probability} written by `nnunet-stroke predict`; "
                                       "without it detection comes from the predicted volume")
    p.add_argument("--detection-min-volume", type=non_negative_float, default=0.0,
                   help="without --detection a case is called positive when its predicted lesion volume is above "
                        "this, in ml (pixels for 2D) (default: 0, any predicted voxel)")
    p.add_argument("--allow-missing", action="store_true",
                   help="evaluate reference cases without a prediction as empty predictions instead of failing")
    p.add_argument("--labels", type=int, nargs="+",
                   help="foreground labels the masks may hold (default: dataset.json next to --ref, else 1)")
    p.add_argument("--lesion-labels", type=int, nargs="+",
                   help="labels that count as lesion (default: any foreground label)")
    p.add_argument("--per-class", action="store_true", help="also metrics per label (<metric>_label<L> keys)")
    p.add_argument("--file-ending", help="file ending of the label maps (default: dataset.json's, else detected)")
    p.add_argument("--resample-to-reference", action="store_true",
                   help="resample predictions that are not on the reference grid (size, spacing, origin, "
                        "direction) onto it, nearest neighbour through the scanner coordinates, instead of "
                        "refusing them; only when you know both are in the same physical space")
    p.add_argument("-np", "--num-processes", type=positive_int, default=2,
                   help="parallel worker processes (default: 2)")
    p.add_argument("--classification", help="classification.json of a classifier (instead of --ref/--pred): "
                                            "accuracy, AUROC, ECE, ... with bootstrap CIs (needs --cases)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="two classification.json on the same cases: "
                                                                  "McNemar's test and the paired AUROC difference")
    p.add_argument("--cases", help="the dataset's cases.csv (labels for --classification / --compare)")
    p.add_argument("--out", required=True, help="metrics.json to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.classification or args.compare:
        from nnunet_stroke.workflows.classification import evaluate_classifier_files

        return evaluate_classifier_files(args.classification, args.compare, args.cases, args.out)
    if not (args.ref and args.pred):
        from nnunet_stroke.errors import UserError

        raise UserError("give --ref and --pred (segmentations), or --classification/--compare with --cases")
    from nnunet_stroke.workflows.evaluation import evaluate_segmentations

    evaluate_segmentations(
        args.ref, args.pred, args.out, protocol=args.protocol, images_dir=args.images,
        probabilities_dir=args.probabilities, detection_json=args.detection, allow_missing=args.allow_missing,
        num_processes=args.num_processes, file_ending=args.file_ending, labels=args.labels,
        lesion_labels=args.lesion_labels, per_class=args.per_class, detection_min_volume=args.detection_min_volume,
        resample_to_reference=args.resample_to_reference)
    return 0
