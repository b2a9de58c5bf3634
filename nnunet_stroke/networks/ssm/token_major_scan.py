"""Inference-only selective scan on the CPU in the token-major layout the Mamba mixer produces.

Computes exactly what ``dispatch.selective_scan`` computes with ``delta_softplus=True``, a skip ``D``,
a gate ``z`` and a ``delta_bias`` (Gu & Dao 2023, Algorithm 2; see ``numba_kernels``):

    dt_t  = softplus(delta_t + delta_bias)
    h_t,n = exp(dt_t * A_d,n) * h_{t-1},n + dt_t * B_t,n * u_t
    y_t   = (sum_n C_t,n * h_t,n + D_d * u_t) * silu(z_t)

but reads u, delta, z as (batch, length, channels) and B, C as (batch, length, state) -- strided views
of the projections, as the mixer makes them -- and writes y as (batch, length, channels), the layout
``out_proj`` takes. The skip and the gate are applied inside the recurrence, the step size in one
vectorised pass. The training path (``cpu_scan._NumbaScan``) needs channel-major copies of u, delta, z, B and C and separate
softplus, gate and product passes; at LBMNet's full-resolution stage (a million tokens, 96 channels)
those copies and passes took about three times as long as the recurrence itself (benchmarks/results/
lbmnet_profile.md). No gradient: used only when autograd is off (``applies``).

Threads split the channels in blocks (``channel_block``); every thread walks all tokens of its block,
with the block's states (block x d_state) in L1/L2.
"""
from __future__ import annotations

import os
import warnings

import torch
import torch.nn.functional as F

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


def scan_token_major(u, delta, A, B, C, D, z, delta_bias) -> torch.Tensor:
    """u, delta, z: (batch, length, channels); A: (channels, state); B, C: (batch, length, state);
    D, delta_bias: (channels,); any strides. Returns y (batch, length, channels), contiguous."""
    from nnunet_stroke.networks.ssm.token_major_kernel import scan_kernel

    dtype = u.dtype
    A_t, D, delta_bias = A.to(dtype).t().contiguous(), D.to(dtype).contiguous(), delta_bias.to(dtype).contiguous()
    dt = F.softplus(delta + delta_bias)  # vectorised here; numba has no vector log1p
    y = torch.empty(u.shape, dtype=dtype)
    with warnings.catch_warnings():  # numba's internal IR self-check warns while compiling the inlined exp
        warnings.filterwarnings("ignore", message=".*is not in scope", module="numba")
        scan_kernel(*(t.detach().numpy() for t in (u, dt, A_t, B, C, D, z, y)), channel_block(u.shape[-1]))
    return y
