"""The package's own selective scan: numba kernels in an autograd Function, pure-PyTorch fallback.

Both take the canonical layout of ``dispatch.py``: u, delta, z (batch, channels, length);
A (channels, state); B, C (batch, length, state); D, delta_bias (channels,) -- all one float dtype
(float32 or float64), z/D/delta_bias possibly None. They return (out, last_state).

numba is imported on first use. If it is missing or its compilation fails, one warning is issued and
the sequential PyTorch scan below is used from then on (any device; autograd stores every step, so
its training memory is O(batch * channels * length * state)).
"""

import warnings

import torch
import torch.nn.functional as F

_kernels = None
_numba_failure = None


def _load_kernels():
    """The numba kernel module, or None after a failed import (warned once)."""
    global _kernels, _numba_failure
    if _kernels is None and _numba_failure is None:
        try:
            from nnunet_stroke.networks.ssm import numba_kernels
        except Exception as error:  # numba missing or broken: any import error counts
            _disable_numba(error)
        else:
            _kernels = numba_kernels
    return _kernels


def _disable_numba(error):
    global _numba_failure
    _numba_failure = error
    warnings.warn(f"numba selective-scan kernel unavailable ({error!r}); using the slower PyTorch "
                  "scan. Install numba (`pip install numba`) to get the compiled kernel.",
                  RuntimeWarning, stacklevel=4)


def _numba_workers():
    import numba

    return numba.get_num_threads()


class _NumbaScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        kernels = _load_kernels()
        batch, channels, length = u.shape
        n_state = A.shape[1]
        D_ = D if D is not None else u.new_zeros(channels)
        bias = delta_bias if delta_bias is not None else u.new_zeros(channels)
        z_ = z if z is not None else u.new_zeros(1, 1, 1)
        needs_grad = any(ctx.needs_input_grad)
        n_chunks = -(-length // kernels.CHUNK) if needs_grad else 1
        checkpoints = u.new_empty(batch, channels, n_chunks, n_state)
        out = torch.empty_like(u)
        last_state = u.new_empty(batch, channels, n_state)
        kernels.scan_forward(u.numpy(), delta.numpy(), A.numpy(), B.numpy(), C.numpy(), D_.numpy(),
                             bias.numpy(), z_.numpy(), z is not None, bool(delta_softplus), needs_grad,
                             out.numpy(), last_state.numpy(), checkpoints.numpy())
        ctx.save_for_backward(u, delta, A, B, C, D_, z_, bias, checkpoints)
        ctx.has_z, ctx.has_D, ctx.has_bias = z is not None, D is not None, delta_bias is not None
        ctx.delta_softplus = bool(delta_softplus)
        ctx.mark_non_differentiable(last_state)
        return out, last_state

    @staticmethod
    def backward(ctx, dout, _dlast_state):
        kernels = _load_kernels()
        u, delta, A, B, C, D, z, bias, checkpoints = ctx.saved_tensors
        batch, channels, _ = u.shape
        workers = _numba_workers()
        du, ddelta, dz = torch.empty_like(u), torch.empty_like(u), torch.empty_like(z)
        dA_pairs = u.new_empty(batch, channels, A.shape[1])
        dD_pairs, dbias_pairs = u.new_empty(batch, channels), u.new_empty(batch, channels)
        dB_threads = B.new_zeros(workers, *B.shape)
        dC_threads = C.new_zeros(workers, *C.shape)
        kernels.scan_backward(u.numpy(), delta.numpy(), A.numpy(), B.numpy(), C.numpy(), D.numpy(),
                              bias.numpy(), z.numpy(), ctx.has_z, ctx.delta_softplus,
                              checkpoints.numpy(), dout.contiguous().numpy(), du.numpy(),
                              ddelta.numpy(), dz.numpy(), dA_pairs.numpy(), dD_pairs.numpy(),
                              dbias_pairs.numpy(), dB_threads.numpy(), dC_threads.numpy())
        return (du, ddelta, dA_pairs.sum(0), dB_threads.sum(0), dC_threads.sum(0),
                dD_pairs.sum(0) if ctx.has_D else None, dz if ctx.has_z else None,
                dbias_pairs.sum(0) if ctx.has_bias else None, None)


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


def scan_cpu(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """numba kernel for CPU tensors when it loads and compiles, else the PyTorch scan."""
    if u.device.type == "cpu" and _load_kernels() is not None:
        try:
            return _NumbaScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
        except Exception as error:  # numba compilation/typing failure on this platform
            if not _is_numba_error(error):
                raise
            _disable_numba(error)
            global _kernels
            _kernels = None
    return scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


def _is_numba_error(error):
    return type(error).__module__.split(".")[0] in ("numba", "llvmlite")
