"""`nnunet-stroke study lbmnet-table6 ID --tiny` on the demo's phantom: the table and its wall time.

    python benchmarks/bench_study.py                      # the recorded run: every row of Table 6, fold 5,
                                                          # 3 training minutes per row (at most ~30 min in all)
    python benchmarks/bench_study.py --rows AblT6M1,AblT6M2 --cases 20 --epochs 1 --iterations 1 --no-record
                                                          # the smallest check of the script itself

The demo's phantom (``nnunet_stroke.demo``: 80 ISLES-layout cases, seed 0, Dataset901) is converted,
planned, preprocessed and split in a fresh folder (not timed); then the study command runs with the
``_Tiny`` trainers, each training cut to ``--minutes`` by ``NNUNET_STROKE_TINY_MINUTES`` (see
trainers.tiny), and its wall time and the 1-minute load average (sampled every 10 s) are recorded.
Writes benchmarks/results/study.json (the record) and benchmarks/results/study.md (the section
benchmarks/run.py puts into RESULTS.md).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from nnunet_stroke.trainers.tiny import DEFAULT_EPOCHS, DEFAULT_ITERATIONS

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TABLE = "lbmnet-table6"
FOLD = "5"
BUDGET_MINUTES = 30


def prepare_demo_dataset(workdir: Path, cases: int) -> None:
    """The demo's steps 1-4 (phantom, convert, plan and preprocess 3d_fullres, splits) in ``workdir``."""
    from nnunet_stroke.demo import CONFIGURATION, DEMO_DATASET_ID, DEMO_DATASET_NAME, DEMO_SEED, point_nnunet_at

    point_nnunet_at(workdir)
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprints, plan_experiments,
                                                                       preprocess)

    from nnunet_stroke.dataset_conversion import isles22
    from nnunet_stroke.phantom import write_phantom
    from nnunet_stroke.splits import write_splits

    cores = os.cpu_count() or 1
    source = write_phantom(workdir / "phantom", "isles22", cases=cases, seed=DEMO_SEED)
    isles22.convert(source, DEMO_DATASET_ID, name=DEMO_DATASET_NAME, overwrite=True, num_processes=cores)
    extract_fingerprints([DEMO_DATASET_ID], num_processes=cores, check_dataset_integrity=True, clean=True)
    plan_experiments([DEMO_DATASET_ID])
    preprocess([DEMO_DATASET_ID], configurations=(CONFIGURATION,), num_processes=(cores,))
    write_splits(DEMO_DATASET_ID, seed=DEMO_SEED, stratify="volume")


def run_sampling_load(command: list[str], environment: dict) -> tuple[float, list[float]]:
    """Run ``command``; returns its wall seconds and the 1-minute load averages sampled every 10 s."""
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(10):
            samples.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.monotonic()
    sampler.start()
    try:
        subprocess.run(command, env=environment, check=True)
    finally:
        stop.set()
        sampler.join()
    return time.monotonic() - started, samples or [os.getloadavg()[0]]


def git_commit() -> str:
    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], cwd=HERE, capture_output=True, text=True, encoding="utf-8").stdout.strip()

    return git("rev-parse", "HEAD") + (" (uncommitted changes)" if git("status", "--porcelain", "--", "nnunet_stroke") else "")


def markdown(record: dict, table: str) -> str:
    rows_table = "\n".join(line for line in table.splitlines() if line.startswith("|"))
    load = record["load_average_1min"]
    within = "yes" if record["wall_seconds"] <= BUDGET_MINUTES * 60 else "NO"
    schedule = (f"at most {record['tiny_epochs'] or DEFAULT_EPOCHS} epochs of "
                f"{record['tiny_iterations'] or DEFAULT_ITERATIONS} iterations")
    return (f"## Study: `{TABLE} --tiny` on the demo phantom (CPU)\n\n"
            f"Command: `{record['command']}` with `NNUNET_STROKE_TINY_MINUTES={record['tiny_minutes']}`, run by "
            f"`python benchmarks/bench_study.py`; commit {record['git_commit']}; machine: {record['machine']}.\n\n"
            f"The demo's phantom ({record['phantom_cases']} ISLES-layout cases, Dataset901, 3d_fullres nnUNetPlans) "
            f"prepared beforehand (not timed); fold {FOLD} only (one 8:1:1 split: no sd over splits; the p-values "
            f"pair the split's held-out cases); each row's `_Tiny` schedule ({schedule}) cut to a "
            f"{record['tiny_minutes']}-minute training budget; the study's wall time includes "
            f"every training, nnU-Net's final validation, the held-out predictions and the table. "
            f"Wall time {record['wall_seconds']:.0f} s for {record['rows']} rows (within {BUDGET_MINUTES} min: "
            f"{within}); 1-minute load average during the run: mean {sum(load) / len(load):.1f}, max {max(load):.1f} "
            f"({len(load)} samples).\n\n{rows_table}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget per row (NNUNET_STROKE_TINY_MINUTES)")
    parser.add_argument("--rows", default=None, help="only these rows (checking the script)")
    parser.add_argument("--cases", type=int, default=None, help="phantom cases (default: the demo's 80)")
    parser.add_argument("--epochs", type=int, default=None, help="NNUNET_STROKE_TINY_EPOCHS (default: the _Tiny 40)")
    parser.add_argument("--iterations", type=int, default=None, help="NNUNET_STROKE_TINY_ITERATIONS")
    parser.add_argument("--no-record", action="store_true", help="print the section; write nothing to results/")
    args = parser.parse_args()

    from nnunet_stroke.demo import DEMO_CASES, DEMO_DATASET_ID

    cases = args.cases or DEMO_CASES
    with tempfile.TemporaryDirectory(prefix="bench_study_") as workdir:
        print(f"=== preparing the demo phantom ({cases} cases) in {workdir}", flush=True)
        prepare_demo_dataset(Path(workdir), cases)
        command = ["nnunet-stroke", "study", TABLE, str(DEMO_DATASET_ID), "--tiny", "--folds", FOLD, "-device", "cpu"]
        command += ["--rows", args.rows] if args.rows else []
        environment = dict(os.environ, NNUNET_STROKE_TINY_MINUTES=str(args.minutes))
        for variable, value in (("NNUNET_STROKE_TINY_EPOCHS", args.epochs), ("NNUNET_STROKE_TINY_ITERATIONS", args.iterations)):
            if value is not None:
                environment[variable] = str(value)
        print(f"=== {shlex.join(command)}", flush=True)
        wall, load = run_sampling_load(command, environment)
        study = Path(workdir) / "nnUNet_results"
        study_json = next(study.glob(f"*/studies/{TABLE}_tiny__*/study.json"))
        summary = json.loads(study_json.read_text(encoding="utf-8"))
        table = study_json.with_suffix(".md").read_text(encoding="utf-8")
    record = {"command": shlex.join(command), "tiny_minutes": args.minutes, "phantom_cases": cases,
              "tiny_epochs": args.epochs, "tiny_iterations": args.iterations, "rows": len(summary["rows"]),
              "wall_seconds": round(wall, 1), "load_average_1min": load, "git_commit": git_commit(),
              "machine": f"{os.cpu_count()} cores, {platform.machine()}, torch CPU", "study": summary}
    section = markdown(record, table)
    if args.no_record:
        print(section)
        return 0
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "study.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    (RESULTS / "study.md").write_text(section, encoding="utf-8")
    print(section + f"\nwrote {RESULTS / 'study.json'} and {RESULTS / 'study.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
