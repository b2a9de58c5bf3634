"""The demo's figures: wall time, held-out test Dice and lesion-wise F1, and the DWI-threshold baseline.

    python benchmarks/bench_demo.py [TRAINER ...]   (default: nnUNetTrainerStrokeUNet_Tiny)

Runs `nnunet-stroke demo --trainer TRAINER` in a fresh temporary folder for each trainer and writes
benchmarks/results/demo.md. Bars from the project's first issue: under 10 minutes, mean test Dice >= 0.70
and >= 0.15 above the threshold baseline.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "demo.md"


def run(trainer: str) -> dict:
    with tempfile.TemporaryDirectory() as workdir:
        subprocess.run(["nnunet-stroke", "demo", "--workdir", workdir, "--trainer", trainer], check=True,
                       env=dict(os.environ))
        return json.loads((Path(workdir) / "summary.json").read_text(encoding="utf-8"))


def main() -> None:
    trainers = sys.argv[1:] or ["nnUNetTrainerStrokeUNet_Tiny"]
    existing = {}
    if RESULTS.exists():  # keep rows of trainers not rerun now
        for line in RESULTS.read_text(encoding="utf-8").splitlines():
            if line.startswith("| nnUNetTrainer"):
                existing[line.split("|")[1].strip()] = line
    for trainer in trainers:
        s = run(trainer)
        passed = s["wall_seconds"] < 600 and s["mean_dice"] >= 0.70 and s["mean_dice"] - s["threshold_baseline_dice"] >= 0.15
        existing[trainer] = (f"| {trainer} | {s['test_cases']} | {s['mean_dice']:.3f} | {s['mean_dice_lesion_cases']:.3f} "
                             f"| {s['mean_lesion_f1']:.3f} | {s['threshold_baseline_dice']:.3f} | {s['wall_seconds']:.0f} "
                             f"| {'yes' if passed else 'NO'} |")
    RESULTS.write_text(
        "## Demo: whole pipeline on the phantom (CPU)\n\n"
        f"Command: `python benchmarks/bench_demo.py {' '.join(trainers)}` (runs `nnunet-stroke demo --trainer ...`); "
        f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, torch CPU.\n\n"
        "Held-out test cases of fold 5 (the first 8:1:1 repeat of a 50-case phantom, stratified by lesion volume); "
        "Dice with both-empty = 1; threshold baseline = best global z-scored DWI threshold chosen on the "
        "fold's training cases. Bars: < 600 s, Dice >= 0.70, >= 0.15 above the baseline.\n\n"
        "| trainer | test cases | mean Dice | Dice (lesion cases) | lesion F1 | DWI threshold Dice | wall s | bars met |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(existing.values()) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
