"""nnU-Net experiment planner for LBMNet as its paper ran it (Kuang et al., Front. Med. 2026, section 4.2).

``nnUNetPlannerLBMNet`` subclasses nnU-Net's ``ExperimentPlanner`` and overrides its methods, as nnU-Net's
own ResEnc planners do (``residual_unets/residual_encoder_unet_planners.py``); nnU-Net's code is used as
installed, never patched. What differs from nnU-Net's default planner:

- target spacing 1 x 1 x 1 mm (section 4.2: "all volumetric data were resampled to ... 1.0 x 1.0 x 1.0 mm");
- at most ``MAX_LEVELS`` = 5 resolution levels, the stem and the paper's four encoder stages: nnU-Net's
  topology search runs unchanged and the plan keeps its first five levels (the coarsest poolings are
  dropped; the patch stays divisible by the remaining total stride);
- the patch size comes from nnU-Net's own search loop (shrink the axis largest relative to the median
  shape until the estimate fits), with ``static_estimate_VRAM_usage`` replaced by an estimate of
  LBMNet's training memory in bytes at batch size ``BATCH_SIZE`` = 2 under AMP (section 4.2), and the
  reference value set to the usable memory of the GPU (``usable_gpu_bytes``), the way the ResEnc
  planners set theirs per GPU size (the paper used a 24 GB RTX 3090, the default);
- no 3d_lowres configuration (the paper trains at 1 mm only).

The memory estimate (the package's, not the paper's): the bytes of every activation autograd keeps for
the backward pass, measured once per pooling topology (and process) on the CPU at the smallest patch of
that topology (one voxel at the bottleneck, batch 2) under autocast to a 16-bit float (convolutions,
linear layers and matmuls in 16 bits as under AMP's fp16 on the GPU; the selective scan stays in
float32), scaled to the candidate patch (every
activation of a level scales with the level's voxels, which all scale with the patch's voxels for a
fixed topology), plus 14 bytes per parameter (fp32 weight, gradient, SGD momentum, fp16 copy). The CPU
scan keeps one sequence-length tensor per direction more than mamba-ssm's CUDA kernel, so the estimate
errs on the safe side there. The plan's ``architecture`` entry stays nnU-Net's U-Net for the kept levels,
so the plans file remains valid for every nnU-Net tool; LBMNet trainers build their network from the
preset for the planned patch and pooling.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import List, Tuple, Union

import torch
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

from nnunet_stroke.networks.registry import build_network

PLANS_NAME = "nnUNetLBMNetPlans"
PAPER_PRESET = "lbmnet"
TARGET_SPACING_MM = (1.0, 1.0, 1.0)
MAX_LEVELS = 5
BATCH_SIZE = 2
PAPER_GPU_MEMORY_GB = 24.0
BYTES_PER_PARAMETER = 14  # fp32 weight + fp32 gradient + fp32 SGD momentum + fp16 autocast copy
CUDA_CONTEXT_BYTES = 1 << 30  # CUDA context and cuDNN handles, outside PyTorch's allocator
USABLE_FRACTION = 0.85  # of the rest: allocator fragmentation, cuDNN workspaces, the loss's tensors
# per-level lists of nnU-Net's U-Net arguments; n_conv_per_stage_decoder has one entry fewer
_PER_LEVEL_KWARGS = ("features_per_stage", "kernel_sizes", "strides", "n_conv_per_stage", "n_blocks_per_stage")


def usable_gpu_bytes(gpu_memory_gb: float) -> float:
    """Bytes a training step may use on a GPU of ``gpu_memory_gb`` (GiB), after the CUDA context."""
    return (gpu_memory_gb * 2 ** 30 - CUDA_CONTEXT_BYTES) * USABLE_FRACTION


def keep_levels(arch_kwargs: dict, levels: int = MAX_LEVELS) -> dict:
    """nnU-Net's U-Net arguments with only the first ``levels`` resolution levels."""
    levels = min(levels, int(arch_kwargs["n_stages"]))
    kept = dict(arch_kwargs, n_stages=levels)
    for key in _PER_LEVEL_KWARGS:
        if key in kept:
            kept[key] = list(kept[key])[:levels]
    if "n_conv_per_stage_decoder" in kept:
        kept["n_conv_per_stage_decoder"] = list(kept["n_conv_per_stage_decoder"])[:levels - 1]
    return kept


