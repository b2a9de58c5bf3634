"""The package's CPU selective scan (numba kernels in an autograd Function) and the token-loop reference.

Both take the canonical layout of ``dispatch.py``: u, delta, z (batch, channels, length);
A (channels, state); B, C (batch, length, state); D, delta_bias (channels,) -- all one float dtype
(float32 or float64), z/D/delta_bias possibly None. They return (out, last_state).

numba is imported on first use. If it is missing or its compilation fails while the backend is
chosen automatically, one warning is issued and the caller's fallback (the chunked PyTorch scan) is
used from then on. ``scan_torch`` is the plain token loop (backend ``torch_loop``): a reference,
whose autograd stores every step, i.e. O(batch * channels * length * state) training memory.
"""

import torch
import torch.nn.functional as F

from nnunet_stroke.networks.ssm.optional_kernel import OptionalKernel


def _import_kernels():
    from nnunet_stroke.networks.ssm import numba_kernels

    return numba_kernels


_NUMBA = OptionalKernel(_import_kernels, (
    "numba selective-scan kernel unavailable ({error!r}); using the slower chunked PyTorch scan. Install numba "
    "(`pip install numba`) to get the compiled kernel."))


def _load_kernels(warn=False):
    """The numba kernel module, or None after a failed import (then warned once if ``warn``)."""
    return _NUMBA.get(warn)


def numba_failure():
    """Why numba is unusable (the exception), or None."""
    return _NUMBA.failure


def _disable_numba(error, warn=True):
    _NUMBA.disable(error, warn)


def _numba_workers():
    import numba

    return numba.get_num_threads()


class _NumbaScan(torch.autograd.Function):
    """Step sizes (bias, softplus) and the silu gate are computed here with vectorised PyTorch ops;
    the numba kernels run the recurrence and its adjoint."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        kernels = _load_kernels()
        batch, channels, length = u.shape
        raw = delta + delta_bias[:, None] if delta_bias is not None else delta
        dt = (F.softplus(raw) if delta_softplus else raw).contiguous()
        D_ = D if D is not None else u.new_zeros(channels)
        needs_grad = any(ctx.needs_input_grad)
        n_chunks = -(-length // kernels.CHUNK) if needs_grad else 1
        checkpoints = u.new_empty(batch, channels, n_chunks, A.shape[1])
        y = torch.empty_like(u)
        last_state = u.new_empty(batch, channels, A.shape[1])
        kernels.scan_forward(u.numpy(), dt.numpy(), A.numpy(), B.numpy(), C.numpy(), D_.numpy(),
                             needs_grad, y.numpy(), last_state.numpy(), checkpoints.numpy())
        out = y * F.silu(z) if z is not None else y
        ctx.save_for_backward(u, raw, dt, A, B, C, D_, z, y if z is not None else None, checkpoints)
        ctx.has_D, ctx.has_bias = D is not None, delta_bias is not None
        ctx.delta_softplus = bool(delta_softplus)
        ctx.mark_non_differentiable(last_state)
        return out, last_state

    @staticmethod
    def backward(ctx, dout, _dlast_state):
        kernels = _load_kernels()
        u, raw, dt, A, B, C, D, z, y, checkpoints = ctx.saved_tensors
        dz = None
        if z is not None:
            gate = torch.sigmoid(z)
            dz = dout * y * gate * (1 + z * (1 - gate))
            dout = dout * z * gate
        batch, channels, _ = u.shape
        workers = _numba_workers()
        du, ddt = torch.empty_like(u), torch.empty_like(u)
        dA_pairs, dD_pairs = u.new_empty(batch, channels, A.shape[1]), u.new_empty(batch, channels)
        dB_threads, dC_threads = B.new_zeros(workers, *B.shape), C.new_zeros(workers, *C.shape)
        kernels.scan_backward(u.numpy(), dt.numpy(), A.numpy(), B.numpy(), C.numpy(), D.numpy(),
                              checkpoints.numpy(), dout.contiguous().numpy(), du.numpy(), ddt.numpy(),
                              dA_pairs.numpy(), dD_pairs.numpy(), dB_threads.numpy(),
                              dC_threads.numpy())
        if ctx.delta_softplus:  # torch's softplus is the identity above 20
            ddt = torch.where(raw > 20, ddt, ddt * torch.sigmoid(raw))
        return (du, ddt, dA_pairs.sum(0), dB_threads.sum(0), dC_threads.sum(0),
                dD_pairs.sum(0) if ctx.has_D else None, dz,
                ddt.sum((0, 2)) if ctx.has_bias else None, None)


def scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """Sequential scan in PyTorch ops: the state (batch, channels, state) is updated token by token.

    Per-token slices come from ``unbind``, whose backward stacks all slice gradients once; indexing
    (``x[:, :, t]``) would make autograd allocate a full-size gradient per token (quadratic in L).
    """
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    outputs = []
    for dt, x, B_t, C_t in zip(delta.unsqueeze(-1).unbind(2), u.unsqueeze(-1).unbind(2),
                               B.unsqueeze(1).unbind(2), C.unsqueeze(1).unbind(2)):
        h = torch.exp(dt * A) * h + (dt * x) * B_t
        outputs.append((h * C_t).sum(-1))
    out = torch.stack(outputs, dim=-1)
    if D is not None:
        out = out + D[:, None] * u
    if z is not None:
        out = out * F.silu(z)
    return out, h.detach()


def scan_numba(u, delta, A, B, C, D, z, delta_bias, delta_softplus, fallback=None):
    """The numba kernel (CPU tensors, numba loaded). If numba fails to compile here, it is disabled
    and, with a ``fallback`` scan, that runs instead (warned once); without one the error propagates."""
    try:
        return _NumbaScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    except Exception as error:  # numba compilation/typing failure on this platform
        if not _is_numba_error(error):
            raise
        _disable_numba(error, warn=fallback is not None)
        if fallback is None:
            raise
    return fallback(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


def _is_numba_error(error):
    return type(error).__module__.split(".")[0] in ("numba", "llvmlite")
