"""numba kernels of ``token_major_scan`` (inference-only causal convolution + SiLU and selective scan, token-major
layout); imported on first use so that numba stays a lazy dependency, as in ``cpu_scan``.

Every (batch, length, channels) operand arrives as a C-contiguous array of whole rows plus the column where its
channels start (a column slice of a projection, e.g. the x or z half of ``in_proj``'s output, is passed as that
output and an offset): with a unit channel stride known at compile time, the per-token loops over channels compile
to vector loads and stores. The channels of a thread job are processed in groups of ``VECTOR`` with loops of that
literal length (one register of float32 values; the tail group is padded with zero step sizes and never written
back), so the innermost loops vectorise without a remainder loop.
"""
import math

import numba
import numpy as np
from numba import types
from numba.core.extending import overload

from nnunet_stroke.networks.ssm.numba_kernels import decay_exp

VECTOR = 16  # channel groups are one AVX-512 register of float32 values


@numba.njit(inline="always", fastmath=True)
def _silu(g):
    return g / (1 + decay_exp(-g))


@numba.njit(inline="always", fastmath=True)
def _log1p_unit_float32(e):
    """log(1 + e) for e in [0, 1], float32: Cephes logf (range reduction to [sqrt(1/2), sqrt(2)) and its degree-8
    polynomial) of u = 1 + e, corrected by e / (u - 1) for the rounding of u (Goldberg), so small e keep their
    relative accuracy; branch-free, so it vectorises."""
    u = np.float32(1.0) + e
    upper = u > np.float32(1.41421356)
    k = np.float32(1.0) if upper else np.float32(0.0)
    x = u * np.float32(0.5) - np.float32(1.0) if upper else u - np.float32(1.0)
    z = x * x
    p = np.float32(7.0376836292e-2)
    p = p * x - np.float32(1.1514610310e-1)
    p = p * x + np.float32(1.1676998740e-1)
    p = p * x - np.float32(1.2420140846e-1)
    p = p * x + np.float32(1.4249322787e-1)
    p = p * x - np.float32(1.6668057665e-1)
    p = p * x + np.float32(2.0000714765e-1)
    p = p * x - np.float32(2.4999993993e-1)
    p = p * x + np.float32(3.3333331174e-1)
    log_u = x + (p * x * z - k * np.float32(2.12194440e-4) - np.float32(0.5) * z) + k * np.float32(0.693359375)
    spent = u - np.float32(1.0)  # exact
    return log_u * (e / spent) if spent > np.float32(0.0) else e


def softplus(x):
    """torch's softplus (beta 1, threshold 20): x above 20, else log(1 + exp(x)); vectorisable in float32."""
    return x if x > 20.0 else math.log1p(math.exp(x))


@overload(softplus, inline="always", fastmath=True)
def _softplus_typed(x):
    if x == types.float32:
        return lambda x: x if x > np.float32(20.0) else (
            max(x, np.float32(0.0)) + _log1p_unit_float32(decay_exp(-abs(x))))
    return lambda x: x if x > 20.0 else math.log1p(math.exp(x))


