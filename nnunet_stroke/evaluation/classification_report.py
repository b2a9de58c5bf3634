"""`nnunet-stroke report` for classifiers (metrics.json of ``protocol: "classification"``): a table of the
patient-level metrics with their bootstrap 95% CIs (PMSAN Table 1, StrokeNeXt's accuracy / macro F1 /
AUC) and a reliability diagram (top-label confidence against accuracy in the 15 ECE bins; matplotlib,
Agg), written to a staged folder and moved into place when complete."""
from __future__ import annotations

from pathlib import Path

from nnunet_stroke.errors import UserError
from nnunet_stroke.staging import atomic_write_text
from nnunet_stroke.evaluation.report_plots import draw_reliability
from nnunet_stroke.staging import staged_folder

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "ece")


def _cell(entry: dict | None) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    ci = "" if entry.get("ci_low") is None else f" [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"
    return f"{entry['value']:.3f}{ci}" + (f" (n={entry['n']})" if "n" in entry else "")


def metrics_table(models: list[tuple[str, dict]]) -> str:
    classes = list(dict.fromkeys(c for _, m in models for c in m["classes"]))
    keys = [*HEADLINE, *(f"{rate}_{c}" for c in classes for rate in ("sensitivity", "specificity")),
            "sensitivity_small_infarct"]
    rows = ["| Metric | " + " | ".join(name for name, _ in models) + " |", "|---|" + "---|" * len(models)]
    rows += [f"| {key} | " + " | ".join(_cell(m["aggregate"].get(key)) for _, m in models) + " |" for key in keys]
    return "\n".join(rows)


def reliability_diagram(models: list[tuple[str, dict]], path: Path) -> Path:
    """Accuracy against mean top-label confidence per bin; marker area ~ the bin's share of cases (the
    bins' ``lesion_fraction`` is here the fraction of correct argmax labels)."""
    curves = [(f"{name}: ECE {m['reliability']['ece']:.3f} (n={m['reliability']['n']} cases)", m["reliability"],
               lambda counts, n: 15 + 150 * counts / n) for name, m in models]
    return draw_reliability(curves, path, xlabel="mean top-label probability in bin (15 bins)",
                            ylabel="accuracy in bin", title="Reliability diagram (marker area ~ share of cases)",
                            y_top=1.02)


def write_classification_report(models: list[tuple[str, dict]], metrics_paths: list[Path], out_dir: Path) -> Path:
    """``out_dir/report.md`` and ``reliability.png`` for classifier metrics; returns the report's path."""
    others = [str(p) for (_, m), p in zip(models, metrics_paths) if m["protocol"] != "classification"]
    if others:
        raise UserError(f"{', '.join(others)}: not classifier metrics; report classifiers and segmentation models "
                        f"separately (two `nnunet-stroke report` calls)")
    with staged_folder(out_dir, tag=f"{out_dir.name}.partial", replace=True) as staging:
        figure = reliability_diagram(models, staging / "reliability.png")
        lines = ["# Classification report", "",
                 "| Model | metrics.json | Classes | Cases | Decision |", "|---|---|---|---|---|",
                 *[f"| {name} | {path} | {', '.join(m['classes'])} | {m['n_cases']} | "
                   f"{_decision(m)} |" for (name, m), path in zip(models, metrics_paths)], ""]
        warnings = [f"- {name}: {w}" for name, m in models for w in m["warnings"]]
        lines += ["Warnings:", "", *warnings, ""] if warnings else []
        lines += ["## Patient-level metrics", "", metrics_table(models), "",
                  "Value [percentile-bootstrap 95% CI]. ECE: top-label probability, 15 equal-width bins. "
                  "Small infarcts: sensitivity among cases with 0 < lesion volume < 5 ml.", "",
                  "## Reliability diagram", "", f"![Reliability diagram]({figure.name})", ""]
        atomic_write_text(staging / "report.md", "\n".join(lines))
    return out_dir / "report.md"


def _decision(metrics: dict) -> str:
    rule = metrics.get("threshold") or {"rule": "as in classification.json"}
    return f"Youden threshold {rule['threshold']:.3g} (validation)" if rule.get("threshold") is not None \
        else rule["rule"]
