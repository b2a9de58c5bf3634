"""Evaluation speed: `nnunet-stroke evaluate` (all stroke metrics) against nnU-Net's own
`compute_metrics_on_folder` (Dice/IoU only, the engine of `nnUNetv2_evaluate_folder`) on the same
250 synthetic ISLES-sized cases (112x112x72 voxels at 2 mm), the same number of worker processes.

    python benchmarks/bench_evaluation.py [--cases 250] [--processes 2] [--repeats 2]

Writes benchmarks/results/evaluation.md. Each tool runs ``--repeats`` times, alternating, and the fastest
run of each is reported (other sessions may share the machine); Dice of both tools is compared per case.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "evaluation.md"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=250)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as workdir:
        ref_dir, pred_dir = write_cases(Path(workdir), args.cases)
        ours, theirs = [], []
        for _ in range(args.repeats):
            ours.append(time_ours(ref_dir, pred_dir, args.processes))
            theirs.append(time_nnunet(ref_dir, pred_dir, args.processes, Path(workdir) / "summary.json"))
    load_after = os.getloadavg()[0]
    ours_seconds, ours_dice = min(ours, key=lambda r: r[0])
    nnunet_seconds, nnunet_dice = min(theirs, key=lambda r: r[0])
    both = [c for c in ours_dice if c in nnunet_dice and nnunet_dice[c] == nnunet_dice[c]]  # nnU-Net: NaN if empty
    max_difference = max(abs(ours_dice[c] - nnunet_dice[c]) for c in both)
    command = "python benchmarks/bench_evaluation.py " + " ".join(sys.argv[1:])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "## Evaluation: `nnunet-stroke evaluate` vs nnU-Net's `compute_metrics_on_folder`\n\n"
        f"Command: `{command.strip()}`; machine: {os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}; {args.processes} worker processes for both; fastest of "
        f"{args.repeats} alternating runs each; 1-minute load average {load_before:.1f} before and "
        f"{load_after:.1f} after (other work on the machine slows both tools alike).\n\n"
        f"{args.cases} synthetic ISLES-sized cases (112x112x72 voxels, 2 mm, 0-4 irregular lesions, predictions "
        "shifted/dilated/eroded with occasional false positives), NIfTI. nnU-Net computes Dice and IoU "
        "(`nnUNetv2_evaluate_folder`'s engine); `nnunet-stroke evaluate --protocol isles22` computes Dice, IoU, "
        "F2, Recall, Precision, HD95 (mm and voxels), volumes, lesion counts, lesion-wise F1, strata, "
        "detection with 2000 bootstrap resamples and Bland-Altman.\n\n"
        "| tool | total s | s per case | ratio to nnU-Net |\n|---|---|---|---|\n"
        f"| nnU-Net compute_metrics_on_folder | {nnunet_seconds:.1f} | {nnunet_seconds / args.cases:.3f} | 1.00 |\n"
        f"| nnunet-stroke evaluate | {ours_seconds:.1f} | {ours_seconds / args.cases:.3f} | "
        f"{ours_seconds / nnunet_seconds:.2f} |\n\n"
        f"Dice agrees with nnU-Net's on the {len(both)} cases where nnU-Net defines it (max abs difference "
        f"{max_difference:.1e}); nnU-Net leaves both-empty cases out (NaN), ISLES'22 scores them 1.\n", encoding="utf-8")
    print(RESULTS.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
