"""numba kernels of ``token_major_scan`` (inference-only causal convolution + SiLU and selective scan, token-major
layout); imported on first use so that numba stays a lazy dependency, as in ``cpu_scan``."""
import numba
import numpy as np

from nnunet_stroke.networks.ssm.numba_kernels import decay_exp

VECTOR = 16  # channel blocks are multiples of one AVX-512 register of float32 values


@numba.njit(inline="always", fastmath=True)
def _silu(g):
    return g / (1 + decay_exp(-g))


@numba.njit(parallel=True, cache=True, fastmath=True)
def scan_kernel(u, dt, A_t, B, C, D, z, y, block, reverse):
    """y[b, t, d] = (sum_n C h + D u) * silu(z), h the recurrence of ``token_major_scan``; dt after softplus,
    A_t = A transposed (state, channels); ``block`` channels per thread job; ``reverse``: the recurrence runs from
    the last token to the first. The innermost loops run over the block's channels, so they
    vectorise without a horizontal sum over the states; the sum over n keeps the order n = 0, 1, ..."""
    n_batch, length, n_channels = u.shape
    n_state = A_t.shape[0]
    n_blocks = (n_channels + block - 1) // block
    for job in numba.prange(n_batch * n_blocks):
        b = job // n_blocks
        first = (job % n_blocks) * block
        width = min(first + block, n_channels) - first
        h = np.zeros((n_state, block), dtype=u.dtype)
        # the token's values of the block, contiguous (u, dt, z, B, C may be strided views)
        step = np.empty(block, dtype=u.dtype)
        step_x = np.empty(block, dtype=u.dtype)
        acc = np.empty(block, dtype=u.dtype)
        gate = np.empty(block, dtype=u.dtype)
        for step_index in range(length):
            t = length - 1 - step_index if reverse else step_index
            for j in range(width):
                d = first + j
                step[j] = dt[b, t, d]
                step_x[j] = dt[b, t, d] * u[b, t, d]
                acc[j] = D[d] * u[b, t, d]
            for n in range(n_state):
                b_n = B[b, t, n]
                c_n = C[b, t, n]
                for j in range(width):
                    h[n, j] = decay_exp(step[j] * A_t[n, first + j]) * h[n, j] + step_x[j] * b_n
                    acc[j] += c_n * h[n, j]
            for j in range(width):
                gate[j] = z[b, t, first + j]
            for j in range(width):
                y[b, t, first + j] = acc[j] * _silu(gate[j])


@numba.njit(parallel=True, cache=True, fastmath=True)
def causal_conv_silu_kernel(x, weight_t, bias, block, reverse):
    """In place: x[b, t, d] <- silu(bias[d] + sum_k weight_t[k, d] x[b, t - K + 1 + k, d]) with x = 0 before t = 0
    (mamba's causal depthwise Conv1d of K taps, then SiLU); ``reverse``: the same on the time-reversed sequence
    (t + K - 1 - k instead). ``block`` channels per thread job, each job keeps the last K inputs of its channels,
    so a token's row can be overwritten once read."""
    n_batch, length, n_channels = x.shape
    taps = weight_t.shape[0]
    n_blocks = (n_channels + block - 1) // block
    for job in numba.prange(n_batch * n_blocks):
        b = job // n_blocks
        first = (job % n_blocks) * block
        width = min(first + block, n_channels) - first
        history = np.zeros((taps, block), dtype=x.dtype)  # inputs t - K + 1 .. t of the block
        acc = np.empty(block, dtype=x.dtype)
        for step in range(length):
            t = length - 1 - step if reverse else step
            for k in range(taps - 1):
                for j in range(width):
                    history[k, j] = history[k + 1, j]
            for j in range(width):
                history[taps - 1, j] = x[b, t, first + j]
                acc[j] = bias[first + j]
            for k in range(taps):
                for j in range(width):
                    acc[j] += weight_t[k, first + j] * history[k, j]
            for j in range(width):
                x[b, t, first + j] = _silu(acc[j])
