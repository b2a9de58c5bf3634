"""`evaluate_folders`: evaluate every reference case of a folder against a folder of predictions, in
parallel, and assemble metrics.json (schema in docs/evaluation.md, pinned by tests/test_evaluation_schema.py):
per-case metrics, aggregate, lesion-size strata, patient-level detection, calibration and Bland-Altman.
"""
from __future__ import annotations

import json
import warnings as python_warnings
from pathlib import Path

import numpy as np

from nnunet_stroke.errors import UserError
from nnunet_stroke.evaluation import casefiles
from nnunet_stroke.evaluation.agreement import bland_altman_summary, in_stratum, STRATA, strata_summary
from nnunet_stroke.evaluation.aggregate import aggregate_cases
from nnunet_stroke.evaluation.calibration import CASE_BINS, ReliabilityHistogram
from nnunet_stroke.evaluation.case_worker import BRAIN_MARGIN, LESION_MARGIN, CaseJob, evaluate_case
from nnunet_stroke.evaluation.detection import detection_metrics
from nnunet_stroke.evaluation.lesions import CONNECTIVITY_2D
from nnunet_stroke.evaluation.protocols import get_protocol
from nnunet_stroke.parallel import parallel_map

SCHEMA_VERSION = 1
DETECTION_PROBABILITY_THRESHOLD = 0.5


def _dataset_labels(ref_dir: Path) -> tuple[int, ...] | None:
    """Foreground labels of the nnU-Net raw dataset that ``ref_dir`` (labelsTr) belongs to."""
    dataset_json = ref_dir.parent / "dataset.json"
    if not dataset_json.is_file():
        return None
    labels = json.loads(dataset_json.read_text(encoding="utf-8")).get("labels", {})
    found = {v for v in labels.values() if isinstance(v, int) and v > 0}
    found |= {x for v in labels.values() if isinstance(v, list) for x in v if x > 0}
    return tuple(sorted(found)) or None


def _detection_section(cases: list[dict], detection_scores: dict | None, min_volume: float) -> dict:
    unit = "ml" if cases[0]["ref_volume_ml"] is not None else "vox"
    for case in cases:
        case["ref_positive"] = case["ref_volume_vox"] > 0
        if detection_scores is not None:
            case["detection_score"] = detection_scores[case["case"]]
            case["pred_positive"] = case["detection_score"] >= DETECTION_PROBABILITY_THRESHOLD
        else:
            case["detection_score"] = case[f"pred_volume_{unit}"]
            case["pred_positive"] = case["detection_score"] > min_volume
    truth = np.array([c["ref_positive"] for c in cases])
    section = {
        "source": "detection_json" if detection_scores is not None else "segmentation",
        "score": "probability" if detection_scores is not None else f"predicted_volume_{unit}",
        "threshold": DETECTION_PROBABILITY_THRESHOLD if detection_scores is not None else min_volume,
        "rule": ("positive if detection probability >= 0.5" if detection_scores is not None else
                 f"positive if predicted lesion volume > {min_volume} {unit}"),
        **detection_metrics(truth, np.array([c["detection_score"] for c in cases], dtype=float),
                            np.array([c["pred_positive"] for c in cases])),
    }
    section["sensitivity_by_stratum"] = {}
    if unit == "ml":
        for name, _, _ in STRATA:
            members = [c for c in cases if in_stratum(c["ref_volume_ml"], name)]
            detected = sum(c["pred_positive"] for c in members)
            section["sensitivity_by_stratum"][name] = {"n": len(members), "detected": detected,
                                                      "sensitivity": detected / len(members) if members else None}
    return section


def _calibration_section(cases, histograms, detection_scores, images_dir) -> dict | None:
    with_probabilities = [h for h in histograms if h is not None]
    if not with_probabilities and detection_scores is None:
        return None
    section = {"voxel": None, "case": None, "roi": None, "case_probability": None}
    if with_probabilities:
        section["roi"] = (f"nonzero image region dilated by {BRAIN_MARGIN} voxels" if images_dir is not None
                          else f"reference and prediction dilated by {LESION_MARGIN} voxels")
        section["voxel"] = sum(with_probabilities[1:], with_probabilities[0]).to_json()
    key = "detection_score" if detection_scores is not None else "max_lesion_probability"
    section["case_probability"] = "detection.json" if detection_scores is not None else \
        "maximum voxel lesion probability in the ROI"
    section["case"] = ReliabilityHistogram.of(np.array([c[key] for c in cases], dtype=float),
                                              np.array([c["ref_positive"] for c in cases]), CASE_BINS).to_json()
    return section


