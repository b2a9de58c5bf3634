"""A study's table in the LBMNet paper's layout (Kuang et al., Front. Med. 2026, Tables 1 and 5-9):
rows = trainers; Dice, IoU, F2, Recall (%) and HD95 (px) as mean +- sd over the repeated 8:1:1 splits
(section 4.5), with n; and, per row, a paired Wilcoxon signed-rank test of per-case Dice against the
table's full-LBMNet row.

Per split, a row contributes the mean over the split's held-out test cases (its metrics.json, written by
`nnunet-stroke predict-heldout`); mean and sample sd (ddof=1) over splits come from
:func:`nnunet_stroke.evaluation.across_splits.summarize_group`. HD95 in px is the package's ``hd95_vox``
(undefined, and left out, when a mask is empty; ``n_cases`` counts the cases that entered).

The test is ours (the paper reports no significance test): two-sided ``scipy.stats.wilcoxon`` over the
cases both rows predicted, paired by (split, case), zero differences dropped (scipy's default); its
p-value is null when every difference is zero or no case pairs up.
"""
from __future__ import annotations

from pathlib import Path

from nnunet_stroke.evaluation.across_splits import format_mean_std, summarize_group
from nnunet_stroke.evaluation.aggregate import load_metrics, write_metrics
from nnunet_stroke.staging import atomic_write_text

COLUMNS = (("dice", "Dice (%)", 100), ("iou", "IoU (%)", 100), ("f2", "F2 (%)", 100), ("recall", "Recall (%)", 100),
           ("hd95_vox", "HD95 (px)", 1))


def per_case_dice(metrics_by_fold: dict[int, Path]) -> dict[tuple[int, str], float]:
    """{(fold, case): Dice} over the given folds' metrics.json (cases with an undefined Dice left out)."""
    return {(fold, case["case"]): case["dice"] for fold, path in metrics_by_fold.items()
            for case in load_metrics(path)["cases"] if case.get("dice") is not None}


def paired_wilcoxon(row: dict[tuple[int, str], float], reference: dict[tuple[int, str], float]) -> dict:
    """Two-sided Wilcoxon signed-rank test of the row's per-case Dice against the reference's, paired."""
    from scipy.stats import wilcoxon

    pairs = sorted(row.keys() & reference.keys())
    differences = [row[key] - reference[key] for key in pairs]
    nonzero = sum(d != 0 for d in differences)
    p_value = float(wilcoxon(differences).pvalue) if nonzero else None
    return {"p_value": p_value, "n_pairs": len(pairs), "n_nonzero_differences": nonzero}


def summarize_row(label: str, metrics_by_fold: dict[int, Path]) -> dict:
    """Mean, sd, number of splits and of cases per column over the row's finished splits."""
    if not metrics_by_fold:
        return {}
    summary = summarize_group("repeated_holdout", label, list(metrics_by_fold.values()))["across_splits"]
    return {key: summary.get(key) for key, _, _ in COLUMNS}


def aggregate_study(header: dict, rows: list[dict], reference_key: str) -> dict:
    """The study's summary. ``rows``: {key, label, trainer, metrics: {fold: metrics.json path or None}};
    ``header`` (table, dataset, plans, ...) is copied into the summary."""
    done = [{fold: Path(p) for fold, p in row["metrics"].items() if p is not None} for row in rows]
    keys = [row["key"] for row in rows]
    reference_index = keys.index(reference_key) if reference_key in keys else None  # --rows may leave it out
    reference_dice = per_case_dice(done[reference_index]) if reference_index is not None else None
    summary_rows = []
    for index, (row, metrics_by_fold) in enumerate(zip(rows, done)):
        comparison = None
        if reference_dice is not None and index != reference_index and metrics_by_fold:
            comparison = paired_wilcoxon(per_case_dice(metrics_by_fold), reference_dice)
        summary_rows.append({
            "key": row["key"], "label": row["label"], "trainer": row["trainer"],
            "folds_done": sorted(metrics_by_fold), "folds_missing": sorted(set(row["metrics"]) - set(metrics_by_fold)),
            "metrics_json": {str(fold): str(path) for fold, path in sorted(metrics_by_fold.items())},
            "across_splits": summarize_row(row["label"], metrics_by_fold),
            "wilcoxon_dice_vs_reference": comparison})
    reference = rows[reference_index]["trainer"] if reference_index is not None else None
    return {**header, "reference_trainer": reference, "rows": summary_rows}


def _p_value(comparison: dict | None) -> str:
    if comparison is None or comparison["p_value"] is None:
        return "—"
    return f"{comparison['p_value']:.3g} (n={comparison['n_pairs']})"


def study_markdown(summary: dict) -> str:
    """The table: one row per trainer, mean ± sd over splits, splits and cases, p against the reference."""
    header = ("| Method | Trainer | " + " | ".join(title for _, title, _ in COLUMNS)
              + " | splits | cases | p (Dice vs reference) |")
    lines = [f"# {summary['title']}", "",
             f"Dataset {summary['dataset']}, plans {summary['plans']}, configuration {summary['configuration']}, "
             f"folds {', '.join(map(str, summary['folds']))} (repeated 8:1:1 splits, held-out test cases). "
             + (f"Reference row: `{summary['reference_trainer']}`." if summary["reference_trainer"] else
                "The full-LBMNet reference row was not among the rows run: no p-values."), "",
             header, "|" + "---|" * (len(COLUMNS) + 5)]
    for row in summary["rows"]:
        across = row["across_splits"]
        cells = [format_mean_std(across.get(key), scale) if across else "not run" for key, _, scale in COLUMNS]
        dice = across.get("dice") if across else None
        cases = dice["n_cases"] if dice else 0
        lines.append(f"| {row['label']} | `{row['trainer']}` | " + " | ".join(cells)
                     + f" | {len(row['folds_done'])} | {cases} | {_p_value(row['wilcoxon_dice_vs_reference'])} |")
    missing = [f"`{row['trainer']}` folds {', '.join(map(str, row['folds_missing']))}"
               for row in summary["rows"] if row["folds_missing"]]
    lines += ["", "Mean ± sample standard deviation over the splits of each split's mean over its held-out test "
              "cases; HD95 in voxels (px), left out for cases with an empty mask. p: two-sided paired Wilcoxon "
              "signed-rank test of per-case Dice against the reference row, cases paired by split and case "
              "(n = pairs)."]
    if missing:
        lines += ["", "Not finished yet: " + "; ".join(missing) + "."]
    return "\n".join(lines) + "\n"


def write_study(summary: dict, folder: Path) -> tuple[Path, Path]:
    """``study.json`` and ``study.md`` in ``folder``, each written atomically."""
    json_path, markdown_path = folder / "study.json", folder / "study.md"
    write_metrics(summary, json_path)
    atomic_write_text(markdown_path, study_markdown(summary))
    return json_path, markdown_path
