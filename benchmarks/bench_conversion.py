"""Conversion speed of `nnunet-stroke convert` on phantom trees of the real sizes: 250 ISLES 2022 cases
(112x112x72 voxels at 2 mm, DWI+ADC, and with FLAIR resampled) and ATLAS v2.0 cases (197x233x189 at
1 mm), with 1 and 2 worker processes in the same run.

    python benchmarks/bench_conversion.py [--isles-cases 250] [--atlas-cases 40] [--distinct 10]

Writing a distinct phantom case costs more than converting it, so ``--distinct`` cases are generated and
hard-linked under new case ids up to the requested count; the converter reads, checks and writes every
case as if it were distinct. The full ATLAS training set (655 cases, about 20 GB of converted float32
images) is not converted: ``--atlas-cases`` are, and the time for 655 is extrapolated linearly from the
per-case time (conversion is per case, with no cross-case work). Writes a record in
benchmarks/results/conversion/.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from records import RESULTS, Measurement, not_recorded, provenance, write_record

RECORD_NAME = "conversion"
ISLES_SHAPE = (72, 112, 112)
ATLAS_TRAINING_CASES = 655


def replicate(source_root: Path, target_root: Path, case_dirs: list[Path], count: int, new_id) -> None:
    """Hard-link the files of ``case_dirs`` (relative to ``source_root``) into ``target_root`` under ``count``
    case ids, cycling through the distinct cases; ``new_id(i, old)`` names the i-th copy of case ``old``."""
    for copy in range(count):
        original = case_dirs[copy % len(case_dirs)]
        old = original.name
        new = new_id(copy, old)
        for folder in [original] + [p for p in source_root.glob(f"derivatives/{old}")]:
            for path in folder.rglob("*"):
                if path.is_file():
                    target = target_root / str(path.relative_to(source_root)).replace(old, new)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.link(path, target)


def timed_conversion(module, src: Path, processes: int, **options) -> float:
    raw = Path(tempfile.mkdtemp(prefix="bench_raw_"))
    os.environ["nnUNet_raw"] = str(raw)
    try:
        start = time.perf_counter()
        module.convert(src, 900, overwrite=True, num_processes=processes, **options)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(raw)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isles-cases", type=int, default=250)
    parser.add_argument("--atlas-cases", type=int, default=40)
    parser.add_argument("--distinct", type=int, default=10, help="distinct phantom cases per dataset")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="where the record goes (default benchmarks/results; another folder for trial runs)")
    args = parser.parse_args(argv)

    from nnunet_stroke.dataset_conversion import atlas2, isles22
    from nnunet_stroke.phantom import write_phantom
    from nnunet_stroke.phantom.atlas2 import ATLAS_SHAPE

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_conversion_") as work, Measurement() as measured:
        work = Path(work)
        start = time.perf_counter()
        distinct = write_phantom(work / "isles_distinct", "isles22", cases=args.distinct, seed=0, shape=ISLES_SHAPE)
        isles_generation = (time.perf_counter() - start) / args.distinct
        isles = work / "isles" / "ISLES-2022"
        replicate(distinct, isles, sorted(distinct.glob("sub-strokecase*")), args.isles_cases,
                  lambda i, old: f"sub-strokecase{i + 1:04d}")
        for processes, flair in ((1, False), (2, False), (2, True)):
            seconds = timed_conversion(isles22, isles, processes, with_flair=flair)
            rows.append(("ISLES 2022", "DWI+ADC+FLAIR" if flair else "DWI+ADC", "112x112x72 @ 2 mm",
                         args.isles_cases, processes, seconds, ""))
        shutil.rmtree(work / "isles")
        shutil.rmtree(work / "isles_distinct")

        start = time.perf_counter()
        distinct = write_phantom(work / "atlas_distinct", "atlas2", cases=args.distinct, seed=0, shape=ATLAS_SHAPE)
        atlas_generation = (time.perf_counter() - start) / (args.distinct + -(-args.distinct * 300 // 655))
        atlas = work / "atlas" / "ATLAS_2"
        subjects = sorted(distinct.glob("Training/R*/sub-*"))
        replicate(distinct, atlas, subjects, args.atlas_cases, lambda i, old: f"sub-r{old[5:8]}s{i + 1:03d}")
        for processes in (1, 2):
            seconds = timed_conversion(atlas2, atlas, processes)
            per_case = seconds / args.atlas_cases
            rows.append(("ATLAS v2.0", "T1w", "197x233x189 @ 1 mm", args.atlas_cases, processes, seconds,
                         f"{per_case * ATLAS_TRAINING_CASES / 60:.1f} min for 655 (extrapolated)"))
    settings = {k: v for k, v in vars(args).items() if k != "results"}
    figures = {"settings": settings, "rows": rows, "isles_generation_s_per_case": isles_generation,
               "atlas_generation_s_per_case": atlas_generation}
    print(f"wrote {write_record(RECORD_NAME, figures, measurement=measured, results=args.results)}")


TITLE = "Dataset conversion (`nnunet-stroke convert`)"
COMMAND = "python benchmarks/bench_conversion.py"


def render(records: list[dict]) -> str:
    if not records:
        return not_recorded(TITLE, COMMAND)
    record = records[-1]
    f = record["figures"]
    lines = [f"## {TITLE}", "", provenance(record), "",
             "| dataset | channels | grid | cases | processes | seconds | s/case | note |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for dataset, channels, grid, cases, processes, seconds, note in f["rows"]:
        lines.append(f"| {dataset} | {channels} | {grid} | {cases} | {processes} | {seconds:.1f} | "
                     f"{seconds / cases:.3f} | {note} |")
    lines += [
        "",
        f"Phantom generation (not part of the conversion; in the wall time above): "
        f"{f['isles_generation_s_per_case']:.1f} s per ISLES-sized case, {f['atlas_generation_s_per_case']:.1f} s "
        f"per ATLAS-sized case; {f['settings']['distinct']} distinct cases per dataset were "
        "generated and hard-linked under new ids. Per case the converter reads image headers with SimpleITK "
        "(geometry checks), decodes every image once with nibabel (NaN/infinite voxels, corrupt data; ITK's "
        "NIfTI reader turns NaN into 0), copies the images byte for byte when they are already .nii.gz on the "
        "reference grid, checks the mask values and writes the uint8 label; FLAIR is resampled and written.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