def evaluate_folders(ref_dir, pred_dir, protocol: str = "isles22", images_dir=None, probabilities_dir=None,
                     detection_json=None, allow_missing: bool = False, num_processes: int = 2,
                     file_ending: str | None = ".nii.gz", *, labels=None, lesion_labels=None,
                     per_class: bool = False, detection_min_volume: float = 0.0, progress: bool = True,
                     resample_to_reference: bool = False) -> dict:
    """Evaluate every case of ``ref_dir`` against ``pred_dir`` and return the metrics.json structure.

    labels: the foreground labels the masks may hold (default: dataset.json next to ``ref_dir``, else 1);
    lesion_labels: labels that make up "lesion" (default: any foreground); per_class: also metrics per
    label (keys ``<metric>_label<L>``); file_ending None: detect it; resample_to_reference: resample
    predictions that are off the reference grid (nearest neighbour) instead of refusing them. Raises
    UserError on bad input."""
    ref_dir, pred_dir = Path(ref_dir), Path(pred_dir)
    chosen = get_protocol(protocol)
    file_ending = file_ending or casefiles.detect_file_ending(ref_dir)
    references = casefiles.case_files(ref_dir, file_ending)
    if not references:
        raise UserError(f"no reference label maps ending in {file_ending} in {ref_dir}; pass the labelsTr folder "
                        f"or the right --file-ending")
    predictions = casefiles.case_files(pred_dir, file_ending)
    missing = [case for case in references if case not in predictions]
    if missing and not allow_missing:
        raise UserError(f"no prediction for case {missing[0]} ({pred_dir / (missing[0] + file_ending)}; "
                        f"{len(missing)} of {len(references)} cases missing); predict them, or pass "
                        f"--allow-missing to count them as empty predictions")
    allowed = tuple(labels) if labels is not None else (_dataset_labels(ref_dir) or (1,))
    lesion_labels = tuple(lesion_labels) if lesion_labels is not None else None
    if lesion_labels is not None and not set(lesion_labels) <= set(allowed):
        raise UserError(f"--lesion-labels {list(lesion_labels)} must be among the foreground labels {list(allowed)} "
                        f"(set them with --labels)")
    images_dir = Path(images_dir) if images_dir is not None else None
    if images_dir is not None:
        for case in references:
            if not (images_dir / f"{case}_0000{file_ending}").is_file():
                raise UserError(f"case {case}: no image {case}_0000{file_ending} in {images_dir}; --images must be "
                                f"the imagesTr/imagesTs folder of the evaluated cases")
    probabilities_dir = Path(probabilities_dir) if probabilities_dir is not None else None
    detection_scores = casefiles.read_detection_json(Path(detection_json), list(references)) \
        if detection_json is not None else None
    reader = casefiles.reader_class_for(file_ending, next(iter(references.values())))
    jobs = [CaseJob(case, path, predictions.get(case), reader, file_ending, allowed, lesion_labels,
                    allowed if per_class else (), chosen.connectivity, images_dir, probabilities_dir,
                    resample_to_reference)
            for case, path in references.items()]
    results = parallel_map(evaluate_case, jobs, num_processes, "evaluating cases", progress)
    cases = [case for case, _ in results]
    warnings = []
    if missing:
        warnings.append(f"{len(missing)} cases had no prediction and were evaluated as empty predictions")
    extra = sorted(set(predictions) - set(references))
    if extra:
        warnings.append(f"{len(extra)} predictions without a reference were ignored (e.g. {extra[0]})")
    detection = _detection_section(cases, detection_scores, detection_min_volume)
    warnings.extend(detection["warnings"])
    for warning in warnings:
        python_warnings.warn(warning, stacklevel=2)
    return {
        "schema_version": SCHEMA_VERSION,
        "protocol": chosen.name,
        "protocol_description": chosen.description,
        "protocol_metrics": list(chosen.headline_metrics),
        "connectivity": chosen.connectivity if cases[0]["ref_volume_ml"] is not None else
        CONNECTIVITY_2D[chosen.connectivity],
        "spatial_dims": 2 if cases[0]["ref_volume_ml"] is None else 3,
        "labels": list(allowed),
        "lesion_labels": "any foreground" if lesion_labels is None else list(lesion_labels),
        "inputs": {"ref_dir": str(ref_dir.resolve()), "pred_dir": str(pred_dir.resolve()),
                   "images_dir": None if images_dir is None else str(images_dir.resolve()),
                   "probabilities_dir": None if probabilities_dir is None else str(probabilities_dir.resolve()),
                   "detection_json": None if detection_json is None else str(Path(detection_json).resolve()),
                   "file_ending": file_ending, "resampled_to_reference": resample_to_reference},
        "n_cases": len(cases),
        "missing_predictions": missing,
        "cases": cases,
        "aggregate": aggregate_cases(cases),
        "strata": strata_summary(cases),
        "detection": detection,
        "calibration": _calibration_section(cases, [h for _, h in results], detection_scores, images_dir),
        "bland_altman": bland_altman_summary(cases),
        "warnings": warnings,
    }
