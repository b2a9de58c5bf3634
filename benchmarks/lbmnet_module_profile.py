"""Where paper-scale LBMNet's CPU inference time goes: self time per module kind, from forward hooks.

Every module gets a pre- and a post-forward hook; a module's self time is its wall time minus that of
its hooked children, so element-wise work written in a block's ``forward`` (products, sums, the
softmax of BAGF's gate, the permutes and flips around the scan) counts for that block. Module kinds:
convolutions by shape (depthwise k^3, dense k^3, pointwise 1^3, strided down, transposed up), norms,
activations, the Mamba mixer's linear layers, its causal conv, its own forward (the selective scan
plus the gate), ``DirectionalScan3d`` itself (layout: channels-last <-> sequence permutes, flips,
concatenation; at CPU inference with one flattening order also its mixers' work after their first in_proj,
which it runs through ``Mamba.inner_inference`` and one combined out_proj + fusion product, so no mixer
forward is hooked there), and the blocks' own element-wise work. At inference a ``ConvNorm`` runs one convolution
with its BatchNorm folded in (row "... + folded norm", the norm's own row then absent); LSC's merged
depthwise and folded 3^3 refinement convolutions and the folded convolutions of BAGF's depthwise
residual block run in those blocks' own forward (their "element-wise" rows). Used by
``bench_lbmnet.py --profile``.
"""
from __future__ import annotations

import time
from collections import defaultdict

import torch
from torch import nn


def module_kind(module: nn.Module) -> str:
    """A short label for the kind of work a module does itself (children excluded)."""
    from nnunet_stroke.networks.blocks.conv_blocks import ConvNorm
    from nnunet_stroke.networks.ssm import DirectionalScan3d
    from nnunet_stroke.networks.ssm.mamba import Mamba

    if isinstance(module, ConvNorm):  # at inference one convolution with the BatchNorm folded in
        return f"{module_kind(module[0])} + folded norm"
    if isinstance(module, (nn.Conv2d, nn.Conv3d)):
        kernel = "x".join(map(str, module.kernel_size))
        if module.groups == module.in_channels and module.groups > 1:
            return f"conv depthwise {kernel}"
        if any(s > 1 for s in module.stride):
            return f"conv strided {kernel} (downsampling)"
        return f"conv dense {kernel}" if module.kernel_size[0] > 1 else "conv pointwise 1^3"
    if isinstance(module, (nn.ConvTranspose2d, nn.ConvTranspose3d)):
        return "conv transposed (upsampling)"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "batch norm"
    if isinstance(module, nn.modules.instancenorm._InstanceNorm):
        return "instance norm"
    if isinstance(module, nn.LayerNorm):
        return "layer norm (scan pre-norm)"
    if isinstance(module, (nn.GELU, nn.LeakyReLU, nn.ReLU, nn.SiLU)):
        return "activation"
    if isinstance(module, nn.Conv1d):
        return "mamba causal conv1d"
    if isinstance(module, nn.Linear):
        return "linear (mamba projections, scan fusion, attention MLP)"
    if isinstance(module, Mamba):
        return "mamba own forward (selective scan, gate, causal conv)"
    if isinstance(module, DirectionalScan3d):  # at CPU inference it runs its mixers without their forward
        return "scan block own forward (layout, fusion; at inference also the mixers' scans and out_proj)"
    return f"{type(module).__name__} element-wise (own forward)"


class ModuleProfiler:
    """Context manager: accumulates self wall time (s) and calls per module kind during forwards."""

    def __init__(self, network: nn.Module):
        self.network = network
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list[float]] = []  # [start, children seconds]
        self._handles = []

    def _pre(self, module, inputs):
        self._stack.append([time.perf_counter(), 0.0])

    def _post(self, module, inputs, output):
        start, children = self._stack.pop()
        total = time.perf_counter() - start
        kind = module_kind(module)
        self.seconds[kind] += total - children
        self.calls[kind] += 1
        if self._stack:
            self._stack[-1][1] += total

    def __enter__(self) -> "ModuleProfiler":
        for module in self.network.modules():
            if type(module) in (nn.Sequential, nn.ModuleList):  # containers; subclasses may compute
                continue
            self._handles.append(module.register_forward_pre_hook(self._pre))
            self._handles.append(module.register_forward_hook(self._post))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def profile_forward(network: nn.Module, x: torch.Tensor, repeats: int) -> tuple[list[dict], float]:
    """Rows {kind, seconds, share, calls} (per forward, mean over ``repeats``), sorted by time; and the
    mean wall time of a whole forward pass."""
    walls = []
    with torch.inference_mode(), ModuleProfiler(network) as profiler:
        for _ in range(repeats):
            start = time.perf_counter()
            network(x.clone())
            walls.append(time.perf_counter() - start)
    wall = sum(walls) / repeats
    rows = [{"kind": kind, "seconds": seconds / repeats, "share": seconds / repeats / wall,
             "calls": profiler.calls[kind] // repeats}
            for kind, seconds in sorted(profiler.seconds.items(), key=lambda item: -item[1])]
    return rows, wall
