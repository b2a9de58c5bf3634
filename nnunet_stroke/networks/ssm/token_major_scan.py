"""Inference-only selective scan on the CPU in the token-major layout the Mamba mixer produces.

Computes exactly what ``dispatch.selective_scan`` computes with ``delta_softplus=True``, a skip ``D``,
a gate ``z`` and a ``delta_bias`` (Gu & Dao 2023, Algorithm 2; see ``numba_kernels``):

    dt_t  = softplus(delta_t + delta_bias),   delta_t = W_dt dt_low_t   (mamba's dt_proj, rank R -> channels)
    h_t,n = exp(dt_t * A_d,n) * h_{t-1},n + dt_t * B_t,n * u_t
    y_t   = (sum_n C_t,n * h_t,n + D_d * u_t) * silu(z_t)

but reads u, z as (batch, length, channels), dt_low as (batch, length, R) and B, C as (batch, length, state) -- column slices of the
projections, as the mixer makes them, read in place -- and writes y as (batch, length, channels), the layout
``out_proj`` takes. The softplus of the step sizes, the skip and the gate are applied inside the recurrence. The
mixer's steps before the scan run in place on its input projection as well (``causal_conv_silu_``: the causal
depthwise convolution and SiLU in one pass over the x half, no copies), the step sizes are projected from their low rank
(``dt_proj``) inside the kernel as well, and y overwrites u, so at inference the mixer allocates no (length, channels) tensor besides the
input and output projections. The training path (``cpu_scan._NumbaScan``) needs channel-major copies of u,
delta, z, B and C and separate softplus, gate and product passes. No gradient: used only when autograd is off
(``applies``).

Threads split the channels in blocks (``channel_block``); every thread walks all tokens of its block,
with the block's states (block x d_state) in L1/L2.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import torch

from nnunet_stroke.networks.ssm import cpu_scan

SCAN_ENV = "NNUNET_STROKE_SCAN"


def applies(x: torch.Tensor) -> bool:
    """Whether the mixer on ``x`` may take this path: a CPU float32/float64 tensor, autograd off, the numba
    kernels loadable, and the scan backend left to the default (``NNUNET_STROKE_SCAN`` unset, ``auto``
    or ``numba``)."""
    return (x.device.type == "cpu" and not torch.is_grad_enabled() and x.dtype in (torch.float32, torch.float64)
            and os.environ.get(SCAN_ENV, "auto") in ("auto", "numba") and cpu_scan._load_kernels() is not None)


def channel_block(channels: int) -> int:
    """Channels per thread job: an even share of the channels per numba thread, in whole vectors (one sweep
    over the tokens per thread; narrower jobs each re-read the token rows)."""
    from nnunet_stroke.networks.ssm.token_major_kernel import VECTOR

    vectors = -(-channels // VECTOR)
    return VECTOR * -(-vectors // cpu_scan._numba_workers())


def _rows(t: torch.Tensor, written: bool = False) -> tuple[np.ndarray, int]:
    """(batch, length, channels) -> (C-contiguous array of whole rows holding t, column of t's first channel):
    a column slice of a contiguous tensor that fills its storage (a chunk or split of a projection's output) is
    passed as that whole tensor, anything else as a contiguous copy, which a ``written`` operand cannot be
    (ValueError)."""
    batch, length, channels = t.shape
    width, column = t.stride(1), t.storage_offset()
    if (t.stride(-1) == 1 and t.stride(0) == length * width and column <= width - channels
            and t.untyped_storage().nbytes() == batch * length * width * t.element_size()):
        # the storage holds exactly these rows (a fresh projection output): view all of it
        return torch.as_strided(t, (batch, length, width), (length * width, width, 1), 0).detach().numpy(), column
    if written:
        raise ValueError(f"token-major scan: an output of shape {tuple(t.shape)} and strides {t.stride()} must be "
                         "contiguous or a column slice of a contiguous (batch, length, width) tensor")
    return t.detach().contiguous().numpy(), 0


def causal_conv_silu_(x, conv, reverse=False) -> torch.Tensor:
    """In place on x (batch, length, channels), contiguous or a column slice of a contiguous tensor: silu of mamba's
    causal depthwise ``conv`` (``mamba.causal_depthwise_conv``), one pass, no copy of x; ``reverse``: of the
    time-reversed sequence, the result in the original order."""
    from nnunet_stroke.networks.ssm.token_major_kernel import causal_conv_silu_kernel

    rows, column = _rows(x, written=True)
    weight_t = conv.weight[:, 0].t().to(x.dtype).contiguous()  # (taps, channels)
    bias = conv.bias.to(x.dtype) if conv.bias is not None else x.new_zeros(x.shape[-1])
    with warnings.catch_warnings():  # numba's internal IR self-check warns while compiling the inlined exp
        warnings.filterwarnings("ignore", message=".*is not in scope", module="numba")
        causal_conv_silu_kernel(rows, column, x.shape[-1], weight_t.detach().numpy(),
                                bias.detach().contiguous().numpy(), channel_block(x.shape[-1]), reverse)
    return x


def scan_token_major(u, dt_low, dt_weight, dt_bias, A, B, C, D, z, out, reverse=False) -> torch.Tensor:
    """u, z: (batch, length, channels); dt_low: (batch, length, rank), the low-rank step sizes, which the kernel
    projects itself (delta = dt_low dt_weight^T + dt_bias, dt_weight (channels, rank): mamba's ``dt_proj``);
    A: (channels, state); B, C: (batch, length, state); D: (channels,). Operands are read in place when contiguous
    or column slices of a contiguous tensor (copied otherwise); ``out`` must be such a tensor. Writes y (batch,
    length, channels) into ``out``, which may be ``u`` itself (every token's u is read before its y is written),
    and returns it. ``reverse``: the recurrence from the last token to the first (the scan of the time-reversed
    sequence, in the original order)."""
    from nnunet_stroke.networks.ssm.token_major_kernel import VECTOR, scan_kernel

    dtype, channels = u.dtype, u.shape[-1]
    padded = VECTOR * -(-channels // VECTOR)

    def padded_rows(matrix):  # (channels, k) -> (k, padded channels), zeros past the channels
        rows = matrix.new_zeros(matrix.shape[1], padded, dtype=dtype)
        rows[:, :channels] = matrix.t()
        return rows.detach().numpy()

    out_rows, out_column = _rows(out, written=True)
    operands = [*_rows(u), *_rows(dt_low), padded_rows(dt_weight), padded_rows(dt_bias[:, None])[0], padded_rows(A)]
    operands += [item for tensor in (B, C) for item in _rows(tensor)] + [D.to(dtype).contiguous().numpy()]
    operands += [*_rows(z), out_rows, out_column]
    with warnings.catch_warnings():  # numba's internal IR self-check warns while compiling the inlined exp
        warnings.filterwarnings("ignore", message=".*is not in scope", module="numba")
        scan_kernel(*operands, channel_block(channels), reverse)
    return out
