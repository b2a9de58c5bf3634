"""Image-level classification inside nnU-Net: the base of every classifier trainer of the package.

nnU-Net keeps what it owns: plans, preprocessing, ``splits_final.json`` (folds 0-9), the results folder,
checkpoints, ``-c`` / ``--val`` / ``-pretrained_weights``. What changes for a classifier:

- **Labels** per case from ``$nnUNet_raw/<dataset>/cases.csv`` with the package's one rule,
  :func:`nnunet_stroke.evaluation.case_labels.case_labels` (``classification_task`` "presence" or
  "subtype"). ``class_names[i]`` names logit ``i``; every checkpoint stores them at its top level under
  ``"classification_classes"``, which is what the classification predictor reads.
- **Network**: ``build_network_architecture`` (nnU-Net's hook, same signature) builds the trainer's preset
  with ``num_output_channels`` classes; the network takes a whole preprocessed image (B, C, D, H, W) or
  (B, C, H, W) and returns logits (B, num_classes); no deep supervision, no softmax. During training the
  trainer passes ``len(class_names)`` in place of nnU-Net's segmentation head count; the predictor calls
  the hook with ``num_output_channels=len(checkpoint["classification_classes"])``.
- **Data**: whole images, class-balanced training batches, simple augmentation
  (:mod:`~nnunet_stroke.trainers.whole_image_data`); nnU-Net's batch size of the configuration.
- **Loss**: cross-entropy on the patient label (``label_smoothing`` 0 unless a subclass sets it).
- **Optimiser** (the package's choice, the papers leave it open except StrokeNeXt's AdamW): AdamW,
  learning rate 1e-3, weight decay 0.05, nnU-Net's polynomial decay; 100 epochs of 250 iterations.
- **Validation every epoch**: one pass over all validation cases; the validation AUC (binary, or macro
  one-vs-rest for more classes) is logged where nnU-Net logs its pseudo Dice (``mean_fg_dice``, so
  progress.png draws the AUC on the curve it labels "pseudo dice"), and ``checkpoint_best.pth`` is written
  whenever it improves (the first epoch always writes it; an undefined AUC - one class among the
  validation cases - never counts as an improvement). The best AUC is kept in nnU-Net's ``_best_ema``
  checkpoint field, so a continued training (``--c``) remembers it.
- **perform_actual_validation** (end of ``nnUNetv2_train``, and ``--val``): predicts every validation case
  whole and writes ``validation/classification.json`` ({case: {"probabilities": {class: p}, "label":
  predicted class}}) and ``validation/summary.json`` (AUC, accuracy, n, class counts).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from nnunetv2.paths import nnUNet_raw
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch import nn

from nnunet_stroke.errors import UserError
from nnunet_stroke.evaluation.case_labels import case_labels
from nnunet_stroke.networks.blocks.nd import channels_last_weights
from nnunet_stroke.networks.registry import build_network
from nnunet_stroke.staging import atomic_write_text
from nnunet_stroke.trainers.loss_hook import LossHookTrainStep
from nnunet_stroke.trainers.whole_image_data import WholeImageBatches, load_whole_image

CHECKPOINT_CLASSES_KEY = "classification_classes"


def classification_auc(targets: np.ndarray, probabilities: np.ndarray) -> float:
    """ROC AUC of class probabilities (N, K): binary for K = 2, macro one-vs-rest otherwise; NaN when the
    targets hold a single class."""
    from sklearn.metrics import roc_auc_score

    targets = np.asarray(targets)
    if len(np.unique(targets)) < 2:
        return math.nan
    if probabilities.shape[1] == 2:
        return float(roc_auc_score(targets, probabilities[:, 1]))
    present = np.unique(targets)
    scores = [roc_auc_score(targets == k, probabilities[:, k]) for k in present]
    return float(np.mean(scores))


def cases_csv_path(dataset_name: str) -> Path:
    if nnUNet_raw is None:
        raise UserError("nnUNet_raw is not set; a classifier reads its labels from $nnUNet_raw/<dataset>/cases.csv: "
                        "export nnUNet_raw")
    return Path(nnUNet_raw) / dataset_name / "cases.csv"


class ClassificationTrainer(LossHookTrainStep, nnUNetTrainer):
    """Shared behaviour of the image-level classifiers (module docstring)."""

    predicts_classification = True  # nnunet_stroke.inference writes classification.json for these trainers
    classification_task = "presence"
    label_smoothing = 0.0
    paper: str = ""
    network_preset: str
    tiny_preset: str
    is_tiny = False
    initial_lr_classifier = 1e-3
    weight_decay_classifier = 0.05
    epochs_classifier = 100

    # nnU-Net records the constructor's named parameters in every checkpoint: keep its exact signature
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False
        self.initial_lr, self.weight_decay = self.initial_lr_classifier, self.weight_decay_classifier
        self.num_epochs = self.epochs_classifier
        self.class_names: list[str] | None = None
        self.case_classes: dict[str, int] | None = None
        self.is_2d = len(self.configuration_manager.patch_size) == 2

    # ---- network -------------------------------------------------------------------------------------
    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = False) -> nn.Module:
        """The classifier of the trainer's preset with ``num_output_channels`` classes (module docstring)."""
        network = build_network(cls.tiny_preset if cls.is_tiny else cls.network_preset,
                                input_channels=num_input_channels, num_classes=num_output_channels,
                                patch_size=configuration_manager.patch_size,
                                strides=configuration_manager.pool_op_kernel_sizes, deep_supervision=False)
        return network if torch.cuda.is_available() else channels_last_weights(network)

    def _build_classifier(self, plans_manager, configuration_manager, num_input_channels: int,
                          num_output_channels: int, enable_deep_supervision: bool) -> nn.Module:
        """nnU-Net's initialize passes its segmentation head count: build with the class count instead."""
        return type(self).build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                                     len(self.class_names), False)

    def initialize(self):
        if not self.was_initialized:
            self.class_names, self.case_classes = case_labels(cases_csv_path(self.plans_manager.dataset_name),
                                                              self.classification_task)
            self.build_network_architecture = self._build_classifier  # for nnU-Net's initialize only
            try:
                super().initialize()
            finally:
                del self.build_network_architecture
            self.print_to_log_file(f"Classification task {self.classification_task!r}: classes {self.class_names}")
            return
        super().initialize()

    def set_deep_supervision_enabled(self, enabled: bool):
        """A classifier has no decoder and no deep supervision."""

    def plot_network_architecture(self):
        """nnU-Net's plot feeds one patch; a classifier is fed whole images: nothing to plot."""

    def _build_loss(self):
        return nn.CrossEntropyLoss(label_smoothing=self.label_smoothing)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

    # ---- data ----------------------------------------------------------------------------------------
    def get_dataloaders(self):
        dataset_tr, dataset_val = self.get_tr_and_val_datasets()
        tr_keys, val_keys = list(dataset_tr.identifiers), list(dataset_val.identifiers)
        counts = np.bincount([self.case_classes.get(k, -1) + 1 for k in tr_keys], minlength=len(self.class_names) + 1)
        self.print_to_log_file(f"Training cases per class: {dict(zip(self.class_names, counts[1:].tolist()))}; "
                               f"batches are class-balanced")
        train = WholeImageBatches(dataset_tr, tr_keys, self.case_classes, self.batch_size, self.is_2d, training=True)
        val = WholeImageBatches(dataset_val, val_keys, self.case_classes, self.batch_size, self.is_2d, training=False)
        self.num_val_iterations_per_epoch = val.batches_per_pass  # every validation case once per epoch
        return train, val

    # ---- training and validation steps ---------------------------------------------------------------
    def compute_train_loss(self, data: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(self.network(data).float(), target)

    def validation_step(self, batch: dict) -> dict:
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"].to(self.device, non_blocking=True)
        with self.autocast_context():
            logits = self.network(data).float()
        loss = nn.functional.cross_entropy(logits, target)
        return {"loss": loss.cpu().numpy() * len(target), "n": len(target),
                "probabilities": torch.softmax(logits, 1).cpu().numpy(), "target": target.cpu().numpy()}

    def on_validation_epoch_end(self, val_outputs: list[dict]):
        probabilities = np.concatenate([o["probabilities"] for o in val_outputs])
        targets = np.concatenate([o["target"] for o in val_outputs])
        auc = classification_auc(targets, probabilities)
        self.logger.log("mean_fg_dice", auc, self.current_epoch)
        self.logger.log("dice_per_class_or_region", [auc], self.current_epoch)
        self.logger.log("val_losses", sum(o["loss"] for o in val_outputs) / sum(o["n"] for o in val_outputs),
                        self.current_epoch)
        self.val_accuracy = float(np.mean(probabilities.argmax(1) == targets))

    def on_epoch_end(self):
        """nnU-Net's bookkeeping, with the best checkpoint chosen by validation AUC (module docstring)."""
        from time import time

        self.logger.log("epoch_end_timestamps", time(), self.current_epoch)
        auc = self.logger.get_value("mean_fg_dice", step=-1)
        self.print_to_log_file("train_loss", np.round(self.logger.get_value("train_losses", step=-1), decimals=4))
        self.print_to_log_file("val_loss", np.round(self.logger.get_value("val_losses", step=-1), decimals=4))
        self.print_to_log_file(f"validation AUC {auc:.4f}, accuracy {self.val_accuracy:.4f}")
        seconds = self.logger.get_value("epoch_end_timestamps", step=-1) - \
            self.logger.get_value("epoch_start_timestamps", step=-1)
        self.print_to_log_file(f"Epoch time: {np.round(seconds, decimals=2)} s")
        if (self.current_epoch + 1) % self.save_every == 0 and self.current_epoch != self.num_epochs - 1:
            self.save_checkpoint(os.path.join(self.output_folder, "checkpoint_latest.pth"))
        if self._best_ema is None or (not math.isnan(auc) and (math.isnan(self._best_ema) or auc > self._best_ema)):
            self._best_ema = auc
            self.print_to_log_file(f"New best validation AUC: {auc:.4f}")
            self.save_checkpoint(os.path.join(self.output_folder, "checkpoint_best.pth"))
        if self.local_rank == 0:
            self.logger.plot_progress_png(self.output_folder)
        self.current_epoch += 1

    # ---- checkpoints ---------------------------------------------------------------------------------
    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint plus the top-level key ``"classification_classes"`` (written atomically)."""
        if self.local_rank != 0 or self.disable_checkpointing:
            return super().save_checkpoint(filename)
        partial = f"{filename}.partial"
        super().save_checkpoint(partial)
        checkpoint = torch.load(partial, map_location="cpu", weights_only=False)
        checkpoint[CHECKPOINT_CLASSES_KEY] = list(self.class_names)
        torch.save(checkpoint, partial)
        os.replace(partial, filename)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        if not self.was_initialized:
            self.initialize()
        checkpoint = filename_or_checkpoint
        if isinstance(checkpoint, str):
            checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=False)
        stored = checkpoint.get(CHECKPOINT_CLASSES_KEY)
        if stored is not None and list(stored) != self.class_names:
            raise UserError(f"the checkpoint was trained on classes {stored}, but cases.csv now gives "
                            f"{self.class_names}; train again (the labels changed)")
        super().load_checkpoint(filename_or_checkpoint)  # nnU-Net 2.8 reads only a file name correctly

    # ---- final validation ----------------------------------------------------------------------------
    @torch.no_grad()
    def predict_case_probabilities(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities (K,) of one whole preprocessed image (C, *spatial)."""
        self.network.eval()
        data = torch.from_numpy(np.ascontiguousarray(image))[None].to(self.device)
        with self.autocast_context():
            logits = self.network(data).float()
        return torch.softmax(logits, 1)[0].cpu().numpy()

    def perform_actual_validation(self, save_probabilities: bool = False):
        """Whole-image predictions of the validation cases -> validation/classification.json and summary.json."""
        if self.local_rank != 0:
            return
        _, val_keys = self.do_split()
        dataset = self.dataset_class(self.preprocessed_dataset_folder, val_keys)
        predictions, probabilities = {}, []
        for key in val_keys:
            p = self.predict_case_probabilities(load_whole_image(dataset, key, self.is_2d))
            probabilities.append(p)
            predictions[key] = {"probabilities": {c: float(v) for c, v in zip(self.class_names, p)},
                                "label": self.class_names[int(p.argmax())]}
        targets = np.array([self.case_classes[k] for k in val_keys])
        probabilities = np.array(probabilities).reshape(len(val_keys), len(self.class_names))
        auc = classification_auc(targets, probabilities) if len(val_keys) else math.nan
        summary = {"protocol": "classification", "task": self.classification_task, "classes": self.class_names,
                   "n": len(val_keys), "auroc": None if math.isnan(auc) else auc,
                   "accuracy": float(np.mean(probabilities.argmax(1) == targets)) if len(val_keys) else None,
                   "cases_per_class": {c: int((targets == k).sum()) for k, c in enumerate(self.class_names)}}
        folder = Path(self.output_folder) / "validation"
        for name, content in (("classification.json", predictions), ("summary.json", summary)):
            atomic_write_text(folder / name, json.dumps(content, indent=2))
        self.print_to_log_file(f"Validation ({len(val_keys)} cases): AUC {summary['auroc']}, "
                               f"accuracy {summary['accuracy']}; written to {folder}")
