"""Base trainers: the stroke hybrid loss and preset-built networks.

``nnUNetTrainerStrokeUNet`` trains nnU-Net's planned network (3D/2D U-Net, or ResEnc with
``-p nnUNetResEncUNetMPlans``) with LBMNet's hybrid loss, eq. 13 of Kuang et al. (Front. Med. 2026):
Dice + cross-entropy, which section 3.4 calls "weighted", under nnU-Net's deep supervision.

Class-weight rule (the package's: eq. 13 prints the cross-entropy without class weights and section 3.4
gives no weighting rule; the term weights alpha = beta = 1 are the package's too): count the voxels
of every class over the preprocessed segmentations of the fold's training cases,
``w_c = min(n_background / n_c, max_class_weight)`` so background has weight 1 and a class ``k`` times
rarer than background weighs ``k`` (capped at ``max_class_weight`` = 10, so that a tiny lesion class
cannot swamp the background term). Classes absent from the training labels get the cap.

Mixed precision on the CPU (the package's, ``cpu_mixed_precision``): nnU-Net trains under autocast on
CUDA only (float16 AMP). On a CPU with native bfloat16 (AVX512-BF16 or AMX, ``cpu_has_bf16``) the trainers
that train nnU-Net's planned network run the network's forward pass under ``torch.autocast("cpu",
bfloat16)`` (convolutions in bfloat16 with float32 accumulation, the weights and the optimiser in
float32) and compute the loss on float32 outputs; a training step of the CPU-sized planned U-Net takes
about 0.6 of the float32 time (``benchmarks/bench_cpu_precision.py``). The preset networks keep float32:
LBMNet's depthwise and scan kernels are float32 kernels and its step took twice as long under autocast.
Prediction (nnU-Net's predictor) stays float32.

``PresetTrainer`` builds its network from a preset in ``network_configs/`` for the planned patch and
pooling; subclasses set ``network_preset``, ``tiny_preset`` and ``paper``.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from torch import nn

from nnunet_stroke.networks.blocks.nd import channels_last_weights
from nnunet_stroke.networks.registry import build_network
from nnunet_stroke.networks.ssm import Mamba, describe_scan_backend
from nnunet_stroke.trainers.tiny import TINY_BATCH_SIZE

TINY_FEATURES = (8, 16, 32, 64)  # channel widths of the CPU-sized planned U-Net, capped at the last


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (oneDNN's check: AVX512-BF16 or AMX)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check is not None and check())


def float32_outputs(module: nn.Module, inputs, output):
    """Forward hook: the network's logits (a tensor or nnU-Net's deep-supervision list) as float32, so that
    the loss is computed in float32 under CPU autocast."""
    if isinstance(output, (list, tuple)):
        return type(output)(o.float() for o in output)
    return output.float()


def inverse_frequency_weights(voxel_counts: np.ndarray, max_class_weight: float) -> np.ndarray:
    """Class weights ``min(n_0 / n_c, cap)`` from per-class voxel counts (see the module docstring)."""
    counts = np.asarray(voxel_counts, dtype=np.float64)
    with np.errstate(divide="ignore"):
        weights = np.where(counts > 0, counts[0] / counts, np.inf)
    return np.minimum(weights, max_class_weight)


def count_label_voxels(preprocessed_folder: str, identifiers: list[str], num_classes: int) -> np.ndarray:
    """Voxels per class over the preprocessed segmentations of ``identifiers`` (negative labels ignored)."""
    dataset = infer_dataset_class(preprocessed_folder)(preprocessed_folder, identifiers=identifiers)
    counts = np.zeros(num_classes, dtype=np.int64)
    for identifier in identifiers:
        seg = np.asarray(dataset.load_case(identifier)[1])
        counts += np.bincount(seg[seg >= 0].astype(np.int64).ravel(), minlength=num_classes)[:num_classes]
    return counts


class nnUNetTrainerStrokeUNet(nnUNetTrainer):
    """nnU-Net's planned network trained with Dice + CE (LBMNet eq. 13), CE weighted by the package's rule."""

    paper = "nnU-Net (Isensee et al., Nat. Methods 2021) + LBMNet hybrid loss (Kuang et al., Front. Med. 2026, eq. 13)"
    network_preset: str | None = None  # None: nnU-Net's planned network
    tiny_preset: str | None = None  # None: the planned network with TINY_FEATURES widths
    max_class_weight = 10.0
    is_tiny = False
    tiny_batch_size = TINY_BATCH_SIZE  # the _Tiny variant's batch size (see trainers.tiny)
    cpu_mixed_precision = True  # bfloat16 autocast on a CPU that has it (module docstring)

    def initialize(self):
        super().initialize()
        self.cpu_autocast = (self.cpu_mixed_precision and self.device.type == "cpu" and cpu_has_bf16())
        if self.cpu_autocast:
            self.network.register_forward_hook(float32_outputs)
            self.print_to_log_file("Mixed precision on the CPU: network forward under bfloat16 autocast, "
                                   "loss in float32")

    def mixed_precision_context(self):
        """bfloat16 autocast on a CPU that has it (see the module docstring); nothing otherwise (nnU-Net's
        own CUDA autocast applies inside its steps)."""
        if getattr(self, "cpu_autocast", False):
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self, batch: dict) -> dict:
        with self.mixed_precision_context():
            return super().train_step(batch)

    def validation_step(self, batch: dict) -> dict:
        with self.mixed_precision_context():
            return super().validation_step(batch)

    def on_train_start(self):
        super().on_train_start()
        if any(isinstance(module, Mamba) for module in self.network.modules()):
            self.print_to_log_file(describe_scan_backend(self.device))

    def _build_loss(self):
        if self.label_manager.has_regions:  # region training uses BCE; class weights do not apply
            return super()._build_loss()
        tr_keys, _ = self.do_split()
        num_classes = self.label_manager.num_segmentation_heads
        counts = count_label_voxels(self.preprocessed_dataset_folder, tr_keys, num_classes)
        weights = inverse_frequency_weights(counts, self.max_class_weight)
        self.print_to_log_file(f"Voxels per class over {len(tr_keys)} training cases: {counts.tolist()}; "
                               f"cross-entropy class weights: {np.round(weights, 4).tolist()}")
        loss = DC_and_CE_loss(
            {"batch_dice": self.configuration_manager.batch_dice, "smooth": 1e-5, "do_bg": False, "ddp": self.is_ddp},
            {"weight": torch.tensor(weights, dtype=torch.float32, device=self.device)},
            weight_ce=1, weight_dice=1, ignore_label=self.label_manager.ignore_label,
            dice_class=MemoryEfficientSoftDiceLoss)
        if self._do_i_compile():
            loss.dc = torch.compile(loss.dc)
        if self.enable_deep_supervision:
            loss = DeepSupervisionWrapper(loss, self._deep_supervision_weights())
        return loss

    def _deep_supervision_weights(self) -> np.ndarray:
        """nnU-Net's weights: 1/2^i per output, the lowest resolution unused, normalised to sum 1."""
        weights = np.array([1 / (2 ** i) for i in range(len(self._get_deep_supervision_scales()))])
        weights[-1] = 1e-6 if self.is_ddp and not self._do_i_compile() else 0
        return weights / weights.sum()

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True) -> nn.Module:
        """The trainer's network; channels-last on a machine without CUDA, where it trains and predicts
        faster on the CPU (see networks.blocks.nd.channels_last_weights)."""
        network = cls._build_network(plans_manager, configuration_manager, num_input_channels,
                                     num_output_channels, enable_deep_supervision)
        return network if torch.cuda.is_available() else channels_last_weights(network)

    @classmethod
    def _build_network(cls, plans_manager, configuration_manager, num_input_channels: int,
                       num_output_channels: int, enable_deep_supervision: bool) -> nn.Module:
        preset = cls.tiny_preset if cls.is_tiny else cls.network_preset
        if preset is not None:
            return build_network(preset, input_channels=num_input_channels, num_classes=num_output_channels,
                                 patch_size=configuration_manager.patch_size,
                                 strides=configuration_manager.pool_op_kernel_sizes,
                                 deep_supervision=enable_deep_supervision)
        arch_kwargs = dict(configuration_manager.network_arch_init_kwargs)
        if cls.is_tiny:
            n_stages = len(arch_kwargs["features_per_stage"])
            arch_kwargs["features_per_stage"] = [TINY_FEATURES[min(i, len(TINY_FEATURES) - 1)] for i in range(n_stages)]
        return get_network_from_plans(configuration_manager.network_arch_class_name, arch_kwargs,
                                      configuration_manager.network_arch_init_kwargs_req_import,
                                      num_input_channels, num_output_channels, allow_init=True,
                                      deep_supervision=enable_deep_supervision)


class PresetTrainer(nnUNetTrainerStrokeUNet):
    """A trainer whose network comes from ``network_configs/<network_preset>.json`` (see networks.registry)."""

    network_preset: str
    tiny_preset: str
    cpu_mixed_precision = False  # float32 kernels (LBMNet's depthwise and scan kernels): slower under autocast
