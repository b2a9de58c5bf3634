"""nnU-Net predictor subclasses: :class:`DetectionPredictor` (segmentations + ``detection.json``) and
:class:`ClassificationPredictor` (``classification.json``). What runs them is in ``nnunet_stroke.workflows``.

Imports nnunetv2 lazily so that importing the package stays cheap.
"""
from __future__ import annotations

__all__ = ["DetectionPredictor", "ClassificationPredictor"]


def __getattr__(name: str):
    if name == "DetectionPredictor":
        from nnunet_stroke.inference.detection_predictor import DetectionPredictor

        return DetectionPredictor
    if name == "ClassificationPredictor":
        from nnunet_stroke.inference.classification_predictor import ClassificationPredictor

        return ClassificationPredictor
    raise AttributeError(name)
