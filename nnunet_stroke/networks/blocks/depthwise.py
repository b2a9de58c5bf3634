"""A cheaper CPU backward pass for depthwise 3-D convolutions, same forward, same parameters.

LBMNet's blocks (asc.py, lsc*.py, conv_blocks.py) use depthwise convolutions (``groups == in_channels ==
out_channels``) with 3, 5 and 7 voxel kernels, stride 1 and 'same' padding ``k // 2``. PyTorch's CPU
backward of depthwise 3-D convolutions is several times slower than its forward and dominates a training
step; ``benchmarks/bench_depthwise.py`` measures by how much and what this module saves. Both gradients
have exact reformulations that run on cheaper kernels:

- Input gradient. The forward pass is a cross-correlation, ``y[o] = sum_t w[t] x[o + t - p]`` (per
  channel, ``t`` over the kernel, ``p = k // 2``). Its gradient ``dx[i] = sum_t w[t] g[i - t + p]`` is the
  cross-correlation of the output gradient ``g`` with the kernel flipped along every spatial axis, with
  the same padding: one more depthwise *forward* convolution.
- Weight gradient. ``dw[t] = sum_n sum_o g[n, o] x[n, o + t - p]`` is the cross-correlation of the input
  with the output gradient, read at the ``k**3`` shifts ``t - p`` in ``[-p, p]``. By the convolution
  theorem it is ``irfftn(sum_n X * conj(G))`` with ``X``, ``G`` the spatial FFTs of ``x`` and ``g``
  zero-padded to ``size + 2p`` per axis (so no shift wraps onto data), gathered at those shifts. The
  FFT's cost does not grow with ``k``, so it pays from :data:`FFT_MIN_KERNEL` on; smaller kernels keep
  PyTorch's own weight gradient (``aten.convolution_backward`` asked for the weight only).
- Bias gradient: the sum of ``g`` over batch and space.

:class:`Conv3d` is ``nn.Conv3d`` (same state_dict, ``isinstance`` holds) that routes eligible calls
(:func:`routed`) through :class:`DepthwiseConv3dFunction` and everything else to ``nn.Conv3d``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from nnunet_stroke.networks.inference_fusion import memory_layout

FFT_MIN_KERNEL = 7  # from benchmarks/bench_depthwise.py: FFT weight gradient vs PyTorch's per kernel size
ROUTING = True  # False: every Conv3d runs nn.Conv3d's own forward/backward (comparisons, benchmarks)
FLOATS = (torch.float32, torch.float64)


def weight_gradient_fft(x: torch.Tensor, grad_out: torch.Tensor, kernel: int) -> torch.Tensor:
    """(C, 1, k, k, k) gradient of a stride-1, 'same'-padded depthwise conv weight, via the convolution theorem."""
    pad = kernel // 2
    size = [n + 2 * pad for n in x.shape[2:]]
    spatial = (2, 3, 4)
    spectrum = torch.fft.rfftn(x, s=size, dim=spatial) * torch.fft.rfftn(grad_out, s=size, dim=spatial).conj()
    correlation = torch.fft.irfftn(spectrum.sum(0), s=size, dim=(1, 2, 3))  # [c, s] = sum_n,o x[o + s] g[o]
    shifts = [torch.arange(-pad, pad + 1) % n for n in size]
    gathered = correlation[:, shifts[0]][:, :, shifts[1]][:, :, :, shifts[2]]
    return gathered.unsqueeze(1)


class DepthwiseConv3dFunction(torch.autograd.Function):
    """``F.conv3d(x, weight, bias, padding=k // 2, groups=C)`` with the backward described in the module doc."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.conv3d(x, weight, bias, 1, weight.shape[-1] // 2, 1, x.shape[1])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        x, weight = ctx.saved_tensors
        kernel, channels = weight.shape[-1], x.shape[1]
        pad = kernel // 2
        layout = memory_layout(x)
        grad_out = grad_out.contiguous(memory_format=layout)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv3d(grad_out, weight.flip(2, 3, 4), None, 1, pad, 1, channels)
            grad_x = grad_x.contiguous(memory_format=layout)
        if ctx.needs_input_grad[1]:
            if kernel >= FFT_MIN_KERNEL:
                grad = weight_gradient_fft(x, grad_out, kernel)
            else:
                grad = torch.ops.aten.convolution_backward(grad_out, x, weight, None, [1] * 3, [pad] * 3, [1] * 3,
                                                           False, [0] * 3, channels, [False, True, False])[1]
            grad_w = torch.empty_like(weight).copy_(grad)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3, 4))
        return grad_x, grad_w, grad_b


def routed(conv: nn.Conv3d, x: torch.Tensor) -> bool:
    """Whether ``conv(x)`` takes :class:`DepthwiseConv3dFunction`: a CPU float32/64 input outside autocast
    with a gradient to compute, a depthwise (groups == in == out channels), stride-1, dilation-1, zero-padded
    'same' convolution with an odd cubic kernel."""
    kernel = conv.kernel_size
    return (ROUTING and x.device.type == "cpu" and x.dtype in FLOATS and conv.weight.dtype == x.dtype
            and torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad)
            and not torch.is_autocast_enabled("cpu")
            and conv.groups == conv.in_channels == conv.out_channels
            and conv.stride == (1, 1, 1) and conv.dilation == (1, 1, 1) and conv.padding_mode == "zeros"
            and len(set(kernel)) == 1 and kernel[0] % 2 == 1 and conv.padding == (kernel[0] // 2,) * 3)


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` whose eligible depthwise calls (:func:`routed`) use the cheaper CPU backward."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if routed(self, x):
            return DepthwiseConv3dFunction.apply(x, weight, bias)
        return super()._conv_forward(x, weight, bias)
