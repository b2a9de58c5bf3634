"""PNG figures of the report (matplotlib, Agg backend): Bland-Altman plots of lesion volume (LBMNet
Figure 8), Dice by lesion-size stratum (LBMNet Table 2/Figure 7), ROC curves (PMSAN), reliability
diagrams (calibration) and overlays of the worst and best cases (image, reference, prediction)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nnunet_stroke.evaluation.agreement import STRATA  # noqa: E402

STRATUM_COLOURS = {"<10": "tab:orange", "10-50": "tab:blue", ">50": "tab:green", None: "tab:gray"}


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def bland_altman_plot(models: list[tuple[str, dict]], path: Path) -> Path:
    """Relative volume difference (% of the mean) against the mean volume, per model, coloured by stratum."""
    figure, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.5), squeeze=False)
    for axis, (name, metrics) in zip(axes[0], models):
        unit = metrics["bland_altman"]["unit"]
        cases = [c for c in metrics["cases"] if c[f"ref_volume_{unit}"] + c[f"pred_volume_{unit}"] > 0]
        mean = np.array([(c[f"ref_volume_{unit}"] + c[f"pred_volume_{unit}"]) / 2 for c in cases])
        relative = np.array([100 * (c[f"pred_volume_{unit}"] - c[f"ref_volume_{unit}"]) / m
                             for c, m in zip(cases, mean)])
        for stratum, colour in STRATUM_COLOURS.items():
            chosen = np.array([c["stratum"] == stratum for c in cases], dtype=bool)
            if chosen.any():
                label = f"{stratum} cm³" if stratum else "no reference lesion" if unit == "ml" else "cases"
                axis.scatter(mean[chosen], relative[chosen], s=18, color=colour, label=f"{label} (n={chosen.sum()})")
        limits = metrics["bland_altman"]["overall"]["relative_pct"]
        if limits["bias"] is not None:
            axis.axhline(limits["bias"], color="black", label=f"bias {limits['bias']:.1f}%")
        if limits["loa_low"] is not None:
            for value in (limits["loa_low"], limits["loa_high"]):
                axis.axhline(value, color="black", linestyle="--")
            axis.plot([], [], "k--", label=f"95% LoA {limits['loa_low']:.1f} to {limits['loa_high']:.1f}%")
        if mean.size and mean.min() > 0:
            axis.set_xscale("log")
        axis.set_xlabel(f"mean of predicted and reference volume ({unit})")
        axis.set_ylabel("(prediction − reference) / mean (%)")
        axis.set_title(f"{name}: Bland–Altman")
        axis.legend(fontsize=8, loc="best")
        axis.grid(alpha=0.3)
    return _save(figure, path)


def dice_by_stratum_plot(models: list[tuple[str, dict]], path: Path) -> Path:
    """Mean Dice ± std per lesion-size stratum, bars grouped by stratum, one colour per model."""
    names = [name for name, _, _ in STRATA]
    figure, axis = plt.subplots(figsize=(max(6.0, 1.6 * len(names) * max(1, len(models)) / 2 + 3), 4.2))
    width = 0.8 / len(models)
    for index, (name, metrics) in enumerate(models):
        strata = {s["name"]: s for s in (metrics["strata"] or {"strata": []})["strata"]}
        means = [strata.get(s, {}).get("aggregate", {}).get("dice", {}).get("mean") for s in names]
        stds = [strata.get(s, {}).get("aggregate", {}).get("dice", {}).get("std") for s in names]
        x = np.arange(len(names)) + (index - (len(models) - 1) / 2) * width
        bars = axis.bar(x, [100 * (m or 0) for m in means], width, yerr=[100 * (s or 0) for s in stds],
                        capsize=3, label=name)
        for bar, stratum in zip(bars, names):
            axis.annotate(f"n={strata.get(stratum, {}).get('n', 0)}", (bar.get_x() + bar.get_width() / 2, 1),
                          ha="center", va="bottom", fontsize=8, color="white" if bar.get_height() > 8 else "black")
    axis.set_xticks(np.arange(len(names)), [f"{s} cm³" for s in names])
    axis.set_ylabel("Dice (%)")
    axis.set_ylim(0, 105)
    axis.set_title("Dice by reference lesion volume (mean ± std)")
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def roc_plot(models: list[tuple[str, dict]], path: Path) -> Path | None:
    curves = [(name, m["detection"]) for name, m in models if m["detection"]["roc"] is not None]
    if not curves:
        return None
    figure, axis = plt.subplots(figsize=(5, 5))
    for name, detection in curves:
        auc = detection["auc"]["value"]
        axis.plot(detection["roc"]["fpr"], detection["roc"]["tpr"], marker=".",
                  label=f"{name}: AUC {auc:.3f} ({detection['n_positive']} pos / {detection['n_negative']} neg)")
    axis.plot([0, 1], [0, 1], color="gray", linestyle=":")
    axis.set_xlabel("1 − specificity")
    axis.set_ylabel("sensitivity")
    axis.set_title("Patient-level detection ROC")
    axis.set_xlim(-0.02, 1.02)
    axis.set_ylim(-0.02, 1.02)
    axis.legend(fontsize=8, loc="lower right")
    axis.grid(alpha=0.3)
    return _save(figure, path)


def reliability_plot(models: list[tuple[str, dict]], path: Path) -> Path | None:
    """Observed lesion fraction against mean predicted probability per bin (voxel-wise in the ROI)."""
    diagrams = [(name, m["calibration"]["voxel"] or m["calibration"]["case"], "voxels" if m["calibration"]["voxel"]
                 else "cases") for name, m in models if m["calibration"] is not None]
    if not diagrams:
        return None
    curves = [(f"{name}: ECE {diagram['ece']:.4f} (n={diagram['n']} {unit})", diagram,
               lambda counts, n: 10 + 40 * np.log10(counts) / max(1.0, np.log10(n)))
              for name, diagram, unit in diagrams]
    return draw_reliability(curves, path, xlabel="mean predicted lesion probability in bin",
                            ylabel="observed lesion fraction in bin",
                            title="Reliability diagram (marker size ~ log count)", y_top=1.0)


def draw_reliability(curves: list[tuple[str, dict, Callable]], path: Path, *, xlabel: str, ylabel: str,
                     title: str, y_top: float) -> Path:
    """One reliability diagram for every calibration result of ``evaluation.calibration`` (bins with
    ``mean_probability``, ``lesion_fraction``, ``count``): a line and markers per curve (label, diagram,
    marker size from (counts, n)), the diagonal of perfect calibration."""
    figure, axis = plt.subplots(figsize=(5.5, 5))
    axis.plot([0, 1], [0, 1], color="gray", linestyle=":", label="perfect calibration")
    for label, diagram, marker_size in curves:
        filled = [b for b in diagram["bins"] if b["count"] > 0]
        confidence = [b["mean_probability"] for b in filled]
        observed = [b["lesion_fraction"] for b in filled]
        line, = axis.plot(confidence, observed, "-", alpha=0.6, label=label)
        axis.scatter(confidence, observed, s=marker_size(np.array([b["count"] for b in filled]), diagram["n"]),
                     color=line.get_color())
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, y_top)
    axis.legend(fontsize=8, loc="upper left")
    axis.grid(alpha=0.3)
    return _save(figure, path)


def _overlay_rows(metrics: dict, per_side: int) -> list[dict]:
    """The lowest-Dice cases and the highest-Dice cases with a reference lesion (an empty pair is trivial)."""
    ranked = sorted(metrics["cases"], key=lambda c: c["dice"])
    worst = ranked[:per_side]
    best = [c for c in ranked[::-1] if c not in worst and c["ref_volume_vox"] > 0][:per_side]
    return [*worst, *best]


def _lesion_slice(reference: np.ndarray, prediction: np.ndarray) -> int:
    """Axial slice with the most reference voxels, else predicted voxels, else the middle slice."""
    for mask in (reference, prediction):
        if mask.any():
            return int(np.argmax(mask.sum(axis=(1, 2))))
    return reference.shape[0] // 2


def overlay_plot(name: str, metrics: dict, path: Path, per_side: int = 2) -> Path | None:
    """Image, reference and prediction on the slice with the largest lesion, for the worst and best cases
    by Dice. Needs the images, reference and prediction folders recorded in metrics.json."""
    from nnunet_stroke.evaluation import casefiles

    inputs = metrics["inputs"]
    if inputs["images_dir"] is None or not Path(inputs["images_dir"]).is_dir():
        return None
    ending = inputs["file_ending"]
    rows = _overlay_rows(metrics, per_side)
    reference_paths = {c["case"]: Path(inputs["ref_dir"]) / f"{c['case']}{ending}" for c in rows}
    reader = casefiles.reader_class_for(ending, next(iter(reference_paths.values())))
    figure, axes = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)), squeeze=False)
    for row, case in zip(axes, rows):
        image = casefiles.read_images(Path(inputs["images_dir"]), case["case"], ending, reader)[0]
        reference = casefiles.read_label_map(reference_paths[case["case"]], reader, case["case"]).array > 0
        prediction_path = Path(inputs["pred_dir"]) / f"{case['case']}{ending}"
        prediction = casefiles.read_label_map(prediction_path, reader, case["case"]).array > 0 \
            if prediction_path.is_file() else np.zeros_like(reference)
        slice_name = ""
        if image.ndim == 3:
            index = _lesion_slice(reference, prediction)
            slice_name = f", slice {index}"
            image, reference, prediction = image[index], reference[index], prediction[index]
        low, high = np.percentile(image, [1, 99])
        titles = [f"image{slice_name}", "reference", f"prediction (Dice {case['dice']:.2f})"]
        for axis, mask, colour, title in zip(row, (None, reference, prediction), (None, "lime", "red"), titles):
            axis.imshow(image, cmap="gray", vmin=low, vmax=high)
            if mask is not None and mask.any():
                axis.contour(mask, levels=[0.5], colors=colour, linewidths=1.2)
                axis.imshow(np.ma.masked_where(~mask, mask), cmap="autumn" if colour == "red" else "summer",
                            alpha=0.35)
            axis.set_title(f"{case['case']}: {title}", fontsize=9)
            axis.axis("off")
    figure.suptitle(f"{name}: {per_side} worst and {per_side} best cases by Dice", fontsize=11)
    return _save(figure, path)
