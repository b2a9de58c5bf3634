"""`nnunet-stroke report`: report.md with the LBMNet and PMSAN tables for every model given and PNG
figures, written to a temporary folder and moved into place when complete."""
from __future__ import annotations

import re
from pathlib import Path

from nnunet_stroke.errors import UserError
from nnunet_stroke.evaluation import report_plots, report_tables
from nnunet_stroke.evaluation.aggregate import load_metrics
from nnunet_stroke.staging import atomic_write_text
from nnunet_stroke.staging import staged_folder


def model_name(path: Path) -> str:
    """Trainer (and fold) from an nnU-Net results path, else the metrics file's folder name."""
    trainer = next((part.split("__")[0] for part in path.parts if part.count("__") >= 2), None)
    fold = next((part for part in path.parts if re.fullmatch(r"fold_\w+", part)), None)
    if trainer:
        return trainer + (f" ({fold})" if fold else "")
    return path.resolve().parent.name or path.stem


def _unique(names: list[str]) -> list[str]:
    return [name if names.count(name) == 1 else f"{name} #{names[:i].count(name) + 1}" for i, name in enumerate(names)]


def _section(title: str, text: str | None, note: str = "") -> list[str]:
    return [] if text is None else [f"## {title}", "", text, *([note, ""] if note else [])]


def write_report(metrics_paths: list[Path], out_dir: Path, names: list[str] | None = None) -> Path:
    """Write ``out_dir/report.md`` and its PNGs; returns the path of report.md."""
    if names is not None and len(names) != len(metrics_paths):
        raise UserError(f"--names gives {len(names)} names for {len(metrics_paths)} metrics files")
    models = list(zip(names or _unique([model_name(Path(p)) for p in metrics_paths]),
                      [load_metrics(p) for p in metrics_paths]))
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "report.md").is_file():
        raise UserError(f"{out_dir} exists and is not a report folder; give a new or empty folder for the report")
    if any(m["protocol"] == "classification" for _, m in models):  # classifiers: own tables, reliability diagram
        from nnunet_stroke.evaluation.classification_report import write_classification_report

        return write_classification_report(models, metrics_paths, out_dir)
    with staged_folder(out_dir, tag=f"{out_dir.name}.partial", replace=True) as staging:
        figures = {"Bland–Altman (relative volume difference)": report_plots.bland_altman_plot(
                       models, staging / "bland_altman.png"),
                   "Dice by lesion size": report_plots.dice_by_stratum_plot(models, staging / "dice_by_stratum.png")
                   if any(m["strata"] for _, m in models) else None,
                   "Detection ROC": report_plots.roc_plot(models, staging / "roc.png"),
                   "Reliability diagram": report_plots.reliability_plot(models, staging / "reliability.png")}
        for index, (name, metrics) in enumerate(models):
            figures[f"Worst and best cases: {name}"] = report_plots.overlay_plot(
                name, metrics, staging / f"overlays_{index + 1}.png")
        lines = ["# Evaluation report", "",
                 "| Model | metrics.json | Protocol | Cases |", "|---|---|---|---|",
                 *[f"| {name} | {path} | {m['protocol_description']} | {m['n_cases']} |"
                   for (name, m), path in zip(models, metrics_paths)], ""]
        warnings = [f"- {name}: {w}" for name, m in models for w in m["warnings"]]
        lines += ["Warnings:", "", *warnings, ""] if warnings else []
        lines += _section("Segmentation (LBMNet Tables 1 and 4)", report_tables.segmentation_table(models),
                          "Mean ± std over cases. HD95 (eq. 18, MONAI definition) is undefined when either mask is "
                          "empty; such cases are left out (n (HD95)).")
        lines += _section("Challenge metrics (ISLES'22 / ATLAS v2.0)", report_tables.challenge_table(models))
        lines += _section("By reference lesion size (LBMNet Tables 2 and 3)", report_tables.strata_table(models),
                          "<5 cm³ is a subset of <10 cm³ (PMSAN small infarcts). Detected: patient-level "
                          "sensitivity within the stratum.")
        lines += _section("Patient-level detection (PMSAN Table 1)", report_tables.detection_table(models),
                          "Bootstrap 95% confidence intervals in brackets.")
        lines += _section("Volume agreement (Bland–Altman, LBMNet section 4.3.2)",
                          report_tables.bland_altman_table(models),
                          "Difference = prediction − reference; relative to the mean of both volumes.")
        lines += _section("Calibration (expected calibration error)", report_tables.calibration_table(models))
        lines += ["## Figures", ""] + [f"### {title}\n\n![{title}]({path.name})\n" for title, path in figures.items()
                                       if path is not None]
        atomic_write_text(staging / "report.md", "\n".join(lines) + "\n")
    return out_dir / "report.md"
