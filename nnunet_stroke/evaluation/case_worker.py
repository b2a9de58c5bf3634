"""Evaluation of one case, run in a worker process: read, check, compute every metric, and (with saved
probabilities) the calibration histogram of the case's region of interest.

ROI for voxel-wise calibration: with --images, the image's nonzero region united with both masks and
dilated by ``BRAIN_MARGIN`` voxels ("dilated brain"); without images, the union of reference and
prediction dilated by ``LESION_MARGIN`` voxels ("lesion neighbourhood"). The nonzero region is nnU-Net's
cropping rule (`nnunetv2.preprocessing.cropping.cropping.create_nonzero_mask`: any channel nonzero,
holes filled); it is restated here because importing that module loads torch in every worker.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from nnunet_stroke.evaluation import casefiles
from nnunet_stroke.evaluation.agreement import stratum_of
from nnunet_stroke.evaluation.calibration import VOXEL_BINS, ReliabilityHistogram
from nnunet_stroke.evaluation.case_metrics import segmentation_metrics
from nnunet_stroke.errors import UserError

BRAIN_MARGIN = 2
LESION_MARGIN = 5
PER_CLASS_KEYS = ("dice", "iou", "recall", "precision", "f2", "hd95_mm", "ref_volume_ml", "pred_volume_ml",
                  "abs_volume_diff_ml", "abs_volume_diff_vox", "lesion_f1")


@dataclass(frozen=True)
class CaseJob:
    """Everything a worker process needs to evaluate one case (picklable under spawn)."""

    case: str
    reference_path: Path
    prediction_path: Path | None  # None: missing prediction, evaluated as empty (--allow-missing)
    reader_class: type
    file_ending: str
    allowed_labels: tuple[int, ...]
    lesion_labels: tuple[int, ...] | None
    per_class_labels: tuple[int, ...]
    connectivity: int
    images_dir: Path | None
    probabilities_dir: Path | None
    resample_to_reference: bool = False  # predictions off the reference grid are resampled, not refused


def nonzero_region(images: np.ndarray) -> np.ndarray:
    """Voxels where any channel is nonzero, holes filled (nnU-Net's create_nonzero_mask)."""
    return ndimage.binary_fill_holes(np.any(images != 0, axis=0))


def calibration_roi(job: CaseJob, reference: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    if job.images_dir is not None:
        images = casefiles.read_images(job.images_dir, job.case, job.file_ending, job.reader_class)
        if images.shape[1:] != reference.shape:
            raise UserError(f"case {job.case}: images in {job.images_dir} have shape {images.shape[1:]}, "
                            f"the reference {reference.shape}")
        region, margin = nonzero_region(images) | reference | prediction, BRAIN_MARGIN
    else:
        region, margin = reference | prediction, LESION_MARGIN
    return ndimage.binary_dilation(region, iterations=margin) if region.any() else region


def evaluate_case(job: CaseJob) -> tuple[dict, ReliabilityHistogram | None]:
    """Metrics of one case (a metrics.json ``cases`` entry) and its voxel reliability histogram."""
    reference_map = casefiles.read_label_map(job.reference_path, job.reader_class, job.case)
    if job.prediction_path is None:
        prediction_map = casefiles.LabelMap(np.zeros_like(reference_map.array), reference_map.spacing)
    else:
        prediction_map = casefiles.read_label_map(job.prediction_path, job.reader_class, job.case)
        if job.resample_to_reference and casefiles.grid_differences(reference_map, prediction_map):
            prediction_map = casefiles.resample_to_reference(job.prediction_path, reference_map,
                                                             job.reference_path, job.case)
        casefiles.check_same_geometry(reference_map, prediction_map, job.case, job.prediction_path)
    reference = casefiles.lesion_mask(reference_map, job.allowed_labels, job.lesion_labels, job.case,
                                      job.reference_path)
    prediction = casefiles.lesion_mask(prediction_map, job.allowed_labels, job.lesion_labels, job.case,
                                       job.prediction_path)
    metrics = segmentation_metrics(reference, prediction, reference_map.spacing, job.connectivity)
    result = {"case": job.case, "prediction_missing": job.prediction_path is None, **metrics,
              "stratum": stratum_of(metrics["ref_volume_ml"])}
    for label in job.per_class_labels:
        per_class = segmentation_metrics(reference_map.array == label, prediction_map.array == label,
                                         reference_map.spacing, job.connectivity)
        result.update({f"{key}_label{label}": per_class[key] for key in PER_CLASS_KEYS})
    histogram = None
    if job.probabilities_dir is not None:
        probability = casefiles.read_lesion_probability(job.probabilities_dir, job.case, reference.shape,
                                                        job.lesion_labels)
        roi = calibration_roi(job, reference, prediction)
        histogram = ReliabilityHistogram.of(probability[roi], reference[roi], VOXEL_BINS)
        result["ece_voxel"] = histogram.ece()
        result["max_lesion_probability"] = float(probability[roi].max()) if roi.any() else 0.0
    return result, histogram
