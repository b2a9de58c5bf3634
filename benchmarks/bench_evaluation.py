"""Evaluation speed: `nnunet-stroke evaluate` (all stroke metrics) against nnU-Net's own
`compute_metrics_on_folder` (Dice/IoU only, the engine of `nnUNetv2_evaluate_folder`) on the same
250 synthetic ISLES-sized cases (112x112x72 voxels at 2 mm), the same number of worker processes.

    python benchmarks/bench_evaluation.py [--cases 250] [--processes 2] [--repeats 2]

Writes a record in benchmarks/results/evaluation/. Each tool runs ``--repeats`` times, alternating, and the
fastest run of each is reported; Dice of both tools is compared per case. The measured time covers the
evaluation runs only, not writing the cases.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from records import RESULTS, Measurement, not_recorded, provenance, write_record
from scipy import ndimage

RECORD_NAME = "evaluation"
SHAPE = (72, 112, 112)  # z, y, x
SPACING_XYZ = (2.0, 2.0, 2.0)


def _blob(rng, shape, radius):
    centre = [rng.integers(radius + 1, s - radius - 1) for s in shape]
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    noise = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), 2) * radius * 2
    distance = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
    return distance + noise < radius


def synthetic_pair(rng):
    """Reference with 0-4 irregular lesions (1 in 12 cases empty); prediction = shifted, dilated or eroded
    reference plus occasional false-positive blobs."""
    reference = np.zeros(SHAPE, dtype=bool)
    if rng.random() > 1 / 12:
        for _ in range(rng.integers(1, 5)):
            reference |= _blob(rng, SHAPE, rng.uniform(1.5, 12))
    prediction = np.roll(reference, tuple(rng.integers(-1, 2, 3)), axis=(0, 1, 2))
    operation = rng.choice(["dilate", "erode", "none"])
    if operation == "dilate":
        prediction = ndimage.binary_dilation(prediction)
    elif operation == "erode":
        prediction = ndimage.binary_erosion(prediction)
    if rng.random() < 0.3:
        prediction |= _blob(rng, SHAPE, rng.uniform(1.5, 4))
    return reference.astype(np.uint8), prediction.astype(np.uint8)


def write_cases(root: Path, n_cases: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    ref_dir, pred_dir = root / "labelsTr", root / "predictions"
    ref_dir.mkdir()
    pred_dir.mkdir()
    for index in range(n_cases):
        for folder, array in zip((ref_dir, pred_dir), synthetic_pair(rng)):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing(SPACING_XYZ)
            sitk.WriteImage(image, str(folder / f"case_{index:04d}.nii.gz"))
    return ref_dir, pred_dir


def time_ours(ref_dir, pred_dir, processes):
    from nnunet_stroke.evaluation import evaluate_folders

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = evaluate_folders(ref_dir, pred_dir, protocol="isles22", num_processes=processes, progress=False)
    return time.perf_counter() - start, {c["case"]: c["dice"] for c in metrics["cases"]}


def time_nnunet(ref_dir, pred_dir, processes, output_file):
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    start = time.perf_counter()
    result = compute_metrics_on_folder(str(ref_dir), str(pred_dir), str(output_file), SimpleITKIO(), ".nii.gz",
                                       [1], num_processes=processes)
    elapsed = time.perf_counter() - start
    return elapsed, {Path(c["reference_file"]).name[: -len(".nii.gz")]: c["metrics"][1]["Dice"]
                     for c in result["metric_per_case"]}


TITLE = "Evaluation: `nnunet-stroke evaluate` vs nnU-Net's `compute_metrics_on_folder`"
COMMAND = "python benchmarks/bench_evaluation.py"


def render(records: list[dict]) -> str:
    if not records:
        return not_recorded(TITLE, COMMAND)
    record = records[-1]
    f = record["figures"]
    cases, ours, nnunet = f["cases"], f["ours_seconds"], f["nnunet_seconds"]
    return (
        f"## {TITLE}\n\n{provenance(record)} {f['processes']} worker processes for both; fastest of "
        f"{f['repeats']} alternating runs each.\n\n"
        f"{cases} synthetic ISLES-sized cases (112x112x72 voxels, 2 mm, 0-4 irregular lesions, predictions "
        "shifted/dilated/eroded with occasional false positives), NIfTI. nnU-Net computes Dice and IoU "
        "(`nnUNetv2_evaluate_folder`'s engine); `nnunet-stroke evaluate --protocol isles22` computes Dice, IoU, "
        "F2, Recall, Precision, HD95 (mm and voxels), volumes, lesion counts, lesion-wise F1, strata, "
        "detection with 2000 bootstrap resamples and Bland-Altman.\n\n"
        "| tool | total s | s per case | ratio to nnU-Net |\n|---|---|---|---|\n"
        f"| nnU-Net compute_metrics_on_folder | {nnunet:.1f} | {nnunet / cases:.3f} | 1.00 |\n"
        f"| nnunet-stroke evaluate | {ours:.1f} | {ours / cases:.3f} | {ours / nnunet:.2f} |\n\n"
        f"Dice agrees with nnU-Net's on the {f['dice_compared_cases']} cases where nnU-Net defines it (max abs "
        f"difference {f['dice_max_abs_difference']:.1e}); nnU-Net leaves both-empty cases out (NaN), ISLES'22 "
        "scores them 1.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=250)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="where the record goes (default benchmarks/results; another folder for trial runs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        ref_dir, pred_dir = write_cases(Path(workdir), args.cases)
        ours, theirs = [], []
        with Measurement() as measured:
            for _ in range(args.repeats):
                ours.append(time_ours(ref_dir, pred_dir, args.processes))
                theirs.append(time_nnunet(ref_dir, pred_dir, args.processes, Path(workdir) / "summary.json"))
    ours_seconds, ours_dice = min(ours, key=lambda r: r[0])
    nnunet_seconds, nnunet_dice = min(theirs, key=lambda r: r[0])
    both = [c for c in ours_dice if c in nnunet_dice and nnunet_dice[c] == nnunet_dice[c]]  # nnU-Net: NaN if empty
    figures = {"cases": args.cases, "processes": args.processes, "repeats": args.repeats,
               "ours_seconds": ours_seconds, "nnunet_seconds": nnunet_seconds,
               "ours_runs_seconds": [r[0] for r in ours], "nnunet_runs_seconds": [r[0] for r in theirs],
               "dice_compared_cases": len(both),
               "dice_max_abs_difference": max(abs(ours_dice[c] - nnunet_dice[c]) for c in both)}
    print(f"wrote {write_record(RECORD_NAME, figures, measurement=measured, results=args.results)}")


if __name__ == "__main__":
    main()