@numba.njit(parallel=True, cache=True, fastmath=True)
def scan_kernel(u, u_col, low, low_col, weight_t, bias, A_t, B, B_col, C, C_col, D, z, z_col, y, y_col, block,
                reverse):
    """y[b, t, y_col + d] = (sum_n C h + D u) * silu(z), h the recurrence of ``token_major_scan`` with the step
    sizes dt = softplus(bias[d] + sum_r low[b, t, low_col + r] weight_t[r, d]) (mamba's dt_proj of the low-rank
    step sizes); an operand X of channels (or states) d is read at X[b, t, X_col + d]; A_t = A transposed
    (state, channels), weight_t (rank, channels) and bias with the channels padded to a multiple of ``VECTOR``;
    ``block`` channels (a multiple of ``VECTOR``) per thread job;
    ``reverse``: the recurrence runs from the last token to the first. The sum over n keeps the order
    n = 0, 1, ...; a token's u is read before its y is written, so y may overwrite u."""
    n_batch, length, _ = u.shape
    n_channels = D.shape[0]
    n_state, rank = A_t.shape[0], weight_t.shape[0]
    n_blocks = (n_channels + block - 1) // block
    for job in numba.prange(n_batch * n_blocks):
        b = job // n_blocks
        first = (job % n_blocks) * block
        width = min(first + block, n_channels) - first
        groups = (width + VECTOR - 1) // VECTOR
        h = np.zeros((groups, n_state, VECTOR), dtype=u.dtype)
        decay_rate = np.empty((groups, n_state, VECTOR), dtype=u.dtype)
        skip = np.zeros((groups, VECTOR), dtype=u.dtype)
        projection = np.empty((groups, rank, VECTOR), dtype=u.dtype)
        bias_block = np.empty((groups, VECTOR), dtype=u.dtype)
        for g in range(groups):
            for j in range(VECTOR):
                for n in range(n_state):
                    decay_rate[g, n, j] = A_t[n, first + g * VECTOR + j]
                for r in range(rank):
                    projection[g, r, j] = weight_t[r, first + g * VECTOR + j]
                bias_block[g, j] = bias[first + g * VECTOR + j]
                if g * VECTOR + j < width:
                    skip[g, j] = D[first + g * VECTOR + j]
        # the token's values of the block; lanes past ``width`` stay 0 (h stays 0 there)
        step = np.zeros((groups, VECTOR), dtype=u.dtype)
        step_x = np.zeros((groups, VECTOR), dtype=u.dtype)
        acc = np.zeros((groups, VECTOR), dtype=u.dtype)
        delta = np.empty((groups, VECTOR), dtype=u.dtype)
        for step_index in range(length):
            t = length - 1 - step_index if reverse else step_index
            u_t = u[b, t, u_col + first:u_col + first + width]
            low_t = low[b, t, low_col:low_col + rank]
            for g in range(groups):
                for j in range(VECTOR):
                    delta[g, j] = bias_block[g, j]
            for r in range(rank):
                low_r = low_t[r]
                for g in range(groups):
                    for j in range(VECTOR):
                        delta[g, j] += low_r * projection[g, r, j]
            for g in range(groups):
                for j in range(min(VECTOR, width - g * VECTOR)):
                    x = u_t[g * VECTOR + j]
                    s = softplus(delta[g, j])
                    step[g, j] = s
                    step_x[g, j] = s * x
                    acc[g, j] = skip[g, j] * x
            for n in range(n_state):
                b_n = B[b, t, B_col + n]
                c_n = C[b, t, C_col + n]
                for g in range(groups):
                    for j in range(VECTOR):
                        state = decay_exp(step[g, j] * decay_rate[g, n, j]) * h[g, n, j] + step_x[g, j] * b_n
                        h[g, n, j] = state
                        acc[g, j] += c_n * state
            z_t = z[b, t, z_col + first:z_col + first + width]
            y_t = y[b, t, y_col + first:y_col + first + width]
            for g in range(groups):
                for j in range(min(VECTOR, width - g * VECTOR)):
                    y_t[g * VECTOR + j] = acc[g, j] * _silu(z_t[g * VECTOR + j])


@numba.njit(parallel=True, cache=True, fastmath=True)
def causal_conv_silu_kernel(x, x_col, n_channels, weight_t, bias, block, reverse):
    """In place on channels x_col .. x_col + n_channels - 1 of x: x[b, t, d] <- silu(bias[d] + sum_k weight_t[k, d]
    x[b, t - K + 1 + k, d]) with x = 0 before t = 0 (mamba's causal depthwise Conv1d of K taps, then SiLU);
    ``reverse``: the same on the time-reversed sequence (t + K - 1 - k instead). ``block`` channels per thread job,
    each job keeps the last K inputs of its channels, so a token's row can be overwritten once read."""
    n_batch, length, _ = x.shape
    taps = weight_t.shape[0]
    n_blocks = (n_channels + block - 1) // block
    for job in numba.prange(n_batch * n_blocks):
        b = job // n_blocks
        first = (job % n_blocks) * block
        width = min(first + block, n_channels) - first
        history = np.zeros((taps, block), dtype=x.dtype)  # inputs t - K + 1 .. t of the block
        acc = np.empty(block, dtype=x.dtype)
        weights = weight_t[:, first:first + width].copy()
        bias_block = bias[first:first + width].copy()
        for step in range(length):
            t = length - 1 - step if reverse else step
            for k in range(taps - 1):
                for j in range(width):
                    history[k, j] = history[k + 1, j]
            x_t = x[b, t, x_col + first:x_col + first + width]
            for j in range(width):
                history[taps - 1, j] = x_t[j]
                acc[j] = bias_block[j]
            for k in range(taps):
                for j in range(width):
                    acc[j] += weights[k, j] * history[k, j]
            for j in range(width):
                x_t[j] = _silu(acc[j])
