"""Prediction with detection: :class:`DetectionPredictor` (nnU-Net's predictor + ``detection.json``) and
:func:`run_predict` (``nnUNetv2_predict``'s arguments; used by ``nnunet-stroke predict``).

Imports nnunetv2 lazily so that importing the package stays cheap.
"""
from __future__ import annotations

from nnunet_stroke.inference.predict_command import build_parser, run_predict

__all__ = ["build_parser", "run_predict", "DetectionPredictor"]


def __getattr__(name: str):
    if name == "DetectionPredictor":
        from nnunet_stroke.inference.detection_predictor import DetectionPredictor

        return DetectionPredictor
    raise AttributeError(name)
