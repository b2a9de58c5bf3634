"""Aggregation over data splits: the held-out test sets of repeated random 8:1:1 splits as mean +- std
across splits (LBMNet Table 5, section 4.5) and the validation folds of k-fold cross-validation.

Each split contributes its per-split mean (from its metrics.json); the summary gives, per metric, the mean
and sample standard deviation of those split means and the number of splits, plus the pooled per-case
mean over all cases of the group (for k-fold CV every case is validated once, so the pooled mean is
nnU-Net's usual cross-validation figure).

nnU-Net results folders (``<trainer>__<plans>__<configuration>``) follow the package's split layout
(see `nnunet_stroke.splits`): folds 0-4 are 5-fold CV (``fold_i/validation/``), folds 5-9 the repeated 8:1:1 splits
(``fold_i/heldout_test/``, written by `nnunet-stroke predict-heldout`).
"""
from __future__ import annotations

from pathlib import Path

from nnunet_stroke.errors import UserError
from nnunet_stroke.evaluation.aggregate import load_metrics, summarize, write_metrics

GROUPS = (("kfold_cv", "5-fold cross-validation (folds 0-4, validation)", range(0, 5), "validation"),
          ("repeated_holdout", "repeated 8:1:1 held-out test (folds 5-9)", range(5, 10), "heldout_test"))


def _fold_metrics(folder: Path, ref_dir, protocol: str, num_processes: int) -> Path | None:
    """metrics.json of one fold's prediction folder, evaluated against ``ref_dir`` when not there yet."""
    metrics_path = folder / "metrics.json"
    if metrics_path.is_file():
        return metrics_path
    if not folder.is_dir():
        return None
    if ref_dir is None:
        raise UserError(f"{folder} has predictions but no metrics.json; run `nnunet-stroke evaluate --pred {folder} "
                        f"--out {metrics_path}` or pass --ref LABELS to evaluate-splits")
    from nnunet_stroke.evaluation.folders import evaluate_folders

    write_metrics(evaluate_folders(ref_dir, folder, protocol=protocol, num_processes=num_processes), metrics_path)
    return metrics_path


def collect_results_folder(results_folder: Path, ref_dir=None, protocol: str = "isles22",
                           num_processes: int = 2) -> list[tuple[str, str, list[Path]]]:
    """(kind, title, metrics.json paths) for every split group present in an nnU-Net results folder."""
    if not any(results_folder.glob("fold_*")):
        raise UserError(f"{results_folder} holds no fold_* folders; give an nnU-Net results folder "
                        f"(<trainer>__<plans>__<configuration>) or metrics.json files")
    groups = []
    for kind, title, folds, subfolder in GROUPS:
        paths = [_fold_metrics(results_folder / f"fold_{fold}" / subfolder, ref_dir, protocol, num_processes)
                 for fold in folds]
        paths = [p for p in paths if p is not None]
        if paths:
            groups.append((kind, title, paths))
    if not groups:
        raise UserError(f"no fold of {results_folder} has validation/ or heldout_test/ predictions yet")
    return groups


def summarize_group(kind: str, title: str, paths: list[Path]) -> dict:
    """Mean +- std across splits of every metric's per-split mean, and the pooled per-case mean."""
    runs = [load_metrics(p) for p in paths]
    protocols = {r["protocol"] for r in runs}
    if len(protocols) > 1:
        raise UserError(f"the metrics files of '{title}' use different protocols {sorted(protocols)}; "
                        f"evaluate every split with the same --protocol")
    keys = list(dict.fromkeys(k for r in runs for k in r["aggregate"]))
    across = {}
    for key in keys:
        means = [r["aggregate"][key]["mean"] for r in runs if r["aggregate"].get(key, {}).get("mean") is not None]
        entry = summarize(means)
        across[key] = {"mean": entry["mean"], "std": entry["std"], "n_splits": entry["n"],
                       "n_cases": int(sum(r["aggregate"].get(key, {}).get("n", 0) for r in runs))}
    pooled_cases = [case for r in runs for case in r["cases"]]
    return {"kind": kind, "title": title, "protocol": protocols.pop(),
            "splits": [{"metrics_json": str(p), "n_cases": r["n_cases"]} for p, r in zip(paths, runs)],
            "across_splits": across,
            "pooled": {key: summarize(c.get(key) for c in pooled_cases) for key in keys}}


def summarize_splits(inputs: list[Path], ref_dir=None, protocol: str = "isles22", num_processes: int = 2) -> dict:
    """Groups from results folders (CV and repeated 8:1:1) and one group of explicitly given metrics.json."""
    groups, files = [], []
    for path in map(Path, inputs):
        if path.is_dir():
            groups += [summarize_group(kind, f"{path.name}: {title}", paths)
                       for kind, title, paths in collect_results_folder(path, ref_dir, protocol, num_processes)]
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path} does not exist; give metrics.json files or nnU-Net results folders")
    if files:
        groups.append(summarize_group("splits", f"{len(files)} given splits", files))
    return {"groups": groups}


TABLE_COLUMNS = (("dice", "Dice (%)", 100), ("iou", "IoU (%)", 100), ("f2", "F2 (%)", 100),
                 ("recall", "Recall (%)", 100), ("precision", "Precision (%)", 100), ("hd95_vox", "HD95 (px)", 1),
                 ("hd95_mm", "HD95 (mm)", 1), ("lesion_f1", "Lesion F1", 1), ("abs_volume_diff_ml", "|dV| (ml)", 1))


def format_mean_std(entry: dict, scale: float) -> str:
    if entry is None or entry.get("mean") is None:
        return "n/a"
    std = entry.get("std")
    return f"{entry['mean'] * scale:.2f}" + ("" if std is None else f" ± {std * scale:.2f}")


def splits_markdown(summary: dict) -> str:
    """LBMNet Table 5 layout: one row per split group, mean ± std across splits."""
    header = "| Group | Splits | " + " | ".join(title for _, title, _ in TABLE_COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(TABLE_COLUMNS) + 2)]
    for group in summary["groups"]:
        cells = [format_mean_std(group["across_splits"].get(key), scale) for key, _, scale in TABLE_COLUMNS]
        lines.append(f"| {group['title']} | {len(group['splits'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nMean ± standard deviation across splits of the per-split mean over its test cases.\n"
