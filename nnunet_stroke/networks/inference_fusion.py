"""Exact re-compositions of LBMNet's layers for inference, and the cache that keeps them.

With autograd off and the module in eval mode (``applies``), blocks run algebraically identical but
cheaper forms of their layers; with autograd on they run the composition as written, which training
differentiates (tests/test_lbmnet_inference_speed_path.py checks both agree to 1e-5 in float32):

- ``folded_batch_norm``: an eval-mode BatchNorm after a convolution is a per-channel affine map, so
  ``BN(conv(x)) = conv'(x)`` with ``w' = w * s``, ``b' = (b - mean) * s + beta``, ``s = gamma / sqrt(var + eps)``
  (one pass over the feature map instead of two).
- ``merged_depthwise``: a sum of depthwise convolutions of one input with odd kernels centred on the
  same voxel (LSC eq. 1, 5^3 + 7^3) is one depthwise convolution with the largest kernel: the smaller
  kernels zero-padded to it and added, the biases summed.

``InferenceCache`` holds such derived weights and rebuilds them when a parameter or buffer they came
from changes: modified in place (the tensor's version counter: optimiser steps, ``load_state_dict``),
replaced, or moved to another device or dtype.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def applies(module: nn.Module) -> bool:
    """Whether ``module`` may run its fused inference form: eval mode and autograd off."""
    return not module.training and not torch.is_grad_enabled()


class InferenceCache:
    """Derived tensors of one module, rebuilt whenever the tensors they are derived from change."""

    def __init__(self):
        self._key = None
        self._value = None

    @staticmethod
    def _signature(sources: Sequence[torch.Tensor]) -> tuple:
        return tuple((id(t), t._version, t.device, t.dtype) for t in sources)

    def get(self, sources: Sequence[torch.Tensor], build: Callable[[], object]):
        key = self._signature(sources)
        if key != self._key:
            self._value = build()
            self._key = key
        return self._value


def folded_batch_norm(conv: nn.Module, norm: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of one convolution equal to ``norm(conv(x))`` with ``norm`` in eval mode."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    weight = conv.weight * scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))
    return weight.contiguous(memory_format=memory_layout(conv.weight)), (bias - norm.running_mean) * scale + norm.bias


def merged_depthwise(convs: Sequence[nn.Module]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) of the one depthwise convolution equal to ``sum(conv(x) for conv in convs)``; it runs
    with the padding of the largest kernel's convolution."""
    largest = max(convs, key=lambda conv: conv.kernel_size)
    weight = torch.zeros_like(largest.weight)
    for conv in convs:
        margin = [(big - small) // 2 for big, small in zip(largest.kernel_size, conv.kernel_size)]
        weight += F.pad(conv.weight, [m for m in reversed(margin) for _ in range(2)])
    biases = [conv.bias for conv in convs if conv.bias is not None]
    return weight.contiguous(memory_format=memory_layout(largest.weight)), (sum(biases) if biases else None)


def memory_layout(weight: torch.Tensor) -> torch.memory_format:
    """The memory format of a convolution weight or feature map (channels-last selects oneDNN's fast CPU
    path)."""
    channels_last = {4: torch.channels_last, 5: torch.channels_last_3d}.get(weight.dim())
    if channels_last is not None and weight.is_contiguous(memory_format=channels_last) and not weight.is_contiguous():
        return channels_last
    return torch.contiguous_format


def sources(*modules: nn.Module) -> list[torch.Tensor]:
    """Every parameter and buffer of ``modules`` (what derived weights depend on)."""
    return [t for module in modules for t in (*module.parameters(), *module.buffers())]


def conv_then_norm(conv: nn.Module, norm: nn.Module, x: torch.Tensor, cache: InferenceCache) -> torch.Tensor:
    """``norm(conv(x))``; one convolution with the BatchNorm folded in (``folded_batch_norm``) when
    ``applies``."""
    if isinstance(norm, nn.modules.batchnorm._BatchNorm) and isinstance(conv, nn.modules.conv._ConvNd) \
            and not conv.transposed and applies(norm):
        weight, bias = cache.get(sources(conv, norm), lambda: folded_batch_norm(conv, norm))
        return conv._conv_forward(x, weight, bias)
    return norm(conv(x))
