"""nnU-Net's predictor for image-level classifiers: ``classification.json`` instead of segmentations.

A classifier trainer (class attribute ``predicts_classification = True``) stores its class names in the
checkpoint as ``classification_classes`` (index = logit index). This predictor loads the folds' checkpoints
as ``nnUNetPredictor.initialize_from_trained_model_folder`` does and builds the network through the same
hook, ``build_network_architecture(plans_manager, configuration_manager, num_input_channels,
len(classification_classes), enable_deep_supervision=False)``.

Per case:

- the input files are preprocessed by nnU-Net's own preprocessor of the configuration (as for training);
- 3D configurations: the whole preprocessed volume (1, C, Z, Y, X) goes through the network; 2D
  configurations: every slice (C, H, W) of the case, as a batch. A case with more than one slice (a
  3D volume under a 2D configuration) is the mean of its slices' probabilities only when the trainer
  says so (``classification_aggregates_slices = True``), else it is refused: a 2D dataset (TEKNOFEST
  CT, one slice per case) has one slice per case;
- probabilities = softmax of the logits, averaged over the test-time mirrored copies (the checkpoint's
  mirroring axes, when mirroring is on) and then over the folds of the ensemble;
- label = argmax, or for two classes ``p(class 1) >= threshold`` when a decision threshold is given
  (the Youden threshold chosen on a fold's validation cases, ``classification_threshold.json``).
"""
from __future__ import annotations

import inspect
import itertools
import os
from pathlib import Path

import numpy as np
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from tqdm import tqdm

from nnunet_stroke.errors import UserError
from nnunet_stroke.evaluation.classification import (CLASSIFICATION_FILE, classification_entries,
                                                     read_classification_json, write_classification_json)

CLASSES_KEY = "classification_classes"


