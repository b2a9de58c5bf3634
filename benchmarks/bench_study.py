"""`nnunet-stroke study lbmnet-table6 ID --tiny` on the demo's phantom: the table and its wall time.

    python benchmarks/bench_study.py                      # the recorded run: every row of Table 6, fold 5,
                                                          # 3 training minutes per row (at most ~30 min in all)
    python benchmarks/bench_study.py --rows AblT6M1,AblT6M2 --cases 20 --epochs 1 --iterations 1 --results /tmp/x
                                                          # the smallest check of the script itself

The demo's phantom (``nnunet_stroke.workflows.demo``: 80 ISLES-layout cases, seed 0, Dataset901) is converted,
planned, preprocessed and split in a fresh folder (not timed); then the study command runs with the
``_Tiny`` trainers, each training cut to ``--minutes`` by ``NNUNET_STROKE_TINY_MINUTES`` (see
trainers.tiny), and its wall time and the 1-minute load average (sampled every 10 s) are recorded in
benchmarks/results/study/.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from records import RESULTS, Measurement, not_recorded, provenance, write_record

from nnunet_stroke.trainers.tiny import DEFAULT_EPOCHS, DEFAULT_ITERATIONS

RECORD_NAME = "study"
TABLE = "lbmnet-table6"
FOLD = "5"
BUDGET_MINUTES = 30


def prepare_demo_dataset(workdir: Path, cases: int) -> None:
    """The demo's steps 1-4 (phantom, convert, plan and preprocess 3d_fullres, splits) in ``workdir``."""
    from nnunet_stroke.workflows.demo import CONFIGURATION, DEMO_DATASET_ID, DEMO_DATASET_NAME, DEMO_SEED, point_nnunet_at

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


TITLE = f"Study: `{TABLE} --tiny` on the demo phantom (CPU)"


def render(records: list[dict]) -> str:
    if not records:
        return not_recorded(TITLE, "python benchmarks/bench_study.py")
    record = records[-1]
    f = record["figures"]
    within = "yes" if record["wall_seconds"] <= BUDGET_MINUTES * 60 else "NO"
    schedule = (f"at most {f['tiny_epochs'] or DEFAULT_EPOCHS} epochs of "
                f"{f['tiny_iterations'] or DEFAULT_ITERATIONS} iterations")
    return (f"## {TITLE}\n\n"
            f"{provenance(record)} The study command: `{f['study_command']}` with "
            f"`NNUNET_STROKE_TINY_MINUTES={f['tiny_minutes']}`.\n\n"
            f"The demo's phantom ({f['phantom_cases']} ISLES-layout cases, Dataset901, 3d_fullres nnUNetPlans) "
            f"prepared beforehand (not timed); fold {FOLD} only (one 8:1:1 split: no sd over splits; the p-values "
            f"pair the split's held-out cases); each row's `_Tiny` schedule ({schedule}) cut to a "
            f"{f['tiny_minutes']}-minute training budget; the wall time is the study command's and includes "
            f"every training, nnU-Net's final validation, the held-out predictions and the table: "
            f"{record['wall_seconds']:.0f} s for {f['rows']} rows (within {BUDGET_MINUTES} min: {within}).\n\n"
            f"{f['table_rows']}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget per row (NNUNET_STROKE_TINY_MINUTES)")
    parser.add_argument("--rows", default=None, help="only these rows (checking the script)")
    parser.add_argument("--cases", type=int, default=None, help="phantom cases (default: the demo's 80)")
    parser.add_argument("--epochs", type=int, default=None, help="NNUNET_STROKE_TINY_EPOCHS (default: the _Tiny 40)")
    parser.add_argument("--iterations", type=int, default=None, help="NNUNET_STROKE_TINY_ITERATIONS")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="where the record goes (default benchmarks/results; another folder for trial runs)")
    args = parser.parse_args()

    from nnunet_stroke.workflows.demo import DEMO_CASES, DEMO_DATASET_ID

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
        with Measurement(interval=10.0) as measured:
            subprocess.run(command, env=environment, check=True)
        study = Path(workdir) / "nnUNet_results"
        study_json = next(study.glob(f"*/studies/{TABLE}_tiny__*/study.json"))
        summary = json.loads(study_json.read_text(encoding="utf-8"))
        table = study_json.with_suffix(".md").read_text(encoding="utf-8")
    figures = {"study_command": shlex.join(command), "tiny_minutes": args.minutes, "phantom_cases": cases,
               "tiny_epochs": args.epochs, "tiny_iterations": args.iterations, "rows": len(summary["rows"]),
               "table_rows": "\n".join(line for line in table.splitlines() if line.startswith("|")), "study": summary}
    print(f"wrote {write_record(RECORD_NAME, figures, measurement=measured, results=args.results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
