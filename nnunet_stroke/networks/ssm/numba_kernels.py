"""Compiled CPU kernels of the Mamba-1 selective scan (forward and backward), with numba.

Recurrence (Gu & Dao 2023, Algorithm 2; mamba-ssm ``selective_scan_ref``), per batch b, channel d,
state n, with h_{-1} = 0 and the step sizes dt already through bias and softplus (done, like the
silu gate, vectorised in PyTorch by ``cpu_scan``):

    h_t,n = exp(dt_t * A_d,n) * h_{t-1},n + dt_t * B_t,n * u_t
    y_t   = sum_n C_t,n * h_t,n + D_d * u_t

The state is kept in registers/L1 and updated in product form (no division by cumulative decays, so
no overflow for long sequences or large delta). Each (batch, channel) pair is independent and runs in
a ``prange`` loop. The backward pass runs the adjoint recurrence (lam_t = dLoss/dh_t)
lam_t = dy_t C_t + exp(dt_{t+1} A) lam_{t+1} in reverse; it recomputes the states of one chunk of
``CHUNK`` tokens at a time from checkpoints the forward pass stored every ``CHUNK`` tokens, so it
needs O(L / CHUNK) extra memory per pair instead of O(L). B and C are laid out (batch, length,
state) so a token's states are contiguous. Gradients of B and C sum over channels: each thread
accumulates into its own slice, summed afterwards.

The decay exp(dt * A) is the hot spot (one per token, channel and state). In float32 it is computed
by ``_exp_float32`` (Cephes expf: range reduction and a degree-7 polynomial, relative error < 1e-7,
exactly 0 below exp(-87)), which -- unlike a libm call -- the compiler vectorises over the states;
float64 uses ``math.exp``, so the float64 path is exact to rounding.
"""

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core.extending import intrinsic, overload

CHUNK = 64


@intrinsic
def _float32_from_bits(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@numba.njit(inline="always", fastmath=True)
def _exp_float32(x):
    if x < np.float32(-87.0):
        return np.float32(0.0)
    x = min(x, np.float32(88.0))
    k = math.floor(x * np.float32(1.44269504) + np.float32(0.5))
    r = x - k * np.float32(0.693359375) + k * np.float32(2.12194440e-4)  # x - k ln2 in two parts
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * r * r + r + np.float32(1.0)
    return p * _float32_from_bits((np.int32(k) + np.int32(127)) << np.int32(23))  # p * 2^k


def decay_exp(x):
    """exp for the decays: vectorisable polynomial in float32, math.exp otherwise."""
    return math.exp(x)


@overload(decay_exp, inline="always", fastmath=True)
def _decay_exp_typed(x):
    if x == types.float32:
        return lambda x: _exp_float32(x)
    return lambda x: math.exp(x)


@numba.njit(parallel=True, cache=True, fastmath=True)
def scan_forward(u, dt, A, B, C, D, save_checkpoints, y, last_state, checkpoints):
    """y (b, d, l), last_state (b, d, n); checkpoints (b, d, ceil(l / CHUNK), n) when saved."""
    n_batch, n_channels, length = u.shape
    n_state = A.shape[1]
    for pair in numba.prange(n_batch * n_channels):
        b = pair // n_channels
        d = pair % n_channels
        h = np.zeros(n_state, dtype=u.dtype)
        for t in range(length):
            if save_checkpoints and t % CHUNK == 0:
                checkpoints[b, d, t // CHUNK, :] = h
            step = dt[b, d, t]
            x = u[b, d, t]
            out = D[d] * x
            for n in range(n_state):
                h[n] = decay_exp(step * A[d, n]) * h[n] + step * B[b, t, n] * x
                out += C[b, t, n] * h[n]
            y[b, d, t] = out
        last_state[b, d, :] = h


@numba.njit(parallel=True, cache=True, fastmath=True)
def scan_backward(u, dt, A, B, C, D, checkpoints, dy, du, ddt, dA_pairs, dD_pairs, dB_threads,
                  dC_threads):
    """Gradients; *_pairs are per (batch, channel) and *_threads per worker, summed by the caller."""
    n_batch, n_channels, length = u.shape
    n_state = A.shape[1]
    n_workers = dB_threads.shape[0]
    n_pairs = n_batch * n_channels
    for worker in numba.prange(n_workers):
        states = np.empty((CHUNK + 1, n_state), dtype=u.dtype)  # row 0: the state before the chunk
        decays = np.empty((CHUNK, n_state), dtype=u.dtype)
        adjoint = np.empty(n_state, dtype=u.dtype)
        dA_sum = np.empty(n_state, dtype=np.float64)
        for pair in range(worker, n_pairs, n_workers):
            b = pair // n_channels
            d = pair % n_channels
            adjoint[:] = 0.0
            dA_sum[:] = 0.0
            dD_sum = 0.0
            for chunk in range((length + CHUNK - 1) // CHUNK - 1, -1, -1):
                start = chunk * CHUNK
                stop = min(length, start + CHUNK)
                states[0, :] = checkpoints[b, d, chunk, :]
                for t in range(start, stop):
                    k = t - start
                    step = dt[b, d, t]
                    x = u[b, d, t]
                    for n in range(n_state):
                        decay = decay_exp(step * A[d, n])
                        decays[k, n] = decay
                        states[k + 1, n] = decay * states[k, n] + step * B[b, t, n] * x
                for t in range(stop - 1, start - 1, -1):
                    k = t - start
                    step = dt[b, d, t]
                    x = u[b, d, t]
                    g = dy[b, d, t]
                    dD_sum += g * x
                    dx = g * D[d]
                    dstep = 0.0
                    for n in range(n_state):
                        lam = adjoint[n] + g * C[b, t, n]
                        dC_threads[worker, b, t, n] += g * states[k + 1, n]
                        through_decay = lam * states[k, n] * decays[k, n]
                        dstep += through_decay * A[d, n] + lam * B[b, t, n] * x
                        dA_sum[n] += through_decay * step
                        dB_threads[worker, b, t, n] += lam * step * x
                        dx += lam * step * B[b, t, n]
                        adjoint[n] = lam * decays[k, n]
                    ddt[b, d, t] = dstep
                    du[b, d, t] = dx
            dA_pairs[b, d, :] = dA_sum
            dD_pairs[b, d] = dD_sum
