"""The demo, run as a new user runs it: `nnunet-stroke demo --seed S [--trainer T]` per seed, in a fresh folder.

    python benchmarks/bench_demo.py --seeds 0 1 2 [--trainer nnUNetTrainerLBMNet_Tiny]

For every seed: one subprocess, wall time measured around it (process start to exit, plots included),
the 1-minute load average sampled every 5 s while it runs, and one record in benchmarks/results/demo/
with every figure of the demo's summary.json. The section lists every run and, per trainer, mean +- sd
over its runs and whether each bar of the project's issue 13 is met: wall < 600 s, mean Dice >= 0.70,
mean Dice - rule baseline Dice >= 0.10.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from records import RESULTS, Measurement, not_recorded, provenance, write_record

TITLE = "Demo: the whole pipeline on the phantom (CPU)"
COMMAND = "python benchmarks/bench_demo.py --seeds 0 1 2"
DEFAULT_TRAINER = "nnUNetTrainerStrokeUNet_Tiny"
WALL_BAR_S, DICE_BAR, MARGIN_BAR = 600, 0.70, 0.10
COLUMNS = [("test_cases", "test cases", "d"), ("mean_dice", "mean Dice", ".3f"),
           ("heldout_mean_dice", "held-out Dice", ".3f"), ("external_mean_dice", "external Dice", ".3f"),
           ("mean_dice_lesion_cases", "Dice (lesion cases)", ".3f"), ("mean_lesion_f1", "lesion F1", ".3f"),
           ("threshold_baseline_dice", "DWI threshold Dice", ".3f"), ("rule_baseline_dice", "rule Dice", ".3f"),
           ("epochs_trained", "epochs", "d")]


def run_demo(trainer: str, seed: int, extra: list[str], results: Path = RESULTS) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench_demo_{seed}_"))
    command = ["nnunet-stroke", "demo", "--workdir", str(workdir / "demo"), "--seed", str(seed), "--trainer", trainer,
               *extra]
    try:
        with Measurement() as measured:
            subprocess.run(command, check=True)
        summary = json.loads((workdir / "demo" / "summary.json").read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    figures = {"trainer": trainer, "demo_command": " ".join(command[:2] + command[4:]), "summary": summary,
               "process_wall_seconds": round(measured.wall_seconds, 1)}
    return write_record("demo", figures, seed=seed, measurement=measured, results=results)


def bars(record: dict) -> dict[str, bool | None]:
    summary, wall = record["figures"]["summary"], record["figures"]["process_wall_seconds"]
    rule = summary.get("rule_baseline_dice")
    return {"wall": wall < WALL_BAR_S, "dice": summary["mean_dice"] >= DICE_BAR,
            "margin": None if rule is None else summary["mean_dice"] - rule >= MARGIN_BAR}


def _cell(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _yes(flag: bool | None) -> str:
    return "n/a" if flag is None else ("yes" if flag else "NO")


def spread(values: list, spec: str = ".3f") -> str:
    """mean +- sd of the values that exist ("-" for none; no sd for one)."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    sd = f" +- {format(statistics.stdev(values), spec)}" if len(values) > 1 else ""
    return f"{format(statistics.fmean(values), spec)}{sd}"


def render(records: list[dict]) -> str:
    if not records:
        return not_recorded(TITLE, COMMAND)
    lines = [f"## {TITLE}", "",
             f"Command: `{COMMAND} [--trainer T]`: `nnunet-stroke demo --seed S` per seed in a fresh folder; wall "
             "= process start to exit, measured by the script around the subprocess; load = 1-minute load "
             "average sampled every 5 s during the run (mean / max). Bars (issue 13): wall < 600 s, mean Dice >= "
             "0.70, mean Dice - rule baseline Dice >= 0.10; mean Dice over the held-out and external test cases.",
             "", "| trainer | seed | commit | " + " | ".join(c[1] for c in COLUMNS)
             + " | wall s | load mean / max | wall < 600 | Dice >= 0.70 | Dice - rule >= 0.10 |",
             "|---" * (len(COLUMNS) + 8) + "|"]
    by_code: dict[tuple[str, str], list[dict]] = {}  # (trainer, commit): runs of the same code
    for record in records:
        summary, load = record["figures"]["summary"], record["load_average_1min"]
        met = bars(record)
        by_code.setdefault((record["figures"]["trainer"], record["git_commit"][:7]), []).append(record)
        lines.append(f"| {record['figures']['trainer']} | {record['seed']} | {record['git_commit'][:7]}"
                     f"{'+' if record['git_dirty'] else ''} | "
                     + " | ".join(_cell(summary.get(key), spec) for key, _, spec in COLUMNS)
                     + f" | {record['figures']['process_wall_seconds']:.0f} | "
                     + (f"{load['mean']:.1f} / {load['max']:.1f}" if load else "not sampled") + " | "
                     + " | ".join(_yes(met[k]) for k in ("wall", "dice", "margin")) + " |")
    lines += ["", "Per trainer and commit (runs of the same code), over its runs (mean +- sd; sd needs two runs):",
              "", "| trainer | commit | runs | seeds | mean Dice | rule Dice | Dice - rule | wall s | runs meeting "
              "every bar |", "|---|---|---|---|---|---|---|---|---|"]
    for (trainer, commit), runs in by_code.items():
        dice = [r["figures"]["summary"]["mean_dice"] for r in runs]
        rule = [r["figures"]["summary"].get("rule_baseline_dice") for r in runs]
        margin = [d - r for d, r in zip(dice, rule) if r is not None]
        wall = [r["figures"]["process_wall_seconds"] for r in runs]
        passed = sum(all(bars(r).values()) for r in runs)
        lines.append(f"| {trainer} | {commit} | {len(runs)} | {', '.join(str(r['seed']) for r in runs)} | {spread(dice)} | "
                     f"{spread(rule)} | {spread(margin)} | {spread(wall, '.0f')} | {passed} of {len(runs)} |")
    lines += ["", "Latest run: " + provenance(records[-1])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trainer", default=DEFAULT_TRAINER)
    parser.add_argument("demo_arguments", nargs="*", help="more arguments for the demo (after --), e.g. --minutes 1")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="where records go (default benchmarks/results; another folder for trial runs)")
    args = parser.parse_args(argv)
    for seed in args.seeds:
        print(f"wrote {run_demo(args.trainer, seed, args.demo_arguments, args.results)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
