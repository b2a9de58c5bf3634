"""Stroke ensembles on the demo phantom (CPU): two tiny trainers, each alone and combined by
``nnunet-stroke ensemble`` (soft vote = mean probabilities; majority vote, which for two models keeps the
voxels both call lesion), held-out mean Dice per 8:1:1 fold, mean +- sd over the folds.

    python benchmarks/bench_ensemble.py [--cases 80] [--folds 5 6 7] [--epochs 40] [--iterations 25]
    python benchmarks/bench_ensemble.py --check      # smallest settings; the record goes to a temporary folder

As a user runs it, every step a subprocess in a fresh folder: ``nnunet-stroke phantom`` (ISLES 2022 layout,
the demo's 80 cases) -> ``nnunet-stroke convert isles22`` -> ``nnUNetv2_plan_and_preprocess`` (3d_fullres)
-> ``nnunet-stroke splits`` -> per trainer and fold ``nnunet-stroke train`` (the ``_Tiny`` schedule at a
FIXED number of epochs and iterations, so the comparison does not depend on machine load) -> per fold
``nnunet-stroke predict-heldout`` for each member (metrics.json) and ``nnunet-stroke ensemble`` of the two
fold models on the same held-out cases, scored by ``nnunet-stroke evaluate`` (ISLES'22 protocol). No
test-time mirroring anywhere. One record per run in benchmarks/results/ensemble/ (records.py).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from records import RESULTS, Measurement, not_recorded, provenance, write_record

TITLE = "Ensembles of two tiny trainers on the demo phantom (CPU)"
COMMAND = "python benchmarks/bench_ensemble.py --cases 80 --folds 5 6 7 --epochs 40 --iterations 25"
TRAINERS = ("nnUNetTrainerStrokeUNet_Tiny", "nnUNetTrainerLBMNet_Tiny")
VOTES = ("soft", "majority")
DATASET_ID, CONFIGURATION = 985, "3d_fullres"


def _run(command: list[str], env: dict) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, env=env, check=True)


def _mean_dice(metrics_file: Path) -> float:
    return json.loads(metrics_file.read_text(encoding="utf-8"))["aggregate"]["dice"]["mean"]


def _fold_scores(workdir: Path, env: dict, fold: int) -> dict[str, float]:
    """Held-out mean Dice of each member and of each vote for one fold."""
    results = Path(env["nnUNet_results"])
    dataset = next(results.glob(f"Dataset{DATASET_ID}_*"))
    raw = next(Path(env["nnUNet_raw"]).glob(f"Dataset{DATASET_ID}_*"))
    heldout = json.loads(next(Path(env["nnUNet_preprocessed"]).glob(f"Dataset{DATASET_ID}_*"))
                         .joinpath("heldout_test.json").read_text(encoding="utf-8"))[str(fold)]
    inputs, references = workdir / f"fold_{fold}" / "images", workdir / f"fold_{fold}" / "references"
    inputs.mkdir(parents=True)
    references.mkdir()
    for case in heldout:
        for image in (raw / "imagesTr").glob(f"{case}_*.nii.gz"):
            shutil.copy(image, inputs / image.name)
        shutil.copy(raw / "labelsTr" / f"{case}.nii.gz", references / f"{case}.nii.gz")
    scores = {}
    for trainer in TRAINERS:
        _run(["nnunet-stroke", "predict-heldout", str(DATASET_ID), "-c", CONFIGURATION, "-f", str(fold), "-tr",
              trainer, "--disable_tta", "-device", "cpu"], env)
        scores[trainer] = _mean_dice(dataset / f"{trainer}__nnUNetPlans__{CONFIGURATION}" / f"fold_{fold}"
                                     / "heldout_test" / "metrics.json")
    models = [f"{dataset / f'{trainer}__nnUNetPlans__{CONFIGURATION}'}:{fold}" for trainer in TRAINERS]
    for vote in VOTES:
        output = workdir / f"fold_{fold}" / vote
        _run(["nnunet-stroke", "ensemble", "--models", *models, "-i", str(inputs), "-o", str(output), "--vote", vote,
              "--disable_tta", "-device", "cpu"], env)
        _run(["nnunet-stroke", "evaluate", "--ref", str(references), "--pred", str(output), "--protocol", "isles22",
              "--out", str(output.with_suffix(".json"))], env)
        scores[f"ensemble_{vote}"] = _mean_dice(output.with_suffix(".json"))
    return scores


def run(cases: int, folds: list[int], epochs: int, iterations: int, seed: int, results: Path) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="bench_ensemble_"))
    env = dict(os.environ, NNUNET_STROKE_TINY_EPOCHS=str(epochs), NNUNET_STROKE_TINY_ITERATIONS=str(iterations))
    env.pop("NNUNET_STROKE_TINY_MINUTES", None)
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[variable] = str(workdir / variable)
        (workdir / variable).mkdir()
    try:
        with Measurement() as measured:
            _run(["nnunet-stroke", "phantom", str(workdir / "source"), "--layout", "isles22", "--cases", str(cases),
                  "--seed", str(seed)], env)
            release = next((workdir / "source").iterdir())  # the phantom writes the release's root folder in it
            _run(["nnunet-stroke", "convert", "isles22", str(release), "--dataset-id", str(DATASET_ID)], env)
            _run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", CONFIGURATION, "-np", "2", "-npfp", "2"],
                 env)
            _run(["nnunet-stroke", "splits", str(DATASET_ID), "--seed", str(seed), "--stratify", "volume"], env)
            for trainer in TRAINERS:
                for fold in folds:
                    _run(["nnunet-stroke", "train", str(DATASET_ID), CONFIGURATION, str(fold), "-tr", trainer,
                          "-device", "cpu"], env)
            per_fold = {str(fold): _fold_scores(workdir, env, fold) for fold in folds}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    figures = {"trainers": list(TRAINERS), "cases": cases, "folds": folds, "epochs": epochs, "iterations": iterations,
               "held_out_mean_dice": per_fold}
    return write_record("ensemble", figures, seed=seed, measurement=measured, results=results)


def _spread(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f}" + (f" +- {statistics.stdev(values):.3f}" if len(values) > 1 else "")


def render(records: list[dict]) -> str:
    if not records:
        return not_recorded(TITLE, COMMAND)
    record = records[-1]
    figures = record["figures"]
    per_fold = figures["held_out_mean_dice"]
    rows = [*figures["trainers"], *(f"ensemble_{vote}" for vote in VOTES)]
    names = {"ensemble_soft": "ensemble, soft vote (mean probabilities)",
             "ensemble_majority": "ensemble, majority vote (two models: both must agree)"}
    lines = [f"## {TITLE}", "",
             f"{figures['cases']} phantom cases (ISLES 2022 layout, seed {record['seed']}), `_Tiny` schedule of "
             f"{figures['epochs']} epochs x {figures['iterations']} iterations per fold, folds "
             f"{', '.join(map(str, figures['folds']))} (repeated 8:1:1 splits; each fold's own held-out cases), no "
             "test-time mirroring. Held-out mean Dice (ISLES'22 rule) per fold; mean +- sd over the folds.", "",
             "| model | " + " | ".join(f"fold {fold}" for fold in per_fold) + " | mean +- sd |",
             "|---" * (len(per_fold) + 2) + "|"]
    for row in rows:
        values = [per_fold[fold][row] for fold in per_fold]
        lines.append(f"| {names.get(row, row)} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {_spread(values)} |")
    lines += ["", provenance(record)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=80)
    parser.add_argument("--folds", type=int, nargs="+", default=[5, 6, 7], help="8:1:1 folds (5-9)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the record goes")
    parser.add_argument("--check", action="store_true",
                        help="smallest settings (20 cases, fold 5, 1 epoch x 2 iterations); record in a temporary "
                             "folder")
    args = parser.parse_args(argv)
    if args.check:
        args.cases, args.folds, args.epochs, args.iterations = 20, [5], 1, 2
        args.results = Path(tempfile.mkdtemp(prefix="bench_ensemble_check_"))
    path = run(args.cases, args.folds, args.epochs, args.iterations, args.seed, args.results)
    print(f"wrote {path}")
    if args.check:
        print(render([json.loads(path.read_text(encoding="utf-8"))]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
