"""Recurrent layer across slices of PMSAN's volumetric model ("initial processing is performed slice-wise
with shared weights, followed by recurrent layers to capture inter-slice relationships").

A convolutional GRU (Shi et al. 2015 / Ballas et al. 2016) with PyTorch's ``nn.GRU`` gate equations,
convolutions in place of the matrix products::

    r = sigmoid(W_ir * x + b_ir + W_hr * h + b_hr)
    z = sigmoid(W_iz * x + b_iz + W_hz * h + b_hz)
    n = tanh(W_in * x + b_in + r (W_hn * h + b_hn))
    h' = (1 - z) n + z h

(with 1x1 kernels on 1x1 maps it is exactly ``nn.GRU``). :class:`SliceRecurrence` runs one cell from the
first slice to the last and one from the last to the first, merges both hidden states with a 1x1
convolution and adds them to the input (residual).

``slice_pool`` > 1 runs the recurrence on slabs of that many slices (their mean) and gives each slice
its slab's hidden states: PMSAN passes the planned cumulative slice-axis stride of the level, i.e. the
slice resolution nnU-Net's plan has at that depth, which also divides the sequential steps by it.
"""
from __future__ import annotations

import torch
from torch import nn

from nnunet_stroke.networks.blocks.multiscale import instance_norm


class ConvGRUCell(nn.Module):
    """Convolutional GRU cell with ``nn.GRU``'s gate equations (module docstring).

    Args:
        input_channels: channels of x.
        hidden_channels: channels of the hidden state h.
        kernel_size: odd size of both gate convolutions.

    Shapes: ``forward(x, h)`` with x ``(N, C_in, H, W)`` and h ``(N, C_h, H, W)`` -> h' ``(N, C_h, H, W)``.
    """

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.input_gates = nn.Conv2d(input_channels, 3 * hidden_channels, kernel_size, padding=kernel_size // 2)
        self.hidden_gates = nn.Conv2d(hidden_channels, 3 * hidden_channels, kernel_size, padding=kernel_size // 2)

    def chunked_parameters(self) -> dict[str, tuple[int, int]]:
        """Tensors made of equal chunks, {name: (axis, chunks)}: the [r | z | n] gates along the output axis
        (used by distillation to slice a smaller cell's gates out of a larger one's, gate by gate)."""
        return {name: (0, 3) for name in ("input_gates.weight", "input_gates.bias",
                                          "hidden_gates.weight", "hidden_gates.bias")}

    def step(self, input_gates: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One update from precomputed ``input_gates(x)`` (computed for all slices in one convolution)."""
        x_r, x_z, x_n = input_gates.chunk(3, dim=1)
        h_r, h_z, h_n = self.hidden_gates(h).chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return (1 - z) * n + z * h

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.step(self.input_gates(x), h)


class SliceRecurrence(nn.Module):
    """Bidirectional ConvGRU over the slice axis of per-slice features ``(batch * slices, C, H, W)``."""

    def __init__(self, channels: int, hidden_channels: int, kernel_size: int = 3, slice_pool: int = 1):
        super().__init__()
        self.slice_pool = slice_pool
        self.forward_cell = ConvGRUCell(channels, hidden_channels, kernel_size)
        self.backward_cell = ConvGRUCell(channels, hidden_channels, kernel_size)
        self.merge = nn.Sequential(nn.Conv2d(2 * hidden_channels, channels, 1, bias=False),
                                   instance_norm(channels))
        self.nonlin = nn.LeakyReLU(0.01, inplace=True)

    def chunked_parameters(self) -> dict[str, tuple[int, int]]:
        """The merge convolution reads [forward | backward] hidden states: two chunks of its input axis."""
        return {"merge.0.weight": (1, 2)}

    @staticmethod
    def run(cell: ConvGRUCell, sequence: torch.Tensor, reverse: bool) -> torch.Tensor:
        """``sequence`` (B, D, C, H, W) -> hidden states (B, D, hidden, H, W) in slice order."""
        batch, slices, _, height, width = sequence.shape
        input_gates = cell.input_gates(sequence.flatten(0, 1)).reshape(batch, slices, -1, height, width)
        h = sequence.new_zeros(batch, cell.hidden_channels, height, width)
        order = range(slices - 1, -1, -1) if reverse else range(slices)
        states = [None] * slices
        for d in order:
            h = cell.step(input_gates[:, d], h)
            states[d] = h
        return torch.stack(states, dim=1)

    def forward(self, x: torch.Tensor, num_slices: int) -> torch.Tensor:
        sequence = x.reshape(-1, num_slices, *x.shape[1:])
        if self.slice_pool > 1:  # slabs of slice_pool slices
            sequence = sequence.reshape(sequence.shape[0], -1, self.slice_pool, *x.shape[1:]).mean(dim=2)
        both = torch.cat([self.run(self.forward_cell, sequence, reverse=False),
                          self.run(self.backward_cell, sequence, reverse=True)], dim=2)
        if self.slice_pool > 1:
            both = both.repeat_interleave(self.slice_pool, dim=1)
        return self.nonlin(x + self.merge(both.flatten(0, 1)))
