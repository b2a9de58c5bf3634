"""Stroke lesion evaluation: the ISLES'22 and ATLAS v2.0 challenge metrics, the LBMNet paper's tables
(Dice, IoU, F2, Recall, Precision, HD95, lesion-size strata, Bland-Altman), PMSAN's patient-level
detection metrics, calibration, aggregation over repeated splits and reports. See docs/evaluation.md."""
from nnunet_stroke.evaluation.aggregate import load_metrics, write_metrics
from nnunet_stroke.evaluation.folders import evaluate_folders

__all__ = ["evaluate_folders", "write_metrics", "load_metrics"]
