"""numba kernel of ``token_major_scan`` (inference-only selective scan, token-major layout); imported on
first use so that numba stays a lazy dependency, as in ``cpu_scan``."""
import numba
import numpy as np

from nnunet_stroke.networks.ssm.numba_kernels import decay_exp

CHANNEL_BLOCK = 16  # channels per thread job: one AVX-512 register of float32 values


@numba.njit(inline="always", fastmath=True)
def _silu(g):
    return g / (1 + decay_exp(-g))


@numba.njit(parallel=True, cache=True, fastmath=True)
def scan_kernel(u, dt, A, B, C, D, z, y):
    """y[b, t, d] = (sum_n C h + D u) * silu(z), h the recurrence of ``token_major_scan``; dt after softplus."""
    n_batch, length, n_channels = u.shape
    n_state = A.shape[1]
    n_blocks = (n_channels + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
    for job in numba.prange(n_batch * n_blocks):
        b = job // n_blocks
        first = (job % n_blocks) * CHANNEL_BLOCK
        width = min(first + CHANNEL_BLOCK, n_channels) - first
        h = np.zeros((CHANNEL_BLOCK, n_state), dtype=u.dtype)
        # the token's rows, contiguous (B, C, z are strided views): the loops below vectorise
        B_t = np.empty(n_state, dtype=u.dtype)
        C_t = np.empty(n_state, dtype=u.dtype)
        gate = np.empty(CHANNEL_BLOCK, dtype=u.dtype)
        out = np.empty(CHANNEL_BLOCK, dtype=u.dtype)
        for t in range(length):
            B_t[:] = B[b, t, :]
            C_t[:] = C[b, t, :]
            for j in range(width):
                d = first + j
                step = dt[b, t, d]
                x = u[b, t, d]
                acc = D[d] * x
                for n in range(n_state):
                    h[j, n] = decay_exp(step * A[d, n]) * h[j, n] + step * B_t[n] * x
                    acc += C_t[n] * h[j, n]
                out[j] = acc
            gate[:width] = z[b, t, first:first + width]
            for j in range(width):
                y[b, t, first + j] = out[j] * _silu(gate[j])