class ClassificationPredictor(nnUNetPredictor):
    """``nnUNetPredictor`` for classifiers (see the module docstring)."""

    class_names: list[str]
    trainer_class: type

    # nnU-Net's version builds the network with one output per segmentation class: the same steps, with
    # the classifier's number of classes from the checkpoint
    def initialize_from_trained_model_folder(self, model_training_output_dir: str, use_folds,
                                             checkpoint_name: str = "checkpoint_final.pth"):
        if use_folds is None:
            use_folds = nnUNetPredictor.auto_detect_available_folds(model_training_output_dir, checkpoint_name)
        use_folds = [use_folds] if isinstance(use_folds, (str, int)) else list(use_folds)
        if not use_folds:
            raise UserError(f"no fold of {model_training_output_dir} has {checkpoint_name}; train a fold first")
        dataset_json = load_json(os.path.join(model_training_output_dir, "dataset.json"))
        plans_manager = PlansManager(load_json(os.path.join(model_training_output_dir, "plans.json")))
        checkpoints = []
        for fold in use_folds:
            path = Path(model_training_output_dir) / f"fold_{fold}" / checkpoint_name
            if not path.is_file():
                raise UserError(f"{path} is missing; train fold {fold} first or choose other folds (-f)")
            checkpoints.append((path, torch.load(path, map_location=torch.device("cpu"), weights_only=False)))
        path, first = checkpoints[0]
        for other_path, checkpoint in checkpoints:
            if checkpoint.get(CLASSES_KEY) is None:
                raise UserError(f"{other_path} holds no {CLASSES_KEY}: it was not written by a classifier trainer")
            if checkpoint[CLASSES_KEY] != first[CLASSES_KEY] or checkpoint["trainer_name"] != first["trainer_name"]:
                raise UserError(f"{other_path} and {path} differ in trainer or classes; ensemble folds of one model")
        configuration_manager = plans_manager.get_configuration(first["init_args"]["configuration"])
        trainer_class = recursive_find_trainer_class_by_name(first["trainer_name"])
        if "plans_manager" not in inspect.signature(trainer_class.build_network_architecture).parameters:
            raise UserError(f"{first['trainer_name']} uses nnU-Net's old build_network_architecture signature; "
                            f"classifiers need build_network_architecture(plans_manager, configuration_manager, ...)")
        self.class_names = list(first[CLASSES_KEY])
        network = trainer_class.build_network_architecture(
            plans_manager, configuration_manager,
            determine_num_input_channels(plans_manager, configuration_manager, dataset_json),
            len(self.class_names), enable_deep_supervision=False)
        parameters = [checkpoint["network_weights"] for _, checkpoint in checkpoints]
        network.load_state_dict(parameters[0])
        self.trainer_class = trainer_class
        self.manual_initialization(network, plans_manager, configuration_manager, parameters, dataset_json,
                                   first["trainer_name"], first.get("inference_allowed_mirroring_axes"))

    def _mirrored_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax of the network's logits (B, K), averaged over the mirrored copies of ``x``."""
        axes = [a + 2 for a in self.allowed_mirroring_axes] if self.use_mirroring and self.allowed_mirroring_axes \
            else []
        flips = [()] + [c for i in range(len(axes)) for c in itertools.combinations(axes, i + 1)]
        return torch.stack([torch.softmax(self.network(torch.flip(x, f) if f else x).float(), dim=1)
                            for f in flips]).mean(dim=0)

    def _network_inputs(self, data: torch.Tensor, case: str) -> torch.Tensor:
        """(1, C, Z, Y, X) for 3D configurations, (slices, C, H, W) for 2D ones (see the module docstring)."""
        if len(self.configuration_manager.patch_size) == 3:
            return data[None]
        slices = data.permute(1, 0, 2, 3)
        if slices.shape[0] > 1 and not getattr(self.trainer_class, "classification_aggregates_slices", False):
            raise UserError(f"case {case} has {slices.shape[0]} slices under the 2D configuration, but "
                            f"{self.trainer_name} classifies one 2D image per case; use its 3D configuration "
                            f"or a dataset with one slice per case")
        return slices

    @torch.inference_mode()
    def predict_probabilities_from_preprocessed_data(self, data: torch.Tensor, case: str = "?") -> np.ndarray:
        """Class probabilities (K,) of one preprocessed case (C, *spatial), mean over the folds."""
        self.network = self.network.to(self.device).eval()
        x = self._network_inputs(torch.as_tensor(data, dtype=torch.float32), case).to(self.device)
        batch = max(1, int(self.configuration_manager.batch_size))
        fold_probabilities = []
        for parameters in self.list_of_parameters:
            getattr(self.network, "_orig_mod", self.network).load_state_dict(parameters)
            per_input = torch.cat([self._mirrored_probabilities(x[i:i + batch]) for i in range(0, len(x), batch)])
            fold_probabilities.append(per_input.mean(dim=0).cpu())
        return torch.stack(fold_probabilities).mean(dim=0).double().numpy()

    def _preprocessed_cases(self, inputs: list[list[str]], cases: list[str], num_processes: int):
        """(case, preprocessed data) pairs from nnU-Net's preprocessor (in worker processes when > 0)."""
        if num_processes == 0:
            preprocessor = self.configuration_manager.preprocessor_class(verbose=self.verbose_preprocessing)
            for files, case in zip(inputs, cases):
                data, _, _ = preprocessor.run_case(files, None, self.plans_manager, self.configuration_manager,
                                                   self.dataset_json)
                yield case, torch.from_numpy(data)
            return
        for item in self._internal_get_data_iterator_from_lists_of_filenames(inputs, [None] * len(inputs), cases,
                                                                           num_processes):
            yield item["ofile"], item["data"]

    def classify_files(self, list_of_lists_or_source_folder, output_folder: str | Path, overwrite: bool = True,
                       num_processes_preprocessing: int = 0, threshold: float | None = None, part_id: int = 0,
                       num_parts: int = 1) -> dict[str, dict]:
        """Classify the cases (a folder of CASE_XXXX files or lists of files per case) and merge them into
        ``output_folder/classification.json``; returns the new entries."""
        output = Path(output_folder)
        output.mkdir(parents=True, exist_ok=True)
        inputs, truncated, _ = self._manage_input_and_output_lists(list_of_lists_or_source_folder, str(output),
                                                                   None, True, part_id, num_parts)
        cases = [os.path.basename(t) for t in truncated]
        existing = output / CLASSIFICATION_FILE
        if not overwrite and existing.is_file():
            done = set(read_classification_json(existing)[1])
            inputs, cases = [i for i, c in zip(inputs, cases) if c not in done], [c for c in cases if c not in done]
        probabilities = {case: self.predict_probabilities_from_preprocessed_data(data, case) for case, data in tqdm(
            self._preprocessed_cases(inputs, cases, num_processes_preprocessing), total=len(cases),
            desc="classifying", disable=not self.allow_tqdm)}
        entries = classification_entries(probabilities, self.class_names, threshold)
        write_classification_json(existing, entries, merge=True)
        return entries
