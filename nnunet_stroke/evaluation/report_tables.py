"""Markdown tables of the report, one row per model: LBMNet Tables 1/4 (Dice, IoU, F2, Recall, HD95),
the challenge metrics (ISLES'22, ATLAS v2.0), LBMNet Tables 2/3 (lesion-size strata), PMSAN Table 1
(patient-level detection), Bland-Altman (LBMNet section 4.3.2) and calibration.
Every cell is mean ± std over the cases that define it; n is stated in the table."""
from __future__ import annotations

from nnunet_stroke.evaluation.across_splits import format_mean_std

SEGMENTATION_COLUMNS = (("dice", "Dice (%)", 100), ("iou", "IoU (%)", 100), ("f2", "F2 (%)", 100),
                        ("recall", "Recall (%)", 100), ("precision", "Precision (%)", 100),
                        ("hd95_vox", "HD95 (px)", 1), ("hd95_mm", "HD95 (mm)", 1))
CHALLENGE_COLUMNS = (("dice", "Dice", 1), ("lesion_f1", "Lesion F1", 1), ("abs_volume_diff_ml", "Abs. volume diff. (ml)", 1),
                     ("abs_volume_diff_vox", "Abs. volume diff. (voxels)", 1),
                     ("abs_lesion_count_diff", "Abs. lesion count diff.", 1))
STRATUM_COLUMNS = (("dice", "Dice (%)", 100), ("iou", "IoU (%)", 100), ("f2", "F2 (%)", 100),
                   ("recall", "Recall (%)", 100), ("hd95_vox", "HD95 (px)", 1))


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _interval(entry: dict, scale: float = 100, digits: int = 1) -> str:
    if entry["value"] is None:
        return "n/a"
    text = f"{entry['value'] * scale:.{digits}f}"
    if entry["ci_low"] is not None:
        text += f" [{entry['ci_low'] * scale:.{digits}f}, {entry['ci_high'] * scale:.{digits}f}]"
    return text


def segmentation_table(models: list[tuple[str, dict]]) -> str:
    rows = []
    for name, m in models:
        hd_n = m["aggregate"].get("hd95_mm", {}).get("n", 0)
        rows.append([name, m["protocol"], str(m["n_cases"]), str(hd_n)] +
                    [format_mean_std(m["aggregate"].get(k), s) for k, _, s in SEGMENTATION_COLUMNS])
    return _table(["Model", "Protocol", "n", "n (HD95)"] + [t for _, t, _ in SEGMENTATION_COLUMNS], rows)


def challenge_table(models: list[tuple[str, dict]]) -> str:
    rows = [[name, f"{m['connectivity']}-connected"] +
            [format_mean_std(m["aggregate"].get(k), s) for k, _, s in CHALLENGE_COLUMNS] for name, m in models]
    return _table(["Model", "Lesions"] + [t for _, t, _ in CHALLENGE_COLUMNS], rows)


def strata_table(models: list[tuple[str, dict]]) -> str | None:
    rows = []
    for name, m in models:
        if m["strata"] is None:
            continue
        sensitivity = m["detection"]["sensitivity_by_stratum"]
        for stratum in m["strata"]["strata"]:
            rows.append([name, stratum["name"], str(stratum["n"]), _pct(stratum["proportion"])] +
                        [format_mean_std(stratum["aggregate"].get(k), s) for k, _, s in STRATUM_COLUMNS] +
                        [_pct(sensitivity.get(stratum["name"], {}).get("sensitivity"))])
    if not rows:
        return None
    return _table(["Model", "Size (cm³)", "n", "Proportion (%)"] + [t for _, t, _ in STRATUM_COLUMNS] +
                  ["Detected (%)"], rows)


def detection_table(models: list[tuple[str, dict]]) -> str:
    rows = []
    for name, m in models:
        d = m["detection"]
        small = d["sensitivity_by_stratum"].get("<5", {})
        rows.append([name, d["rule"], f"{d['n_positive']}/{d['n_negative']}", _interval(d["accuracy"]),
                     _interval(d["sensitivity"]), _interval(d["specificity"]), _interval(d["auc"], 1, 3),
                     "n/a" if small.get("sensitivity") is None else f"{_pct(small['sensitivity'])} (n={small['n']})"])
    return _table(["Model", "Decision", "Pos/Neg", "Accuracy (%)", "Sensitivity (%)", "Specificity (%)", "AUC",
                   "Sensitivity <5 ml (%)"], rows)


def _limits_cells(limits: dict) -> list[str]:
    if limits["bias"] is None:
        return ["n/a", "n/a"]
    loa = "n/a" if limits["loa_low"] is None else f"{limits['loa_low']:.2f} to {limits['loa_high']:.2f}"
    return [f"{limits['bias']:.2f}", loa]


def bland_altman_table(models: list[tuple[str, dict]]) -> str:
    rows = []
    for name, m in models:
        agreement = m["bland_altman"]
        for stratum, values in [("all", agreement["overall"]), *agreement["by_stratum"].items()]:
            rows.append([name, stratum, str(values["absolute"]["n"]), str(values["relative_pct"]["n"])] +
                        _limits_cells(values["relative_pct"]) + _limits_cells(values["absolute"]))
    unit = models[0][1]["bland_altman"]["unit"]
    return _table(["Model", "Stratum", "n", "n (relative)", "Bias (%)", "95% LoA (%)", f"Bias ({unit})", f"95% LoA ({unit})"], rows)


def calibration_table(models: list[tuple[str, dict]]) -> str | None:
    rows = []
    for name, m in models:
        c = m["calibration"]
        if c is None:
            continue
        voxel = "n/a" if c["voxel"] is None else f"{c['voxel']['ece']:.4f} (n={c['voxel']['n']} voxels)"
        case = "n/a" if c["case"]["ece"] is None else f"{c['case']['ece']:.4f} (n={c['case']['n']} cases)"
        rows.append([name, c["roi"] or "n/a", voxel, case, c["case_probability"]])
    if not rows:
        return None
    return _table(["Model", "Voxel ROI", "Voxel ECE", "Case ECE", "Case probability"], rows)
