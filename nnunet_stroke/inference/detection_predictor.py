"""nnU-Net's predictor, plus the stroke probability of networks with a detection head (PMSAN).

The stock predictor expects one tensor from the network and writes segmentations only. This subclass
predicts exactly as nnU-Net does and, per case, records the detection head's output:

- per sliding-window tile: sigmoid of the head's logit, averaged over the mirrored copies when
  test-time mirroring is on;
- per model (fold): the maximum over the case's tiles (a lesion anywhere makes the case positive);
- per case: the mean over the folds of the ensemble.

``detection.json`` ({case: probability}) is written next to the segmentations (merged with an existing
file, written to a temporary file and moved into place).
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import torch
from nnunetv2.configuration import default_num_processes
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from nnunet_stroke.staging import atomic_write_text

DETECTION_FILE = "detection.json"


def write_detection_json(folder: str | Path, probabilities: dict[str, float]) -> Path:
    """Merge ``probabilities`` into ``folder/detection.json`` atomically; returns the file."""
    path = Path(folder) / DETECTION_FILE
    merged = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    merged.update({case: float(p) for case, p in probabilities.items()})
    atomic_write_text(path, json.dumps(dict(sorted(merged.items())), indent=2))  # normal permissions
    return path


class DetectionPredictor(nnUNetPredictor):
    """``nnUNetPredictor`` that also writes ``detection.json`` (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.case_probabilities: list[float] = []  # one per predicted case, in prediction order
        self._case_outputs: list[str | None] = []
        self._tile_probabilities: list[torch.Tensor] = []
        self._hook = None

    def _record_head_output(self, module, inputs, logit):
        self._tile_probabilities.append(torch.sigmoid(logit.float()).max().cpu())

    def _ensure_hook(self):
        head = getattr(self.network, "detection_head", None) or getattr(
            getattr(self.network, "_orig_mod", None), "detection_head", None)
        if head is None:
            raise RuntimeError(f"{self.trainer_name}'s network has no detection_head; use the stock predictor")
        if self._hook is None:
            self._hook = head.register_forward_hook(self._record_head_output)

    @torch.inference_mode()
    def _internal_maybe_mirror_and_predict(self, x: torch.Tensor) -> torch.Tensor:
        first = len(self._tile_probabilities)
        prediction = super()._internal_maybe_mirror_and_predict(x)
        tile = torch.stack(self._tile_probabilities[first:]).mean()  # mean over mirrored copies
        del self._tile_probabilities[first:]
        self._tile_maximum = torch.maximum(self._tile_maximum, tile)
        return prediction

    @torch.inference_mode()
    def predict_sliding_window_return_logits(self, input_image: torch.Tensor):
        self._ensure_hook()
        self._tile_maximum = torch.tensor(0.0)
        logits = super().predict_sliding_window_return_logits(input_image)
        self._fold_maxima.append(float(self._tile_maximum))
        return logits

    @torch.inference_mode()
    def predict_logits_from_preprocessed_data(self, data: torch.Tensor) -> torch.Tensor:
        self._fold_maxima: list[float] = []
        logits = super().predict_logits_from_preprocessed_data(data)
        self.case_probabilities.append(sum(self._fold_maxima) / len(self._fold_maxima))
        return logits

    def _manage_input_and_output_lists(self, *args, **kwargs):
        inputs, outputs, previous_stage = super()._manage_input_and_output_lists(*args, **kwargs)
        # cases are predicted in this order by both the multi-process iterator and the sequential loop
        self._case_outputs = list(outputs) if outputs is not None else [None] * len(inputs)
        return inputs, outputs, previous_stage

    def _write_detection(self) -> None:
        by_folder: dict[str, dict[str, float]] = defaultdict(dict)
        for output, probability in zip(self._case_outputs, self.case_probabilities):
            if output is not None:
                by_folder[os.path.dirname(output) or os.curdir][os.path.basename(output)] = probability
        for folder, probabilities in by_folder.items():
            write_detection_json(folder, probabilities)

    # nnU-Net records these methods' arguments by inspecting their signatures: keep them explicit
    def predict_from_files(self, list_of_lists_or_source_folder, output_folder_or_list_of_truncated_output_files,
                           save_probabilities: bool = False, overwrite: bool = True,
                           num_processes_preprocessing: int = default_num_processes,
                           num_processes_segmentation_export: int = default_num_processes,
                           folder_with_segs_from_prev_stage: str = None, num_parts: int = 1, part_id: int = 0):
        self.case_probabilities, self._case_outputs = [], []
        result = super().predict_from_files(
            list_of_lists_or_source_folder, output_folder_or_list_of_truncated_output_files, save_probabilities,
            overwrite, num_processes_preprocessing, num_processes_segmentation_export,
            folder_with_segs_from_prev_stage, num_parts, part_id)
        self._write_detection()
        return result

    def predict_from_files_sequential(self, list_of_lists_or_source_folder,
                                      output_folder_or_list_of_truncated_output_files,
                                      save_probabilities: bool = False, overwrite: bool = True,
                                      folder_with_segs_from_prev_stage: str = None):
        self.case_probabilities, self._case_outputs = [], []
        result = super().predict_from_files_sequential(
            list_of_lists_or_source_folder, output_folder_or_list_of_truncated_output_files, save_probabilities,
            overwrite, folder_with_segs_from_prev_stage)
        self._write_detection()
        return result