def _smallest_patch(strides) -> tuple[int, ...]:
    """The patch whose bottleneck is one voxel: the product of the strides per axis."""
    return tuple(math.prod(int(s[axis]) for s in strides) for axis in range(len(strides[0])))


@lru_cache(maxsize=None)
def measure_activation_bytes(preset: str, input_channels: int, num_classes: int,
                             strides: tuple[tuple[int, ...], ...]) -> tuple[int, int, int]:
    """(saved activation bytes at the smallest patch of ``strides``, that patch's voxels, parameters) of one
    training forward pass of ``preset`` with deep supervision, per sample, under 16-bit autocast on the CPU.

    Counted once per tensor storage; parameters and tensors without the batch axis are not activations.
    Deterministic, so measured once per process and topology."""
    patch = _smallest_patch(strides)
    with torch.device("meta"):
        network = build_network(preset, input_channels=input_channels, num_classes=num_classes, patch_size=patch,
                                strides=strides, deep_supervision=True)
    network = network.to_empty(device="cpu").train()
    with torch.no_grad():  # values do not change which tensors are kept; zeros are cheap and finite
        for tensor in (*network.parameters(), *network.buffers()):
            tensor.zero_()
    parameter_storages = {p.untyped_storage().data_ptr() for p in network.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameter_storages and tensor.dim() > 0 and tensor.shape[0] == BATCH_SIZE:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    x = torch.zeros(BATCH_SIZE, input_channels, *patch)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), \
            torch.autocast("cpu", dtype=torch.bfloat16):
        network(x)
    parameters = sum(p.numel() for p in network.parameters())
    return sum(kept.values()) // BATCH_SIZE, math.prod(patch), parameters


class nnUNetPlannerLBMNet(ExperimentPlanner):
    """nnU-Net's planner for LBMNet: 1 mm, at most five levels, patch sized by LBMNet's memory estimate."""

    network_preset = PAPER_PRESET

    def __init__(self, dataset_name_or_id: Union[str, int], gpu_memory_target_in_gb: float = PAPER_GPU_MEMORY_GB,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str = PLANS_NAME,
                 overwrite_target_spacing: Union[List[float], Tuple[float, ...]] = TARGET_SPACING_MM,
                 suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         [float(s) for s in overwrite_target_spacing], suppress_transpose)
        # nnU-Net compares estimate / reference_bs * 2 with reference * target_GB / reference_GB: in bytes here
        self.UNet_reference_val_3d = self.UNet_reference_val_2d = usable_gpu_bytes(gpu_memory_target_in_gb)
        self.UNet_reference_val_corresp_GB = gpu_memory_target_in_gb
        self.UNet_reference_val_corresp_bs_3d = self.UNet_reference_val_corresp_bs_2d = BATCH_SIZE
        self.lowres_creation_threshold = 0  # never a 3d_lowres configuration

    def static_estimate_VRAM_usage(self, patch_size, input_channels: int, output_channels: int, arch_class_name: str,
                                   arch_kwargs: dict, arch_kwargs_req_import) -> float:
        """Training memory of the preset's network in bytes at ``BATCH_SIZE`` (see the module docstring)."""
        strides = tuple(tuple(int(s) for s in stride) for stride in arch_kwargs["strides"][:MAX_LEVELS])
        activation_bytes, voxels, parameters = measure_activation_bytes(self.network_preset, int(input_channels),
                                                                        int(output_channels), strides)
        per_sample = activation_bytes * math.prod(int(p) for p in patch_size) / voxels
        return BATCH_SIZE * per_sample + BYTES_PER_PARAMETER * parameters

    def get_plans_for_configuration(self, spacing, median_shape, data_identifier: str,
                                    approximate_n_voxels_dataset: float, _cache: dict) -> dict:
        plan = super().get_plans_for_configuration(spacing, median_shape, data_identifier,
                                                   approximate_n_voxels_dataset, _cache)
        plan["architecture"]["arch_kwargs"] = keep_levels(plan["architecture"]["arch_kwargs"])
        return plan
